"""A questioned signature that is a copy of one of the person's own specimens: the same image pasted onto the
document (a specimen card scanned in, a signature cut from an earlier cheque), not signed anew.

Two signings of one hand are never the same picture: strokes wander, pressure and joins change. A pasted image is,
up to the scale, the blur and the compression of its new document, and the verifier's preprocessing (cut to the
ink, scaled to one canvas) undoes the scale. So the questioned signature's canvas is compared pixel by pixel with
each of the person's specimens' (normalised cross-correlation, lightly blurred, the best over shifts of a few
pixels): the verifier's distance cannot tell, since a copy is the nearest genuine signature there can be.

Measured on the preprocessed canvases of the three corpora (session 37, ``work/copy/measure.py``): distinct genuine
signatures of one writer reach 0.906 (CEDAR, 12,420 pairs; BHSig's pairs above 0.95 are the corpora's own copies of
one image); digital copies of a specimen, scaled 0.6x or 1.5x, JPEG at quality 40, blurred or noised, are caught
2,328 times in 2,340 (``work/copy/copies37.py``). A copy whose crop takes in other ink (print beside it) falls
among genuine signatures. One printed over a signature line lost its strokes where they crossed the line, with the
line, in the preprocessing: those pixels are left out of the comparison (``gaps``; session 43, 6 of 200 BHSig-Hindi
copies so printed were told before, 197 after, ``benchmarks/copies.py``).

A copy pasted a little askew (by hand, or printed and scanned again) is turned on the canvas too: the preprocessing
cuts a turned signature to a taller box, so it comes out turned *and* smaller. Before that the check caught 74 of
390 copies turned by one degree (session 37) and, of 90 CEDAR copies, 2 turned by two degrees and none by three. So
the questioned canvas is also compared after being turned and scaled onto each specimen's ink: their principal axes
and spreads along them (the ink's second moments) give the angle and the scale, their centres of mass the shift,
within :data:`COPY_TURN` degrees (session 43, ``/tmp/s43/copylib.py``, not kept; README, "Copied signatures").
"""

from __future__ import annotations

import cv2
import numpy as np

# at or above: the questioned signature is taken for a copy of that specimen. The manifest's
# ``decision.copy_similarity`` holds it for a verifier (calibration writes this value); none there, no check.
COPY_SIMILARITY = 0.95
# ... and at least this much above the most alike two of the person's own specimens: re-signings of a simple mark (a
# single curved stroke, a tick) are as alike as copies once cut to the ink and scaled (a retest's synthetic marks:
# 92 of 240 re-signings over the bar alone, 5 with this margin; no corpus copy lost, work/copy/relative.py)
COPY_MARGIN = 0.04
COPY_SHIFT = 8  # px of the canvas the two may be offset by (the crop's margin, ink cut otherwise)
COPY_BLUR = 1.0  # Gaussian sigma, px of the canvas: resampling and compression differences smoothed over
# the most the questioned ink's principal axis may be turned from a specimen's to be aligned onto it, degrees: copies
# turned by 16 were not caught, and a rounder signature's axis is itself unsteady
COPY_TURN = 15.0
COPY_TURN_MIN = 0.25  # axes nearer than this (degrees) are not turned: the plain comparison holds
COPY_GAP_GROW = 2  # px of the canvas the gaps a printed line's removal left are grown by (the blur's reach)


def _smooth(image: np.ndarray) -> np.ndarray:
    """A canvas as floats, lightly blurred (the correlation is the same for [0, 1] floats and uint8)."""
    x = np.asarray(image, np.float32)
    if x.ndim == 3:  # (1, H, W) as Verifier.prepare gives one signature
        x = x[0]
    return cv2.GaussianBlur(x, (0, 0), COPY_BLUR)


def _ink_frame(canvas: np.ndarray) -> tuple[float, tuple[float, float], float] | None:
    """The ink's principal axis (degrees, as OpenCV turns images: counter-clockwise on screen), its centre of
    mass ``(x, y)`` and its spread (standard deviation) along that axis, from the canvas' moments; None without
    ink."""
    m = cv2.moments(np.asarray(canvas, np.float32))
    if m["m00"] <= 0:
        return None
    a, b, c = m["mu20"] / m["m00"], m["mu11"] / m["m00"], m["mu02"] / m["m00"]
    angle = 0.5 * float(np.degrees(np.arctan2(2 * b, a - c)))  # image rows run down: -angle on screen
    spread = float(np.sqrt(0.5 * (a + c) + np.sqrt(0.25 * (a - c) ** 2 + b * b)))
    return -angle, (m["m10"] / m["m00"], m["m01"] / m["m00"]), spread


