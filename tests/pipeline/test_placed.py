"""Signatures placed on a PDF page digitally (typed, drawn, pasted) are told from ink scanned from paper.

A legal-ops helper ran executed contracts from e-signature platforms: a name typed in a script font came out
``forged`` with a score near 0, or ``genuine`` in a handwriting-like font. The PDF itself says what drew the ink.
"""
from __future__ import annotations

import csv
import ctypes
import json
from pathlib import Path

import cv2
import jsonschema
import numpy as np
import pypdfium2 as pdfium
import pypdfium2.raw as raw
import pytest
from PIL import Image
from pipeline_doubles import SIG_A, SIG_B, DoubleModels, page_with, save_image, save_pdf, scribble

from sigpipe.pipeline.ingest import IngestConfig, iter_pages
from sigpipe.pipeline.placed import PlacedMarks, _area, _overlap
from sigpipe.pipeline.report import document_verdict, load_schema, read_report
from sigpipe.pipeline.review import caption_lines, specimen_reader, write_review
from sigpipe.pipeline.runner import RunConfig, run_batch

W_PT, H_PT = 576.0, 432.0  # an 8 x 6 inch page: page_with's 800 x 600 px at 100 dpi


def _wide(text: str) -> ctypes.Array[ctypes.c_char]:
    return ctypes.create_string_buffer((text + "\x00").encode("utf-16-le"))


def add_text(pdf: pdfium.PdfDocument, page: pdfium.PdfPage, text: str, x: float, y: float, size: float = 30,
             mode: int | None = None) -> None:
    obj = raw.FPDFPageObj_NewTextObj(pdf.raw, b"Times-Italic", ctypes.c_float(size))
    buf = _wide(text)
    raw.FPDFText_SetText(obj, ctypes.cast(buf, ctypes.POINTER(ctypes.c_ushort)))
    if mode is not None:
        raw.FPDFTextObj_SetTextRenderMode(obj, mode)
    raw.FPDFPageObj_SetFillColor(obj, 0, 0, 0, 255)
    raw.FPDFPageObj_Transform(obj, 1, 0, 0, 1, x, y)
    raw.FPDFPage_InsertObject(page.raw, obj)


def add_path(page: pdfium.PdfPage, points: list[tuple[float, float]], width: float = 2.0, grey: int = 0,
             fill: int = 0) -> None:
    obj = raw.FPDFPageObj_CreateNewPath(*points[0])
    for x, y in points[1:]:
        raw.FPDFPath_LineTo(obj, x, y)
    raw.FPDFPageObj_SetStrokeColor(obj, grey, grey, grey, 255)
    raw.FPDFPageObj_SetFillColor(obj, grey, grey, grey, 255)
    raw.FPDFPageObj_SetStrokeWidth(obj, ctypes.c_float(width))
    raw.FPDFPath_SetDrawMode(obj, fill, 0 if fill else 1)
    raw.FPDFPage_InsertObject(page.raw, obj)


def add_image(pdf: pdfium.PdfDocument, page: pdfium.PdfPage, arr: np.ndarray, x: float, y: float, w: float,
              h: float) -> None:
    img = pdfium.PdfImage.new(pdf)
    img.set_bitmap(pdfium.PdfBitmap.from_pil(Image.fromarray(arr)))
    img.set_matrix(pdfium.PdfMatrix().scale(w, h).translate(x, y))
    page.insert_obj(img)


def scribble_path(x: float, y: float, seed: int) -> list[tuple[float, float]]:
    """A drawn e-signature: one polyline, as a mouse or a touchpad leaves it (PDF points, y up)."""
    rng = np.random.default_rng(seed)
    return [(x + 12 * i, y + float(rng.normal(0, 8))) for i in range(12)]


def build(path: Path, fill: object) -> Path:
    pdf = pdfium.PdfDocument.new()
    page = pdf.new_page(W_PT, H_PT)
    fill(pdf, page)  # type: ignore[operator]
    page.gen_content()
    pdf.save(str(path))
    return path


def page_of(path: Path, dpi: int = 100) -> tuple[np.ndarray, PlacedMarks | None]:
    (page,) = list(iter_pages(path, IngestConfig(dpi=dpi)))
    return cv2.cvtColor(page.image, cv2.COLOR_BGR2GRAY), page.placed


