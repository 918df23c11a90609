"""Detector evaluation: COCO-style metrics on a labelled split, and recall / false boxes per page at the shipped
threshold on documents whose true signature boxes are known."""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sigpipe._ultralytics import configure, yolo_class
from sigpipe.datasets.corpus import IMAGE_SUFFIXES
from sigpipe.detector.detector import Detection, SignatureDetector
from sigpipe.detector.runtime import box_iou
from sigpipe.errors import InputError, ModelError
from sigpipe.stats import bootstrap_interval

log = logging.getLogger(__name__)

EVAL_KEYS = ("map50", "map50_95", "precision", "recall", "images", "instances")


def evaluate(
    data_yaml: str | Path,
    weights: str | Path,
    split: str = "val",
    imgsz: int = 640,
    conf: float = 0.001,
    iou: float = 0.7,
    *,
    batch: int = 8,
    threads: int | None = None,
    device: str | None = None,
    downscale: str = "bilinear",
) -> dict[str, float | int]:
    """mAP, precision and recall of a detector on one split of an Ultralytics dataset.

    Args:
        data_yaml: Ultralytics dataset yaml (``path``, ``train``/``val``/``test``, ``names``).
        weights: a ``.pt``, ``.onnx`` or ``*_openvino_model/`` detector.
        split: ``"val"`` or ``"test"``.
        imgsz: network input size (a multiple of 32).
        conf: confidence threshold for the candidate boxes. mAP is computed over the whole precision-recall curve,
            so keep it low (Ultralytics' 0.001); precision/recall are Ultralytics' figures at the max-F1 point.
        iou: NMS IoU threshold.
        batch: images per forward pass.
        threads: torch threads (``None``: all cores).
        device: ``"cpu"``, ``"0"``...; ``None``: the first GPU if there is one, else CPU.
        downscale: how the model shrinks pages (its manifest's ``downscale``); other than bilinear, Ultralytics'
            own, the split is first shrunk into a temporary copy (:func:`sigpipe.detector.train.downscaled_dataset`).

    Returns:
        ``{"map50", "map50_95", "precision", "recall", "images", "instances"}``: floats in ``[0, 1]`` and the number
        of images and true boxes evaluated.

    Raises:
        InputError: the yaml is missing or has no such split.
        ModelError: the weights cannot be loaded.
    """
    data_yaml = Path(data_yaml)
    if not data_yaml.is_file():
        raise InputError(f"dataset yaml not found: {data_yaml}")
    if split not in ("val", "test"):
        raise InputError(f"split must be 'val' or 'test', got {split!r}")
    weights = Path(weights)
    if not weights.exists():
        raise ModelError(f"detector weights not found: {weights}")
    configure(threads)
    if device is None:
        device = "0" if torch.cuda.is_available() and weights.suffix == ".pt" else "cpu"
    YOLO = yolo_class()
    try:
        model = YOLO(str(weights), task="detect")
    except Exception as e:
        raise ModelError(f"cannot load detector model {weights}: {type(e).__name__}: {e}") from e
    seen: dict[str, int] = {}

    def on_val_end(validator: Any) -> None:
        seen["images"] = int(validator.seen)

    model.add_callback("on_val_end", on_val_end)
    # The validator always creates a run folder (under the git root's runs/ by default): keep it out of the way.
    with tempfile.TemporaryDirectory(prefix="sigpipe-detval-") as tmp:
        from sigpipe.detector.train import downscaled_dataset, resolved_dataset

        if downscale != "bilinear":
            data_yaml = downscaled_dataset(data_yaml, imgsz, Path(tmp) / "data", downscale, splits=(split,))
        else:  # its path resolved as the checks resolve it, whatever the working directory
            data_yaml = resolved_dataset(data_yaml, Path(tmp) / "data", labels=(split,))
        try:
            metrics = model.val(
                data=str(data_yaml.resolve()), split=split, imgsz=imgsz, conf=conf, iou=iou, batch=batch,
                device=device, plots=False, save_json=False, verbose=False, workers=0, project=tmp, name="val",
                exist_ok=True,
            )
        except (FileNotFoundError, SyntaxError, KeyError) as e:  # Ultralytics' ways of saying the data is unusable
            raise InputError(f"cannot evaluate on {data_yaml} split {split!r}: {e}") from e
    nt = getattr(metrics, "nt_per_class", None)
    mp, mr, map50, map50_95 = (float(v) for v in metrics.box.mean_results())
    return {
        "map50": map50,
        "map50_95": map50_95,
        "precision": mp,
        "recall": mr,
        "images": seen.get("images", 0),
        "instances": int(np.sum(nt)) if nt is not None else 0,
    }


