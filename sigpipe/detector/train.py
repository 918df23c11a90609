"""A thin, typed layer over the Ultralytics trainer that works offline on CPU or GPU."""

from __future__ import annotations

import contextlib
import logging
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import torch
import yaml

from sigpipe._training import check_precision, training_autocast
from sigpipe._ultralytics import configure, yolo_class
from sigpipe.datasets.corpus import IMAGE_SUFFIXES
from sigpipe.detector.runtime import DOWNSCALE, shrink_long_side
from sigpipe.errors import InputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DetectorTrainConfig:
    """Settings of one detector training run.

    Attributes:
        data: Ultralytics dataset yaml (class 0 = signature).
        model: an architecture yaml (``yolov8n.yaml``/``yolov8s.yaml``: trained from scratch) or a local ``.pt``
            (continue from earlier weights, e.g. the shipped detector). Names like ``yolov8n.pt`` would download and
            are refused.
        resume: resume the interrupted run whose ``last.pt`` is ``model`` (same epochs/optimizer state).
        lr0, optimizer: Ultralytics' ``optimizer="auto"`` ignores ``lr0`` (it picks AdamW at 0.002 for one class
            when the run has at most 10,000 iterations, else its own SGD variant at 0.01); so an ``lr0`` with the
            ``auto`` optimizer trains with AdamW at that rate. ``lr0=None``: Ultralytics' choice.
        freeze: the network's first ``freeze`` layers keep their weights (YOLOv8's backbone is layers 0-9, so 10
            trains only the neck and the head); 0 trains every layer. Only when continuing from trained weights (a
            ``.pt`` model): meant for a few pages of one's own, where the whole network would drift from what it
            had learnt (on this project's pages a frozen backbone still added false boxes: docs/models.md).
        warmup_epochs: epochs of Ultralytics' learning-rate warm-up (``None``: its default, 3), during which the
            bias learning rate starts at 0.1; 0 when continuing from trained weights at a small ``lr0``.
        downscale: how pages are shrunk to ``imgsz`` (:data:`sigpipe.detector.runtime.DOWNSCALE`). Ultralytics'
            loaders shrink bilinearly; with ``"area"`` every split is first shrunk by area averaging into a copy
            under ``out`` (:func:`downscaled_dataset`), so the loaders have nothing left to shrink. Ship the model
            with the same ``downscale`` in its manifest.
        precision: ``"bf16"`` trains in bfloat16 mixed precision: on a GPU Ultralytics' own ``amp="bf16"``; on the
            CPU, where Ultralytics has no mixed precision, its training steps inside a bfloat16 ``torch.autocast``
            (:func:`_cpu_training_precision`; validation stays f32). ``"f32"``: Ultralytics' default, fp16 AMP on a
            GPU and f32 on the CPU.
    """

    data: Path
    model: str = "yolov8n.yaml"
    epochs: int = 100
    imgsz: int = 640
    batch: int = 16
    out: Path = Path("runs/detector")
    name: str = "train"
    resume: bool = False
    device: str | None = None
    threads: int | None = None
    seed: int = 0
    patience: int = 50
    cache: bool = True
    close_mosaic: int = 10
    lr0: float | None = None
    warmup_epochs: float | None = None
    freeze: int = 0
    optimizer: str = "auto"
    workers: int = 4
    precision: str = "f32"
    downscale: str = "bilinear"


SPLITS = ("train", "val", "test")


def dataset_root(spec: dict, data: Path) -> Path:
    """The folder a dataset yaml's splits are relative to: its ``path``, relative to the yaml's own folder, or
    without one that folder itself (it was joined to itself: ``bank/pages/bank/pages/images/train``)."""
    given = spec.get("path")
    if not given:
        return data.parent
    root = Path(given)
    return root if root.is_absolute() else data.parent / root


