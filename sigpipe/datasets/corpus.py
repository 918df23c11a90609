"""Per-writer signature corpora: ``ROOT/<writer>/genuine/*.png`` and ``ROOT/<writer>/forged/*.png``.

``forged`` holds skilled forgeries of that writer. Splits are always by writer, never by image.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

from sigpipe._warnings import ignoring
from sigpipe.errors import InputError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"})
# What documents and specimens are read as besides (sigpipe run, verify, REFS; corpora and training sets keep the names
# above, which Ultralytics' loaders read too): JPEG's other names (Windows saves a JPEG from the web as .jfif), a
# Windows bitmap's .dib and the Netpbm files Linux scanning writes (SANE's scanimage). Passed over before, unsaid.
READ_IMAGE_SUFFIXES = IMAGE_SUFFIXES | {".jpe", ".jfif", ".jif", ".dib", ".pbm", ".pgm", ".ppm", ".pnm"}
# Decompression-bomb guard of read_gray: an image declaring more pixels is refused before it is decoded. The same
# limit as a document page's (sigpipe.pipeline.ingest.MAX_PAGE_PIXELS, which imports this module: so defined here):
# a specimen may be a whole scanned page (an A4 page at 600 dpi is ~35 Mpx).
MAX_IMAGE_PIXELS = 120_000_000


def is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


GRAY_CHANNELS = ("luma", "red")  # how a colour image becomes gray: luminance, or its red channel (red dropout)


def read_gray(path: str | Path, channel: str = "luma") -> np.ndarray:
    """Read an image file as grayscale: a colour image by its luminance, or with ``channel`` "red" by its red channel
    (what cheque scanners call red dropout: red and pink print, stamps and highlighter fade into the paper while
    blue and black pens stay dark), as :func:`sigpipe.verifier.preprocess.to_gray` reads colour crops.

    Returns:
        ``(H, W)`` uint8 array, 0 = black ink, 255 = white paper.

    Raises:
        InputError: the file is missing or cannot be decoded, or declares more than :data:`MAX_IMAGE_PIXELS`; the
            message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"image not found: {path}")
    buf = np.fromfile(str(path), dtype=np.uint8)
    pixels, alpha = _header(buf)
    if pixels > MAX_IMAGE_PIXELS:  # a decompression bomb (a few KB of PNG declaring 699 x 400000) takes GBs decoded
        raise InputError(f"image {path} declares {pixels / 1e6:.0f} Mpx, over the {MAX_IMAGE_PIXELS / 1e6:.0f} Mpx "
                         "limit (a decompression bomb?)")
    if channel not in GRAY_CHANNELS:
        raise ValueError(f"channel must be one of {GRAY_CHANNELS}, got {channel!r}")
    red = channel == "red"
    flags = (cv2.IMREAD_ANYCOLOR if red else cv2.IMREAD_GRAYSCALE) | cv2.IMREAD_ANYDEPTH
    img = cv2.imdecode(buf, flags) if buf.size else None
    if img is None or img.size == 0:
        raise InputError(f"cannot decode image: {path}")
    if img.ndim == 3:  # colour (BGR, or BGRA without the alpha handled below): the red channel
        img = np.ascontiguousarray(img[..., 2])
    if img.dtype != np.uint8:  # 16-bit or float scans: scaled as documents' pages are
        img = to_8bit(img, sixteen=img.dtype == np.uint16)
    if alpha:  # OpenCV drops the alpha channel: ink drawn only in it (an exported e-signature) vanishes
        with Image.open(io.BytesIO(buf.tobytes())) as im:
            flat = on_white(ImageOps.exif_transpose(im))
            img = np.asarray(flat.convert("RGB"))[..., 0].copy() if red else np.asarray(flat.convert("L"))
    return img


