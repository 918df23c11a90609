"""Hostile inputs to ``sigpipe review`` and what feeds it: edited reports naming files outside SCANS or REFS, or
boxes no page holds, claims files with fields over the csv module's limit, reference specimens that are
decompression bombs. Each is refused with sigpipe's own error or listed, never followed or left to crash."""

import json
import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from pipeline_doubles import SIG_A, SIG_B, page_with, save_image, scribble

from sigpipe.cli import cli
from sigpipe.datasets import corpus
from sigpipe.datasets.corpus import read_gray
from sigpipe.errors import InputError
from sigpipe.pipeline.claims import load_claims
from sigpipe.pipeline.errors import ClaimsError
from sigpipe.pipeline.ingest import MAX_PAGE_PIXELS
from sigpipe.pipeline.report import DocumentInfo, DocumentReport, SignatureResult, write_report
from sigpipe.pipeline.review import INDEX_HTML, PANEL_W, sheet_name, specimen_reader, write_review
from sigpipe.weights import sha256_file

BOX = (100.0, 100.0, 340.0, 190.0)  # where page_with puts the signature at (100, 100), in an 800 x 600 page


def _sig(**kw: object) -> SignatureResult:
    base: dict[str, object] = {"page": 1, "bbox": BOX, "page_size": (800, 600), "dpi": 200,
                               "detection_confidence": 0.9, "identity": "alice", "distance": 0.9,
                               "threshold": 0.6, "score": 0.1, "verdict": "forged",
                               "nearest_reference": "alice/1.png"}
    return SignatureResult(**{**base, **kw})  # type: ignore[arg-type]


def _report(doc: str, sha256: str, *sigs: SignatureResult) -> DocumentReport:
    return DocumentReport.success(DocumentInfo(doc, sha256, 1), "alice", sigs or (_sig(),), {})


@pytest.fixture
def folders(tmp_path: Path) -> dict[str, Path]:
    """SCANS with one signed page, REFS with alice's specimen, an OUT with the page's report, and, beside them, a
    private folder holding a page and a specimen-like image no report may lead to."""
    scans, refs, out, private = (tmp_path / n for n in ("scans", "refs", "out", "private"))
    save_image(scans / "d.png", page_with([(scribble(SIG_A), 100, 100)]))
    save_image(refs / "alice" / "1.png", scribble(SIG_A))
    save_image(private / "secret.png", np.zeros((90, 240), np.uint8))  # all ink: unmistakable in a panel
    save_image(private / "page.png", page_with([(scribble(SIG_B), 100, 100)]))
    write_report(out, _report("d.png", sha256_file(scans / "d.png")))
    return {"scans": scans, "refs": refs, "out": out, "private": private}


def _reference_panel(sheet: Path) -> np.ndarray:
    img = cv2.imread(str(sheet), cv2.IMREAD_GRAYSCALE)
    head = img.shape[0] - (300 + 26)
    return img[head + 30:, 2 * PANEL_W:]


@pytest.mark.parametrize("reference", [
    "../private/secret.png",
    "alice/../../private/secret.png",
    "\\x2e\\x2e/private/secret.png",  # escapes that read back as ..
    "alice/\\x2e\\x2e/\\x2e\\x2e/private/secret.png",
    "{secret}",  # absolute
    "\\x2f{secret_below_root}",  # an escaped leading /
    "alice//1.png",
    "alice/1.png\\x00",  # a NUL read back: no file name holds one
])
def test_a_reference_outside_refs_is_not_shown(folders: dict[str, Path], reference: str):
    secret = folders["private"] / "secret.png"
    reference = reference.format(secret=secret.as_posix(), secret_below_root=secret.as_posix().lstrip("/"))
    out = folders["out"]
    write_report(out, _report("d.png", sha256_file(folders["scans"] / "d.png"), _sig(nearest_reference=reference)))
    read: list[Path] = []

    def reader(path: Path) -> list[np.ndarray]:
        read.append(path)
        return specimen_reader(None)(path)

    result = write_review(out, folders["scans"], folders["refs"], out / "review", reader)
    assert read == []  # nothing opened, inside REFS or out of it
    [sheet] = result.sheets
    assert sheet.reference_note == "cannot show it: the report names a reference outside REFS"
    # the sheet is written all the same, with no reference, and the document listed as not wholly reviewed
    assert [d for d, _ in result.problems] == ["d.png"] and "outside REFS" in result.problems[0][1]
    assert (_reference_panel(out / "review" / sheet.file) < 100).sum() == 0
    assert "outside REFS" in (out / "review" / INDEX_HTML).read_text(encoding="utf-8")


