"""A thin, typed layer over the Ultralytics trainer that works offline on CPU or GPU."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from sigpipe._ultralytics import configure, yolo_class
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
    lr0: float = 0.01
    workers: int = 4


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
    configure(cfg.threads)
    device = cfg.device or ("0" if torch.cuda.is_available() else "cpu")
    on_cpu = device == "cpu"
    YOLO = yolo_class()
    model = YOLO(cfg.model)
    if cfg.resume:
        results = model.train(resume=True)
    else:
        results = model.train(
            data=str(Path(cfg.data).resolve()),
            epochs=cfg.epochs,
            imgsz=cfg.imgsz,
            batch=cfg.batch,
            device=device,
            project=str(Path(cfg.out).resolve()),
            name=cfg.name,
            exist_ok=True,
            pretrained=not is_yaml,
            amp=not on_cpu,
            plots=False,
            seed=cfg.seed,
            patience=cfg.patience,
            cache="ram" if cfg.cache else False,
            close_mosaic=cfg.close_mosaic,
            lr0=cfg.lr0,
            workers=0 if on_cpu else cfg.workers,
            single_cls=True,
            verbose=True,
        )
    save_dir = Path(getattr(results, "save_dir", None) or model.trainer.save_dir)
    best = save_dir / "weights" / "best.pt"
    if not best.is_file():
        best = save_dir / "weights" / "last.pt"
    log.info("detector weights: %s", best)
    return best
