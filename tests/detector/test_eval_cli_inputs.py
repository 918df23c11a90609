"""``sigpipe detector eval``: bad arguments and dataset yamls give one line on stderr and exit 2, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from sigpipe.cli import cli


@pytest.mark.parametrize("body, message", [
    ("foo: [\n", "not valid YAML at line 2"),
    ("[1, 2]\n", "must be a mapping"),
    ("", "got an empty file"),
])
def test_eval_refuses_a_yaml_that_is_not_a_dataset_mapping(tmp_path: Path, body: str, message: str) -> None:
    data = tmp_path / "data.yaml"
    data.write_text(body)
    res = CliRunner().invoke(cli, ["detector", "eval", "--data", str(data)])
    assert res.exit_code == 2, res.output
    assert isinstance(res.exception, SystemExit)  # a click error, not an escaped exception
    assert message in res.stderr and len(res.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("option, value", [
    ("--batch", "0"), ("--conf", "2"), ("--conf", "-0.1"), ("--iou", "1.5"), ("--imgsz", "0"), ("--imgsz", "100"),
    ("--imgsz", "-32"),
])
def test_eval_refuses_out_of_range_options(tmp_path: Path, option: str, value: str) -> None:
    data = tmp_path / "data.yaml"
    data.write_text("path: .\nval: images\nnames:\n  0: signature\n")
    res = CliRunner().invoke(cli, ["detector", "eval", "--data", str(data), option, value])
    assert res.exit_code == 2, res.output
    assert option in res.stderr and isinstance(res.exception, SystemExit)
