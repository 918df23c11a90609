"""Which signatures on a PDF page were placed there digitally rather than scanned from paper.

An executed contract from an e-signature platform is a born-digital PDF: the "signature" is the signer's name typed
in a script font, strokes drawn with a mouse, or a picture placed on the page. Judged as handwriting, a typed name
came out ``forged`` with a score near 0 (a legally valid execution reported as a forged contract) or, in a
handwriting-like font, ``genuine``. Its shape proves nothing: the platform's audit trail or the certificate does.

The PDF says what drew the ink under a box. A scanned page is raster images side by side covering most of the page
(one image, or a scanner's strips or tiles); anything drawn above them (visible text, vector paths, a picture over
the scan, an ink, free-text or stamp annotation, a signature field) was placed on the page afterwards. On a page that
holds no scan, everything was placed. A box is placed when such marks hold most of its dark pixels. Pixels alone
cannot tell: a typed name printed and scanned, or a PDF of page images, stays a scan here (``None``).
"""
from __future__ import annotations

import ctypes
import logging
import math
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

# what drew a placed mark: typed glyphs, vector strokes, an embedded picture that is not the page's scan, or a
# signature field (ink, free-text and stamp annotations count as vector, text and image); and a conformed signature,
# "/s/ Jane Doe" typed in a signature block (a conformed copy's record that the original was signed)
PLACED_KINDS = ("text", "vector", "image", "annotation", "conformed")
PLACED_WORDS = {"text": "typed text", "vector": "vector strokes drawn in the PDF",
                "image": "a picture pasted onto the page", "annotation": "a signature field",
                "conformed": "a conformed signature (/s/ and the name, typed)"}


def not_judged(kind: str | None) -> str:
    """What an ``electronic`` signature placed as ``kind`` is, and why it is not judged: for review sheets and
    ``sigpipe verify``."""
    if kind == "conformed":
        return f"{PLACED_WORDS[kind]}: a copy's record that the original was signed; not judged"
    return (f"{PLACED_WORDS.get(kind or '', str(kind))} (placed digitally, not scanned ink): not judged; its audit "
            "trail or certificate proves it")
SCAN_COVER = 0.5  # raster images side by side (not over one another) covering this share of the page: its scan
MIN_INK = 0.75  # on a scanned page, placed marks must hold this share of the ink in a box to have placed it
MIN_INK_DIGITAL = 0.5  # on a page without a scan (the rest can only be an exhibit's picture, or a frame)
MIN_SPAN = 0.5  # without the page's pixels: the share of the box they must span
_INK = 200  # a colour whose mean channel is at or above this is paper, not ink (white boxes, light cell shading)
_PREFERRED = ("annotation", "image", "text", "vector")  # on a tie; a frame's or a table cell's lines are paths

Box = tuple[float, float, float, float]
Matrix = tuple[float, float, float, float, float, float]  # (a, b, c, d, e, f): x' = a x + c y + e, y' = b x + d y + f
_IDENTITY: Matrix = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)


