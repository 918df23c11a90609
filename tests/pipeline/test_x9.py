"""Image cash letters (X9.37): reading items, splitting them into documents, and running them by account.

The files are built here from the record layouts (positions as the standard gives them, 1-based), independently of
the reader's slicing: a field placed one position off fails these tests."""

import csv
import hashlib
import io
import json
import stat
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from pipeline_doubles import SIG_A, DoubleModels, page_with, scribble

from sigpipe.cli import cli
from sigpipe.errors import InputError
from sigpipe.pipeline.errors import NoDocumentsError
from sigpipe.pipeline.report import load_schema
from sigpipe.pipeline.runner import RunConfig, run_batch
from sigpipe.pipeline.x9 import X9Error, read_items, split_files


def fixed(fields: dict[int, str], length: int = 80) -> str:
    """A record of ``length`` characters, blank-filled, with each value at its 1-based start position."""
    chars = [" "] * length
    for start, value in fields.items():
        chars[start - 1:start - 1 + len(value)] = value
    assert len(chars) == length
    return "".join(chars)


def record(text: str, enc: str, binary: bytes = b"") -> bytes:
    body = text.encode(enc) + binary
    return len(body).to_bytes(4, "big") + body


def check_detail(on_us: str, amount: int, seq: str, aux: str = "") -> str:
    return fixed({1: "25", 3: aux.rjust(15), 18: " ", 19: "07200001", 27: "3", 28: on_us.rjust(20),
                  48: f"{amount:010d}", 58: seq.rjust(15), 73: "G", 75: "1", 76: "Y", 77: "00", 80: "B"})


def view_detail(side: str, fmt: str = "00", compression: str = "00", size: int = 0) -> str:
    return fixed({1: "50", 3: "1", 4: "071000505", 13: "20261204", 21: fmt, 23: compression, 25: f"{size:07d}",
                  32: side, 33: "00", 35: "0"})


def view_data(seq: str, image: bytes, enc: str, key: str = "", signature: bytes = b"") -> bytes:
    head = fixed({1: "52", 3: "071000505", 12: "20261204", 20: "01", 22: seq.rjust(15), 85: "0",
                  86: "0000000000000000", 102: f"{len(key):04d}"}, 105)
    text = head + key
    body = text.encode(enc) + f"{len(signature):05d}".encode(enc) + signature + f"{len(image):07d}".encode(enc) \
        + image
    return len(body).to_bytes(4, "big") + body


def g4_tiff(page: np.ndarray) -> bytes:
    """A page as a bitonal TIFF in CCITT Group 4, as cheque images travel in X9 files."""
    buf = io.BytesIO()
    Image.fromarray(page).convert("1").save(buf, "TIFF", compression="group4", dpi=(200, 200))
    return buf.getvalue()


def x9_file(items: list[dict], enc: str = "cp037") -> bytes:
    """An image cash letter of ``items`` (on_us, amount, seq, aux, views: [(side, format, image bytes)])."""
    out = [record(fixed({1: "01", 3: "03", 5: "T", 6: "071000505", 15: "071000505", 24: "20261204", 32: "2359"}),
                  enc),
           record(fixed({1: "10", 3: "01", 5: "071000505", 14: "071000505", 23: "20261204"}), enc),
           record(fixed({1: "20", 3: "01", 5: "071000505", 14: "071000505", 23: "20261205", 31: "20261204"}), enc)]
    for it in items:
        out.append(record(check_detail(it["on_us"], it["amount"], it["seq"], it.get("aux", "")), enc))
        out.append(record(fixed({1: "26", 3: "1", 4: "071000505"}), enc))  # addendum A
        for side, fmt, data in it.get("views", []):
            out.append(record(view_detail(side, fmt, size=len(data)), enc))
            out.append(view_data(it["seq"], data, enc, key=it.get("key", ""), signature=it.get("sig", b"")))
    out.append(record(fixed({1: "61", 3: "1", 4: "071000505"}), enc))  # a credit, with an image of its own
    out.append(record(view_detail("0"), enc))
    out.append(view_data("999", b"deposit ticket", enc))
    out += [record(fixed({1: "70", 3: "0003"}), enc), record(fixed({1: "90", 3: "000001"}), enc),
            record(fixed({1: "99", 3: "000001"}), enc)]
    return b"".join(out)


@pytest.fixture(scope="module")
def cheques() -> dict[str, bytes]:
    a = scribble(SIG_A)
    return {"front": g4_tiff(page_with([(a, 300, 400)])), "back": g4_tiff(page_with([])),
            "jpeg": _jpeg(page_with([(a, 100, 100)]))}