def ink_box(gray: np.ndarray, box: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
    """The bounding box of the dark pixels inside ``box`` (grown by 5 px)."""
    x1, y1, x2, y2 = (int(v) for v in box)
    ys, xs = np.nonzero(gray[max(y1 - 5, 0):y2 + 5, max(x1 - 5, 0):x2 + 5] < 128)
    return (int(xs.min()) + max(x1 - 5, 0), int(ys.min()) + max(y1 - 5, 0),
            int(xs.max()) + max(x1 - 5, 0), int(ys.max()) + max(y1 - 5, 0))


def test_a_scanned_page_places_nothing(tmp_path: Path):
    path = save_pdf(tmp_path / "scan.pdf", [page_with([(scribble(SIG_A), 300, 400)])])
    _, placed = page_of(path)
    assert placed is not None and placed.scanned and placed.marks == ()
    assert placed.origin((300.0, 400.0, 540.0, 490.0)) is None


def test_what_is_drawn_over_a_scan_is_placed_and_what_lies_beneath_it_is_not(tmp_path: Path):
    scan = page_with([(scribble(SIG_A), 100, 100)])

    def fill(pdf: pdfium.PdfDocument, page: pdfium.PdfPage) -> None:
        add_text(pdf, page, "beneath the scan", 72, 72)  # an OCR layer drawn first: the scan hides it
        add_image(pdf, page, scan, 0, 0, W_PT, H_PT)
        add_text(pdf, page, "invisible OCR", 72, 330, mode=raw.FPDF_TEXTRENDERMODE_INVISIBLE)  # over the scribble
        add_image(pdf, page, scribble(SIG_B), 300, 150, 172.8, 64.8)  # an e-signature pasted over the scan
        add_text(pdf, page, "Jane Q. Doe", 300, 40)  # typed over it

    gray, placed = page_of(build(tmp_path / "overlaid.pdf", fill))
    assert placed is not None and placed.scanned
    assert sorted(k for k, _ in placed.marks) == ["image", "text"]
    image_box = next(b for k, b in placed.marks if k == "image")
    text_box = next(b for k, b in placed.marks if k == "text")
    px = 100 / 72  # the marks sit where they are drawn: the picture's frame, the typed glyphs' ink
    np.testing.assert_allclose(image_box, (300 * px, (H_PT - 214.8) * px, 472.8 * px, (H_PT - 150) * px), atol=1.5)
    np.testing.assert_allclose(text_box, ink_box(gray, text_box), atol=6)
    assert placed.origin((100.0, 100.0, 340.0, 190.0)) is None  # the scanned scribble, under the invisible text
    assert placed.origin(image_box) == "image" and placed.origin(text_box) == "text"
    x1, y1, x2, y2 = image_box  # a box mostly elsewhere is not the pasted picture's
    assert placed.origin((x1 - 3 * (x2 - x1), y1, x1 + 0.1 * (x2 - x1), y2)) is None


def test_on_a_born_digital_page_everything_is_placed(tmp_path: Path):
    def fill(pdf: pdfium.PdfDocument, page: pdfium.PdfPage) -> None:
        add_path(page, [(10, 10), (W_PT - 10, 10), (W_PT - 10, H_PT - 10), (10, H_PT - 10), (10, 10)])  # a frame
        add_path(page, [(0, 0), (W_PT, 0), (W_PT, H_PT), (0, H_PT)], fill=1, grey=255)  # white background
        add_text(pdf, page, "Jane Q. Doe", 60, 300, size=36)  # a typed e-signature
        add_path(page, scribble_path(330, 300, 3))  # a drawn one
        add_path(page, [(60, 280), (250, 280)], width=0.8)  # the signature line under the typed name

    gray, placed = page_of(build(tmp_path / "born.pdf", fill))
    assert placed is not None and not placed.scanned
    typed = ink_box(gray, (70, 120, 330, 200))  # the line under it is at y 211
    drawn = ink_box(gray, (440, 140, 660, 230))
    assert placed.origin(typed) == "text"  # neither the page frame nor the line under it takes it
    assert placed.origin(drawn) == "vector"
    assert placed.origin((700.0, 500.0, 780.0, 560.0)) is None  # nothing but the frame and the white background


def test_a_page_scanned_in_strips_is_a_scan(tmp_path: Path):
    scan = page_with([(scribble(SIG_A), 100, 300)])

    def fill(pdf: pdfium.PdfDocument, page: pdfium.PdfPage) -> None:
        for i in range(8):  # some scanners write a page as horizontal strips
            strip = np.ascontiguousarray(scan[i * 75:(i + 1) * 75])
            add_image(pdf, page, strip, 0, H_PT - (i + 1) * 54, W_PT, 54)

    _, placed = page_of(build(tmp_path / "strips.pdf", fill))
    assert placed is not None and placed.scanned and placed.marks == ()


def test_a_turned_page_maps_its_marks_to_the_pixels_drawn(tmp_path: Path):
    def fill(pdf: pdfium.PdfDocument, page: pdfium.PdfPage) -> None:
        add_text(pdf, page, "Jane Q. Doe", 60, 300, size=36)
        page.set_rotation(90)

    gray, placed = page_of(build(tmp_path / "turned.pdf", fill))
    assert gray.shape == (800, 600)  # rendered turned: portrait
    assert placed is not None and [k for k, _ in placed.marks] == ["text"]
    box = placed.marks[0][1]
    np.testing.assert_allclose(box, ink_box(gray, box), atol=6)


def wrapped(path: Path, out: Path) -> Path:
    """Every page of ``path`` drawn as one Form XObject on a new page, as merge and Bates-stamping tools write them."""
    src, dst = pdfium.PdfDocument(str(path)), pdfium.PdfDocument.new()
    for i in range(len(src)):
        w, h = src[i].get_size()
        page = dst.new_page(w, h)
        xobject = raw.FPDF_NewXObjectFromPage(dst.raw, src.raw, i)
        raw.FPDFPage_InsertObject(page.raw, raw.FPDF_NewFormObjectFromXObject(xobject))
        raw.FPDF_CloseXObject(xobject)
        page.gen_content()
    dst.save(str(out))
    return out


def test_what_loan_packages_are_made_of(tmp_path: Path):
    """A loan-package helper's pages: 11 of 31 signatures were told wrong. Pages wrapped in a Form XObject hid their
    e-signatures; strokes drawn one path each did not add up; a scan written as many small tiles was taken for
    pictures; a typed name in a table cell was called vector strokes; a notary seal over a wet signature made it
    electronic."""
    def typed_in_a_cell(pdf: pdfium.PdfDocument, page: pdfium.PdfPage) -> None:
        add_path(page, [(50, 280), (300, 280), (300, 350), (50, 350), (50, 280)], width=0.8)  # the cell
        add_text(pdf, page, "Jane Q. Doe", 60, 300, size=36)
        for k, stroke in enumerate(np.array_split(np.array(scribble_path(330, 300, 3)), 6)):  # a path per stroke
            add_path(page, [tuple(p) for p in stroke] if k == 0 else
                     [tuple(np.array(scribble_path(330, 300, 3))[max(k * 2 - 1, 0)])] + [tuple(p) for p in stroke])

    gray, placed = page_of(build(tmp_path / "cell.pdf", typed_in_a_cell))
    typed = ink_box(gray, (70, 120, 330, 200))
    drawn = ink_box(gray, (440, 140, 660, 230))
    assert placed is not None and (placed.origin(typed, gray), placed.origin(drawn, gray)) == ("text", "vector")
    gray, inside = page_of(wrapped(tmp_path / "cell.pdf", tmp_path / "wrapped.pdf"))
    assert inside is not None and (inside.origin(typed, gray), inside.origin(drawn, gray)) == ("text", "vector")

    scan = page_with([(scribble(SIG_A), 100, 100)])

    def tiles(pdf: pdfium.PdfDocument, page: pdfium.PdfPage) -> None:
        for i in range(0, 600, 100):  # 48 tiles of 100 px, each 2% of the page
            for j in range(0, 800, 100):
                tile = np.ascontiguousarray(scan[i:i + 100, j:j + 100])
                add_image(pdf, page, tile, j * 0.72, H_PT - (i + 100) * 0.72, 72, 72)
        seal = np.full((60, 60), 255, np.uint8)
        cv2.circle(seal, (30, 30), 27, 90, 3)
        add_image(pdf, page, seal, 190, 275, 72, 72)  # a notary seal over the right end of the signature

    gray, tiled = page_of(build(tmp_path / "tiles.pdf", tiles))
    assert tiled is not None and tiled.scanned and [k for k, _ in tiled.marks] == ["image"]  # only the seal
    signature = ink_box(gray, (100, 100, 340, 190))
    seal = tiled.marks[0][1]
    assert _overlap(seal, signature) > 0.3 * _area(signature)  # it does lie over the signature
    assert tiled.origin(signature, gray) is None
    _, scanned_wrapped = page_of(wrapped(save_pdf(tmp_path / "scan.pdf", [scan]), tmp_path / "scan_wrapped.pdf"))
    assert scanned_wrapped is not None and scanned_wrapped.scanned and scanned_wrapped.marks == ()


def test_an_ink_annotation_is_placed(tmp_path: Path):
    path = save_pdf(tmp_path / "scan.pdf", [page_with([])])
    pdf = pdfium.PdfDocument(str(path))
    page = pdf[0]
    annot = raw.FPDFPage_CreateAnnot(page.raw, raw.FPDF_ANNOT_INK)
    rect = raw.FS_RECTF(100, 300, 300, 200)  # left, top, right, bottom (PDF points)
    raw.FPDFAnnot_SetRect(annot, ctypes.byref(rect))
    raw.FPDFPage_CloseAnnot(annot)
    pdf.save(str(tmp_path / "annotated.pdf"))
    pdf.close()
    _, placed = page_of(tmp_path / "annotated.pdf")
    assert placed is not None and placed.scanned
    assert [k for k, _ in placed.marks] == ["vector"]
    np.testing.assert_allclose(placed.marks[0][1], (139, 183, 417, 322), atol=2)  # 100 dpi, y down


def test_image_files_and_poppler_do_not_know(tmp_path: Path):
    path = save_image(tmp_path / "page.png", page_with([(scribble(SIG_A), 300, 400)]))
    assert next(iter_pages(path, IngestConfig())).placed is None


@pytest.fixture
def contracts(tmp_path: Path) -> dict[str, Path]:
    """A contract signed on paper and scanned, and one executed on an e-signature platform (typed, drawn and a
    pasted picture), both claimed by alice."""
    scans, refs = tmp_path / "scans", tmp_path / "refs"
    scans.mkdir()
    save_pdf(scans / "wet.pdf", [page_with([(scribble(SIG_A), 100, 100)])])

    def fill(pdf: pdfium.PdfDocument, page: pdfium.PdfPage) -> None:
        add_text(pdf, page, "Alice", 60, 300, size=40)
        add_path(page, scribble_path(330, 300, 3))
        add_image(pdf, page, scribble(SIG_A), 60, 60, 172.8, 64.8)  # her own signature, pasted

    build(scans / "esigned.pdf", fill)
    save_image(refs / "alice" / "a1.png", scribble(SIG_A))
    save_image(refs / "bob" / "b1.png", scribble(SIG_B))
    claims = tmp_path / "claims.csv"
    claims.write_text("document,identity\nwet.pdf,alice\nesigned.pdf,alice\n")
    return {"scans": scans, "refs": refs, "claims": claims, "out": tmp_path / "out", "cache": tmp_path / "gcache"}


def test_an_e_signed_contract_is_electronic_not_forged(contracts: dict[str, Path], verifier_manifest: Path):
    run_batch(RunConfig(scans=contracts["scans"], refs=contracts["refs"], out=contracts["out"],
                        claims=contracts["claims"], cache=contracts["cache"], progress=False),
              DoubleModels(verifier_manifest))
    wet = read_report(contracts["out"] / "wet.pdf.json")
    assert [(s.verdict, s.placed) for s in wet.signatures] == [("genuine", None)] and wet.verdict == "genuine"
    esigned = read_report(contracts["out"] / "esigned.pdf.json")
    assert sorted((s.verdict, s.placed) for s in esigned.signatures) == [
        ("electronic", "image"), ("electronic", "text"), ("electronic", "vector")]
    assert esigned.verdict == "needs_review"
    pasted = next(s for s in esigned.signatures if s.placed == "image")
    assert pasted.identity == "alice" and pasted.distance is not None  # compared all the same: her shape
    for name in ("wet.pdf.json", "esigned.pdf.json"):
        jsonschema.validate(json.loads((contracts["out"] / name).read_text()), load_schema())
    with (contracts["out"] / "summary.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted((r["document"], r["verdict"], r["placed"]) for r in rows) == [
        ("esigned.pdf", "electronic", "image"), ("esigned.pdf", "electronic", "text"),
        ("esigned.pdf", "electronic", "vector"), ("wet.pdf", "genuine", "")]
    summary = json.loads((contracts["out"] / "summary.json").read_text())
    assert summary["signature_verdicts"]["electronic"] == 3
    review = write_review(contracts["out"], contracts["scans"], contracts["refs"], contracts["out"] / "review",
                          specimen_reader(None), everything=True)
    assert {s.signature.verdict for s in review.sheets} == {"genuine", "electronic"}
    assert [s.signature.verdict for s in review.sheets][-1] == "genuine"  # the e-signatures before the plain one
    typed = next(s for s in review.sheets if s.signature.placed == "text")
    line = caption_lines(typed.document, typed.number, typed.signature, "needs_review", "alice")[1]
    assert line == "electronic  identity: alice"
    lines = caption_lines(typed.document, typed.number, typed.signature, "needs_review", "alice")
    assert lines[2].startswith("shape compared for information only: distance")
    assert lines[3].startswith("typed text (placed digitally, not scanned ink): not judged") and "audit" in lines[3]


def test_an_electronic_signature_holds_its_document_for_review():
    from sigpipe.pipeline.report import SignatureResult

    base = {"page": 1, "bbox": (1.0, 1.0, 9.0, 9.0), "page_size": (10, 10), "dpi": 100,
            "detection_confidence": 0.9, "identity": "alice", "distance": 0.1, "threshold": 0.6, "score": 0.95}
    electronic = SignatureResult(**base, verdict="electronic", placed="text")  # type: ignore[arg-type]
    assert document_verdict([electronic], claimed="alice") == "needs_review"
    with pytest.raises(ValueError, match="says how it was placed"):
        SignatureResult(**base, verdict="electronic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="says how it was placed"):
        SignatureResult(**base, verdict="genuine", placed="text")  # type: ignore[arg-type]
    assert SignatureResult.from_dict({**electronic.to_dict()}) == electronic
    # a wet-ink signature held with an e-signed document says what holds it (a loan package's sheets said "a
    # claimed person's signature missing, or another signature's doubt" while nothing was missing)
    from sigpipe.pipeline.report import DocumentInfo, DocumentReport
    from sigpipe.pipeline.review import held_for

    wet = SignatureResult(**base, verdict="genuine")  # type: ignore[arg-type]
    package = DocumentReport.success(DocumentInfo("loan.pdf", "0" * 64, 40), "alice", [wet, electronic], {})
    assert package.verdict == "needs_review"
    assert held_for(wet, package) == "held for review with its document: another signature is electronic"


def test_an_e_signature_in_a_pdf_reference_is_not_enrolled(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    """A typed adoption filed among a person's specimens made typed names pass as theirs: a PDF specimen whose
    signature was placed digitally gives no specimen, and says why."""
    from pipeline_doubles import InkBlobDetector

    from sigpipe.pipeline.flow import specimen_loader

    def fill(pdf: pdfium.PdfDocument, page: pdfium.PdfPage) -> None:
        add_image(pdf, page, scribble(SIG_A), 60, 60, 172.8, 64.8)

    digital = build(tmp_path / "adopted.pdf", fill)
    scanned = save_pdf(tmp_path / "scanned.pdf", [page_with([(scribble(SIG_A), 100, 100)])])
    load = specimen_loader(InkBlobDetector(), IngestConfig(dpi=100))
    assert len(load(scanned)) == 1
    with caplog.at_level("WARNING"):
        assert load(digital) == []
    assert "adopted.pdf: page 1: its signature is a picture pasted onto the page, placed digitally" in caplog.text


def test_pdfium_is_called_by_one_thread_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """PDFium is not thread-safe, not even across documents, and README lets a service's threads share a predictor:
    every PDFium call of the ingest holds one lock, never across a yield, and threads reading PDFs at once get what
    one thread alone gets."""
    import threading

    import sigpipe.pipeline.ingest as ingest

    def fill(pdf: pdfium.PdfDocument, page: pdfium.PdfPage) -> None:
        add_text(pdf, page, "Jane Q. Doe", 60, 300, size=36)
        add_path(page, scribble_path(330, 300, 3))

    paths = [build(tmp_path / "born.pdf", fill),
             save_pdf(tmp_path / "scan.pdf", [page_with([(scribble(SIG_A), 100, 100)]), page_with([])])]
    calls: list[bool] = []
    for name in ("render", "get_size", "close"):
        real = getattr(pdfium.PdfPage, name)

        def checked(self: object, *a: object, _real: object = real, **k: object) -> object:
            calls.append(ingest.PDFIUM_LOCK._is_owned())  # type: ignore[attr-defined]
            return _real(self, *a, **k)  # type: ignore[operator]

        monkeypatch.setattr(pdfium.PdfPage, name, checked)
    alone = {p: [(pg.image, pg.placed) for pg in iter_pages(p, IngestConfig(dpi=100))] for p in paths}
    assert calls and all(calls)
    suspended = iter_pages(paths[1], IngestConfig(dpi=100))
    next(suspended)  # between pages the lock is free: the consumer's detection runs while others render
    assert not ingest.PDFIUM_LOCK._is_owned()  # type: ignore[attr-defined]
    assert ingest.PDFIUM_LOCK.acquire(blocking=False)
    ingest.PDFIUM_LOCK.release()
    assert len(list(suspended)) == 1

    failures: list[str] = []

    def reader() -> None:
        for _ in range(8):
            for p in paths:
                for pg, (image, placed) in zip(iter_pages(p, IngestConfig(dpi=100)), alone[p], strict=True):
                    if not np.array_equal(pg.image, image) or pg.placed != placed:
                        failures.append(str(p))

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures


def add_line(pdf: pdfium.PdfDocument, page: pdfium.PdfPage, text: str, x: float, y: float, size: float = 14,
             mode: int | None = None, grey: int = 0) -> None:
    """A line of Helvetica (a contract's typed signature block)."""
    obj = raw.FPDFPageObj_NewTextObj(pdf.raw, b"Helvetica", ctypes.c_float(size))
    buf = _wide(text)
    raw.FPDFText_SetText(obj, ctypes.cast(buf, ctypes.POINTER(ctypes.c_ushort)))
    if mode is not None:
        raw.FPDFTextObj_SetTextRenderMode(obj, mode)
    raw.FPDFPageObj_SetFillColor(obj, grey, grey, grey, 255)
    raw.FPDFPageObj_Transform(obj, 1, 0, 0, 1, x, y)
    raw.FPDFPage_InsertObject(page.raw, obj)


def conformed_copy(path: Path, body: bool = True) -> Path:
    """A conformed copy's signature page: two parties' "/s/" signatures, and text that only looks like one."""
    def fill(pdf: pdfium.PdfDocument, page: pdfium.PdfPage) -> None:
        if body:
            add_line(pdf, page, "Executed, see https://x.com/s/abc and/or w/o delay.", 20, 400, 10)
            add_line(pdf, page, "The /s/ convention is explained in section 3.", 20, 385, 10)
            add_line(pdf, page, "/s/ Hidden Person", 300, 100, mode=raw.FPDF_TEXTRENDERMODE_INVISIBLE)  # OCR layer
            add_line(pdf, page, "/s/ White Person", 300, 60, grey=255)
            add_line(pdf, page, "By: /s/", 300, 30)  # a blank block
        add_line(pdf, page, "By: /s/ Jane A. van Doe", 20, 200)
        add_line(pdf, page, "/S/ JOHN SMITH", 320, 200)

    return build(path, fill)


def test_conformed_signatures_are_found_in_the_page_text(tmp_path: Path):
    """A conformed copy types "/s/ Jane Doe" where the original was signed; the detector, trained on handwriting,
    does not box it, and the page read as unsigned. The text layer says where it is; a mention of "/s/", a web
    address, invisible (OCR) or white text and an empty block are not conformed signatures."""
    gray, placed = page_of(conformed_copy(tmp_path / "conformed.pdf"))
    assert placed is not None and [name for _, name in sorted(placed.conformed)] == ["Jane A. van Doe", "JOHN SMITH"]
    jane, john = (box for box, _ in sorted(placed.conformed))
    baseline = (H_PT - 200) * 100 / 72  # pixels at 100 dpi, y down
    for box, x0 in ((jane, 20 + 14 * 2), (john, 320)):  # jane's starts after "By: "
        assert box[1] < baseline < box[3] + 2 and abs(box[0] - x0 * 100 / 72) < 12, box
        x1, y1, x2, y2 = ink_box(gray, box)
        assert x1 >= box[0] - 3 and x2 <= box[2] + 3  # the ink of "/s/ ..." and nothing of the line beside it
    line_end = ink_box(gray, (0.0, jane[1], 400.0, jane[3]))[2]
    assert abs(jane[2] - line_end) < 4  # to the end of "Jane A. van Doe": the initial and the particle kept
    # the page's placed text around it is conformed; a box about the name alone, too; other text is not
    assert placed.origin(jane, cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)) == "conformed"
    name_only = (jane[0] + (jane[2] - jane[0]) * 0.3, jane[1], jane[2], jane[3])
    assert placed.origin(name_only, cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)) == "conformed"
    mention = (20 * 100 / 72, (H_PT - 395) * 100 / 72, 300 * 100 / 72, (H_PT - 383) * 100 / 72)
    assert placed.origin(mention, cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)) == "text"


