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
2,328 times in 2,340 (``work/copy/copies37.py``). A copy turned by a degree (74 of 390 caught), hence one printed and
scanned again, falls among genuine signatures; so does a copy whose crop takes in other ink (a line, print).
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


def _smooth(image: np.ndarray) -> np.ndarray:
    """A canvas as floats, lightly blurred (the correlation is the same for [0, 1] floats and uint8)."""
    x = np.asarray(image, np.float32)
    if x.ndim == 3:  # (1, H, W) as Verifier.prepare gives one signature
        x = x[0]
    return cv2.GaussianBlur(x, (0, 0), COPY_BLUR)


def copy_similarity(query: np.ndarray, specimens: np.ndarray) -> np.ndarray:
    """``(K,)``: for each specimen, the normalised cross-correlation of its preprocessed canvas with the query's,
    the best over offsets of up to :data:`COPY_SHIFT` pixels (1 for the same picture).

    Args:
        query: the questioned signature's preprocessed canvas, ``(H, W)`` or ``(1, H, W)``, floats in [0, 1] or
            uint8.
        specimens: the person's specimens as the gallery keeps them, ``(K, H, W)`` (same size).
    """
    q = _smooth(query)
    out = np.full(len(specimens), -1.0)
    if not q.any() or q.std() == 0:
        return out
    for k, s in enumerate(specimens):
        r = _smooth(s)
        if r.shape != q.shape or r.std() == 0:
            continue
        padded = cv2.copyMakeBorder(r, COPY_SHIFT, COPY_SHIFT, COPY_SHIFT, COPY_SHIFT, cv2.BORDER_CONSTANT, value=0)
        out[k] = float(np.nanmax(cv2.matchTemplate(padded, q, cv2.TM_CCOEFF_NORMED)))
    return out


def copied_specimen(query: np.ndarray, specimens: np.ndarray | None, bar: float | None = COPY_SIMILARITY
                    ) -> int | None:
    """The index of the specimen ``query`` is a copy of, or None: the most similar specimen, when it is at least
    ``bar`` similar and :data:`COPY_MARGIN` more than the most alike two of the specimens are to each other (a person
    whose signings are that alike cannot be told from copies of them). None too without specimens or without a
    ``bar`` (a verifier whose manifest has no ``decision.copy_similarity``)."""
    if specimens is None or len(specimens) == 0 or bar is None:
        return None
    sims = copy_similarity(query, specimens)
    k = int(np.argmax(sims))
    if sims[k] < bar:
        return None
    alike = max((copy_similarity(specimens[i], specimens[i + 1:]).max() for i in range(len(specimens) - 1)),
                default=-1.0)
    return k if sims[k] >= alike + COPY_MARGIN else None
