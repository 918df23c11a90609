"""Cheque amounts: read in either locale's convention, recorded in the reports that they chose a rule for, and a
cheque held to every rule for want of one says so where a reviewer looks."""
import csv
import io
import json
import re
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import jsonschema
import pytest
from pipeline_doubles import SIG_A, DoubleModels, page_with, save_image, scribble
from test_pipeline_report import MODELS, SHA, sig
from test_pipeline_runner import all_reports, config

from sigpipe.pipeline.claims import (
    Mandate,
    load_claims,
    load_signatories,
    parse_amount,
    parse_money,
    parse_rule,
    read_claims,
)
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
    ("1 234,56 zł", "1234.56"), ("Fr. 1'234.50", "1234.50"), ("SFr. 1'234.50", "1234.50"), ("1'234.–", "1234.00"),
    ("10.000,-", "10000.00"), ("10.000,– €", "10000.00"), ("Rs. 1,23,456.00", "123456.00"), ("Rs 1,23,456", "123456"),
    ("₹ 1,23,456/-", "123456"), ("10.000,00 eur", "10000.00"), ("10\u2009000,00", "10000.00"),
])
def test_amounts_are_read_as_either_locale_writes_them(text: str, value: str):
    assert parse_amount(text) == Decimal(value) and str(parse_amount(text)) == value


def test_an_amounts_currency_is_read_beside_it():
    assert [parse_money(t)[1] for t in ("1 234,56 zł", "Fr. 1'234.50", "₹ 1,23,456/-", "10.000,00 eur", "$5", "5",
                                        "CHF 1'234.50", "US$ 5", "5 €")] == [
        "PLN", "CHF", "INR", "EUR", "USD", "", "CHF", "USD", "EUR"]
    for text, why in (("1.5 LAC", "'LAC' is not a currency"), ("15 TSD", "'TSD' is not a currency"),
                      ("2 MIO", "'MIO' is not a currency"), ("EUR 5 USD", "names two currencies")):
        with pytest.raises(ValueError, match=why):  # 1.5 lakh is 150,000: a scale word is no currency to drop
            parse_money(text)


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
    cards.write_text("account;identity;mandate\n11;alice;any\n11;bob;2 over 10.000,00 EUR\n", encoding="utf-8")
    claims.write_text("document;account;amount\na.tif;11;9.999,99\nb.tif;11;10.000,01 €\nc.tif;11;\n",
                      encoding="utf-8")
    read = read_claims(claims, signatories=cards)
    assert read.people == {"a.tif": Mandate(("alice", "bob"), 1), "b.tif": ("alice", "bob"), "c.tif": ("alice", "bob")}
    assert read.amounts == {"a.tif": Decimal("9999.99"), "b.tif": Decimal("10000.01")} and read.strictest == ("c.tif",)
    claims.write_text("document;account;amount\na.tif;11;9,999.99\na.tif;11;9.999,99\n")  # one amount, two ways
    assert read_claims(claims, signatories=cards).amounts == {"a.tif": Decimal("9999.99")}
    claims.write_text("document;account;amount\na.tif;11;9.999,99\na.tif;11;9.999,98\n")
    read = read_claims(claims, signatories=cards)  # which? Held to every rule of the card, not the night stopped
    assert read.unusable_amounts == {"a.tif": f"claims file {claims}, line 3: amount '9.999,98' for a.tif, but line "
                                              "2 gives '9.999,99'"}
    assert read.people == {"a.tif": ("alice", "bob")} and read.strictest == ("a.tif",) and read.amounts == {}


