"""Signature preprocessing: from a scanned crop to the network's input (pure numpy/OpenCV).

In the spirit of SigNet (Hafemann et al.): remove the paper background with Otsu, drop ruling lines and specks,
crop to the ink, centre it on a fixed canvas keeping the aspect ratio, invert (ink = bright) and normalise the ink
intensity so that grey scans, binarised scans and JPEG'd detector crops look alike. The parameters live in the
verifier's manifest (``PreprocessConfig.to_dict``), so training and inference cannot drift.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import cv2
import numpy as np

from sigpipe.datasets.corpus import GRAY_CHANNELS


@dataclass(frozen=True)
class PreprocessConfig:
    """Parameters of :func:`preprocess`.

    Attributes:
        height, width: output canvas in pixels.
        margin: empty border kept around the ink on the canvas, in output pixels.
        blur: Gaussian kernel (odd) applied before Otsu to ignore paper texture; 0 disables.
        line_frac: straight horizontal/vertical ink runs longer than this fraction of the crop's width/height are
            removed as ruling lines or box borders; 0 disables.
        line_tilt: also remove such runs tilted from the horizontal by up to this many degrees (a signature line
            on a page scanned a little askew climbs a few pixels across the crop and escaped the horizontal
            test); 0 disables (earlier models, whose settings omit it).
        colour: how a colour crop or specimen becomes gray: ``"luma"`` (luminance; earlier models, whose settings
            omit it) or ``"red"`` (its red channel: red dropout, so a red stamp or red print over a signature
            fades into the paper while blue and black pens stay dark).
        flatten: when the paper's brightness varies across the crop by more than this fraction (a phone's shadow,
            a page lit from one side, a fold), the crop is divided by an estimate of the paper first
            (:func:`flatten_paper`), so that one global threshold separates ink from paper again; 0 disables
            (earlier models, whose settings omit it). Evenly lit scans stay below it and are left as they are.
        line_otsu: once printed lines are found, threshold again (Otsu) over the crop without them, when the ink left
            is at least this many grey levels darker than its paper on average. A black signature line beside a
            ballpoint's faint strokes pulled the one threshold between the line and everything else, and the strokes
            went with the paper; a bare line on grainy paper stays blank. 0 disables (earlier models, whose settings
            omit it).
        line_mend: give back the strokes a removed line cut (:func:`_mended`): a signature written through its line
            otherwise reached the network with a gap across every stroke. False: earlier models, whose settings
            omit it.
        min_component: ink components smaller than this fraction of the crop's area are dropped as specks.
        ink_percentile: the ink intensity at this percentile maps to 1.0 (contrast normalisation).
    """

    height: int = 80
    width: int = 160
    margin: int = 2
    blur: int = 3
    line_frac: float = 0.6
    min_component: float = 2e-5
    ink_percentile: float = 90.0
    line_tilt: float = 0.0
    colour: str = "luma"
    flatten: float = 0.0
    line_otsu: float = 0.0
    line_mend: bool = False

    def __post_init__(self) -> None:
        if self.colour not in GRAY_CHANNELS:
            raise ValueError(f"colour must be one of {GRAY_CHANNELS}, got {self.colour!r}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if not self.line_tilt:  # as earlier models' settings read: caches keyed on them stay valid
            del d["line_tilt"]
        if self.colour == "luma":
            del d["colour"]
        if not self.flatten:
            del d["flatten"]
        if not self.line_otsu:
            del d["line_otsu"]
        if not self.line_mend:
            del d["line_mend"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PreprocessConfig:
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown preprocessing parameters: {sorted(unknown)}")
        return cls(**d)


def to_gray(img: np.ndarray, colour: str = "luma") -> np.ndarray:
    """Any ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)`` uint8 image (BGR order for colour) to ``(H, W)`` uint8: by its
    luminance, or with ``colour`` "red" by its red channel (:class:`PreprocessConfig`); with an alpha channel, the
    transparent parts are white paper (an e-signature's ink is often in the alpha channel alone), as files with
    transparency are read.

    Raises:
        ValueError: not uint8, no pixels, or another shape.
    """
    if img.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {img.dtype}")
    if img.size == 0:
        raise ValueError(f"expected an image with pixels, got shape {img.shape}")
    if img.ndim == 2:
        return img
    red = colour == "red"
    if img.ndim == 3 and img.shape[2] == 4:
        bgr = np.ascontiguousarray(img[..., :3])
        gray = (bgr[..., 2] if red else cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)).astype(np.float32)
        alpha = img[..., 3].astype(np.float32) / 255.0
        return np.round(gray * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    if img.ndim == 3 and img.shape[2] == 3:
        return np.ascontiguousarray(img[..., 2]) if red else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    raise ValueError(f"expected a 2-D grayscale or 3-D colour image, got shape {img.shape}")


def paper_estimate(gray: np.ndarray) -> np.ndarray:
    """The paper's brightness under each pixel of a grayscale crop, ink removed: ``(H, W)`` uint8.

    A morphological closing with a square a sixth of the crop's short side (at least 15 px) fills in the strokes,
    which are thinner than that, with the paper around them and keeps a shadow's edge where it is; a box blur then
    smooths the estimate, except where it would lift the paper above the closing (the dark side of a shadow's edge,
    which would then read as ink).
    """
    k = max(15, (min(gray.shape) // 6) | 1)
    padded = cv2.copyMakeBorder(gray, k, k, k, k, cv2.BORDER_REPLICATE)  # OpenCV's own border darkens corners
    bg = cv2.morphologyEx(padded, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k)))[k:-k, k:-k]
    s = max(3, (k // 3) | 1)
    return np.minimum(bg, cv2.blur(bg, (s, s)))


def flatten_paper(gray: np.ndarray, threshold: float) -> np.ndarray:
    """Even out the lighting of a grayscale crop: divided by :func:`paper_estimate` when that estimate's spread
    (its 98th less its 2nd percentile, over its 98th) exceeds ``threshold``, else returned as it is.

    Dividing keeps each stroke's contrast with the paper beside it, so ink in a shadow ends as dark as ink in the
    light. Evenly lit corpus specimens and scans measure below 0.07; a phone's shadow or a gradient of a third
    measures 0.2 to 0.45.
    """
    if threshold <= 0:
        return gray
    bg = paper_estimate(gray)
    lo, hi = np.percentile(bg[:: max(1, bg.shape[0] // 64), :: max(1, bg.shape[1] // 64)], (2, 98))
    if hi - lo <= threshold * max(float(hi), 1.0):
        return gray
    flat = gray.astype(np.float32) * (255.0 / np.maximum(bg, 1).astype(np.float32))
    return np.clip(np.round(flat), 0, 255).astype(np.uint8)


def ink_mask(gray: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Foreground (ink) mask of a grayscale crop.

    Args:
        gray: ``(H, W)`` uint8, dark ink on light paper.

    Returns:
        ``(H, W)`` bool, True where there is ink (ruling lines and specks removed).
    """
    return _ink_and_lines(gray, cfg)[0]


BLANK_RANGE = 16  # grey levels: a crop (or what is left of it once its lines are out) spanning fewer holds no ink


def _ink_and_lines(gray: np.ndarray, cfg: PreprocessConfig) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`ink_mask` and where printed lines were taken out of the ink (``(H, W)`` bool, the lines as removed:
    grown by a pixel, so with the strokes' pixels where they cross), or None when none were."""
    g = cv2.GaussianBlur(gray, (cfg.blur, cfg.blur), 0) if cfg.blur > 1 else gray
    if int(g.max()) - int(g.min()) < BLANK_RANGE:  # blank: no ink at all
        return np.zeros(gray.shape, bool), None
    thr, _ = cv2.threshold(g, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    mask: np.ndarray = (g <= thr).astype(np.uint8)
    h, w = mask.shape
    removed = None
    if cfg.line_frac > 0:
        lines = _printed_lines(mask, cfg)
        if lines.any() and cfg.line_otsu > 0:
            thr2 = _threshold_without(g, lines, cfg.line_otsu)
            if thr2 is not None and thr2 > thr:
                mask = (g <= thr2).astype(np.uint8)
                # the same lines with the pixels the higher threshold adds to them: the level and upright runs found
                # again (cheap); a tilted line's first find, grown by a pixel, covers its fringe (searching for the
                # tilt again made a large crop 12 ms slower to preprocess)
                lines |= _printed_lines(mask, replace(cfg, line_tilt=0.0))
        if lines.any():
            mask &= 1 - lines
            if cfg.line_mend:
                mask |= _mended(mask, lines)
            removed = lines.astype(bool)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n > 1:
        min_area = max(2, int(cfg.min_component * h * w))
        keep = np.zeros(n, bool)
        keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_area
        mask = keep[labels]
    return mask.astype(bool), removed


TILT_STEP_DEG = 0.1  # the tilts tried: over a 600-px crop a line off by half a step climbs 0.5 px
RULED_FRAC = 0.97  # of a line's columns clear of strokes, those whose two edges lie on its two straight rows


def _mended(mask: np.ndarray, lines: np.ndarray) -> np.ndarray:
    """Where the strokes crossed the ``lines`` taken out of an ink ``mask`` (both uint8): uint8 1 there, only inside
    the lines. A stroke through a level line has a gap the removed band's height; closing the mask with an upright
    run two pixels longer than that bridges it where ink lies above and below (an upright line, a box's border:
    sideways). Longer runs, or runs slanted along a stroke's usual angle, also joined strokes that only came near
    the line and judged worse (session 44, ``docs/models.md``)."""
    cols, rows = lines.any(axis=0), lines.any(axis=1)
    tall = int(np.median(lines[:, cols].sum(axis=0))) if cols.any() else 0  # a level band's height
    wide = int(np.median(lines[rows].sum(axis=1))) if rows.any() else 0  # an upright one's width
    out = np.zeros_like(mask)
    if 0 < tall < mask.shape[0] // 2:
        out |= cv2.morphologyEx(mask, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (1, tall + 2)))
    if 0 < wide < mask.shape[1] // 2:
        out |= cv2.morphologyEx(mask, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (wide + 2, 1)))
    return out & lines


def _threshold_without(g: np.ndarray, lines: np.ndarray, contrast: float) -> float | None:
    """Otsu's threshold of the crop ``g`` without the printed ``lines`` (uint8 1 on them), or None when what is left
    has no ink: its darker class not at least ``contrast`` grey levels darker than its lighter on average (paper
    grain, JPEG ringing beside a line)."""
    rest = g[lines == 0]
    if rest.size == 0 or int(rest.max()) - int(rest.min()) < BLANK_RANGE:
        return None
    thr, _ = cv2.threshold(rest.reshape(-1, 1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    dark = rest <= thr
    if dark.all() or not dark.any() or float(rest[~dark].mean()) - float(rest[dark].mean()) < contrast:
        return None
    return float(thr)


def _printed_lines(mask: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Ruling lines and box borders in an ink ``mask`` (``(H, W)`` uint8), grown by a pixel: uint8 1 on them."""
    h, w = mask.shape
    lines: np.ndarray = np.zeros_like(mask)
    kw = max(int(w * cfg.line_frac), 15)
    kh = max(int(h * cfg.line_frac), 15)
    if kw < w:
        lines |= cv2.morphologyEx(mask, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (kw, 1)))
    if kh < h:
        lines |= cv2.morphologyEx(mask, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (1, kh)))
    if cfg.line_tilt > 0 and kw < w:
        lines |= _tilted_lines(mask, kw, cfg.line_tilt)
    return cv2.dilate(lines, np.ones((3, 3), np.uint8)) if lines.any() else lines


def _tilted_lines(mask: np.ndarray, length: int, max_deg: float) -> np.ndarray:
    """Printed lines (:func:`_ruled`) at least ``length`` long at the one tilt within ``max_deg`` of the horizontal
    (not 0) along which the most ink lines up, if there is one: ``(H, W)`` uint8 1 on them.

    The tilt is the Hough transform's strongest line of at least ``length`` votes; the mask is then sheared column
    by column so that the line lies flat, opened with a horizontal run of ``length`` as the untilted test does (only
    a straight, unbroken run survives it: strokes of a signature lined up by chance do not), and sheared back.
    """
    h, w = mask.shape
    out = np.zeros_like(mask)
    half = np.radians(max_deg)
    found = cv2.HoughLines(mask, 1, np.radians(TILT_STEP_DEG), length, min_theta=np.pi / 2 - half,
                           max_theta=np.pi / 2 + half)
    if found is None:
        return out
    tilt = float(found[0, 0, 1]) - np.pi / 2  # the strongest first; > 0: the line falls to the right (image rows)
    if abs(tilt) < np.radians(TILT_STEP_DEG) / 2:
        return out  # horizontal: the untilted test's
    shift = np.round(np.arange(w) * np.tan(tilt)).astype(np.int64)  # the line's row at x, less its row at 0
    ys, xs = np.nonzero(mask)
    rows = ys - shift[xs]
    low = int(rows.min())
    flat = np.zeros((int(rows.max()) - low + 1, w), np.uint8)
    flat[rows - low, xs] = 1
    runs: np.ndarray = cv2.morphologyEx(flat, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (length, 1)))
    runs &= flat  # OpenCV's opening may grow along the border: only ink is a line's
    n, labels, stats, _ = cv2.connectedComponentsWithStats(runs, connectivity=8)
    keep = np.zeros(n, bool)
    for i in range(1, n):
        keep[i] = _ruled(flat, labels == i, stats[i])
    ry, rx = np.nonzero(keep[labels])
    out[ry + low + shift[rx], rx] = 1
    return out


def _ruled(flat: np.ndarray, run: np.ndarray, stat: np.ndarray) -> bool:
    """Whether a long straight run of ink (``run``, in the sheared ``flat`` mask) is a printed line rather than a
    pen's flourish (an underline that is part of the signature): a ruled line keeps its edges on two straight rows
    along its length, within a pixel, where strokes do not cross it; a pen stroke's edges wander with its curve and
    pressure (a CEDAR writer's long underline was taken for a line without this test)."""
    x0, width = int(stat[cv2.CC_STAT_LEFT]), int(stat[cv2.CC_STAT_WIDTH])
    row = int(np.median(np.nonzero(run)[0]))
    cols = flat[:, x0 : x0 + width].astype(bool)
    # each column's ink run through the line's row: its top and bottom edge
    above = np.cumsum(~cols[row::-1], axis=0) == 0  # ink from the row up, unbroken
    below = np.cumsum(~cols[row:], axis=0) == 0
    top = row - (above.sum(axis=0) - 1)
    bottom = row + below.sum(axis=0) - 1
    thick = bottom - top + 1
    clear = thick <= np.median(thick) + 1  # columns no stroke crosses
    if clear.sum() < 0.5 * width:
        return False
    on = lambda edge: np.abs(edge[clear] - np.median(edge[clear])) <= 1  # noqa: E731
    return bool((on(top) & on(bottom)).mean() >= RULED_FRAC)


def preprocess(img: np.ndarray, cfg: PreprocessConfig = PreprocessConfig()) -> np.ndarray:
    """Normalise one signature image for the embedding network.

    Args:
        img: ``(H, W)`` grayscale or ``(H, W, 3)`` BGR uint8 crop, dark ink on light paper, any size.
        cfg: preprocessing parameters (from the model's manifest).

    Returns:
        ``(cfg.height, cfg.width)`` float32 in [0, 1]: 0 = background, ~1 = ink, the ink's bounding box centred
        and scaled to fit inside the margin. An image without ink gives all zeros.

    Raises:
        ValueError: not a uint8 image with pixels (:func:`to_gray`).
    """
    return preprocess_marked(img, cfg)[0]


def preprocess_marked(img: np.ndarray, cfg: PreprocessConfig = PreprocessConfig()
                      ) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`preprocess`, and where on its canvas printed lines were taken out of the ink (``(cfg.height,
    cfg.width)`` bool: a stroke that crossed a signature line has a gap there), or None when none crossed the
    ink's box. The copy check (``sigpipe.verifier.copies``) leaves those pixels out of its comparison."""
    gray = flatten_paper(to_gray(np.asarray(img), cfg.colour), cfg.flatten)
    out = np.zeros((cfg.height, cfg.width), np.float32)
    mask, removed = _ink_and_lines(gray, cfg)
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return out, None
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    crop = np.where(mask[y0:y1, x0:x1], 255 - gray[y0:y1, x0:x1], 0).astype(np.float32)
    level = np.percentile(crop[mask[y0:y1, x0:x1]], cfg.ink_percentile)
    crop = np.clip(crop / max(level, 1.0), 0.0, 1.0)
    h, w = crop.shape
    scale = min((cfg.height - 2 * cfg.margin) / h, (cfg.width - 2 * cfg.margin) / w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    small = cv2.resize(crop, (nw, nh), interpolation=interp)
    top, left = (cfg.height - nh) // 2, (cfg.width - nw) // 2
    out[top : top + nh, left : left + nw] = small
    if removed is None or not removed[y0:y1, x0:x1].any():
        return out, None
    gaps = cv2.resize(removed[y0:y1, x0:x1].astype(np.float32), (nw, nh), interpolation=cv2.INTER_AREA)
    marked = np.zeros(out.shape, bool)
    marked[top : top + nh, left : left + nw] = gaps > 0
    return out, marked


def preprocess_batch(images: list[np.ndarray], cfg: PreprocessConfig = PreprocessConfig()) -> np.ndarray:
    """:func:`preprocess` over a list; returns ``(N, 1, height, width)`` float32 in [0, 1]."""
    out = np.zeros((len(images), 1, cfg.height, cfg.width), np.float32)
    for i, im in enumerate(images):
        out[i, 0] = preprocess(im, cfg)
    return out


def has_ink(x: np.ndarray) -> np.ndarray:
    """Which preprocessed inputs ``(N, 1, H, W)`` in [0, 1] hold ink an 8-bit image would keep: ``(N,)`` bool. An
    input without any was blank, or lost all its strokes to the preprocessing (ink fainter than a printed line
    beside it): the verifier sees nothing to judge there."""
    kept = np.round(np.asarray(x)[:, 0] * 255) > 0
    return np.asarray(kept.any(axis=(1, 2)), dtype=bool)