@dataclass(frozen=True)
class PlacedMarks:
    """What a PDF page holds besides a scan of paper.

    Attributes:
        scanned: the page holds a scan (raster images side by side covering at least :data:`SCAN_COVER` of it: one
            image, or the strips or tiles some scanners write).
        marks: ``(kind, box)`` of each visible thing placed on the page (above its scan, if any), ``box`` in pixels
            of the rendered page; ``kind`` one of :data:`PLACED_KINDS`. Form XObjects (a page wrapped by a merge or
            Bates-stamping tool, an e-signature's appearance) are looked into: their objects are marks.
        conformed: ``(box, name)`` of each conformed signature in the page's text ("/s/ Jane Doe":
            :func:`find_conformed`), ``box`` in pixels of the rendered page, ``name`` as typed; the detector,
            trained on handwriting, may not box them. In shown text, or on a scanned page in its OCR layer too
            (whether the page's pixels show it is for the caller to see, :func:`shows_ink`), or in a form field's
            value; not when struck through (a redline).
    """

    scanned: bool
    marks: tuple[tuple[str, Box], ...]
    conformed: tuple[tuple[Box, str], ...] = ()

    def origin(self, box: Box, page: np.ndarray | None = None) -> str | None:
        """How the ink in ``box`` (pixels of the rendered page) came onto the page, or None when it is part of the
        page's scan (or of something much larger than the box: a page image placed on a digital page, an exhibit,
        judged as scanned ink).

        The marks that may have drawn it lie over the box and are at most 2.5 times its size (a typed name's words,
        a drawn signature's strokes, each its own path, the picture around its ink); a vector path must lie mostly
        inside the box (one around it is a frame's or a table cell's lines). Given the rendered ``page``, they
        placed the signature when they hold :data:`MIN_INK` of the dark pixels in the box on a scanned page (a
        notary seal's picture over part of a wet signature does not), :data:`MIN_INK_DIGITAL` on a page without a
        scan;
        without the page, when they span :data:`MIN_SPAN` of the box. The kind is the one holding the most ink
        (spanning the most), a pixel under text, a picture or an annotation and under a path counting for the
        former (a typed name in a table cell is text). A box that is mostly a conformed signature is
        ``conformed`` when typed text drew it, or the page's scan (a conformed copy printed, scanned and read by
        OCR)."""
        kind = self._origin(box, page)
        return "conformed" if kind in ("text", None) and self.conformed_name(box) is not None else kind

    def conformed_name(self, box: Box) -> str | None:
        """The name of the conformed signature ``box`` mostly is (:func:`same_place`), or None."""
        return next((name for c, name in self.conformed if same_place(c, box)), None)

    def _origin(self, box: Box, page: np.ndarray | None) -> str | None:
        area = _area(box)
        if area <= 0:
            return None
        members = [(k, b) for k, b in self.marks if _overlap(b, box) > 0 and _area(b) <= 2.5 * area
                   and (k != "vector" or _overlap(b, box) >= 0.5 * _area(b))]
        if not members:
            return None
        ink = _ink_mask(page, box) if page is not None else None
        if ink is not None and ink.any():
            taken = np.zeros_like(ink)
            held: dict[str, int] = {}
            for kind in _PREFERRED:  # a pixel under typed text and a cell's lines is the text's
                mine = _held(ink, box, [b for k, b in members if k == kind]) & ~taken
                held[kind] = int(mine.sum())
                taken |= mine
            if taken.sum() < (MIN_INK if self.scanned else MIN_INK_DIGITAL) * ink.sum():
                return None
            return max(_PREFERRED, key=lambda k: (held[k], -_PREFERRED.index(k)))
        spans = {}
        for kind in {k for k, _ in members}:
            own = [b for k, b in members if k == kind]
            union = (min(b[0] for b in own), min(b[1] for b in own), max(b[2] for b in own), max(b[3] for b in own))
            spans[kind] = _overlap(union, box) / area
        best = max(_PREFERRED, key=lambda k: (spans.get(k, -1.0), -_PREFERRED.index(k)))
        return best if spans.get(best, 0.0) >= MIN_SPAN else None


def same_place(a: Box, b: Box) -> bool:
    """Whether two boxes are mostly one another: they overlap by half the smaller of the two (a detector's box
    around a typed line, or around its name alone)."""
    return _overlap(a, b) >= 0.5 * min(_area(a), _area(b)) > 0


def _held(ink: np.ndarray, box: Box, marks: list[Box]) -> np.ndarray:
    """The pixels of ``ink`` (the mask of ``box``) that lie under ``marks``."""
    under = np.zeros_like(ink)
    x0, y0 = max(int(box[0]), 0), max(int(box[1]), 0)
    for b in marks:
        under[max(int(b[1]) - y0, 0):max(int(np.ceil(b[3])) - y0, 0),
              max(int(b[0]) - x0, 0):max(int(np.ceil(b[2])) - x0, 0)] = True
    return under & ink