def test_a_reference_inside_refs_is_still_shown(folders: dict[str, Path]):
    out = folders["out"]
    result = write_review(out, folders["scans"], folders["refs"], out / "review", specimen_reader(None))
    [sheet] = result.sheets
    assert sheet.reference_note is None and (_reference_panel(out / "review" / sheet.file) < 100).sum() > 100


@pytest.mark.parametrize("document", [
    "\\x2e\\x2e/private/page.png",  # escapes that read back as ..
    "sub/\\x2e\\x2e/\\x2e\\x2e/private/page.png",
    "\\x2f{private_below_root}/page.png",  # an escaped leading /
    "x\\x2f..\\x2f..\\x2fprivate/page.png",  # an escaped / around a ..
])
def test_an_escaped_document_path_outside_scans_is_refused(folders: dict[str, Path], document: str):
    page = folders["private"] / "page.png"
    document = document.format(private_below_root=folders["private"].as_posix().lstrip("/"))
    out = folders["out"]
    (out / "d.png.json").unlink()
    write_report(out, _report(document, sha256_file(page)))
    result = write_review(out, folders["scans"], folders["refs"], out / "review", specimen_reader(None))
    assert result.sheets == () and result.problems == ((document, "its report names no path inside SCANS"),)
    assert not [p for p in (out / "review").rglob("*.png")]


def test_documents_reached_through_links_in_scans_are_still_reviewed(folders: dict[str, Path]):
    """The run follows links inside SCANS: the check that a report's path stays in SCANS must not refuse them."""
    scans, out = folders["scans"], folders["out"]
    (scans / "linked").symlink_to(folders["private"], target_is_directory=True)
    (scans / "page.png").symlink_to(folders["private"] / "page.png")
    for doc in ("linked/page.png", "page.png"):
        write_report(out, _report(doc, sha256_file(folders["private"] / "page.png")))
    result = write_review(out, scans, folders["refs"], out / "review", specimen_reader(None))
    assert not result.problems
    assert {s.document for s in result.sheets} == {"d.png", "linked/page.png", "page.png"}
    alone = write_review(out, scans / "d.png", folders["refs"], out / "alone", specimen_reader(None))  # SCANS a file
    assert {s.document for s in alone.sheets} == {"d.png"}


@pytest.mark.parametrize("bbox, page_size", [
    ((0.0, 0.0, 1e300, 1e300), (800, 600)),
    ((-1e300, -1e300, 10.0, 10.0), (800, 600)),
    ((5000.0, 5000.0, 6000.0, 6000.0), (800, 600)),  # far outside the page
    ((100.0, 100.0, 340.0, 190.0), (80, 60)),  # a page size edited under its box
    ((340.0, 190.0, 100.0, 100.0), (800, 600)),  # corners swapped
    ((0.0, 0.0, 10.0, 10.0), (10**400, 10**400)),  # a page size too large for a float (JSON integers are unbounded)
])
def test_an_edited_box_is_listed_and_the_others_reviewed(folders: dict[str, Path], tmp_path: Path,
                                                         bbox: tuple[float, ...], page_size: tuple[int, int]):
    scans, out = folders["scans"], folders["out"]
    save_image(scans / "e.png", page_with([(scribble(SIG_A), 100, 100)]))
    write_report(out, _report("e.png", sha256_file(scans / "e.png"), _sig(bbox=bbox, page_size=page_size)))
    result = write_review(out, scans, folders["refs"], out / "review", specimen_reader(None))
    assert [s.document for s in result.sheets] == ["d.png"]
    [(doc, why)] = result.problems
    assert doc == "e.png" and "impossible values" in why
    assert (out / "review" / INDEX_HTML).is_file() and not (out / "review" / sheet_name("e.png", 1)).exists()
    r = CliRunner().invoke(cli, ["review", str(out), "--scans", str(scans), "--refs", str(folders["refs"]),
                                 "--to", str(tmp_path / "cli")])
    assert r.exit_code == 1 and not isinstance(r.exception, Exception), r.output  # exit 1, not a crash
    assert "not reviewed: e.png" in r.output
    assert (tmp_path / "cli" / sheet_name("d.png", 1)).is_file()


