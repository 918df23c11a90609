"""Review sheets (``sigpipe review``): built from a run's reports, the documents rendered again, no model run."""

import html
import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from pipeline_doubles import SIG_A, SIG_B, DoubleModels, page_with, save_image, scribble

from sigpipe.cli import cli
from sigpipe.pipeline.report import DocumentInfo, DocumentReport, SignatureResult, read_report, write_report
from sigpipe.pipeline.review import (
    INDEX_HTML,
    PANEL_W,
    _in_page_pixels,
    questioned_crop,
    sheet_name,
    specimen_reader,
    to_review,
    write_review,
)
from sigpipe.pipeline.runner import RunConfig, run_batch


def _run(batch: dict[str, Path], verifier_manifest: Path) -> Path:
    run_batch(RunConfig(scans=batch["scans"], refs=batch["refs"], out=batch["out"], claims=batch["claims"],
                        cache=batch["cache"], progress=False), DoubleModels(verifier_manifest))
    return batch["out"]


def _reports(out: Path) -> dict[str, DocumentReport]:
    found = {}
    for p in out.rglob("*.json"):
        r = read_report(p)
        if r is not None:
            found[r.document.path] = r
    return found


def _sig(verdict: str, page: int = 1, **kw: object) -> SignatureResult:
    base: dict[str, object] = {"page": page, "bbox": (10.0, 20.0, 110.0, 60.0), "page_size": (600, 400), "dpi": 200,
                               "detection_confidence": 0.9, "identity": "alice", "distance": 0.5,
                               "threshold": 0.6, "score": 0.7, "verdict": verdict}
    return SignatureResult(**{**base, **kw})  # type: ignore[arg-type]


def _report(*sigs: SignatureResult, claimed: object = "alice") -> DocumentReport:
    return DocumentReport.success(DocumentInfo("d.png", "0" * 64, 1), claimed, sigs, {})  # type: ignore[arg-type]


def test_to_review_picks_what_is_not_plainly_genuine():
    mixed = _report(_sig("genuine"), _sig("forged"), _sig("genuine"))
    assert mixed.verdict == "forged"
    assert to_review(mixed) == [0, 1, 2]  # a forged document: all its signatures, for context
    genuine = _report(_sig("genuine"), _sig("genuine"))
    assert to_review(genuine) == [] and to_review(genuine, everything=True) == [0, 1]
    # two people claimed, only alice's signature found: needs_review, and her signature is shown
    one_of_two = _report(_sig("genuine"), claimed=("alice", "bob"))
    assert one_of_two.verdict == "needs_review" and to_review(one_of_two) == [0]
    assert to_review(_report(_sig("genuine"), _sig("unknown_signer"), claimed=None)) == [0, 1]


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
def test_questioned_crop_is_upright_whichever_way_the_page_was_scanned(turns: int):
    sig = scribble(SIG_A)
    sig[:, :20] = 0  # a black band on the signature's left: which way up it is
    upright = page_with([(sig, 200, 150)])
    scanned = np.ascontiguousarray(np.rot90(upright, turns))  # turned 90 x turns degrees counter-clockwise
    ys, xs = np.nonzero(np.rot90(np.pad(np.ones(sig.shape, np.uint8), ((150, 600 - 240), (200, 800 - 440))),
                                 turns))
    box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
    s = _sig("forged", bbox=box, page_size=(scanned.shape[1], scanned.shape[0]), page_rotation=90 * turns)
    crop = questioned_crop(scanned, s, margin=0.0)
    np.testing.assert_array_equal(crop, upright[150:240, 200:440])


def test_a_page_rendered_at_another_size_has_its_box_scaled():
    s = _sig("forged", bbox=(100.0, 50.0, 300.0, 150.0), page_size=(600, 400))
    scaled = _in_page_pixels(s, np.zeros((200, 300), np.uint8))
    assert scaled.bbox == (50.0, 25.0, 150.0, 75.0) and scaled.page_size == (300, 200)
    assert _in_page_pixels(s, np.zeros((400, 600), np.uint8)) is s


def test_review_writes_a_sheet_per_signature_and_an_index(batch: dict[str, Path], verifier_manifest: Path):
    out = _run(batch, verifier_manifest)
    reports = _reports(out)
    to = out / "review"
    result = write_review(out, batch["scans"], batch["refs"], to, specimen_reader(None), everything=True)
    assert result.reports == len(reports) == 5 and not result.problems
    import stat

    # signatures and specimens, biometric data: the folder it created is its user's alone (a security review read
    # another account's sheets); one that exists keeps its permissions
    assert stat.S_IMODE(to.stat().st_mode) == 0o700
    shared = out / "team-review"
    shared.mkdir(mode=0o750)
    shared.chmod(0o750)
    write_review(out, batch["scans"], batch["refs"], shared, specimen_reader(None))
    assert stat.S_IMODE(shared.stat().st_mode) == 0o750
    expected = {(d, i + 1) for d, r in reports.items() for i in range(len(r.signatures))}
    assert {(s.document, s.number) for s in result.sheets} == expected and len(expected) == 3
    for s in result.sheets:
        img = cv2.imread(str(to / s.file))
        assert img is not None and img.shape[1] == 3 * PANEL_W
        assert s.file == sheet_name(s.document, s.number)
        assert s.signature == reports[s.document].signatures[s.number - 1]
        # the nearest reference is an image in REFS, shown; carol (claimed for bob_form) has none
        assert s.reference_note == (None if s.signature.nearest_reference else "no reference specimen")
    assert result.unsigned == ("unsigned.jpg",)
    assert [(d, k) for d, k, _ in result.failed] == [("broken.pdf", "corrupt_pdf")]
    assert {s.document for s in result.sheets if s.reference_note} == {"sub/bob_form.png"}
    index = (to / INDEX_HTML).read_text(encoding="utf-8")
    for s in result.sheets:
        assert f'src="{s.file}"' in index
    assert "unsigned.jpg" in index and "broken.pdf" in index
    # by default only what a person must look at: here every signature that is not in a genuine document
    default = write_review(out, batch["scans"], batch["refs"], out / "r2", specimen_reader(None))
    assert {(s.document, s.number) for s in default.sheets} == {
        (d, i + 1) for d, r in reports.items() for i in to_review(r)}
    # the sheets and index in OUT are not taken for reports, and a second review replaces the first
    again = write_review(out, batch["scans"], batch["refs"], to, specimen_reader(None), everything=True)
    assert again.reports == 5 and again.sheets == result.sheets