class NothingFound:
    ident = "nothing.test 000000000000"

    def detect_batch(self, pages: list[np.ndarray]) -> list[list[object]]:
        return [[] for _ in pages]


def test_a_conformed_copy_is_electronic_not_unsigned(tmp_path: Path, verifier_manifest: Path):
    from pipeline_doubles import InkBlobDetector

    from sigpipe.pipeline.flow import FlowConfig, SignaturePredictor
    from sigpipe.verifier.gallery import Gallery
    from sigpipe.verifier.verifier import Verifier

    verifier = Verifier.from_manifest(verifier_manifest)
    gallery = Gallery(verifier, {"alice": verifier.embed([scribble(SIG_A)])})
    doc = conformed_copy(tmp_path / "conformed.pdf", body=False)
    for detector in (NothingFound(), InkBlobDetector()):  # not boxed, and boxed with the line's "By:"
        p = SignaturePredictor(detector, verifier, gallery, FlowConfig(),  # type: ignore[arg-type]
                               IngestConfig(dpi=100))
        r = p(doc, claimed="alice")
        assert r.verdict == "needs_review", detector
        # compared with nobody, and named as typed: not as the claimed person, whatever name it bears (helper)
        assert [(s.verdict, s.placed, s.distance, s.identity, s.typed_name) for s in r.signatures] == [
            ("electronic", "conformed", None, None, "Jane A. van Doe"),
            ("electronic", "conformed", None, None, "JOHN SMITH")], detector
        assert [s.detection_confidence for s in r.signatures] == ([1.0, 1.0] if isinstance(detector, NothingFound)
                                                                  else [0.9, 0.9])
        jsonschema.validate(r.to_dict(), load_schema())
    from sigpipe.pipeline.report import summary_csv

    rows = list(csv.DictReader(summary_csv([r]).splitlines()))
    assert [(row["placed"], row["typed_name"], row["identity"]) for row in rows] == [
        ("conformed", "Jane A. van Doe", ""), ("conformed", "JOHN SMITH", "")]
    # a one-to-many match of a typed name would name whoever its letters resemble: nobody is named
    assert {s.identity for s in p(doc).signatures} == {None}
    lines = caption_lines("conformed.pdf", 1, r.signatures[0], "needs_review", "alice")
    assert lines[2] == "found in the page's text: /s/ Jane A. van Doe, compared with nobody"
    assert lines[3].startswith("a conformed signature (/s/ and the name, typed): a copy's record")
    # a scanned page signed in ink by one party, with the other's conformed signature typed over it: the ink is
    # judged
    def fill(pdf: pdfium.PdfDocument, page: pdfium.PdfPage) -> None:
        add_image(pdf, page, page_with([(scribble(SIG_A), 100, 100)]), 0, 0, W_PT, H_PT)  # the page's scan
        add_line(pdf, page, "/s/ Bob Roe", 320, 200)

    mixed = build(tmp_path / "mixed.pdf", fill)
    p = SignaturePredictor(InkBlobDetector(), verifier, gallery, FlowConfig(), IngestConfig(dpi=100))
    r = p(mixed, claimed="alice")
    assert [(s.verdict, s.placed) for s in r.signatures] == [("genuine", None), ("electronic", "conformed")]
    assert r.verdict == "needs_review"