def test_an_amount_in_another_currency_than_the_cards_is_not_compared(tmp_path: Path):
    """A helper's card in zloty and a cheque in euros: 5,000 EUR was compared with 10,000 PLN as bare numbers."""
    cards, claims = tmp_path / "cards.csv", tmp_path / "claims.csv"
    cards.write_text('account,identity,mandate\n22,laura,any\n22,peter,"2 over 10 000,00 PLN"\n33,ann,any\n'
                     "33,bo,2 over 100 EUR\n33,cy,3 over 200 PLN\n")
    read_cards = load_signatories(cards)
    assert read_cards["22"].currency == "PLN"
    assert "line 6: a rule over an amount in PLN for 33, but line 5 gives one in EUR" in read_cards["33"].error
    claims.write_text('document,account,amount\na.tif,22,"EUR 5.000,00"\nb.tif,22,"5.000,00 zł"\nc.tif,22,5000\n'
                      'd.tif,22,"12,500 PLN"\n')
    read = read_claims(claims, signatories=cards)
    assert read.unusable_amounts == {"a.tif": f"claims file {claims}, line 2: amount 'EUR 5.000,00' is in EUR, and "
                                              "the rules over amounts of account 22's card in PLN"}
    assert read.people == {"a.tif": ("laura", "peter"), "b.tif": Mandate(("laura", "peter"), 1),
                           "c.tif": Mandate(("laura", "peter"), 1), "d.tif": ("laura", "peter")}
    assert read.amounts == {"b.tif": Decimal(5000), "c.tif": Decimal(5000), "d.tif": Decimal(12500)}


def test_a_number_cut_at_an_unquoted_comma_is_not_taken_for_a_smaller_one(tmp_path: Path):
    """12,500.00 unquoted in a file with a note column was read as 12 (the note 500.00): one signer, genuine."""
    cards, claims = tmp_path / "cards.csv", tmp_path / "claims.csv"
    cards.write_text("account,identity,mandate\n11,alice,any\n11,bob,2 over 10000\n")
    claims.write_text("document,account,amount,note\na.tif,11,12,500.00\nb.tif,11,10000,50,\nc.tif,11,12,\n"
                      "d.tif,11,1234.56,123\n")
    read = read_claims(claims, signatories=cards)
    assert sorted(read.unusable_amounts) == ["a.tif", "b.tif"] and read.strictest == ("a.tif", "b.tif")
    assert "line 3: amount '10000', then '50': an amount cut at an unquoted comma? put double quotes around it" in \
        read.unusable_amounts["b.tif"]
    assert read.amounts == {"c.tif": Decimal(12), "d.tif": Decimal("1234.56")}  # a note that is no number's tail
    cards.write_text("account,identity,mandate,note\n11,alice,any,\n11,bob,2 over 10,000\n22,cy,,\n")
    read_cards = load_signatories(cards)
    assert "line 3: mandate '2 over 10', then '000': an amount cut at an unquoted comma" in read_cards["11"].error
    assert read_cards["22"].claim(None) == "cy"
    cards.write_text("account,identity,mandate,\n11,alice,any,\n11,bob,2 over 10,000\n")  # the header's ","
    assert "line 3: 4 fields under a header of 3; put double quotes" in load_signatories(cards)["11"].error


@pytest.mark.parametrize("column", ["Betrag", "montant", "Amount (EUR)", "amounts", "cheque amount", "kwota"])
def test_an_amount_column_under_another_name_is_refused_not_dropped(tmp_path: Path, column: str):
    """A Betrag column was ignored: every cheque was held to its card's strictest rule, 'no amount' the only hint."""
    cards, claims = tmp_path / "cards.csv", tmp_path / "claims.csv"
    cards.write_text("account,identity,mandate\n11,alice,any\n11,bob,2 over 10000\n")
    claims.write_text(f"document;account;{column}\na.tif;11;500,00\n", encoding="utf-8")
    with pytest.raises(ClaimsError, match=re.escape(f"line 1: column {column.lower()!r} is not one sigpipe reads; "
                                                    "name it 'amount'")):
        read_claims(claims, signatories=cards)
    claims.write_text(f"document;identity;{column}\na.tif;alice;500,00\n", encoding="utf-8")
    assert load_claims(claims) == {"a.tif": "alice"}  # claims naming people: the amount plays no part


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
    assert _claim_text(held) == "account 11, no usable amount: any 1 of alice, bob"
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
                                                "missing (bob) (no usable amount in the claims: held to every rule "
                                                "of the account's card)")
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
    claims.write_text("document,account,amount,note\nc1.png,11,9,400\n")  # cut at a comma: not 9
    s = run_batch(config(batch, scans=scans, claims=claims, signatories=cards), models)
    c1 = all_reports(batch["out"])["c1.png"]
    assert (s.processed, c1["amount_missing"], c1["verdict"]) == (1, True, "needs_review")
    said = [w for w in s.warnings if "amount in the claims that cannot be used" in w]
    assert len(said) == 1 and "c1.png: claims file" in said[0] and "amount '9', then '400'" in said[0]
    listed = json.loads((batch["out"] / "summary.json").read_text())["unusable_amounts"]
    assert [d["document"] for d in listed] == ["c1.png"]
    assert "an amount cut at an unquoted comma" in listed[0]["message"]