def _ink_mask(page: np.ndarray, box: Box) -> np.ndarray:
    """The dark pixels of ``page`` (BGR or gray) inside ``box``: darker than the box's paper by a third."""
    x1, y1 = max(int(box[0]), 0), max(int(box[1]), 0)
    x2, y2 = min(int(np.ceil(box[2])), page.shape[1]), min(int(np.ceil(box[3])), page.shape[0])
    crop = page[y1:y2, x1:x2]
    gray = crop.min(axis=2) if crop.ndim == 3 else crop  # a coloured pen's ink is dark in some channel
    if gray.size == 0:
        return np.zeros((0, 0), bool)
    paper = float(np.percentile(gray, 90))
    return np.asarray(gray < paper * 2 / 3)


def _area(b: Box) -> float:
    return max(b[2] - b[0], 0.0) * max(b[3] - b[1], 0.0)


def _overlap(a: Box, b: Box) -> float:
    return max(min(a[2], b[2]) - max(a[0], b[0]), 0.0) * max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)


def read_placed(page: Any, size: tuple[int, int], form: Any = None) -> PlacedMarks | None:
    """The placed marks of a pypdfium2 page rendered at ``size`` (width, height pixels, the page's own rotation
    applied, as :meth:`PdfPage.render` draws it); ``form``: the document's form environment, if initialised.
    None when the page's objects cannot be read (the signatures' origin is then unknown, never an error)."""
    try:
        return _read(page, size, form)
    except Exception as e:  # noqa: BLE001 - a page PDFium can render but not list is read all the same
        log.debug("page objects not read: %s", e)
        return None


def _compose(outer: Matrix, inner: Matrix) -> Matrix:
    """``outer`` after ``inner``."""
    a, b, c, d, e, f = outer
    ia, ib, ic, id_, ie, if_ = inner
    return (a * ia + c * ib, b * ia + d * ib, a * ic + c * id_, b * ic + d * id_, a * ie + c * if_ + e,
            b * ie + d * if_ + f)


