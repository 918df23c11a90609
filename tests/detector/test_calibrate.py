"""``sigpipe detector calibrate``: a detector trained with ``detector train`` gets a calibrated confidence and a
manifest, which ``detector export`` and ``--detector-weights`` take (the round trip had no CLI step for it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from sigpipe.cli import cli
from sigpipe.detector import SignatureDetector
from sigpipe.detector.calibrate import CONF_GRID
from sigpipe.detector.train import DetectorTrainConfig, train_detector
from sigpipe.weights import bundled_manifest


@pytest.fixture(scope="module")
def trained(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    return train_detector(DetectorTrainConfig(data=tiny_dataset, epochs=1, imgsz=64, batch=2, out=out, threads=2,
                                              cache=False))


def test_calibrate_writes_the_manifest_that_export_and_the_detector_take(trained: Path, tiny_dataset: Path):
    res = CliRunner().invoke(cli, ["detector", "calibrate", str(trained), "--data", str(tiny_dataset), "--tag",
                                   "t1", "--notes", "1 epoch"])
    assert res.exit_code == 0, res.output
    manifest = Path(res.stdout.strip().splitlines()[-1])
    assert manifest == trained.with_name(trained.name + ".json")
    m = json.loads(manifest.read_text())
    assert m["conf"] in CONF_GRID and m["imgsz"] == 64 and m["calibration"]["pages"] == 4  # the 4 val pages
    assert m["training"]["notes"] == "1 epoch" and "settings_sha256" in m
    # what it was trained on and from, from its checkpoint: not the calibration pages, which may be others
    import yaml

    assert m["calibration"]["data"] == str(tiny_dataset) and m["training"]["started_from"] == "yolov8n.yaml"
    assert yaml.safe_load(Path(m["training"]["data"]).read_text())["path"] == str(tiny_dataset.parent.resolve())
    det = SignatureDetector.from_manifest(manifest)
    assert det.ident.startswith("yolov8-signature.t1 ") and det.conf == m["conf"]
    # the bundled detector's looks at patterned paper are kept (a retrained detector missed security cheques)
    assert m["second_look"] == bundled_manifest("detector")["second_look"]
    assert det.second_look is not None and det.second_look.stretched_first_share == 0.2
    res = CliRunner().invoke(cli, ["detector", "export", "--weights", str(manifest), "--format", "onnx"])
    assert res.exit_code == 0, res.output
    exported = json.loads(manifest.read_text())
    assert "onnx" in exported["backends"] and exported["conf"] == m["conf"]
    assert SignatureDetector.from_manifest(manifest, backend="onnx").conf == m["conf"]


def test_calibrate_refuses_what_it_cannot_calibrate_on(trained: Path, tiny_dataset: Path, tmp_path: Path):
    res = CliRunner().invoke(cli, ["detector", "calibrate", str(trained), "--data", str(tiny_dataset), "--tag", " "])
    assert res.exit_code == 2 and "--tag must not be empty" in res.output
    blank = tmp_path / "blank"
    for split in ("train", "val"):
        (blank / "labels" / split).mkdir(parents=True)
        (blank / "images" / split).mkdir(parents=True)
        for image in (tiny_dataset.parent / "images" / split).iterdir():
            (blank / "images" / split / image.name).write_bytes(image.read_bytes())
            (blank / "labels" / split / f"{image.stem}.txt").write_text("")  # pages without signatures
    (blank / "data.yaml").write_text(f"path: {blank}\ntrain: images/train\nval: images/val\nnames:\n  0: signature\n")
    res = CliRunner().invoke(cli, ["detector", "calibrate", str(trained), "--data", str(blank / "data.yaml"),
                                   "--tag", "t2"])
    assert res.exit_code == 2 and "no labelled signature to calibrate on" in res.output
    assert not trained.with_name(trained.name + ".json").exists() or json.loads(
        trained.with_name(trained.name + ".json").read_text())["tag"] != "t2"


def test_calibrate_needs_no_training_pages(trained: Path, tiny_dataset: Path, tmp_path: Path):
    """A bank calibrating a detector trained elsewhere on its own labelled pages has no train split to give."""
    root = tiny_dataset.parent
    only_val = tmp_path / "val.yaml"
    only_val.write_text(f"path: {root}\nval: images/val\nnames:\n  0: signature\n")
    res = CliRunner().invoke(cli, ["detector", "calibrate", str(trained), "--data", str(only_val), "--tag", "t3",
                                   "--no-second-look"])
    assert res.exit_code == 0, res.output
    m = json.loads(trained.with_name(trained.name + ".json").read_text())
    assert m["tag"] == "t3" and m["calibration"]["pages"] == 4 and "second_look" not in m
    no_val = tmp_path / "train.yaml"
    no_val.write_text(f"path: {root}\ntrain: images/train\nnames:\n  0: signature\n")
    res = CliRunner().invoke(cli, ["detector", "calibrate", str(trained), "--data", str(no_val), "--tag", "t4"])
    assert res.exit_code == 2 and "needs val image folders" in res.output
