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