def _read(page: Any, size: tuple[int, int], form: Any) -> PlacedMarks:
    import pypdfium2.raw as raw

    w, h = size

    def device(px: float, py: float) -> tuple[float, float]:
        dx, dy = ctypes.c_int(), ctypes.c_int()
        raw.FPDF_PageToDevice(page.raw, 0, 0, w, h, 0, px, py, ctypes.byref(dx), ctypes.byref(dy))
        return float(dx.value), float(dy.value)

    # page space to pixels is affine (the page's rotation, crop box and scale): found once from three points far
    # apart, since PDFium rounds each to whole pixels
    o, ex, ey = device(0.0, 0.0), device(10000.0, 0.0), device(0.0, 10000.0)
    to_device: Matrix = ((ex[0] - o[0]) / 1e4, (ex[1] - o[1]) / 1e4, (ey[0] - o[0]) / 1e4, (ey[1] - o[1]) / 1e4,
                         o[0], o[1])

    def to_pixels(m: Matrix, left: float, bottom: float, right: float, top: float) -> Box | None:
        """The bounds in pixels of the rendered page, clipped to it; None off the page."""
        a, b, c, d, e, f = _compose(to_device, m)
        corners = ((left, bottom), (right, top), (left, top), (right, bottom))
        xs = [a * x + c * y + e for x, y in corners]
        ys = [b * x + d * y + f for x, y in corners]
        if min(xs) >= w or min(ys) >= h or max(xs) <= 0 or max(ys) <= 0:
            return None
        x1, y1 = max(min(xs), 0.0), max(min(ys), 0.0)
        x2, y2 = min(max(xs), float(w)), min(max(ys), float(h))
        return (x1, y1, max(x2, x1 + 1.0), max(y2, y1 + 1.0))  # a level line is a pixel thick

    drawn: list[tuple[str, Box]] = []  # in drawing order
    left, bottom, right, top = (ctypes.c_float() for _ in range(4))
    bounds = [ctypes.byref(v) for v in (left, bottom, right, top)]
    matrix = raw.FS_MATRIX()

    def visit(obj: Any, m: Matrix, depth: int) -> None:
        t = raw.FPDFPageObj_GetType(obj)
        if t == raw.FPDF_PAGEOBJ_FORM:  # its objects, in the form's space: placed by its matrix
            if depth >= 8 or not raw.FPDFPageObj_GetMatrix(obj, ctypes.byref(matrix)):
                return
            inner = _compose(m, (matrix.a, matrix.b, matrix.c, matrix.d, matrix.e, matrix.f))
            for i in range(max(raw.FPDFFormObj_CountObjects(obj), 0)):
                child = raw.FPDFFormObj_GetObject(obj, i)
                if child:
                    visit(child, inner, depth + 1)
            return
        kind = _kind(obj, t, raw)
        if kind is not None and raw.FPDFPageObj_GetBounds(obj, *bounds):
            box = to_pixels(m, left.value, bottom.value, right.value, top.value)
            if box is not None:
                drawn.append((kind, box))

    for i in range(max(raw.FPDFPage_CountObjects(page.raw), 0)):
        obj = raw.FPDFPage_GetObject(page.raw, i)
        if obj:
            visit(obj, _IDENTITY, 0)
    # the scan: images side by side, not drawn over an earlier image (one image, or a scanner's strips or tiles),
    # covering most of the page; an image drawn over another is placed (an e-signature pasted on a scan). What was
    # drawn before a piece of the scan and lies under it is hidden (an OCR layer "beneath" the image).
    boxes = np.array([b for _, b in drawn], np.float64).reshape(-1, 4)
    images = np.array([i for i, (k, _) in enumerate(drawn) if k == "image"], int)
    if images.size:
        cover = _overlaps(boxes[images], boxes[images])  # [i, j]: of image i's area under image j
        earlier = np.tril(np.ones((images.size, images.size), bool), -1)
        pieces = images[~((cover >= 0.1) & earlier).any(axis=1)]
    else:
        pieces = images
    scanned = float(_areas(boxes[pieces]).sum()) >= SCAN_COVER * w * h
    marks = drawn
    if scanned:
        under = (_overlaps(boxes, boxes[pieces]) >= 0.5) & (np.arange(len(drawn))[:, None] < pieces[None, :])
        keep = np.asarray(~under.any(axis=1), bool)
        keep[pieces] = False
        marks = [m for m, k in zip(drawn, keep, strict=True) if k]
    pixels = lambda *r: to_pixels(_IDENTITY, *r)  # noqa: E731 - page space to pixels, for annotations and text
    # a conformed signature in shown text; on a scan, also in its OCR layer (the scan shows it, if anything does)
    typed = [(pixels(*r), name, pixels(*n)) for r, shown, name, n in find_conformed(page, raw) if shown or scanned]
    typed += [(b, name, b) for b, name in _field_conformed(page, form, raw, pixels)]
    return PlacedMarks(scanned, tuple(marks + _annotations(page, form, raw, pixels)),
                       tuple((b, name) for b, name, n in typed if b is not None and not (n and _struck(n, marks))))


def _struck(box: Box, marks: list[tuple[str, Box]]) -> bool:
    """Whether a line is drawn through the middle of ``box`` (a name struck through, as a redline shows text taken
    out): a level path at most a quarter as thick as the box is tall, across half its width, through its middle
    (0.3 to 0.7 of its height from the top; a signature line drawn at the baseline lies lower, about 0.77 in a font
    with descenders)."""
    h, w = box[3] - box[1], box[2] - box[0]
    return any(k == "vector" and b[3] - b[1] <= 0.25 * h and min(b[2], box[2]) - max(b[0], box[0]) >= 0.5 * w
               and box[1] + 0.3 * h <= (b[1] + b[3]) / 2 <= box[1] + 0.7 * h for k, b in marks)


