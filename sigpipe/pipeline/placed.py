"""Which signatures on a PDF page were placed there digitally rather than scanned from paper.

An executed contract from an e-signature platform is a born-digital PDF: the "signature" is the signer's name typed
in a script font, strokes drawn with a mouse, or a picture placed on the page. Judged as handwriting, a typed name
came out ``forged`` with a score near 0 (a legally valid execution reported as a forged contract) or, in a
handwriting-like font, ``genuine``. Its shape proves nothing: the platform's audit trail or the certificate does.

The PDF says what drew the ink under a box. A scanned page is raster images covering most of the page; anything
drawn above them (visible text, vector paths, a smaller image, an ink or stamp annotation, a signature field) was
placed on the page afterwards. On a page that holds no scan, everything was placed. Pixels alone cannot tell: a
typed name printed and scanned, or a PDF of page images, stays a scan here (``None``).
"""
from __future__ import annotations

import ctypes
import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

# what drew a placed mark: typed glyphs, vector strokes, an embedded picture that is not the page's scan, or an
# annotation / signature field drawn over the page
PLACED_KINDS = ("text", "vector", "image", "annotation")
PLACED_WORDS = {"text": "typed text", "vector": "vector strokes drawn on the PDF",
                "image": "a picture placed on a page that is not a scan",
                "annotation": "an annotation or signature field"}
SCAN_COVER = 0.5  # raster images covering this share of the page together are its scan
MIN_COVER = 0.25  # placed marks must be this much one with a box (overlap over the larger area) to have placed it
_INK = 200  # a colour whose mean channel is at or above this is paper, not ink (white boxes, light cell shading)

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class PlacedMarks:
    """What a PDF page holds besides a scan of paper.

    Attributes:
        scanned: the page holds a scan (raster images covering at least :data:`SCAN_COVER` of it).
        marks: ``(kind, box)`` of each visible thing placed on the page (above its scan, if any), ``box`` in pixels
            of the rendered page; ``kind`` one of :data:`PLACED_KINDS`.
    """

    scanned: bool
    marks: tuple[tuple[str, Box], ...]

    def origin(self, box: Box) -> str | None:
        """How the ink in ``box`` (pixels of the rendered page) came onto the page: the kind of placed marks that
        coincide with it most (their overlap with it over the larger of the two areas, summed per kind: at least
        :data:`MIN_COVER`), or None when it is part of the page's scan, or of something much larger than it (a page
        image placed on a digital page, an exhibit: judged as scanned ink)."""
        area = _area(box)
        if area <= 0:
            return None
        cover: dict[str, float] = {}
        for kind, b in self.marks:  # how far each mark and the box are one: a mark much larger than the box (a
            # page frame, a table's grid, an e-signature's frame around a picture) or much smaller (a word beside
            # it) counts little
            cover[kind] = cover.get(kind, 0.0) + _overlap(b, box) / max(_area(b), area)
        if not cover:
            return None
        kind, share = max(cover.items(), key=lambda kv: (kv[1], -PLACED_KINDS.index(kv[0])))
        return kind if share >= MIN_COVER else None


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
    a, c = (ex[0] - o[0]) / 1e4, (ey[0] - o[0]) / 1e4
    b, d = (ex[1] - o[1]) / 1e4, (ey[1] - o[1]) / 1e4

    def to_pixels(left: float, bottom: float, right: float, top: float) -> Box:
        xs = [o[0] + a * x + c * y for x, y in ((left, bottom), (right, top), (left, top), (right, bottom))]
        ys = [o[1] + b * x + d * y for x, y in ((left, bottom), (right, top), (left, top), (right, bottom))]
        return (max(min(xs), 0.0), max(min(ys), 0.0), min(max(xs), float(w)), min(max(ys), float(h)))

    page_area = float(w * h)
    drawn: list[tuple[str, Box]] = []  # in drawing order
    left, bottom, right, top = (ctypes.c_float() for _ in range(4))
    bounds = [ctypes.byref(v) for v in (left, bottom, right, top)]
    for i in range(max(raw.FPDFPage_CountObjects(page.raw), 0)):
        obj = raw.FPDFPage_GetObject(page.raw, i)
        kind = _kind(obj, raw) if obj else None
        if kind is None or not raw.FPDFPageObj_GetBounds(obj, *bounds):
            continue
        box = to_pixels(left.value, bottom.value, right.value, top.value)
        if _area(box) > 0:
            drawn.append((kind, box))
    # the scan: images of at least a twentieth of the page (a page scanned in strips comes as several), together
    # covering most of it; what was drawn before a piece of it and lies under it is hidden (an OCR layer "beneath")
    pieces = [i for i, (k, b) in enumerate(drawn) if k == "image" and _area(b) >= 0.05 * page_area]
    scanned = sum(_area(drawn[i][1]) for i in pieces) >= SCAN_COVER * page_area
    marks = drawn
    if scanned:
        marks = [(k, b) for i, (k, b) in enumerate(drawn) if i not in pieces and not any(
            j > i and _overlap(b, drawn[j][1]) >= 0.5 * _area(b) for j in pieces)]
    return PlacedMarks(scanned, tuple(marks + _annotations(page, form, raw, to_pixels)))


