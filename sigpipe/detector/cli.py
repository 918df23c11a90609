"""``sigpipe detector train|eval|export``: thin wrappers over :mod:`sigpipe.detector`.

Exit codes: 0 success; 2 usage or input errors (a missing/malformed dataset or file); 1 other failures (e.g. a
model that is missing or does not match its manifest).
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from sigpipe._cli import BadInput, fail, out_folder
from sigpipe._training import TRAINING_PRECISIONS
from sigpipe.errors import InputError, SigpipeError

F = TypeVar("F", bound=Callable[..., Any])


def _imgsz(_ctx: click.Context, _param: click.Parameter, value: int | None) -> int | None:
    """``--imgsz``: a positive multiple of 32 (the network's stride), as :class:`SignatureDetector` requires."""
    if value is not None and (value <= 0 or value % 32):
        raise click.BadParameter(f"must be a positive multiple of 32, got {value}")
    return value


def _check_dataset_yaml(path: Path) -> None:
    """Refuse a dataset yaml that does not parse or is not a mapping, before Ultralytics raises on it.

    Raises:
        BadInput: the file cannot be read, is not valid YAML, or its top level is not a mapping.
    """
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise BadInput(f"cannot read dataset yaml {path}: {e}") from e
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise BadInput(f"dataset yaml {path} is not valid YAML{where}: {getattr(e, 'problem', None) or e}") from e
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        raise BadInput(f"dataset yaml {path} must be a mapping (keys path, train, val, names), got {got}")
    if "names" not in data and "nc" not in data:
        raise BadInput(f"dataset yaml {path} names no classes: add 'names: {{0: signature}}'")
    if "path" in data and not isinstance(data["path"], str):
        raise BadInput(f"dataset yaml {path}: 'path' must be a folder path, got {data['path']!r}")


def _check_checkpoint(path: Path, option: str) -> None:
    """Refuse a ``.pt`` that is not an Ultralytics checkpoint, without loading it: a PyTorch checkpoint is a zip
    archive whose pickle (``data.pkl``) names the Ultralytics model classes it holds.

    Raises:
        BadInput: not a zip archive, no pickle in it, or a pickle of no Ultralytics model (e.g. a verifier's weights).
    """
    try:
        with zipfile.ZipFile(path) as z:
            pkl = next((n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl"), None)
            ours = pkl is not None and b"ultralytics" in z.read(pkl)
    except (OSError, zipfile.BadZipFile) as e:
        raise BadInput(f"{option} {path} is not a PyTorch checkpoint: {e}") from e
    if not ours:
        raise BadInput(f"{option} {path} is not an Ultralytics YOLO checkpoint")


def _check_model_arg(model: str) -> None:
    """``detector train --model``: a local architecture yaml must be a model mapping, a local ``.pt`` an Ultralytics
    checkpoint; other files are refused. Architecture names (``yolov8n.yaml``) are left to Ultralytics.

    Raises:
        BadInput: a local file that is not a model.
    """
    import yaml

    path = Path(model)
    if not path.is_file():
        return  # a bundled architecture name, or a missing .pt that train_detector refuses
    if path.suffix in (".yaml", ".yml"):
        try:
            spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            raise BadInput(f"--model {path} is not a readable YAML file: {str(e).splitlines()[0]}") from e
        if not isinstance(spec, dict) or not {"backbone", "head"} <= spec.keys():
            raise BadInput(f"--model {path} is not a model architecture yaml (keys backbone and head)")
    elif path.suffix == ".pt":
        _check_checkpoint(path, "--model")
    else:
        raise BadInput(f"--model {path} is neither an architecture yaml nor a .pt checkpoint")


def _weights_option(f: F) -> F:
    return click.option(
        "--weights", type=click.Path(exists=True, path_type=Path), default=None,
        help="Detector .pt/.onnx/OpenVINO folder, or its manifest (.json). Default: the bundled detector.",
    )(f)


@click.group()
def detector() -> None:
    """Train, evaluate and export the YOLOv8 signature detector."""


@detector.command()
@click.option("--data", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Ultralytics dataset yaml (one class: signature).")
@click.option("--model", default="yolov8n.yaml", show_default=True,
              help="Architecture yaml (from scratch) or a local .pt to continue from.")
@click.option("--epochs", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--imgsz", type=int, default=640, show_default=True, callback=_imgsz,
              help="Input size, a multiple of 32.")
@click.option("--batch", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/detector"),
              show_default=True)
@click.option("--name", default="train", show_default=True, help="Run folder under --out.")
@click.option("--resume", is_flag=True, help="Resume the interrupted run whose last.pt is --model.")
@click.option("--device", default=None, help="cpu, 0, 0,1 ... (default: first GPU when available, else cpu).")
@click.option("--threads", type=click.IntRange(min=0), default=None,
              help="Torch CPU threads (default or 0: all cores).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--lr0", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="Initial learning rate (e.g. 0.0005 when continuing from trained weights). Default: Ultralytics' "
                   "automatic choice (AdamW at 0.002 for short runs), which ignores any lr0; with --lr0 and the auto "
                   "optimizer, AdamW at this rate.")
@click.option("--warmup-epochs", type=click.FloatRange(min=0), default=None,
              help="Learning-rate warm-up epochs (default: Ultralytics' 3); 0 when continuing from trained weights.")
@click.option("--freeze", type=click.IntRange(min=0), default=0, show_default=True,
              help="Keep the first N layers' weights (10: YOLOv8's backbone) when continuing from trained weights; "
                   "0 trains every layer.")
@click.option("--optimizer", default="auto", show_default=True,
              type=click.Choice(["auto", "SGD", "Adam", "AdamW", "NAdam", "RAdam", "RMSprop"]))
@click.option("--close-mosaic", type=click.IntRange(min=0), default=10, show_default=True,
              help="Train the last N epochs without mosaic augmentation.")
@click.option("--downscale", type=click.Choice(["bilinear", "area"]), default="bilinear", show_default=True,
              help="How pages are shrunk to --imgsz. area: a copy of the dataset shrunk by area averaging is made "
                   "under --out first (thin strokes stay continuous); ship the model with the same setting.")
@click.option("--precision", type=click.Choice(TRAINING_PRECISIONS), default="f32", show_default=True,
              help="bf16: bfloat16 mixed precision (on the CPU for CPUs that compute it natively: 1.7x as fast "
                   "on an Intel Xeon with AMX; on a GPU instead of fp16 AMP).")
def train(**kw: Any) -> None:
    """Train the detector; prints the path of the best weights."""
    from sigpipe.detector.train import DetectorTrainConfig, split_dirs, train_detector

    cfg = DetectorTrainConfig(**kw)
    if not cfg.resume:  # a resumed run reads its dataset and model from the checkpoint's own settings
        _check_dataset_yaml(cfg.data)
        try:
            split_dirs(cfg.data, labels=("train", "val"))  # train and val image folders exist, their labels sound
        except InputError as e:
            raise BadInput(str(e)) from e
        out_folder(cfg.out)
    _check_model_arg(cfg.model)
    if cfg.resume:
        _check_resumable(Path(cfg.model))
    try:
        best = train_detector(cfg)
    except SigpipeError as e:
        raise fail(e) from e
    click.echo(str(best))


def _check_resumable(path: Path) -> None:
    """Refuse to resume from what is not an interrupted run's ``last.pt``: Ultralytics would fall back to its own
    default dataset (a download) and write under its own runs folder."""
    from sigpipe._ultralytics import configure

    if not path.is_file():
        raise BadInput("--resume needs --model <the interrupted run's last.pt> (runs/.../weights/last.pt)")
    configure()
    from ultralytics.nn.tasks import torch_safe_load

    try:
        ckpt, _ = torch_safe_load(str(path), safe_only=True)  # weights and Ultralytics' classes: nothing run
    except Exception as e:  # noqa: BLE001 - not a checkpoint at all: pickle, zip and torch fail in many ways
        raise BadInput(f"cannot resume from {path}: not a training checkpoint ({type(e).__name__})") from e
    args = ckpt.get("train_args") if isinstance(ckpt, dict) else None
    if not isinstance(args, dict) or ckpt.get("optimizer") is None or int(ckpt.get("epoch", -1)) < 0:
        raise BadInput(f"cannot resume from {path}: it is not the last.pt of an interrupted run (a finished run's "
                       "weights and shipped models keep no training state); to continue training from it, give it "
                       "as --model without --resume")
    data = args.get("data")
    if not data or not Path(str(data)).is_file():
        raise BadInput(f"cannot resume from {path}: its dataset {data!r} is gone")


@detector.command("eval")
@click.option("--data", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Ultralytics dataset yaml.")
@_weights_option
@click.option("--split", type=click.Choice(["val", "test"]), default="val", show_default=True)
@click.option("--imgsz", type=int, default=None, callback=_imgsz,
              help="Input size, a multiple of 32 (default: the manifest's, else 640).")
@click.option("--conf", type=click.FloatRange(0, 1), default=0.001, show_default=True,
              help="Candidate-box threshold (keep low: mAP integrates over all thresholds).")
@click.option("--iou", type=click.FloatRange(0, 1), default=None, help="NMS IoU (default: the manifest's, else 0.7).")
@click.option("--batch", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--threads", type=click.IntRange(min=0), default=None,
              help="Torch CPU threads (default or 0: all cores).")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as one JSON object.")
def eval_cmd(
    data: Path, weights: Path | None, split: str, imgsz: int | None, conf: float, iou: float | None, batch: int,
    threads: int | None, as_json: bool,
) -> None:
    """Evaluate on a split of a labelled dataset: mAP50, mAP50-95, precision, recall."""
    from sigpipe.detector.detector import DEFAULT_IMGSZ, DEFAULT_IOU, resolve_model
    from sigpipe.detector.evaluate import evaluate

    _check_dataset_yaml(data)
    try:
        path, manifest = resolve_model(weights)
        if imgsz is None:
            imgsz = int(manifest.get("imgsz", DEFAULT_IMGSZ)) if manifest else DEFAULT_IMGSZ
        if iou is None:
            iou = float(manifest.get("iou", DEFAULT_IOU)) if manifest else DEFAULT_IOU
        downscale = str(manifest.get("downscale", "bilinear")) if manifest else "bilinear"
        res = evaluate(data, path, split=split, imgsz=imgsz, conf=conf, iou=iou, batch=batch, threads=threads,
                       downscale=downscale)
    except SigpipeError as e:
        raise fail(e) from e
    if as_json:
        click.echo(json.dumps(res))
    else:
        for key, val in res.items():
            click.echo(f"{key:10s} {val:.4f}" if isinstance(val, float) else f"{key:10s} {val}")


@detector.command()
@click.argument("weights", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--data", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Dataset yaml whose val pages (YOLO labels) calibrate the confidence: not the training pages.")
@click.option("--tag", required=True, help="The model's tag: reports name it NAME.TAG <sha256 prefix>.")
@click.option("--name", default="yolov8-signature", show_default=True, help="The model's name.")
@click.option("--imgsz", type=int, default=None, callback=_imgsz,
              help="Input size it runs at, a multiple of 32 (default: the size it was trained at).")
@click.option("--downscale", type=click.Choice(["bilinear", "area"]), default="bilinear", show_default=True,
              help="How pages are shrunk to imgsz, as it was trained (detector train --downscale).")
@click.option("--notes", default="", help="Free text recorded in the manifest: how it was trained.")
@click.option("--second-look/--no-second-look", default=True, show_default=True,
              help="Keep the bundled detector's looks at patterned paper (a cheque's security background looked at "
                   "with its levels stretched; README, \"Security backgrounds\").")
def calibrate(weights: Path, data: Path, tag: str, name: str, imgsz: int | None, downscale: str,
              notes: str, second_look: bool) -> None:
    """Make a trained detector (best.pt of `detector train`) usable: calibrate its confidence threshold on DATA's
    validation pages and write its manifest beside it (WEIGHTS.json), which `sigpipe run --detector-weights`,
    `sigpipe verify --detector-weights` and `detector export --weights` take. Prints the manifest's path."""
    from sigpipe.detector.calibrate import calibrate_detector

    _check_dataset_yaml(data)
    _check_checkpoint(weights, "WEIGHTS")
    try:
        path = calibrate_detector(weights, data, tag, name=name, imgsz=imgsz, downscale=downscale, notes=notes,
                                  second_look=second_look)
    except SigpipeError as e:
        raise fail(e) from e
    click.echo(str(path))


@detector.command()
@_weights_option
@click.option("--format", "fmt", type=click.Choice(["onnx", "openvino"]), default="onnx", show_default=True)
@click.option("--imgsz", type=int, default=None, callback=_imgsz,
              help="Input size of the export, a multiple of 32 (default: the manifest's).")
@click.option("--dynamic/--static", default=False, show_default=True,
              help="Dynamic input axes: each page letterboxed to its smallest rectangle instead of the full square "
                   "(faster on cheques; measure recall before shipping one).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder (default: beside the weights, updating their manifest).")
def export(weights: Path | None, fmt: str, imgsz: int | None, dynamic: bool, out: Path | None) -> None:
    """Export the detector to ONNX or OpenVINO; prints the exported path."""
    from sigpipe.detector.export import export as export_model
    from sigpipe.errors import ModelError
    from sigpipe.weights import Manifest

    if weights is not None:
        try:  # a file that is not a manifest is an input error; a model that does not match it (found below) is not
            src = Manifest.load(weights).weights_path if weights.suffix == ".json" else weights
        except ModelError as e:
            raise BadInput(str(e)) from e
        if src.suffix == ".pt" and src.is_file():
            _check_checkpoint(src, "--weights")
    if out is not None:
        out_folder(out)
    try:
        path = export_model(weights, fmt, imgsz=imgsz, out_dir=out, dynamic=dynamic)
    except SigpipeError as e:
        raise fail(e) from e
    click.echo(str(path))