def _field_conformed(page: Any, form: Any, raw: Any, to_pixels: Any) -> list[tuple[Box | None, str]]:
    """Conformed signatures typed into a text form field or a free-text annotation shown on the page: each
    field's box (pixels), and the name."""
    out: list[tuple[Box | None, str]] = []
    for annot, sub, rect in _shown_annotations(page, raw):
        if sub == raw.FPDF_ANNOT_FREETEXT:
            value = wide_string(lambda b, n, a=annot: raw.FPDFAnnot_GetStringValue(a, b"Contents", b, n))
        elif sub == raw.FPDF_ANNOT_WIDGET and form is not None and \
                raw.FPDFAnnot_GetFormFieldType(form.raw, annot) == raw.FPDF_FORMFIELD_TEXTFIELD:
            value = wide_string(lambda b, n, a=annot: raw.FPDFAnnot_GetFormFieldValue(form.raw, a, b, n))
        else:
            continue
        text = "\r\n".join(value.splitlines())  # lines as a page's text has them
        found = conformed_in(text)
        if found and rect is not None:
            out.append((to_pixels(*rect), " ".join(text[found[0].name:found[0].name_end].split())))
    return out


def wide_string(get: Any) -> str:
    """A UTF-16 string from a PDFium getter ``get(buffer, length in bytes) -> length needed``."""
    n = get(None, 0)
    if n <= 2:
        return ""
    buf = ctypes.create_string_buffer(n)
    get(ctypes.cast(buf, ctypes.POINTER(ctypes.c_ushort)), n)
    return buf.raw[:n - 2].decode("utf-16-le", errors="replace")


# A conformed signature's mark: "/s/" (any case) not inside a word, a path or a web address, or a court filing's
# "s/ " at the start of a line or a field; then, on its line or alone on the next, the name: a word that starts with
# a capital (or a letter of a script without capitals) and the words after it that do too, or are particles.
_MARK = re.compile(r"(?:(?<![^\W_])(?<![/.])/s/|(?<![^\s:_])s/(?=[ \t]))[ \t]*(?:\r?\n[ \t]*)?", re.IGNORECASE)
_WORD = re.compile(r"[^\W\d_](?:[^\W\d_]|[.'\u2019-])*")
_PARTICLES = frozenset("van von der den de del della di da du la le bin al ibn ter ten".split())
# first words that make "/s/ ..." a legend or a mention ("signatures preceded by /s/ were signed", "(see /s/
# Signature Pages)", "shown as /s/ Name"), not a name
_NOT_NAMES = frozenset("name names signature signatures signed followed preceded were was is are have has indicates "
                       "denotes means see and or the an of on in for by to with conformed page pages".split())
_SUFFIX = re.compile(r"[ \t]*(?:,?[ \t]*(?:jr|sr|ii|iii|iv|esq|phd|md)\.?)*[ \t,.]*", re.IGNORECASE)
MAX_NAME_WORDS = 6  # more capitalised words in a row are a heading or a sentence in capitals


@dataclass(frozen=True)
class ConformedText:
    """Where a conformed signature lies in a page's text: its mark at ``[mark, mark + mark_len)``, the name at
    ``[name, name_end)``; ``below``: the name is alone on the line after the mark's."""

    mark: int
    mark_len: int
    name: int
    name_end: int
    below: bool


def conformed_in(text: str) -> list[ConformedText]:
    """The conformed signatures in ``text`` (a page's text, lines ending ``\\r\\n`` as PDFium gives it, or a form
    field's value), as its characters alone tell them; the page's geometry then decides how far the name runs.
    Not one: a mark in quotes or brackets, or after "Initials" on its line (a footer's initials), a name that is
    a legend's word ("were signed", "Signature Pages"), a lower-case word ("the /s/ convention"), and a next line
    that holds more than the name (and a suffix: "Jr.")."""
    out = []
    for m in _MARK.finditer(text):
        before = text[:m.start()].rstrip(" \t")
        line = before[before.rfind("\n") + 1:]
        if before and before[-1] in "\"'\u201c\u2018([" or "initial" in line.casefold():
            continue
        words: list[re.Match[str]] = []
        pos = m.end()
        while (w := _WORD.match(text, pos)) and (not words or text[pos - 1] == " "):
            first = w.group()[0]
            if not (first.isalpha() and not first.islower()) and not (words and w.group().casefold() in _PARTICLES):
                break
            words.append(w)
            if text[w.end():w.end() + 1] != " ":
                break
            pos = w.end() + 1
        if not words or words[0].group().rstrip(".").casefold() in _NOT_NAMES:
            continue
        below = "\n" in m.group()
        rest = text[words[-1].end():].split("\n", 1)[0]
        if below and _SUFFIX.fullmatch(rest.rstrip("\r")) is None:
            continue  # the next line is the name alone, or it is another line ("By: /s/" above "By: ...")
        out.append(ConformedText(m.start(), 3 if text[m.start()] == "/" else 2, words[0].start(), words[-1].end(),
                                 below))
    return out