@pytest.mark.parametrize("text,found", [
    ("By: /s/ Jane A. van Doe\r\nName: Jane", ["Jane A. van Doe"]),
    ("By:/s/ Jane Doe", ["Jane Doe"]),  # no space after the colon
    ("____/s/ John Roe____", ["John Roe"]),  # on the signature line itself
    ("/S/ JOHN Q. PUBLIC III", ["JOHN Q. PUBLIC III"]), ("/s/ A. Smith", ["A. Smith"]),
    ("/s/\r\nJohn Smith, Jr.\r\nTitle", ["John Smith"]),  # alone on the next line, with a suffix
    ("s/ Jane A. Doe\r\nCounsel", ["Jane A. Doe"]),  # a court's electronic filing
    ("/s/ \u5f20\u4f1f", ["\u5f20\u4f1f"]),  # scripts without capitals
    ("/s/ \u0645\u062d\u0645\u062f \u0639\u0644\u064a", ["\u0645\u062d\u0645\u062f \u0639\u0644\u064a"]),
    ("Date: May 5, 2025 By: /s/ Thomas Wright", ["Thomas Wright"]),
    # legends, mentions, initials, addresses and blanks are not signatures
    ("SIGNATURES PRECEDED BY /S/ WERE SIGNED ON THE ORIGINAL.", []),
    ("Signatures shown as \u201c/s/ Name\u201d are conformed", []), ("(see /s/ Signature Pages)", []),
    ("(/s/ Name)", []), ("/S/ Followed by a name", []), ("The /s/ convention", []),
    ("Initials: /s/ JD /s/ RS", []), ("https://x.com/s/abc and/or km/s/Mpc", []), ("items/ s/ x", []),
    ("By: /s/\r\nBy: /s/ Jane", ["Jane"]),  # the blank block's "next line" is another block
])
def test_which_text_is_a_conformed_signature(text: str, found: list[str]):
    from sigpipe.pipeline.placed import conformed_in

    assert [text[c.name:c.name_end] for c in conformed_in(text)] == found


