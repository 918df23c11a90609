"""``sigpipe verify`` on PDFs and whole pages: the shipped detector finds the signature and it is cropped as
``sigpipe run`` crops it, so the two commands give the same distance for the same document."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from sigpipe.cli import cli

EXAMPLE = Path(__file__).resolve().parents[2] / "examples"
KOWALSKI = sorted((EXAMPLE / "refs" / "j-kowalski").glob("*.png"))


def verify(*args: Path | str) -> tuple[int, dict | None, str]:
    res = CliRunner().invoke(cli, ["verify", *map(str, args), "--json"])
    return res.exit_code, json.loads(res.stdout) if res.exit_code == 0 else None, res.stderr


def letter(tmp_path: Path, signatures: list[Path], name: str = "page.png") -> Path:
    """A blank A4 page at 150 dpi with ``signatures`` pasted one under the other, well apart."""
    page = np.full((1754, 1240), 248, np.uint8)
    for i, f in enumerate(signatures):
        sig = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
        y = 500 + 600 * i
        page[y : y + sig.shape[0], 600 : 600 + sig.shape[1]] = np.minimum(page[y : y + sig.shape[0],
                                                                               600 : 600 + sig.shape[1]], sig)
    cv2.imwrite(str(tmp_path / name), page)
    return tmp_path / name


def test_a_pdf_cheque_gives_the_distance_sigpipe_run_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SIGPIPE_CACHE", str(tmp_path / "cache"))
    scans = tmp_path / "scans"
    scans.mkdir()
    (scans / "0002_cheque.pdf").write_bytes((EXAMPLE / "scans" / "0002_cheque.pdf").read_bytes())
    (tmp_path / "claims.csv").write_text("document,identity\n0002_cheque.pdf,j-kowalski\n")
    res = CliRunner().invoke(cli, ["run", str(scans), "--refs", str(EXAMPLE / "refs"), "--claims",
                                   str(tmp_path / "claims.csv"), "--out", str(tmp_path / "out"), "--no-progress"])
    assert res.exit_code == 0, res.output
    (sig,) = json.loads((tmp_path / "out" / "0002_cheque.pdf.json").read_text())["signatures"]

    code, out, err = verify(scans / "0002_cheque.pdf", *KOWALSKI)
    assert code == 0, err
    assert out["questioned_detection"]["page"] == 1
    assert out["questioned_detection"]["bbox"] == pytest.approx(sig["bbox"], abs=0.1)
    # the same to the report's 6 decimals: verify gives the second stage the references as the gallery keeps them
    assert out["distance"] == pytest.approx(sig["distance"], abs=6e-7)
    assert out["threshold"] == pytest.approx(sig["threshold"], abs=6e-7)
    assert out["verdict"] == sig["verdict"] and out["reference_crops"] == len(KOWALSKI)
    # a PDF saved under an image's name is read by its content, as the run reads it
    misnamed = tmp_path / "0002_cheque.tif"
    misnamed.write_bytes((scans / "0002_cheque.pdf").read_bytes())
    code, again, err = verify(misnamed, *KOWALSKI)
    assert code == 0, err
    assert again["distance"] == pytest.approx(sig["distance"], abs=6e-7)


def test_the_text_output_says_where_the_signature_was_found():
    res = CliRunner().invoke(cli, ["verify", str(EXAMPLE / "scans" / "0003_cheque.pdf"),
                                   *map(str, sorted((EXAMPLE / "refs" / "i-wright").glob("*.png")))])
    assert res.exit_code == 0, res.output
    line = res.stdout.strip()
    assert line.startswith(("genuine  distance", "forged  distance")) and "found on page 1 at x " in line, line
    res = CliRunner().invoke(cli, ["verify", *map(str, KOWALSKI)])
    assert res.exit_code == 0 and "found on page" not in res.stdout


def test_a_signature_image_is_taken_whole_without_the_detector(tmp_path: Path):
    code, out, err = verify(KOWALSKI[0], *KOWALSKI[1:])
    assert code == 0, err
    assert "questioned_detection" not in out and "detector" not in out


def test_references_can_be_pages(tmp_path: Path):
    pages = [letter(tmp_path, [f], f"ref{i}.png") for i, f in enumerate(KOWALSKI[1:])]
    code, out, err = verify(KOWALSKI[0], *pages)
    code_crops, out_crops, _ = verify(KOWALSKI[0], *KOWALSKI[1:])
    assert code == 0 and code_crops == 0, err
    assert out["reference_crops"] == len(pages) and out["verdict"] == out_crops["verdict"] == "genuine"
    # cropped with a margin from a page rather than given tight: close, not identical
    assert out["distance"] == pytest.approx(out_crops["distance"], abs=0.15)


def test_a_multi_page_pdf_gives_the_page_its_one_signature_is_on(tmp_path: Path):
    from PIL import Image

    blank, signed = letter(tmp_path, [], "blank.png"), letter(tmp_path, KOWALSKI[:1], "signed.png")
    first, *rest = (Image.open(p).convert("RGB") for p in (blank, signed, blank))
    first.save(tmp_path / "contract.pdf", save_all=True, append_images=rest, resolution=150)
    code, out, err = verify(tmp_path / "contract.pdf", *KOWALSKI[1:])
    assert code == 0, err
    assert out["questioned_detection"]["page"] == 2 and out["verdict"] == "genuine"
    # the box lies where the signature was pasted (letter(): x 600, y 500 at 150 dpi; the PDF renders at 200)
    x1, y1, x2, y2 = out["questioned_detection"]["bbox"]
    h, w = cv2.imread(str(KOWALSKI[0]), cv2.IMREAD_GRAYSCALE).shape
    s = 200 / 150
    assert abs(x1 - 600 * s) < 0.2 * w * s and abs(y1 - 500 * s) < 0.2 * h * s


def test_a_questioned_page_with_two_signatures_needs_signature_n(tmp_path: Path):
    page = letter(tmp_path, KOWALSKI[:2])
    code, _, err = verify(page, *KOWALSKI[2:])
    assert code == 2
    assert "holds 2 signature(s) (1: page 1 at x" in err and "; 2: page 1 at x" in err
    assert "--signature N" in err and "sigpipe run" in err and len(err.strip().splitlines()) == 1
    # numbered top to bottom: the second lies 600 px (at 150 dpi) under the first
    code, first, err = verify(page, *KOWALSKI[2:], "--signature", "1")
    assert code == 0, err
    code, second, err = verify(page, *KOWALSKI[2:], "--signature", "2")
    assert code == 0, err
    assert second["questioned_detection"]["bbox"][1] - first["questioned_detection"]["bbox"][1] == pytest.approx(
        600, abs=60)
    assert second["distance"] != first["distance"]
    code, _, err = verify(page, *KOWALSKI[2:], "--signature", "3")
    assert code == 2 and "there is no signature 3" in err
    code, _, err = verify(KOWALSKI[0], *KOWALSKI[2:], "--signature", "2")
    assert code == 2 and "is a signature image, not a page" in err


def test_a_page_without_a_signature_is_refused(tmp_path: Path):
    page = letter(tmp_path, [])
    code, _, err = verify(page, *KOWALSKI)
    assert code == 2 and f"no signature found in {page}" in err
    code, _, err = verify(KOWALSKI[0], page)
    assert code == 2 and f"no signature found in {page}" in err


def test_a_corrupt_pdf_is_an_input_error(tmp_path: Path):
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(b"%PDF-1.4\n1 0 obj <<>> garbage")
    code, _, err = verify(bad, *KOWALSKI)
    assert code == 2 and f"{bad}: not a readable PDF" in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_a_cheque_fed_in_askew_is_levelled_alike_by_run_and_verify(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The same page 4 degrees askew: run and verify level it by the same angle, report it, and judge the same crop."""
    from sigpipe.pipeline.ingest import iter_pages

    monkeypatch.setenv("SIGPIPE_CACHE", str(tmp_path / "cache"))
    (page,) = iter_pages(EXAMPLE / "scans" / "0001_cheque.png")
    h, w = page.image.shape[:2]
    askew = cv2.warpAffine(page.image, cv2.getRotationMatrix2D((w / 2, h / 2), 4.0, 1.0), (w, h),
                           borderValue=(255, 255, 255))
    scans = tmp_path / "scans"
    scans.mkdir()
    cv2.imwrite(str(scans / "askew.png"), askew)
    (tmp_path / "claims.csv").write_text("document,identity\naskew.png,j-kowalski\n")
    res = CliRunner().invoke(cli, ["run", str(scans), "--refs", str(EXAMPLE / "refs"), "--claims",
                                   str(tmp_path / "claims.csv"), "--out", str(tmp_path / "out"), "--no-progress"])
    assert res.exit_code == 0, res.output
    (sig,) = json.loads((tmp_path / "out" / "askew.png.json").read_text())["signatures"]
    assert sig["page_skew"] == pytest.approx(-4.0, abs=0.3) and sig["verdict"] == "genuine"
    code, out, err = verify(scans / "askew.png", *KOWALSKI)
    assert code == 0, err
    assert out["questioned_detection"]["page_skew"] == sig["page_skew"]
    assert out["distance"] == pytest.approx(sig["distance"], abs=6e-7)


