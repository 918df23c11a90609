import csv
import hashlib
import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pipeline_doubles import SIG_A, SIG_B, DoubleModels, page_with, save_image, save_pdf, scribble

from sigpipe.errors import InputError
from sigpipe.pipeline.errors import ClaimsError, MissingDependencyError, NoDocumentsError, OutputBusyError
from sigpipe.pipeline.ingest import poppler_available
from sigpipe.pipeline.report import READER_REVISION, TMP_SUFFIX, load_schema, out_lock, read_report
from sigpipe.pipeline.runner import RunConfig, run_batch

DOCS = ["alice_letter.pdf", "broken.pdf", "sub/bob_form.png", "sub/deeper/multi.TIF", "unsigned.jpg"]


def config(b: dict[str, Path], **kw: object) -> RunConfig:
    base: dict[str, object] = {"scans": b["scans"], "refs": b["refs"], "out": b["out"], "claims": b["claims"],
                               "cache": b["cache"], "progress": False}
    return RunConfig(**{**base, **kw})  # type: ignore[arg-type]


def all_reports(out: Path) -> dict[str, dict]:
    return {p.relative_to(out).as_posix()[: -len(".json")]: json.loads(p.read_text())
            for p in out.rglob("*.json") if p.name != "summary.json"}


def test_batch_reports_validate_and_summary_covers_everything(batch: dict[str, Path], verifier_manifest: Path):
    s = run_batch(config(batch), DoubleModels(verifier_manifest))
    reps = all_reports(batch["out"])
    assert sorted(reps) == DOCS  # hidden and non-scan files skipped; the text "PDF" has a report
    schema = load_schema()
    for r in reps.values():
        jsonschema.validate(r, schema)
    assert reps["alice_letter.pdf"]["verdict"] == "genuine"  # claimed alice, alice's signature
    assert reps["alice_letter.pdf"]["claimed_identity"] == "alice"
    bob = reps["sub/bob_form.png"]  # claimed carol, who has no references
    assert bob["verdict"] == "needs_review" and bob["signatures"][0]["verdict"] == "no_reference"
    assert bob["signatures"][0]["dpi"] == 150  # from the PNG's metadata
    assert bob["signatures"][0]["nearest_reference"] is None
    # what each signature was compared with, relative to REFS
    assert reps["alice_letter.pdf"]["signatures"][0]["nearest_reference"] == "alice/a1.png"
    multi = reps["sub/deeper/multi.TIF"]  # no claim: one-to-many, alice is the nearest
    assert multi["claimed_identity"] is None and multi["signatures"][0]["identity"] == "alice"
    assert multi["signatures"][0]["nearest_reference"] == "alice/a1.png"
    assert multi["signatures"][0]["page"] == 2 and multi["document"]["pages"] == 2
    assert reps["unsigned.jpg"]["verdict"] == "unsigned"
    broken = reps["broken.pdf"]
    assert (broken["status"], broken["verdict"], broken["error"]["kind"]) == ("error", "error", "corrupt_pdf")

    d = json.loads((batch["out"] / "summary.json").read_text())
    assert d == s.to_dict()
    assert (d["documents"], d["processed"], d["skipped"], d["failed"], d["pages"]) == (5, 5, 0, 1, 6)
    assert d["verdicts"] == {"genuine": 2, "forged": 0, "unsigned": 1, "needs_review": 1, "error": 1}
    assert d["failures"][0]["document"] == "broken.pdf"
    assert [e["file"] for e in d["reference_errors"]] == [str(batch["refs"] / "bob" / "corrupt.png")]
    assert any("missing.pdf" in w for w in d["warnings"]) and any("'carol'" in w for w in d["warnings"])
    assert d["people"] == 2 and d["models"]["verifier"].startswith("tiny-verifier.test ")
    assert d["elapsed_s"] > 0 and d["pages_per_s"] > 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", d["started_at"]) and d["started_at"] <= d["finished_at"]
    # what the warnings say, complete and as lists a reconciliation job can read
    assert d["claims_not_in_scans"] == ["missing.pdf"] and d["duplicate_documents"] == []
    assert d["unclaimed_documents"] == ["broken.pdf", "sub/deeper/multi.TIF", "unsigned.jpg"]
    rows = (batch["out"] / "summary.csv").read_text().splitlines()
    assert len(rows) == 1 + 3 + 2 and rows[1].startswith("alice_letter.pdf,2,")
    assert rows[1].endswith(",alice/a1.png,0.0,,,,,,,,,")  # not placed, mandate, typed name, account, rule, amount


def test_a_run_that_stops_on_bad_input_leaves_no_earlier_summary_in_out(batch: dict[str, Path],
                                                                       verifier_manifest: Path):
    """Last night's summary.json survived tonight's run that stopped on a bad claims file or an empty SCANS (a
    failed mount): a job reading OUT took it for tonight's. A summary in OUT now says the last run finished."""
    models = DoubleModels(verifier_manifest)
    run_batch(config(batch), models)
    bad = batch["claims"].parent / "bad.csv"
    bad.write_text("document,identity\na.png,alice,extra\n")
    empty = batch["scans"].parent / "empty"
    empty.mkdir()
    for kw, error in (({"claims": bad}, ClaimsError), ({"scans": empty}, NoDocumentsError)):
        run_batch(config(batch), models)
        assert (batch["out"] / "summary.json").is_file()
        with pytest.raises(error):
            run_batch(config(batch, **kw), models)
        assert not (batch["out"] / "summary.json").exists() and not (batch["out"] / "summary.csv").exists()
        assert len(all_reports(batch["out"])) == 5  # the reports stay: a re-run resumes from them
    new_out = batch["out"].parent / "never"
    with pytest.raises(ClaimsError):  # a usage error does not create a new OUT
        run_batch(config(batch, claims=bad, out=new_out), models)
    assert not new_out.exists()


def test_rerun_skips_done_documents_and_redoes_changed_or_failed_ones(batch: dict[str, Path],
                                                                      verifier_manifest: Path):
    models = DoubleModels(verifier_manifest)
    run_batch(config(batch), models)
    before = {p: p.stat().st_mtime_ns for p in batch["out"].rglob("*.pdf.json")}
    s = run_batch(config(batch), models)
    assert (s.processed, s.skipped, s.documents, s.failed) == (1, 4, 5, 1)  # only the failed one is retried
    assert s.verdicts["genuine"] == 2 and s.pages == 6  # skipped documents are counted from their reports
    assert before[batch["out"] / "alice_letter.pdf.json"] == (batch["out"] / "alice_letter.pdf.json").stat().st_mtime_ns

    save_image(batch["scans"] / "unsigned.jpg", page_with([(scribble(1), 50, 50)]), quality=95)  # edited
    batch["claims"].write_text("document,identity\nalice_letter.pdf,bob\n")  # claim changed
    s = run_batch(config(batch), models)
    assert s.processed == 4 and s.skipped == 1  # edited, re-claimed, un-claimed, failed; multi.TIF kept
    reps = all_reports(batch["out"])
    assert reps["unsigned.jpg"]["verdict"] != "unsigned"
    assert reps["alice_letter.pdf"]["claimed_identity"] == "bob"
    assert reps["sub/bob_form.png"]["claimed_identity"] is None  # no longer claimed: redone one-to-many
    s = run_batch(config(batch, force=True), models)
    assert s.processed == 5 and s.skipped == 0