# -- recall / false boxes on documents with known truth --------------------------------------------------------


def match_boxes(pred: np.ndarray, truth: np.ndarray, iou_thr: float = 0.5) -> tuple[int, int, int]:
    """Greedy one-to-one matching, predictions in the given order (highest confidence first).

    Args:
        pred: ``(N, 4)`` predicted boxes, sorted by decreasing confidence.
        truth: ``(M, 4)`` true boxes.
        iou_thr: a prediction matches a still-unmatched truth box when their IoU is ``>= iou_thr``.

    Returns:
        ``(true_positives, false_positives, false_negatives)``.
    """
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 4)
    truth = np.asarray(truth, dtype=np.float64).reshape(-1, 4)
    if len(pred) == 0 or len(truth) == 0:
        return 0, len(pred), len(truth)
    ious = box_iou(pred, truth)
    used = np.zeros(len(truth), dtype=bool)
    tp = 0
    for i in range(len(pred)):
        cand = np.where(~used, ious[i], -1.0)
        j = int(np.argmax(cand))
        if cand[j] >= iou_thr:
            used[j] = True
            tp += 1
    return tp, len(pred) - tp, len(truth) - tp


@dataclass(frozen=True)
class PageTruth:
    """True signature boxes of one page image.

    Attributes:
        image: path of the page image.
        boxes: ``(x1, y1, x2, y2)`` boxes in pixels of that image.
    """

    image: Path
    boxes: tuple[tuple[float, float, float, float], ...]