def test_the_sheet_shows_the_signature_the_report_points_at(batch: dict[str, Path], verifier_manifest: Path):
    out = _run(batch, verifier_manifest)
    result = write_review(out, batch["scans"], batch["refs"], out / "review", specimen_reader(None), everything=True)
    sheet = next(s for s in result.sheets if s.document == "sub/bob_form.png")
    img = cv2.imread(str(out / "review" / sheet.file), cv2.IMREAD_GRAYSCALE)
    # the questioned panel (the middle third) holds the dark strokes of bob's signature; the page panel too
    head = img.shape[0] - (300 + 26)
    middle, left = img[head:, PANEL_W:2 * PANEL_W], img[head:, :PANEL_W]
    assert (middle < 100).sum() > 200 and (left < 100).sum() > 20
    write_review(out, batch["scans"], batch["refs"], out / "again", specimen_reader(None), everything=True)
    again = cv2.imread(str(out / "again" / sheet.file), cv2.IMREAD_GRAYSCALE)
    np.testing.assert_array_equal(img, again)  # deterministic


def test_changed_or_missing_documents_are_listed_not_reviewed(batch: dict[str, Path], verifier_manifest: Path):
    out = _run(batch, verifier_manifest)
    save_image(batch["scans"] / "sub" / "bob_form.png", page_with([(scribble(SIG_B), 300, 300)]))
    (batch["scans"] / "alice_letter.pdf").unlink()
    result = write_review(out, batch["scans"], batch["refs"], out / "review", specimen_reader(None), everything=True)
    problems = dict(result.problems)
    assert set(problems) == {"sub/bob_form.png", "alice_letter.pdf"}
    assert "changed since its report" in problems["sub/bob_form.png"] and "not found" in problems["alice_letter.pdf"]
    assert {s.document for s in result.sheets} == {"sub/deeper/multi.TIF"}
    assert not (out / "review" / sheet_name("sub/bob_form.png", 1)).exists()
    assert "changed since its report" in (out / "review" / INDEX_HTML).read_text(encoding="utf-8")


def test_suspect_and_unreadable_references_are_marked(batch: dict[str, Path], verifier_manifest: Path):
    out = _run(batch, verifier_manifest)
    reports = _reports(out)
    alice = reports["alice_letter.pdf"].signatures[0]
    multi = reports["sub/deeper/multi.TIF"].signatures[0]  # unclaimed: the nearest of everybody's
    assert alice.nearest_reference == "alice/a1.png" and multi.nearest_reference in ("alice/a1.png", "bob/b1.png")
    suspect = "bob/b1.png" if multi.nearest_reference == "bob/b1.png" else "alice/a1.png"
    summary = json.loads((out / "summary.json").read_text())
    summary["suspect_references"] = [{"person": suspect.split("/")[0], "file": str(batch["refs"] / suspect),
                                      "margin": 0.4, "resembles": None}]
    (out / "summary.json").write_text(json.dumps(summary))
    result = write_review(out, batch["scans"], batch["refs"], out / "review", specimen_reader(None), everything=True)
    notes = {s.document: s.reference_note for s in result.sheets}
    assert (notes["sub/deeper/multi.TIF"] or "").startswith("SUSPECT")
    (batch["refs"] / "alice" / "a1.png").write_bytes(b"not an image")
    (batch["refs"] / "bob" / "b1.png").write_bytes(b"not an image")
    result = write_review(out, batch["scans"], batch["refs"], out / "review", specimen_reader(None), everything=True)
    notes = {s.document: s.reference_note for s in result.sheets}
    assert "cannot show it" in (notes["alice_letter.pdf"] or "")
    assert "cannot show it" in (notes["sub/deeper/multi.TIF"] or "")
    # the sheets are written all the same, but the review is not whole: listed (exit 1), as an auditor asked
    assert {d for d, _ in result.problems} == {"alice_letter.pdf", "sub/deeper/multi.TIF"}
    assert all("its closest reference" in why and "cannot show it" in why for _, why in result.problems)


def test_a_specimen_swapped_for_another_is_not_shown_as_the_closest(batch: dict[str, Path], verifier_manifest: Path):
    out = _run(batch, verifier_manifest)
    sig = _reports(out)["alice_letter.pdf"].signatures[0]
    assert sig.nearest_reference == "alice/a1.png" and sig.nearest_reference_sha256 is not None
    result = write_review(out, batch["scans"], batch["refs"], out / "review", specimen_reader(None), everything=True)
    assert {s.document: s.reference_note for s in result.sheets}["alice_letter.pdf"] is None and not result.problems
    # a1.png now holds bob's specimen (two files swapped names after the run): showing it as the closest reference
    # would put the wrong signature beside the questioned one
    (batch["refs"] / "alice" / "a1.png").write_bytes((batch["refs"] / "bob" / "b1.png").read_bytes())
    result = write_review(out, batch["scans"], batch["refs"], out / "review", specimen_reader(None), everything=True)
    note = {s.document: s.reference_note for s in result.sheets}["alice_letter.pdf"] or ""
    assert "cannot show it" in note and "sha256 differs" in note
    naming = {d for d, r in _reports(out).items() if any(x.nearest_reference == "alice/a1.png" for x in r.signatures)}
    assert {d for d, _ in result.problems} == naming and "alice_letter.pdf" in naming