def test_conformed_signatures_in_fields_redlines_and_ocr_layers(tmp_path: Path, verifier_manifest: Path):
    """A legal-ops helper's misses and false finds: "/s/" typed into a form field was missed; struck through in a
    redline, it counted; printed, scanned and read by OCR, the detector's box of it was judged as handwriting
    (forged)."""
    from pipeline_doubles import InkBlobDetector

    from sigpipe.pipeline.flow import FlowConfig, SignaturePredictor
    from sigpipe.verifier.gallery import Gallery
    from sigpipe.verifier.verifier import Verifier

    def redline(pdf: pdfium.PdfDocument, page: pdfium.PdfPage) -> None:
        add_line(pdf, page, "/s/ Jane Doe", 20, 200)  # struck through: taken out
        add_path(page, [(18.0, 204.0), (120.0, 204.0)], width=1.0)
        add_line(pdf, page, "/s/ John Roe", 320, 200)  # underlined: kept
        add_path(page, [(318.0, 197.0), (420.0, 197.0)], width=1.0)
        add_line(pdf, page, "/s/ Peggy Jaye", 20, 100)  # typed on the signature line, descenders below it: kept
        add_path(page, [(18.0, 100.0), (140.0, 100.0)], width=1.0)

    _, placed = page_of(build(tmp_path / "redline.pdf", redline))
    assert placed is not None and sorted(name for _, name in placed.conformed) == ["John Roe", "Peggy Jaye"]

    def field(pdf: pdfium.PdfDocument, page: pdfium.PdfPage) -> None:
        annot = raw.FPDFPage_CreateAnnot(page.raw, raw.FPDF_ANNOT_FREETEXT)
        raw.FPDFAnnot_SetRect(annot, raw.FS_RECTF(20, 230, 220, 200))
        raw.FPDFAnnot_SetStringValue(annot, b"Contents", ctypes.cast(_wide("/s/ Mary Major"),
                                                                     ctypes.POINTER(ctypes.c_ushort)))
        raw.FPDFPage_CloseAnnot(annot)

    _, placed = page_of(build(tmp_path / "field.pdf", field))
    assert placed is not None and [name for _, name in placed.conformed] == ["Mary Major"]
    (box, _), = placed.conformed
    assert abs(box[0] - 20 * 100 / 72) < 2 and abs(box[1] - (H_PT - 230) * 100 / 72) < 2

    # a conformed copy printed and scanned, its OCR layer invisible: the detector boxes the printed line
    _, text_page = page_of(conformed_copy(tmp_path / "typed.pdf", body=False))
    printed = cv2.cvtColor(page_of(tmp_path / "typed.pdf")[0], cv2.COLOR_GRAY2RGB)

    def scanned(pdf: pdfium.PdfDocument, page: pdfium.PdfPage) -> None:
        add_image(pdf, page, printed, 0, 0, W_PT, H_PT)
        add_line(pdf, page, "By: /s/ Jane A. van Doe", 20, 200, mode=raw.FPDF_TEXTRENDERMODE_INVISIBLE)

    doc = build(tmp_path / "scanned.pdf", scanned)
    verifier = Verifier.from_manifest(verifier_manifest)
    gallery = Gallery(verifier, {"alice": verifier.embed([scribble(SIG_A)])})
    p = SignaturePredictor(InkBlobDetector(), verifier, gallery, FlowConfig(), IngestConfig(dpi=100))
    first, second = p(doc, claimed="alice").signatures
    assert (first.verdict, first.placed, first.typed_name) == ("electronic", "conformed", "Jane A. van Doe")
    assert second.placed is None and second.verdict in ("genuine", "forged")  # printed, no OCR text: ink as scanned


