"""YOLOv8 inference on exported models (ONNX Runtime, OpenVINO) without Ultralytics or torch.

``Ultralytics.predict`` costs about as much again as the forward pass of this small model on a 2-core CPU
(letterboxing through torch tensors, per-call setup, a torch NMS), and importing it pulls in torch and torchvision.
The production path needs none of that: this module letterboxes with OpenCV, runs the exported network, and applies
the same confidence filter, NMS and box mapping as Ultralytics, in numpy.

Letterboxing follows ``ultralytics.data.augment.LetterBox``: scale the page so its long side is ``imgsz`` and pad with
grey 114, centred. A static export (fixed ``1x3xSxS`` input) gets the full square; a dynamic export gets the
smallest stride-aligned rectangle, as Ultralytics does for PyTorch models: an A4 page at 512 becomes 512x416 and a
cheque strip 192x512, which is a third of the square's work. ``tests/detector`` checks the result against the ``.pt``
model run by Ultralytics.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

STRIDE = 32  # YOLOv8's largest stride: network inputs are multiples of it
PAD_VALUE = 114  # Ultralytics' letterbox grey
MAX_NMS = 30000  # Ultralytics' cap on boxes entering NMS
# How pages are shrunk to the network input. Ultralytics' loaders and ``predict`` use bilinear; "area" averages the
# pixels each input pixel covers, which keeps thin strokes continuous instead of aliased. A model is run with the
# downscaling it was trained with (its manifest's ``downscale``; ``sigpipe detector train --downscale``). Its training
# pages were at most about twice the network size (the real ones are at most 1000 px, synthetic ones are exported at
# 1024). In one bilinear step of 4x or more (a 200-dpi A4 page is 4.6x, a cheque on an A4 scanner bed at 300 dpi
# 7x) most pixels are dropped and thin strokes break up: a capture audit lost 3 of 37 signatures on such bed scans.
# So such pages are first halved (exact 2x2 averages) while :data:`HALVE_FROM` times the input or more; below that a
# bilinear step keeps more of a faint stroke's contrast than averages do (855 thin CEDAR signatures on 1600x600
# cheques, 3.1x: 602 found in one step, 552 halved first to 1.6x).
DOWNSCALE = {"bilinear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA}
HALVE_FROM = {"bilinear": 4, "area": 2}  # area resizes are slow at ratios that are not whole: halved down to 2x
# Pages longer than this for their width (a strip of cheques, documents scanned as one long image) are cut into
# overlapping windows: letterboxed whole, their signatures shrink below what the network finds (v5 found those of
# three cheques side by side, aspect 6.5, and of three letters stacked, 4.2, but none of five). Training pages reach
# 2.7 (cheques); windows are WINDOW_ASPECT long and overlap by the page's short side, more than a signature's length
# on a cheque, so each signature lies whole in one window.
MAX_ASPECT = 4.0
WINDOW_ASPECT = 2.5
# At most this many windows (one forward pass each): a strip only a few pixels high (1x5000 px, far under the pixel
# limit) would otherwise take thousands of passes and minutes; there the windows grow longer, still overlapping by
# the short side.
MAX_WINDOWS = 32
WINDOW_CONTAINED = 0.6  # a box mostly inside a more confident one from another window gives way to it
FUSE_IOU = 0.55  # boxes of one signature seen in two views of a page overlap at least this much (fuse_views)


# Security paper (guilloche, pantograph screens, microprint, tinted emblems) fills a cheque with lines lighter than
# ink but darker than paper, and the detector misses signatures written over it (session 38: 78 of 127 on such
# cheques against 121 of the same cheques on plain stock). The second look (SecondLook) measures how much of a page
# lies in those mid-tones (midtone_share) and stretches its levels (stretch_levels), which fades the pattern
# to paper and keeps the ink.
MIDTONES = (0.55, 0.92)  # mid-tones: this share of the paper's brightness, exclusive
PAPER_QUANTILE = 95  # the paper's brightness: this percentile of the page
LEVELS_FLOOR = 64.0  # a white point is never darker than this (at most 4x brighter)
BITONAL_MAX_GREYS = 0.02  # a page with fewer grey pixels (between 64 and 192) than this share is bitonal


@dataclass(frozen=True)
class SecondLook:
    """Patterned paper is looked at twice: a page on which the detector finds nothing and whose paper is patterned is
    looked at once more, its levels stretched; a strongly patterned page is looked at stretched first, and as
    scanned only when that finds nothing. A bitonal scan has no mid-tones left to stretch (a scanner's threshold
    has turned the pattern into black dots and lines): a bitonal cheque on which nothing is found is looked at
    through median filters that take out what is thinner than a pen's stroke (:func:`despeckled`).

    Attributes:
        white_quantile: each channel's white point for :func:`stretch_levels`, as a quantile of the page (0.10: what
            is lighter than the page's darkest tenth becomes paper).
        min_midtone_share: only pages with more than this share of :func:`midtone_share` get the second look
            (plain documents are paper and ink, about 0.05; a patterned cheque about 0.2).
        stretched_first_share: pages with more than this share are looked at stretched first (``None``: never).
            Looked at as scanned, a box on one of a cheque's signatures, or on a piece of its pattern, keeps the
            second look from coming; stretched, the pattern is gone (session 40: more signatures found on security
            cheques, fewer false boxes).
        bitonal_medians: the median filters' sizes (odd pixels), each tried in turn on a :func:`bitonal` page on
            which nothing has been found (empty: none).
        bitonal_min_aspect: the median filters are kept to pages at least this many times as wide as tall: a
            cheque (2.2-2.7), whose stock is the patterned paper; an unsigned page of a bitonal letter or contract
            would pay the looks for nothing (session 40: 14% of the throughput batch's pages, 15% of its time).
    """

    white_quantile: float
    min_midtone_share: float
    stretched_first_share: float | None = None
    bitonal_medians: tuple[int, ...] = ()
    bitonal_min_aspect: float = 0.0

    def __post_init__(self) -> None:
        first = self.stretched_first_share
        if not (0.0 < self.white_quantile < 1.0 and 0.0 <= self.min_midtone_share < 1.0
                and (first is None or self.min_midtone_share <= first < 1.0)
                and all(isinstance(k, int) and k >= 3 and k % 2 for k in self.bitonal_medians)
                and self.bitonal_min_aspect >= 0.0):
            raise ValueError(f"second look out of range: {self}")

    @classmethod
    def from_manifest(cls, look: dict[str, Any]) -> SecondLook:
        """From a detector manifest's ``second_look`` (:meth:`to_manifest`).

        Raises:
            KeyError, TypeError, ValueError: a field missing, of the wrong type or out of range.
        """
        first = look.get("stretched_first_share")
        return cls(float(look["white_quantile"]), float(look["min_midtone_share"]),
                   None if first is None else float(first), tuple(int(k) for k in look.get("bitonal_medians", ())),
                   float(look.get("bitonal_min_aspect", 0.0)))

    def to_manifest(self) -> dict[str, Any]:
        """The manifest's ``second_look``: the fields that are set."""
        return {"white_quantile": self.white_quantile, "min_midtone_share": self.min_midtone_share,
                **({"stretched_first_share": self.stretched_first_share}
                   if self.stretched_first_share is not None else {}),
                **({"bitonal_medians": list(self.bitonal_medians), "bitonal_min_aspect": self.bitonal_min_aspect}
                   if self.bitonal_medians else {})}

    def despeckles(self, page: np.ndarray) -> bool:
        """Whether a page on which nothing was found is looked at through :attr:`bitonal_medians`."""
        h, w = page.shape[:2]
        return bool(self.bitonal_medians) and w >= self.bitonal_min_aspect * h and bitonal(page)

    def stretched_first(self, share: float) -> bool:
        """Whether a page of this :func:`midtone_share` is looked at stretched first."""
        return self.stretched_first_share is not None and share > self.stretched_first_share


def midtone_share(page: np.ndarray) -> float:
    """The share of a BGR page's pixels in the mid-tones between ink and paper (:data:`MIDTONES` of the paper's
    brightness), each pixel read by its brightest channel (so a coloured pattern counts as light as it looks to a
    scanner's colour dropout). About one pixel in four each way is read, as it is: averaging neighbours would blend
    a fine screen into a flat tint, and the edges of print into mid-tones. About 1 ms for an A4 page at 200 dpi:
    it is asked of every page the second look is set for."""
    h, w = page.shape[:2]
    small = cv2.resize(page, ((w + 3) // 4, (h + 3) // 4), interpolation=cv2.INTER_NEAREST)
    g = small if small.ndim == 2 else cv2.max(cv2.max(small[:, :, 0], small[:, :, 1]), small[:, :, 2])
    hist = np.bincount(g.ravel(), minlength=256)
    cum = np.cumsum(hist)
    paper = max(int(np.searchsorted(cum, PAPER_QUANTILE / 100.0 * cum[-1])), 1)
    lo, hi = MIDTONES[0] * paper, MIDTONES[1] * paper
    levels = np.arange(256)
    return float(hist[(levels > lo) & (levels < hi)].sum() / cum[-1])


def bitonal(page: np.ndarray) -> bool:
    """Whether a BGR page is a bitonal scan: fewer than :data:`BITONAL_MAX_GREYS` of its pixels (every fourth each
    way) lie between black and white, as a 1-bit scan's, also saved as a JPEG, whose ringing leaves a few."""
    sample = np.ascontiguousarray(page[::4, ::4])
    g = cv2.cvtColor(sample, cv2.COLOR_BGR2GRAY) if sample.ndim == 3 else sample
    return bool(((g > 64) & (g < 192)).mean() < BITONAL_MAX_GREYS)


def despeckled(page: np.ndarray, size: int) -> np.ndarray:
    """A BGR page's gray through a ``size`` x ``size`` median filter, as BGR: dots and lines thinner than about half
    of ``size`` (a security pattern thresholded by a bitonal scanner) are gone, a pen's strokes stay."""
    gray = cv2.cvtColor(page, cv2.COLOR_BGR2GRAY) if page.ndim == 3 else page
    return cv2.cvtColor(cv2.medianBlur(gray, size), cv2.COLOR_GRAY2BGR)


def stretch_levels(page: np.ndarray, white_quantile: float) -> np.ndarray:
    """A BGR page with each channel's levels stretched so that its ``white_quantile`` brightness (never darker than
    :data:`LEVELS_FLOOR`) becomes white: a background lighter than the ink fades to paper and the ink stays."""
    sample = page[::4, ::4].reshape(-1, 3)  # every fourth pixel each way: the same quantiles, a sixteenth the cost
    white = np.maximum(np.percentile(sample, white_quantile * 100.0, axis=0), LEVELS_FLOOR)
    lut = np.clip(np.arange(256, dtype=np.float64)[:, None] * (255.0 / white)[None, :], 0, 255)
    return cv2.LUT(np.ascontiguousarray(page), np.round(lut).astype(np.uint8).reshape(1, 256, 3))


@dataclass(frozen=True)
class Letterbox:
    """Where a page went in the network input: per-axis scale and the left/top padding, in input pixels."""

    gain_x: float
    gain_y: float
    pad_x: int
    pad_y: int


def input_shape(page_hw: tuple[int, int], imgsz: int, rect: bool) -> tuple[int, int]:
    """The network input ``(H, W)`` for a page: ``(imgsz, imgsz)``, or with ``rect`` the smallest multiple of
    :data:`STRIDE` that holds the page scaled to a long side of ``imgsz``."""
    if not rect:
        return imgsz, imgsz
    h, w = page_hw
    r = min(imgsz / h, imgsz / w)
    nh, nw = max(round(h * r), 1), max(round(w * r), 1)
    return -(-nh // STRIDE) * STRIDE, -(-nw // STRIDE) * STRIDE


def fit_long_side(page_hw: tuple[int, int], imgsz: int) -> tuple[int, int]:
    """``(H, W)`` of a page shrunk to a long side of ``imgsz``, rounded as Ultralytics' dataset loader rounds
    (``ceil``, capped at ``imgsz``), so that its loader leaves an image of this size as it is."""
    h, w = page_hw
    r = imgsz / max(h, w)
    return min(math.ceil(h * r), imgsz), min(math.ceil(w * r), imgsz)


def resize(page: np.ndarray, hw: tuple[int, int], downscale: str = "bilinear") -> np.ndarray:
    """Resize a page to ``hw`` (H, W): shrinking with the ``downscale`` method (:data:`DOWNSCALE`), enlarging
    always bilinear (area interpolation is nearest-neighbour-like when enlarging).

    Shrinking halves the page while it is :data:`HALVE_FROM` times too large or more (bilinear at exactly half size
    averages each 2x2 block: the same as area averaging, and ~5x faster than OpenCV's area resize at ratios that are
    not whole numbers), then goes the rest of the way with ``downscale``: bilinear under 4x, area under 2x (then
    identical to one area resize).
    """
    h, w = page.shape[:2]
    if (h, w) == tuple(hw):
        return page
    if hw[0] * hw[1] >= h * w:
        return cv2.resize(page, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR)
    page = halved(page, hw, HALVE_FROM[downscale])
    if page.shape[:2] == tuple(hw):
        return page
    return cv2.resize(page, (hw[1], hw[0]), interpolation=DOWNSCALE[downscale])


def halved(page: np.ndarray, hw: tuple[int, int], factor: int = HALVE_FROM["bilinear"]) -> np.ndarray:
    """``page`` halved (bilinear at exactly half size: 2x2 averages) while it is at least ``factor`` times ``hw``
    (H, W) both ways: what is left to shrink it to ``hw`` is under ``factor``."""
    while page.shape[0] >= factor * hw[0] and page.shape[1] >= factor * hw[1]:
        page = cv2.resize(page, (page.shape[1] // 2, page.shape[0] // 2), interpolation=cv2.INTER_LINEAR)
    return page


def letterbox_size(page_hw: tuple[int, int], shape: tuple[int, int]) -> tuple[int, int]:
    """``(H, W)`` of a page scaled to fit ``shape`` (H, W) keeping its aspect ratio, as a letterbox scales it
    (rounded)."""
    h, w = page_hw
    r = min(shape[0] / h, shape[1] / w)
    return max(round(h * r), 1), max(round(w * r), 1)


def shrink_long_side(page: np.ndarray, imgsz: int, downscale: str) -> np.ndarray:
    """A page larger than ``imgsz`` shrunk to a long side of ``imgsz`` (:func:`fit_long_side`, :func:`resize`), as
    Ultralytics' loader would; a page that fits is returned as it is."""
    if max(page.shape[:2]) <= imgsz:
        return page
    return resize(page, fit_long_side(page.shape[:2], imgsz), downscale)


def letterbox(page: np.ndarray, shape: tuple[int, int], downscale: str = "bilinear") -> tuple[np.ndarray, Letterbox]:
    """Scale a BGR page into ``shape`` keeping its aspect ratio (shrinking with ``downscale``) and pad it centred;
    returns ``(3, H, W)`` RGB float32 in [0, 1] and the mapping back to page pixels."""
    h, w = page.shape[:2]
    nh, nw = letterbox_size((h, w), shape)
    img = resize(page, (nh, nw), downscale)
    dh, dw = (shape[0] - nh) / 2, (shape[1] - nw) / 2
    top, left = round(dh - 0.1), round(dw - 0.1)
    img = cv2.copyMakeBorder(img, top, shape[0] - nh - top, left, shape[1] - nw - left, cv2.BORDER_CONSTANT,
                             value=(PAD_VALUE,) * 3)
    # C-contiguous, so the runtimes take it without a copy of their own (astype on the transposed view kept its
    # strides: 1.6 ms a page in all, against 0.3 ms)
    x = np.ascontiguousarray(img[:, :, ::-1].transpose(2, 0, 1), dtype=np.float32)
    x *= np.float32(1 / 255)
    return x, Letterbox(nw / w, nh / h, left, top)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Greedy non-maximum suppression (as ``torchvision.ops.nms``): indices kept, highest score first; a box is
    dropped when its IoU with a kept, higher-scoring box exceeds ``iou``."""
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        iw = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        ih = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = iw * ih
        order = rest[inter / np.maximum(areas[i] + areas[rest] - inter, 1e-9) <= iou]
    return np.asarray(keep, dtype=np.int64)


def windows(page_hw: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    """Where the detector looks at a page: the whole page, or for a page over :data:`MAX_ASPECT` overlapping windows
    along its long side, evenly spaced from end to end (at most :data:`MAX_WINDOWS`).

    Returns:
        ``(y0, x0, y1, x1)`` windows in page pixels.
    """
    h, w = page_hw
    short, long_ = min(h, w), max(h, w)
    if long_ <= MAX_ASPECT * short:
        return [(0, 0, h, w)]
    size = int(round(WINDOW_ASPECT * short))
    n = int(np.ceil((long_ - size) / (size - short))) + 1
    if n > MAX_WINDOWS:  # windows of n = MAX_WINDOWS, each step at most the window's length less the short side
        n = MAX_WINDOWS
        size = int(np.ceil((long_ + (n - 1) * short) / n))
    starts = np.round(np.linspace(0, long_ - size, n)).astype(int)
    if w >= h:
        return [(0, int(s), h, int(s) + size) for s in starts]
    return [(int(s), 0, int(s) + size, w) for s in starts]


def merge_windows(found: list[tuple[np.ndarray, np.ndarray]], spans: list[tuple[int, int, int, int]],
                  page_hw: tuple[int, int], iou: float) -> tuple[np.ndarray, np.ndarray]:
    """One page's detections from its :func:`windows`.

    A box touching a window's edge inside the page is a signature the edge cut: the overlap puts it whole in the
    next window, so the cut box is dropped. The rest, moved to page pixels, go through NMS (a signature whole in two
    windows is found in both), where a box also gives way to a more confident one holding most of it.

    Args:
        found: per window, ``(N, 4)`` xyxy boxes in window pixels and ``(N,)`` confidences.
        spans: the windows, ``(y0, x0, y1, x1)`` in page pixels.
        page_hw: the page's ``(height, width)``.
        iou: the NMS threshold.

    Returns:
        ``(M, 4)`` boxes in page pixels and ``(M,)`` confidences, highest first.
    """
    h, w = page_hw
    boxes, confs = [], []
    for (y0, x0, y1, x1), (b, c) in zip(spans, found, strict=True):
        b = np.asarray(b, np.float64).reshape(-1, 4)
        tol = 0.005 * max(y1 - y0, x1 - x0) + 1
        cut = ((x0 > 0) & (b[:, 0] <= tol)) | ((x1 < w) & (b[:, 2] >= x1 - x0 - tol))
        cut |= ((y0 > 0) & (b[:, 1] <= tol)) | ((y1 < h) & (b[:, 3] >= y1 - y0 - tol))
        boxes.append(b[~cut] + (x0, y0, x0, y0))
        confs.append(np.asarray(c, np.float64).reshape(-1)[~cut])
    xyxy, conf = np.concatenate(boxes), np.concatenate(confs)
    areas = np.maximum((xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1]), 1e-9)
    keep: list[int] = []
    for i in np.argsort(-conf, kind="stable"):
        if keep:
            k = xyxy[keep]
            iw = np.clip(np.minimum(k[:, 2], xyxy[i, 2]) - np.maximum(k[:, 0], xyxy[i, 0]), 0, None)
            ih = np.clip(np.minimum(k[:, 3], xyxy[i, 3]) - np.maximum(k[:, 1], xyxy[i, 1]), 0, None)
            inter = iw * ih
            if np.any(inter / (areas[keep] + areas[i] - inter) > iou) or np.any(inter / areas[i] > WINDOW_CONTAINED):
                continue
        keep.append(int(i))
    return xyxy[keep], conf[keep]


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of two sets of ``x1, y1, x2, y2`` boxes.

    Args:
        a: ``(N, 4)`` float array.
        b: ``(M, 4)`` float array.

    Returns:
        ``(N, M)`` float64 array in ``[0, 1]``.
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ix1 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def fuse_views(views: list[tuple[np.ndarray, np.ndarray]], iou: float = FUSE_IOU) -> tuple[np.ndarray, np.ndarray]:
    """Weighted box fusion of one page's detections from several views (test-time augmentation).

    Boxes are taken highest confidence first; each opens a cluster of the boxes overlapping it (IoU >= ``iou``),
    at most one per view (that view's most confident; the cluster's other boxes are dropped, as NMS would). The
    fused box is the confidence-weighted mean of the cluster's boxes and its confidence the sum of their
    confidences over the number of views: a signature every view finds keeps its confidence, one that only one view
    of two finds gets half of it. So agreement between views raises a box above the threshold, and what a single
    view fires on alone falls below it.

    Args:
        views: per view, ``(N, 4)`` xyxy boxes in page pixels and ``(N,)`` confidences.
        iou: overlap that puts two boxes in one cluster.

    Returns:
        Fused ``(M, 4)`` boxes and ``(M,)`` confidences, highest first.
    """
    boxes = np.concatenate([np.asarray(b, np.float64).reshape(-1, 4) for b, _ in views])
    confs = np.concatenate([np.asarray(c, np.float64).reshape(-1) for _, c in views])
    view = np.concatenate([np.full(len(np.asarray(c).reshape(-1)), i) for i, (_, c) in enumerate(views)])
    overlaps = box_iou(boxes, boxes) >= iou
    used = np.zeros(len(boxes), bool)
    out_boxes, out_confs = [], []
    for i in np.argsort(-confs, kind="stable"):
        if used[i]:
            continue
        cluster = ~used & overlaps[i]
        members = []
        for v in range(len(views)):
            idx = np.flatnonzero(cluster & (view == v))
            if idx.size:
                members.append(idx[np.argmax(confs[idx])])
        used |= cluster
        w = confs[members]
        out_boxes.append((boxes[members] * w[:, None]).sum(0) / w.sum())
        out_confs.append(w.sum() / len(views))
    order = np.argsort(-np.asarray(out_confs), kind="stable")
    return np.asarray(out_boxes, np.float64).reshape(-1, 4)[order], np.asarray(out_confs, np.float64)[order]


def decode(
    pred: np.ndarray, lb: Letterbox, page_hw: tuple[int, int], conf: float, iou: float, max_det: int
) -> tuple[np.ndarray, np.ndarray]:
    """One image's raw YOLOv8 output ``(4 + classes, anchors)`` -> boxes ``(N, 4)`` xyxy in page pixels (clipped)
    and confidences ``(N,)``, after the confidence filter (``> conf``) and NMS, highest first."""
    scores = pred[4:].max(axis=0)
    cand = np.flatnonzero(scores > conf)
    if cand.size > MAX_NMS:
        cand = cand[np.argsort(-scores[cand])[:MAX_NMS]]
    cx, cy, bw, bh = pred[:4, cand].astype(np.float64)
    boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
    s = scores[cand].astype(np.float64)
    keep = nms(boxes, s, iou)[:max_det]
    boxes, s = boxes[keep], s[keep]
    h, w = page_hw
    boxes[:, [0, 2]] = np.clip((boxes[:, [0, 2]] - lb.pad_x) / lb.gain_x, 0, w)
    boxes[:, [1, 3]] = np.clip((boxes[:, [1, 3]] - lb.pad_y) / lb.gain_y, 0, h)
    return boxes, s


class Network(Protocol):
    """An exported detector: ``(N, 3, H, W)`` float32 -> ``(N, 4 + classes, anchors)`` float32."""

    dynamic: bool  # accepts any stride-aligned H, W (and batch); else only its fixed input
    fixed_size: int | None  # the square input size of a static export

    def __call__(self, x: np.ndarray) -> np.ndarray: ...


class OnnxNetwork:
    """An ONNX export on ONNX Runtime's CPU provider."""

    def __init__(self, path: Path, threads: int) -> None:
        from sigpipe._onnx import cpu_session

        self._session = cpu_session(path, threads)
        inp = self._session.get_inputs()[0]
        self._name = inp.name
        self.dynamic = not all(isinstance(d, int) for d in inp.shape)
        self.fixed_size = None if self.dynamic else int(inp.shape[2])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.dynamic:
            return self._session.run(None, {self._name: x})[0]
        return np.concatenate([self._session.run(None, {self._name: x[i : i + 1]})[0] for i in range(len(x))])


class OpenVinoNetwork:
    """An OpenVINO IR on the CPU, compiled in f32 by default (OpenVINO's own default where the CPU has bf16 is bf16,
    which shifts confidences by up to ~0.02, enough to move detections across the calibrated threshold), or in
    ``precision`` bf16 on request. A dynamic IR is compiled once per input shape, reshaped to that static shape
    (dynamic-shape inference is ~30% slower here); the last few compilations are kept."""

    CACHE = 8

    def __init__(self, path: Path, threads: int, precision: str = "f32") -> None:
        import openvino as ov

        from sigpipe._onnx import openvino_config

        xml = path if path.is_file() else next(path.glob("*.xml"))
        self._core = ov.Core()
        self._model = self._core.read_model(model=str(xml), weights=str(xml.with_suffix(".bin")))
        shape = self._model.inputs[0].get_partial_shape()
        self.dynamic = shape.is_dynamic
        self.fixed_size = None if self.dynamic else int(shape[2].get_length())
        self._config = openvino_config(threads, precision)
        self._compiled: OrderedDict[tuple[int, ...], object] = OrderedDict()
        # A CompiledModel's call reuses one infer request: two threads at once would swap inputs and outputs (a
        # predictor shared by a service's threads gave pages each other's boxes). One call at a time, and its output
        # copied before the next.
        self._lock = threading.Lock()
        if not self.dynamic:
            self._compiled[()] = self._core.compile_model(self._model, "CPU", self._config)

    def _compiled_for(self, shape: tuple[int, ...]):  # noqa: ANN202 - an openvino CompiledModel
        key = shape if self.dynamic else ()
        if key in self._compiled:
            self._compiled.move_to_end(key)
            return self._compiled[key]
        model = self._model.clone()
        model.reshape(list(shape))
        self._compiled[key] = compiled = self._core.compile_model(model, "CPU", self._config)
        while len(self._compiled) > self.CACHE:
            self._compiled.popitem(last=False)
        return compiled

    def __call__(self, x: np.ndarray) -> np.ndarray:
        with self._lock:
            compiled = self._compiled_for((1, *x.shape[1:]))
            return np.concatenate([np.array(compiled(x[i : i + 1])[0]) for i in range(len(x))])


def load_network(path: Path, backend: str, threads: int, precision: str = "f32") -> Network:
    """Open an ONNX file or OpenVINO folder/IR for inference (``precision`` bf16: OpenVINO only)."""
    if backend == "onnx" and precision == "f32":
        return OnnxNetwork(path, threads)
    if backend == "openvino":
        return OpenVinoNetwork(path, threads, precision)
    raise ValueError(f"no exported runtime for backend {backend!r} in {precision}")
