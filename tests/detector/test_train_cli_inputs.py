"""``sigpipe detector train|export`` on bad input: one line on stderr (or click's usage error) and exit 2, before
Ultralytics loads a model or reads the dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner, Result

from sigpipe.cli import cli


def input_error(res: Result, message: str) -> None:
    assert res.exit_code == 2, res.output
    assert isinstance(res.exception, SystemExit)  # a click error, not an escaped exception
    assert message in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr


def train(tiny_dataset: Path, tmp_path: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["detector", "train", "--data", str(tiny_dataset), "--out", str(tmp_path / "o"),
                                    "--epochs", "1", "--batch", "2", "--imgsz", "64", "--threads", "1", *args])


@pytest.mark.parametrize("body, message", [
    ("foo: [\n", "not valid YAML at line 2"),
    ("[1, 2]\n", "must be a mapping"),
    ("", "got an empty file"),
    ("names:\n  0: signature\n", "needs train and val image folders"),
    ("train: nowhere\nval: nowhere\nnames:\n  0: signature\n", "is not an image folder"),
    ("train: a\nval: b\n", "names no classes"),
    ("path: 5\ntrain: a\nval: b\nnames:\n  0: signature\n", "'path' must be a folder path"),
    ("train: .\nval: .\nnames:\n  0: signature\n", "holds no images"),
])
def test_train_refuses_a_yaml_that_is_not_a_dataset(tmp_path: Path, body: str, message: str) -> None:
    data = tmp_path / "data.yaml"
    data.write_text(body)
    input_error(train(data, tmp_path), message)


@pytest.mark.parametrize("option, value", [
    ("--imgsz", "100"), ("--imgsz", "0"), ("--epochs", "0"), ("--epochs", "-1"), ("--batch", "0"), ("--batch", "-2"),
    ("--lr0", "-1"), ("--warmup-epochs", "-1"), ("--close-mosaic", "-1"), ("--threads", "-1"), ("--freeze", "-1"),
])
def test_train_refuses_out_of_range_options(tiny_dataset: Path, tmp_path: Path, option: str, value: str) -> None:
    res = train(tiny_dataset, tmp_path, option, value)
    assert res.exit_code == 2, res.output
    assert option in res.stderr and isinstance(res.exception, SystemExit)


def test_train_refuses_a_model_that_is_not_a_model(tiny_dataset: Path, tmp_path: Path) -> None:
    text = tmp_path / "text.pt"
    text.write_text("not weights")
    input_error(train(tiny_dataset, tmp_path, "--model", str(text)), "is not a PyTorch checkpoint")
    other = tmp_path / "other.pt"  # a PyTorch file, but no YOLO model (e.g. the verifier's weights)
    torch.save({"w": torch.zeros(2)}, other)
    input_error(train(tiny_dataset, tmp_path, "--model", str(other)), "is not an Ultralytics YOLO checkpoint")
    png = tmp_path / "page.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n")
    input_error(train(tiny_dataset, tmp_path, "--model", str(png)), "neither an architecture yaml nor a .pt")
    arch = tmp_path / "arch.yaml"
    arch.write_text("nc: 1\n")
    input_error(train(tiny_dataset, tmp_path, "--model", str(arch)), "is not a model architecture yaml")


def test_train_and_export_refuse_an_out_under_a_file(tiny_dataset: Path, manifest_path: Path, tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    res = CliRunner().invoke(cli, ["detector", "train", "--data", str(tiny_dataset), "--out", str(afile / "o")])
    input_error(res, f"cannot create --out {afile / 'o'}: {afile} is a file")
    res = CliRunner().invoke(cli, ["detector", "export", "--weights", str(manifest_path), "--out", str(afile / "x")])
    input_error(res, f"cannot create --out {afile / 'x'}: {afile} is a file")


def test_export_input_errors_exit_2(manifest_path: Path, tmp_path: Path) -> None:
    def export(*args: str) -> Result:
        return CliRunner().invoke(cli, ["detector", "export", "--out", str(tmp_path / "x"), *args])

    for imgsz in ("100", "0"):
        res = export("--weights", str(manifest_path), "--imgsz", imgsz)
        assert res.exit_code == 2 and "--imgsz" in res.stderr, res.output
    res = export("--weights", str(manifest_path), "--format", "tflite")
    assert res.exit_code == 2 and "--format" in res.stderr, res.output
    bad = tmp_path / "bad.json"
    bad.write_text("hello")
    input_error(export("--weights", str(bad)), f"invalid model manifest {bad}")
    text = tmp_path / "text.pt"
    text.write_text("not weights")
    input_error(export("--weights", str(text)), "is not a PyTorch checkpoint")
    other = tmp_path / "verifier.pt"
    torch.save({"w": torch.zeros(2)}, other)
    (tmp_path / "verifier.pt.json").write_text(json.dumps({"name": "v", "tag": "t", "file": "verifier.pt",
                                                           "sha256": "0", "architecture": "resnet-s"}))
    input_error(export("--weights", str(tmp_path / "verifier.pt.json")), "is not an Ultralytics YOLO checkpoint")
    assert not (tmp_path / "x").exists()


def test_resume_refuses_what_is_not_an_interrupted_run(tiny_dataset: Path, manifest_path: Path,
                                                       tmp_path: Path) -> None:
    # a shipped model keeps no training state: Ultralytics would fall back to its own dataset (a download)
    shipped = manifest_path.with_name(manifest_path.name[: -len(".json")])
    input_error(train(tiny_dataset, tmp_path, "--resume", "--model", str(shipped)), "not the last.pt of an interrupted")
    input_error(train(tiny_dataset, tmp_path, "--resume"), "--resume needs --model")
    ckpt = torch.load(shipped, map_location="cpu", weights_only=False)
    gone = tmp_path / "last.pt"  # an interrupted run whose dataset yaml has since been removed
    torch.save({**ckpt, "epoch": 3, "optimizer": {}, "train_args": {"data": str(tmp_path / "removed.yaml")}}, gone)
    input_error(train(tiny_dataset, tmp_path, "--resume", "--model", str(gone)), "its dataset")