def test_rerun_redoes_what_changed_references_or_settings_affect(batch: dict[str, Path], verifier_manifest: Path,
                                                                 caplog: pytest.LogCaptureFixture):
    models = DoubleModels(verifier_manifest)
    run_batch(config(batch), models)
    first = all_reports(batch["out"])
    assert first["alice_letter.pdf"]["references"]["people"] == 1
    assert first["alice_letter.pdf"]["references"]["specimens"] == 1
    assert first["sub/bob_form.png"]["references"]["people"] == 0  # claimed carol, who has no references
    assert first["sub/deeper/multi.TIF"]["references"]["people"] == 2  # one-to-many: everybody
    assert first["unsigned.jpg"]["settings"] == {"dpi": 200, "pdf_backend": "pypdfium2", "crop_margin": 0.08,
                                                  "reader": READER_REVISION}

    save_image(batch["refs"] / "alice" / "a2.png", scribble(11))  # alice gets a second specimen
    with caplog.at_level("INFO", logger="sigpipe.pipeline.runner"):
        s = run_batch(config(batch), models)
    # alice's claim and the two one-to-many documents are redone (and the failed one); carol's claim is kept
    assert (s.processed, s.skipped) == (4, 1)
    assert "3 because the references changed" in caplog.text and "1 because it failed" in caplog.text
    reps = all_reports(batch["out"])
    assert reps["alice_letter.pdf"]["references"]["specimens"] == 2
    assert reps["sub/bob_form.png"] == first["sub/bob_form.png"]

    save_image(batch["refs"] / "carol" / "c1.png", scribble(3))  # carol is enrolled
    s = run_batch(config(batch), models)
    assert (s.processed, s.skipped) == (4, 1)  # carol's claim and the one-to-many ones (and the failed one)
    reps = all_reports(batch["out"])
    assert reps["sub/bob_form.png"]["signatures"][0]["verdict"] != "no_reference"

    (batch["refs"] / "alice" / "a2.png").rename(batch["refs"] / "alice" / "renamed.png")  # same contents
    assert run_batch(config(batch), models).processed == 1  # only the failed one: no report names a2.png
    # but the specimen reports name as a signature's nearest reference, renamed, would leave them pointing at a
    # file that is gone (for an auditor, for review sheets): those documents, and only they, are redone
    before = all_reports(batch["out"])
    naming = {d for d, r in before.items() if any(s["nearest_reference"] == "alice/a1.png" for s in r["signatures"])}
    assert naming == {"alice_letter.pdf", "sub/deeper/multi.TIF"}
    (batch["refs"] / "alice" / "a1.png").rename(batch["refs"] / "alice" / "first.png")
    caplog.clear()
    with caplog.at_level("INFO", logger="sigpipe.pipeline.runner"):
        s = run_batch(config(batch), models)
    assert s.processed == 3  # and the failed one
    assert "2 because a specimen it names was renamed or moved" in caplog.text
    reps = all_reports(batch["out"])
    assert {d for d, r in reps.items() if any(s["nearest_reference"] == "alice/first.png"
                                               for s in r["signatures"])} == naming
    assert reps["sub/bob_form.png"] == before["sub/bob_form.png"]  # carol's claim: kept
    assert reps["unsigned.jpg"] == before["unsigned.jpg"]  # one-to-many, but it names no specimen: kept
    assert run_batch(config(batch), models).processed == 1  # then only the failed one
    sha = {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in (batch["refs"] / "alice").iterdir()}
    assert {s["nearest_reference_sha256"] for r in reps.values() for s in r["signatures"]
            if s["nearest_reference"] == "alice/first.png"} == {sha["first.png"]}

    # two specimens swapping names: the same names, the same contents, so the same references' sha256; but the
    # reports naming first.png would now point at the other signature. They are redone, and name the file that
    # holds what they were compared with.
    a, b = batch["refs"] / "alice" / "first.png", batch["refs"] / "alice" / "renamed.png"
    a.rename(a.with_suffix(".tmp"))
    b.rename(a)
    a.with_suffix(".tmp").rename(b)
    caplog.clear()
    with caplog.at_level("INFO", logger="sigpipe.pipeline.runner"):
        s = run_batch(config(batch), models)
    assert s.processed == 3 and "2 because a specimen it names was renamed or moved" in caplog.text
    swapped = all_reports(batch["out"])
    for d in naming:
        (sig,) = [s for s in swapped[d]["signatures"] if s["identity"] == "alice"]
        assert sig["nearest_reference"] == "alice/renamed.png" and sig["nearest_reference_sha256"] == sha["first.png"]
    assert run_batch(config(batch), models).processed == 1

    s = run_batch(config(batch, dpi=150), models)
    assert (s.processed, s.skipped) == (5, 0)
    assert all_reports(batch["out"])["unsigned.jpg"]["settings"]["dpi"] == 150


def test_pages_selects_what_is_read_and_a_rerun_notices_the_change(batch: dict[str, Path], verifier_manifest: Path,
                                                                   tmp_path: Path):
    models = DoubleModels(verifier_manifest)
    # the PDF specimen of a third person has its signature on page 2: --pages never narrows the references
    from pipeline_doubles import save_pdf

    save_pdf(batch["refs"] / "dora" / "card.pdf", [page_with([]), page_with([(scribble(5), 100, 100)])])
    s = run_batch(config(batch, pages="1", workers=2), models)
    reps = all_reports(batch["out"])
    schema = load_schema()
    for r in reps.values():
        jsonschema.validate(r, schema)
    # alice's letter and the TIFF are signed on page 2, which is not read
    assert reps["alice_letter.pdf"]["verdict"] == reps["sub/deeper/multi.TIF"]["verdict"] == "unsigned"
    assert reps["alice_letter.pdf"]["document"]["pages"] == 1 and s.pages == 4
    assert reps["sub/bob_form.png"]["signatures"][0]["page"] == 1
    assert reps["unsigned.jpg"]["settings"]["pages"] == "1" and s.people == 3

    s = run_batch(config(batch, pages="-1"), models)  # another selection: every document is redone
    assert (s.processed, s.skipped) == (5, 0)
    reps = all_reports(batch["out"])
    assert reps["alice_letter.pdf"]["verdict"] == "genuine" and reps["alice_letter.pdf"]["document"]["pages"] == 1
    assert reps["sub/deeper/multi.TIF"]["signatures"][0]["page"] == 2
    assert run_batch(config(batch, pages="-1"), models).processed == 1  # the failed one only

    s = run_batch(config(batch, pages="2"), models)  # one-page documents have nothing selected: they fail alone
    assert {f.document: f.kind for f in s.failures} == {"broken.pdf": "corrupt_pdf",
                                                        "sub/bob_form.png": "no_selected_page",
                                                        "unsigned.jpg": "no_selected_page"}
    with pytest.raises(ValueError, match="ends before it starts"):
        config(batch, pages="3-2")


def test_accept_score_reruns_and_routes_close_calls_to_review(batch: dict[str, Path], verifier_manifest: Path):
    models = DoubleModels(verifier_manifest)
    run_batch(config(batch), models)
    alice = all_reports(batch["out"])["alice_letter.pdf"]
    assert alice["verdict"] == "genuine"
    score = alice["signatures"][0]["score"]
    assert 0.002 < score < 0.998  # room for a bar on either side of it
    s = run_batch(config(batch, accept_score=min(0.999, score + 1e-3)), models)
    assert s.processed == 5  # the settings changed: every document is judged again
    reps = all_reports(batch["out"])
    assert reps["alice_letter.pdf"]["verdict"] == "needs_review"
    assert reps["alice_letter.pdf"]["signatures"][0]["verdict"] == "genuine"  # the signature's own verdict stays
    assert reps["unsigned.jpg"]["verdict"] == "unsigned"
    s = run_batch(config(batch, accept_score=max(0.001, score - 1e-3)), models)
    assert all_reports(batch["out"])["alice_letter.pdf"]["verdict"] == "genuine"
    with pytest.raises(ValueError, match="accept_score"):
        config(batch, accept_score=1.0)


def test_identical_documents_are_warned_about(batch: dict[str, Path], verifier_manifest: Path):
    import shutil

    (batch["scans"] / "again").mkdir()
    shutil.copyfile(batch["scans"] / "sub" / "bob_form.png", batch["scans"] / "again" / "bob_form_copy.png")
    shutil.copyfile(batch["scans"] / "unsigned.jpg", batch["scans"] / "unsigned2.jpg")
    (batch["scans"] / "empty1.pdf").write_bytes(b"")
    (batch["scans"] / "empty2.tif").write_bytes(b"")
    s = run_batch(config(batch), DoubleModels(verifier_manifest))
    assert {f.document: f.kind for f in s.failures}.get("empty1.pdf") == "empty_document"
    (w,) = [w for w in s.warnings if "identical contents" in w]
    assert w.startswith("2 set(s)")
    assert "again/bob_form_copy.png = sub/bob_form.png; unsigned.jpg = unsigned2.jpg" in w
    assert "broken.pdf" not in w  # one of a kind, though it failed
    assert "empty" not in w  # two zero-byte files: each failed as empty_document, no cheque presented twice
    assert json.loads((batch["out"] / "summary.json").read_text())["duplicate_documents"] == [
        ["again/bob_form_copy.png", "sub/bob_form.png"], ["unsigned.jpg", "unsigned2.jpg"]]


def test_parallel_workers_give_the_same_reports(batch: dict[str, Path], verifier_manifest: Path, tmp_path: Path):
    models = DoubleModels(verifier_manifest)
    run_batch(config(batch), models)
    one = all_reports(batch["out"])
    s = run_batch(config(batch, out=tmp_path / "par", workers=2), models)
    assert s.workers == 2 and s.processed == 5
    assert all_reports(tmp_path / "par") == one


