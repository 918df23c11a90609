"""Test doubles for the pipeline (importable by spawned worker processes: keep them at module level)."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from sigpipe.verifier.verifier import Verifier

SIG_A, SIG_B = 1, 2  # scribble seeds of alice's and bob's signatures


def save_pdf(path: Path, pages: list[np.ndarray], resolution: float = 100.0) -> Path:
    """Write grayscale/BGR pages as a PDF (one image per page) with PIL."""
    ims = [Image.fromarray(p) for p in pages]
    path.parent.mkdir(parents=True, exist_ok=True)
    ims[0].save(path, "PDF", resolution=resolution, save_all=True, append_images=ims[1:])
    return path


def save_image(path: Path, page: np.ndarray, **kw: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(page).save(path, **kw)
    return path


@dataclass(frozen=True)
class Box:
    bbox: tuple[float, float, float, float]
    confidence: float


class InkBlobDetector:
    """Finds dark ink blobs on otherwise blank test pages: each blob (strokes merged by dilation) is a 'signature'.

    Args:
        delay: seconds slept per page (to make a batch slow enough to be killed mid-way).
        min_area: blobs with a smaller bounding box area (px) are ignored.
    """

    ident = "ink-blob.test 000000000000"

    def __init__(self, delay: float = 0.0, min_area: int = 200, crash_on_black: bool = False,
                 hang_on_black: bool = False) -> None:
        self.delay = delay
        self.min_area = min_area
        self.crash_on_black = crash_on_black
        self.hang_on_black = hang_on_black
        self.calls: list[int] = []

    def detect_batch(self, pages: list[np.ndarray]) -> list[list[Box]]:
        self.calls.append(len(pages))
        out = []
        for page in pages:
            if self.delay:
                time.sleep(self.delay)
            if self.crash_on_black and page.mean() < 10:
                os._exit(70)  # like a segfault in native code: the process is gone, no exception
            if self.hang_on_black and page.mean() < 10:
                mark = os.environ.get("SIGPIPE_TEST_CHILD_MARK")
                if mark:  # like poppler hanging on a PDF: a process of its own, waited for
                    child = subprocess.Popen(["sleep", "300"])
                    Path(mark).write_text(str(child.pid))
                    child.wait()
                while True:  # like a native call that never returns
                    time.sleep(60)
            gray = cv2.cvtColor(page, cv2.COLOR_BGR2GRAY) if page.ndim == 3 else page
            mask = (gray < 128).astype(np.uint8)
            mask = cv2.dilate(mask, np.ones((21, 21), np.uint8))
            n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
            boxes = []
            for i in range(1, n):
                x, y, w, h, _area = stats[i]
                if w * h >= self.min_area:
                    # undo the dilation (10 px each side), clipped to the page
                    x1, y1 = max(0, x + 10), max(0, y + 10)
                    x2, y2 = min(page.shape[1], x + w - 10), min(page.shape[0], y + h - 10)
                    boxes.append(Box((float(x1), float(y1), float(x2), float(y2)), 0.9))
            out.append(sorted(boxes, key=lambda b: (b.bbox[1], b.bbox[0])))
        return out


@dataclass(frozen=True)
class DoubleModels:
    """A picklable model provider for ``run_batch``: the ink-blob detector and a tiny verifier from a manifest."""

    verifier_manifest: Path
    delay: float = 0.0
    crash_on_black: bool = False
    hang_on_black: bool = False
    start_delay: float = 0.0  # seconds each call (a worker's start-up) takes, like loading real models

    def __call__(self, threads: int) -> tuple[InkBlobDetector, Verifier]:
        time.sleep(self.start_delay)
        return (InkBlobDetector(self.delay, crash_on_black=self.crash_on_black, hang_on_black=self.hang_on_black),
                Verifier.from_manifest(self.verifier_manifest, threads=threads))


def scribble(seed: int, h: int = 90, w: int = 240) -> np.ndarray:
    """A signature-like grayscale image ``(h, w)`` uint8: dark strokes on light paper."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w), 245, np.uint8)
    for _ in range(2):
        pts = np.stack([np.linspace(12, w - 12, 9), h / 2 + rng.normal(0, h / 5, 9)], 1).astype(np.int32)
        cv2.polylines(img, [pts], False, 20, 3, cv2.LINE_AA)
    return img


def page_with(signatures: list[tuple[np.ndarray, int, int]], size: tuple[int, int] = (800, 600)) -> np.ndarray:
    """A blank ``(H, W)`` uint8 page of ``size`` (w, h) with signature images pasted at (x, y)."""
    w, h = size
    page = np.full((h, w), 250, np.uint8)
    for sig, x, y in signatures:
        sh, sw = sig.shape
        page[y:y + sh, x:x + sw] = np.minimum(page[y:y + sh, x:x + sw], sig)
    return page
