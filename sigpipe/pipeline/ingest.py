"""From files to page images: discovery of the scans and a streaming page reader for PDF, TIFF, PNG and JPEG.

Pages are produced one at a time by generators, so a 500-page PDF never sits in memory whole. Every page comes out as
an ``(H, W, 3)`` uint8 BGR array (the layout OpenCV and Ultralytics expect) together with its resolution.

PDFs are rendered with pypdfium2 (a wheel, no system package) by default; pdf2image (poppler's ``pdftoppm``) is the
other backend, and the fallback when pypdfium2 cannot open a file. Images keep their pixels; their dpi is read from
the file's metadata (assumed :data:`DEFAULT_DPI` when absent).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import re
import shutil
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError

from sigpipe._files import MAX_DOCUMENT_BYTES, UNREAD_DOCUMENTS, holds_image, open_regular, visible_files
from sigpipe._names import readable
from sigpipe._warnings import ignoring
from sigpipe.datasets.corpus import READ_IMAGE_SUFFIXES, on_white, to_8bit  # documents and references: the same images
from sigpipe.pipeline.errors import (
    CorruptImageError,
    CorruptPdfError,
    EmptyDocumentError,
    EncryptedPdfError,
    ImageTooLargeError,
    MissingDependencyError,
    NoSelectedPageError,
    TooManyPagesError,
    UnreadableFileError,
    UnsupportedFormatError,
)
from sigpipe.pipeline.placed import PlacedMarks, read_placed, wide_string

log = logging.getLogger(__name__)

PDF_SUFFIXES = frozenset({".pdf"})
SCAN_SUFFIXES = PDF_SUFFIXES | READ_IMAGE_SUFFIXES
PDF_BACKENDS = ("pypdfium2", "pdf2image")
DEFAULT_DPI = 200
# Decompression-bomb guard: a page over this many pixels is refused (an A4 page at 600 dpi is ~35 Mpx).
MAX_PAGE_PIXELS = 120_000_000
# Pages read of one document at the most (sigpipe run --max-pages): a 500-page loan package passes; a small file of
# 20,000 pages sharing one content stream (67 minutes at 5 pages/s) fails at once instead of every night
MAX_DOCUMENT_PAGES = 2000

# PDFium document-loading error codes (fpdfview.h).
_PDFIUM_PASSWORD = 4
_PDFIUM_SECURITY = 5


_PAGE_ITEM = re.compile(r"(-?[1-9]\d*)|([1-9]\d*)-([1-9]\d*)?")


@dataclass(frozen=True)
class PageSelection:
    """Which pages of each document to read (``sigpipe run --pages``), e.g. only the first (a cheque's front, not the
    endorsement on its back) or only the last (a contract's signature page).

    Attributes:
        spec: the selection as written: comma-separated items, each a page number (``1``), a page counted from the
            end (``-1`` the last, ``-2`` the one before), a range (``2-4``) or an open range (``3-``: page 3 to the
            end). Parse one with :meth:`parse`.
    """

    spec: str
    items: tuple[tuple[int, int | None], ...] = field(repr=False, compare=False)

    @classmethod
    def parse(cls, spec: str) -> PageSelection:
        """Read a selection such as ``"1"``, ``"-1"``, ``"1,-1"``, ``"2-4"`` or ``"3-"``.

        Raises:
            ValueError: not such a selection; the message shows the forms that are.
        """
        items: list[tuple[int, int | None]] = []
        parts = [t.strip() for t in spec.split(",")]
        for t in parts:
            m = _PAGE_ITEM.fullmatch(t)
            if m is None:
                where = "an empty item (two commas?)" if not t else repr(t)
                counted = " (pages count from 1)" if re.fullmatch(r"-?0+(-\d*)?|\d+-0+", t) else ""
                raise ValueError(f"cannot read page selection {spec!r} at {where}{counted}: give page numbers (1), "
                                 "pages from the end (-1 is the last), ranges (2-4) or open ranges (3-), separated "
                                 "by commas")
            if m.group(1) is not None:
                n = int(m.group(1))
                items.append((n, n))
            else:
                first, last = int(m.group(2)), int(m.group(3)) if m.group(3) else None
                if last is not None and last < first:
                    raise ValueError(f"page range {t!r} in {spec!r} ends before it starts")
                items.append((first, last))
        return cls(",".join(parts), tuple(items))

    def pages(self, n: int) -> list[int]:
        """The 1-based page numbers selected of a document of ``n`` pages, ascending, each once."""
        chosen: set[int] = set()
        for first, last in self.items:
            if first < 0:  # counted from the end: (-k, -k)
                if -first <= n:
                    chosen.add(n + 1 + first)
            else:
                chosen.update(range(first, min(n, last if last is not None else n) + 1))
        return sorted(chosen)

    def last(self) -> int | None:
        """The highest page number the selection can pick, or None when it reaches the end (``3-``, ``-1``)."""
        if any(first < 0 or last is None for first, last in self.items):
            return None
        return max(last for _, last in self.items if last is not None)

    def needs_count(self) -> bool:
        """Whether the selection depends on how many pages a document has (a page counted from the end)."""
        return any(first < 0 for first, _ in self.items)

    def check(self, n: int) -> list[int]:
        """:meth:`pages`, refusing a document of which it selects nothing.

        Raises:
            NoSelectedPageError: no page of the ``n`` is selected.
        """
        chosen = self.pages(n)
        if not chosen:
            raise NoSelectedPageError(f"the document has {n} page{'s' if n != 1 else ''}; --pages {self.spec} "
                                      "selects none of them")
        return chosen


@dataclass(frozen=True)
class IngestConfig:
    """How files become pages.

    Attributes:
        dpi: resolution PDFs are rendered at (images keep their own pixels).
        pdf_backend: ``"pypdfium2"`` (default) or ``"pdf2image"`` (needs poppler-utils).
        max_pixels: pages with more pixels than this are refused with :class:`ImageTooLargeError`.
        fallback: when pypdfium2 cannot open a PDF, try pdf2image if poppler is installed.
        pages: read only these pages of each document (None: all); the others are not rendered or decoded.
        max_pages: a document with more pages to read (after ``pages``) fails with :class:`TooManyPagesError`.
        max_bytes: a document file larger than this fails (error kind ``file_too_large``) before it is read.
    """

    dpi: int = DEFAULT_DPI
    pdf_backend: str = "pypdfium2"
    max_pixels: int = MAX_PAGE_PIXELS
    fallback: bool = True
    pages: PageSelection | None = None
    max_pages: int = MAX_DOCUMENT_PAGES
    max_bytes: int = MAX_DOCUMENT_BYTES

    def __post_init__(self) -> None:
        if not 10 <= self.dpi <= 1200:
            raise ValueError(f"dpi must be between 10 and 1200, got {self.dpi}")
        if self.pdf_backend not in PDF_BACKENDS:
            raise ValueError(f"unknown PDF backend {self.pdf_backend!r}; choose one of {', '.join(PDF_BACKENDS)}")
        if self.max_pixels < 1:
            raise ValueError("max_pixels must be positive")
        if self.max_pages < 1:
            raise ValueError("max_pages must be positive")
        if self.max_bytes < 1:
            raise ValueError("max_bytes must be positive")


@dataclass(frozen=True, eq=False)
class Page:
    """One rendered page.

    Attributes:
        number: 1-based page number within its document.
        image: ``(H, W, 3)`` uint8 BGR, paper light, ink dark.
        dpi: resolution of ``image`` (rendering dpi for PDFs, metadata or assumed dpi for images).
        placed: for a PDF page read with pypdfium2, what on it was placed digitally rather than scanned (typed
            text, vector strokes, pictures, annotations: :mod:`sigpipe.pipeline.placed`); None when not known
            (image files, poppler).
    """

    number: int
    image: np.ndarray = field(repr=False)
    dpi: int
    placed: PlacedMarks | None = field(default=None, repr=False)

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` in pixels."""
        return int(self.image.shape[1]), int(self.image.shape[0])

    def placed_origin(self, bbox: tuple[float, float, float, float]) -> str | None:
        """How the ink in ``bbox`` (pixels of this page) came onto it when placed digitally
        (:meth:`~sigpipe.pipeline.placed.PlacedMarks.origin`); None for scanned ink or when not known."""
        return None if self.placed is None else self.placed.origin(bbox, self.image)


def is_scan(path: Path) -> bool:
    """Whether discovery picks up ``path`` (by suffix, case-insensitive): a scan, or a file of a kind someone may
    have meant as a document that sigpipe does not read (:data:`UNREAD_DOCUMENTS`: it fails with a report saying
    what to do)."""
    suffix = path.suffix.lower()  # (an office program's owner file, ~$letter.docx, is no document)
    return suffix in SCAN_SUFFIXES or suffix in UNREAD_DOCUMENTS and not path.name.startswith("~$")


def discover_scans(root: str | Path, unreadable: list[tuple[Path, str]] | None = None) -> list[Path]:
    """Every document under ``root``, recursively, sorted by relative path.

    Hidden files and anything inside hidden folders (names starting with ``.``) are skipped; files with other
    suffixes are ignored (those of :data:`UNREAD_DOCUMENTS` are returned: they fail). A file with a scan suffix is
    returned whatever its content (a text file named ``.pdf`` is a
    document that will fail, with a report saying why), and so is a broken symbolic link with one, or a FIFO,
    device or socket. Linked folders are
    followed (each real folder once). ``root`` may also be a single file. Folders that cannot be read (permissions)
    go into ``unreadable`` as ``(folder, why)``: their documents cannot even be counted.

    Raises:
        UnreadableFileError: ``root`` does not exist.
    """
    root = Path(root)
    if root.is_file():
        return [root] if is_scan(root) else []
    if not root.is_dir():
        raise UnreadableFileError(f"scans folder not found: {root}")
    def cannot_read(e: OSError) -> None:
        if unreadable is not None:
            unreadable.append((Path(e.filename or root), e.strerror or str(e)))

    # a FIFO, device or socket with a scan's name (or a link to one) too: it gets a report saying why it cannot be
    # read, where it went missing unsaid
    found = [p for p in visible_files(root, cannot_read) if is_scan(p) and not p.is_dir()]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def relative_name(path: Path, root: Path) -> str:
    """The document's name in reports and claims: its POSIX path relative to ``root`` (its name if root is it), as
    valid Unicode (bytes that are not UTF-8 as ``\\xNN``, :func:`sigpipe._names.readable`)."""
    if path == root or root.is_file():
        return readable(path.name)
    return readable(path.relative_to(root).as_posix())


def poppler_available() -> bool:
    """Whether poppler's ``pdftoppm`` and ``pdfinfo`` are on ``PATH`` (needed by the pdf2image backend)."""
    return shutil.which("pdftoppm") is not None and shutil.which("pdfinfo") is not None


def check_backend(backend: str) -> None:
    """Fail early when the chosen PDF backend cannot work on this machine.

    Raises:
        MissingDependencyError: ``pdf2image`` was chosen and poppler-utils is not installed.
        ValueError: unknown backend.
    """
    if backend not in PDF_BACKENDS:
        raise ValueError(f"unknown PDF backend {backend!r}; choose one of {', '.join(PDF_BACKENDS)}")
    if backend == "pdf2image" and not poppler_available():
        raise MissingDependencyError(
            "the pdf2image backend needs poppler-utils (pdftoppm, pdfinfo), which is not installed: "
            "install it (apt-get install poppler-utils) or use --pdf-backend pypdfium2"
        )


def iter_pages(path: str | Path, config: IngestConfig = IngestConfig()) -> Iterator[Page]:
    """Yield the pages of one document, one at a time.

    Errors surface when the generator is advanced (the first ``next()`` for a file that cannot be opened).

    Raises:
        CorruptPdfError, EncryptedPdfError, EmptyDocumentError, CorruptImageError, ImageTooLargeError,
        TooManyPagesError, UnsupportedFormatError, UnreadableFileError, MissingDependencyError: with a message
        naming the problem.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise UnreadableFileError(f"file not found: {path}" if not path.exists() else
                                  f"not a regular file (a FIFO, device or socket): {path}")
    kind = _sniff(path)
    if kind == "empty":
        raise EmptyDocumentError("the file is empty (0 bytes)")
    if kind == "pdf" and suffix not in PDF_SUFFIXES or kind == "image" and suffix not in READ_IMAGE_SUFFIXES:
        # a scan misnamed, or an upload a service saved under a name of its own (`tmpk3x9.upload`)
        if suffix in SCAN_SUFFIXES:
            log.info("%s: its content is %s whatever its name; read as such", path.name,
                     "a PDF" if kind == "pdf" else "an image")
        suffix = ".pdf" if kind == "pdf" else ".png"
    if suffix in PDF_SUFFIXES:
        if config.pdf_backend == "pdf2image":
            yield from _pdf_pages_poppler(path, config)
        else:
            yield from _pdf_pages_pdfium(path, config)
    elif suffix in READ_IMAGE_SUFFIXES:  # a TIFF of more frames is refused before any is read (--pages: as they come)
        for n, page in enumerate(_image_pages(path, config), 1):
            if n > config.max_pages:
                raise too_many_pages(n, config.max_pages)
            yield page
    elif suffix in UNREAD_DOCUMENTS:
        what, todo = UNREAD_DOCUMENTS[suffix]
        raise UnsupportedFormatError(f"{what}: sigpipe reads PDF, TIFF, PNG, JPEG, BMP and Netpbm files; {todo}")
    else:
        raise UnsupportedFormatError(
            f"unsupported file type {path.suffix!r}: expected one of {', '.join(sorted(SCAN_SUFFIXES))}"
        )


def reads_as_pdf(path: Path) -> bool:
    """Whether :func:`iter_pages` reads ``path`` as a PDF: by its first bytes (a PDF saved as ``.tif``, a PNG saved as
    ``.pdf``), else by its suffix.

    Raises:
        UnreadableFileError: the file cannot be read.
    """
    kind = _sniff(path)
    return kind == "pdf" or kind != "image" and path.suffix.lower() in PDF_SUFFIXES


def _looks_like(head: bytes) -> str:
    """What a file that should be a PDF seems to hold, by its first bytes, without quoting them: a link in SCANS may
    point at a file that is not the operator's to read (a configuration with a password), and reports are shared."""
    low = head[:512].lstrip().lower()
    if low.startswith(b"<!doctype html") or b"<html" in low:
        return "it looks like a web page: a download that failed?"
    if head.startswith(b"PK\x03\x04"):
        return "it looks like a ZIP archive, e.g. a Word or Excel file"
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        return "it looks like an old Office file"
    if holds_image(head):
        return "it looks like an image"
    text = head.decode("utf-8", "replace")  # the first bytes may end inside a character
    textual = sum(c.isprintable() or c.isspace() for c in text) >= 0.95 * len(text)
    return "it looks like text" if textual else "unknown binary content"


def _sniff(path: Path) -> str:
    """What a file holds by its first bytes: ``"pdf"``, ``"image"`` (PNG, JPEG, TIFF, BMP), ``"empty"`` or ``""``
    (unknown: its suffix decides). Scans get misnamed (a PDF saved as ``.tif``); the content routes them."""
    try:
        with open_regular(path) as f:
            head = f.read(1024)
    except OSError as e:
        raise UnreadableFileError(f"cannot read the file: {e}") from e
    if not head:
        return "empty"
    if holds_image(head):
        return "image"
    return "pdf" if b"%PDF-" in head else ""  # PDF readers accept junk before the header


# A PDF page that would be over the pixel limit at --dpi is drawn at the resolution that gives this many pixels: a
# phone's 48 Mpx photo placed on a page sized at 72 dpi (as Pillow and phone apps write them) is a page of 111 x 83
# inches, 376 Mpx at 200 dpi, and failed its whole contract (image_too_large) every night (a legal-package audit)
OVERSIZE_PAGE_PIXELS = 40_000_000
MIN_PAGE_DPI = 20  # a page that is over the limit even so is refused
MAX_PAGE_SIDE_PT = 14_400  # 200 inches, the PDF standard's largest page side: a page beyond it is refused as too large


def page_dpi(w_pt: float, h_pt: float, config: IngestConfig, what: str = "the page") -> int:
    """The resolution a PDF page of ``w_pt`` x ``h_pt`` points is drawn at: ``config.dpi``, or lower for a page that
    would be over ``config.max_pixels`` at it (:data:`OVERSIZE_PAGE_PIXELS`, at most the limit), whose pixels the
    page's own image seldom has anyway.

    Raises:
        ImageTooLargeError: over the limit even at :data:`MIN_PAGE_DPI`, or a side over :data:`MAX_PAGE_SIDE_PT`.
    """
    dpi = config.dpi
    if (w_pt * dpi / 72) * (h_pt * dpi / 72) <= config.max_pixels:
        return dpi
    fit = 72.0 * math.sqrt(min(OVERSIZE_PAGE_PIXELS, config.max_pixels) / (w_pt * h_pt))
    if fit < MIN_PAGE_DPI or max(w_pt, h_pt) > MAX_PAGE_SIDE_PT:
        count_pixels_guard(round(w_pt * dpi / 72), round(h_pt * dpi / 72), config, f"{what} at {config.dpi} dpi")
    drawn = max(MIN_PAGE_DPI, math.floor(fit))
    log.info("a page of %.0f x %.0f in would be over %.0f Mpx at %d dpi: drawn at %d dpi", w_pt / 72, h_pt / 72,
             config.max_pixels / 1e6, config.dpi, drawn)
    return drawn


def count_pixels_guard(width: int, height: int, config: IngestConfig, what: str) -> None:
    """Refuse a page over the pixel limit (decompression-bomb guard).

    Raises:
        ImageTooLargeError: ``width * height > config.max_pixels``.
    """
    if width * height > config.max_pixels:
        raise ImageTooLargeError(
            f"{what} is {width}x{height} px ({width * height / 1e6:.0f} Mpx), over the "
            f"{config.max_pixels / 1e6:.0f} Mpx limit per page"
        )


# --- PDF via pypdfium2 -------------------------------------------------------------------------------------------

# PDFium is not thread-safe, not even across documents: two threads calling it at once can crash or corrupt the
# process (pypdfium2's documentation). A predictor shared by a service's threads reads PDFs on each of them, so every
# PDFium call of this module (and of :mod:`sigpipe.pipeline.placed`, called under it) holds this lock; it is never held
# across a yield, so a page is detected and verified while other threads render theirs.
PDFIUM_LOCK = threading.RLock()


def _pdf_pages_pdfium(path: Path, config: IngestConfig) -> Iterator[Page]:
    import pypdfium2 as pdfium

    try:
        with PDFIUM_LOCK:
            doc = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as e:
        # PDFium's error code is process-global and not reset by a success, so it may describe an earlier file:
        # it is only believed when the bytes agree.
        code = getattr(e, "err_code", None)
        head, has_encrypt, empty = _sniff_pdf(path)
        if not head.startswith(b"%PDF-"):
            raise CorruptPdfError(f"not a PDF: the file does not start with '%PDF-' ({_looks_like(head)})") from e
        if code in (_PDFIUM_PASSWORD, _PDFIUM_SECURITY) and has_encrypt:
            raise EncryptedPdfError("the PDF is password-protected (encrypted); decrypt it first") from e
        if empty:
            raise EmptyDocumentError("the PDF has no pages") from e
        if config.fallback and poppler_available():
            log.info("%s: pypdfium2 cannot open it; trying pdf2image/poppler", path)
            yield from _pdf_pages_poppler(path, config, pdfium_error="cannot open it")
            return
        hint = "" if poppler_available() else " (and the poppler fallback is not installed)"
        raise CorruptPdfError(f"corrupt or truncated PDF: pypdfium2 cannot open it{hint}") from e
    except OSError as e:
        raise UnreadableFileError(f"cannot read {path}: {e}") from e
    _init_forms(doc, path)
    try:
        with PDFIUM_LOCK:
            n = len(doc)
        if n == 0:
            raise EmptyDocumentError("the PDF has no pages")
        for drawn, i in enumerate(_selected(n, config)):
            if drawn and drawn % REOPEN_PAGES == 0:  # what PDFium has parsed so far is let go
                with PDFIUM_LOCK:
                    doc.close()
                    try:
                        doc = pdfium.PdfDocument(str(path))
                    except pdfium.PdfiumError as e:  # the private copy opened a moment ago
                        raise CorruptPdfError(f"cannot open it again after page {i}: {e}") from e
                _init_forms(doc, path, say=False)
            with PDFIUM_LOCK:
                arr, placed, dpi = _render_pdfium(doc, i, n, config)
            yield Page(i + 1, arr, dpi, placed)
    finally:
        with PDFIUM_LOCK:
            doc.close()


# PDFium keeps every object it has parsed until the document is closed, the scanned images' compressed bytes among
# them: a 400-page contract grew the run by 0.7 MB a page (a legal-package audit; 1.9 GB at --max-pages' 2,000). The
# document is opened again after this many pages (a fraction of a millisecond each time on the throughput batch).
REOPEN_PAGES = 32


def _init_forms(doc: Any, path: Path, say: bool = True) -> None:
    """Form fields are drawn as a viewer shows them: a visible digital signature is a signature field's appearance,
    which PDFium leaves out unless the form environment exists before the first page is loaded."""
    import pypdfium2 as pdfium

    try:
        with PDFIUM_LOCK, ignoring(Warning):  # XFA forms PDFium cannot load: the pages are drawn all the same
            doc.init_forms()
    except pdfium.PdfiumError as e:
        if say:  # (once a document)
            log.info("%s: form fields are not drawn (%s)", path, e)


def _render_pdfium(doc: Any, i: int, n: int,
                   config: IngestConfig) -> tuple[np.ndarray, PlacedMarks | None, int]:
    """Page ``i`` (0-based, of ``n``) of an open pypdfium2 document: its pixels, what was placed on it, and the
    resolution it was drawn at (:func:`page_dpi`). The caller holds :data:`PDFIUM_LOCK`."""
    import pypdfium2 as pdfium

    try:
        page = doc[i]
    except pdfium.PdfiumError as e:
        raise CorruptPdfError(f"page {i + 1} of {n} cannot be loaded: {e}") from e
    try:
        w_pt, h_pt = page.get_size()
        dpi = page_dpi(w_pt, h_pt, config, f"page {i + 1}")
        scale = dpi / 72.0
        count_pixels_guard(round(w_pt * scale), round(h_pt * scale), config, f"page {i + 1} at {dpi} dpi")
        try:
            _drop_comments(page)
            bitmap = page.render(scale=scale)
            arr = _to_bgr_array(bitmap.to_numpy())
            bitmap.close()
        except pdfium.PdfiumError as e:
            raise CorruptPdfError(f"page {i + 1} of {n} cannot be rendered: {e}") from e
        if (why := undecodable_image(page, arr)) is not None:  # drawn as blank paper, without a word
            raise CorruptPdfError(f"page {i + 1} of {n} cannot be read: {why}")
        return arr, read_placed(page, (arr.shape[1], arr.shape[0]), getattr(doc, "formenv", None)), dpi
    finally:
        page.close()


# A reader's comments on a PDF, not the document: a sticky note's icon drawn over a genuine signature made it
# `forged`, a highlight over one hid it from the detector, a translucent oval drawn over one made it `forged` (a format
# audit and its retest). Taken off the page (in memory) before it is rendered. What may be a signature placed on the
# page stays (sigpipe/pipeline/placed.py judges it): ink drawn opaque, free text, stamps other than the standard
# review stamps, form fields, and a note larger than an icon (one holding a signature's picture).
COMMENT_ANNOTATIONS = ("FPDF_ANNOT_POPUP", "FPDF_ANNOT_HIGHLIGHT", "FPDF_ANNOT_UNDERLINE", "FPDF_ANNOT_SQUIGGLY",
                       "FPDF_ANNOT_STRIKEOUT", "FPDF_ANNOT_CARET", "FPDF_ANNOT_FILEATTACHMENT", "FPDF_ANNOT_SOUND",
                       "FPDF_ANNOT_SQUARE", "FPDF_ANNOT_CIRCLE", "FPDF_ANNOT_LINE", "FPDF_ANNOT_POLYGON",
                       "FPDF_ANNOT_POLYLINE")
NOTE_ICON_PT = 48.0  # a sticky note's icon is about 20 pt; a note's rectangle larger than this is kept
# the PDF standard's stamp names, and Acrobat's Standard Business and Sign Here stamps: a reviewer's, not a signer's.
# Whole names only: Acrobat names a custom stamp (a signature's picture among them) "#" and random letters, and a
# prefix such as "#D" took about one in 62 of those for a review stamp (a retest)
REVIEW_STAMPS = frozenset({
    "Approved", "Experimental", "NotApproved", "AsIs", "Expired", "NotForPublicRelease", "Confidential", "Final",
    "Sold", "Departmental", "ForComment", "TopSecret", "Draft", "ForPublicRelease",
    "SBApproved", "SBCompleted", "SBConfidential", "SBDraft", "SBFinal", "SBForComment", "SBForPublicRelease",
    "SBInformationOnly", "SBNotApproved", "SBNotForPublicRelease", "SBPreliminaryResults", "SBVoid",
    "SHSignHere", "SHWitness", "SHInitialHere", "SHAccepted", "SHRejected"})


def _drop_comments(page: Any) -> int:
    """Remove the comment annotations from an open pypdfium2 page, in memory only: those of the kinds in
    :data:`COMMENT_ANNOTATIONS`, a note no larger than an icon (:data:`NOTE_ICON_PT`), ink drawn translucent (a
    highlighter pen, as Acrobat, Preview and iOS draw it) and a standard review stamp (:data:`REVIEW_STAMPS`).
    Returns how many. The caller holds :data:`PDFIUM_LOCK`."""
    import pypdfium2.raw as raw

    kinds = {getattr(raw, name) for name in COMMENT_ANNOTATIONS if hasattr(raw, name)}
    dropped = 0
    for k in reversed(range(raw.FPDFPage_GetAnnotCount(page.raw))):
        annot = raw.FPDFPage_GetAnnot(page.raw, k)
        if not annot:
            continue
        try:
            comment = _is_comment(annot, raw.FPDFAnnot_GetSubtype(annot), kinds, raw)
        finally:
            raw.FPDFPage_CloseAnnot(annot)
        if comment and raw.FPDFPage_RemoveAnnot(page.raw, k):
            dropped += 1
    return dropped


def _is_comment(annot: Any, kind: int, kinds: set[int], raw: Any) -> bool:
    if kind in kinds:
        return True
    if kind == raw.FPDF_ANNOT_TEXT:
        rect = raw.FS_RECTF()
        return not raw.FPDFAnnot_GetRect(annot, ctypes.byref(rect)) or (
            abs(rect.right - rect.left) <= NOTE_ICON_PT and abs(rect.top - rect.bottom) <= NOTE_ICON_PT)
    if kind == raw.FPDF_ANNOT_INK:
        opacity = ctypes.c_float(1.0)
        return bool(raw.FPDFAnnot_GetNumberValue(annot, b"CA", ctypes.byref(opacity))) and opacity.value < 1.0
    if kind == raw.FPDF_ANNOT_STAMP:
        return wide_string(lambda b, n: raw.FPDFAnnot_GetStringValue(annot, b"Name", b, n)) in REVIEW_STAMPS
    return False


# Filters PDFium decodes (their abbreviations in inline images too); an image encoded otherwise draws nothing
PDF_FILTERS = frozenset({"FlateDecode", "Fl", "LZWDecode", "LZW", "RunLengthDecode", "RL", "ASCIIHexDecode", "AHx",
                         "ASCII85Decode", "A85", "DCTDecode", "DCT", "JPXDecode", "CCITTFaxDecode", "CCF",
                         "JBIG2Decode", "Crypt"})
MIN_CHECKED_PIXELS = 100_000  # images this large are checked: a page's scan, not a logo
# the encodings whose decoders refuse a damaged image (PDFium then draws nothing) rather than decode it to noise or
# black (Flate, LZW, CCITT: measured on garbage streams)
FAILING_DECODERS = frozenset({"DCTDecode", "DCT", "JPXDecode", "JBIG2Decode"})


BLANK_SHARE = 0.75  # of a page one value (paper left bare): its large images are decoded again to see they can be


def _mostly_blank(page: np.ndarray) -> bool:
    """Whether at least :data:`BLANK_SHARE` of a rendered page (every 8th pixel of its first channel) is white or its
    top-left corner's value: blank paper, or a page whose scan was not drawn, with a stamp, a number, or a printed
    form's lines over it (a form covering 12% of the page hid the missing scan from 98%, a retest). A scan in colour
    or gray drawn is seldom so even (its paper's grain); a clean bitonal one is, but its encodings (CCITT, Flate) are
    not decoded again (:data:`FAILING_DECODERS`)."""
    sample = page[::8, ::8, 0] if page.ndim == 3 else page[::8, ::8]
    return any(np.count_nonzero(sample == v) >= BLANK_SHARE * sample.size for v in (int(sample[0, 0]), 255))


def undecodable_image(page: Any, rendered: np.ndarray) -> str | None:
    """Why an image on an open pypdfium2 page was drawn as nothing, or None. PDFium renders a page whose image it
    cannot decode at all (an encoding it lacks; garbage where a JBIG2 or JPEG 2000 image should be) as blank paper
    without a word, and a signed cheque came out `unsigned` (a format audit). Images of at least
    :data:`MIN_CHECKED_PIXELS`: an encoding PDFium lacks, always (no decoding needed to tell); one it fails to decode
    when the page came out mostly blank (``rendered``, :func:`_mostly_blank`; a Bates number or a scanner's footer
    over the missing scan hid it from a first version, a retest), so that a page showing its scan is not decoded
    twice. An image cut short is drawn in part, and is not told from a whole one here (a stream's length depends on
    its bits per component, which PDFium does not report, and a JPEG without its end marker is often whole). The
    caller holds :data:`PDFIUM_LOCK`."""
    import pypdfium2 as pdfium
    import pypdfium2.raw as raw

    flat: bool | None = None
    for obj in page.get_objects(filter=(raw.FPDF_PAGEOBJ_IMAGE,), max_depth=15):
        meta = obj.get_metadata()
        if meta.width * meta.height < MIN_CHECKED_PIXELS:
            continue
        filters = list(obj.get_filters())
        size = f"{meta.width}x{meta.height}"
        unknown = [f for f in filters if f not in PDF_FILTERS]
        if unknown:
            return f"its {size} image is encoded with {', '.join(unknown)}, which this reader cannot decode"
        if not filters or filters[-1] not in FAILING_DECODERS:  # the others decode anything, to noise at worst
            continue
        if flat is None:
            flat = _mostly_blank(rendered)
        if flat:
            try:
                obj.get_bitmap()
            except pdfium.PdfiumError:
                return f"its {size} image ({', '.join(filters) or 'not compressed'}) cannot be decoded (damaged)"
    return None


def _selected(n: int, config: IngestConfig, first: int = 0) -> list[int]:
    """The pages to read of a document of ``n`` (0-based indexes, or 1-based numbers with ``first=1``)."""
    numbers = config.pages.check(n) if config.pages is not None else range(1, n + 1)
    if len(numbers) > config.max_pages:
        raise too_many_pages(len(numbers), config.max_pages)
    return [p - 1 + first for p in numbers]


def too_many_pages(n: int | None, limit: int) -> TooManyPagesError:
    """The error of a document with ``n`` pages to read over the ``limit`` (None: more than the limit, uncounted)."""
    count = f"{n} pages" if n is not None else f"more than {limit} pages"
    return TooManyPagesError(f"{count} to read, over the limit of {limit} a document (--max-pages; --pages reads "
                             "fewer): not read")


_COUNT_ZERO = re.compile(rb"/Type\s*/Pages\b[^>]*?/Count\s+0\b|/Count\s+0\b[^>]*?/Type\s*/Pages\b")
_PAGE_OBJECT = re.compile(rb"/Type\s*/Page\b(?!s)")


def _sniff_pdf(path: Path, limit: int = 64 << 20) -> tuple[bytes, bool, bool]:
    """Look at the bytes of a PDF that PDFium refused.

    Returns:
        ``(head, encrypted, empty)``: the first KiB (leading whitespace removed), whether the file has an
        ``/Encrypt`` dictionary, and whether its page tree is empty (``/Count 0`` and no page object).
    """
    try:
        with open(path, "rb") as f:
            data = f.read(limit)
    except OSError as e:
        raise UnreadableFileError(f"cannot read {path.name}: {e}") from e
    head = data[:1024].lstrip()
    is_pdf = head.startswith(b"%PDF-")
    empty = is_pdf and bool(_COUNT_ZERO.search(data)) and not _PAGE_OBJECT.search(data)
    return head, is_pdf and b"/Encrypt" in data, empty


def _to_bgr_array(a: np.ndarray) -> np.ndarray:
    """A rendered bitmap (gray, BGR or BGRA/BGRx) as a fresh, contiguous ``(H, W, 3)`` uint8 BGR array."""
    if a.ndim == 2:
        return cv2.cvtColor(a, cv2.COLOR_GRAY2BGR)
    if a.shape[2] == 4:
        return cv2.cvtColor(a, cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(a, dtype=np.uint8).copy()


# --- PDF via pdf2image / poppler ---------------------------------------------------------------------------------

_NUMBER = r"(\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)"  # pdfinfo writes 2e+06 for a page of 2,000,000 pt
_PAGE_SIZE = re.compile(rf"{_NUMBER}\s*x\s*{_NUMBER}\s*pts")


def _pdf_pages_poppler(path: Path, config: IngestConfig, pdfium_error: str | None = None) -> Iterator[Page]:
    from pdf2image import convert_from_path, pdfinfo_from_path
    from pdf2image.exceptions import (
        PDFInfoNotInstalledError,
        PDFPageCountError,
        PDFPopplerTimeoutError,
        PDFSyntaxError,
        PopplerNotInstalledError,
    )

    before = f"pypdfium2: {pdfium_error}; " if pdfium_error else ""
    try:
        info = pdfinfo_from_path(str(path), timeout=120)
    except (PDFInfoNotInstalledError, PopplerNotInstalledError) as e:
        raise MissingDependencyError(
            "the pdf2image backend needs poppler-utils (pdfinfo, pdftoppm), which is not installed"
        ) from e
    except (PDFPageCountError, PDFSyntaxError, PDFPopplerTimeoutError, ValueError) as e:
        msg = str(e)
        if "password" in msg.lower() or "encrypt" in msg.lower():
            raise EncryptedPdfError("the PDF is password-protected (encrypted); decrypt it first") from e
        raise CorruptPdfError(f"not a readable PDF: corrupt, truncated or not a PDF at all ({before}poppler: "
                              f"{msg.strip()[:300]})") from e
    n = int(info.get("Pages", 0))
    if n == 0:
        raise EmptyDocumentError("the PDF has no pages")
    for i in _selected(n, config, first=1):
        try:
            page_info = pdfinfo_from_path(str(path), first_page=i, last_page=i, timeout=120)
        except (PDFPageCountError, PDFSyntaxError, PDFPopplerTimeoutError, ValueError) as e:
            raise CorruptPdfError(f"page {i} of {n} cannot be read: {e}") from e
        size = next((v for k, v in page_info.items() if "size" in k.lower() and "pts" in str(v)), None)
        m = _PAGE_SIZE.search(str(size)) if size else None
        if not m:  # rendered unchecked, a page of a few bytes can take gigabytes before the check after it
            raise CorruptPdfError(f"page {i} of {n} has no size that poppler can tell ({size!r})")
        w_pt, h_pt = float(m.group(1)), float(m.group(2))
        if w_pt <= 0 or h_pt <= 0:  # poppler's answer for a page object it could not load
            raise CorruptPdfError(f"page {i} of {n} cannot be loaded (poppler gives it {w_pt:g} x {h_pt:g} pts)")
        dpi = page_dpi(w_pt, h_pt, config, f"page {i}")
        count_pixels_guard(round(w_pt * dpi / 72), round(h_pt * dpi / 72), config, f"page {i} at {dpi} dpi")
        try:
            # the CropBox, as PDF viewers and PDFium show a page (and as pdfinfo sized it for the pixel check)
            images = convert_from_path(str(path), dpi=dpi, first_page=i, last_page=i, fmt="ppm",
                                       use_cropbox=True, timeout=600)
        except (PDFPageCountError, PDFSyntaxError, PDFPopplerTimeoutError) as e:
            raise CorruptPdfError(f"page {i} of {n} cannot be rendered: {e}") from e
        if not images:
            raise CorruptPdfError(f"poppler rendered nothing for page {i} of {n}")
        img = images[0]
        if img.width <= 1 or img.height <= 1:
            raise CorruptPdfError(f"page {i} of {n} cannot be rendered (poppler gave {img.width} x {img.height} px)")
        count_pixels_guard(img.width, img.height, config, f"page {i}")
        arr = _pil_to_bgr(img)
        img.close()
        yield Page(i, arr, dpi)


# --- images ------------------------------------------------------------------------------------------------------

def _image_pages(path: Path, config: IngestConfig) -> Iterator[Page]:
    try:
        with ignoring(Image.DecompressionBombWarning):  # our own pixel limit applies; PIL's (89 Mpx) is below it
            img = _pil_open(path)
    except Image.DecompressionBombError as e:  # PIL refuses over twice its own limit before we see the size
        n = re.search(r"\((\d+) pixels\)", str(e))
        size = f"{int(n.group(1)) / 1e6:.0f} Mpx, " if n else ""
        raise ImageTooLargeError(f"the image is {size}over the {config.max_pixels / 1e6:.0f} Mpx limit per page") from e
    except (UnidentifiedImageError, ImportError) as e:
        raise CorruptImageError(f"not a readable image: a {path.suffix} file that PIL cannot identify") from e
    except (ValueError, SyntaxError, EOFError) as e:  # a header PIL refuses (a Netpbm maxval over 65535): internal
        raise CorruptImageError(f"not a readable image (a damaged header): {e}") from e
    except OSError as e:
        if e.errno is None:  # PIL's own complaint about the content ("Truncated File Read"), not the disk's
            raise CorruptImageError(f"not a readable image (truncated or damaged): {e}") from e
        raise UnreadableFileError(f"cannot read {path.name}: {e}") from e
    with img:
        number = 0
        # pages: a TIFF's frames; other formats' extra frames are no pages (a JPEG's MPF preview, an APNG's frames)
        multipage = img.format == "TIFF"
        sel = config.pages
        if multipage and sel is None and _has_frame(img, config.max_pages):  # before any is decoded and detected:
            raise too_many_pages(None, config.max_pages)  # 3,000 tiny frames, a 576 KB file, held a thread 80 s
        wanted: set[int] | None = None
        if sel is not None and sel.needs_count():
            try:
                wanted = set(sel.check(int(getattr(img, "n_frames", 1)) if multipage else 1))
            except (OSError, ValueError, SyntaxError, EOFError, TypeError) as e:
                raise CorruptImageError(f"cannot count the pages (truncated or damaged): {e}") from e
        seen = 0
        stop = sel.last() if sel is not None else None  # no need to seek through the frames after it
        reading = 0  # the page being read when it fails; 0 while the next frame is sought
        try:
            for frame in ImageSequence.Iterator(img) if multipage else [img]:
                number += 1
                reading = number
                if sel is not None and number not in (wanted if wanted is not None else sel.pages(number)):
                    reading = 0  # not read: a failure from here on is in seeking the next page
                    if stop is not None and number >= stop:
                        break
                    continue
                seen += 1
                count_pixels_guard(frame.width, frame.height, config, f"page {number}")
                aspect = _pixel_aspect(frame)  # before the EXIF turn, which may swap the axes
                if aspect > 1:  # resampled taller: the limit holds for the page as it will be
                    count_pixels_guard(frame.width, round(frame.height * aspect), config,
                                       f"page {number}, its pixels made square,")
                with ignoring(Image.DecompressionBombWarning):
                    try:
                        _load(frame)
                        ImageOps.exif_transpose(frame, in_place=True)  # a copy of every page otherwise
                        arr = _square_pixels(_pil_to_bgr(frame), aspect)
                    except Image.DecompressionBombError as e:
                        raise ImageTooLargeError(f"page {number} is over the pixel limit: {e}") from e
                    except (OSError, ValueError, SyntaxError) as e:
                        raise CorruptImageError(f"page {number} cannot be decoded (truncated or damaged): {e}") from e
                yield Page(number, arr, _image_dpi(frame))
                reading = 0
        except (EOFError, OSError, TypeError, SyntaxError) as e:  # cut short: this page, or the next one sought
            raise CorruptImageError(f"page {reading or number + 1} cannot be read (truncated or damaged): {e}") from e
        if number == 0:
            raise EmptyDocumentError("the image has no frames")
        if sel is not None and seen == 0:
            sel.check(number)  # raises: nothing selected


def _load(frame: Image.Image) -> None:
    """Decode ``frame``. Pillow 13 reads an uncompressed TIFF page whose Orientation tag turns it a quarter (5-8)
    through a memory map the shape of the turned page: rows of the stored page cut to the wrong width, a stack of
    squashed copies (a format audit: such a cheque came out `unsigned`). Read without the map, it is right."""
    if getattr(frame, "_tile_size", frame.size) == frame.size:
        frame.load()
        return
    name = frame.filename  # type: ignore[attr-defined]
    frame.filename = ""  # type: ignore[attr-defined]  # no file name, no memory map
    try:
        frame.load()
    finally:
        frame.filename = name  # type: ignore[attr-defined]


def _has_frame(img: Image.Image, index: int) -> bool:
    """Whether a multi-frame image has a frame ``index`` (0-based), by seeking its headers only, no more than that
    far; a file damaged on the way says no (its pages are then read, and fail, as they come). Left at frame 0."""
    try:
        img.seek(index)
        return True
    except (EOFError, OSError, ValueError, SyntaxError, TypeError):
        return False
    finally:
        with contextlib.suppress(EOFError, OSError, ValueError, SyntaxError, TypeError):
            img.seek(0)


def _pil_open(path: Path) -> Image.Image:
    """``PIL.Image.open``, bypassing Ultralytics' patch of it when present.

    Importing Ultralytics replaces ``Image.open`` with a wrapper that, on a file PIL cannot identify, tries to
    install and import a HEIF plugin (``ModuleNotFoundError`` offline) instead of raising ``UnidentifiedImageError``.
    """
    opener = Image.open
    module = sys.modules.get(getattr(opener, "__module__", "") or "")
    if module is not None and module.__name__.startswith("ultralytics"):
        opener = getattr(module, "_image_open", opener)
    return opener(path)


def _image_dpi(img: Image.Image) -> int:
    """Horizontal dpi from the image's metadata, or :data:`DEFAULT_DPI` when absent or implausible (the page's in
    both directions once :func:`_square_pixels` has made its pixels square)."""
    dpi = img.info.get("dpi")
    if img.format in ("JPEG", "MPO") and img.info.get("jfif_unit") not in (1, 2) and 0x011A not in img.getexif():
        dpi = None  # Pillow says 72 for a JPEG whose EXIF (orientation only, say) has no resolution
    try:
        value = float(dpi[0]) if isinstance(dpi, tuple | list) else float(dpi) if dpi is not None else 0.0
    except (TypeError, ValueError):
        value = 0.0
    return int(round(value)) if 20 <= value <= 4800 else DEFAULT_DPI


PIXEL_ASPECT_TOLERANCE = 0.02  # x and y resolutions closer than this are taken for square pixels
MAX_PIXEL_ASPECT = 4.0  # x and y resolutions further apart are no scanner's (a fax's are 2.08): metadata ignored


def _pixel_aspect(img: Image.Image) -> float:
    """How many times taller than wide a pixel of ``img`` is on paper (x dpi / y dpi, turned by the EXIF
    orientation as the page will be), from its metadata; 1.0 when it has no plausible pair of resolutions. A fax at
    standard resolution is 204 x 98 dpi: 2.08."""
    dpi = img.info.get("dpi")
    if not isinstance(dpi, tuple | list) or len(dpi) != 2:
        return 1.0
    try:
        x, y = float(dpi[0]), float(dpi[1])
    except (TypeError, ValueError):
        return 1.0
    if not (20 <= x <= 4800 and 20 <= y <= 4800) or not 1 / MAX_PIXEL_ASPECT <= x / y <= MAX_PIXEL_ASPECT:
        return 1.0
    turned = img.getexif().get(0x0112) in (5, 6, 7, 8)  # EXIF orientations that swap width and height
    return y / x if turned else x / y


def _square_pixels(arr: np.ndarray, aspect: float) -> np.ndarray:
    """A page whose pixels are not square on paper resampled in height to the width's resolution (the page's dpi,
    :func:`_image_dpi`). Otherwise a fax read at standard resolution has signatures squashed to half their height:
    the verifier judged a genuine one ``forged`` at 3 times its threshold."""
    if abs(aspect - 1.0) <= PIXEL_ASPECT_TOLERANCE:
        return arr
    h, w = arr.shape[:2]
    height = max(1, round(h * aspect))
    return cv2.resize(arr, (w, height), interpolation=cv2.INTER_LINEAR if height > h else cv2.INTER_AREA)


def _pil_to_bgr(img: Image.Image) -> np.ndarray:
    """Any PIL image as ``(H, W, 3)`` uint8 BGR: alpha composited on white, 16-bit scaled to 8-bit."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(img, dtype=np.float64)
        gray = to_8bit(a, sixteen=mode.startswith("I;16"))
        tags = getattr(img, "tag_v2", None)
        if tags is not None and tags.get(262) == 0:  # TIFF MinIsWhite: Pillow inverts 8-bit pages, not these
            gray = 255 - gray
        key = img.info.get("transparency")
        if isinstance(key, (int, float)) and not isinstance(key, bool):  # a PNG's transparent gray: paper
            gray[a == key] = 255
        return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    img = on_white(img)  # RGBA when it had transparency
    mode = img.mode
    if mode in ("1", "L"):  # most scans: expand gray to three channels in one vectorised pass
        return cv2.cvtColor(np.asarray(img if mode == "L" else img.convert("L"), dtype=np.uint8), cv2.COLOR_GRAY2BGR)
    rgb = np.asarray(img if mode == "RGB" else img.convert("RGB"), dtype=np.uint8)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