def test_what_a_us_banks_tester_broke_next(tmp_path: Path):
    """Session 32's second helper: a cut missed when a currency followed the cents, an amount in pounds compared
    with a card that names no currency, $.50 read as 50, one amount written two ways taken for two."""
    cards, claims = tmp_path / "cards.csv", tmp_path / "claims.csv"
    cards.write_text('account,identity,mandate\n11,alice,any\n11,bob,"2 over $10,000"\n55,carol,any\n'
                     "55,dan,2 over 10000\n77,bob,\n")
    claims.write_text('document,account,amount,memo\na.png,11,12,500.00 USD,\nb.png,11,$.50,\n'
                      'c.png,55,"GBP 9,000.00",\nd.png,55,"$20,000.00",\ne.png,77,20000,101\nf.png,11,12500.00\n'
                      'f.png,11,"$12,500.00"\n')
    read = read_claims(claims, signatories=cards)
    assert read_cards_currency(cards) == {"11": "USD", "55": "", "77": ""}
    assert "line 2: amount '12', then '500.00 USD': an amount cut at an unquoted comma" in \
        read.unusable_amounts["a.png"]
    assert "line 3: amount must be a number" in read.unusable_amounts["b.png"]  # not fifty dollars
    # card 55 names no currency and the claims give pounds and dollars: which one it means is not guessed
    assert "line 4: amount 'GBP 9,000.00' is in GBP, the rules over amounts of account 55's card name no currency, " \
           "and the claims give amounts in GBP, USD" in read.unusable_amounts["c.png"]
    assert "d.png" in read.unusable_amounts and "e.png" not in read.unusable_amounts  # 20000 then a serial: no cut
    assert read.amounts == {"e.png": Decimal(20000), "f.png": Decimal(12500)} and read.currencies == {"f.png": "USD"}
    assert read.strictest == ("a.png", "b.png", "c.png", "d.png")
    claims.write_text('document,account,amount\nc.png,55,"$9,000.00"\nd.png,55,"$20,000"\n')  # one: the bank's
    read = read_claims(claims, signatories=cards)
    assert read.amounts == {"c.png": Decimal(9000), "d.png": Decimal(20000)} and read.unusable_amounts == {}
    assert read.people["c.png"] == Mandate(("carol", "dan"), 1) and read.currencies == {"c.png": "USD", "d.png": "USD"}
    claims.write_text('document,account,amount\nc.png,55,9000\nc.png,55,"$9,000"\n')  # one amount, named once
    read = read_claims(claims, signatories=cards)
    assert (read.amounts, read.currencies, read.unusable_amounts) == ({"c.png": Decimal(9000)}, {"c.png": "USD"}, {})
    # amounts naming no currency are in the bank's own; pounds beside them are not compared as if they were
    claims.write_text('document,account,amount\nc.png,55,£9500.00\nd.png,55,12500.00\n')
    read = read_claims(claims, signatories=cards)
    assert read.amounts == {"d.png": Decimal(12500)} and list(read.unusable_amounts) == ["c.png"]
    assert "and the claims give amounts in GBP and in none named" in read.unusable_amounts["c.png"]