def split_dirs(data: Path, labels: tuple[str, ...] = SPLITS,
               required: tuple[str, ...] = ("train", "val")) -> tuple[dict, dict[str, list[Path]]]:
    """A dataset yaml's contents and its splits' image folders (absolute), as Ultralytics resolves them; the label
    files of the ``labels`` splits (those the caller reads) are checked (:func:`label_problems`), and the
    ``required`` splits must be there (Ultralytics' trainer and validator want ``train`` and ``val``)."""
    try:
        d = yaml.safe_load(data.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise InputError(f"cannot read dataset yaml {data}: {e}") from e
    root = dataset_root(d, data)
    names = d.get("names")
    classes = len(names) if isinstance(names, (dict, list)) else int(d.get("nc") or 1)
    if classes > 1:
        raise InputError(f"{data}: names {classes} classes ({names}); the detector has one, 0 = signature (other "
                         "marks are pages' background: leave them unlabelled)")
    dirs: dict[str, list[Path]] = {}
    problems: list[str] = []
    checked: set[Path] = set()  # a folder serving two splits is checked once
    for split in SPLITS:
        entries = d.get(split) or []
        for entry in [entries] if isinstance(entries, str) else entries:
            folder = Path(entry) if Path(entry).is_absolute() else root / entry
            if not folder.is_dir():
                raise InputError(f"{data}: {split} entry {entry!r} is not an image folder ({folder})")
            images = [p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES]
            if split in ("train", "val") and not images:
                raise InputError(f"{data}: {split} folder {folder} holds no images")
            dirs.setdefault(split, []).append(folder.resolve())
            if split in labels:
                problems += label_problems(images, checked)
            if images and not any(label_path(p).is_file() for p in images if "images" in p.parts):
                # Ultralytics would take every page for a blank one: eval 0.0 everywhere, training on nothing
                where = (f"e.g. {label_path(images[0])} for {images[0]}" if "images" in images[0].parts else
                         "beside an 'images' folder of the same layout: the path must hold a folder named 'images'")
                raise InputError(f"{data}: no label file for any image of the {split} folder {folder} (YOLO labels "
                                 f"go in a 'labels' folder mirroring 'images', {where})")
    if problems:  # Ultralytics drops such a page whole, signatures and all, or trains a stamp as a signature, unsaid
        shown = "; ".join(problems[:MAX_LABEL_PROBLEMS]) + (
            f"; and {len(problems) - MAX_LABEL_PROBLEMS} more" if len(problems) > MAX_LABEL_PROBLEMS else "")
        raise InputError(f"{data}: {len(problems)} label line(s) Ultralytics would drop or misread: {shown}")
    if any(split not in dirs for split in required):
        raise InputError(f"{data}: needs {' and '.join(required)} image folders")
    return d, dirs


MAX_LABEL_PROBLEMS = 10  # named in the error; the rest counted


def label_problems(images: list[Path], checked: set[Path] | None = None) -> list[str]:
    """What is wrong in the YOLO label files of ``images``, one line each (``file:line: why``). A label line is
    ``class x_centre y_centre width height`` (or ``class`` and a polygon's x y pairs) in fractions of the image's
    width and height, class 0. Ultralytics skips a page with a bad line whole (its signatures lost to training and
    evaluation) and, training one class, takes any other class for a signature. A missing or empty label file is a
    page without signatures. A file holding both boxes and polygons Ultralytics drops whole too. Files named are
    the label files as they really are (links resolved: a benchmark's temporary links named files gone after);
    ``checked`` (updated) holds the files already checked."""
    problems = []
    checked = set() if checked is None else checked
    for image in images:
        if "images" not in image.parts:
            continue
        label = label_path(image)
        if not label.is_file():
            continue
        label = label.resolve()
        if label in checked:
            continue
        checked.add(label)
        try:
            text = label.read_text()
        except (OSError, UnicodeDecodeError) as e:
            problems.append(f"{label}: cannot be read ({e})")
            continue
        shapes = set()  # "box" and "polygon" rows
        for i, line in enumerate(text.splitlines(), 1):
            fields = line.split()
            if not fields:
                continue
            try:
                values = [float(f) for f in fields]
            except ValueError:
                problems.append(f"{label}:{i}: not numbers ({line.strip()[:40]!r})")
                continue
            if len(values) < 5 or len(values) > 5 and len(values) % 2 == 0:
                problems.append(f"{label}:{i}: {len(values)} fields, expected 5 (class x_centre y_centre width "
                                "height)")
            elif values[0] != 0:
                problems.append(f"{label}:{i}: class {fields[0]}, but the detector has one class, 0 (signature)")
            elif not all(0 <= v <= 1 for v in values[1:]):
                problems.append(f"{label}:{i}: coordinates outside 0..1 (fractions of the image's width and height, "
                                "not pixels)")
            else:
                shapes.add("box" if len(values) == 5 else "polygon")
        if len(shapes) > 1:
            problems.append(f"{label}: mixes boxes and polygons (Ultralytics drops such a page): give every "
                            "signature as a box")
    return problems


def resolved_dataset(data: Path, folder: Path, labels: tuple[str, ...] = SPLITS) -> Path:
    """A copy of the dataset yaml ``data`` in ``folder`` (``data.yaml``) whose ``path`` is absolute, resolved as
    :func:`split_dirs` resolves it (against the yaml's own folder). Ultralytics resolves a relative ``path``
    against the working directory (``.``) or its datasets folder (anything else): run from another folder it
    would read other pages than those checked, or none."""
    spec, _ = split_dirs(data, labels)
    root = dataset_root(spec, data)
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "data.yaml"
    out.write_text(yaml.safe_dump({**spec, "path": str(root.resolve())}, sort_keys=False))
    return out


def label_path(image: Path) -> Path:
    """Ultralytics' rule: the last ``images`` folder in the path becomes ``labels``, the suffix ``.txt``."""
    parts = list(image.parts)
    i = len(parts) - 1 - parts[::-1].index("images")
    parts[i] = "labels"
    return Path(*parts).with_suffix(".txt")


def downscaled_dataset(
    data: Path, imgsz: int, out: Path, downscale: str = "area", splits: tuple[str, ...] = SPLITS
) -> Path:
    """Copy a YOLO dataset with every image shrunk to a long side of ``imgsz`` by ``downscale``.

    Ultralytics' loader scales each image to a long side of ``imgsz`` (``ceil`` of the short side) before any
    augmentation; after this copy that step is the identity, so training and validation see the pages exactly as
    the exported detector does with the same ``downscale``. Labels (normalised) are copied unchanged; images are
    written as PNG (no second lossy encoding); smaller images are copied at their size. Only ``splits`` are copied
    (an evaluation needs one); Ultralytics insists on ``train`` and ``val`` keys, so a missing one names the first
    copied split. A copied split's folder under ``out`` is replaced. Returns the new yaml.
    """
    if downscale not in DOWNSCALE:
        raise InputError(f"unknown downscale {downscale!r}; one of {sorted(DOWNSCALE)}")
    spec, dirs = split_dirs(Path(data), labels=splits)
    out = Path(out)
    new = {"path": str(out.resolve()), "names": spec.get("names", {0: "signature"})}
    for split, folders in dirs.items():
        if split not in splits:
            continue
        shutil.rmtree(out / split, ignore_errors=True)  # a re-run must not keep pages of an earlier copy
        (out / split / "images").mkdir(parents=True, exist_ok=True)
        (out / split / "labels").mkdir(parents=True, exist_ok=True)
        for k, folder in enumerate(folders):
            for image in sorted(f for f in folder.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES):
                page = cv2.imread(str(image), cv2.IMREAD_COLOR)
                if page is None:
                    raise InputError(f"unreadable image in the dataset: {image}")
                page = shrink_long_side(page, imgsz, downscale)
                stem = f"{k}_{image.relative_to(folder).with_suffix('').as_posix().replace('/', '_')}"
                cv2.imwrite(str(out / split / "images" / f"{stem}.png"), page)
                label = label_path(image)
                text = label.read_text() if label.is_file() else ""
                (out / split / "labels" / f"{stem}.txt").write_text(text)
        new[split] = f"{split}/images"
    copied = [k for k in SPLITS if k in new]
    if not copied:
        raise InputError(f"{data}: none of the splits {splits} to copy")
    for key in ("train", "val"):
        new.setdefault(key, new[copied[0]])
    path = out / "data.yaml"
    path.write_text(yaml.safe_dump(new, sort_keys=False))
    log.info("dataset shrunk to %d px by %s: %s", imgsz, downscale, path)
    return path


def train_detector(cfg: DetectorTrainConfig) -> Path:
    """Train (or continue training) the detector; returns the path of the best weights (``best.pt``)."""
    if not Path(cfg.data).is_file():
        raise InputError(f"dataset yaml not found: {cfg.data}")
    is_yaml = cfg.model.endswith((".yaml", ".yml"))
    if not is_yaml and not Path(cfg.model).is_file():
        raise InputError(
            f"model {cfg.model!r} is neither an architecture yaml nor a local weights file "
            "(pretrained names such as yolov8n.pt would need a download, which is not available offline)"
        )
    if cfg.freeze and is_yaml:
        raise InputError(f"freeze keeps trained weights, but {cfg.model} starts from random ones: give a .pt model")
    check_precision(cfg.precision)
    configure(cfg.threads)
    data = Path(cfg.data)
    if cfg.downscale != "bilinear" and not cfg.resume:
        data = downscaled_dataset(data, cfg.imgsz, Path(cfg.out) / f"{cfg.name}-data-{cfg.downscale}{cfg.imgsz}",
                                  cfg.downscale)
    elif not cfg.resume:  # kept beside the run (a resumed run reads its data from the checkpoint's settings)
        data = resolved_dataset(data, Path(cfg.out) / f"{cfg.name}-data", labels=("train", "val"))
    optimizer = cfg.optimizer
    if cfg.lr0 is not None and optimizer == "auto":
        optimizer = "AdamW"  # what "auto" picks for runs this size, at the rate asked for instead of its own
    device = cfg.device or ("0" if torch.cuda.is_available() else "cpu")
    on_cpu = device == "cpu"
    YOLO = yolo_class()
    try:
        model = YOLO(cfg.model)
    except FileNotFoundError as e:  # an architecture name Ultralytics does not bundle, e.g. a typo
        raise InputError(f"model {cfg.model!r}: no such architecture yaml (Ultralytics bundles e.g. yolov8n.yaml "
                         f"and yolov8s.yaml) or local file ({e})") from e
    # a resumed run takes its amp setting from its checkpoint; the CPU's bf16 is this process's to give again
    # Ultralytics' progress bars write to stdout, where the command prints the one thing a script reads from it
    # (BEST=$(sigpipe detector train ...)): they go to stderr with the log
    with _cpu_training_precision(cfg.precision if on_cpu else "f32"), contextlib.redirect_stdout(sys.stderr):
        results = _train(model, cfg, data, device, optimizer, on_cpu, is_yaml)
    save_dir = Path(getattr(results, "save_dir", None) or model.trainer.save_dir)
    best = save_dir / "weights" / "best.pt"
    if not best.is_file():
        best = save_dir / "weights" / "last.pt"
    log.info("detector weights: %s", best)
    return best


@contextlib.contextmanager
def _cpu_training_precision(precision: str) -> Iterator[None]:
    """Ultralytics' training steps on the CPU in ``precision``.

    Its loop wraps each step in ``ultralytics.utils.torch_utils.autocast(amp, device)``, which on the CPU is
    ``torch.autocast("cpu", enabled=False)`` (AMP is for accelerators) and would switch off any autocast around the
    run; so for bf16 the trainer module's ``autocast`` gives a bfloat16 autocast on the CPU while the run lasts.
    Validation (the validator's own ``autocast``) stays f32, so the best epoch is chosen as in an f32 run.
    """
    if check_precision(precision) == "f32":
        yield
        return
    import ultralytics.engine.trainer as trainer

    original = trainer.autocast

    def autocast(enabled: bool | torch.dtype, device: str = "cuda") -> contextlib.AbstractContextManager[object]:
        return training_autocast("cpu", "bf16") if device == "cpu" else original(enabled, device)

    trainer.autocast = autocast
    try:
        yield
    finally:
        trainer.autocast = original


def _train(model: Any, cfg: DetectorTrainConfig, data: Path, device: str, optimizer: str, on_cpu: bool,
           is_yaml: bool) -> Any:
    """Ultralytics' ``model.train`` with the run's settings (a resumed run: its checkpoint's)."""
    if cfg.resume:
        return model.train(resume=True)
    return model.train(
        data=str(data.resolve()),
        epochs=cfg.epochs,
        imgsz=cfg.imgsz,
        batch=cfg.batch,
        device=device,
        project=str(Path(cfg.out).resolve()),
        name=cfg.name,
        exist_ok=True,
        pretrained=not is_yaml,
        amp=False if on_cpu else ("bf16" if cfg.precision == "bf16" else True),
        plots=False,
        seed=cfg.seed,
        patience=cfg.patience,
        cache="ram" if cfg.cache else False,
        close_mosaic=cfg.close_mosaic,
        optimizer=optimizer,
        **({} if cfg.lr0 is None else {"lr0": cfg.lr0}),
        **({} if cfg.warmup_epochs is None else {"warmup_epochs": cfg.warmup_epochs}),
        **({"freeze": cfg.freeze} if cfg.freeze else {}),
        workers=0 if on_cpu else cfg.workers,
        single_cls=True,
        verbose=True,
    )
