"""Cheque amounts: read in either locale's convention, recorded in the reports that they chose a rule for, and a
cheque held to every rule for want of one says so where a reviewer looks."""
import csv
import io
import json
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import jsonschema
import pytest
from pipeline_doubles import SIG_A, DoubleModels, page_with, save_image, scribble
from test_pipeline_report import MODELS, SHA, sig
from test_pipeline_runner import all_reports, config

from sigpipe.pipeline.claims import Mandate, parse_amount, read_claims
from sigpipe.pipeline.errors import ClaimsError
from sigpipe.pipeline.report import DocumentInfo, DocumentReport, load_schema
from sigpipe.pipeline.review import _claim_text, held_for
from sigpipe.pipeline.runner import run_batch


@pytest.mark.parametrize("text, value", [
    ("1234.56", "1234.56"), ("1,234.56", "1234.56"), ("$1,234.56", "1234.56"), ("12,500", "12500"),
    ("1.234,56", "1234.56"), ("1234,56", "1234.56"), ("1234,5", "1234.5"), ("10.000,00", "10000.00"),
    ("1.234.567", "1234567"), ("1 234,56 €", "1234.56"), ("1\u00a0234,56", "1234.56"), ("1\u202f234.56", "1234.56"),
    ("CHF 1'234.50", "1234.50"), ("EUR 10.000,00", "10000.00"), ("20 000", "20000"), ("0.500", "0.500"),
    ("1,23,456.78", "123456.78"), ("₹1,00,000", "100000"), ("0,5", "0.5"), (" 7 ", "7"),
])
def test_amounts_are_read_as_either_locale_writes_them(text: str, value: str):
    assert parse_amount(text) == Decimal(value) and str(parse_amount(text)) == value


@pytest.mark.parametrize("text", ["abc", "-5", "(100)", "1e5", "12,5000", "0,125", "1,234,56", "12.50.00", "1 23",
                                  "1 234 56", "USD", "€", "", "1,2345.00", "01,234"])
def test_what_is_no_amount_is_refused(text: str):
    with pytest.raises(ValueError, match="amount must be a number such as 1234.56, 1,234.56 or 1.234,56"):
        parse_amount(text)


@pytest.mark.parametrize("text, hint", [("12.500", "12500.00 or 12500,00"), ("1.234", "1234.00 or 1234,00"),
                                        ("EUR 7.250", "7250.00 or 7250,00")])
def test_a_dot_that_may_separate_thousands_is_still_refused(text: str, hint: str):
    """12.500 read as twelve and a half picks a looser rule than twelve thousand five hundred: not guessed."""
    with pytest.raises(ValueError, match=f"ambiguous .*\\({hint} if the dot separates thousands\\)"):
        parse_amount(text)


def test_a_european_card_and_claims_file_choose_the_rule_by_amount(tmp_path: Path):
    cards, claims = tmp_path / "cards.csv", tmp_path / "claims.csv"
    cards.write_text("account;identity;mandate\n11;alice;any\n11;bob;2 over 10.000,00\n", encoding="utf-8")
    claims.write_text("document;account;amount\na.tif;11;9.999,99\nb.tif;11;10.000,01 €\nc.tif;11;\n",
                      encoding="utf-8")
    read = read_claims(claims, signatories=cards)
    assert read.people == {"a.tif": Mandate(("alice", "bob"), 1), "b.tif": ("alice", "bob"), "c.tif": ("alice", "bob")}
    assert read.amounts == {"a.tif": Decimal("9999.99"), "b.tif": Decimal("10000.01")} and read.strictest == ("c.tif",)
    claims.write_text("document;account;amount\na.tif;11;9,999.99\na.tif;11;9.999,99\n")  # one amount, two ways
    assert read_claims(claims, signatories=cards).amounts == {"a.tif": Decimal("9999.99")}
    claims.write_text("document;account;amount\na.tif;11;9.999,99\na.tif;11;9.999,98\n")
    with pytest.raises(ClaimsError, match="line 3: amount '9.999,98' for a.tif, but line 2 gives '9.999,99'"):
        read_claims(claims, signatories=cards)


