"""Convert public signature corpora into the per-writer corpus layout.

The output is ``DST/<writer>/genuine/NN.png`` and ``DST/<writer>/forged/NN.png``: 8-bit grayscale PNG, writers named
by their zero-padded number (``001``...), files numbered ``01.png, 02.png...`` per writer and kind in the order of the
original sample index. Supported layouts (``FORMATS``):

- ``cedar``: ``SRC/full_org/original_W_I.png`` and ``SRC/full_forg/forgeries_W_I.png``.
- ``bhsig``: ``SRC/W/B-S-W-G-NN.tif`` (genuine) and ``SRC/W/B-S-W-F-NN.tif`` (forged); Hindi files start with ``H``.
  Writer numbers are read from the file names, so ``SRC/001/B-S-1-G-01.tif`` is writer ``001``. Point ``SRC`` at one
  script (Bengali or Hindi): both scripts number their writers from 1.
- ``sign_data`` (Kaggle): ``SRC/W/*`` (genuine of writer W) and ``SRC/W_forg/*`` (forgeries of W), possibly under
  ``SRC/train/`` and ``SRC/test/``; images that occur more than once (the test part repeats part of train) are kept
  once, identified by the sha256 of their decoded pixels.

The result is written to a hidden sibling folder and renamed to ``DST`` only when the whole import succeeded, so a
failed import never leaves a half-written corpus behind.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from sigpipe.datasets.corpus import is_image, read_gray
from sigpipe.errors import InputError

log = logging.getLogger(__name__)

GENUINE = "genuine"
FORGED = "forged"


@dataclass(frozen=True)
class SourceImage:
    """One image of a public corpus, located and parsed but not yet decoded.

    Attributes:
        path: the source file.
        writer: writer number as found in the source (not yet zero-padded).
        kind: ``"genuine"`` or ``"forged"``.
        order: sort key of the sample within its writer and kind (original index, then tie-breakers).
    """

    path: Path
    writer: int
    kind: str
    order: tuple[int | str, ...]


@dataclass(frozen=True)
class ImportSummary:
    """What an import wrote.

    Attributes:
        format: the source layout name.
        dst: the corpus folder written.
        writers: number of writer folders.
        genuine: number of genuine images written.
        forged: number of forged images written.
        duplicates: images skipped because an identical image was already written.
    """

    format: str
    dst: str
    writers: int
    genuine: int
    forged: int
    duplicates: int = 0

    def to_dict(self) -> dict[str, str | int]:
        return asdict(self)


def _natural_key(name: str) -> tuple[int | str, ...]:
    """``"a10b"`` -> ``("a", 10, "b")`` so that ``2`` sorts before ``10``."""
    parts = re.split(r"(\d+)", name.lower())
    return tuple(int(p) if p.isdigit() else p for p in parts if p)


def _files(root: Path) -> Iterator[Path]:
    """Image files under ``root`` (recursive), in a deterministic order."""
    return iter(sorted((p for p in root.rglob("*") if is_image(p)), key=lambda p: p.as_posix()))


_CEDAR = re.compile(r"^(original|forgeries)_(\d+)_(\d+)$", re.IGNORECASE)


def scan_cedar(src: Path) -> list[SourceImage]:
    """Locate CEDAR images: ``original_W_I.*`` (genuine) and ``forgeries_W_I.*`` (forged), anywhere under ``src``."""
    out = []
    for p in _files(src):
        m = _CEDAR.match(p.stem)
        if m:
            kind = GENUINE if m.group(1).lower() == "original" else FORGED
            out.append(SourceImage(p, int(m.group(2)), kind, (int(m.group(3)), p.name)))
    return out


_BHSIG = re.compile(r"^([BH])-S-(\d+)-([GF])-(\d+)$", re.IGNORECASE)


def scan_bhsig(src: Path) -> list[SourceImage]:
    """Locate BHSig260 images: ``B-S-W-G-NN.tif`` / ``B-S-W-F-NN.tif`` (Bengali) or ``H-S-...`` (Hindi).

    Raises:
        InputError: ``src`` holds both Bengali and Hindi files (their writer numbers collide).
    """
    out = []
    scripts: dict[str, Path] = {}
    for p in _files(src):
        m = _BHSIG.match(p.stem)
        if m:
            scripts.setdefault(m.group(1).upper(), p)
            kind = GENUINE if m.group(3).upper() == "G" else FORGED
            out.append(SourceImage(p, int(m.group(2)), kind, (int(m.group(4)), p.name)))
    if len(scripts) > 1:
        raise InputError(
            f"{src} mixes Bengali and Hindi BHSig files (e.g. {scripts['B']} and {scripts['H']}), whose writer "
            "numbers collide: import each script's folder separately"
        )
    return out


_SIGN_DATA_DIR = re.compile(r"^(\d+)(_forg)?$", re.IGNORECASE)


def scan_sign_data(src: Path) -> list[SourceImage]:
    """Locate Kaggle sign_data images: ``W/*`` genuine and ``W_forg/*`` forged (the files in those folders, not in
    folders below them), in ``src`` or its ``train``/``test``.

    Images of ``train`` come before those of ``test`` so that, when duplicates are dropped, the train copy is kept.
    """
    parts = [d for name in ("train", "test") if (d := src / name).is_dir()]
    roots = parts or [src]
    out = []
    spellings: dict[int, set[str]] = {}  # writer number -> its folders' names (without _forg)
    for rank, root in enumerate(roots):
        for d in sorted(root.iterdir()):
            m = _SIGN_DATA_DIR.match(d.name) if d.is_dir() else None
            if not m:
                if d.is_dir() and not d.name.startswith(".") and any(is_image(f) for f in d.iterdir()):
                    # a writer folder named otherwise (a bank's customer id, C00081): dropped unsaid, it was
                    raise InputError(f"{src} is not in the sign_data layout: {d} holds images but is not named "
                                     "W or W_forg with W a number (writers are numbered). For writers named "
                                     "otherwise, lay the corpus out as <writer>/genuine/*.png and "
                                     "<writer>/forged/*.png, sigpipe's own layout, which needs no import")
                continue
            spellings.setdefault(int(m.group(1)), set()).add(m.group(1))
            kind = FORGED if m.group(2) else GENUINE
            if not m.group(2) and any(c.is_dir() and c.name.lower() in ("genuine", "forged") for c in d.iterdir()):
                raise InputError(f"{src} is not in the sign_data layout ({d} holds genuine/forged folders: that is "
                                 "sigpipe's own per-writer layout, which needs no import)")
            for p in sorted((f for f in d.iterdir() if is_image(f)), key=lambda f: f.name):
                if _BHSIG.match(p.stem) or _CEDAR.match(p.stem):  # their names say genuine or forged, not the folder
                    raise InputError(f"{src} is not in the sign_data layout: {p} is named as a "
                                     f"{'BHSig260' if _BHSIG.match(p.stem) else 'CEDAR'} file; import it as such")
                out.append(SourceImage(p, int(m.group(1)), kind, (rank, *_natural_key(p.name))))
    clashing = {n: sorted(names) for n, names in spellings.items() if len(names) > 1}
    if clashing:  # 0123 and 123 were one writer: two people's signatures under one name
        n, names = min(clashing.items())
        raise InputError(f"{src}: folders {', '.join(names)} are one writer number ({n}) spelled {len(names)} ways; "
                         "writers are numbered, so they would be merged into one: rename one of them")
    return out


SCANNERS: dict[str, Callable[[Path], list[SourceImage]]] = {
    "cedar": scan_cedar,
    "bhsig": scan_bhsig,
    "sign_data": scan_sign_data,
}
FORMATS: tuple[str, ...] = tuple(SCANNERS)

_EXPECTED = {
    "cedar": "full_org/original_W_I.png and full_forg/forgeries_W_I.png",
    "bhsig": "W/B-S-W-G-NN.tif and W/B-S-W-F-NN.tif (or H-S-...)",
    "sign_data": "W/*.png and W_forg/*.png (optionally under train/ and test/)",
}


def _pad(n: int, width: int) -> str:
    return str(n).zfill(width)


def _write_png(path: Path, img: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", img)
    if not ok:  # pragma: no cover - cv2 encodes any uint8 2-D array
        raise InputError(f"cannot encode {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    buf.tofile(str(path))


def import_corpus(fmt: str, src: str | Path, dst: str | Path, dedupe: bool | None = None) -> ImportSummary:
    """Convert a public corpus at ``src`` into a per-writer corpus at ``dst``.

    Args:
        fmt: one of ``FORMATS`` (``"cedar"``, ``"bhsig"``, ``"sign_data"``).
        src: the unpacked public corpus.
        dst: the corpus folder to create; it must not exist or be empty.
        dedupe: drop images whose decoded pixels equal an image already written. Defaults to True for
            ``sign_data`` (whose test part repeats train images) and False otherwise.

    Returns:
        The counts written.

    Raises:
        InputError: unknown format, missing ``src``, non-empty ``dst``, an image that cannot be decoded (the message
            names the file), or no image of the expected layout under ``src``.
    """
    if fmt not in SCANNERS:
        raise InputError(f"unknown corpus format {fmt!r}; expected one of {', '.join(FORMATS)}")
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise InputError(f"source folder not found: {src}")
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise InputError(f"destination exists and is not an empty folder: {dst}")
    if dedupe is None:
        dedupe = fmt == "sign_data"

    images = SCANNERS[fmt](src)
    if not images:
        raise InputError(f"no {fmt} images found in {src}: expected {_EXPECTED[fmt]}")
    images.sort(key=lambda s: (s.writer, s.kind, s.order))
    wpad = max(3, len(str(max(s.writer for s in images))))
    counts: dict[tuple[int, str], int] = {}
    for s in images:
        counts[(s.writer, s.kind)] = counts.get((s.writer, s.kind), 0) + 1
    fpad = max(2, len(str(max(counts.values()))))

    tmp = dst.parent / f".{dst.name}.partial"
    if tmp.exists():
        shutil.rmtree(tmp)
    seen: set[bytes] = set()
    numbers: dict[tuple[int, str], int] = {}
    duplicates = 0
    try:
        # Visited in (writer, kind, order) order, so the first copy of a duplicate is kept (for sign_data the
        # train copy: the source rank leads the order key); ``seen`` spans the whole corpus.
        for s in images:
            img = read_gray(s.path)
            if dedupe:
                h = hashlib.sha256(np.asarray(img.shape, dtype=np.int64).tobytes() + img.tobytes()).digest()
                if h in seen:
                    duplicates += 1
                    log.debug("duplicate image skipped: %s", s.path)
                    continue
                seen.add(h)
            n = numbers.get((s.writer, s.kind), 0) + 1
            numbers[(s.writer, s.kind)] = n
            _write_png(tmp / _pad(s.writer, wpad) / s.kind / f"{_pad(n, fpad)}.png", img)
        if dst.exists():
            dst.rmdir()
        tmp.rename(dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    writers = {w for w, _ in numbers}
    summary = ImportSummary(
        format=fmt,
        dst=str(dst),
        writers=len(writers),
        genuine=sum(n for (_, k), n in numbers.items() if k == GENUINE),
        forged=sum(n for (_, k), n in numbers.items() if k == FORGED),
        duplicates=duplicates,
    )
    log.info("imported %s", summary)
    return summary