def read_cards_currency(cards: Path) -> dict[str, str]:
    return {a: c.currency for a, c in load_signatories(cards).items()}


def test_a_name_cut_at_a_comma_on_a_row_as_long_as_the_header(tmp_path: Path):
    cards = tmp_path / "cards.csv"
    cards.write_text("account,identity,class,mandate\n100,Kowalski, J,\n100,Nowak,A,any\n200,Lis,,\n")
    read = load_signatories(cards)  # "Kowalski" of class "J" was accepted unsaid
    assert "line 2: a name cut at a comma ('Kowalski', then ' J'); put double quotes" in read["100"].error
    assert read["200"].claim(None) == "Lis"
    cards.write_text("account,identity,mandate\n100,Kowalski, J\n")
    assert "a name cut at a comma ('Kowalski', then ' J')" in load_signatories(cards)["100"].error
    cards.write_text("account,identity,mandate\n100,alice, any\n100,bob,\n")  # a space typed before a mandate
    assert load_signatories(cards)["100"].claim(None) == Mandate(("alice", "bob"), 1)
    cards.write_text("account, identity, class, mandate\n100, alice, A, any\n100, bob, B,\n")  # spaces throughout
    assert load_signatories(cards)["100"].claim(None) == Mandate(("alice", "bob"), 1)


def test_a_failed_cheque_keeps_its_amount_and_the_csv_says_why_it_was_held(batch: dict[str, Path],
                                                                           verifier_manifest: Path, tmp_path: Path):
    """Cheques that fail (an unknown account, a damaged card) are handled by hand: their amount is what staff need."""
    scans = tmp_path / "cheques"
    for name in ("c1.png", "c2.png", "c3.png", "c4.png"):
        save_image(scans / name, page_with([(scribble(SIG_A), 300, 400)]))
    claims, cards = tmp_path / "claims.csv", tmp_path / "cards.csv"
    claims.write_text('document,account,amount\nc1.png,999,750.00\nc2.png,22,"1.234,50 €"\nc3.png,11,\n'
                      "c4.png,11,20000 EUR\n")
    cards.write_text("account,identity,mandate\n11,alice,any\n11,bob,2 over 10000 EUR\n22,alice,some\n")
    run_batch(config(batch, scans=scans, claims=claims, signatories=cards), DoubleModels(verifier_manifest))
    reps = all_reports(batch["out"])
    for r in reps.values():
        jsonschema.validate(r, load_schema())
    assert (reps["c1.png"]["error"]["kind"], reps["c1.png"]["amount"]) == ("unknown_account", "750.00")
    assert (reps["c2.png"]["error"]["kind"], reps["c2.png"]["amount"], reps["c2.png"]["currency"]) == (
        "bad_signatory_card", "1234.50", "EUR")
    rows = {r["document"]: r for r in csv.DictReader(io.StringIO((batch["out"] / "summary.csv").read_text()))}
    assert [(rows[d]["amount"], rows[d]["currency"], rows[d]["amount_missing"]) for d in sorted(rows)] == [
        ("750.00", "", ""), ("1234.50", "EUR", ""), ("", "", "true"), ("20000", "EUR", "")]
    rep = DocumentReport.from_dict(reps["c4.png"])
    assert _claim_text(rep) == "account 11, amount 20000 EUR: alice, bob"


