"""Pages scanned or photographed a few degrees askew: how far, levelling them, and mapping boxes and crops back.

A page fed in at 3 degrees, or a cheque photographed by a phone held at a slant, has its printed lines and its
signature tilted: the detector misses more signatures from about 6 degrees, and a crop of its box takes in the
print around the signature, whose tilted lines the verifier's line removal does not catch (a helper measured genuine
cheques accepted 24 of 30 at 2 degrees, 11 of 30 at 8, against 30 of 30 level). The skew is the angle that makes the
page's ink line up in the sharpest rows (a projection profile over its ink pixels); the page is levelled before
detection, boxes are reported in pixels of the page as scanned (the box's hull), and the signature is cropped
levelled (:func:`level_crop`), from the page as scanned, so that a report's ``bbox``, ``page_rotation`` and
``page_skew`` are all it takes to crop it again.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

MAX_SKEW_DEG = 10.0  # a page further askew than this is left as it is (a page on purpose at an angle, a diagram)
MIN_SKEW_DEG = 1.0  # below this, no page is touched: a straight scan stays exactly as it was
MIN_GAIN = 1.15  # the levelled profile must be this much sharper than the page as it is
PROFILE_SIDE = 600  # the page is measured at this long side
MAX_POINTS = 12_000  # ink pixels measured (every n-th)
LETTER_SIZE = 20  # ink marks at most this wide and tall at the measuring scale are letters (12-pt text: about 8)


def estimate_skew(page: np.ndarray) -> float:
    """The angle in degrees (counter-clockwise, as ``cv2.getRotationMatrix2D`` takes it) that levels ``page``'s
    lines of ink, or 0.0 when it is under :data:`MIN_SKEW_DEG`, over :data:`MAX_SKEW_DEG`, or not clearly better
    than leaving the page as it is (too little ink, no lines).

    Args:
        page: ``(H, W)`` or ``(H, W, 3)`` uint8, dark ink on light paper.
    """
    every = max(1, math.ceil(max(page.shape[:2]) / PROFILE_SIDE))  # every n-th pixel: a resize cost more than all
    gray = np.ascontiguousarray(page[::every, ::every] if page.ndim == 2 else page[::every, ::every, 1])
    if int(gray.max()) - int(gray.min()) < 32:
        return 0.0
    thr, _ = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    ink = (gray < thr).astype(np.uint8)  # a dark table around a photographed cheque is one large mark: left out below
    # printed letters only: small marks in rows; a signature's strokes join into large ones, and a page with nothing
    # but a signature (a specimen, a slip) would otherwise be "levelled" at the signature's own slant
    n, labels, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    small = np.zeros(n, bool)
    small[1:] = np.maximum(stats[1:, cv2.CC_STAT_WIDTH], stats[1:, cv2.CC_STAT_HEIGHT]) <= LETTER_SIZE
    ys, xs = np.nonzero(small[labels])
    if ys.size < 200:
        return 0.0
    step = max(1, ys.size // MAX_POINTS)
    y, x = ys[::step].astype(np.float64), xs[::step].astype(np.float64)

    def sharpness(deg: float) -> float:
        a = math.radians(deg)
        rows = np.round(math.cos(a) * y - math.sin(a) * x).astype(np.int64)
        counts = np.bincount(rows - rows.min())
        return float(np.dot(counts, counts))

    coarse = max(np.arange(-MAX_SKEW_DEG, MAX_SKEW_DEG + 1e-9, 0.5), key=sharpness)
    best = float(max(np.arange(coarse - 0.5, coarse + 0.5 + 1e-9, 0.1), key=sharpness))
    if abs(best) < MIN_SKEW_DEG or abs(best) > MAX_SKEW_DEG or sharpness(best) < MIN_GAIN * sharpness(0.0):
        return 0.0
    return round(best, 1)


def level(page: np.ndarray, skew: float) -> tuple[np.ndarray, np.ndarray]:
    """``page`` turned by ``skew`` degrees counter-clockwise on a canvas that holds all of it (paper white around
    it); also the 2x3 affine matrix from the page's pixels to the levelled page's."""
    h, w = page.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), skew, 1.0)
    c, s = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(math.ceil(w * c + h * s)), int(math.ceil(w * s + h * c))
    m[0, 2] += nw / 2 - w / 2
    m[1, 2] += nh / 2 - h / 2
    return _warp(page, m, (nw, nh)), m


def _warp(image: np.ndarray, m: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` through the affine ``m`` onto a canvas of ``size`` (w, h), paper white where it does not reach."""
    white = (255,) * (image.shape[2] if image.ndim == 3 else 1)
    return cv2.warpAffine(image, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=white)


def box_from_level(bbox: tuple[float, float, float, float], m: np.ndarray, size: tuple[int, int]
                   ) -> tuple[float, float, float, float]:
    """A box on the levelled page (:func:`level`'s matrix ``m``) as the box holding it on the page before levelling,
    whose ``(width, height)`` is ``size``, clipped to it."""
    x1, y1, x2, y2 = bbox
    corners = np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], np.float64)
    back = cv2.invertAffineTransform(m)
    pts = corners @ back[:, :2].T + back[:, 2]
    w, h = size
    return (float(np.clip(pts[:, 0].min(), 0, w)), float(np.clip(pts[:, 1].min(), 0, h)),
            float(np.clip(pts[:, 0].max(), 0, w)), float(np.clip(pts[:, 1].max(), 0, h)))


def level_crop(upright: np.ndarray, hull: tuple[float, float, float, float], skew: float,
               margin: float) -> np.ndarray:
    """The levelled crop of a box found on a page levelled by ``skew`` degrees, from ``upright``, the page before
    levelling, in whose pixels ``hull`` is the box's hull (:func:`box_from_level`): the box's centre and size come
    back from the hull, the region around it is cut out (paper white past the page's edges), turned by ``skew`` and
    cut to the box plus ``margin`` of its size on each side, as a crop of the levelled page would be."""
    x1, y1, x2, y2 = hull
    cx, cy, hw, hh = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
    a = math.radians(abs(skew))
    c, s = math.cos(a), math.sin(a)
    det = c * c - s * s  # the hull of a w x h box turned by a: (w c + h s, w s + h c); solved back for w, h
    w = max(1.0, (hw * c - hh * s) / det)
    h = max(1.0, (hh * c - hw * s) / det)
    ow, oh = max(1, round(w * (1 + 2 * margin))), max(1, round(h * (1 + 2 * margin)))
    m = cv2.getRotationMatrix2D((cx, cy), skew, 1.0)  # the levelling, about the box's centre
    m[0, 2] += ow / 2 - cx
    m[1, 2] += oh / 2 - cy
    return _warp(upright, m, (ow, oh))
