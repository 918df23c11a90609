"""The training layer: one tiny epoch through the real Ultralytics trainer, checking what it was asked to do."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from sigpipe.detector.train import DetectorTrainConfig, train_detector
from sigpipe.errors import InputError


def run_args(best: Path) -> dict:
    """The settings the trainer ended up using (the checkpoint's, after its optimizer choice; args.yaml is written
    before it)."""
    return torch.load(best, map_location="cpu", weights_only=False)["train_args"]


def test_lr0_warmup_are_applied_and_area_trains_on_the_shrunk_copy(tiny_dataset: Path, tmp_path: Path) -> None:
    cfg = DetectorTrainConfig(data=tiny_dataset, epochs=1, imgsz=64, batch=2, out=tmp_path, name="t", threads=2,
                              cache=False, lr0=0.0005, warmup_epochs=0, downscale="area")
    best = train_detector(cfg)
    assert best.is_file()
    args = run_args(best)
    # Ultralytics' optimizer="auto" would have ignored lr0 (AdamW at 0.002): the rate asked for must be the one used
    assert (args["optimizer"], args["lr0"], args["warmup_epochs"]) == ("AdamW", 0.0005, 0)
    assert Path(args["data"]) == (tmp_path / "t-data-area64" / "data.yaml").resolve()
    assert len(list((tmp_path / "t-data-area64" / "val" / "images").glob("*.png"))) == 4


def test_default_optimizer_is_ultralytics_choice(tiny_dataset: Path, tmp_path: Path) -> None:
    best = train_detector(DetectorTrainConfig(data=tiny_dataset, epochs=1, imgsz=64, batch=2, out=tmp_path,
                                              threads=2, cache=False))
    args = run_args(best)
    assert args["optimizer"] == "AdamW" and args["lr0"] == pytest.approx(0.002)  # auto, for one class
    assert args["warmup_epochs"] == 3  # Ultralytics' default when not asked otherwise
    # Ultralytics gets a copy of the yaml whose path is absolute (resolved as the checks resolve it)
    recorded = yaml.safe_load(Path(args["data"]).read_text())
    assert recorded["path"] == str(tiny_dataset.parent.resolve()) and recorded["val"] == "images/val"


def test_a_relative_dataset_path_is_the_yaml_s_whatever_the_working_directory(
        tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ultralytics resolves ``path: .`` against the working directory: run from elsewhere it read other pages."""
    import json

    from sigpipe.detector.evaluate import evaluate
    from sigpipe.detector.train import resolved_dataset

    relative = tiny_dataset.with_name("relative.yaml")
    relative.write_text(tiny_dataset.read_text().replace(f"path: {tiny_dataset.parent}", "path: ."))
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "images" / "val").mkdir(parents=True)  # a decoy the working directory would offer
    monkeypatch.chdir(elsewhere)
    copy = resolved_dataset(relative, tmp_path / "resolved")
    assert yaml.safe_load(copy.read_text())["path"] == str(tiny_dataset.parent.resolve())
    best = train_detector(DetectorTrainConfig(data=relative, epochs=1, imgsz=64, batch=2, out=tmp_path / "run",
                                              threads=2, cache=False))
    figures = evaluate(relative, best, split="val", imgsz=64)
    assert figures["images"] == 4, json.dumps(figures)