def test_a_sheet_left_half_written_by_a_killed_review_is_removed_once_stale(batch: dict[str, Path],
                                                                              verifier_manifest: Path, tmp_path: Path):
    """Into a folder outside OUT no lock is held, and nothing else ever removed such a file: a customer's signature
    and specimens, kept for ever."""
    import os
    import time

    out = _run(batch, verifier_manifest)
    to = tmp_path / "elsewhere"
    to.mkdir()
    stale, fresh = to / ".alice_letter.pdf.sig1.png.x1.sigpipe-tmp", to / ".b.png.sig1.png.x2.sigpipe-tmp"
    stale.write_bytes(b"half a sheet")
    fresh.write_bytes(b"being written by another review")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    write_review(out, batch["scans"], batch["refs"], to, specimen_reader(None))
    assert not stale.exists() and fresh.exists()


def test_names_are_escaped_in_the_index(tmp_path: Path):
    scans, refs, out = tmp_path / "scans", tmp_path / "refs", tmp_path / "out"
    doc = "a&b <x>.png"
    save_image(scans / doc, page_with([(scribble(SIG_A), 100, 100)]))
    save_image(refs / "o'neil" / "1.png", scribble(SIG_A))
    from sigpipe.weights import sha256_file

    sig = _sig("forged", bbox=(100.0, 100.0, 340.0, 190.0), page_size=(800, 600), identity="o'neil",
               nearest_reference="o'neil/1.png")
    write_report(out, replace(_report(sig, claimed="o'neil"), document=DocumentInfo(doc, sha256_file(scans / doc), 1)))
    result = write_review(out, scans, refs, out / "review", specimen_reader(None))
    assert [s.document for s in result.sheets] == [doc] and result.sheets[0].reference_note is None
    index = (out / "review" / INDEX_HTML).read_text(encoding="utf-8")
    assert "a&amp;b &lt;x&gt;.png" in index and "<x>" not in index
    assert 'src="a%26b%20%3Cx%3E.png.sig1.png"' in index
    assert (out / "review" / f"{doc}.sig1.png").is_file()
    # an edited report naming a path outside SCANS is refused, not followed
    outside = replace(_report(sig, claimed="o'neil"), document=DocumentInfo("../x.png", "0" * 64, 1))
    (out / "edited.png.json").write_text(outside.to_json())
    r = write_review(out, scans, refs, out / "review", specimen_reader(None))
    assert r.problems == (("../x.png", "its report names no path inside SCANS"),)
    (out / "edited.png.json").unlink()
    # a run given one document as SCANS: the review is given it too
    alone = write_review(out, scans / doc, refs, out / "alone", specimen_reader(None))
    assert [s.file for s in alone.sheets] == [f"{doc}.sig1.png"] and not alone.problems


def test_within_a_verdict_the_closest_calls_come_first(tmp_path: Path):
    """A night's review lists hundreds of forged sheets; by document name, a forgery called by a hair sat among
    plain ones. Within a verdict the index now lists the distance nearest its threshold first."""
    scans, refs, out = tmp_path / "scans", tmp_path / "refs", tmp_path / "out"
    save_image(refs / "alice" / "1.png", scribble(SIG_A))
    from sigpipe.weights import sha256_file

    distances = {"a.png": 1.5, "b.png": 0.62, "c.png": 0.9, "d.png": None}  # threshold 0.6; d: no_ink
    for doc, d in distances.items():
        save_image(scans / doc, page_with([(scribble(SIG_A), 100, 100)]))
        sig = _sig("forged" if d else "no_ink", bbox=(100.0, 100.0, 340.0, 190.0), page_size=(800, 600),
                   distance=d, score=None if d is None else 0.1, nearest_reference="alice/1.png")
        write_report(out, replace(_report(sig), document=DocumentInfo(doc, sha256_file(scans / doc), 1)))
    result = write_review(out, scans, refs, out / "review", specimen_reader(None))
    assert [s.document for s in result.sheets] == ["b.png", "c.png", "a.png", "d.png"]
    index = (out / "review" / INDEX_HTML).read_text(encoding="utf-8")
    spots = [index.index(f"{d}.png.sig1.png") for d in "bcad"]
    assert spots == sorted(spots)
    assert "closest calls" in index


def test_cli_review_exit_codes(batch: dict[str, Path], verifier_manifest: Path, tmp_path: Path):
    out = _run(batch, verifier_manifest)
    runner = CliRunner()
    args = ["review", str(out), "--scans", str(batch["scans"]), "--refs", str(batch["refs"])]
    r = runner.invoke(cli, args)
    assert r.exit_code == 0, r.output
    assert "5 reports" in r.output and (out / "review" / INDEX_HTML).is_file()
    (batch["scans"] / "unsigned.jpg").unlink()  # unsigned: nothing to render, still not a problem
    save_image(batch["scans"] / "sub" / "bob_form.png", page_with([]))
    r = runner.invoke(cli, [*args, "--all", "--to", str(tmp_path / "elsewhere")])
    assert r.exit_code == 1 and "not reviewed: sub/bob_form.png" in r.output
    assert (tmp_path / "elsewhere" / INDEX_HTML).is_file()
    (tmp_path / "a-file").write_text("")
    r = runner.invoke(cli, [*args, "--to", str(tmp_path / "a-file" / "review")])
    assert r.exit_code == 2 and "cannot write the review to" in r.output
    (tmp_path / "empty").mkdir()
    r = runner.invoke(cli, ["review", str(tmp_path / "empty"), "--scans", str(batch["scans"]),
                            "--refs", str(batch["refs"])])
    assert r.exit_code == 2 and "holds no sigpipe report" in r.output


