"""``sigpipe datasets import|synth-signatures|synth-documents`` on bad input: exit 2 with one line on stderr (or
click's usage error), no traceback, nothing written."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner, Result

from sigpipe.cli import cli


def input_error(res: Result, message: str) -> None:
    assert res.exit_code == 2, res.output
    assert isinstance(res.exception, SystemExit)
    assert message in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    (root / "w1" / "genuine").mkdir(parents=True)
    img = np.full((60, 160), 255, np.uint8)
    cv2.line(img, (10, 30), (150, 40), 0, 3)
    cv2.imwrite(str(root / "w1" / "genuine" / "01.png"), img)
    return root


@pytest.mark.parametrize("under", [True, False])
def test_commands_refuse_an_output_under_or_at_a_file(corpus: Path, tmp_path: Path, under: bool) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    out = afile / "out" if under else afile
    runner = CliRunner()
    for option, res in (
        ("--out", runner.invoke(cli, ["datasets", "synth-signatures", "--writers", "1", "--per-writer", "1",
                                      "--forgeries", "0", "--out", str(out)])),
        ("--out", runner.invoke(cli, ["datasets", "synth-documents", "--signatures", str(corpus), "--pages", "1",
                                      "--kinds", "cheque", "--formats", "png", "--out", str(out)])),
        ("DST", runner.invoke(cli, ["datasets", "import", "sign_data", str(corpus), str(out)])),
    ):
        input_error(res, f"cannot create {option} {out}: {afile} is a file, not a folder")
    assert afile.read_text() == "x"


@pytest.mark.parametrize("command", [
    ["synth-signatures", "--writers", "1", "--per-writer", "1", "--forgeries", "0"],
    ["synth-documents", "--pages", "1", "--kinds", "cheque", "--formats", "png"],
])
def test_synth_commands_refuse_a_negative_seed(corpus: Path, tmp_path: Path, command: list[str]) -> None:
    if command[0] == "synth-documents":
        command = [*command, "--signatures", str(corpus)]
    res = CliRunner().invoke(cli, ["datasets", *command, "--seed", "-1", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "--seed" in res.stderr and isinstance(res.exception, SystemExit), res.output
    assert not (tmp_path / "o").exists()