def to_8bit(a: np.ndarray, sixteen: bool) -> np.ndarray:
    """A 16-bit (``sixteen``) or other high-depth grayscale image as uint8, full scale to 255. 16-bit data whose
    values stay within 12 bits (0..4095) are 12-bit scans in a 16-bit container: scaled from 4095, where 65535 would
    leave them nearly black (a paper that bright cannot be that dark). Other depths scale from their maximum."""
    a = np.asarray(a, dtype=np.float64)
    top = float(a.max()) if a.size else 0.0
    hi = (4095.0 if top <= 4095 else 65535.0) if sixteen else max(top, 1.0)
    return np.clip(a / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _header(buf: np.ndarray) -> tuple[int, bool]:
    """What an encoded image's header declares, read by PIL without decoding the pixels: ``(pixels, transparency)``;
    ``(0, False)`` for a file PIL cannot identify (OpenCV decodes it, or says it cannot)."""
    try:
        with ignoring(Image.DecompressionBombWarning):  # our limit applies, not PIL's
            with Image.open(io.BytesIO(buf.tobytes())) as im:
                return im.width * im.height, has_alpha(im)
    except Image.DecompressionBombError as e:  # PIL refuses over twice its own limit before giving the size
        n = re.search(r"\((\d+) pixels\)", str(e))
        return (int(n.group(1)) if n else MAX_IMAGE_PIXELS + 1), False
    # not an image PIL knows; ImportError: once ultralytics is imported, its Image.open looks for a HEIF plugin then
    except (OSError, ValueError, SyntaxError, ImportError):
        return 0, False


def has_alpha(img: Image.Image) -> bool:
    """Whether a PIL image has an alpha channel, a transparent palette entry or a transparent colour (a PNG's
    ``tRNS`` key on a gray or RGB image, as PNG optimisers write all-or-nothing transparency)."""
    return img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info


def on_white(img: Image.Image) -> Image.Image:
    """A PIL image with transparency composited on white paper (``RGBA``); others are returned unchanged."""
    if not has_alpha(img):
        return img
    rgba = img.convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)


@dataclass(frozen=True)
class WriterSamples:
    """One writer's files, sorted by name."""

    writer: str
    genuine: tuple[Path, ...]
    forged: tuple[Path, ...]


class Corpus:
    """A per-writer corpus on disk.

    Args:
        root: folder holding one sub-folder per writer.
        name: a short name (defaults to the folder name).

    Raises:
        InputError: ``root`` is missing, or holds no writer with at least one genuine signature.
    """

    def __init__(self, root: str | Path, name: str | None = None) -> None:
        self.root = Path(root)
        self.name = name or self.root.name
        if not self.root.is_dir():
            raise InputError(f"corpus folder not found: {self.root}")
        writers: dict[str, WriterSamples] = {}
        unread: list[str] = []  # images that a mistaken layout would leave out without a word
        for d in sorted(p for p in self.root.iterdir() if p.is_dir()):
            gen = tuple(sorted(p for p in (d / "genuine").glob("*") if is_image(p)))
            forg = tuple(sorted(p for p in (d / "forged").glob("*") if is_image(p)))
            if gen:
                writers[d.name] = WriterSamples(d.name, gen, forg)
            elif forg:
                unread.append(f"{d.name}/ (forgeries but no genuine/ images)")
            for p in sorted(d.iterdir()):
                if p.name not in ("genuine", "forged") and (is_image(p) or p.is_dir() and any(
                        is_image(q) for q in p.glob("*"))):
                    unread.append(f"{d.name}/{p.name}{'/' if p.is_dir() else ''}")
        if not writers:
            raise InputError(
                f"no writers in {self.root}: expected ROOT/<writer>/genuine/*.png (and optional forged/*.png)"
            )
        if unread:
            log.warning("%s: %d place(s) holding images that are not read (only <writer>/genuine/ and "
                        "<writer>/forged/ are, in lower case): %s%s", self.root, len(unread), ", ".join(unread[:8]),
                        " ..." if len(unread) > 8 else "")
        self._writers = writers

    @property
    def writers(self) -> list[str]:
        return list(self._writers)

    def __getitem__(self, writer: str) -> WriterSamples:
        return self._writers[writer]

    def __len__(self) -> int:
        return len(self._writers)

    def __iter__(self):
        return iter(self._writers.values())


def split_writers(
    writers: Sequence[str], fractions: Sequence[float], seed: int
) -> list[list[str]]:
    """Split writers into disjoint groups (e.g. train/val/test) by a seeded shuffle.

    Args:
        writers: writer ids (order does not matter: they are sorted first).
        fractions: one fraction per group, summing to 1.
        seed: seed of the shuffle; the same seed gives the same split.

    Returns:
        One sorted list of writers per fraction; every writer is in exactly one list.
    """
    if not fractions or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"fractions must be non-negative and sum to 1, got {list(fractions)}")
    ws = sorted(set(writers))
    order = np.random.default_rng(seed).permutation(len(ws))
    bounds = np.round(np.cumsum([0.0, *fractions]) * len(ws)).astype(int)
    return [sorted(ws[i] for i in order[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