def test_an_edited_box_of_a_signature_only_drawn_for_context_is_refused(folders: dict[str, Path]):
    """A report edited to call its document genuine puts only its forged signature up for review, but every box of
    the page is drawn on its sheet."""
    scans, out = folders["scans"], folders["out"]
    data = _report("d.png", sha256_file(scans / "d.png"), _sig(verdict="genuine", bbox=(0.0, 0.0, 1e300, 1e300)),
                   _sig()).to_dict()
    data["verdict"] = "genuine"
    (out / "d.png.json").write_text(json.dumps(data))
    result = write_review(out, scans, folders["refs"], out / "review", specimen_reader(None))
    assert result.sheets == () and [d for d, _ in result.problems] == ["d.png"]


def test_a_box_on_the_page_edge_is_still_reviewed(folders: dict[str, Path]):
    """Boxes are clipped to the page when detected; the page size recorded may be rounded: a little slack."""
    scans, out = folders["scans"], folders["out"]
    write_report(out, _report("d.png", sha256_file(scans / "d.png"), _sig(bbox=(0.0, 0.0, 800.4, 600.0)),
                              _sig(bbox=(-0.5, 500.0, 801.0, 601.0))))
    result = write_review(out, scans, folders["refs"], out / "review", specimen_reader(None))
    assert not result.problems and len(result.sheets) == 2


# --- claims -------------------------------------------------------------------------------------------------------

def test_a_claims_field_over_the_csv_limit_is_a_claims_error(tmp_path: Path):
    p = tmp_path / "claims.csv"
    p.write_text("document,identity\na.pdf,alice\n\nb.pdf," + "x" * 200_000 + "\n")
    with pytest.raises(ClaimsError, match=rf"claims file {p}, line 4: .*longer than"):
        load_claims(p)
    p.write_text("document," + "x" * 200_000 + "\na.pdf,alice\n")  # in the header
    with pytest.raises(ClaimsError, match=rf"claims file {p}, line 1: .*longer than"):
        load_claims(p)


def test_run_with_a_claims_field_over_the_csv_limit_is_a_usage_error(folders: dict[str, Path], tmp_path: Path):
    claims = tmp_path / "claims.csv"
    claims.write_text('document,identity\n"d.png' + "x" * 200_000 + '",alice\n')
    r = CliRunner().invoke(cli, ["run", str(folders["scans"]), "--refs", str(folders["refs"]), "--out",
                                 str(tmp_path / "o"), "--claims", str(claims)])
    assert r.exit_code == 2, r.output
    assert f"claims file {claims}, line 2" in r.stderr and "Traceback" not in r.output
    assert not (tmp_path / "o").exists()


def test_run_with_claims_by_account_and_no_signatory_table_is_a_usage_error(folders: dict[str, Path],
                                                                            tmp_path: Path):
    claims, cards = tmp_path / "claims.csv", tmp_path / "cards.csv"
    claims.write_text("document,account\nd.png,0011\n")
    cards.write_text("account,identity\n0011,alice\n")
    base = ["run", str(folders["scans"]), "--refs", str(folders["refs"]), "--out", str(tmp_path / "o")]
    for extra, message in ((["--claims", str(claims)], f"claims file {claims}, line 2: claims by account need the "
                            "signatory table (--signatories FILE"),
                           (["--signatories", str(cards)], f"a signatory table ({cards}) is read through claims")):
        r = CliRunner().invoke(cli, base + extra)
        assert r.exit_code == 2, r.output
        assert message in " ".join(r.stderr.split()) and "Traceback" not in r.output
    assert not (tmp_path / "o").exists()


# --- reference specimens ------------------------------------------------------------------------------------------

