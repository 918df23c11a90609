"""Which way up a page is: a small CNN that tells a page turned by 0, 90, 180 or 270 degrees, and turns it back.

A page scanned upside down or sideways otherwise gets no signature or a wrong verdict: the detector boxes an
upside-down signature about as readily as an upright one, and the verifier then compares it, upside down, with
upright references (docs/models.md, "Pages scanned upside down or sideways").

The network sees the whole page in gray, ink bright on a dark canvas, scaled so that its longer side fills a square
input (:func:`orientation_input`) and answers with one of four classes: ``k`` means the page as scanned is an
upright page turned by ``k x 90`` degrees counter-clockwise (``np.rot90(upright, k)``). A page is turned back only
when the network is sure (``min_confidence`` in the manifest, chosen on validation pages so that no upright page is
turned); otherwise it is left as it is. Inference runs the ONNX export on ONNX Runtime: ``sigpipe run`` never
imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from sigpipe.errors import ModelError
from sigpipe.pipeline.deskew import box_from_level, estimate_skew, level
from sigpipe.weights import Manifest, bundled_manifest

ROTATIONS = (0, 90, 180, 270)  # class k: the page was turned by ROTATIONS[k] degrees counter-clockwise


def orientation_input(image: np.ndarray, size: int, scale: float = 1.0, offset: tuple[float, float] = (0.5, 0.5)
                      ) -> np.ndarray:
    """A page as the orientation network sees it.

    Args:
        image: ``(H, W, 3)`` BGR or ``(H, W)`` gray uint8 page, ink dark on light paper.
        size: side of the square input.
        scale: the page's longer side as a fraction of ``size`` (training varies it; inference uses 1).
        offset: where the page sits in the spare room of the square, (x, y) each in [0, 1] (0.5: centred).

    Returns:
        ``(size, size)`` float32, ink towards 1 and paper and the spare room 0.
    """
    h, w = image.shape[:2]
    long_side = max(1, round(size * scale))
    f = long_side / max(h, w)
    nw, nh = max(1, min(size, round(w * f))), max(1, min(size, round(h * f)))
    if max(h, w) > 4 * long_side:  # area-averaging a 200-dpi page straight down takes ~7 ms; bilinear to twice
        # the size first (~1 ms) and area-averaging from there keeps thin strokes about as well
        image = cv2.resize(image, (2 * nw, 2 * nh), interpolation=cv2.INTER_LINEAR)
    small = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
    if small.ndim == 3:
        small = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    out = np.zeros((size, size), np.float32)
    x0, y0 = round((size - nw) * offset[0]), round((size - nh) * offset[1])
    out[y0:y0 + nh, x0:x0 + nw] = (255.0 - small.astype(np.float32)) * (1.0 / 255.0)
    return out


def turn_upright(image: np.ndarray, k: int) -> np.ndarray:
    """Undo class ``k``: the page turned back by ``k x 90`` degrees clockwise (contiguous, so later stages need no
    copy)."""
    return np.ascontiguousarray(np.rot90(image, -k)) if k % 4 else image


class PageOrienter:
    """The bundled (or a given) orientation model on ONNX Runtime.

    Args:
        manifest: its manifest (default: the bundled one); hash-checked, with its ONNX export.
        threads: ONNX Runtime's intra-op threads.
        precision: ``f32``, ``bf16`` (OpenVINO in bfloat16) or ``auto`` (:func:`sigpipe._onnx.resolve_precision`).

    Raises:
        ModelError: no such model, or a file that does not match its manifest.
    """

    def __init__(self, manifest: str | Path | Manifest | None = None, threads: int = 2, precision: str = "f32"
                 ) -> None:
        from sigpipe._onnx import cpu_session, resolve_precision

        if manifest is None:
            m = bundled_manifest("orientation")
        else:
            m = manifest if isinstance(manifest, Manifest) else Manifest.load(manifest)
            m.verify()
        if m.architecture != "orient-cnn":
            raise ModelError(f"{m.path} is a {m.architecture!r} model, not an orientation model ('orient-cnn')")
        self.manifest = m
        self.size = int(m["preprocessing"]["size"])
        self.min_confidence = float(m["decision"]["min_confidence"])
        # smaller images are taken as they are: a signature on its own says nothing about which way up it is
        self.min_page = tuple(int(v) for v in m["decision"].get("min_page_size", (0, 0)))
        self.precision = resolve_precision(precision, exported=True)
        self._session = cpu_session(m.export_path("onnx", "sigpipe orientation train"), threads, self.precision)

    @property
    def ident(self) -> str:
        from sigpipe._onnx import BF16_SUFFIX

        return self.manifest.ident + (BF16_SUFFIX if self.precision == "bf16" else "")

    def probabilities(self, images: list[np.ndarray]) -> np.ndarray:
        """``(N, 4)`` class probabilities of pages (see :data:`ROTATIONS`), whatever their size."""
        if not images:
            return np.zeros((0, 4), np.float32)
        x = np.stack([orientation_input(im, self.size) for im in images])[:, None]
        logits = np.asarray(self._session.run(None, {"page": x})[0], np.float64)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)

    def is_page(self, image: np.ndarray) -> bool:
        """Whether ``image`` is page-sized (the manifest's ``min_page_size``): a signature on its own says nothing
        about which way up, or how far askew, it is."""
        return min(image.shape[:2]) >= self.min_page[0] and max(image.shape[:2]) >= self.min_page[1]

    def turns(self, images: list[np.ndarray]) -> list[int]:
        """For each page, the class ``k`` to undo (:func:`turn_upright`): the most likely one when it is not 0 and
        at least ``min_confidence`` likely; for a page at least that likely sideways (90 and 270 together) but
        neither way alone, the quarter turn after which the network finds the page upright, or upside down, at
        that confidence; else 0 (leave the page as it is). Images smaller than the manifest's ``min_page_size``
        (short, long side) are left as they are without asking the network."""
        sized = [i for i, im in enumerate(images) if self.is_page(im)]
        ks = [0] * len(images)
        p = self.probabilities([images[i] for i in sized])
        sideways: list[tuple[int, int]] = []
        for row, i in enumerate(sized):
            k = int(p[row].argmax())
            if k and p[row, k] >= self.min_confidence:
                ks[i] = k
            elif p[row, 1] + p[row, 3] >= self.min_confidence:
                # surely sideways, but which way not (a long strip shrunk to a sliver): a quarter turn leaves it
                # upright or upside down, which the network tells apart; asked again, it decides, or nothing is done
                sideways.append((i, 1 if p[row, 1] >= p[row, 3] else 3))
        if sideways:
            q = self.probabilities([turn_upright(images[i], k) for i, k in sideways])
            for (i, k), row in zip(sideways, q, strict=True):
                again = int(row.argmax())
                if again in (0, 2) and row[again] >= self.min_confidence:
                    ks[i] = (k + again) % 4
        return ks


def box_to_scanned(bbox: tuple[float, float, float, float], k: int, upright_size: tuple[int, int]
                   ) -> tuple[float, float, float, float]:
    """A box ``(x1, y1, x2, y2)`` on the page turned upright (``(width, height)`` ``upright_size``) in pixels of the
    page as scanned, which is the upright page turned ``k x 90`` degrees counter-clockwise."""
    x1, y1, x2, y2 = bbox
    w, h = upright_size
    for _ in range(k % 4):  # one counter-clockwise turn: (x, y) -> (y, w - x); the width becomes the height
        x1, y1, x2, y2 = y1, w - x2, y2, w - x1
        w, h = h, w
    return x1, y1, x2, y2


@dataclass(frozen=True)
class OrientedDetection:
    """A detection on a page that was turned upright first: ``bbox`` in pixels of the page as scanned, and the
    page's ``rotation`` (degrees counter-clockwise from upright; a crop of ``bbox`` turned back by it is upright)."""

    bbox: tuple[float, float, float, float]
    confidence: float
    rotation: int
    skew: float = 0.0  # degrees counter-clockwise the upright page was turned to level it (bbox: the box's hull)


class OrientingDetector:
    """A detector that turns each page upright (:class:`PageOrienter`) before detecting on it, and gives its boxes in
    pixels of the page as scanned, each with the page's rotation.

    Args:
        detector: anything with ``ident`` and ``detect_batch`` (``SignatureDetector``).
        orienter: the orientation model.
    """

    def __init__(self, detector: Any, orienter: PageOrienter) -> None:
        self.detector = detector
        self.orienter = orienter

    @property
    def ident(self) -> str:
        return str(self.detector.ident)

    @property
    def orientation_ident(self) -> str:
        return self.orienter.ident

    def detect_batch(self, pages: list[np.ndarray]) -> list[list[OrientedDetection]]:
        """Detect on each page turned upright and, when it is a few degrees askew, levelled
        (:mod:`sigpipe.pipeline.deskew`); boxes in pixels of the page as scanned (a levelled box's hull)."""
        ks = self.orienter.turns(pages)
        upright = [turn_upright(page, k) for page, k in zip(pages, ks, strict=True)]
        skews = [estimate_skew(u) if self.orienter.is_page(u) else 0.0 for u in upright]
        levelled = [level(u, a) if a else (u, None) for u, a in zip(upright, skews, strict=True)]
        found = self.detector.detect_batch([p for p, _ in levelled])
        out: list[list[OrientedDetection]] = []
        for dets, k, u, a, (_, m) in zip(found, ks, upright, skews, levelled, strict=True):
            size = (u.shape[1], u.shape[0])
            out.append([OrientedDetection(
                box_to_scanned(box_from_level(tuple(d.bbox), m, size) if m is not None else tuple(d.bbox), k, size),
                float(d.confidence), ROTATIONS[k], a) for d in dets])
        return out