def test_the_detector_is_loaded_only_for_a_page_reference(tmp_path: Path):
    from pipeline_doubles import InkBlobDetector

    from sigpipe.pipeline.flow import specimen_loader
    from sigpipe.pipeline.review import LazyLoader

    made = []

    def make() -> object:
        made.append(1)
        return specimen_loader(InkBlobDetector())

    read = specimen_reader(LazyLoader(make))  # type: ignore[arg-type]
    [crop] = read(save_image(tmp_path / "crop.png", scribble(SIG_A)))
    assert crop.shape == (90, 240) and made == []
    cheque = page_with([(scribble(SIG_B), 500, 300)], size=(1700, 1400))
    [found] = read(save_image(tmp_path / "page.png", cheque))
    assert made == [1] and found.shape[0] < 200 and found.shape[1] < 400  # the signature, not the page
    read(save_image(tmp_path / "page2.png", cheque))
    assert made == [1]


def test_a_second_review_removes_the_sheets_it_no_longer_lists(batch: dict[str, Path], verifier_manifest: Path,
                                                               tmp_path: Path):
    out = _run(batch, verifier_manifest)
    to = tmp_path / "sheets"
    to.mkdir()
    (to / "scan.sig1.png").write_bytes(b"not ours: no index.html here yet")
    full = write_review(out, batch["scans"], batch["refs"], to, specimen_reader(None), everything=True)
    assert (to / "scan.sig1.png").exists()  # the first review into a folder removes nothing
    (to / "notes.png").write_bytes(b"the reviewer's own file")
    part = write_review(out, batch["scans"], batch["refs"], to, specimen_reader(None))
    assert len(part.sheets) < len(full.sheets)
    on_disk = {p.relative_to(to).as_posix() for p in to.rglob("*.png")}
    assert on_disk == {s.file for s in part.sheets} | {"notes.png"}


def test_a_usage_error_writes_and_removes_nothing(batch: dict[str, Path], verifier_manifest: Path, tmp_path: Path):
    out = _run(batch, verifier_manifest)
    to = tmp_path / "sheets"
    first = write_review(out, batch["scans"], batch["refs"], to, specimen_reader(None), everything=True)
    before = {p.name: p.read_bytes() for p in to.rglob("*") if p.is_file()}
    assert len(first.sheets) == 3 and INDEX_HTML in before
    (tmp_path / "typo").mkdir()
    r = CliRunner().invoke(cli, ["review", str(tmp_path / "typo"), "--scans", str(batch["scans"]), "--refs",
                                 str(batch["refs"]), "--to", str(to)])
    assert r.exit_code == 2 and "holds no sigpipe report" in r.output
    assert {p.name: p.read_bytes() for p in to.rglob("*") if p.is_file()} == before  # the earlier review intact
    assert not (tmp_path / "typo" / "review").exists()


def test_a_link_planted_at_out_review_is_not_written_through(batch: dict[str, Path], verifier_manifest: Path,
                                                              tmp_path: Path):
    """``OUT/review`` a link to another folder: the review overwrote that folder's index.html and removed its
    files as stale sheets. ``run`` refuses links planted in OUT; so does ``review`` now, unless ``--to`` names it."""
    out = _run(batch, verifier_manifest)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "index.html").write_text("precious")
    (victim / "important.sig1.png").write_bytes(b"keep")
    (out / "review").symlink_to(victim, target_is_directory=True)
    args = ["review", str(out), "--scans", str(batch["scans"]), "--refs", str(batch["refs"])]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 2 and "is a symbolic link" in r.output
    assert sorted(p.name for p in victim.iterdir()) == ["important.sig1.png", "index.html"]
    assert (victim / "index.html").read_text() == "precious"


def test_edited_truncated_or_unwritable_reports_are_listed_and_the_rest_reviewed(batch: dict[str, Path],
                                                                                 verifier_manifest: Path,
                                                                                 tmp_path: Path):
    out = _run(batch, verifier_manifest)
    letter = out / "alice_letter.pdf.json"
    data = json.loads(letter.read_text())
    data["signatures"][0]["page_size"] = [0, 0]  # no run writes that: it must not divide by zero
    letter.write_text(json.dumps(data))
    form = out / "sub" / "bob_form.png.json"
    data = json.loads(form.read_text())
    data["settings"]["dpi"] = 5000
    form.write_text(json.dumps(data))
    multi = out / "sub" / "deeper" / "multi.TIF.json"
    multi.write_text(multi.read_text()[:300])  # truncated, as a crash of an editor would leave it
    result = write_review(out, batch["scans"], batch["refs"], tmp_path / "r", specimen_reader(None), everything=True)
    problems = dict(result.problems)
    assert set(problems) == {"alice_letter.pdf", "sub/bob_form.png", "sub/deeper/multi.TIF"}
    assert "impossible values" in problems["alice_letter.pdf"] and "dpi" in problems["sub/bob_form.png"]
    assert "cannot be read" in problems["sub/deeper/multi.TIF"]
    assert result.reports == 5 and result.unsigned == ("unsigned.jpg",)
    r = CliRunner().invoke(cli, ["review", str(out), "--scans", str(batch["scans"]), "--refs", str(batch["refs"]),
                                 "--to", str(tmp_path / "cli")])
    assert r.exit_code == 1 and "not reviewed: sub/deeper/multi.TIF" in r.output


def test_names_that_are_not_utf8_and_names_too_long_for_a_sheet(batch: dict[str, Path], verifier_manifest: Path,
                                                                 tmp_path: Path):
    import os

    scans = tmp_path / "odd"
    sig = page_with([(scribble(SIG_A), 300, 300)])
    latin1 = os.fsdecode(b"caf\xe9.png")  # a Latin-1 name from an old share: reports write it as caf\xe9.png
    save_image(scans / latin1, sig)
    long_name = "x" * (250 - len(".png")) + ".png"  # its report's name fits in 255 bytes, its sheet's does not
    save_image(scans / long_name, sig)
    ref_dir = batch["refs"] / "alice"
    (ref_dir / "a1.png").rename(ref_dir / os.fsdecode(b"a\xe91.png"))
    run_batch(RunConfig(scans=scans, refs=batch["refs"], out=tmp_path / "out", cache=batch["cache"],
                        progress=False), DoubleModels(verifier_manifest))
    result = write_review(tmp_path / "out", scans, batch["refs"], tmp_path / "r", specimen_reader(None),
                          everything=True)
    assert [s.document for s in result.sheets] == ["caf\\xe9.png"]
    assert result.sheets[0].signature.nearest_reference == "alice/a\\xe91.png"
    assert result.sheets[0].reference_note is None  # the specimen was found under its real name and shown
    assert [d for d, _ in result.problems] == [long_name] and "too long" in result.problems[0][1]


