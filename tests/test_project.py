"""Project-level contracts: the README's set-up commands, CI, and the package layout."""

import re
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

import sigpipe
from sigpipe.cli import cli

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, re.S)]


def test_ci_runs_exactly_the_readme_test_command():
    cmds = readme_commands()
    test_cmd = next(c for c in cmds if "pytest" in c)
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_cmd in ci.splitlines()


def test_readme_main_job_uses_the_bundled_example():
    main = readme_commands()[0]
    assert "sigpipe run examples/scans --refs examples/refs" in main
    for path in re.findall(r"(examples/\S+)", main):
        assert (ROOT / path).exists(), path


def test_cli_lists_the_design_commands():
    r = CliRunner().invoke(cli, ["--help"])
    assert r.exit_code == 0
    for name in ("run", "verify", "verifier", "detector", "datasets"):
        assert re.search(rf"^\s+{name}\s", r.output, re.M), name
    assert CliRunner().invoke(cli, ["--version"]).output.strip().endswith(sigpipe.__version__)


def test_the_package_is_mypy_clean(tmp_path):
    """DESIGN.md: typed code, a mypy-clean public API. Checks the whole package with the settings in pyproject.toml
    (about 25 s without a cache)."""
    r = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache"), "--no-error-summary"],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr


def test_readme_names_every_key_of_summary_json():
    """A back office's importer is written from the README: every key `summary.json` has is named there (an audit
    found `people`, `workers`, `pages_processed` and `schema_version` in the file and nowhere in the README)."""
    from sigpipe.pipeline.report import Failure, RunSummary
    from sigpipe.verifier.refcheck import SuspectSpecimen

    text = (ROOT / "README.md").read_text()
    part = text[text.index("- `OUT/summary.json`"):text.index("- `OUT/summary.csv`")]
    named = set(re.findall(r"`([a-z_]+)`", part)) | set(re.findall(r'"([a-z_]+)"', part))
    summary = RunSummary.from_reports(
        [], processed=0, pages_processed=0, elapsed_s=0.0, reference_errors={"r.png": "unreadable"}, warnings=[],
        people=0, workers=1, models={}, unread=[Failure("x/", "unreadable_folder", "cannot read")],
        suspect_references=[SuspectSpecimen(person="p", file="f.png", margin=0.1, resembles="q")],
        damaged_signature_cards={"1": "m"}, unusable_amounts={"d.pdf": "m"},
    ).to_dict()
    keys = set(summary)
    for value in summary.values():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            keys |= set(value[0])
    assert keys - named == set()


def test_the_error_kinds_are_one_closed_list_in_the_code_the_schema_and_the_readme():
    """A back office switches on `error.kind`: README listed some and ended in "...", and the schema took any string
    (a consumer audit found `internal`, `out_of_memory`, `model`, `missing_dependency`, `bad_input` unlisted)."""
    import json

    from sigpipe.errors import SigpipeError
    from sigpipe.pipeline.errors import DOCUMENT_ERROR_KINDS

    def subclasses(c: type) -> list[type]:
        return [s for d in c.__subclasses__() for s in (d, *subclasses(d))]

    # they stop the run (exit 2), or belong to `x9 split` and `review` (its NoReportsError keeps the base kind)
    run_level = {"bad_claims", "no_documents", "output_busy", "temporary_folder", "bad_x9_file", "error"}
    import sigpipe.pipeline.runner  # noqa: F401 - its errors too
    import sigpipe.pipeline.x9  # noqa: F401

    raised = {c.kind for c in subclasses(SigpipeError) if c.__module__.startswith("sigpipe.")} - run_level
    source = "\n".join(p.read_text() for p in (ROOT / "sigpipe" / "pipeline").glob("*.py"))
    # the kinds the runner and the flow write as literals (the rest are the errors' own)
    written = {"internal", "out_of_memory", "temporary_copy", "unreadable_folder", "file_too_large"}
    assert all(f'"{k}"' in source for k in written)
    assert raised | written <= set(DOCUMENT_ERROR_KINDS)
    schema = json.loads((ROOT / "sigpipe" / "pipeline" / "report.schema.json").read_text())
    enum = schema["properties"]["error"]["oneOf"][1]["properties"]["kind"]["enum"]
    assert enum == [k for k in DOCUMENT_ERROR_KINDS if k not in ("output_write", "unreadable_folder")]
    text = (ROOT / "README.md").read_text()
    part = text[text.index("`error.kind` (`corrupt_pdf`"):text.index("### Report format")]
    assert set(DOCUMENT_ERROR_KINDS) <= set(re.findall(r"`([a-z_]+)`", part)) and "...)" not in part