def find_conformed(page: Any, raw: Any) -> list[tuple[Box, bool, str, Box]]:
    """The conformed signatures in a pypdfium2 page's text: for each, ``(left, bottom, right, top)`` in page space
    around the mark and the name, whether the mark is shown (not invisible, as a scanner's OCR layer is, nor
    white), the name typed, and the box of the name alone. A conformed copy of a contract, or a filing, types
    "/s/ Jane Doe" in the signature block to record that the original was signed; the detector, trained on
    handwriting, does not box it, and the page read as unsigned.

    Which text is one: :func:`conformed_in`; how far the name runs along the page: :func:`_signature_box`."""
    textpage = raw.FPDFText_LoadPage(page.raw)
    if not textpage:
        return []
    try:
        n = raw.FPDFText_CountChars(textpage)
        if n <= 0:
            return []
        buf = ctypes.create_string_buffer((n + 1) * 2)
        got = raw.FPDFText_GetText(textpage, 0, n, ctypes.cast(buf, ctypes.POINTER(ctypes.c_ushort)))
        text = buf.raw[: max(got - 1, 0) * 2].decode("utf-16-le", errors="replace")
        if "s/" not in text.casefold() or len(text) != n:  # a character outside the BMP would shift the indices
            return []
        out = []
        for c in conformed_in(text):
            mark = [_char_box(textpage, i, raw) for i in range(c.mark, c.mark + c.mark_len)]
            angle = raw.FPDFText_GetCharAngle(textpage, c.mark)
            level = angle < 0 or abs(math.sin(angle)) < 0.5  # text along the page's width (or turned with it)
            words, spelt, at = [], [], c.name
            for word in text[c.name:c.name_end].split(" "):
                chars = [(at + k, _char_box(textpage, at + k, raw)) for k in range(len(word))]
                drawn = [(i, b) for i, b in chars if b is not None]
                if drawn:
                    words.append((at + len(word), [b for _, b in drawn], _char_origin(textpage, drawn[0][0], raw)))
                    spelt.append(word)
                at += len(word) + 1
            found = _signature_box(mark, _char_origin(textpage, c.mark, raw), words, c.below, level)
            if found is None:
                continue
            box, kept = found
            typed = reading_order_name([(w, _union(chars)) for w, (end, chars, _) in zip(spelt, words, strict=True)
                                        if end <= kept], level)
            if len(typed.split()) > MAX_NAME_WORDS:
                continue  # a heading or a sentence in capitals
            name_box = _union([b for end, chars, _ in words if end <= kept for b in chars])
            out.append((box, all(_shown(textpage, i, raw) for i in range(c.mark, c.mark + c.mark_len)), typed,
                        name_box))
        return out
    finally:
        raw.FPDFText_ClosePage(textpage)


def reading_order_name(words: list[tuple[str, Box]], level: bool = True) -> str:
    """A name from its words and their boxes (page space, y up): in the text's order, or, for a name in a
    right-to-left script (Arabic, Hebrew), from the rightmost word (or the topmost, on a turned line), as it is read:
    PDFium gives such words in the order they lie on the page, left to right."""
    first = next((ch for w, _ in words for ch in w if ch.isalpha()), "")
    if first and unicodedata.bidirectional(first) in ("R", "AL"):
        words = sorted(words, key=lambda wb: -(wb[1][2] if level else wb[1][3]))
    return " ".join(w for w, _ in words)