def test_a_reference_file_of_several_signatures_shows_the_nearest(batch: dict[str, Path], verifier_manifest: Path,
                                                                  tmp_path: Path):
    from sigpipe.pipeline.review import first_crop, nearest_crop

    out = _run(batch, verifier_manifest)
    blank = np.full((90, 240), 255, np.uint8)
    shown = []

    def two_pages(path: Path) -> list[np.ndarray]:  # a reference PDF of two pages: a blank one, then the signature
        return [blank, cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)]

    def pick_second(query: np.ndarray, crops: list[np.ndarray]) -> int:
        shown.append(len(crops))
        return 1

    write_review(out, batch["scans"], batch["refs"], tmp_path / "first", two_pages, everything=True,
                 nearest=first_crop)
    result = write_review(out, batch["scans"], batch["refs"], tmp_path / "second", two_pages, everything=True,
                          nearest=pick_second)
    sheet = next(s for s in result.sheets if s.signature.nearest_reference)
    head = cv2.imread(str(tmp_path / "first" / sheet.file), cv2.IMREAD_GRAYSCALE).shape[0] - (300 + 26)

    def reference_panel(folder: str) -> np.ndarray:
        return cv2.imread(str(tmp_path / folder / sheet.file), cv2.IMREAD_GRAYSCALE)[head + 30:, 2 * PANEL_W:]

    assert shown and set(shown) == {2}
    assert (reference_panel("second") < 100).sum() > 100 and (reference_panel("first") < 100).sum() == 0

    class Embeds:  # a verifier whose embedding of an image is its ink and its size
        def embed(self, images: list[np.ndarray]) -> np.ndarray:
            return np.array([[float((im < 128).mean()), im.shape[1] / 100] for im in images])

    made = []
    choose = nearest_crop(lambda: made.append(1) or Embeds())  # type: ignore[arg-type, func-returns-value]
    ink = scribble(SIG_A)
    assert choose(ink, [ink]) == 0 and made == []  # one signature in the file: no verifier needed
    assert choose(ink, [blank, ink[:, :200], ink]) == 2 and made == [1]
    assert choose(blank, [ink, blank]) == 1 and made == [1]