def test_auto_workers_start_worker_processes_for_a_large_batch_where_they_can(
        batch: dict[str, Path], verifier_manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from sigpipe.errors import ModelError
    from sigpipe.pipeline import runner

    assert [runner.auto_workers(n, c) for n, c in [(10, 2), (63, 16), (64, 2), (64, 1), (500, 16), (500, 4)]] == [
        1, 1, 2, 1, 8, 4]
    models = DoubleModels(verifier_manifest)
    s = run_batch(config(batch, workers=runner.AUTO_WORKERS, threads=2), models)  # 5 documents: in this process
    assert s.workers == 1
    one = all_reports(batch["out"])
    monkeypatch.setattr(runner, "AUTO_WORKERS_FROM", 5)
    s = run_batch(config(batch, out=tmp_path / "par", workers=runner.AUTO_WORKERS, threads=2), models)
    assert s.workers == 2 and all_reports(tmp_path / "par") == one

    spawn = runner.multiprocessing.get_context("spawn")

    class NoShm:  # a container's --ipc=none: no semaphore, so no queue for a pool (runner._start_pool)
        def Lock(self) -> None:  # noqa: N802 - multiprocessing's name
            raise OSError(30, "Read-only file system")

        def __getattr__(self, name: str) -> Any:
            return getattr(spawn, name)

    monkeypatch.setattr(runner.multiprocessing, "get_context", lambda *_: NoShm())
    with pytest.raises(ModelError, match="Read-only file system; their queues need a writable /dev/shm"):
        run_batch(config(batch, out=tmp_path / "two", workers=2, threads=2), models)  # asked for: the run stops
    s = run_batch(config(batch, out=tmp_path / "here", workers=runner.AUTO_WORKERS, threads=2), models)
    assert s.workers == 1 and all_reports(tmp_path / "here") == one  # auto: the night goes on in this process


def test_a_second_stage_reaches_the_workers_and_moves_every_distance(batch: dict[str, Path], verifier_manifest: Path,
                                                                    staged_manifest: Path, tmp_path: Path):
    run_batch(config(batch), DoubleModels(verifier_manifest))
    plain = all_reports(batch["out"])
    run_batch(config(batch, out=tmp_path / "one"), DoubleModels(staged_manifest))
    staged = all_reports(tmp_path / "one")
    s = run_batch(config(batch, out=tmp_path / "par", workers=2), DoubleModels(staged_manifest))
    assert s.workers == 2 and all_reports(tmp_path / "par") == staged
    pairs = [(a, b) for doc in plain for a, b in zip(plain[doc]["signatures"], staged[doc]["signatures"], strict=True)
             if a["distance"] is not None]
    assert len(pairs) >= 2
    for a, b in pairs:  # the same signatures, each distance plus the pair network's term (> 0)
        assert a["bbox"] == b["bbox"] and b["distance"] > a["distance"]


def test_usage_errors(batch: dict[str, Path], verifier_manifest: Path, tmp_path: Path):
    models = DoubleModels(verifier_manifest)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no scans here")
    with pytest.raises(NoDocumentsError, match="no documents found"):
        run_batch(config(batch, scans=tmp_path / "empty"), models)
    batch["claims"].write_text("file,person\na.pdf,alice\n")
    with pytest.raises(ClaimsError, match="header"):
        run_batch(config(batch), models)
    with pytest.raises(ValueError, match="at least 1, or 0 for auto"):
        config(batch, workers=-1)
    if not poppler_available():
        with pytest.raises(MissingDependencyError):
            run_batch(config(batch, claims=None, pdf_backend="pdf2image"), models)
    assert not batch["out"].exists()  # nothing written before the inputs were checked


def test_references_without_a_usable_specimen_make_every_signature_no_reference(batch: dict[str, Path],
                                                                              verifier_manifest: Path, tmp_path: Path):
    (tmp_path / "norefs" / "alice").mkdir(parents=True)
    (tmp_path / "norefs" / "alice" / "a1.png").write_bytes(b"not an image")
    s = run_batch(config(batch, refs=tmp_path / "norefs", claims=None), DoubleModels(verifier_manifest))
    assert s.signature_verdicts["no_reference"] == 3 and s.people == 0
    assert s.verdicts["needs_review"] == 3 and any("no usable references" in w for w in s.warnings)


def test_an_empty_references_folder_stops_the_run_before_anything_is_written(batch: dict[str, Path],
                                                                            verifier_manifest: Path, tmp_path: Path):
    # an unmounted share's mount point (a hidden file of the desktop's at most): the night was all needs_review, exit 0
    (tmp_path / "norefs").mkdir()
    (tmp_path / "norefs" / ".DS_Store").write_bytes(b"\0")
    with pytest.raises(InputError, match="holds no file: nothing to verify the signatures against"):
        run_batch(config(batch, refs=tmp_path / "norefs"), DoubleModels(verifier_manifest))
    assert not batch["out"].exists()
    (tmp_path / "norefs" / "alice").symlink_to(tmp_path / "share" / "alice")  # person folders linked into it
    with pytest.raises(InputError, match="holds no file"):
        run_batch(config(batch, refs=tmp_path / "norefs"), DoubleModels(verifier_manifest))
    # a REFS that cannot be listed is said as such, not as empty (root reads any folder: the error stands in)
    from sigpipe.pipeline import runner

    def unlistable(root: Path, unreadable: Any) -> Any:
        unreadable(PermissionError(13, "Permission denied", str(root)))
        return iter(())

    with pytest.MonkeyPatch.context() as m:
        m.setattr(runner, "visible_files", unlistable)
        with pytest.raises(InputError, match="cannot be read: .Errno 13. Permission denied"):
            run_batch(config(batch, refs=tmp_path / "norefs"), DoubleModels(verifier_manifest))



def test_a_fully_claimed_batch_reads_only_the_claimed_peoples_references(batch: dict[str, Path],
                                                                         verifier_manifest: Path, tmp_path: Path):
    full = run_batch(config(batch, out=tmp_path / "full"), DoubleModels(verifier_manifest))  # some unclaimed
    assert full.people == 2 and any(f.endswith("corrupt.png") for f in full.reference_errors)
    batch["claims"].write_text("document,identity\nalice_letter.pdf,alice\nsub/bob_form.png,alice\n"
                               "sub/deeper/multi.TIF,alice\nunsigned.jpg,alice\nbroken.pdf,Bob\n")
    s = run_batch(config(batch, out=tmp_path / "claimed"), DoubleModels(verifier_manifest))
    assert s.people == 1 and not s.reference_errors  # bob's folder, with its corrupt specimen, was not read
    reports = all_reports(tmp_path / "claimed")
    assert reports["alice_letter.pdf"]["verdict"] == "genuine"
    assert reports["sub/bob_form.png"]["claimed_identity"] == "alice"
    # the hint for a misspelt claim still names the folder that was not read
    assert any("'Bob' has no usable references" in w and "REFS has 'bob'" in w for w in s.warnings)
    # alice's letter, claimed as before, keeps the report of the run that read everybody's references
    again = run_batch(config(batch, out=tmp_path / "full"), DoubleModels(verifier_manifest))
    assert again.processed == 4 and again.people == 1  # the others' claims changed (the broken PDF fails again)


KILL_SCRIPT = """
import sys
from pathlib import Path
from typing import Any
sys.path.insert(0, {tests!r})
from pipeline_doubles import DoubleModels
from sigpipe.pipeline.runner import RunConfig, run_batch
run_batch(RunConfig(scans=Path({scans!r}), refs=Path({refs!r}), out=Path({out!r}), cache=Path({cache!r}),
                    progress=False), DoubleModels(Path({manifest!r}), delay={delay}))
"""


def test_a_killed_run_resumes_with_nothing_lost_or_duplicated(tmp_path: Path, verifier_manifest: Path):
    scans, refs, out, cache = tmp_path / "scans", tmp_path / "refs", tmp_path / "out", tmp_path / "cache"
    for i in range(12):
        save_pdf(scans / f"d{i:02d}.pdf", [page_with([(scribble(i % 3), 100, 100)], (400, 300))])
    save_image(refs / "p0" / "s.png", scribble(0))
    script = KILL_SCRIPT.format(tests=str(Path(__file__).parent), scans=str(scans), refs=str(refs), out=str(out),
                                cache=str(cache), manifest=str(verifier_manifest), delay=0.4)
    env = {**os.environ, "SIGPIPE_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(out.glob("*.pdf.json"))) < 3 and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
    done_before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.pdf.json")}
    assert 3 <= len(done_before) < 12
    assert all(read_report(out / n) is not None for n in done_before)  # every report on disk is complete
    assert not (out / "summary.json").exists()

    s = run_batch(RunConfig(scans=scans, refs=refs, out=out, cache=cache, progress=False),
                  DoubleModels(verifier_manifest))  # the killed run's lock on OUT died with it
    assert s.documents == 12 and s.skipped == len(done_before) and s.processed == 12 - len(done_before)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"d{i:02d}.pdf.json" for i in range(12)] + ["summary.csv", "summary.json", ".sigpipe.lock"])  # no temporaries
    assert all(read_report(p) is not None and read_report(p).ok for p in out.glob("*.pdf.json"))
    assert {n: (out / n).stat().st_mtime_ns for n in done_before} == done_before  # not redone