def _jpeg(page: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(page).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def items(c: dict[str, bytes]) -> list[dict]:
    return [
        {"on_us": "12-3456/1001", "amount": 12345, "seq": "000000000000101",
         "views": [("0", "00", c["front"]), ("1", "00", c["back"])], "key": "KEY-1", "sig": b"\x01\x02\x03"},
        {"on_us": "987654/", "aux": "5001", "amount": 100, "seq": "102", "views": [("0", "21", c["jpeg"])]},
        {"on_us": "55**12/77", "amount": 7, "seq": "103", "views": [("0", "23", b"jbig bytes")]},  # JBIG: not read
        {"on_us": "12-3456/1002", "amount": 50000, "seq": "102", "views": [("0", "00", c["front"])]},
    ]


@pytest.mark.parametrize("enc", ["cp037", "ascii"])
def test_items_are_read_with_their_fields_and_images(tmp_path: Path, cheques: dict[str, bytes], enc: str):
    f = tmp_path / "day.x937"
    f.write_bytes(x9_file(items(cheques), enc))
    got = list(read_items(f))
    assert [(i.sequence, i.routing, i.on_us, i.account, i.serial, i.amount, i.business_date) for i in got] == [
        ("000000000000101", "072000013", "12-3456/1001", "12-3456", "1001", "123.45", "20261205"),
        ("102", "072000013", "987654/", "987654", "5001", "1.00", "20261205"),  # a business cheque's serial
        ("103", "072000013", "55**12/77", "55**12", "77", "0.07", "20261205"),
        ("102", "072000013", "12-3456/1002", "12-3456", "1002", "500.00", "20261205"),
    ]
    first = got[0]
    assert first.view("front").data == cheques["front"] and first.view("back").data == cheques["back"]
    assert (first.view("front").format, first.view("front").compression) == ("00", "00")
    assert got[1].view("front").format == "21" and got[1].view("back") is None
    assert got[3].view("front").data == cheques["front"]  # the credit's image after it is not the cheque's


def folder(path: Path) -> str:
    """The folder a split writes a file's cheques to: its stem, made safe, and its sha256's first 8 hex digits."""
    return path.stem.replace(" ", "_") + "-" + hashlib.sha256(path.read_bytes()).hexdigest()[:8]


def claim_rows(out: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO((out / "claims.csv").read_text())))


def test_split_writes_front_images_and_claims_by_account(tmp_path: Path, cheques: dict[str, bytes]):
    f = tmp_path / "in" / "day 1.x937"
    f.parent.mkdir()
    f.write_bytes(x9_file(items(cheques)))
    out, d = tmp_path / "scans", folder(f)
    r = split_files([f, tmp_path / "in" / ".." / "in" / "day 1.x937"], out)  # the same file twice: read once
    assert r.documents == [f"{d}/000000000000101.tif", f"{d}/102.jpg", f"{d}/102_2.tif"]
    assert len(r.skipped) == 1 and "item 103" in r.skipped[0] and "format '23'" in r.skipped[0]
    assert (out / d / "000000000000101.tif").read_bytes() == cheques["front"]  # as the file holds it
    assert Image.open(out / d / "000000000000101.tif").size == (800, 600)
    assert [(r["document"], r["account"], r["amount"], r["serial"]) for r in claim_rows(out)] == [
        (f"{d}/000000000000101.tif", "12-3456", "123.45", "1001"), (f"{d}/102.jpg", "987654", "1.00", "5001"),
        (f"{d}/102_2.tif", "12-3456", "500.00", "1002")]
    assert not list(out.rglob("*back*"))  # endorsements are not the account holders' to verify
    assert stat.S_IMODE(out.stat().st_mode) == 0o700  # customers' cheques: the folder it creates is its user's alone
    before = (out / d / "102.jpg").stat().st_mtime_ns
    assert split_files([f], out).documents == r.documents  # split again: the same names, nothing rewritten
    assert (out / d / "102.jpg").stat().st_mtime_ns == before and len(claim_rows(out)) == 3
    # another cash letter of the same name (another folder upstream), split into the same OUT later that night:
    # its cheques get a folder of their own, and the first file's claims are kept (helper: they were overwritten)
    g = tmp_path / "other" / "day 1.x937"
    g.parent.mkdir()
    g.write_bytes(x9_file(items(cheques)[:1], enc="ascii"))
    r2 = split_files([g], out)
    assert r2.documents == [f"{folder(g)}/000000000000101.tif"] and folder(g) != d
    assert [row["document"] for row in claim_rows(out)] == r.documents + r2.documents
    (out / "claims.csv").write_text("document,identity\na.tif,alice\n")  # the user's own: not replaced
    with pytest.raises(InputError, match="is not a claims file that 'sigpipe x9 split' wrote"):
        split_files([g], out)