def test_reference_specimens_are_kept_only_a_few_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A night's batch names thousands of people: the review keeps a bounded number of their specimens read (its
    memory grew by a specimen image per person before), and the sheets are the same."""
    from sigpipe.pipeline import review
    from sigpipe.weights import sha256_file

    scans, refs, out = tmp_path / "scans", tmp_path / "refs", tmp_path / "out"
    for person, seed in (("ann", SIG_A), ("bea", SIG_B)):
        save_image(refs / person / "1.png", scribble(seed))
    for i, person in enumerate(("ann", "bea", "ann")):  # ann's specimen is evicted by bea's, then read again
        doc = f"d{i}.png"
        save_image(scans / doc, page_with([(scribble(SIG_A + i), 100, 100)]))
        sig = _sig("forged", bbox=(100.0, 100.0, 340.0, 190.0), page_size=(800, 600), identity=person,
                   nearest_reference=f"{person}/1.png")
        write_report(out, replace(_report(sig, claimed=person), document=DocumentInfo(doc, sha256_file(scans / doc),
                                                                                      1)))
    whole = write_review(out, scans, refs, out / "a", specimen_reader(None))
    reads: list[str] = []

    def counting(path: Path) -> list[np.ndarray]:
        reads.append(path.parent.name)
        return specimen_reader(None)(path)

    monkeypatch.setattr(review, "SPECIMENS_KEPT", 1)
    kept = write_review(out, scans, refs, out / "b", counting)
    assert reads == ["ann", "bea", "ann"]
    assert kept.sheets == whole.sheets and len(kept.sheets) == 3
    for sheet in kept.sheets:
        np.testing.assert_array_equal(cv2.imread(str(out / "a" / sheet.file)), cv2.imread(str(out / "b" / sheet.file)))
    monkeypatch.setattr(review, "SPECIMENS_KEPT", 2)
    reads.clear()
    write_review(out, scans, refs, out / "c", counting)
    assert reads == ["ann", "bea"]


def test_a_close_call_held_for_review_is_not_shown_as_approved(batch: dict[str, Path], verifier_manifest: Path,
                                                               tmp_path: Path):
    """A signature judged genuine in a document held by --accept-score was captioned in green 'genuine' and listed
    with the genuine ones: it read as approved. It now says why it is held and comes before the genuine."""
    from sigpipe.pipeline.review import Sheet, caption_lines, held_for

    run_batch(RunConfig(scans=batch["scans"], refs=batch["refs"], out=batch["out"], claims=batch["claims"],
                        cache=batch["cache"], progress=False, accept_score=0.999999), DoubleModels(verifier_manifest))
    result = write_review(batch["out"], batch["scans"], batch["refs"], tmp_path / "r", specimen_reader(None),
                          everything=True)
    held = [s for s in result.sheets if s.held]
    assert held and all(s.signature.verdict == "genuine" and s.document_verdict == "needs_review" for s in held)
    assert all("under the --accept-score bar 0.999999" in s.held for s in held)
    orders = [s.order for s in result.sheets]
    assert orders == sorted(orders) and 3 in orders  # held: after forged/unknown/no_reference, before genuine
    index = (tmp_path / "r" / INDEX_HTML).read_text(encoding="utf-8")
    assert index.count('<tr class="held">') == len(held) and "tr.held td:first-child" in index
    # read aloud (a bank's tools must pass an accessibility review): the page's language, the table's headers,
    # and each sheet named, not "sheet"
    assert '<html lang="en">' in index and index.count('<th scope="col">') == 3
    first = result.sheets[0]
    assert (f'alt="review sheet of {first.document}, page {first.signature.page}, signature {first.number}: '
            f'{first.signature.verdict}, the signature beside its nearest reference"') in index
    # a claimed person's signature missing holds the document too, and says so; a plain genuine one is not held
    one_of_two = _report(_sig("genuine"), claimed=("alice", "bob"))
    why = held_for(one_of_two.signatures[0], one_of_two)
    assert why == "held for review with its document: a claimed person's signature is missing (bob)"  # which: named
    from sigpipe.pipeline.claims import Mandate
    two_of_three = _report(_sig("genuine"), claimed=Mandate(("alice", "bob", "carol"), 2))  # a company's mandate
    assert held_for(two_of_three.signatures[0], two_of_three) == \
        "held for review with its document: fewer than 2 of the claimed people signed"
    assert held_for(_sig("genuine"), _report(_sig("genuine"))) is None
    from sigpipe.pipeline.review import _claim_text  # a cheque claimed by account: the sheet names the account
    assert _claim_text(replace(two_of_three, account="0012-34")) == "account 0012-34: any 2 of alice, bob, carol"
    assert _claim_text(two_of_three) == "any 2 of alice, bob, carol"
    assert Sheet("d", 1, _sig("genuine"), "genuine", "alice", "f").order == 4
    lines = caption_lines("d.png", 1, _sig("genuine"), "needs_review", "alice", why, specimens=1)
    assert why in lines[1] and "judged on 1 specimen (one: more forgeries pass" in lines[2]
    # one-to-many: the closest person is not who signed it
    lines = caption_lines("d.png", 1, _sig("unknown_signer", distance=0.9), "needs_review", None)
    assert lines[1].startswith("unknown_signer  closest enrolled person: alice (beyond their threshold")


def test_a_no_ink_signature_is_not_said_to_lack_references(batch: dict[str, Path], verifier_manifest: Path,
                                                           tmp_path: Path):
    out = _run(batch, verifier_manifest)
    path = next(p for p in sorted(out.rglob("*.json")) if (r := read_report(p)) is not None and r.signatures
                and r.signatures[0].nearest_reference)
    report = read_report(path)
    assert report is not None
    sig = replace(report.signatures[0], verdict="no_ink", distance=None, threshold=None, score=None,
                  nearest_reference=None)
    write_report(out, DocumentReport.success(report.document, report.claimed_identity, [sig, *report.signatures[1:]],
                                             report.models, report.references, report.settings))
    result = write_review(out, batch["scans"], batch["refs"], tmp_path / "r", specimen_reader(None), everything=True)
    [sheet] = [s for s in result.sheets if s.document == report.document.path and s.number == 1]
    assert sheet.reference_note == "not compared: no ink the verifier could see"


def test_a_sheet_shows_every_specimen_of_the_person_not_only_the_closest(batch: dict[str, Path],
                                                                        verifier_manifest: Path, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch):
    """The reference panel showed the closest specimen alone while the verdict weighs them all: an examiner saw the
    same hand there and a red 'forged'. A row under the panels now shows the person's specimens (an unreadable one
    says so); a sheet without a reference has the panels alone."""
    import shutil

    from sigpipe.pipeline import review
    from sigpipe.pipeline.review import STRIP_SHOWN, specimen_strip

    out = _run(batch, verifier_manifest)
    shutil.copyfile(batch["refs"] / "alice" / "a1.png", batch["refs"] / "alice" / "a2.png")  # after the run
    (batch["refs"] / "alice" / "a3.png").write_bytes(b"not an image")
    result = write_review(out, batch["scans"], batch["refs"], tmp_path / "r", specimen_reader(None), everything=True)
    heights: dict[str, set[int]] = {}
    for s in result.sheets:
        person = (s.signature.nearest_reference or "-").split("/")[0]
        heights.setdefault(person, set()).add(cv2.imread(str(tmp_path / "r" / s.file)).shape[0])
    assert set(heights) == {"alice", "-"} and all(len(h) == 1 for h in heights.values())
    strip = specimen_strip("alice", [("alice/a1.png", np.zeros((40, 90), np.uint8)), ("alice/a3.png", None)], 3,
                           "alice/a1.png")
    assert heights["alice"] == {heights["-"].pop() + strip.shape[0]}
    many = specimen_strip("eve", [(f"eve/{i}.png", np.zeros((40, 90), np.uint8)) for i in range(12)], 12, None)
    assert many.shape == strip.shape and STRIP_SHOWN == 8
    # a person of many specimens: the first ones and, wherever it sorts, the closest
    for i in range(1, 10):
        shutil.copyfile(batch["refs"] / "alice" / "a1.png", batch["refs"] / "alice" / f"a0{i}.png")
    rows: list[list[str]] = []
    real = review.specimen_strip
    monkeypatch.setattr(review, "specimen_strip",
                        lambda person, items, total, closest: rows.append([n for n, _ in items]) or real(
                            person, items, total, closest))
    write_review(out, batch["scans"], batch["refs"], tmp_path / "r2", specimen_reader(None), everything=True)
    assert rows and all(r == [f"alice/a0{i}.png" for i in range(1, 8)] + ["alice/a1.png"] for r in rows)


def test_a_claimed_name_without_references_shows_the_folder_it_likely_means(batch: dict[str, Path],
                                                                            verifier_manifest: Path, tmp_path: Path):
    """The run warns 'REFS has ...: the same person?' for a claim without references; the sheet said only 'no
    reference specimen'. A hint, never a match: the verdict stays no_reference."""
    import shutil

    out = _run(batch, verifier_manifest)  # carol is claimed for sub/bob_form.png and has no folder
    (batch["refs"] / "Carol").mkdir()
    shutil.copyfile(batch["refs"] / "alice" / "a1.png", batch["refs"] / "Carol" / "c1.png")
    result = write_review(out, batch["scans"], batch["refs"], tmp_path / "r", specimen_reader(None), everything=True)
    [sheet] = [s for s in result.sheets if s.signature.verdict == "no_reference"]
    assert sheet.reference_note == ("no reference specimen; REFS has 'Carol': the same person? (claims must name "
                                    "the folder exactly)")
    assert html.escape(sheet.reference_note) in (tmp_path / "r" / INDEX_HTML).read_text(encoding="utf-8")