def _signature_box(mark: list[Box | None], origin: tuple[float, float] | None,
                   words: list[tuple[int, list[Box], tuple[float, float] | None]], below: bool, level: bool
                   ) -> tuple[Box, int] | None:
    """The box around the mark (its characters' boxes, ``mark``, and the first one's baseline ``origin``) and the
    words of the name that run on from it along its line (or, ``below``, along the next line), and where the last of
    them ends in the text; None without two letters of a name. ``words``: each word's end in the text, its
    characters' boxes and its first character's origin; ``level``: the text runs along the page's width.

    A word runs on when its box lies at most 1.5 text heights from what came before along the line and its baseline
    within half a height across (a table's next cell, a line elsewhere on the page, do not). Words, not characters,
    are measured: a right-to-left name's first letter lies at its far end, and a script font's letters dip."""
    if any(b is None for b in mark) or origin is None:
        return None
    boxes: list[Box] = [b for b in mark if b is not None]
    size = max((b[3] - b[1]) if level else (b[2] - b[0]) for b in boxes)  # the text's height
    lo, hi = (0, 2) if level else (1, 3)
    base = origin[1] if level else origin[0]
    kept, letters = 0, 0
    for k, (end, chars, start) in enumerate(words):
        if start is None:
            break
        u, w = _union(boxes), _union(chars)
        gap = max(w[lo] - u[hi], u[lo] - w[hi], 0.0)
        line = start[1] if level else start[0]
        if k == 0 and below:
            if not size * 0.5 < abs(line - base) <= 2.5 * size:
                return None  # the "next line" of the text lies elsewhere on the page
            base = line
        elif gap > 1.5 * size or abs(line - base) > 0.5 * size:
            break  # the next cell of a table, or another line
        boxes += chars
        kept, letters = end, letters + len(chars)
    return (_union(boxes), kept) if letters >= 2 else None


def _union(boxes: list[Box]) -> Box:
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def _char_box(textpage: Any, i: int, raw: Any) -> Box | None:
    """Character ``i``'s box in page space, or None when it has none (a space PDFium generated)."""
    left, right, bottom, top = (ctypes.c_double() for _ in range(4))
    if not raw.FPDFText_GetCharBox(textpage, i, *(ctypes.byref(v) for v in (left, right, bottom, top))):
        return None
    if right.value <= left.value or top.value <= bottom.value:
        return None
    return left.value, bottom.value, right.value, top.value


def _char_origin(textpage: Any, i: int, raw: Any) -> tuple[float, float] | None:
    """Character ``i``'s origin on its baseline in page space, or None."""
    x, y = ctypes.c_double(), ctypes.c_double()
    return (x.value, y.value) if raw.FPDFText_GetCharOrigin(textpage, i, ctypes.byref(x), ctypes.byref(y)) else None


def _shown(textpage: Any, i: int, raw: Any) -> bool:
    """Whether character ``i`` is drawn in ink: not invisible (a scanner's OCR layer), clipping or white."""
    obj = raw.FPDFText_GetTextObject(textpage, i)
    return not obj or _kind(obj, raw.FPDF_PAGEOBJ_TEXT, raw) is not None


def shows_ink(page: np.ndarray, box: Box, share: float = 0.02) -> bool:
    """Whether at least ``share`` of ``box`` (pixels of the rendered ``page``) is dark ink: text that shows."""
    ink = _ink_mask(page, box)
    return bool(ink.size) and float(ink.mean()) >= share


def _areas(b: np.ndarray) -> np.ndarray:
    return np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)


def _overlaps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``[i, j]``: the share of box ``a[i]``'s area that box ``b[j]`` covers (boxes ``(N, 4)``: x1, y1, x2, y2)."""
    w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    return w * h / np.maximum(_areas(a), 1e-9)[:, None]


