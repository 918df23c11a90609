"""``sigpipe -q`` / ``-v``: how much goes to stderr (a subprocess: pytest's own log handlers would hide the CLI's)."""

import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples"


def run(tmp_path: Path, *flags: str, names: tuple[str, ...] = ("0001_cheque.png", "0006_letter.tif"),
        extra: tuple[str, ...] = ()) -> str:
    docs = tmp_path / "scans"
    docs.mkdir(parents=True, exist_ok=True)
    for name in names:  # by default a PNG and a TIFF: PIL logs debug lines for both
        (docs / name).write_bytes((EXAMPLE / "scans" / name).read_bytes())
    code = "from sigpipe.cli import main; main()"
    args = [*flags, "run", str(docs), "--refs", str(EXAMPLE / "refs"), "--out", str(tmp_path / f"out{flags}"),
            "--no-progress", *extra]
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300,
                       env={"SIGPIPE_CACHE": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr[-2000:]
    assert "2 documents" in r.stdout  # the result line is on stdout whatever the logging
    return r.stderr


def test_quiet_and_verbose(tmp_path: Path):
    default, quiet, verbose = run(tmp_path), run(tmp_path, "-q"), run(tmp_path, "-v")
    assert "INFO sigpipe.pipeline.runner" in default and "DEBUG" not in default
    assert "INFO" not in quiet
    assert "DEBUG sigpipe.pipeline.flow" in verbose and "DEBUG PIL" not in verbose  # sigpipe's, not PIL's tag dumps


def test_a_run_with_documents_to_review_says_how_to_review_them(tmp_path: Path):
    assert "sigpipe review" not in run(tmp_path)  # both documents genuine (one-to-many)
    stderr = run(tmp_path / "x", names=("0001_cheque.png", "0008_cheque.tif"))  # a forged cheque: unknown_signer
    command = shlex.join(["sigpipe", "review", str(tmp_path / "x" / "out()"), "--scans", str(tmp_path / "x" / "scans"),
                          "--refs", str(EXAMPLE / "refs")])
    assert f"1 document(s) forged or needing review; to see them beside the references: {command}" \
        in stderr
    assert "sigpipe review" not in run(tmp_path / "x", "-q", names=("0008_cheque.tif",))


def test_a_claimed_document_without_a_signature_is_put_to_review(tmp_path: Path):
    """A cheque presented as signed on which the detector finds nothing (not signed, or signed where it cannot see:
    faint ink, a patterned background) was left out of the count of documents to review, and out of the log."""
    import json

    claims = tmp_path / "claims.csv"
    claims.write_text("document,identity\n0005_letter.png,j-kowalski\n0001_cheque.png,j-kowalski\n")
    stderr = run(tmp_path, names=("0001_cheque.png", "0005_letter.png"), extra=("--claims", str(claims)))
    assert "WARNING sigpipe.pipeline.runner: 1 claimed document(s) show no signature the detector found" in stderr
    assert "INFO sigpipe.pipeline.cli: 1 claimed but with no signature found; to see them beside the references: " \
           "sigpipe review" in stderr
    summary = json.loads((tmp_path / "out()" / "summary.json").read_text())
    assert summary["claimed_unsigned"] == ["0005_letter.png"] and summary["verdicts"]["unsigned"] == 1