def _kind(obj: Any, raw: Any, depth: int = 0) -> str | None:
    """What a page object (a raw handle) draws, or None when it draws no ink."""
    t = raw.FPDFPageObj_GetType(obj)
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
    if t == raw.FPDF_PAGEOBJ_FORM and depth < 4:  # a Form XObject: what most of it draws (a scan wrapped in one
        kinds = []                                 # is an image)
        for i in range(max(raw.FPDFFormObj_CountObjects(obj), 0)):
            child = raw.FPDFFormObj_GetObject(obj, i)
            kind = _kind(child, raw, depth + 1) if child else None
            if kind:
                kinds.append(kind)
        return max(sorted(set(kinds)), key=kinds.count) if kinds else None
    return None


def _inky(handle: Any, raw: Any, stroke: bool) -> bool:
    r, g, b, a = (ctypes.c_uint() for _ in range(4))
    get = raw.FPDFPageObj_GetStrokeColor if stroke else raw.FPDFPageObj_GetFillColor
    if not get(handle, ctypes.byref(r), ctypes.byref(g), ctypes.byref(b), ctypes.byref(a)):
        return True  # a colour PDFium cannot say (a pattern, a colour space it does not convert): count it
    return a.value > 0 and (r.value + g.value + b.value) / 3 < _INK


_ANNOT_KINDS = {"FPDF_ANNOT_INK": "vector", "FPDF_ANNOT_FREETEXT": "text", "FPDF_ANNOT_STAMP": "image"}


def _annotations(page: Any, form: Any, raw: Any, to_pixels: Any) -> list[tuple[str, Box]]:
    """Ink, free-text and stamp annotations, and signature fields, shown on the page (drawn above its content)."""
    kinds = {getattr(raw, name): kind for name, kind in _ANNOT_KINDS.items()}
    hidden = raw.FPDF_ANNOT_FLAG_HIDDEN | raw.FPDF_ANNOT_FLAG_NOVIEW | raw.FPDF_ANNOT_FLAG_INVISIBLE
    out: list[tuple[str, Box]] = []
    for i in range(max(raw.FPDFPage_GetAnnotCount(page.raw), 0)):
        annot = raw.FPDFPage_GetAnnot(page.raw, i)
        if not annot:
            continue
        try:
            if raw.FPDFAnnot_GetFlags(annot) & hidden:
                continue
            sub = raw.FPDFAnnot_GetSubtype(annot)
            kind = kinds.get(sub)
            if kind is None and sub == raw.FPDF_ANNOT_WIDGET and form is not None and \
                    raw.FPDFAnnot_GetFormFieldType(form.raw, annot) == raw.FPDF_FORMFIELD_SIGNATURE:
                kind = "annotation"
            if kind is None:
                continue
            rect = raw.FS_RECTF()
            if raw.FPDFAnnot_GetRect(annot, ctypes.byref(rect)):
                box = to_pixels(rect.left, min(rect.bottom, rect.top), rect.right, max(rect.bottom, rect.top))
                if _area(box) > 0:
                    out.append((kind, box))
        finally:
            raw.FPDFPage_CloseAnnot(annot)
    return out