def test_a_dataset_yaml_without_a_path_is_read_from_its_own_folder(
        tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without ``path:`` the splits are relative to the yaml's folder; given as a relative --data it was joined to
    itself (``bank/pages/bank/pages/images/train``) and refused."""
    from sigpipe.detector.train import split_dirs

    bare = tiny_dataset.with_name("bare.yaml")
    bare.write_text(tiny_dataset.read_text().replace(f"path: {tiny_dataset.parent}\n", ""))
    monkeypatch.chdir(tiny_dataset.parent.parent)
    _, dirs = split_dirs(Path(tiny_dataset.parent.name) / "bare.yaml")
    assert dirs["val"] == [(tiny_dataset.parent / "images" / "val").resolve()]


def test_labels_ultralytics_would_drop_or_misread_are_refused_by_line(tiny_dataset: Path, tmp_path: Path) -> None:
    """A bad line makes Ultralytics skip its page whole (its signatures lost), and a class other than 0 is trained
    as a signature (single_cls): both unsaid, so training and evaluation refuse them, each named by file and line.
    A missing or empty label file is a page without signatures."""
    import shutil

    from sigpipe.detector.train import split_dirs

    root = tmp_path / "bad"
    shutil.copytree(tiny_dataset.parent, root)
    data = root / "data.yaml"
    data.write_text(tiny_dataset.read_text().replace(str(tiny_dataset.parent), str(root)))
    labels = root / "labels" / "val"
    (labels / "0.txt").write_text("")  # a blank page
    (labels / "1.txt").unlink()  # a page without a label file: a blank page too
    assert split_dirs(data)[1]["val"] == [(root / "images" / "val").resolve()]
    (labels / "2.txt").write_text("0 0.5 0.5 0.2 0.1\n1 0.2 0.2 0.1 0.1\n")  # a stamp labelled class 1
    (labels / "3.txt").write_text("0 0.5 0.5 0.2\n0 120 80 40 20\n")  # a field short; pixels, not fractions
    with pytest.raises(InputError) as err:
        split_dirs(data)
    text = str(err.value)
    assert text.startswith(f"{data}: 3 label line(s) Ultralytics would drop or misread")
    assert f"{labels / '2.txt'}:2: class 1, but the detector has one class" in text
    assert f"{labels / '3.txt'}:1: 4 fields, expected 5" in text
    assert f"{labels / '3.txt'}:2: coordinates outside 0..1" in text
    with pytest.raises(InputError, match="3 label line"):  # training refuses before Ultralytics reads a page
        train_detector(DetectorTrainConfig(data=data, epochs=1, imgsz=64, batch=2, out=tmp_path / "run"))
    assert split_dirs(data, labels=("train", "test"))  # a command that does not read val is not held by its labels
    (labels / "2.txt").write_text("0 0.5 0.5 0.2 0.1\n0 0.1 0.1 0.3 0.1 0.3 0.2 0.1 0.2\n")  # a box and a polygon
    (labels / "3.txt").write_text("0 0.5 0.5 0.2 0.1\n")
    with pytest.raises(InputError, match=f"1 label line.*{labels / '2.txt'}: mixes boxes and polygons"):
        split_dirs(data)
    (labels / "2.txt").write_text("1 0.5 0.5 0.2 0.1\n")
    data.write_text(data.read_text().replace("train: images/train", "train: images/val"))  # one folder, two splits
    with pytest.raises(InputError, match=r"1 label line\(s\)"):  # named once, not once a split
        split_dirs(data)
    (labels / "2.txt").write_text("0 0.5 0.5 0.2 0.1\n")
    data.write_text(data.read_text() + "  1: stamp\n")
    with pytest.raises(InputError, match="names 2 classes"):
        split_dirs(data)


def test_a_dataset_without_labels_is_refused(tiny_dataset: Path, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "nolabels"
    shutil.copytree(tiny_dataset.parent, root)
    shutil.rmtree(root / "labels" / "val")
    data = root / "data.yaml"
    data.write_text(tiny_dataset.read_text().replace(str(tiny_dataset.parent), str(root)))
    with pytest.raises(InputError, match="no label file for any image of the val folder"):
        train_detector(DetectorTrainConfig(data=data, epochs=1, imgsz=64, batch=2, out=tmp_path / "run"))


def test_refuses_downloads_and_missing_data(tiny_dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="download"):
        train_detector(DetectorTrainConfig(data=tiny_dataset, model="yolov8n.pt", out=tmp_path))
    with pytest.raises(InputError, match="not found"):
        train_detector(DetectorTrainConfig(data=tmp_path / "none.yaml", out=tmp_path))
    with pytest.raises(InputError, match="no such architecture"):  # not Ultralytics' FileNotFoundError
        train_detector(DetectorTrainConfig(data=tiny_dataset, model="yolov8z.yaml", out=tmp_path))


def test_bf16_training_steps_run_in_bf16_on_the_cpu(tiny_dataset: Path, tmp_path: Path,
                                                     conv_dtypes: list[torch.dtype]) -> None:
    import ultralytics.engine.trainer

    original = ultralytics.engine.trainer.autocast
    best = train_detector(DetectorTrainConfig(data=tiny_dataset, epochs=1, imgsz=64, batch=2, out=tmp_path,
                                              threads=2, cache=False, precision="bf16"))
    # every training step in bf16: Ultralytics' own autocast(False, "cpu") would have switched an outer one off
    assert best.is_file() and conv_dtypes and set(conv_dtypes) == {torch.bfloat16}
    assert ultralytics.engine.trainer.autocast is original and not torch.is_autocast_enabled("cpu")
    assert run_args(best)["amp"] is False
    conv_dtypes.clear()
    train_detector(DetectorTrainConfig(data=tiny_dataset, epochs=1, imgsz=64, batch=2, out=tmp_path, name="f32",
                                       threads=2, cache=False))
    assert conv_dtypes and set(conv_dtypes) == {torch.float32}
    with pytest.raises(ValueError, match="precision"):
        train_detector(DetectorTrainConfig(data=tiny_dataset, out=tmp_path, precision="fp16"))


def test_freeze_keeps_the_backbone_and_trains_the_rest(tiny_dataset: Path, tmp_path: Path) -> None:
    """``freeze=10`` (``--freeze``) continues from trained weights with YOLOv8's backbone (layers 0-9) kept."""
    start = train_detector(DetectorTrainConfig(data=tiny_dataset, epochs=1, imgsz=64, batch=2, out=tmp_path,
                                               name="a", threads=2, cache=False))
    best = train_detector(DetectorTrainConfig(data=tiny_dataset, model=str(start), epochs=1, imgsz=64, batch=2,
                                              out=tmp_path, name="b", threads=2, cache=False, lr0=0.01,
                                              warmup_epochs=0, freeze=10))
    assert run_args(best)["freeze"] == 10

    def conv_weights(path: Path) -> dict[str, torch.Tensor]:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        state = (ckpt["ema"] or ckpt["model"]).state_dict()
        return {k: v.float() for k, v in state.items() if k.endswith("conv.weight")}

    before, after = conv_weights(start), conv_weights(best)
    layer = {k: int(k.split(".")[1]) for k in before}  # "model.<layer>.<...>.conv.weight"
    assert all(torch.equal(before[k], after[k]) for k in before if layer[k] < 10)
    assert any(not torch.equal(before[k], after[k]) for k in before if layer[k] >= 10)
    with pytest.raises(InputError, match="freeze"):  # a backbone frozen at random weights would learn nothing
        train_detector(DetectorTrainConfig(data=tiny_dataset, model="yolov8n.yaml", out=tmp_path, freeze=10))