def test_how_far_a_conformed_name_runs_along_its_line():
    """Words, not characters, are measured against the line: a right-to-left name's first letter lies at its far
    end, and a script font's letters dip; a table's next cell and a "next line" elsewhere on the page end it."""
    from sigpipe.pipeline.placed import _signature_box

    mark = [(0.0, 0.0, 3.0, 10.0), (3.0, 0.0, 6.0, 7.0), (6.0, 0.0, 9.0, 10.0)]  # "/s/" on a baseline at y 0

    def word(x: float, n: int, end: int, y: float = 0.0, rtl: bool = False) -> tuple[int, list, tuple]:
        boxes = [(x + 6 * i, y - (3.0 if i % 2 else 0.0), x + 6 * i + 5, y + 7) for i in range(n)]
        return end, boxes[::-1] if rtl else boxes, (boxes[-1][0] if rtl else x, y)

    box, end = _signature_box(mark, (0.0, 0.0), [word(12, 4, 4, rtl=True), word(40, 3, 8)], False, True)
    assert end == 8 and box[2] == 40 + 6 * 2 + 5  # both words, the first right to left
    _, end = _signature_box(mark, (0.0, 0.0), [word(12, 4, 4), word(80, 5, 10)], False, True)
    assert end == 4  # a gap of 44, over 1.5 text heights: the next cell
    assert _signature_box(mark, (0.0, 0.0), [word(0, 4, 4, y=-14)], True, True) is not None  # the next line
    assert _signature_box(mark, (0.0, 0.0), [word(0, 4, 4, y=-300)], True, True) is None  # elsewhere
    assert _signature_box(mark, (0.0, 0.0), [word(12, 1, 1)], False, True) is None  # one letter is no name