def _kind(obj: Any, t: int, raw: Any) -> str | None:
    """What a page object (a raw handle of type ``t``, not a form) draws, or None when it draws no ink."""
    if t == raw.FPDF_PAGEOBJ_IMAGE:
        return "image"
    if t == raw.FPDF_PAGEOBJ_TEXT:
        mode = raw.FPDFTextObj_GetTextRenderMode(obj)
        if mode in (raw.FPDF_TEXTRENDERMODE_INVISIBLE, raw.FPDF_TEXTRENDERMODE_CLIP):
            return None  # an OCR layer over a scan is invisible text
        stroked = mode in (raw.FPDF_TEXTRENDERMODE_STROKE, raw.FPDF_TEXTRENDERMODE_STROKE_CLIP)
        return "text" if _inky(obj, raw, stroke=stroked) else None
    if t == raw.FPDF_PAGEOBJ_PATH:
        fill, stroke = ctypes.c_int(), ctypes.c_int()
        if not raw.FPDFPath_GetDrawMode(obj, ctypes.byref(fill), ctypes.byref(stroke)):
            return None
        inky = (fill.value and _inky(obj, raw, stroke=False)) or (stroke.value and _inky(obj, raw, stroke=True))
        return "vector" if inky else None
    return None


def _inky(handle: Any, raw: Any, stroke: bool) -> bool:
    r, g, b, a = (ctypes.c_uint() for _ in range(4))
    get = raw.FPDFPageObj_GetStrokeColor if stroke else raw.FPDFPageObj_GetFillColor
    if not get(handle, ctypes.byref(r), ctypes.byref(g), ctypes.byref(b), ctypes.byref(a)):
        return True  # a colour PDFium cannot say (a pattern, a colour space it does not convert): count it
    return a.value > 0 and (r.value + g.value + b.value) / 3 < _INK


_ANNOT_KINDS = {"FPDF_ANNOT_INK": "vector", "FPDF_ANNOT_FREETEXT": "text", "FPDF_ANNOT_STAMP": "image",
                "FPDF_ANNOT_TEXT": "image"}  # a note larger than an icon (rendering drops the rest): a picture


def _annotations(page: Any, form: Any, raw: Any, to_pixels: Any) -> list[tuple[str, Box]]:
    """Ink, free-text, stamp and (larger than an icon) note annotations, and signature fields, shown on the page
    (drawn above its content)."""
    kinds = {getattr(raw, name): kind for name, kind in _ANNOT_KINDS.items()}
    out: list[tuple[str, Box]] = []
    for annot, sub, rect in _shown_annotations(page, raw):
        kind = kinds.get(sub)
        if kind is None and sub == raw.FPDF_ANNOT_WIDGET and form is not None and \
                raw.FPDFAnnot_GetFormFieldType(form.raw, annot) == raw.FPDF_FORMFIELD_SIGNATURE:
            kind = "annotation"
        if kind is None or rect is None:
            continue
        box = to_pixels(*rect)
        if box is not None:
            out.append((kind, box))
    return out


def _shown_annotations(page: Any, raw: Any) -> Iterator[tuple[Any, int, Box | None]]:
    """Each annotation shown on the page (not hidden, no-view or invisible): its handle, subtype and rectangle
    ``(left, bottom, right, top)`` in page space (None when it has none); the handle is closed once the next one is
    asked for."""
    hidden = raw.FPDF_ANNOT_FLAG_HIDDEN | raw.FPDF_ANNOT_FLAG_NOVIEW | raw.FPDF_ANNOT_FLAG_INVISIBLE
    for i in range(max(raw.FPDFPage_GetAnnotCount(page.raw), 0)):
        annot = raw.FPDFPage_GetAnnot(page.raw, i)
        if not annot:
            continue
        try:
            if raw.FPDFAnnot_GetFlags(annot) & hidden:
                continue
            r = raw.FS_RECTF()
            rect = ((r.left, min(r.bottom, r.top), r.right, max(r.bottom, r.top))
                    if raw.FPDFAnnot_GetRect(annot, ctypes.byref(r)) else None)
            yield annot, raw.FPDFAnnot_GetSubtype(annot), rect
        finally:
            raw.FPDFPage_CloseAnnot(annot)