def test_a_signature_pasted_into_a_digital_pdf_is_electronic(tmp_path: Path):
    """A picture of a specimen placed on a born-digital page (an e-signature, a signature pasted into a word
    processor's PDF) is not scanned ink: verify says `electronic` and how it was placed, as `sigpipe run` does.
    The same page as a scan of paper is judged."""
    import pypdfium2 as pdfium
    from PIL import Image

    specimen = cv2.imread(str(KOWALSKI[0]), cv2.IMREAD_GRAYSCALE)
    h, w = specimen.shape

    def pdf_with(arr: np.ndarray, x: float, y: float, width: float, height: float, name: str) -> Path:
        pdf = pdfium.PdfDocument.new()
        page = pdf.new_page(595.0, 842.0)
        img = pdfium.PdfImage.new(pdf)
        img.set_bitmap(pdfium.PdfBitmap.from_pil(Image.fromarray(arr)))
        img.set_matrix(pdfium.PdfMatrix().scale(width, height).translate(x, y))
        page.insert_obj(img)
        page.gen_content()
        pdf.save(str(tmp_path / name))
        return tmp_path / name

    digital = pdf_with(specimen, 200.0, 300.0, w * 72 / 150, h * 72 / 150, "digital.pdf")  # as at 150 dpi
    code, out, err = verify(digital, *KOWALSKI[1:])
    assert code == 0, err
    assert out["verdict"] == "electronic" and out["placed"] == "image"
    assert out["distance"] is not None  # compared all the same
    scan = np.full((1754, 1240), 248, np.uint8)  # the same page printed and scanned at 150 dpi
    y0 = round((842 - 300) * 150 / 72 - h)
    scan[y0:y0 + h, 417:417 + w] = np.minimum(scan[y0:y0 + h, 417:417 + w], specimen)
    scanned = pdf_with(scan, 0.0, 0.0, 595.0, 842.0, "scanned.pdf")
    code, out, err = verify(scanned, *KOWALSKI[1:])
    assert code == 0, err
    assert out["verdict"] in ("genuine", "forged") and out["placed"] is None


