import csv
import io
import json
import os
import re
import stat
import time
import unicodedata
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import jsonschema
import pytest

from sigpipe.pipeline.claims import (
    Mandate,
    Need,
    SignatoryCard,
    account_key,
    claim_warnings,
    load_claims,
    load_signatories,
    match_documents,
    normalise_claim,
    read_claims,
)
from sigpipe.pipeline.errors import ClaimsError
from sigpipe.pipeline.report import (
    DocumentInfo,
    DocumentReport,
    ReferenceSet,
    RunSettings,
    RunSummary,
    SignatureResult,
    document_verdict,
    load_schema,
    read_report,
    remove_stale_temporaries,
    report_path,
    summary_csv,
    write_report,
)

MODELS = {"detector": "det.v1 0123456789ab", "verifier": "ver.v1 ba9876543210"}
SHA = "ab" * 32
REFS = ReferenceSet(1, 5, "cd" * 32)
SETTINGS = RunSettings(200, "pypdfium2", 0.08)


def sig(verdict: str = "genuine", identity: str | None = "alice", page: int = 1) -> SignatureResult:
    decided = verdict != "no_reference"
    return SignatureResult(
        page=page, bbox=(10.5, 20.0, 110.25, 60.0), page_size=(1654, 2339), dpi=200, detection_confidence=0.93,
        identity=identity, distance=0.41 if decided else None, threshold=0.62 if decided else None,
        score=0.87 if decided else None, verdict=verdict,
        nearest_reference=f"{identity}/2019/03.png" if decided else None,
    )


def reports() -> list[DocumentReport]:
    return [
        DocumentReport.success(DocumentInfo("a/b.pdf", SHA, 2), "alice", [sig(), sig("forged", page=2)], MODELS,
                               REFS, SETTINGS),
        DocumentReport.success(DocumentInfo("c.png", SHA, 1), None, [sig("unknown_signer", "bob")], MODELS),
        DocumentReport.success(DocumentInfo("d.tif", SHA, 3), "carol", [sig("no_reference", "carol")], MODELS,
                               ReferenceSet(0, 0, "ef" * 32), SETTINGS),
        DocumentReport.success(DocumentInfo("e.jpg", SHA, 1), None, [], MODELS),
        DocumentReport.failure(DocumentInfo("f.pdf", None, 0), None, "corrupt_pdf", "not a PDF", MODELS),
    ]


@pytest.mark.parametrize("report", reports(), ids=lambda r: r.document.path)
def test_report_round_trips_and_validates(report: DocumentReport):
    d = json.loads(report.to_json())
    jsonschema.validate(d, load_schema())
    assert DocumentReport.from_dict(d) == report
    assert list(d) == ["schema_version", "document", "claimed_identity", "status", "error", "signatures",
                       "verdict", "models", "references", "settings", "software"]
    assert d["schema_version"] == "1"


def test_a_report_names_the_software_that_made_it():
    """An auditor reproducing a report needs the libraries' versions (the package version alone said 0.1.0 for
    every release); a report of an older release has none, and is read back without the current ones."""
    import numpy
    import onnxruntime
    import pypdfium2.version

    import sigpipe

    software = reports()[0].to_dict()["software"]
    assert software["sigpipe"] == sigpipe.__version__ and software["numpy"] == numpy.__version__
    assert software["onnxruntime"] == onnxruntime.__version__
    assert software["pypdfium2"] == str(pypdfium2.version.PYPDFIUM_INFO)
    assert software["python"].count(".") == 2 and set(software) >= {"opencv-python", "openvino", "pillow"}
    old = {k: v for k, v in reports()[0].to_dict().items() if k != "software"}
    jsonschema.validate(old, load_schema())
    assert DocumentReport.from_dict(old).software == {} and "software" not in DocumentReport.from_dict(old).to_dict()
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**reports()[0].to_dict(), "software": {"numpy": 2}}, load_schema())


def test_reports_of_older_releases_still_read_and_validate():
    """Reports written before ``references`` and ``settings`` existed: valid schema-1 reports, read back with
    both None (so a re-run redoes them once)."""
    d = reports()[0].to_dict()
    old = {k: v for k, v in d.items() if k not in ("references", "settings")}
    jsonschema.validate(old, load_schema())
    r = DocumentReport.from_dict(old)
    assert (r.references, r.settings) == (None, None) and r.signatures == reports()[0].signatures


def test_schema_rejects_inconsistent_reports():
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    good = reports()[0].to_dict()
    bad = [
        {**good, "verdict": "maybe"},
        {**good, "status": "error"},  # error status without an error object
        {**good, "signatures": [{**good["signatures"][0], "verdict": "genuine", "distance": None}]},
        {**good, "document": {**good["document"], "sha256": "xyz"}},
        {**good, "extra": 1},
        {k: v for k, v in good.items() if k != "models"},
        {**good, "references": {**good["references"], "sha256": "short"}},
        {**good, "references": {"people": 1, "specimens": 5}},
        {**good, "settings": {**good["settings"], "pdf_backend": "ghostscript"}},
        {**good, "settings": {**good["settings"], "extra": 1}},
    ]
    for b in bad:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(b, schema)


@pytest.mark.parametrize("verdicts,expected", [
    ([], "unsigned"), (["genuine"], "genuine"), (["genuine", "forged"], "forged"),
    (["genuine", "unknown_signer"], "needs_review"), (["no_reference"], "needs_review"),
    (["forged", "no_reference"], "forged"), (["genuine", "genuine"], "genuine"),
])
def test_document_verdict(verdicts: list[str], expected: str):
    sigs = [sig(v) for v in verdicts]
    assert document_verdict(sigs) == expected
    assert document_verdict(sigs, failed=True) == "error"


def test_accept_score_sends_close_calls_to_review():
    from dataclasses import replace

    close = replace(sig("genuine"), score=0.55)  # sig() scores 0.87
    assert document_verdict([sig("genuine"), close]) == "genuine"
    assert document_verdict([sig("genuine"), close], accept_score=0.6) == "needs_review"
    assert document_verdict([sig("genuine"), close], accept_score=0.55) == "genuine"  # at least the score
    assert document_verdict([close, sig("forged")], accept_score=0.6) == "forged"  # a forgery stays one
    assert document_verdict([], accept_score=0.6) == "unsigned"
    settings = RunSettings(200, "pypdfium2", 0.08, accept_score=0.6)
    r = DocumentReport.success(DocumentInfo("c.pdf", SHA, 1), "alice", [close], MODELS, REFS, settings)
    d = json.loads(r.to_json())
    assert d["verdict"] == "needs_review" and d["settings"]["accept_score"] == 0.6
    jsonschema.validate(d, load_schema())
    assert DocumentReport.from_dict(d) == r
    assert "accept_score" not in SETTINGS.to_dict() and RunSettings.from_dict(SETTINGS.to_dict()) == SETTINGS


