"""A trained detector made usable by the product: its confidence threshold calibrated on a dataset's validation
pages and a manifest written beside its weights (``sigpipe detector calibrate``), which ``sigpipe run
--detector-weights``, ``sigpipe verify`` and ``sigpipe detector export`` then take.

The threshold maximises F1 (IoU >= 0.5) on the validation pages, swept with the OpenVINO export that ``sigpipe run``
uses (a static square letterbox; the ``.pt`` under Ultralytics letterboxes to rectangles and scores a little
differently), as the bundled detector's was (``scripts/ship_detector.py``).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from sigpipe.detector.detector import DEFAULT_IMGSZ, SignatureDetector
from sigpipe.detector.evaluate import match_boxes, yolo_boxes
from sigpipe.detector.export import export
from sigpipe.detector.train import label_path, split_dirs
from sigpipe.errors import InputError, ModelError
from sigpipe.weights import bundled_manifest, write_manifest

log = logging.getLogger(__name__)

CONF_GRID = tuple(float(c) for c in np.round(np.arange(0.05, 0.91, 0.025), 3))
NMS_IOU = 0.5  # signatures rarely overlap: merge duplicate boxes of one signature (IoU ~0.7 seen)


def labelled_pages(folder: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every image under ``folder`` (BGR) with its true boxes ``(M, 4)`` x1, y1, x2, y2 in its pixels, from the
    YOLO label file Ultralytics would read for it (none: a page without signatures).

    Raises:
        InputError: an image that cannot be read.
    """
    from sigpipe.datasets.corpus import IMAGE_SUFFIXES

    out = []
    for image in sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
        page = cv2.imread(str(image), cv2.IMREAD_COLOR)
        if page is None:
            raise InputError(f"cannot read page image {image}")
        h, w = page.shape[:2]
        out.append((page, yolo_boxes(label_path(image) if "images" in image.parts else None, w, h)))
    return out


def sweep(det: SignatureDetector, pages: list[tuple[np.ndarray, np.ndarray]]) -> list[dict[str, float]]:
    """Precision, recall, F1 and false boxes per page at each confidence of :data:`CONF_GRID` (``det`` run once,
    at a confidence below the grid's)."""
    preds = det.detect_batch([p for p, _ in pages])
    rows = []
    for conf in CONF_GRID:
        tp = fp = fn = 0
        for dets, (_, truth) in zip(preds, pages, strict=True):
            kept = np.array([d.bbox for d in dets if d.confidence >= conf]).reshape(-1, 4)
            t, f, n = match_boxes(kept, truth)
            tp, fp, fn = tp + t, fp + f, fn + n
        p = tp / (tp + fp) if tp + fp else 1.0
        r = tp / (tp + fn) if tp + fn else 1.0
        rows.append({"conf": conf, "precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0,
                     "false_boxes_per_page": fp / len(pages)})
    return rows


def best_row(rows: list[dict[str, float]]) -> dict[str, float]:
    """The sweep's row of highest F1 (of two equal, the higher confidence)."""
    return max(rows, key=lambda r: (r["f1"], r["conf"]))


def shipped_second_look() -> dict[str, Any] | None:
    """The bundled detector's looks at patterned paper (its manifest's ``second_look``), which a detector calibrated
    here keeps: they are about the pages, not the network, and without them a bank's retrained detector would miss
    the signatures on security cheques that the bundled one finds (v7's one look 78 of 127, v9 118; bitonal
    ones: v9 56 of 118, v10 83). None without a bundled detector or where it has none."""
    try:
        look = bundled_manifest("detector").get("second_look")
    except ModelError:  # an installation without the bundled detector
        return None
    return dict(look) if look else None