def _png_declaring(width: int, height: int) -> bytes:
    """A few hundred bytes of PNG whose header declares ``width`` x ``height`` gray pixels (the first rows given)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = zlib.compress(b"\0" * (width + 1) * 16, 9)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", rows) + chunk(b"IEND", b""))


@pytest.mark.parametrize("width, height", [(699, 400_000), (12_000, 12_000)])  # over PIL's own error limit; under
def test_a_specimen_declaring_too_many_pixels_is_refused_before_decoding(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch,
                                                                         width: int, height: int):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_declaring(width, height))
    assert bomb.stat().st_size < 2000

    def no_decoding(*_: object) -> None:
        raise AssertionError("decoded a decompression bomb")

    monkeypatch.setattr(corpus.cv2, "imdecode", no_decoding)
    with pytest.raises(InputError, match=rf"{bomb}.* {width * height / 1e6:.0f} Mpx, over the 120 Mpx limit"):
        read_gray(bomb)


def test_the_specimen_pixel_limit_is_the_page_limit():
    assert corpus.MAX_IMAGE_PIXELS == MAX_PAGE_PIXELS


def test_a_specimen_that_is_a_scanned_page_is_still_read(tmp_path: Path):
    a4 = tmp_path / "a4-600dpi.png"  # 35 Mpx
    save_image(a4, np.full((7016, 4961), 255, np.uint8))
    assert read_gray(a4).shape == (7016, 4961)


def test_a_specimen_pil_cannot_identify_keeps_its_error(tmp_path: Path):
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    with pytest.raises(InputError, match=f"cannot decode image: {junk}"):
        read_gray(junk)


def test_a_bomb_in_refs_is_noted_on_the_sheet(folders: dict[str, Path]):
    (folders["refs"] / "alice" / "1.png").write_bytes(_png_declaring(699, 400_000))
    out = folders["out"]
    result = write_review(out, folders["scans"], folders["refs"], out / "review", specimen_reader(None))
    [sheet] = result.sheets
    assert "cannot show it" in (sheet.reference_note or "") and "Mpx limit" in (sheet.reference_note or "")


def test_an_escaped_name_inside_scans_is_still_reviewed(folders: dict[str, Path]):
    """The check of escaped names refuses only those that lead out: a Latin-1 name from an old share is reviewed."""
    scans, out = folders["scans"], folders["out"]
    latin1 = os.fsdecode(b"caf\xe9.png")
    save_image(scans / latin1, page_with([(scribble(SIG_A), 100, 100)]))
    write_report(out, _report("caf\\xe9.png", sha256_file(scans / latin1)))
    result = write_review(out, scans, folders["refs"], out / "review", specimen_reader(None))
    assert not result.problems and {s.document for s in result.sheets} == {"d.png", "caf\\xe9.png"}


def test_a_lone_surrogate_in_an_edited_report_is_listed_not_a_crash(folders: dict[str, Path]):
    """JSON allows a lone surrogate (\\ud800); no file name holds one, and UTF-8 cannot encode it: the index showed it
    at the cost of the whole review."""
    out = folders["out"]
    path = write_report(out, _report("x.png", "0" * 64))
    path.write_text(path.read_text().replace('"x.png"', '"x\\ud800.png"'))
    result = write_review(out, folders["scans"], folders["refs"], out / "review", specimen_reader(None))
    assert [d for d, _ in result.problems] == ["x\ud800.png"] and len(result.sheets) == 1
    assert "x\\ud800.png" in (out / "review" / INDEX_HTML).read_text(encoding="utf-8")


def test_a_page_read_with_other_proportions_than_its_report_is_listed(folders: dict[str, Path]):
    """An older release read the page otherwise (a PDF's whole MediaBox where its CropBox shows a cheque): a box
    scaled onto the page as read now would frame something else under the report's verdict."""
    out = folders["out"]
    (out / "d.png.json").unlink()
    doc = folders["scans"] / "d.png"
    write_report(out, _report("d.png", sha256_file(doc), _sig(page_size=(800, 1200), bbox=(100.0, 200.0, 340.0,
                                                                                           380.0))))
    result = write_review(out, folders["scans"], folders["refs"], out / "review", specimen_reader(None))
    assert result.sheets == () and len(result.problems) == 1 and "reads as 800 x 600 px" in result.problems[0][1]
    # the same proportions at another size (another rasteriser's rounding) are scaled as before
    (out / "d.png.json").unlink()
    write_report(out, _report("d.png", sha256_file(doc), _sig(page_size=(1600, 1200), bbox=(200.0, 200.0, 680.0,
                                                                                            380.0))))
    assert len(write_review(out, folders["scans"], folders["refs"], out / "review", specimen_reader(None)).sheets) == 1