def test_a_report_records_the_amount_that_chose_its_rule():
    claim = Mandate(("alice", "bob"), 1)
    rep = replace(DocumentReport.success(DocumentInfo("c.png", SHA, 1), claim, [sig()], MODELS), account="11",
                  amount=Decimal("12500.00"))
    d = rep.to_dict()
    assert (d["account"], d["amount"]) == ("11", "12500.00") and "amount_missing" not in d
    jsonschema.validate(json.loads(json.dumps(d)), load_schema())
    assert DocumentReport.from_dict(d) == rep
    held = replace(rep, amount=None, amount_missing=True)
    assert held.to_dict()["amount_missing"] is True and "amount" not in held.to_dict()
    assert DocumentReport.from_dict(held.to_dict()) == held
    jsonschema.validate(held.to_dict(), load_schema())
    for bad in ({"amount": "12,500.00"}, {"amount": 12500}, {"amount_missing": False}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(d | bad, load_schema())
    with pytest.raises(jsonschema.ValidationError):  # an amount is a cheque's, claimed by account
        jsonschema.validate({k: v for k, v in d.items() if k != "account"}, load_schema())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(d | {"amount_missing": True}, load_schema())
    for kw in ({"account": None}, {"amount_missing": True}, {"amount": Decimal(-1)}, {"amount": Decimal("NaN")}):
        with pytest.raises(ValueError, match="an amount .* is a cheque's"):
            replace(rep, **kw)
    with pytest.raises(ValueError, match="malformed report"):
        DocumentReport.from_dict(d | {"amount": "twelve"})
    assert _claim_text(rep) == "account 11, amount 12500.00: any 1 of alice, bob"
    assert _claim_text(held) == "account 11, no amount: any 1 of alice, bob"
    assert _claim_text(replace(rep, amount=None)) == "account 11: any 1 of alice, bob"


def test_a_cheque_held_for_want_of_an_amount_says_so(batch: dict[str, Path], verifier_manifest: Path,
                                                     tmp_path: Path):
    """A cheque over a card's limit needs two signers; without an amount it is held to that rule. The review sheet
    said only that the signers fell short of the mandate, and the report did not record the amount at all."""
    scans = tmp_path / "cheques"
    save_image(scans / "c1.png", page_with([(scribble(SIG_A), 300, 400)]))
    claims, cards = tmp_path / "claims.csv", tmp_path / "cards.csv"
    claims.write_text("document,account,amount\nc1.png,11,\n")
    cards.write_text("account,identity,mandate\n11,alice,any\n11,bob,2 over 10000\n")
    models = DoubleModels(verifier_manifest)
    run_batch(config(batch, scans=scans, claims=claims, signatories=cards), models)
    c1 = all_reports(batch["out"])["c1.png"]
    jsonschema.validate(c1, load_schema())
    assert (c1["amount_missing"], c1["verdict"], c1["signatures"][0]["verdict"]) == (True, "needs_review", "genuine")
    rep = DocumentReport.from_dict(c1)
    assert held_for(rep.signatures[0], rep) == ("held for review with its document: a claimed person's signature is "
                                                "missing (the claims give no amount: held to every rule of the "
                                                "account's card)")
    claims.write_text('document,account,amount\nc1.png,11,"$9,500.00"\n')
    s = run_batch(config(batch, scans=scans, claims=claims, signatories=cards), models)
    assert s.processed == 1  # the amount came: the cheque is judged again, under the rule for it
    c1 = all_reports(batch["out"])["c1.png"]
    assert (c1["amount"], c1["signers_required"], c1["verdict"]) == ("9500.00", 1, "genuine")
    assert "amount_missing" not in c1
    row = next(csv.DictReader(io.StringIO((batch["out"] / "summary.csv").read_text())))
    assert (row["account"], row["amount"]) == ("11", "9500.00")
    assert run_batch(config(batch, scans=scans, claims=claims, signatories=cards), models).processed == 0
    claims.write_text("document,account,amount\nc1.png,11,9400\n")  # corrected: the report must not keep 9500.00
    assert run_batch(config(batch, scans=scans, claims=claims, signatories=cards), models).processed == 1
    assert all_reports(batch["out"])["c1.png"]["amount"] == "9400"