def load_truth(path: str | Path) -> list[PageTruth]:
    """Read a ``truth.json`` describing page images and their true signature boxes.

    Accepted layouts (image paths relative to the json's folder)::

        {"pages": [{"image": "p1.png", "boxes": [[x1, y1, x2, y2], ...]}, ...]}
        [{"image": "p1.png", "boxes": [...]}, ...]
        {"p1.png": [[x1, y1, x2, y2], ...], ...}

    Each page may also give its boxes as ``"signatures": [{"bbox": [...]}, ...]``.

    Raises:
        InputError: the file is missing or not in one of these layouts.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"truth file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise InputError(f"invalid truth file {path}: {e}") from e
    if isinstance(data, dict) and "pages" in data:
        items: Iterable[Any] = data["pages"]
    elif isinstance(data, list):
        items = data
    elif isinstance(data, dict):
        items = [{"image": k, "boxes": v} for k, v in data.items()]
    else:
        raise InputError(f"invalid truth file {path}: expected a list or an object")
    pages = []
    try:
        for it in items:
            raw = it.get("boxes")
            if raw is None:
                raw = [s["bbox"] for s in it.get("signatures", [])]
            boxes = tuple((float(b[0]), float(b[1]), float(b[2]), float(b[3])) for b in raw)
            pages.append(PageTruth(image=path.parent / it["image"], boxes=boxes))
    except (KeyError, TypeError, IndexError, ValueError, AttributeError) as e:
        raise InputError(f"invalid truth file {path}: {e}") from e
    return pages


PageCounts = tuple[int, int, int]  # (true positives, false boxes, missed signatures) of one page


def page_counts(
    predictions: Sequence[Sequence[Detection]],
    truths: Sequence[Sequence[Sequence[float]]],
    iou_thr: float = 0.5,
) -> list[PageCounts]:
    """Per page, ``(true positives, false boxes, missed signatures)`` of detections already thresholded at the
    operating confidence (matched greedily, most confident first, at ``iou_thr``).

    Raises:
        ValueError: not one prediction list per page.
    """
    if len(predictions) != len(truths):
        raise ValueError(f"{len(predictions)} predictions for {len(truths)} pages")
    out = []
    for dets, truth in zip(predictions, truths, strict=True):
        ordered = sorted(dets, key=lambda d: -d.confidence)
        out.append(match_boxes(np.array([d.bbox for d in ordered]), np.array(truth, dtype=np.float64), iou_thr))
    return out


def _recall(counts: Sequence[PageCounts]) -> float:
    found = sum(c[0] for c in counts)
    total = found + sum(c[2] for c in counts)
    return found / total if total else float("nan")


def _false_boxes_per_page(counts: Sequence[PageCounts]) -> float:
    return sum(c[1] for c in counts) / len(counts) if counts else float("nan")


def _interval(lo_hi: tuple[float, float]) -> list[float]:
    return [round(lo_hi[0], 4), round(lo_hi[1], 4)]


def page_detection_stats(
    predictions: Sequence[Sequence[Detection]],
    truths: Sequence[Sequence[Sequence[float]]],
    iou_thr: float = 0.5,
    bootstrap: int = 0,
) -> dict[str, Any]:
    """Recall and false boxes per page for detections already thresholded at the operating confidence.

    Args:
        predictions: per page, the detector's output (as returned by :meth:`SignatureDetector.detect`).
        truths: per page, the true ``x1, y1, x2, y2`` boxes (possibly none).
        iou_thr: IoU needed for a detection to count as finding a true box.
        bootstrap: when > 0, also ``recall_ci95`` and ``false_boxes_per_page_ci95``: 95% bootstrap intervals over
            the pages (this many resamples; a page's signatures and false boxes are resampled together).

    Returns:
        ``{"pages", "signatures", "detections", "true_positives", "recall", "precision", "false_boxes_per_page",
        "pages_with_false_boxes", "blank_pages", "blank_pages_with_boxes"}`` (+ the intervals); a ratio with
        nothing to divide by (no true boxes, no detections, no pages) is ``None`` (JSON ``null``).
    """
    counts = page_counts(predictions, truths, iou_thr)
    tp = sum(c[0] for c in counts)
    fp = sum(c[1] for c in counts)
    fn = sum(c[2] for c in counts)
    n_pages = len(truths)
    blank = [len(t) == 0 for t in truths]
    out: dict[str, Any] = {
        "pages": n_pages,
        "signatures": tp + fn,
        "detections": tp + fp,
        "true_positives": tp,
        "recall": tp / (tp + fn) if tp + fn else None,
        "precision": tp / (tp + fp) if tp + fp else None,
        "false_boxes_per_page": fp / n_pages if n_pages else None,
        "pages_with_false_boxes": sum(c[1] > 0 for c in counts),
        "blank_pages": sum(blank),
        "blank_pages_with_boxes": sum(b and len(d) > 0 for b, d in zip(blank, predictions, strict=True)),
    }
    if bootstrap > 0 and n_pages:
        if tp + fn:
            out["recall_ci95"] = _interval(bootstrap_interval([counts], lambda s: _recall(s[0]), n=bootstrap))
        out["false_boxes_per_page_ci95"] = _interval(
            bootstrap_interval([counts], lambda s: _false_boxes_per_page(s[0]), n=bootstrap))
    return out


def compare_detections(
    predictions: Sequence[Sequence[Detection]],
    baseline: Sequence[Sequence[Detection]],
    truths: Sequence[Sequence[Sequence[float]]],
    iou_thr: float = 0.5,
    bootstrap: int = 1000,
) -> dict[str, Any]:
    """Two detectors on the same pages: differences (``predictions`` minus ``baseline``) of recall and of false
    boxes per page, with paired 95% bootstrap intervals (the same resampled pages for both; ``bootstrap``
    resamples, 0 for none). An interval that holds 0 is a difference these pages cannot tell from chance.

    Raises:
        ValueError: not one prediction list per page, or no pages.
    """
    a, b = page_counts(predictions, truths, iou_thr), page_counts(baseline, truths, iou_thr)
    if not a:
        raise ValueError("no pages to compare on")
    pairs = list(zip(a, b, strict=True))

    def diff(stat: Callable[[Sequence[PageCounts]], float]) -> Callable[[list[list[tuple]]], float]:
        return lambda s: stat([p[0] for p in s[0]]) - stat([p[1] for p in s[0]])

    out: dict[str, Any] = {}
    for key, stat in (("recall", _recall), ("false_boxes_per_page", _false_boxes_per_page)):
        value = stat(a) - stat(b)
        if np.isfinite(value):
            out[f"{key}_difference"] = round(value, 4)
            if bootstrap > 0:
                out[f"{key}_difference_ci95"] = _interval(bootstrap_interval([pairs], diff(stat), n=bootstrap))
    return out


def yolo_split_pages(root: str | Path, split: str) -> list[tuple[Path, np.ndarray]]:
    """True boxes of every page of one split of an Ultralytics dataset (``root/images/<split>``,
    ``root/labels/<split>``).

    Returns:
        ``(image path, (M, 4) float64 x1, y1, x2, y2 boxes in pixels of that image)`` per page, sorted by name; a
        page without a label file has no boxes.

    Raises:
        InputError: the split has no images, or an image cannot be read.
    """
    from PIL import Image

    folder = Path(root) / "images" / split
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []
    if not images:
        raise InputError(f"no images in {folder}")
    out = []
    for img_path in images:
        try:
            with Image.open(img_path) as im:  # reads the header only
                w, h = im.size
        except OSError as e:
            raise InputError(f"cannot read page image {img_path}: {e}") from e
        out.append((img_path, yolo_boxes(Path(root) / "labels" / split / (img_path.stem + ".txt"), w, h)))
    return out


def yolo_boxes(label: Path | None, width: int, height: int) -> np.ndarray:
    """The boxes of a YOLO label file (``class cx cy w h`` rows, normalised) as ``(M, 4)`` float64 x1, y1, x2, y2
    in pixels of a ``width`` x ``height`` image; none for no file (a page without signatures)."""
    text = label.read_text() if label is not None and label.is_file() else ""
    rows = [[float(v) for v in r.split()[1:5]] for r in text.splitlines() if r.strip()]
    return np.array([[(cx - bw / 2) * width, (cy - bh / 2) * height, (cx + bw / 2) * width, (cy + bh / 2) * height]
                     for cx, cy, bw, bh in rows], dtype=np.float64).reshape(-1, 4)


def document_predictions(
    detector: SignatureDetector, truth_json: str | Path, limit: int | None = None
) -> tuple[list[list[Detection]], list[tuple[tuple[float, ...], ...]]]:
    """Run ``detector`` (at its own confidence threshold) over the pages of a ``truth.json``.

    Args:
        detector: the detector, configured with the shipped thresholds.
        truth_json: see :func:`load_truth` (or a ``sigpipe datasets synth-documents`` truth file).
        limit: only the first ``limit`` pages (quick checks).

    Returns:
        ``(predictions, truths)``, one entry per page, as :func:`page_detection_stats` takes them.
    """
    preds, truths = [], []
    for img, boxes in _truth_pages(Path(truth_json), limit):
        preds.append(detector.detect(img))
        truths.append(boxes)
    return preds, truths


def evaluate_documents(
    detector: SignatureDetector, truth_json: str | Path, iou_thr: float = 0.5, limit: int | None = None
) -> dict[str, Any]:
    """:func:`page_detection_stats` of ``detector`` on the pages of a ``truth.json`` (see
    :func:`document_predictions`)."""
    preds, truths = document_predictions(detector, truth_json, limit)
    return page_detection_stats(preds, truths, iou_thr)


def _truth_pages(truth_json: Path, limit: int | None) -> Iterable[tuple[np.ndarray, tuple[tuple[float, ...], ...]]]:
    """``(page image, true boxes)`` pairs: page images listed by :func:`load_truth`, or the documents of a
    ``sigpipe datasets synth-documents`` truth file rendered through the pipeline's ingest at their dpi."""
    import cv2

    data = json.loads(truth_json.read_text()) if truth_json.is_file() else None
    if isinstance(data, dict) and "documents" in data:
        from sigpipe.pipeline.ingest import IngestConfig, iter_pages

        n = 0
        root = truth_json.parent
        if data["documents"] and not (root / data["documents"][0]["path"]).exists():
            root = root / "scans"  # the layout of examples/: truth.json beside scans/
        for doc in data["documents"]:
            cfg = IngestConfig(dpi=int(doc.get("dpi", 200)))
            for page in iter_pages(root / doc["path"], cfg):
                if limit is not None and n >= limit:
                    return
                n += 1
                yield page.image, tuple(tuple(s["bbox"]) for s in doc["signatures"] if s["page"] == page.number)
        return
    for p in load_truth(truth_json)[:limit]:
        img = cv2.imread(str(p.image), cv2.IMREAD_COLOR)
        if img is None:
            raise InputError(f"cannot read page image {p.image}")
        yield img, p.boxes