def test_a_right_to_left_name_reads_from_its_rightmost_word():
    """PDFium gives an Arabic or Hebrew name's words in the order they lie on the page, left to right: 'علي محمد'
    for 'محمد علي' (a helper's PDF laid out as real ones are)."""
    from sigpipe.pipeline.placed import reading_order_name

    ali = ("\u0639\u0644\u064a", (100.0, 0.0, 130.0, 10.0))
    muhammad = ("\u0645\u062d\u0645\u062f", (140.0, 0.0, 180.0, 10.0))
    assert reading_order_name([ali, muhammad]) == "\u0645\u062d\u0645\u062f \u0639\u0644\u064a"
    assert reading_order_name([("Jane", (0.0, 0.0, 30.0, 10.0)), ("Doe", (35.0, 0.0, 60.0, 10.0))]) == "Jane Doe"
    assert reading_order_name([("A.", (0.0, 0.0, 9.0, 10.0)), ("\u05d3\u05d5\u05d3", (12.0, 0.0, 30.0, 10.0))]) == \
        "A. \u05d3\u05d5\u05d3"  # the first letter decides: a Latin initial keeps the text's order


def test_a_readers_comments_are_not_drawn_on_the_page(tmp_path: Path):
    """A sticky note's icon over a genuine signature made it `forged`, a highlight or a filled oval over one hid it or
    made it `forged`, an "Approved" stamp over one too (a format audit and its retest): comments are a reader's, not
    the document. Taken off before rendering. What may be a signature placed on the page stays, judged as placed:
    opaque ink, a stamp of another name, a note larger than an icon (its appearance a signature's picture)."""
    path = save_pdf(tmp_path / "scan.pdf", [page_with([(scribble(SIG_A), 100, 100)])])
    plain, _ = page_of(path)
    pdf = pdfium.PdfDocument(str(path))
    page = pdf[0]
    for kind, (left, top, right, bottom), name in (
            (raw.FPDF_ANNOT_TEXT, (110, 340, 130, 320), None),  # a note's icon
            (raw.FPDF_ANNOT_HIGHLIGHT, (72, 360, 250, 290), None),
            (raw.FPDF_ANNOT_CIRCLE, (80, 350, 240, 300), None),
            (raw.FPDF_ANNOT_SQUARE, (70, 365, 255, 285), None),
            (raw.FPDF_ANNOT_STAMP, (75, 355, 245, 295), "Approved"),
            (raw.FPDF_ANNOT_STAMP, (90, 345, 230, 305), "SBDraft"),
            (raw.FPDF_ANNOT_INK, (400, 150, 500, 50), None),  # opaque: a signature drawn with a mouse
            (raw.FPDF_ANNOT_TEXT, (400, 400, 540, 330), None),  # a note the size of a signature
            (raw.FPDF_ANNOT_STAMP, (400, 300, 540, 200), "AliceSignature"),
            (raw.FPDF_ANNOT_STAMP, (400, 430, 540, 402), "#DkX9Qp2Lm7aW")):  # Acrobat's name for a custom stamp
        annot = raw.FPDFPage_CreateAnnot(page.raw, kind)
        raw.FPDFAnnot_SetRect(annot, ctypes.byref(raw.FS_RECTF(left, top, right, bottom)))
        raw.FPDFAnnot_SetColor(annot, raw.FPDFANNOT_COLORTYPE_Color, 255, 220, 0, 255)
        raw.FPDFAnnot_SetColor(annot, raw.FPDFANNOT_COLORTYPE_InteriorColor, 255, 0, 0, 255)
        if name is not None:
            raw.FPDFAnnot_SetStringValue(annot, b"Name", ctypes.cast(_wide(name), ctypes.POINTER(ctypes.c_ushort)))
        if kind == raw.FPDF_ANNOT_HIGHLIGHT:
            quad = raw.FS_QUADPOINTSF(left, top, right, top, left, bottom, right, bottom)
            raw.FPDFAnnot_AppendAttachmentPoints(annot, ctypes.byref(quad))
        if kind == raw.FPDF_ANNOT_INK:
            stroke = (raw.FS_POINTF * 3)(raw.FS_POINTF(410, 60), raw.FS_POINTF(450, 140), raw.FS_POINTF(490, 60))
            raw.FPDFAnnot_AddInkStroke(annot, stroke, 3)
        raw.FPDFPage_CloseAnnot(annot)
    pdf.save(str(tmp_path / "commented.pdf"))
    pdf.close()
    shown, placed = page_of(tmp_path / "commented.pdf")
    left_part = np.s_[:, :int(390 * 100 / 72)]  # the signature and the comments over it: as on the plain page
    assert np.array_equal(shown[left_part], plain[left_part])
    right_part = np.s_[:, int(390 * 100 / 72):]
    assert (shown[right_part] != plain[right_part]).sum() > 100  # the ink and the large note are drawn
    assert placed is not None and sorted(k for k, _ in placed.marks) == ["image", "image", "image", "vector"]