def test_a_document_that_killed_a_one_process_run_is_read_last_in_a_process_of_its_own(tmp_path: Path,
                                                                                         verifier_manifest: Path):
    """In one process (no --workers, no --timeout) a document that takes the process down (out of memory in a
    container, a crash in a native library) killed the run at the same document every night: the documents after
    it were never read and no summary was written (a container audit). Later runs read it last, in a worker
    process of its own, for as long as it kills its process: it fails alone and the night completes. Two such
    documents, remembered one at a time, killed the runs in turn (a retest)."""
    import json

    import numpy as np

    scans, refs, out, cache = tmp_path / "scans", tmp_path / "refs", tmp_path / "out", tmp_path / "cache"
    for i in range(4):
        save_pdf(scans / f"d{i}.pdf", [page_with([(scribble(i % 3), 100, 100)], (400, 300))])
    save_image(scans / " b_poison.png", np.zeros((300, 400), np.uint8))  # the double "segfaults" on it
    other = np.zeros((300, 400), np.uint8)
    other[0, 0] = 1  # another file (one alike would be a suspect by its contents)
    save_image(scans / "e_poison.png", other)
    save_image(refs / "p0" / "s.png", scribble(0))
    script = KILL_SCRIPT.replace("delay={delay}", "crash_on_black=True").format(
        tests=str(Path(__file__).parent), scans=str(scans), refs=str(refs), out=str(out), cache=str(cache),
        manifest=str(verifier_manifest))

    def killed_run() -> None:
        done = subprocess.run([sys.executable, "-c", script], env={**os.environ, "SIGPIPE_THREADS": "1"},
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 70, done.stderr[-2000:]  # the whole run gone
        assert not (out / "summary.json").exists()

    killed_run()  # at " b_poison.png" (a name that starts with a space), the first
    assert not (out / "d1.pdf.json").exists()
    killed_run()  # it is read last, apart; then e_poison.png kills the run
    assert [n for n, _ in json.loads((out / ".sigpipe-reading").read_text())["suspects"]] == [" b_poison.png"]
    assert (out / "d3.pdf.json").is_file()
    for _ in range(2):  # every night from now on: both apart, both fail alone, the night completes
        s = run_batch(RunConfig(scans=scans, refs=refs, out=out, cache=cache, progress=False),
                      DoubleModels(verifier_manifest, crash_on_black=True))
        assert s.documents == 6 and sorted((f.document, f.kind) for f in s.failures) == [
            (" b_poison.png", "worker_crashed"), ("e_poison.png", "worker_crashed")]
        assert any("2 document(s) killed a process reading them" in w and "e_poison.png" in w for w in s.warnings)
        assert (out / "summary.json").is_file()
    # a suspect renamed is one still (by its contents), and a night with workers remembers its crash too: a one-process
    # run after it reads it apart (both killed the runs again, a retest)
    (scans / "e_poison.png").rename(scans / "f_renamed.png")
    s = run_batch(RunConfig(scans=scans, refs=refs, out=out, cache=cache, progress=False, workers=2),
                  DoubleModels(verifier_manifest, crash_on_black=True))
    assert sorted(f.document for f in s.failures) == [" b_poison.png", "f_renamed.png"]
    s = run_batch(RunConfig(scans=scans, refs=refs, out=out, cache=cache, progress=False),
                  DoubleModels(verifier_manifest, crash_on_black=True))
    assert sorted(f.document for f in s.failures) == [" b_poison.png", "f_renamed.png"]
    again = run_batch(RunConfig(scans=scans, refs=refs, out=out, cache=cache, progress=False),
                      DoubleModels(verifier_manifest))  # read apart without dying: no longer suspects
    assert again.failed == 0 and not (out / ".sigpipe-reading").exists()
    assert not any("killed a process" in w for w in run_batch(
        RunConfig(scans=scans, refs=refs, out=out, cache=cache, progress=False), DoubleModels(verifier_manifest),
    ).warnings)


def test_a_reading_record_that_is_not_a_file_is_no_record(tmp_path: Path, verifier_manifest: Path):
    """A folder named OUT/.sigpipe-reading gave a traceback every run, a FIFO hung it (a retest)."""
    scans, refs, out = tmp_path / "scans", tmp_path / "refs", tmp_path / "out"
    save_pdf(scans / "d.pdf", [page_with([(scribble(0), 100, 100)], (400, 300))])
    save_image(refs / "p0" / "s.png", scribble(0))
    (out / ".sigpipe-reading").mkdir(parents=True)
    s = run_batch(RunConfig(scans=scans, refs=refs, out=out, cache=tmp_path / "c", progress=False),
                  DoubleModels(verifier_manifest))
    assert s.failed == 0 and (out / ".sigpipe-reading").is_dir()
    (out / ".sigpipe-reading").rmdir()
    os.mkfifo(out / ".sigpipe-reading")
    s = run_batch(RunConfig(scans=scans, refs=refs, out=out, cache=tmp_path / "c", progress=False, force=True),
                  DoubleModels(verifier_manifest))
    assert s.failed == 0
    (out / ".sigpipe-reading").unlink(missing_ok=True)  # (the FIFO replaced by the record, removed at the end)
    # nested beyond the JSON reader's depth: a RecursionError every run (a retest)
    (out / ".sigpipe-reading").write_text('{"suspects": ' + "[" * 100000 + "]" * 100000 + "}")
    assert run_batch(RunConfig(scans=scans, refs=refs, out=out, cache=tmp_path / "c", progress=False, force=True),
                     DoubleModels(verifier_manifest)).failed == 0
    victim = tmp_path / "victim.txt"  # a hard link to a file elsewhere is not written through
    victim.write_text("precious")
    (out / ".sigpipe-reading").unlink(missing_ok=True)
    os.link(victim, out / ".sigpipe-reading")
    run_batch(RunConfig(scans=scans, refs=refs, out=out, cache=tmp_path / "c", progress=False, force=True),
              DoubleModels(verifier_manifest))
    assert victim.read_text() == "precious"


def test_a_worker_crash_fails_only_the_culprit(batch: dict[str, Path], verifier_manifest: Path):
    import numpy as np

    save_image(batch["scans"] / "poison.png", np.zeros((300, 400), np.uint8))  # the double "segfaults" on it
    s = run_batch(config(batch, workers=2, claims=None), DoubleModels(verifier_manifest, crash_on_black=True))
    reps = all_reports(batch["out"])
    assert sorted(reps) == sorted([*DOCS, "poison.png"])
    assert reps["poison.png"]["error"]["kind"] == "worker_crashed"
    assert {f.document for f in s.failures} == {"poison.png", "broken.pdf"}
    assert s.verdicts["genuine"] == 3 and s.verdicts["unsigned"] == 1  # no claims: bob is recognised


@pytest.mark.parametrize("workers", [1, 2])
def test_a_document_past_the_timeout_is_stopped_and_the_batch_goes_on(batch: dict[str, Path],
                                                                      verifier_manifest: Path, workers: int):
    import numpy as np

    save_image(batch["scans"] / "poison.png", np.zeros((300, 400), np.uint8))  # the double hangs on it for ever
    t0 = time.monotonic()
    s = run_batch(config(batch, timeout=5.0, workers=workers), DoubleModels(verifier_manifest, hang_on_black=True))
    assert time.monotonic() - t0 < 60
    reps = all_reports(batch["out"])
    assert sorted(reps) == sorted([*DOCS, "poison.png"])  # the documents after it were processed too
    poison = reps["poison.png"]
    assert (poison["status"], poison["error"]["kind"]) == ("error", "timeout") and "5s" in poison["error"]["message"]
    assert {f.document for f in s.failures} == {"poison.png", "broken.pdf"}
    assert s.verdicts["genuine"] == 2 and s.verdicts["unsigned"] == 1 and s.verdicts["needs_review"] == 1
    with pytest.raises(ValueError, match="timeout"):
        config(batch, timeout=0)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_a_timed_out_worker_takes_the_processes_it_started_with_it(batch: dict[str, Path], verifier_manifest: Path,
                                                                     monkeypatch: pytest.MonkeyPatch):
    """A PDF pypdfium2 cannot open goes to poppler, a process of its own: killed with its worker, it lived on under
    init, and one that hangs on a file would hold a core every night after. The worker's private copy of the scan
    waited for the next run."""
    import tempfile

    import numpy as np

    mark = batch["out"].parent / "started"
    monkeypatch.setenv("SIGPIPE_TEST_CHILD_MARK", str(mark))
    tmp = batch["out"].parent / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))  # the workers' too
    monkeypatch.setattr(tempfile, "tempdir", None)
    save_image(batch["scans"] / "poison.png", np.zeros((300, 400), np.uint8))  # the double hangs on it, in a child
    s = run_batch(config(batch, timeout=3.0, workers=1), DoubleModels(verifier_manifest, hang_on_black=True))
    assert [f.document for f in s.failures if f.kind == "timeout"] == ["poison.png"]
    child = int(mark.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.1)
    alive = _alive(child)
    if alive:  # do not leave it behind if the test fails
        os.kill(child, signal.SIGKILL)
    assert not alive
    assert not list(tmp.glob("sigpipe-*"))  # nor the killed worker's copy of the scan, until the next run