def calibrate_detector(weights: str | Path, data: str | Path, tag: str, name: str = "yolov8-signature",
                       imgsz: int | None = None, downscale: str = "bilinear", notes: str = "",
                       second_look: bool = True) -> Path:
    """Calibrate a trained ``.pt`` detector's confidence on the validation pages of ``data`` and write its manifest
    (``<weights>.json``); returns the manifest's path.

    Args:
        weights: ``best.pt`` of ``sigpipe detector train``.
        data: a dataset yaml (``val`` pages with YOLO labels), not the training pages.
        tag: the model's tag (reports name it ``name.tag sha256-prefix``).
        imgsz: the input size it runs at (default: the one it was trained at).
        downscale: how pages are shrunk to ``imgsz``, as it was trained (``detector train --downscale``).
        notes: free text recorded as how it was trained.
        second_look: keep the bundled detector's looks at patterned paper (:func:`shipped_second_look`).

    Raises:
        InputError: no such weights, a dataset without labelled validation pages, or an empty tag.
    """
    weights, data = Path(weights), Path(data)
    if weights.suffix != ".pt" or not weights.is_file():
        raise InputError(f"expected the .pt weights of a training run, got {weights}")
    if not tag.strip():
        raise InputError("--tag must not be empty")
    spec, dirs = split_dirs(data, labels=("val",), required=("val",))  # the pages it reads; no training pages
    pages = [p for folder in dirs["val"] for p in labelled_pages(folder)]
    if not any(len(b) for _, b in pages):
        raise InputError(f"{data}: its validation pages hold no labelled signature to calibrate on")
    trained = _train_args(weights)
    imgsz = imgsz or _trained_imgsz(trained)
    with tempfile.TemporaryDirectory(prefix="sigpipe-detcal-") as tmp:
        probe = SignatureDetector(export(weights, "openvino", imgsz=imgsz, out_dir=tmp), imgsz=imgsz,
                                  conf=CONF_GRID[0], iou=NMS_IOU, downscale=downscale)
        rows = sweep(probe, pages)
    best = best_row(rows)
    log.info("confidence %.3f: precision %.3f, recall %.3f on %d validation pages", best["conf"], best["precision"],
             best["recall"], len(pages))
    return write_manifest(weights, {
        "name": name,
        "tag": tag,
        "architecture": "YOLOv8 (Ultralytics), 1 class: signature",
        "imgsz": imgsz,
        "downscale": downscale,
        "conf": best["conf"],
        "iou": NMS_IOU,
        "max_det": 300,  # Ultralytics' default: a strip of 60 cheques is one page
        **({"second_look": look} if second_look and (look := shipped_second_look()) else {}),
        "calibration": {"method": "confidence maximising F1 (IoU >= 0.5) on the validation pages", "data": str(data),
                        "pages": len(pages), **best},
        # what it was trained on and from, as its checkpoint says (the calibration pages above are other pages)
        "training": {"data": str(trained.get("data") or "not recorded in the checkpoint"),
                     **({"started_from": str(trained["model"])} if trained.get("model") else {}), "notes": notes},
    })


def _train_args(weights: Path) -> dict:
    """The settings a checkpoint was trained with (Ultralytics' ``train_args``: ``data``, ``model``, ``imgsz``...),
    empty when it does not say."""
    from sigpipe._ultralytics import configure

    configure()
    from ultralytics.nn.tasks import torch_safe_load

    try:
        ckpt, _ = torch_safe_load(str(weights), safe_only=True)  # weights and Ultralytics' classes: nothing run
        args = ckpt.get("train_args") or {}
    except Exception:  # noqa: BLE001 - an unusual checkpoint: nothing known
        return {}
    return dict(args) if isinstance(args, dict) else {}


def _trained_imgsz(trained: dict) -> int:
    """The input size a checkpoint was trained at (its ``train_args``), else :data:`DEFAULT_IMGSZ`."""
    try:
        value = int(trained.get("imgsz") or DEFAULT_IMGSZ)
    except (TypeError, ValueError):  # an unusual checkpoint: the default size, which --imgsz overrides
        return DEFAULT_IMGSZ
    return value if value > 0 and value % 32 == 0 else DEFAULT_IMGSZ