def test_what_exports_write_is_read_as_they_mean_it(tmp_path: Path):
    """Session 32's third helper wrote the two files as databases, R, pandas and Java write them."""
    cards = tmp_path / "cards.csv"
    # SQL NULL and R NA in a class and a mandate cell are blank: everybody signs (NULL was a class anyone had)
    cards.write_text("account,identity,class,mandate\n77,carol,NULL,NULL\n77,dave,NULL,NULL\n"
                     '"88","erin",NA,NA\n"88","fay",NA,"2.0"\n')  # pandas writes an int column with blanks as floats
    read = load_signatories(cards)
    assert read["77"].claim(None) == ("carol", "dave") and read["88"].claim(None) == ("erin", "fay")
    # a Java export's ", " after every field, the trailing one included
    cards.write_text("account, identity, mandate, \n0012, alice, any, \n0012, bob, 2 over 10000, \n")
    assert load_signatories(cards)["0012"].claim(Decimal(5)) == Mandate(("alice", "bob"), 1)
    cards.write_text("account, identity\n0012, alice, \n0012, bob, \n")  # two columns, the same tool
    assert load_signatories(cards)["0012"].claim(None) == ("alice", "bob")
    # a tool whose every row ends in one separator more than its header: a row longer still is a cut one
    cards.write_text("account,identity,mandate\n11,alice,any,\n11,bob,,\n22,carol,,\n")
    assert load_signatories(cards)["11"].claim(None) == Mandate(("alice", "bob"), 1)
    cards.write_text("account,identity,mandate\n11,alice,any,\n11,Kowalski, J,,\n22,carol,,\n")
    assert "5 fields under a header of 3 ('Kowalski', then ' J'" in load_signatories(cards)["11"].error
    cards.write_text("account,identity,mandate\n11,alice, 2 over 10000\n11,bob,any\n")  # a space typed before it
    assert load_signatories(cards)["11"].limits == ((Decimal(10000), parse_rule("2")),)
    # columns that only look like "mandate" are the user's own; a misspelling is still refused
    for column in ("Mandant", "mandatory", "mandate_id", "mandataire"):
        cards.write_text(f"account,identity,{column}\n11,alice,x\n")
        assert load_signatories(cards)["11"].claim(None) == "alice"
    cards.write_text("account,identity,mandates\n11,alice,any\n")
    with pytest.raises(ClaimsError, match="column 'mandates' is not one sigpipe reads"):
        load_signatories(cards)


def test_a_memo_cut_before_the_amount_and_a_currency_column(tmp_path: Path):
    cards, claims = tmp_path / "cards.csv", tmp_path / "claims.csv"
    cards.write_text("account,identity,mandate\n11,alice,any\n11,bob,2 over 10000 USD\n")
    # "Invoices 101, 102" unquoted: the amount read 102 and the blank note passed for a trailing separator
    claims.write_text("document,account,memo,amount,note\n1.tif,11,Invoices 101, 102,12500.00,\n")
    with pytest.raises(ClaimsError, match="line 2: 6 fields under a header of 5 \\('Invoices 101', then ' 102': a "
                                          "field cut at a comma\\?\\)"):
        read_claims(claims, signatories=cards)
    # a currency column beside the amount: 9,500 pounds is not 9,500 of the card's dollars
    claims.write_text("document,account,amount,currency\n1.tif,11,9500.00,GBP\n2.tif,11,9500.00,usd\n"
                      "3.tif,11,$9500.00,EUR\n4.tif,11,9500,NULL\n")
    read = read_claims(claims, signatories=cards)
    assert read.amounts == {"2.tif": Decimal(9500), "4.tif": Decimal(9500)} and read.currencies == {"2.tif": "USD"}
    assert "amount '9500.00' is in GBP, and the rules over amounts of account 11's card in USD" in \
        read.unusable_amounts["1.tif"]
    assert "amount in USD on a row whose currency column gives EUR" in read.unusable_amounts["3.tif"]
    # a whole amount, then a number column: a serial of three digits is taken for a cut (as read, 500 would pick
    # a looser rule than 500,101), a branch of two is not (cents at most)
    claims.write_text("document,account,amount,branch\n1.tif,11,12500,42\n2.tif,11,500,101\n")
    read = read_claims(claims, signatories=cards)
    assert read.amounts == {"1.tif": Decimal(12500)} and list(read.unusable_amounts) == ["2.tif"]