def test_with_a_timeout_every_worker_has_started_before_documents_are_timed(verifier_manifest: Path, tmp_path: Path):
    """Otherwise a document queued for a worker still loading its models would spend its time limit waiting."""
    from sigpipe.pipeline.flow import FlowConfig
    from sigpipe.pipeline.ingest import IngestConfig
    from sigpipe.pipeline.runner import _handover, _WorkerInit

    models = DoubleModels(verifier_manifest, start_delay=2.0)  # each worker takes 2 s to start
    det, ver = DoubleModels(verifier_manifest)(1)
    with _handover({}) as gallery:
        init = _WorkerInit(models, 1, gallery, FlowConfig(), IngestConfig(),
                           {"detector": det.ident, "verifier": ver.ident}, 30)
        _pools_start_as_asked(init)


def _pools_start_as_asked(init: Any) -> None:
    from sigpipe.pipeline.runner import _ping, _start_pool

    for all_started, both_ready in ((True, True), (False, False)):
        ex = _start_pool(2, init, all_started=all_started)
        try:
            t0 = time.monotonic()
            pids = {f.result() for f in [ex.submit(_ping, 0.5) for _ in range(2)]}
            # both workers ready: two pings at once, 0.5 s; otherwise one worker answers both in turn (1 s)
            assert (len(pids) == 2 and time.monotonic() - t0 < 0.9) == both_ready
        finally:
            ex.shutdown(wait=True, cancel_futures=True)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_report_that_cannot_be_written_stops_the_run_with_one_clear_error(batch: dict[str, Path],
                                                                            verifier_manifest: Path, workers: int,
                                                                            monkeypatch: pytest.MonkeyPatch):
    import errno

    import sigpipe.pipeline.runner as runner_module
    from sigpipe.pipeline.errors import OutputWriteError

    models = DoubleModels(verifier_manifest)
    real = runner_module.write_report

    def disk_full_at_bob(out: Path, report: object) -> Path:  # the disk fills up mid-run
        if report.document.path == "sub/bob_form.png":  # type: ignore[attr-defined]
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(out, report)  # type: ignore[arg-type]

    monkeypatch.setattr(runner_module, "write_report", disk_full_at_bob)
    with pytest.raises(OutputWriteError, match=r"sub/bob_form\.png.*No space left.*run again to resume"):
        run_batch(config(batch, workers=workers), models)  # the same whatever the workers: the parent writes
    done = sorted(all_reports(batch["out"]))
    assert done == ["alice_letter.pdf", "broken.pdf"] if workers == 1 else "sub/bob_form.png" not in done
    assert all(read_report(p) is not None for p in batch["out"].rglob("*.json"))  # written before it: complete
    assert not list(batch["out"].rglob("*.sigpipe-tmp"))
    monkeypatch.setattr(runner_module, "write_report", real)
    s = run_batch(config(batch), models)
    assert (s.processed, s.skipped, s.documents) == (4, 1, 5)  # resumed: the failed one and the three not done


def test_a_document_claimed_by_several_people(batch: dict[str, Path], verifier_manifest: Path, tmp_path: Path):
    a, b = scribble(SIG_A), scribble(SIG_B)
    scans = tmp_path / "contracts"
    save_pdf(scans / "both.pdf", [page_with([(a, 300, 400)]), page_with([(b, 100, 100)])])
    save_image(scans / "alice_only.png", page_with([(a, 300, 400)]))
    claims = tmp_path / "contracts.csv"
    claims.write_text("document,identity\nboth.pdf,alice\nboth.pdf,bob\nalice_only.png,alice\nalice_only.png,bob\n")
    run_batch(config(batch, scans=scans, claims=claims), DoubleModels(verifier_manifest))
    reps = all_reports(batch["out"])
    for r in reps.values():
        jsonschema.validate(r, load_schema())
    both = reps["both.pdf"]
    assert both["claimed_identity"] == ["alice", "bob"] and both["verdict"] == "genuine"
    assert [(s["page"], s["identity"], s["verdict"]) for s in both["signatures"]] == [(1, "alice", "genuine"),
                                                                                     (2, "bob", "genuine")]
    assert both["references"]["people"] == 2
    only = reps["alice_only.png"]  # bob's signature is missing
    assert [s["identity"] for s in only["signatures"]] == ["alice"] and only["verdict"] == "needs_review"
    # (forged and no_reference verdicts of such documents: tests/pipeline/test_pipeline_flow.py, with controlled
    # embeddings; this random test verifier accepts any signature for anybody)
    # the same people listed in another order: the same claim, nothing redone
    claims.write_text("document,identity\nboth.pdf,bob\nboth.pdf,alice\nalice_only.png,bob\nalice_only.png,alice\n")
    assert run_batch(config(batch, scans=scans, claims=claims), DoubleModels(verifier_manifest)).processed == 0
    claims.write_text("document,identity\nboth.pdf,bob\nboth.pdf,carol\nalice_only.png,alice\nalice_only.png,bob\n")
    assert run_batch(config(batch, scans=scans, claims=claims), DoubleModels(verifier_manifest)).processed == 1
    assert all_reports(batch["out"])["both.pdf"]["claimed_identity"] == ["bob", "carol"]  # the claim changed
    # a joint account's "either to sign": alice's signature alone is enough; a changed mandate is a changed claim
    claims.write_text("document,identity,mandate\nboth.pdf,bob,\nboth.pdf,carol,\nalice_only.png,alice,any\n"
                      "alice_only.png,bob,\n")
    assert run_batch(config(batch, scans=scans, claims=claims), DoubleModels(verifier_manifest)).processed == 1
    only = all_reports(batch["out"])["alice_only.png"]
    assert only["claimed_identity"] == ["alice", "bob"] and only["signers_required"] == 1
    assert only["verdict"] == "genuine"
    jsonschema.validate(only, load_schema())
    assert run_batch(config(batch, scans=scans, claims=claims), DoubleModels(verifier_manifest)).processed == 0