def test_find_person_lists_what_in_out_names_them(batch: dict[str, Path], verifier_manifest: Path, tmp_path: Path):
    """Erasing a customer's data: a data-protection review found no way to know which reports and review sheets
    name a person once their references are gone."""
    from click.testing import CliRunner

    from sigpipe.cli import cli

    out = _run(batch, verifier_manifest)
    elsewhere = tmp_path / "sheets"
    write_review(out, batch["scans"], batch["refs"], out / "review", specimen_reader(None), everything=True)
    write_review(out, batch["scans"], batch["refs"], elsewhere, specimen_reader(None), everything=True)
    reports = _reports(out)
    naming = sorted(d for d, r in reports.items()
                    if "alice" in {r.claimed_identity, *(x.identity for x in r.signatures)})
    assert "alice_letter.pdf" in naming
    r = CliRunner().invoke(cli, ["find-person", "alice", str(out), "--review", str(elsewhere)])
    assert r.exit_code == 0, r.output
    listed = set(r.stdout.split())
    for d in naming:
        assert str(out / f"{d}.json") in listed
        assert str(out / "review" / f"{d}.sig1.png") in listed and str(elsewhere / f"{d}.sig1.png") in listed
    assert str(out / "summary.csv") in listed
    assert str(out / "review" / "index.html") in listed and str(elsewhere / "index.html") in listed
    assert not any("bob_form" in f for f in listed if "alice" not in f and f.endswith(".json")
                   and "bob_form" not in " ".join(naming))  # only what names her
    # another night's review folder holds a sheet of the same document name, of someone else: not hers
    other = tmp_path / "other-night"
    other.mkdir()
    (other / "alice_letter.pdf.sig1.png").write_bytes(b"png")
    (other / "index.html").write_text('<table><tr class="forged"><td>alice_letter.pdf</td><td>identity: carol<br>'
                                      '</td><td><a href="alice_letter.pdf.sig1.png"></a></td></tr></table>')
    r = CliRunner().invoke(cli, ["find-person", "alice", str(out), "--review", str(other)])
    assert r.exit_code == 0 and not any(str(other) in f for f in r.stdout.split())
    summary = json.loads((out / "summary.json").read_text())
    (out / "summary.json").write_text(json.dumps({**summary, "warnings": ["REFS folders 'alice' and 'alicia' hold "
                                                                         "the same files"]}))
    r = CliRunner().invoke(cli, ["find-person", "alice", str(out)])
    assert str(out / "summary.json") in r.stdout.split()
    r = CliRunner().invoke(cli, ["find-person", "alice", str(batch["scans"])])  # a mistyped OUT: not 'nothing'
    assert r.exit_code == 2 and "holds no sigpipe report" in r.output
    r = CliRunner().invoke(cli, ["find-person", " ", str(out)])
    assert r.exit_code == 2 and "give a person's name" in r.output
    r = CliRunner().invoke(cli, ["find-person", "nobody-here", str(out)])
    assert r.exit_code == 1 and "names 'nobody-here'" in r.output
    (out / "damaged.png.json").write_text("{")
    r = CliRunner().invoke(cli, ["find-person", "alice", str(out)])
    assert r.exit_code == 2 and "cannot read" in r.output and "damaged.png.json" in r.output


def test_find_person_matches_whole_names_only(tmp_path: Path):
    """A retest: 'ann' took 'mary ann's review sheets (a space read as a word's edge), and a name holding a quote
    was missed in summary.json (searched as JSON text, where it is escaped)."""
    import html as html_module

    from sigpipe.pipeline.review import _json_names, _listed_beside

    rows = [("a.png.sig1.png", "identity: mary ann<br>", "claimed: mary ann</td>"),
            ("b.png.sig1.png", "identity: ann<br>", "claimed: account 11, amount 5.00: any 1 of bob, ann</td>"),
            ("c.png.sig1.png", "identity: bob<br>reference: ann/01.png<br>", "claimed: -</td>")]
    (tmp_path / "index.html").write_text("<table>" + "".join(
        f'<tr class="forged"><td>{c}</td><td>{i}</td><td><a href="{html_module.escape(f)}"></a></td></tr>'
        for f, i, c in rows) + "</table>")
    for f, _, _ in rows:
        (tmp_path / f).write_bytes(b"png")
    assert sorted(p.name for p in _listed_beside(tmp_path, "ann")) == ["b.png.sig1.png", "c.png.sig1.png",
                                                                      "index.html"]
    assert [p.name for p in _listed_beside(tmp_path, "mary ann")] == ["a.png.sig1.png", "index.html"]
    assert _listed_beside(tmp_path, "mary") == []
    summary = {"warnings": ["REFS folders 'd\"q' and 'x' hold the same files"], "suspect_references": [
        {"person": "ann", "file": "/refs/ann/01.png"}]}
    assert _json_names(summary, 'd"q') and _json_names(summary, "ann") and not _json_names(summary, "an")
    assert not _json_names({"warnings": ["'mary ann' has 2 specimen(s) more than once"]}, "ann")