def test_a_damaged_file_keeps_the_items_before_the_damage(tmp_path: Path, cheques: dict[str, bytes]):
    data = x9_file(items(cheques))
    cut = tmp_path / "cut.x937"
    cut.write_bytes(data[: data.index(cheques["jpeg"]) + 100])  # inside the second item's image
    with pytest.raises(X9Error, match="cut short in record 13"):
        list(read_items(cut))
    other = tmp_path / "notes.x937"
    other.write_bytes(b"\x00\x00\x00\x0cHello world!")
    empty = tmp_path / "empty.x937"
    empty.write_bytes(b"")
    r = split_files([cut, other, empty], tmp_path / "scans")
    assert r.documents == [f"{folder(cut)}/000000000000101.tif"]
    assert len(r.failed) == 3 and r.failed[0].startswith(f"{cut}: cut short in record 13 (")
    assert r.failed[1:] == [f"{other}: not an X9.37 image cash letter (its first record is not a file header, type "
                            "01, in EBCDIC or ASCII)", f"{empty}: empty file: not an X9.37 image cash letter"]
    assert [row["document"] for row in claim_rows(tmp_path / "scans")] == r.documents
    huge = tmp_path / "huge.x937"
    huge.write_bytes(b"\xff\xff\xff\xff01")
    with pytest.raises(X9Error, match="record 1 claims 4294967295 bytes"):
        list(read_items(huge))
    # cut between two records: the missing file control record says so (helper: it passed as complete)
    second = data.index(record(check_detail("987654/", 100, "102", "5001"), "cp037"))
    (tmp_path / "edge.x937").write_bytes(data[:second])
    with pytest.raises(X9Error, match="ends after record 9 without its file control record .type 99.: cut short"):
        assert len(list(read_items(tmp_path / "edge.x937"))) == 1
    r = split_files([tmp_path / "edge.x937"], tmp_path / "edge")
    assert len(r.documents) == 1 and len(r.failed) == 1
    # padding after the file control record, as a transfer in blocks leaves it: the file is complete
    for pad in (b"\x00" * 37, b"\r\n", b"\x40" * 100):
        (tmp_path / "padded.x937").write_bytes(data + pad)
        assert len(list(read_items(tmp_path / "padded.x937"))) == 4
    # one image view record whose lengths are damaged: that cheque is named, the others are read
    at = data.index(cheques["jpeg"]) - 7
    assert data[at:at + 7] == f"{len(cheques['jpeg']):07d}".encode("cp037")
    (tmp_path / "view.x937").write_bytes(data[:at] + "00x0000".encode("cp037") + data[at + 7:])
    r = split_files([tmp_path / "view.x937"], tmp_path / "view")
    assert len(r.documents) == 2 and not r.failed and len(r.skipped) == 2
    assert "item 102 (record 10): no front image (" in r.skipped[0] and "image data length '00x0000' is not a " \
        "number" in r.skipped[0]
    # an amount that is not a number: its cheque is written without one, and the rest of the file is read
    bad = data.replace(b"\xf0" * 7 + "100".encode("cp037") + "102".rjust(15).encode("cp037"),
                       b"\xf0" * 7 + "1A0".encode("cp037") + "102".rjust(15).encode("cp037"))
    assert bad != data
    (tmp_path / "amount.x937").write_bytes(bad)
    r = split_files([tmp_path / "amount.x937"], tmp_path / "amount")
    assert len(r.documents) == 3 and not r.failed and "item 102 (record 10): item amount is not a number" in r.notes[0]
    assert [row["amount"] for row in claim_rows(tmp_path / "amount")] == ["123.45", "", "500.00"]