def _alignment(q_frame: tuple[float, tuple[float, float], float],
               s_frame: tuple[float, tuple[float, float], float]) -> np.ndarray | None:
    """The affine map that turns, scales and shifts the query's ink frame onto the specimen's; None when the two
    axes are nearly the same (nothing to turn) or more than :data:`COPY_TURN` apart."""
    turn = s_frame[0] - q_frame[0]
    if not COPY_TURN_MIN <= abs(turn) <= COPY_TURN or q_frame[2] <= 0:
        return None
    m = cv2.getRotationMatrix2D(q_frame[1], turn, s_frame[2] / q_frame[2])
    m[:, 2] += np.subtract(s_frame[1], q_frame[1])
    return m


def _ncc(padded: np.ndarray, query: np.ndarray, keep: np.ndarray | None = None) -> float:
    """The best normalised cross-correlation of ``query`` over the offsets ``padded`` (a specimen with a border
    of :data:`COPY_SHIFT`) allows, over the query's pixels ``keep`` marks (all without it); -1 for a blank query."""
    q = _smooth(query)
    if q.std() == 0:
        return -1.0
    if keep is None:
        return float(np.nanmax(cv2.matchTemplate(padded, q, cv2.TM_CCOEFF_NORMED)))
    scores = cv2.matchTemplate(padded, q, cv2.TM_CCOEFF_NORMED, mask=keep)
    return float(np.nanmax(scores)) if np.isfinite(scores).any() else -1.0


def _kept(gaps: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    """The pixels to compare (float32 1/0 of ``shape``): all but the gaps a printed line's removal cut into the
    strokes, grown by :data:`COPY_GAP_GROW`; None to compare every pixel."""
    if gaps is None:
        return None
    g = np.asarray(gaps, np.uint8).reshape(shape)
    if not g.any():
        return None
    size = 2 * COPY_GAP_GROW + 1
    return (1 - cv2.dilate(g, np.ones((size, size), np.uint8))).astype(np.float32)


def copy_similarity(query: np.ndarray, specimens: np.ndarray, gaps: np.ndarray | None = None) -> np.ndarray:
    """``(K,)``: for each specimen, the normalised cross-correlation of its preprocessed canvas with the query's,
    the best over offsets of up to :data:`COPY_SHIFT` pixels (1 for the same picture), as it is and with the query
    turned and scaled onto the specimen's ink (:func:`_alignment`: a copy pasted askew).

    Args:
        query: the questioned signature's preprocessed canvas, ``(H, W)`` or ``(1, H, W)``, floats in [0, 1] or
            uint8.
        specimens: the person's specimens as the gallery keeps them, ``(K, H, W)`` (same size).
        gaps: where a printed line was taken out of the query's strokes (``preprocess_marked``, the canvas' shape,
            True there): those pixels are left out of the comparison. A copy printed over a signature line lost its
            strokes where they crossed it, and without this the check told 6 of 200 such BHSig-Hindi copies.
    """
    q = np.asarray(query, np.float32)
    if q.ndim == 3:
        q = q[0]
    out = np.full(len(specimens), -1.0)
    q_frame = _ink_frame(q)
    if q_frame is None or q.std() == 0:
        return out
    keep = _kept(gaps, q.shape)
    h, w = q.shape
    for k, s in enumerate(specimens):
        r = _smooth(s)
        if r.shape != q.shape or r.std() == 0:
            continue
        padded = cv2.copyMakeBorder(r, COPY_SHIFT, COPY_SHIFT, COPY_SHIFT, COPY_SHIFT, cv2.BORDER_CONSTANT, value=0)
        out[k] = _ncc(padded, q, keep)
        s_frame = _ink_frame(s)
        m = None if s_frame is None else _alignment(q_frame, s_frame)
        if m is not None:
            turned = cv2.warpAffine(q, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
            turned_keep = None if keep is None else (cv2.warpAffine(
                keep, m, (w, h), flags=cv2.INTER_NEAREST, borderValue=1) > 0.5).astype(np.float32)
            out[k] = max(out[k], _ncc(padded, turned, turned_keep))
    return out


def copied_specimen(query: np.ndarray, specimens: np.ndarray | None, bar: float | None = COPY_SIMILARITY,
                    gaps: np.ndarray | None = None) -> int | None:
    """The index of the specimen ``query`` is a copy of, or None: the most similar specimen, when it is at least
    ``bar`` similar and :data:`COPY_MARGIN` more than the most alike two of the specimens are to each other (a person
    whose signings are that alike cannot be told from copies of them), both compared without the query's ``gaps``
    (:func:`copy_similarity`). None too without specimens or without a ``bar`` (a verifier whose manifest has no
    ``decision.copy_similarity``)."""
    if specimens is None or len(specimens) == 0 or bar is None:
        return None
    sims = copy_similarity(query, specimens, gaps)
    k = int(np.argmax(sims))
    if sims[k] < bar:
        return None
    alike = max((copy_similarity(specimens[i], specimens[i + 1:], gaps).max() for i in range(len(specimens) - 1)),
                default=-1.0)
    return k if sims[k] >= alike + COPY_MARGIN else None