def test_cheques_claimed_by_account_are_verified_against_its_signatories(batch: dict[str, Path],
                                                                        verifier_manifest: Path, tmp_path: Path):
    """Claims by account (a bank's cheques) take the account's people and mandate from the signatory table; a
    cheque on an account the table does not hold fails alone, with the reason, and the batch goes on."""
    scans = tmp_path / "cheques"
    a = scribble(SIG_A)
    for name in ("c1.png", "c2.png", "c3.png"):
        save_image(scans / name, page_with([(a, 300, 400)]))
    claims, cards = tmp_path / "claims.csv", tmp_path / "cards.csv"
    claims.write_text("document,account\nc1.png,0011\nc2.png,22\nc3.png,33\ngone.png,33\n")
    cards.write_text("account,identity,mandate\n0011,alice,any\n0011,bob,\n22,alice,\n22,bob,\n033,bob,\n")
    models = DoubleModels(verifier_manifest)
    s = run_batch(config(batch, scans=scans, claims=claims, signatories=cards), models)
    reps = all_reports(batch["out"])
    for r in reps.values():
        jsonschema.validate(r, load_schema())
    c1, c2, c3 = reps["c1.png"], reps["c2.png"], reps["c3.png"]
    assert (c1["account"], c1["claimed_identity"], c1["signers_required"], c1["verdict"]) == (
        "0011", ["alice", "bob"], 1, "genuine")  # either to sign: alice's signature is enough
    assert (c2["account"], c2["claimed_identity"], c2["verdict"]) == ("22", ["alice", "bob"], "needs_review")
    assert "signers_required" not in c2  # both must sign; bob has not
    assert (c3["status"], c3["account"], c3["error"]["kind"]) == ("error", "33", "unknown_account")
    assert "it has '033'" in c3["error"]["message"]
    assert s.failed == 1 and s.to_dict()["failures"][0]["document"] == "c3.png"
    assert any("drawn on accounts the signatory table does not hold" in w for w in s.warnings)
    assert s.to_dict()["unclaimed_documents"] == []  # c3 is claimed, by an account nobody may sign for
    assert any("drawn on accounts the signatory table does not hold: they fail" in w and w.startswith("1 ")
               for w in s.warnings)  # c3, not gone.png, which is not in SCANS: named as such
    assert s.to_dict()["claims_not_in_scans"] == ["gone.png"]
    assert any("claims name a document that is not in SCANS: gone.png" in w for w in s.warnings)
    rows = list(csv.DictReader(io.StringIO((batch["out"] / "summary.csv").read_text())))
    assert [(r["document"], r["account"], r["signers_required"]) for r in rows] == [
        ("c1.png", "0011", "1"), ("c2.png", "22", ""), ("c3.png", "33", "")]
    # up to date: only the failure is tried again; a changed signature card is a changed claim
    assert run_batch(config(batch, scans=scans, claims=claims, signatories=cards), models).processed == 1
    cards.write_text("account,identity\n0011,alice\n22,alice\n22,bob\n33,bob\n")
    s = run_batch(config(batch, scans=scans, claims=claims, signatories=cards), models)
    assert s.processed == 2 and s.failed == 0  # c1 (now alice alone) and c3 (now on the table)
    reps = all_reports(batch["out"])
    assert reps["c1.png"]["claimed_identity"] == "alice" and reps["c3.png"]["claimed_identity"] == "bob"
    # "any one to sign, two over 100": the cheque's amount picks the rule; without one, the strictest, said
    cards.write_text("account,identity,mandate\n0011,alice,any\n0011,bob,2 over 100\n22,bob,\n33,bob,\n")
    claims.write_text("document,account,amount\nc1.png,0011,50.00\nc2.png,0011,500.00\nc3.png,0011,\n")
    s = run_batch(config(batch, scans=scans, claims=claims, signatories=cards), models)
    reps = all_reports(batch["out"])
    assert [(reps[d]["signers_required"] if "signers_required" in reps[d] else 2, reps[d]["verdict"])
            for d in ("c1.png", "c2.png", "c3.png")] == [(1, "genuine"), (2, "needs_review"), (2, "needs_review")]
    assert any("give no amount (or none that can be used): each is held to its account's strictest rule (c3.png)"
               in w for w in s.warnings)
    # a cheque the claims do not name is not guessed at one-to-many when the run has a signatory table (helper: a
    # second split's claims.csv replaced the first's, and its cheques passed as whoever signed them)
    save_image(scans / "c4.png", page_with([(a, 300, 400)]))
    s = run_batch(config(batch, scans=scans, claims=claims, signatories=cards), models)
    c4 = all_reports(batch["out"])["c4.png"]
    assert (c4["status"], c4["error"]["kind"], s.failed) == ("error", "no_claim", 1)
    assert any("have no claim in" in w and "they fail (error kind no_claim) (c4.png)" in w for w in s.warnings)
    assert s.to_dict()["unclaimed_documents"] == []
    with pytest.raises(ClaimsError, match="signatory table .* is read through claims naming each document's account"):
        run_batch(config(batch, scans=scans, claims=None, signatories=cards), models)


def test_bf16_on_a_cpu_without_it_is_run_with_a_warning(batch: dict[str, Path], verifier_manifest: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture):
    import sigpipe.pipeline.runner as runner

    models = DoubleModels(verifier_manifest)  # the doubles ignore the precision; the warning is the runner's
    for native in (True, False):
        monkeypatch.setattr(runner, "native_bf16", lambda native=native: native)
        caplog.clear()
        with caplog.at_level("WARNING", logger="sigpipe.pipeline.runner"):
            run_batch(config(batch, precision="bf16", force=True), models)
        assert ("bf16 is emulated" in caplog.text) is (not native)
    with pytest.raises(ValueError, match="precision must be one of"):
        config(batch, precision="fp16")


def test_a_second_run_into_the_same_out_is_refused_while_the_first_holds_it(batch: dict[str, Path],
                                                                             verifier_manifest: Path):
    models = DoubleModels(verifier_manifest)
    batch["out"].mkdir(parents=True)
    tmp = batch["out"] / f".a.png.json.x1{TMP_SUFFIX}"  # a file the other run is writing
    tmp.write_text("{")
    with out_lock(batch["out"]):
        with pytest.raises(OutputBusyError, match=r"another sigpipe run \(pid \d+ on .+\) is writing to"):
            run_batch(config(batch), models)
        assert tmp.exists()  # the other run's temporary file is left alone
    s = run_batch(config(batch), models)  # released when the first run ends
    assert s.processed == 5 and not tmp.exists()


def test_reports_of_documents_no_longer_in_scans_are_named_in_the_summary(batch: dict[str, Path],
                                                                          verifier_manifest: Path):
    models = DoubleModels(verifier_manifest)
    run_batch(config(batch, claims=None), models)
    (batch["scans"] / "unsigned.jpg").rename(batch["scans"] / "renamed.jpg")
    (batch["scans"] / "sub" / "bob_form.png").unlink()
    s = run_batch(config(batch, claims=None), models)
    assert s.documents == 4 and "renamed.jpg" in all_reports(batch["out"])
    stale = [w for w in s.warnings if "no longer in SCANS" in w]
    assert len(stale) == 1 and "2 report(s)" in stale[0] and "sub/bob_form.png, unsigned.jpg" in stale[0]
    assert json.loads((batch["out"] / "summary.json").read_text())["warnings"] == list(s.warnings)


def test_references_inside_scans_are_not_processed_as_documents(tmp_path: Path, verifier_manifest: Path):
    scans, out, cache = tmp_path / "scans", tmp_path / "out", tmp_path / "cache"
    refs = scans / "references"
    save_image(scans / "a.png", page_with([(scribble(SIG_A), 100, 100)]))
    save_image(refs / "alice" / "s1.png", scribble(SIG_A))
    save_image(refs / "alice" / "s2.png", scribble(SIG_A + 1))
    models = DoubleModels(verifier_manifest)
    s = run_batch(RunConfig(scans=scans, refs=refs, out=out, cache=cache, progress=False), models)
    assert s.documents == 1 and sorted(all_reports(out)) == ["a.png"]
    assert any("lies inside SCANS: its 2 file(s) are references" in w for w in s.warnings)
    with pytest.raises(NoDocumentsError, match="the 2 under REFS are references"):
        run_batch(RunConfig(scans=refs, refs=refs, out=tmp_path / "out2", cache=cache, progress=False), models)


def test_a_long_document_name_fails_only_that_document(tmp_path: Path, verifier_manifest: Path):
    scans, refs, out = tmp_path / "scans", tmp_path / "refs", tmp_path / "out"
    long_ok, too_long = "a" * 240 + ".png", "b" * 248 + ".png"  # reports: 249 bytes (fits); 257 (over 255)
    for name in (long_ok, too_long, "c.png"):
        save_image(scans / name, page_with([(scribble(SIG_A), 100, 100)]))
    save_image(refs / "alice" / "s.png", scribble(SIG_A))
    s = run_batch(RunConfig(scans=scans, refs=refs, out=out, cache=tmp_path / "cache", progress=False),
                  DoubleModels(verifier_manifest))
    assert s.processed == 3 and sorted(all_reports(out)) == sorted([long_ok, "c.png"])
    assert [(f.document, f.kind) for f in s.failures] == [(too_long, "output_write")]
    assert "longer than the file system allows" in s.failures[0].message


TERM_SCRIPT = """
import signal
import sys
from pathlib import Path
signal.signal(signal.SIGHUP, signal.SIG_DFL)  # as a login session starts it (the tests may run under nohup)
from typing import Any
sys.path.insert(0, {tests!r})
from pipeline_doubles import DoubleModels
import sigpipe.pipeline.runner as runner
from sigpipe.cli import cli
runner.ManifestModels = lambda *a, **k: DoubleModels(Path({manifest!r}), delay={delay})
cli.main(["run", {scans!r}, "--refs", {refs!r}, "--out", {out!r}, "--workers", "2", "--no-progress"])
"""