def test_a_review_folder_that_ignores_case_or_refuses_names(batch: dict[str, Path], verifier_manifest: Path,
                                                             tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Into a Windows share or a vfat drive (a filesystem audit): Bob.png's sheets were written over bob.png's, and
    the index showed one document's signature as the other's; a sheet name the share refuses (a:b.png) stopped the
    whole review. A document that would share sheets with another is listed, not reviewed; a refused sheet name is
    listed and the rest reviewed; the stale-sheet sweep does not take a sheet its file system kept under the earlier
    case for one this review wrote."""
    import errno

    from sigpipe.pipeline import review

    scans = tmp_path / "share"
    for name, sig in (("Bob.png", SIG_B), ("bob.png", SIG_A), ("a:b.png", SIG_A)):
        save_image(scans / name, page_with([(scribble(sig), 300, 300)]))
    out = tmp_path / "out"
    run_batch(RunConfig(scans=scans, refs=batch["refs"], out=out, cache=batch["cache"], progress=False),
              DoubleModels(verifier_manifest))
    monkeypatch.setattr(review, "name_folding", lambda to: (str.lower, "case"))
    real = review.write_bytes_atomic

    def share(path: Path, data: bytes) -> None:
        if ":" in path.name:
            raise OSError(errno.EINVAL, "Invalid argument", str(path))
        real(path, data)

    monkeypatch.setattr(review, "write_bytes_atomic", share)
    to = tmp_path / "r"
    result = write_review(out, scans, batch["refs"], to, specimen_reader(None), everything=True)
    assert [s.document for s in result.sheets] == ["Bob.png"]
    problems = dict(result.problems)
    assert "the same files as Bob.png's" in problems["bob.png"] and "ignores case" in problems["bob.png"]
    assert "refuses its sheet's name 'a:b.png.sig1.png'" in problems["a:b.png"]
    # the file system kept the earlier sheet's name (bob.png.sig1.png) when this one was written over it
    (to / "Bob.png.sig1.png").rename(to / "bob.png.sig1.png")
    write_review(out, scans, batch["refs"], to, specimen_reader(None), everything=True)
    assert (to / "bob.png.sig1.png").is_file()


def test_failures_without_a_report_file_are_listed_with_the_failed(batch: dict[str, Path], verifier_manifest: Path,
                                                                   tmp_path: Path):
    """A document whose report the file system refused (a name a Windows share forbids, one that is another's there)
    has no report file: the review said "0 failed" of a run with three such failures (a filesystem audit)."""
    out = _run(batch, verifier_manifest)
    summary = json.loads((out / "summary.json").read_text())
    long_name = "x" * 300 + ".png"  # its report's name too long for the file system: the review stopped (a retest)
    for doc in ("a:b.png", long_name, "Unsigned.jpg"):
        summary["failures"].append({"document": doc, "kind": "output_write", "message": "no report: refused"})
    (out / "summary.json").write_text(json.dumps(summary))
    # where OUT ignores case, Unsigned.jpg's report file is unsigned.jpg's: it holds another document's report
    (out / "Unsigned.jpg.json").write_bytes((out / "unsigned.jpg.json").read_bytes())
    result = write_review(out, batch["scans"], batch["refs"], tmp_path / "r", specimen_reader(None))
    for doc in ("a:b.png", long_name, "Unsigned.jpg"):
        assert (doc, "output_write", "no report: refused") in result.failed
    assert [d for d, _, _ in result.failed].count("broken.pdf") == 1  # one with a report: listed once
    assert "a:b.png" in (tmp_path / "r" / INDEX_HTML).read_text()


def test_a_claimed_document_without_a_signature_is_listed_first_with_its_claim(batch: dict[str, Path],
                                                                               verifier_manifest: Path):
    """A cheque presented as signed on which nothing was found (not signed, or signed where the detector cannot
    see) was listed among the unsigned by name only, after the failures: no claim, no way to open it."""
    batch["claims"].write_text(batch["claims"].read_text() + "unsigned.jpg,bob\n")
    out = _run(batch, verifier_manifest)
    assert json.loads((out / "summary.json").read_text())["claimed_unsigned"] == ["unsigned.jpg"]
    result = write_review(out, batch["scans"], batch["refs"], out / "review", specimen_reader(None))
    assert result.claimed_unsigned == (("unsigned.jpg", "bob"),) and result.unsigned == ("unsigned.jpg",)
    index = (out / "review" / INDEX_HTML).read_text(encoding="utf-8")
    claimed = index.index("Claimed, but no signature found")
    assert claimed < index.index("Failed documents") and "Unsigned documents" not in index  # none unclaimed left
    link = (batch["scans"] / "unsigned.jpg").absolute().as_uri()
    assert f'<a href="{link}">unsigned.jpg</a><br>claimed: bob</td>' in index[claimed:]
    r = CliRunner().invoke(cli, ["find-person", "bob", str(out)])  # the index names him: erasing him finds it
    assert str(out / "review" / INDEX_HTML) in r.stdout.split()
    r = CliRunner().invoke(cli, ["review", str(out), "--scans", str(batch["scans"]), "--refs", str(batch["refs"])])
    assert "1 unsigned (1 of them claimed)" in r.stdout


def test_documents_the_claims_file_left_out_and_judged_genuine_one_to_many_are_listed(batch: dict[str, Path],
                                                                                       verifier_manifest: Path):
    """A fraud audit: a claims row lost (or a name in other letter case) lets another enrolled customer's signature
    pass as genuine one-to-many, and nothing put the document before a reviewer."""
    out = _run(batch, verifier_manifest)
    reports = _reports(out)
    multi = reports["sub/deeper/multi.TIF"]
    assert multi.verdict == "genuine" and not multi.claimed_identity
    result = write_review(out, batch["scans"], batch["refs"], out / "review", specimen_reader(None))
    assert result.unclaimed_genuine == (("sub/deeper/multi.TIF", ("alice",)),)
    index = (out / "review" / INDEX_HTML).read_text(encoding="utf-8")
    assert "Not in the run's claims file, and genuine for whoever they matched" in index
    assert "multi.TIF</a><br>identity: alice<br></td>" in index
    # without a claims file one-to-many is what was asked for: nothing listed
    run_batch(RunConfig(scans=batch["scans"], refs=batch["refs"], out=out, cache=batch["cache"], progress=False),
              DoubleModels(verifier_manifest))
    assert write_review(out, batch["scans"], batch["refs"], out / "review", specimen_reader(None)).unclaimed_genuine \
        == ()