def test_cheques_of_an_x9_file_run_by_account(tmp_path: Path, cheques: dict[str, bytes], verifier_manifest: Path):
    f = tmp_path / "day.x937"
    f.write_bytes(x9_file(items(cheques)))
    scans = tmp_path / "scans"
    r = CliRunner().invoke(cli, ["x9", "split", str(f), "--out", str(scans)])
    assert r.exit_code == 1, r.output  # an item was not written: said, and the exit code says it
    assert "3 cheque image(s)" in r.stdout and "item 103" in r.stderr
    refs = tmp_path / "refs"
    Image.fromarray(scribble(SIG_A)).save((refs / "alice").mkdir(parents=True) or refs / "alice" / "a1.png")
    cards = tmp_path / "cards.csv"
    cards.write_text("account,identity\n123456,alice\n")
    out = tmp_path / "out"
    s = run_batch(RunConfig(scans=scans, refs=refs, out=out, claims=scans / "claims.csv", signatories=cards,
                            cache=tmp_path / "cache", progress=False), DoubleModels(verifier_manifest))
    reps = {p.relative_to(out).as_posix(): json.loads(p.read_text()) for p in out.rglob("*.json")
            if p.name != "summary.json"}
    for rep in reps.values():
        jsonschema.validate(rep, load_schema())
    d = folder(f)
    tif = reps[f"{d}/000000000000101.tif.json"]
    assert (tif["account"], tif["claimed_identity"], tif["verdict"]) == ("12-3456", "alice", "genuine")
    assert tif["signatures"][0]["page"] == 1
    jpg = reps[f"{d}/102.jpg.json"]  # account 987654 has no signature card
    assert (jpg["status"], jpg["error"]["kind"]) == ("error", "unknown_account")
    assert s.failed == 1 and s.to_dict()["documents"] == 3
    assert "the MICR line was not read" not in jpg["error"]["message"]
    cards.write_text("account,identity\n123456,alice\n987654,alice\n")  # the card is there now, but ...
    claims = (scans / "claims.csv").read_text().replace("987654", "98*654")  # a MICR line not read
    (scans / "claims.csv").write_text(claims)
    s = run_batch(RunConfig(scans=scans, refs=refs, out=out, claims=scans / "claims.csv", signatories=cards,
                            cache=tmp_path / "cache", progress=False), DoubleModels(verifier_manifest))
    jpg = json.loads((out / d / "102.jpg.json").read_text())
    assert jpg["error"]["kind"] == "unknown_account" and "the MICR line was not read where it shows '*'" in \
        jpg["error"]["message"]
    assert s.processed == 1  # the others' reports are kept
    # every cheque on an account the table lacks: no word of REFS having no references (it was not read)
    cards.write_text("account,identity\n5,alice\n")
    s = run_batch(RunConfig(scans=scans, refs=refs, out=tmp_path / "out2", claims=scans / "claims.csv",
                            signatories=cards, cache=tmp_path / "cache", progress=False),
                  DoubleModels(verifier_manifest))
    assert s.failed == 3 and not any("no usable references" in w for w in s.warnings)
    # the cash letter itself given to run: what to do is said
    with pytest.raises(NoDocumentsError, match=r"day.x937 is an image cash letter \(X9.37\): 'sigpipe x9 split'"):
        run_batch(RunConfig(scans=f, refs=refs, out=tmp_path / "out3", cache=tmp_path / "cache", progress=False),
                  DoubleModels(verifier_manifest))


def test_split_with_nothing_to_read_is_an_error(tmp_path: Path):
    other = tmp_path / "a.x937"
    other.write_bytes(b"not x9")
    r = CliRunner().invoke(cli, ["x9", "split", str(other), "--out", str(tmp_path / "o")])
    assert r.exit_code == 1 and "a.x937" in r.stderr and "Traceback" not in r.output
    assert not (tmp_path / "o" / "claims.csv").exists()


def test_a_cash_letter_beside_other_scans_fails_saying_to_split_it(tmp_path: Path, verifier_manifest: Path):
    """A README audit: a cash letter given to `sigpipe run` alone stops the run with the hint, but one lying beside
    other scans was passed over without a word, its cheques never verified."""
    scans, refs = tmp_path / "scans", tmp_path / "refs"
    Image.fromarray(page_with([])).save((scans / "sub").mkdir(parents=True) or scans / "cheque.png")
    Image.fromarray(scribble(SIG_A)).save((refs / "alice").mkdir(parents=True) or refs / "alice" / "a1.png")
    (scans / "sub" / "day.X937").write_bytes(b"\x00" * 100)
    s = run_batch(RunConfig(scans=scans, refs=refs, out=tmp_path / "out", cache=tmp_path / "cache", progress=False),
                  DoubleModels(verifier_manifest))
    (failure,) = s.failures
    assert failure.document == "sub/day.X937" and failure.kind == "unsupported_format"
    assert "image cash letter (X9.37)" in failure.message and "sigpipe x9 split" in failure.message
    (scans / "cheque.png").unlink()  # only the cash letter left: the run stops, saying what to do, as before
    with pytest.raises(NoDocumentsError, match=r"day.X937 is an image cash letter \(X9.37\): 'sigpipe x9 split'"):
        run_batch(RunConfig(scans=scans, refs=refs, out=tmp_path / "out2", cache=tmp_path / "cache", progress=False),
                  DoubleModels(verifier_manifest))