def _children(pid: int) -> set[int]:
    """The live processes whose parent is ``pid`` (Linux /proc)."""
    kids = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            kids.add(int(stat.parent.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _cli_run_with_two_workers(tmp_path: Path, verifier_manifest: Path) -> tuple[subprocess.Popen, set[int]]:
    """``sigpipe run --workers 2`` on 12 slow pages in a subprocess, once two reports are written: the process and
    its workers."""
    scans, refs, out = tmp_path / "scans", tmp_path / "refs", tmp_path / "out"
    for i in range(12):
        save_image(scans / f"d{i:02d}.png", page_with([(scribble(i % 3), 100, 100)], (400, 300)))
    save_image(refs / "p0" / "s.png", scribble(0))
    script = TERM_SCRIPT.format(tests=str(Path(__file__).parent), scans=str(scans), refs=str(refs), out=str(out),
                                manifest=str(verifier_manifest), delay=0.5)
    env = {**os.environ, "SIGPIPE_THREADS": "2", "SIGPIPE_CACHE": str(tmp_path / "cache")}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(out.glob("*.png.json"))) < 2 and proc.poll() is None:
        time.sleep(0.05)
    return proc, _children(proc.pid)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize(("signum", "code", "said"), [(signal.SIGTERM, 143, "terminated"),
                                                      (signal.SIGHUP, 129, "hung up")])
def test_sigterm_stops_the_run_and_its_workers_and_a_rerun_resumes(tmp_path: Path, verifier_manifest: Path,
                                                                   signum: int, code: int, said: str):
    """SIGTERM: kill, a scheduler's time limit. SIGHUP: the session that started the run ended (it killed the run
    outright, leaving the workers' copy of the references in the temporary folder until the next run)."""
    scans, refs, out = tmp_path / "scans", tmp_path / "refs", tmp_path / "out"
    out.mkdir()
    (out / "summary.json").write_text("{}")  # an earlier run's summary: not this run's
    proc, workers = _cli_run_with_two_workers(tmp_path, verifier_manifest)
    proc.send_signal(signum)  # the parent alone, as kill and schedulers do
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err.decode()[-2000:]
    assert f"{said}; the reports written so far are complete" in err.decode()
    assert "Traceback" not in err.decode()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(map(_alive, workers)):
        time.sleep(0.1)
    assert workers and not any(map(_alive, workers))  # stopped with the run, not left running
    assert not (out / "summary.json").exists()  # no summary of an unfinished run
    done = len(list(out.glob("*.png.json")))
    s = run_batch(RunConfig(scans=scans, refs=refs, out=out, cache=tmp_path / "cache", progress=False),
                  DoubleModels(verifier_manifest))
    assert s.documents == 12 and s.skipped == done and s.processed == 12 - done


def test_an_unusable_reference_cache_is_a_warning_in_the_summary(batch: dict[str, Path], verifier_manifest: Path,
                                                                   tmp_path: Path):
    (tmp_path / "afile").write_text("")
    s = run_batch(config(batch, cache=tmp_path / "afile" / "cache"), DoubleModels(verifier_manifest))
    assert s.processed == 5 and any("cannot use the embedding cache" in w for w in s.warnings)
    assert s.warnings == tuple(json.loads((batch["out"] / "summary.json").read_text())["warnings"])


def test_run_config_takes_str_paths(batch: dict[str, Path], verifier_manifest: Path):
    c = RunConfig(scans=str(batch["scans"]), refs=str(batch["refs"]), out=str(batch["out"]),  # type: ignore[arg-type]
                  claims=str(batch["claims"]), cache=str(batch["cache"]), progress=False)  # type: ignore[arg-type]
    assert isinstance(c.scans, Path) and isinstance(c.out, Path) and isinstance(c.cache, Path)
    assert run_batch(c, DoubleModels(verifier_manifest)).documents == 5


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_workers_do_not_outlive_a_killed_run(tmp_path: Path, verifier_manifest: Path):
    proc, workers = _cli_run_with_two_workers(tmp_path, verifier_manifest)
    proc.kill()  # SIGKILL: no handler runs, as when a scheduler or the out-of-memory killer stops the run
    proc.communicate(timeout=30)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(map(_alive, workers)):
        time.sleep(0.1)
    alive = [p for p in workers if _alive(p)]
    for p in alive:  # do not leave them behind if the test fails
        os.kill(p, signal.SIGKILL)
    assert workers and not alive


def test_a_specimen_filed_under_the_wrong_person_is_named_in_the_summary(batch: dict[str, Path],
                                                                         verifier_manifest: Path, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch,
                                                                         caplog: pytest.LogCaptureFixture):
    import shutil

    from sigpipe.verifier.decide import DecisionRule

    # a manifest whose references check flags any specimen not identical to one of its person's others (the tiny
    # random network puts different scribbles only ~0.01 apart; the minimum distance to the others decides)
    d = tmp_path / "checked"
    d.mkdir()
    shutil.copyfile(verifier_manifest.with_suffix(""), d / verifier_manifest.with_suffix("").name)
    m = json.loads(verifier_manifest.read_text())
    m["decision"] = {**m["decision"], "aggregation": "min", "outlier_margin": -0.4999, "outlier_screen": -0.4999}
    assert DecisionRule.from_dict(m["decision"]).threshold(2) == 0.5
    (d / verifier_manifest.name).write_text(json.dumps(m))
    refs = batch["refs"]
    shutil.copyfile(refs / "alice" / "a1.png", refs / "alice" / "a2.png")
    shutil.copyfile(refs / "bob" / "b1.png", refs / "alice" / "from-bob.png")
    s = run_batch(config(batch), DoubleModels(d / verifier_manifest.name))
    [suspect] = json.loads((batch["out"] / "summary.json").read_text())["suspect_references"]
    assert suspect["person"] == "alice" and suspect["file"] == str(refs / "alice" / "from-bob.png")
    assert suspect["resembles"] == "bob" and suspect["margin"] > -0.4999
    assert s.suspect_references[0].file == suspect["file"]
    assert not any("suspect reference" in w for w in s.warnings)
    # past LOGGED_SUSPECTS, the log says how many more there are instead of naming each
    monkeypatch.setattr("sigpipe.pipeline.runner.LOGGED_SUSPECTS", 0)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sigpipe.pipeline.runner"):
        run_batch(config(batch, out=tmp_path / "quiet"), DoubleModels(d / verifier_manifest.name))
    lines = [r.getMessage() for r in caplog.records if r.name == "sigpipe.pipeline.runner"]
    assert any(m.startswith("1 more suspect references") for m in lines)
    assert not any("does not match the other specimens" in m for m in lines)
    assert not any(m.startswith("references not checked") for m in lines)
    # a verifier without an outlier margin (one of `verifier train`) checks nothing: its run said nothing of it
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sigpipe.pipeline.runner"):
        run_batch(config(batch, out=tmp_path / "unchecked"), DoubleModels(verifier_manifest))
    assert json.loads((tmp_path / "unchecked" / "summary.json").read_text())["suspect_references"] == []
    assert any(r.getMessage().startswith("references not checked for suspects") and "no decision.outlier_margin"
               in r.getMessage() for r in caplog.records)
    # bob's form claimed as alice's: genuine, but only by the specimen of bob's in alice's folder
    batch["claims"].write_text("document,identity\nsub/bob_form.png,alice\n")
    s = run_batch(config(batch, out=tmp_path / "claimed"), DoubleModels(d / verifier_manifest.name))
    form = json.loads((tmp_path / "claimed" / "sub" / "bob_form.png.json").read_text())["signatures"][0]
    assert (form["verdict"], form["nearest_reference"]) == ("genuine", "alice/from-bob.png")
    assert any(w.startswith("1 signature(s) judged genuine are closest to a suspect reference") and
               w.endswith(": sub/bob_form.png") for w in s.warnings)
    # the bundled-style manifest without a margin: no check, an empty list
    run_batch(config(batch, out=tmp_path / "plain"), DoubleModels(verifier_manifest))
    assert json.loads((tmp_path / "plain" / "summary.json").read_text())["suspect_references"] == []


def test_out_inside_scans_and_report_paths_that_clash_fail_nothing_else(tmp_path: Path, verifier_manifest: Path):
    import os

    from sigpipe.pipeline.errors import OutputWriteError

    scans, refs = tmp_path / "scans", tmp_path / "refs"
    sig = page_with([(scribble(SIG_A), 100, 100)])
    for name in ("a.png", "a.png.json/b.png", "summary.json/c.png", "z.png"):
        save_image(scans / name, sig)
    save_image(refs / "alice" / "a1.png", scribble(SIG_A))
    out = scans / "out"  # OUT inside SCANS, as people do
    run = RunConfig(scans=scans, refs=refs, out=out, cache=tmp_path / "cache", progress=False)
    s = run_batch(run, DoubleModels(verifier_manifest))
    failed = {f["document"]: f for f in json.loads((out / "summary.json").read_text())["failures"]}
    # a.png's report is the file OUT/a.png.json, the folder b.png's report needs: one of them fails, alone
    assert set(failed) == {"summary.json/c.png", "a.png.json/b.png"}, failed
    assert all(f["kind"] == "output_write" for f in failed.values())
    assert "where the run's summary goes" in failed["summary.json/c.png"]["message"]
    assert (out / "z.png.json").is_file() and (out / "a.png.json").is_file() and s.documents == 4
    # what lies under OUT (a review sheet) is not a document of the next run
    save_image(out / "review" / "a.png.sig1.png", sig)
    again = run_batch(run, DoubleModels(verifier_manifest))
    assert again.documents == 4 and any("lies inside SCANS" in w for w in again.warnings)
    assert not (out / "review" / "a.png.sig1.png.json").exists() and not (out / "out").exists()
    # a folder where the summary goes, left by an older version: one clear error, no traceback
    (out / "summary.csv").unlink()
    (out / "summary.csv").mkdir()
    (out / "summary.csv" / "x").write_text("")
    with pytest.raises(OutputWriteError, match="move it out of the way"):
        run_batch(run, DoubleModels(verifier_manifest))
    # a name that is not UTF-8, escaped, and a file really named so: one is processed, the other named in a warning
    odd = tmp_path / "odd"
    save_image(odd / os.fsdecode(b"caf\xe9.png"), sig)
    save_image(odd / "caf\\xe9.png", sig)
    s = run_batch(RunConfig(scans=odd, refs=refs, out=tmp_path / "o2", cache=tmp_path / "cache", progress=False),
                  DoubleModels(verifier_manifest))
    assert s.documents == 1 and any("1 file(s) not processed" in w for w in s.warnings)


def test_a_newcomer_s_folders_and_claims_paths(batch: dict[str, Path], verifier_manifest: Path,
                                              caplog: pytest.LogCaptureFixture):
    """A first-week operator: OUT given as SCANS itself was told its scans were 'sigpipe's own'; an earlier night's
    OUT inside SCANS had its review sheets processed as documents; claims written with paths from the working
    folder matched nothing, unexplained."""
    from sigpipe.errors import InputError

    with pytest.raises(InputError, match="OUT is SCANS itself"):
        run_batch(config(batch, out=batch["scans"]), DoubleModels(verifier_manifest))
    earlier = batch["scans"] / "reports"
    run_batch(config(batch, out=earlier), DoubleModels(verifier_manifest))
    save_image(earlier / "review" / "alice_letter.pdf.sig1.png", page_with([(scribble(SIG_A), 50, 50)]))
    s = run_batch(config(batch), DoubleModels(verifier_manifest))  # the default OUT elsewhere: the old one is skipped
    assert s.documents == len(DOCS) and not any(d.startswith("reports/") for d in all_reports(batch["out"]))
    assert any("review sheet(s) of earlier runs" in w for w in s.warnings)
    # but only its review sheets: a folder of real scans may hold a lock too (an OUT given above it, a release that
    # allowed OUT = SCANS), and its scans are documents (a retest: a whole folder of them was skipped)
    save_image(batch["scans"] / "day1" / "cheque.png", page_with([(scribble(SIG_A), 50, 50)]))
    (batch["scans"] / "day1" / ".sigpipe.lock").write_text("")
    s = run_batch(config(batch), DoubleModels(verifier_manifest))
    assert s.documents == len(DOCS) + 1 and "day1/cheque.png" in all_reports(batch["out"])
    claims = batch["scans"].parent / "from-cwd.csv"
    claims.write_text(f"document,identity\n{batch['scans'].name}/alice_letter.pdf,alice\n")
    with caplog.at_level("WARNING", logger="sigpipe.pipeline.runner"):
        run_batch(config(batch, claims=claims, force=True), DoubleModels(verifier_manifest))
    assert "paths in claims are relative to SCANS: 'alice_letter.pdf'?" in caplog.text


def test_without_worker_processes_a_document_that_killed_a_run_fails_and_the_night_completes(
        tmp_path: Path, verifier_manifest: Path, monkeypatch: pytest.MonkeyPatch):
    """A container with no usable /dev/shm: the document to read apart stopped the whole one-process run, exit 2, no
    summary (a retest). It fails alone, and stays a suspect for the next night."""
    import json

    from sigpipe.pipeline import runner

    scans, refs, out = tmp_path / "scans", tmp_path / "refs", tmp_path / "out"
    for name in ("a.pdf", "b.pdf"):
        save_pdf(scans / name, [page_with([(scribble(0), 100, 100)], (400, 300))])
    save_image(refs / "p0" / "s.png", scribble(0))
    out.mkdir()
    (out / ".sigpipe-reading").write_text(json.dumps({"reading": ["b.pdf", ""], "suspects": [["gone.pdf", ""]]}))

    def no_shm(*_: Any, **__: Any) -> None:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(runner, "ProcessPoolExecutor", no_shm)
    s = run_batch(RunConfig(scans=scans, refs=refs, out=out, cache=tmp_path / "c", progress=False),
                  DoubleModels(verifier_manifest))
    assert [(f.document, f.kind) for f in s.failures] == [("b.pdf", "worker_crashed")]
    assert "/dev/shm" in s.failures[0].message and "--workers 1" not in s.failures[0].message
    assert (out / "summary.json").is_file()
    # kept: gone.pdf too, absent tonight (another SCANS into the same OUT forgot it, and the next night was killed)
    assert json.loads((out / ".sigpipe-reading").read_text()) == {"reading": None,
                                                                 "suspects": [["gone.pdf", ""], ["b.pdf", ""]]}


def test_the_suspects_record_keeps_what_it_can_read_and_is_written_at_once(tmp_path: Path):
    """A retest: one entry of the wrong shape, or a record of the day's first form (names alone), lost the whole
    record and the killer killed the run again; a worker's crash was kept in memory only, lost when the run was then
    stopped; a folder planted at the fixed temporary name turned the record off."""
    import json

    from sigpipe.pipeline.runner import READING_FILE, _Suspects, _Task

    (tmp_path / READING_FILE).write_text(json.dumps({"reading": "old_form.pdf", "suspects": [
        ["a.pdf", "1" * 64], ["short"], ["x", "y", "z"], [1, 2], "plain.pdf", ["n.pdf", None]]}))
    record = _Suspects.load(tmp_path)
    assert record.entries == [("a.pdf", "1" * 64), ("plain.pdf", ""), ("n.pdf", ""), ("old_form.pdf", "")]
    renamed = _Task("renamed.pdf", str(tmp_path / "renamed.pdf"), None, "1" * 64, {})
    assert record.suspected(renamed) and not record.suspected(_Task("b.pdf", "", None, "2" * 64, {}))
    (tmp_path / f"{READING_FILE}.sigpipe-tmp").mkdir()  # planted where a fixed temporary name would go
    crash = _Task("c.pdf", str(tmp_path / "c.pdf"), None, "3" * 64, {})
    record.crashed(crash)  # written at once
    assert ["c.pdf", "3" * 64] in json.loads((tmp_path / READING_FILE).read_text())["suspects"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [READING_FILE, f"{READING_FILE}.sigpipe-tmp"]


def test_paths_that_are_not_utf8_reach_no_json_as_lone_surrogates(batch: dict[str, Path], verifier_manifest: Path,
                                                                   tmp_path: Path):
    # a claims file and REFS in folders named in Latin-1 (an old share): their paths go into warnings, messages and
    # reference errors. Written as "\udce9", PostgreSQL's jsonb refused the whole summary
    latin = Path(os.fsdecode(bytes(tmp_path) + b"/d\xe9"))
    latin.mkdir()
    claims = latin / "claims.csv"
    claims.write_bytes(batch["claims"].read_bytes())
    refs = latin / "refs"
    batch["refs"].rename(refs)
    s = run_batch(config(batch, claims=claims, refs=refs), DoubleModels(verifier_manifest))
    assert s.warnings and s.failed
    for f in [batch["out"] / "summary.json", *batch["out"].rglob("*.json")]:
        text = f.read_text(encoding="ascii")  # ensure_ascii: escapes only
        assert "\\ud" not in text.lower(), f
        json.dumps(json.loads(text)).encode("utf-8")  # every string valid Unicode
    summary = json.loads((batch["out"] / "summary.json").read_text())
    assert any("d\\xe9" in e["file"] for e in summary["reference_errors"])  # as names are written everywhere
    assert any("d\\xe9" in w for w in summary["warnings"])