def test_a_conformed_signature_is_compared_with_nobody(tmp_path: Path):
    """verify gave a conformed "/s/ Jane Doe" a distance, a threshold and a nearest reference, where `sigpipe run`
    says it is compared with nobody (a legal-ops helper)."""
    import ctypes

    import pypdfium2 as pdfium
    import pypdfium2.raw as raw

    pdf = pdfium.PdfDocument.new()
    page = pdf.new_page(595.0, 842.0)
    obj = raw.FPDFPageObj_NewTextObj(pdf.raw, b"Helvetica", ctypes.c_float(16))
    buf = ctypes.create_string_buffer("By: /s/ Jane Doe\x00".encode("utf-16-le"))
    raw.FPDFText_SetText(obj, ctypes.cast(buf, ctypes.POINTER(ctypes.c_ushort)))
    raw.FPDFPageObj_Transform(obj, 1, 0, 0, 1, 80, 300)
    raw.FPDFPage_InsertObject(page.raw, obj)
    page.gen_content()
    pdf.save(str(tmp_path / "conformed.pdf"))
    code, out, err = verify(tmp_path / "conformed.pdf", *KOWALSKI[1:])
    assert code == 0, err
    assert (out["verdict"], out["placed"], out["typed_name"]) == ("electronic", "conformed", "Jane Doe")
    assert out["distance"] is None and out["threshold"] is None and out["nearest_reference"] is None
    result = CliRunner().invoke(cli, ["verify", str(tmp_path / "conformed.pdf"), *map(str, KOWALSKI[1:])])
    assert result.exit_code == 0 and "electronic  conformed signature of 'Jane Doe', compared with nobody" in \
        result.stdout