def test_document_verdict_of_a_document_signed_by_several():
    both = [sig("genuine", "alice"), sig("genuine", "bob", page=2)]
    assert document_verdict(both, claimed=("alice", "bob")) == "genuine"
    assert document_verdict(both[:1], claimed=("alice", "bob")) == "needs_review"  # bob's signature is missing
    assert document_verdict([sig("genuine", "alice"), sig("genuine", "alice")], claimed=("alice", "bob")) == \
        "needs_review"  # both signatures look like alice's: bob has not signed
    assert document_verdict([*both, sig("forged", "bob")], claimed=("alice", "bob")) == "forged"
    assert document_verdict(both[:1], claimed="alice") == "genuine"
    r = DocumentReport.success(DocumentInfo("c.pdf", SHA, 2), ("alice", "bob"), both, MODELS, REFS, SETTINGS)
    d = json.loads(r.to_json())
    assert d["claimed_identity"] == ["alice", "bob"] and d["verdict"] == "genuine"
    jsonschema.validate(d, load_schema())
    assert DocumentReport.from_dict(d) == r
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**d, "claimed_identity": ["alice"]}, load_schema())  # a list names several people


def test_a_mandate_asks_some_of_the_claimed_people_to_sign():
    """A joint account's "either to sign" cheque bears one holder's signature: genuine, where a claim of both
    holders (all must sign) holds it for review; a company's "any two of three"."""
    either = Mandate(("alice", "bob"), 1)
    alice, bob, carol = sig("genuine", "alice"), sig("genuine", "bob", page=2), sig("genuine", "carol", page=2)
    assert document_verdict([alice], claimed=either) == "genuine"
    assert document_verdict([alice], claimed=("alice", "bob")) == "needs_review"
    assert document_verdict([bob], claimed=either) == "genuine"
    assert document_verdict([alice, sig("forged", "bob")], claimed=either) == "forged"  # a forgery stays one
    two = Mandate(("alice", "bob", "carol"), 2)
    assert document_verdict([alice, carol], claimed=two) == "genuine"
    assert document_verdict([alice, sig("genuine", "alice", page=2)], claimed=two) == "needs_review"  # one person
    assert document_verdict([alice, sig("no_reference", "bob")], claimed=either) == "needs_review"
    # --other-signers: a signature matching nobody is somebody else's only once every claimed person has signed;
    # a joint account's cheque signed by one holder beside a failed signature of the other is forged (helper)
    others = RunSettings(200, "pypdfium2", 0.08, other_signers=True)
    r = DocumentReport.success(DocumentInfo("c.pdf", SHA, 2), either, [alice, sig("forged", "bob", page=2)],
                               MODELS, REFS, others)
    assert r.verdict == "forged" and [s.verdict for s in r.signatures] == ["genuine", "forged"]
    r = DocumentReport.success(DocumentInfo("c.pdf", SHA, 3), either, [alice, bob, sig("forged", "bob", page=3)],
                               MODELS, REFS, others)
    assert r.verdict == "genuine" and [s.verdict for s in r.signatures] == ["genuine", "genuine", "other_signer"]
    # the report: the people, and how many must sign; read back as the same claim; the schema checks both
    r = DocumentReport.success(DocumentInfo("c.pdf", SHA, 1), either, [alice], MODELS, REFS, SETTINGS)
    d = json.loads(r.to_json())
    assert d["claimed_identity"] == ["alice", "bob"] and d["signers_required"] == 1 and d["verdict"] == "genuine"
    jsonschema.validate(d, load_schema())
    assert DocumentReport.from_dict(d) == r
    for bad in ({**d, "signers_required": 0}, {**d, "claimed_identity": "alice"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, load_schema())
    assert "signers_required" not in reports()[0].to_dict()
    # everybody asked is no mandate: the claim reports have always held
    assert normalise_claim(["alice", "bob"], 2) == ("alice", "bob") and normalise_claim(["alice"], 1) == "alice"
    assert normalise_claim(either) == either and normalise_claim(either, 2) == ("alice", "bob")
    for bad_required in (0, 3, True):
        with pytest.raises(ValueError, match="signers required"):
            normalise_claim(["alice", "bob"], bad_required)
    for bad in (0, 2):
        with pytest.raises(ValueError, match=f"asks 1 to 1 of its different people to sign, not {bad} of"):
            Mandate(("alice", "bob"), bad)


def test_claims_file_mandate_column(tmp_path: Path):
    p = tmp_path / "claims.csv"
    p.write_text("document,identity,Mandate\nj.pdf,alice,any\nj.pdf,bob,\nk.pdf,a,Any 2\nk.pdf,b,\nk.pdf,c,any 2\n"
                 "l.pdf,alice,all\nl.pdf,bob,\nm.pdf,x,1\nn.pdf,alice,\nn.pdf,bob,1\n")
    assert load_claims(p) == {"j.pdf": Mandate(("alice", "bob"), 1), "k.pdf": Mandate(("a", "b", "c"), 2),
                              "l.pdf": ("alice", "bob"), "m.pdf": "x", "n.pdf": Mandate(("alice", "bob"), 1)}
    p.write_text("document,identity,mandate\nb.pdf,x,2\nb.pdf,y,all\n")  # both mean both of them
    assert load_claims(p) == {"b.pdf": ("x", "y")}
    for text, match in [
        ("document,identity,mandate\na.pdf,x,some\n", "line 2: mandate must be 'all', 'any' or a number"),
        ("document,identity,mandate\na.pdf,x,0\n", "line 2: mandate must be"),
        ("document,identity,mandate\na.pdf,x,2\n", "line 2: mandate '2' for a.pdf, which is claimed for 1 person"),
        ("document,identity,mandate\na.pdf,x,any\na.pdf,y,all\n", "line 3: mandate 'all' for a.pdf, but line 2"),
        ("document,identity,mandates\na.pdf,x,any\n", "line 1: column 'mandates' is not one sigpipe reads; name "
                                                       "it 'mandate'"),
        ("document,identity\na.pdf,x,any\n", "3 fields under a header of 2; .* or add the column 'mandate'"),
    ]:
        p.write_text(text)
        with pytest.raises(ClaimsError, match=match):
            load_claims(p)
    p.write_text("document,identity,notes\na.pdf,x,any\n")  # a column of one's own is one's own
    assert load_claims(p) == {"a.pdf": "x"}
    # one document in several spellings (absolute, relative, another Unicode form): one claim, its mandate checked
    # against all of its people (the helper's mandate on a one-person spelling was dropped, or refused)
    nfd, nfc = unicodedata.normalize("NFD", "café.pdf"), unicodedata.normalize("NFC", "café.pdf")
    p.write_text(f"document,identity,mandate\n{tmp_path / 'j.pdf'},alice,any\nj.pdf,bob,\n"
                 f"k.pdf,carol,2\n{tmp_path / 'k.pdf'},dave,\n{tmp_path / 'k.pdf'},erin,\n{nfd},x,any\n{nfc},y,\n")
    assert load_claims(p, ["j.pdf", "k.pdf", nfc], tmp_path) == {
        "j.pdf": Mandate(("alice", "bob"), 1), "k.pdf": Mandate(("carol", "dave", "erin"), 2),
        nfc: Mandate(("x", "y"), 1)}
    p.write_text(f"document,identity,mandate\n{tmp_path / 'j.pdf'},alice,any\nj.pdf,bob,2\nj.pdf,carol,\n")
    with pytest.raises(ClaimsError, match="line 3: mandate '2' for j.pdf, but line 2 gives 'any'"):
        load_claims(p, ["j.pdf"], tmp_path)
    # claims already read: spellings merged under the mandate one of them gives
    assert match_documents({"j.pdf": Mandate(("alice", "bob"), 1), str(tmp_path / "j.pdf"): "carol"}, ["j.pdf"],
                           tmp_path) == {"j.pdf": Mandate(("alice", "bob", "carol"), 1)}


def test_a_name_cut_at_an_unquoted_comma_is_refused_even_with_trailing_separators(tmp_path: Path):
    """"Kowalski, J" unquoted, on a row whose last cells are blank, read as identity "Kowalski" and mandate " J" (a
    signing class nobody has: a misleading card error) or class " J"; blank cells past the header were taken for a
    spreadsheet's trailing separators."""
    cards, claims = tmp_path / "cards.csv", tmp_path / "claims.csv"
    cards.write_text("account,identity,mandate,class\n100,Kowalski, J,,\n100,Nowak,any,\n200,Lis,,\n")
    read = load_signatories(cards)
    assert re.search("line 2: 5 fields under a header of 4 \\('Kowalski', then ' J': a name cut at a comma\\?\\); put "
                     "double quotes", read["100"].error)
    assert read["200"].claim(None) == "Lis" and not read["200"].error  # the other cards are read
    cards.write_text('account,identity,mandate,class\n100,"Kowalski, J",,\n100,Nowak,any,\n')
    assert load_signatories(cards)["100"].claim(None) == Mandate(("Kowalski, J", "Nowak"), 1)
    cards.write_text("account,identity,mandate,class\n100,Kowalski J,any,,\n100,Nowak,,,,\n")  # trailing: fine
    assert load_signatories(cards)["100"].claim(None) == Mandate(("Kowalski J", "Nowak"), 1)
    cards.write_text("account;identity;mandate;class\n100;Kowalski; J;;\n")  # no name holds a ";": a mandate
    assert "not 'J'" in load_signatories(cards)["100"].error
    claims.write_text("document,identity,mandate\na.pdf,Kowalski, J,\n")
    with pytest.raises(ClaimsError, match="line 2: 4 fields under a header of 3 \\('Kowalski', then ' J'"):
        load_claims(claims)


def test_claims_by_account_take_the_signatory_tables_people_and_mandate(tmp_path: Path):
    """A bank's cheque names the account it is drawn on; who may sign for the account, and how many must, is the
    signature card's (the signatory table's), not a row per cheque and person."""
    cards, claims = tmp_path / "cards.csv", tmp_path / "claims.csv"
    cards.write_text("account;identity;mandate\n0012-3456 78;alice;any\n0012345678;bob;\n77;carol;\n77;dave;\n"
                     "000123;erin;\nDE89 3704;frank;\n")
    assert {a: c.claim(None) for a, c in load_signatories(cards).items()} == {
        "0012345678": Mandate(("alice", "bob"), 1), "77": ("carol", "dave"), "000123": "erin", "DE893704": "frank"}
    claims.write_text(f"document,account,identity\nj.pdf,0012345678,\n{tmp_path / 'j.pdf'},0012-345678,\n"
                      "k.pdf,77/,\nl.pdf,123,\nm.pdf,,zoe\nn.pdf,de89-3704,\n")
    read = read_claims(claims, ["j.pdf", "k.pdf", "l.pdf", "m.pdf", "n.pdf"], tmp_path, cards)
    assert read.people == {"j.pdf": Mandate(("alice", "bob"), 1), "k.pdf": ("carol", "dave"), "m.pdf": "zoe",
                           "n.pdf": "frank"}
    assert read.accounts == {"j.pdf": "0012345678", "k.pdf": "77/", "l.pdf": "123", "n.pdf": "de89-3704"}
    # leading zeros are part of the number; the spreadsheet that dropped them is named, nothing is matched
    assert list(read.unknown) == ["l.pdf"] and "it has '000123': a spreadsheet drops leading zeros" in \
        read.unknown["l.pdf"]
    assert account_key(" 0012-34.56/78 ") == "0012345678" and account_key("de89") == "DE89"
    for text, match in [
        ("document,account\na.pdf,1\n", None),  # without a table: refused, not claimed by nobody
        ("document,account,identity\na.pdf,77,carol\n", "line 2: an identity and an account"),
        ("document,account,mandate\na.pdf,77,any\n", "line 2: a mandate on a claim by account; the signatory"),
        ("document,account\na.pdf,77\na.pdf,78\n", "line 3: a.pdf is claimed by account '78', but line 2 gives "
                                                    "account '77'"),
        ("document,account,identity\na.pdf,77,\na.pdf,,carol\n", "line 2: a.pdf is claimed by account '77' and "
                                                                    "by people"),
        ("document,account,identity\na.pdf,,\n", "line 2: empty document or identity and account"),
    ]:
        claims.write_text(text)
        with pytest.raises(ClaimsError, match=match or "line 2: claims by account need the signatory table"):
            read_claims(claims, signatories=None if match is None else cards)
    # as spreadsheets write them (helper): a text formula, an en dash, quotes; a number in scientific notation has
    # lost its digits, and an empty export would fail every cheque one by one: both refused
    cards.write_text('account,identity\n="0012345678",alice\n77,carol\n')
    claims.write_text('document,account\na.pdf,0012\u2013345678\nb.pdf, "77 "\nc.pdf,?\n')
    read = read_claims(claims, signatories=cards)
    assert read.people == {"a.pdf": "alice", "b.pdf": "carol"}
    assert "no account was read from the cheque's MICR on-us field" in read.unknown["c.pdf"]
    cards.write_text("account,identity\n1.23457E+11,alice\n")
    with pytest.raises(ClaimsError, match="line 2: account '1.23457E.11' is a number a spreadsheet shortened"):
        load_signatories(cards)
    cards.write_text("account;identity;mandate\n")
    with pytest.raises(ClaimsError, match="signatory table .* lists no account"):
        load_signatories(cards)
    cards.write_text("account;identity;mandate\n0012-3456 78;alice;any\n0012345678;bob;\n77;carol;\n77;dave;\n")
    claims.write_text("document,account\na.pdf,77\na.pdf,77-\n")  # one account, written two ways
    assert read_claims(claims, signatories=cards).people == {"a.pdf": ("carol", "dave")}
    with pytest.raises(ClaimsError, match="line 2: claims by account need the signatory table"):
        load_claims(claims)
    for text, match in [
        ("account,name\n1,a\n", "signatory table .*the first line must be the header 'account,identity'"),
        ("account,identity\n,a\n", "signatory table .*line 2: empty account or identity"),  # whose card?
        ("account;identity\n;a;b\n", "signatory table .*line 2: 3 fields under a header of 2"),  # whose row?
        ("identity,account\na,b,1\n", "signatory table .*line 2: 3 fields under a header of 2"),  # which account?
    ]:
        cards.write_text(text)
        with pytest.raises(ClaimsError, match=match):
            load_signatories(cards)
    # a row that names its account but gets the rest wrong: that card cannot be used, the others can
    for text, match in [
        ("account,identity,mandate\n1,a,any\n1,b,2\n", "signatory table .*line 3: mandate '2' for 1, but line 2"),
        ("account,identity,mandate\n1,a,2\n", "signatory table .*line 2: mandate '2' for 1, which lists 1 person"),
        ("account,identity\n1,\n", "signatory table .*line 2: empty account or identity"),
        ("account,identity,mandate\n1,a,\n1,,\n", "signatory table .*line 3: empty account or identity"),
        ("account,identity,mandate\n1,a,\"2 over 1,234.5.6\"\n", "signatory table .*line 2: amount must be a number"),
        ("account,identity\n1,a,b\n", "signatory table .*line 2: 3 fields under a header of 2; put double quotes"),
    ]:
        cards.write_text(text + "9,zoe,\n")
        read = load_signatories(cards)
        assert re.match("the signature card of account 1 cannot be used: " + match, read["1"].error)
        with pytest.raises(ClaimsError, match=match):
            read["1"].claim(None)
        assert read["9"].claim(None) == "zoe" and not read["9"].error


def test_an_accounts_mandate_may_ask_more_signers_over_an_amount(tmp_path: Path):
    """Signature cards often say "any one to sign, two over $10,000": the cheque's amount picks the rule."""
    cards, claims = tmp_path / "cards.csv", tmp_path / "claims.csv"
    cards.write_text('account,identity,mandate\n11,alice,any\n11,bob,2 over 10000\n11,carol,"all OVER 50,000.00 USD"\n'
                     "22,dave,\n")
    card = load_signatories(cards)["11"]
    assert card == SignatoryCard(("alice", "bob", "carol"), (Need(1),), ((Decimal(10000), (Need(2),)),
                                                                         (Decimal(50000), (Need(3),))), currency="USD")
    assert [card.claim(Decimal(a)) for a in ("10000", "10000.01", "50000", "50000.01")] == [
        Mandate(("alice", "bob", "carol"), 1), Mandate(("alice", "bob", "carol"), 2),
        Mandate(("alice", "bob", "carol"), 2), ("alice", "bob", "carol")]
    claims.write_text('document,account,amount\na.tif,11,9999.99\nb.tif,11,"$12,000.00"\nc.tif,11,\nd.tif,22,\n'
                      "e.tif,11,60000\ne.tif,11,60000.00\n")
    read = read_claims(claims, signatories=cards)
    abc = ("alice", "bob", "carol")
    assert read.people == {"a.tif": Mandate(abc, 1), "b.tif": Mandate(abc, 2), "c.tif": abc, "d.tif": "dave",
                           "e.tif": abc}
    assert read.strictest == ("c.tif",)  # no amount: the strictest rule, and a warning names it
    # an amount that cannot be used holds its cheque to every rule of the card, as one without an amount: the
    # cheque cannot pass on a looser rule, and the night's other cheques are verified
    for text, why in [
        ("document,account,amount\na.tif,11,\"1,234,56\"\n", "line 2: amount must be a number such as 1234.56"),
        ("document,account,amount\na.tif,11,5\na.tif,11,6\n", "line 3: amount '6' for a.tif, but line 2 gives '5'"),
        ("document,account,amount\na.tif,11,5 EUR\na.tif,11,5 PLN\n", "line 3: amount '5 PLN' for a.tif, but line 2"),
        ("document,account,amount,note\na.tif,11,12,500.00\n", "line 2: amount '12', then '500.00': an amount cut"),
    ]:
        claims.write_text(text)
        read = read_claims(claims, signatories=cards)
        assert read.people == {"a.tif": abc} and read.strictest == ("a.tif",) and read.amounts == {}
        assert re.search(why, read.unusable_amounts["a.tif"])
    for text, match in [
        ("document,account,amount\na.tif,11,1.234,56\n", "line 2: 4 fields under a header of 3"),
        ("document,account,amount,\na.tif,11,12,500.00,\n", "line 2: 5 fields under a header of 3"),  # header's ","
        ("document,identity,mandate\na.tif,alice,2 over 100\n", "line 2: mandate '2 over 100': a rule over an "
                                                                 "amount belongs in the signatory table"),
    ]:
        claims.write_text(text)
        with pytest.raises(ClaimsError, match=match):
            read_claims(claims, signatories=cards)
    for text, match in [
        ("account,identity,mandate\n1,a,any\n1,b,3 over 10\n", "line 3: mandate '3 over 10' for 1, which lists 2"),
        ("account,identity,mandate\n1,a,2 over 10\n1,b,all over 10.00\n1,c,\n", "line 3: mandate 'all over "
                                                                               "10.00' for 1, but line 2 gives"),
        ("account,identity,mandate\n1,a,2 over ten\n", "line 2: amount must be a number"),
    ]:
        cards.write_text(text)
        with pytest.raises(ClaimsError, match=match):  # that account's card cannot be used
            load_signatories(cards)["1"].claim(Decimal(5))


def test_dataclasses_refuse_inconsistent_values():
    with pytest.raises(ValueError):
        sig("maybe")
    with pytest.raises(ValueError):
        DocumentReport(DocumentInfo("x", SHA, 1), None, "ok", None, (), "error", MODELS)
    with pytest.raises(ValueError):
        DocumentReport.from_dict({**reports()[0].to_dict(), "schema_version": "2"})


def test_atomic_write_read_back_and_paths(tmp_path: Path):
    r = reports()[0]
    path = write_report(tmp_path, r)
    assert path == tmp_path / "a" / "b.pdf.json" == report_path(tmp_path, "a/b.pdf")
    assert read_report(path) == r
    assert [p.name for p in path.parent.iterdir()] == ["b.pdf.json"]  # no temporary left
    path.write_text(r.to_json()[:100])  # a torn file is not a complete report
    assert read_report(path) is None
    assert read_report(tmp_path / "absent.json") is None
    (path.parent / ".b.pdf.json.x1.sigpipe-tmp").write_text("{")
    assert remove_stale_temporaries(tmp_path) == 1


def test_reports_get_the_permissions_of_ordinary_files(tmp_path: Path):
    mask = os.umask(0o027)
    os.umask(mask)
    path = write_report(tmp_path, reports()[0])
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask  # not mkstemp's 0600: other accounts read reports


def test_summary_counts_and_csv():
    reps = reports()
    s = RunSummary.from_reports(reps, processed=3, pages_processed=4, elapsed_s=2.0,
                                reference_errors={"r/x.png": "bad"}, warnings=["w"], people=2, workers=1,
                                models=MODELS)
    d = s.to_dict()
    assert d["documents"] == 5 and d["skipped"] == 2 and d["failed"] == 1 and d["pages"] == 7
    assert d["verdicts"] == {"genuine": 0, "forged": 1, "unsigned": 1, "needs_review": 2, "error": 1}
    assert d["signature_verdicts"] == {"genuine": 1, "forged": 1, "unknown_signer": 1, "no_reference": 1,
                                       "no_ink": 0, "other_signer": 0, "electronic": 0, "copied": 0}
    assert d["failures"] == [{"document": "f.pdf", "kind": "corrupt_pdf", "message": "not a PDF"}]
    assert d["reference_errors"] == [{"file": "r/x.png", "message": "bad"}]
    assert d["pages_per_s"] == 2.0 and d["models"] == MODELS
    rows = [line.split(",") for line in summary_csv(reps).splitlines()]
    assert rows[0] == ["document", "page", "x1", "y1", "x2", "y2", "identity", "distance", "threshold", "score",
                       "verdict", "document_verdict", "detection_confidence", "claimed_identity", "page_rotation",
                       "nearest_reference", "page_skew", "placed", "signers_required", "typed_name", "account",
                       "signing_rule", "amount", "currency", "amount_missing", "error_kind"]
    assert rows[1] == ["a/b.pdf", "1", "10.5", "20.0", "110.25", "60.0", "alice", "0.41", "0.62", "0.87", "genuine",
                       "forged", "0.93", "alice", "0", "alice/2019/03.png", "0.0", "", "", "", "", "", "", "", "", ""]
    assert rows[3][13] == "" and rows[3][15] == "bob/2019/03.png"  # no claim: the nearest enrolled person's
    assert rows[4][6:] == ["carol", "", "", "", "no_reference", "needs_review", "0.93", "carol", "0", "", "0.0", "",
                           "", "", "", "", "", "", "", ""]
    assert rows[5] == ["e.jpg"] + [""] * 10 + ["unsigned"] + [""] * 14
    # a failed document's kind: a CSV-only back office tells a timeout (retried) from a file to mend
    assert (rows[6][11], rows[6][-1]) == ("error", "corrupt_pdf")
    assert len(rows) == 1 + 4 + 2  # 4 signatures + one row per document without signatures
    several = DocumentReport.success(DocumentInfo("c.pdf", SHA, 1), ("alice", "bob"), [], MODELS)
    assert summary_csv([several]).splitlines()[1].endswith(",unsigned,,alice;bob,,,,,,,,,,,,")
    # a joint account's "either to sign": a back office sees why one signature of two made it genuine (helper)
    either = DocumentReport.success(DocumentInfo("j.pdf", SHA, 1), Mandate(("alice", "bob"), 1), [sig()], MODELS)
    row = summary_csv([either]).splitlines()[1].split(",")
    assert (row[11], row[13], row[18], row[20]) == ("genuine", "alice;bob", "1", "")
    # a cheque claimed by account: the account beside the people its signature card names
    cheque = replace(either, account="0012-34")
    assert summary_csv([cheque]).splitlines()[1].split(",")[20] == "0012-34"
    assert DocumentReport.from_dict(cheque.to_dict()) == cheque and "account" not in either.to_dict()
    jsonschema.validate(json.loads(json.dumps(cheque.to_dict())), load_schema())



def test_summary_csv_escapes_names_a_spreadsheet_would_run_as_formulas():
    doc = '=HYPERLINK("http://x.example","open").png'
    rep = DocumentReport.success(DocumentInfo(doc, SHA, 1), "@SUM(1+1)", [sig(identity="-2+3")], MODELS)
    row = next(csv.reader(io.StringIO(summary_csv([rep]).splitlines()[1])))
    assert row[0] == "'" + doc and row[6] == "'-2+3" and row[13] == "'@SUM(1+1)"
    assert rep.to_dict()["document"]["path"] == doc  # the JSON report keeps the name as it is
    plain = DocumentReport.success(DocumentInfo("a-1.pdf", SHA, 1), "alice", [sig()], MODELS)
    assert summary_csv([plain]).splitlines()[1].startswith("a-1.pdf,1,")
    # several claimed people are joined by ';', which a spreadsheet set to ';'-separated lists splits on: each part
    joint = DocumentReport.success(DocumentInfo("a;=1+1.png", SHA, 1), ("laura", "=cmd|' /C calc'!A0"),
                                   [sig(identity="laura")], MODELS)
    row = next(csv.reader(io.StringIO(summary_csv([joint]).splitlines()[1])))
    assert row[0] == "a;'=1+1.png" and row[13] == "laura;'=cmd|' /C calc'!A0"


def test_summary_csv_rows_survive_a_carriage_return_and_names_come_back_from_their_cells():
    """A bare carriage return in a file name cut the row where it stood (LF rows do not quote it): the rest of the
    name, a formula, became a cell of its own without its escape. And ``-lit.png`` and ``'-lit.png`` were both
    written ``'-lit.png``: the document column was no key."""
    names = ["inv\r=10*10+cmd|' calc'!A0.png", "-lit.png", "'-lit.png", "x;-1.png", "plain.png", "a\nb.png"]
    reps = [DocumentReport.success(DocumentInfo(n, SHA, 1), "alice", [sig()], MODELS) for n in names]
    text = summary_csv(reps)
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert len(rows) == 1 + len(names) and all(len(r) == len(rows[0]) for r in rows)
    assert not any(cell.startswith(("=", "+", "-", "@")) for r in rows[1:] for cell in r if cell)
    back = [";".join(p[1:] if p.startswith("'") else p for p in r[0].split(";")) for r in rows[1:]]
    assert back == names and rows[1][0] == names[0]  # one quoted cell, starting as the name does


def test_summary_csv_writes_terminal_escapes_in_names_as_text():
    """A file name holding an escape sequence (setting the terminal's title, colours) reached the terminal of
    whoever ran ``cat`` on summary.csv, where the logs escape it; tab, line feed and carriage return are kept
    (quoted, as above)."""
    name = "\x1b]0;pwned\x07\x1b[31mRED\x1b[0m\x9b.jpg"
    rep = DocumentReport.success(DocumentInfo(name, SHA, 1), "alice", [sig(identity="p\x1b[2K")], MODELS)
    text = summary_csv([rep])
    assert not any(c in text for c in "\x1b\x07\x9b")
    row = next(csv.reader(io.StringIO(text.splitlines()[1])))
    assert row[0] == "\\x1b]0;pwned\\x07\\x1b[31mRED\\x1b[0m\\x9b.jpg" and row[15] == "p\\x1b[2K/2019/03.png"
    assert rep.to_dict()["document"]["path"] == name  # the JSON report keeps the name as it is


def test_a_claims_file_that_is_a_fifo_is_refused_not_waited_on(tmp_path: Path):
    """A claims file in a drop folder swapped for a FIFO blocked the run before its first document."""
    import os

    fifo = tmp_path / "claims.csv"
    os.mkfifo(fifo)
    with pytest.raises(ClaimsError, match="not a regular file"):
        load_claims(fifo)


def test_claims(tmp_path: Path):
    p = tmp_path / "claims.csv"
    p.write_text("\ufeffDocument , Identity,notes\n./a/b.pdf,alice,x\n\nc\\d.png,bob,\n")
    assert load_claims(p) == {"a/b.pdf": "alice", "c/d.png": "bob"}
    for text, match in [("doc,who\na,b\n", "header"), ("", "header"), ("document,identity\na.pdf,\n", "empty")]:
        p.write_text(text)
        with pytest.raises(ClaimsError, match=match):
            load_claims(p)
    for sep in (";", "\t"):  # as spreadsheets save CSV in some locales, and TSV
        p.write_text(f"\ufeffdocument{sep}identity\na/b.pdf{sep}alice\nc, d.png{sep}bob\n")
        assert load_claims(p) == {"a/b.pdf": "alice", "c, d.png": "bob"}
    p.write_text("document,identity\na.pdf,x\na.pdf,x\n")  # a repeated identical claim is fine
    assert load_claims(p) == {"a.pdf": "x"}
    # a contract signed by several people: one row each, in the file's order, repeats counted once
    p.write_text("document,identity\nc.pdf,bob\na.pdf,x\nc.pdf,alice\nc.pdf,bob\n")
    assert load_claims(p) == {"c.pdf": ("bob", "alice"), "a.pdf": "x"}
    w = claim_warnings({"a.pdf": "alice", "gone.pdf": "alice", "b.pdf": "carol", "c.pdf": ("alice", "dave")},
                       ["a.pdf", "b.pdf", "c.pdf"], ["alice"])
    assert any("gone.pdf" in x for x in w) and any("'carol'" in x for x in w) and any("'dave'" in x for x in w)
    assert len(w) == 3
    # under a mandate the others may meet, the document is not sure to need review (helper)
    w = claim_warnings({"a.pdf": "dave", "c.pdf": Mandate(("alice", "dave"), 1)}, ["a.pdf", "c.pdf"], ["alice"])
    assert w == ["claimed identity 'dave' has no usable references in REFS (1 document(s) need review, 1 more "
                 "unless others meet its mandate)"]
    # a folder whose specimens are all unusable is not a misspelt name: a specimen audit was pointed at 'davie'
    w = claim_warnings({"a.pdf": "dave"}, ["a.pdf"], ["alice", "davie"], folders=["alice", "davie", "dave"])
    assert w == ["claimed identity 'dave' has no usable references in REFS (1 document(s) need review); their folder "
                 "holds no usable specimen (summary.json reference_errors says why)"]
    assert "REFS has 'davie'" in claim_warnings({"a.pdf": "dave"}, ["a.pdf"], ["alice", "davie"])[0]
    # a claims export that upper-cases names: the file is then matched one-to-many (a fraud audit), so say which
    w = claim_warnings({"0001_CHEQUE.png": "alice"}, ["0001_cheque.png", "0002_cheque.png"], ["alice"])
    assert w == ["claims name a document that is not in SCANS: 0001_CHEQUE.png (SCANS has '0001_cheque.png': claims "
                 "must name the file as it is written, letter case too; it is matched one-to-many meanwhile)"]


def test_a_claimed_name_without_references_names_the_enrolled_one_it_likely_means():
    people = ["alice-smith", "bob", "Jan Kowalski", "zoë"]
    claims = {"1.pdf": "Alice Smith", "2.pdf": "JAN_KOWALSKI", "3.pdf": "bobb", "4.pdf": "carol", "5.pdf": "bob"}
    w = {x.split("'")[1]: x for x in claim_warnings(claims, list(claims), people)}
    assert set(w) == {"Alice Smith", "JAN_KOWALSKI", "bobb", "carol"}  # bob is enrolled: no warning
    assert w["Alice Smith"].endswith("; REFS has 'alice-smith': the same person? Claims must name the folder "
                                     "exactly, so nothing is matched by likeness")
    assert "REFS has 'Jan Kowalski'" in w["JAN_KOWALSKI"]  # case, spaces and punctuation ignored
    assert "REFS has 'bob'" in w["bobb"]  # a typo, by spelling
    assert "REFS has" not in w["carol"]
    # the spelling search (every enrolled name, slow for large REFS) runs for the first few only
    many = {f"{c}.pdf": f"Jan Kowalsk{c}" for c in "abcdefghjklmnopqrstuvwxyz"}  # 25 typos of one name
    hints = [x for x in claim_warnings(many, list(many), people) if "REFS has 'Jan Kowalski'" in x]
    assert len(hints) == 20


def test_claim_warnings_name_the_first_few_and_count_the_rest():
    """A bank's whole claims table against one night's scans, or a REFS that failed to sync: one line per claim
    would flood the log and the summary, and counting each person's documents claim by claim took minutes."""
    claims = {f"{i}.pdf": f"customer-{i}" for i in range(40_000)}
    claims |= {f"archive/{i}.pdf": "alice" for i in range(30)}
    t0 = time.monotonic()
    w = claim_warnings(claims, [f"{i}.pdf" for i in range(40_000)], ["alice"])
    assert time.monotonic() - t0 < 5
    assert len(w) == 20 + 1 + 20 + 1
    assert w[20] == "claims name 10 more document(s) that are not in SCANS (30 in all)"
    assert w[-1] == ("39980 more claimed identities have no usable references in REFS (39980 document(s) need "
                     "review; 40000 in all)")
    assert w[21].startswith("claimed identity 'customer-0' has no usable references in REFS (1 document(s)")


def test_claims_match_documents_whatever_the_unicode_form_or_an_absolute_path(tmp_path: Path):
    nfd, nfc = unicodedata.normalize("NFD", "été.pdf"), unicodedata.normalize("NFC", "été.pdf")
    (tmp_path / "sub").mkdir()
    claims = {nfc: "zoë", str(tmp_path / "sub" / "b.pdf"): "bob", "gone.pdf": "x"}
    assert match_documents(claims, [nfd, "sub/b.pdf"], tmp_path) == {nfd: "zoë", "sub/b.pdf": "bob", "gone.pdf": "x"}
    p = tmp_path / "claims.csv"
    p.write_text(f"document,identity\na.pdf,{unicodedata.normalize('NFD', 'zoë')}\n")
    assert load_claims(p) == {"a.pdf": unicodedata.normalize("NFC", "zoë")}  # identities compared as NFC
    # two files whose names differ only in that form: a claim means the one it names exactly, and neither takes
    # the other's claim (the last one listed used to take both)
    assert match_documents({nfd: "laura"}, [nfc, nfd], tmp_path) == {nfd: "laura"}
    assert match_documents({nfc: "laura", nfd: "jan"}, [nfd, nfc], tmp_path) == {nfc: "laura", nfd: "jan"}



def test_an_absolute_claim_names_a_linked_document_by_its_own_place(tmp_path: Path):
    scans = tmp_path / "scans"
    (scans / "2024").mkdir(parents=True)
    (scans / "2024" / "a.png").write_bytes(b"x")
    (scans / "latest.png").symlink_to(Path("2024") / "a.png")  # a link to another document: a document of its own
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (scans / "linked").symlink_to(elsewhere)  # a linked folder, followed by the run
    claims = {str(scans / "latest.png"): "laura", "2024/a.png": "jan", str(scans / "linked" / "b.jpg"): "bob"}
    docs = ["2024/a.png", "latest.png", "linked/b.jpg"]
    assert match_documents(claims, docs, scans) == {"latest.png": "laura", "2024/a.png": "jan",
                                                     "linked/b.jpg": "bob"}
    # SCANS given through a link, the claim written with the real path
    (tmp_path / "via").symlink_to(scans)
    assert match_documents({str(scans / "2024" / "a.png"): "jan"}, docs, tmp_path / "via") == {"2024/a.png": "jan"}


def test_claims_keep_the_escaped_bytes_of_names_that_are_not_utf8(tmp_path: Path):
    p = tmp_path / "claims.csv"
    # as reports and summary.csv write caf<0xe9>.png; and a Windows path whose file name starts with x and two hex
    p.write_text("document,identity\ncaf\\xe9.png,jan\ninvoices\\xab.pdf,bob\nsub\\b.pdf,lee\n")
    claims = load_claims(p)
    assert claims == {"caf\\xe9.png": "jan", "invoices\\xab.pdf": "bob", "sub/b.pdf": "lee"}
    assert match_documents(claims, ["caf\\xe9.png", "invoices/xab.pdf", "sub/b.pdf"], tmp_path) == {
        "caf\\xe9.png": "jan", "invoices/xab.pdf": "bob", "sub/b.pdf": "lee"}

def test_claims_of_one_document_in_two_spellings_are_merged(tmp_path: Path):
    # a contract listed once per signatory, by its relative and its absolute path, or in NFC and in NFD: no claim lost
    nfd, nfc = unicodedata.normalize("NFD", "Zoë.pdf"), unicodedata.normalize("NFC", "Zoë.pdf")
    p = tmp_path / "claims.csv"
    p.write_text(f"document,identity\n{tmp_path / 'deed.pdf'},kowalski\ndeed.pdf,wright\ndeed.pdf,kowalski\n"
                 f"{nfc},kowalski\n{nfd},wright\n{nfd},lee\n{nfc},lee\n")
    claims = match_documents(load_claims(p), ["deed.pdf", nfd], tmp_path)
    # people in order of first appearance, spelling by spelling (each spelling in the order it first appears)
    assert claims == {"deed.pdf": ("kowalski", "wright"), nfd: ("kowalski", "lee", "wright")}
    assert load_claims(p, ["deed.pdf", nfd], tmp_path) == claims  # as a run reads them, mandates and all
    # spellings of one person each stay a single claim
    assert match_documents({"a.pdf": "x", str(tmp_path / "a.pdf"): "x"}, ["a.pdf"], tmp_path) == {"a.pdf": "x"}


def test_claims_blank_lines_before_the_header_and_excel_sep_line(tmp_path: Path):
    p = tmp_path / "claims.csv"
    for data in (b"\ndocument,identity\na.pdf,alice\n", b"\xef\xbb\xbf\r\ndocument;identity\r\na.pdf;alice\r\n",
                 b"sep=;\r\ndocument;identity\r\na.pdf;alice\r\n", b"sep=,\n\ndocument,identity\na.pdf,alice\n"):
        p.write_bytes(data)
        assert load_claims(p) == {"a.pdf": "alice"}, data
    p.write_bytes(b"sep=|\ndocument|identity\nc; d.pdf|bob\n")  # the delimiter it names, not the one guessed
    assert load_claims(p) == {"c; d.pdf": "bob"}
    p.write_bytes(b"\n\ndocument,identity\n\na.pdf\n")  # lines counted in the file, blank ones included
    with pytest.raises(ClaimsError, match="line 5: expected 2 columns"):
        load_claims(p)
    p.write_bytes(b"\n\nsep=;;\ndocument;identity\n")  # not a delimiter line: quoted as written
    with pytest.raises(ClaimsError, match="line 3: the first line must be the header .* got 'sep=;;'"):
        load_claims(p)


def test_claims_row_with_more_fields_than_the_header(tmp_path: Path):
    p = tmp_path / "claims.csv"
    p.write_text("document,identity\na.pdf,alice\nKowalski, J 0002.pdf,j-kowalski\n")  # an unquoted comma
    with pytest.raises(ClaimsError, match="line 3: 3 fields under a header of 2 \\(.Kowalski., then . J 0002.pdf.: "
                                          "a field cut at a comma\\?\\); put double quotes around"):
        load_claims(p)
    p.write_text('document,identity\n"Kowalski, J 0002.pdf",j-kowalski\nb.pdf,bob,\n')  # quoted; a trailing comma
    assert load_claims(p) == {"Kowalski, J 0002.pdf": "j-kowalski", "b.pdf": "bob"}
    p.write_text('identity,document,notes\nalice,a.pdf,"late, resent"\nbob,b.pdf\n')  # a header with other columns
    assert load_claims(p) == {"a.pdf": "alice", "b.pdf": "bob"}
    # an unquoted delimiter under a header of more columns: which field moved cannot be told (an identity
    # 'Kowalski, J.' read as 'Kowalski'), so the row is refused too
    p.write_text("document,identity,amount\na.pdf,Kowalski, J.,j-kowalski\n")
    with pytest.raises(ClaimsError, match="line 2: 4 fields under a header of 3"):
        load_claims(p)


def test_claims_encodings(tmp_path: Path):
    p = tmp_path / "claims.csv"
    text = "\ufeffdocument\tidentity\r\ncafé.pdf\tjosé\r\n"  # Excel's "Unicode Text": UTF-16 with a BOM, tabs
    for encoding in ("utf-16-le", "utf-16-be"):
        p.write_bytes(text.encode(encoding))
        assert load_claims(p) == {"café.pdf": "josé"}
    p.write_bytes("document;identity\na.pdf;x\ncafé.pdf;josé\n".encode("latin-1"))  # not guessed
    with pytest.raises(ClaimsError, match=r"is not UTF-8 text \(line 3\): save it as 'CSV UTF-8"):
        load_claims(p)
    for data in ("document,identity\na.pdf,x\n".encode("utf-16-le"), b"\x89PNG\r\n\x1a\n\x00\x00"):  # no BOM; binary
        p.write_bytes(data)
        with pytest.raises(ClaimsError, match=r"is not UTF-8 text \(line 1\)"):
            load_claims(p)


def test_a_quote_left_open_in_a_claims_file_is_refused_not_swallowed(tmp_path: Path):
    """A stray opening quote in a note column ran every later line into that note: their documents went unclaimed,
    were matched one-to-many, and a forged one came out 'genuine', without a word."""
    p = tmp_path / "claims.csv"
    p.write_text('document,identity,note\na.pdf,alice,ok\nb.pdf,bob,"urgent - call\nc.pdf,carol,ok\nd.pdf,dan,"\n')
    with pytest.raises(ClaimsError, match="lines 3-5: one quoted field runs over 3 lines"):
        load_claims(p)
    p.write_text('document,identity,note\na.pdf,alice,ok\nb.pdf,bob,"urgent - call\nc.pdf,carol,ok\n')
    with pytest.raises(ClaimsError, match="line 3: .*a quote left open"):
        load_claims(p)


def test_claims_delimiter_header_and_line_ends_as_spreadsheets_write_them(tmp_path: Path):
    p = tmp_path / "claims.csv"
    p.write_text("document;identity;Name, Vorname;Betrag\na.pdf;alice;Smith, Alice;12,50\n")  # German Excel
    assert load_claims(p) == {"a.pdf": "alice"}
    # a vertical tab or form feed (a soft line break pasted into a cell), U+2028: inside a line, not line ends
    p.write_text("document,identity,note\na.pdf,alice,call\x0bafter 5pm\u2028ok\nb.pdf,bob,x\n")
    assert load_claims(p) == {"a.pdf": "alice", "b.pdf": "bob"}
    p.write_bytes(b"document,identity\r\na.pdf,alice\rb.pdf,bob\r\n")  # CRLF and old Mac CR
    assert load_claims(p) == {"a.pdf": "alice", "b.pdf": "bob"}


def test_people_with_a_single_reference_are_named_with_the_measured_cost():
    """A bank keeping one signature card per customer is judged at K=1, where the verifier is least sure: the run
    says who and, from the manifest's test figures, by how much."""
    from sigpipe.pipeline.runner import single_reference_warning

    manifest = {"benchmarks": {"test_writers": {
        "a": {"k1": {"far_skilled": 0.19}, "k5": {"far_skilled": 0.14}},
        "b": {"k1": {"far_skilled": 0.32}, "k5": {"far_skilled": 0.05}}}}}
    people = {f"p{i}": [0] * (1 if i < 7 else 3) for i in range(9)}
    w = single_reference_warning(people, manifest)
    assert w is not None
    assert w.startswith("7 of 9 enrolled people have a single usable reference (p0, p1, p2, p3, p4, ...)")
    assert "accepted 19%-32% of skilled forgeries with one reference, 5%-14% with five" in w
    assert "accepted" not in (single_reference_warning({"p": [0]}, {}) or "")  # no figures recorded: none quoted
    assert single_reference_warning({"p": [0, 1]}, manifest) is None
