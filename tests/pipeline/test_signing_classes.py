"""Signing classes: a company's signature card names "A" and "B" signatories and a mandate such as "one A and one
B to sign" (``A+B``), or "an A alone up to 10,000, an A with a B over it"."""
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
    Need,
    all_of,
    claim_of,
    load_claims,
    load_signatories,
    parse_mandate,
    parse_rule,
    read_claims,
    rule_text,
)
from sigpipe.pipeline.errors import ClaimsError
from sigpipe.pipeline.report import DocumentInfo, DocumentReport, document_verdict, load_schema, summary_csv
from sigpipe.pipeline.review import _claim_text, held_for
from sigpipe.pipeline.runner import run_batch, stale_reason

ABC = ("alice", "bob", "carol")
CLASSES = {"alice": "A", "bob": "A", "carol": "B"}


def test_mandate_cells_with_signing_classes_are_read_and_written_alike():
    assert parse_rule("A+B") == (Need(2, (("A", 1), ("B", 1))),)
    assert parse_rule(" a + 2 b ") == (Need(3, (("A", 1), ("B", 2))),)  # case and spaces as people write them
    assert parse_rule("2A or A+B") == parse_rule("A+B or 2A") == parse_rule("a+b OR 2a or A+B")  # one form
    assert parse_rule("3 with A") == (Need(3, (("A", 1),)),) and parse_rule("any 2") == (Need(2),)
    assert parse_rule("any or A") == (Need(1),)  # "any one" already covers "an A"
    assert parse_rule("all") is None and parse_rule("") is None
    for cell in ("A+B", "A+B or 2A", "3 with A", "2", "B+DIRECTOR"):
        assert rule_text(parse_rule(cell) or ()) == cell  # reports write what cards say
    for bad in ("A+", "+B", "0A", "2 with", "A or", "any+B", "over", "0", "A+B+", "2 and B"):
        with pytest.raises(ValueError, match="mandate must be"):
            parse_rule(bad)
    with pytest.raises(ValueError, match="mandate must be 'all', 'any' or a number"):
        parse_mandate("A+B")  # the count-only reading refuses classes


def test_a_cheque_of_unknown_amount_is_held_to_every_rule_of_its_card():
    # "any one" and "an A with a B over 10,000": unknown amount -> an A with a B
    assert all_of([parse_rule("any"), parse_rule("A+B")]) == parse_rule("A+B")
    # "two" and "an A with a B": two, one an A and one a B; with "three", three of whom an A and a B
    assert all_of([parse_rule("2"), parse_rule("A+B")]) == parse_rule("A+B")
    assert all_of([parse_rule("3"), parse_rule("A+B")]) == (Need(3, (("A", 1), ("B", 1))),)
    assert rule_text(all_of([parse_rule("3"), parse_rule("A+B")])) == "3 with A+B"
    assert all_of([parse_rule("A or B"), parse_rule("2B")]) == parse_rule("2B")  # (A and 2B) is covered by 2B


def test_a_mandate_is_met_only_by_the_classes_it_names():
    either_a_and_b = claim_of(ABC, parse_rule("A+B"), CLASSES)
    assert isinstance(either_a_and_b, Mandate) and either_a_and_b.required == 2
    assert str(either_a_and_b) == "A+B of alice (A), bob (A), carol (B)"
    assert not either_a_and_b.met({"alice", "bob"})  # two A signatories: not an A and a B
    assert either_a_and_b.met({"bob", "carol"}) and either_a_and_b.met({"alice", "bob", "carol"})
    assert not either_a_and_b.met({"carol", "mallory"})  # someone outside the card counts for nothing
    # the document verdict: two genuine A signatures need review; an A and a B are genuine
    two_a = [sig("genuine", "alice"), sig("genuine", "bob")]
    assert document_verdict(two_a, claimed=either_a_and_b) == "needs_review"
    assert document_verdict([sig("genuine", "alice"), sig("genuine", "carol")], claimed=either_a_and_b) == "genuine"
    assert document_verdict([sig("genuine", "alice"), sig("forged", "carol")], claimed=either_a_and_b) == "forged"
    # a plain count of two would have let the two A signatures through
    assert document_verdict(two_a, claimed=claim_of(ABC, parse_rule("2"))) == "genuine"
    # one A and one B of two people is "both": a plain tuple, as any mandate of everybody is
    assert claim_of(("alice", "carol"), parse_rule("A+B"), CLASSES) == ("alice", "carol")
    with pytest.raises(ValueError, match="'2B' needs 2 person\\(s\\) of class B, and 1 are"):
        claim_of(ABC, parse_rule("2B"), CLASSES)
    with pytest.raises(ValueError, match="signing rule"):
        Mandate(ABC, 1, parse_rule("A+B") or (), ("A", "A", "B"))  # required disagrees with the rule


def test_signatory_tables_and_claims_files_give_each_person_a_class(tmp_path: Path):
    cards, claims = tmp_path / "cards.csv", tmp_path / "claims.csv"
    cards.write_text("account,identity,class,mandate\n"
                     "11,alice,a,A\n11,bob,A,\n11,carol,B,A+B over 10000\n"  # an A alone; an A with a B over 10k
                     "22,dave,,\n22,erin,,any\n")  # no classes: as before
    card = load_signatories(cards)["11"]
    assert card.classes == ("A", "A", "B") and card.rule == parse_rule("A")
    assert card.limits == ((Decimal(10000), parse_rule("A+B")),)
    claims.write_text("document,account,amount\nsmall.tif,11,500\nbig.tif,11,20000\nnone.tif,11,\nd.tif,22,\n")
    read = read_claims(claims, signatories=cards)
    assert read.people["small.tif"] == Mandate(ABC, 1, parse_rule("A") or (), ("A", "A", "B"))
    assert read.people["big.tif"] == read.people["none.tif"] == claim_of(ABC, parse_rule("A+B"), CLASSES)
    assert read.strictest == ("none.tif",) and read.people["d.tif"] == Mandate(("dave", "erin"), 1)
    # a contract's claims may give classes too
    claims.write_text("document,identity,class,mandate\ndeed.pdf,alice,A,A+B\ndeed.pdf,bob,A,\ndeed.pdf,carol,B,\n")
    assert load_claims(claims) == {"deed.pdf": claim_of(ABC, parse_rule("A+B"), CLASSES)}
    for path, text, match in [
        (cards, "account,identity,class,mandate\n1,a,A,A+C\n1,b,B,\n",
         "signatory table .*line 2: mandate 'A\\+C' for 1: 'A\\+C' needs 1 person\\(s\\) of class C, and 0 are"),
        (cards, "account,identity,class\n1,a,A\n1,a,B\n", "line 3: a is of class B for 1, but line 2 gives class A"),
        (cards, "account,identity,class\n1,a,2x\n", "line 2: a signing class is a word such as A or director"),
        (cards, "account,identity,mandate\n1,a,some\n1,b,\n",
         "line 2: mandate must be 'all', 'any' or a number of signers .* not 'some'"),
        (claims, "document,account,class\na.tif,11,A\n", "line 2: a signing class on a claim by account"),
    ]:
        path.write_text(text)
        if path == claims:
            with pytest.raises(ClaimsError, match=match):
                read_claims(claims, signatories=cards)
        else:  # that account's card cannot be used; its cheques fail, not the night's run
            assert re.search(match, load_signatories(cards)["1"].error)


def test_reports_keep_the_rule_and_classes_and_a_changed_card_redoes_them(tmp_path: Path):
    claim = claim_of(ABC, parse_rule("A+B or 3"), CLASSES)
    rep = DocumentReport.success(DocumentInfo("c.tif", SHA, 1), claim, [sig("genuine", "alice")], MODELS)
    d = rep.to_dict()
    assert (d["signing_rule"], d["signatory_classes"], d["signers_required"]) == (
        "A+B or 3", {"alice": "A", "bob": "A", "carol": "B"}, 2)
    jsonschema.validate(d, load_schema())
    assert DocumentReport.from_dict(d) == rep and rep.verdict == "needs_review"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({k: v for k, v in d.items() if k != "signatory_classes"}, load_schema())
    with pytest.raises(ValueError, match="disagrees with signing_rule"):
        DocumentReport.from_dict({**d, "signers_required": 1})  # an edited report
    row = next(csv.DictReader(io.StringIO(summary_csv([rep]))))
    assert (row["signers_required"], row["signing_rule"]) == ("2", "A+B or 3")
    assert held_for(rep.signatures[0], rep) == \
        "held for review with its document: those who signed do not meet the mandate A+B or 3"
    assert _claim_text(replace(rep, account="11")) == "account 11: A+B or 3 of alice (A), bob (A), carol (B)"
    kw = {"models": MODELS, "references": rep.references, "settings": rep.settings}
    assert stale_reason(rep, SHA, claim, **kw) is None  # type: ignore[arg-type]
    moved = claim_of(ABC, parse_rule("A+B or 3"), {**CLASSES, "bob": "B"})  # bob made a B signatory
    assert stale_reason(rep, SHA, moved, **kw) == "the claim changed"  # type: ignore[arg-type]
    assert stale_reason(rep, SHA, claim_of(ABC, parse_rule("A+B"), CLASSES), **kw) == "the claim changed"  # type: ignore[arg-type]


def test_a_batch_holds_a_cheque_whose_signers_do_not_meet_the_classes(batch: dict[str, Path],
                                                                       verifier_manifest: Path, tmp_path: Path):
    """End to end with the runner: the account's card gives classes; the report and summary carry them."""
    scans = tmp_path / "cheques"
    save_image(scans / "c1.png", page_with([(scribble(SIG_A), 300, 400)]))
    claims, cards = tmp_path / "claims.csv", tmp_path / "cards.csv"
    claims.write_text("document,account,amount\nc1.png,11,20000\n")
    cards.write_text("account,identity,class,mandate\n11,alice,A,any\n11,bob,B,A+B over 10000\n")
    models = DoubleModels(verifier_manifest)
    run_batch(config(batch, scans=scans, claims=claims, signatories=cards), models)
    c1 = all_reports(batch["out"])["c1.png"]
    jsonschema.validate(c1, load_schema())
    # one signature on a cheque over 10,000: an A and a B must sign -> both, here (two people)
    assert (c1["claimed_identity"], c1["verdict"]) == (["alice", "bob"], "needs_review")
    claims.write_text("document,account,amount\nc1.png,11,500\n")
    assert run_batch(config(batch, scans=scans, claims=claims, signatories=cards), models).processed == 1
    c1 = all_reports(batch["out"])["c1.png"]
    assert (c1["signers_required"], c1["verdict"]) == (1, "genuine")  # any one, under 10,000
    cards.write_text("account,identity,class,mandate\n11,alice,A,A\n11,bob,B,\n11,carol,B,A+B over 10000\n")
    claims.write_text("document,account,amount\nc1.png,11,20000\n")
    assert run_batch(config(batch, scans=scans, claims=claims, signatories=cards), models).processed == 1
    c1 = all_reports(batch["out"])["c1.png"]
    jsonschema.validate(c1, load_schema())
    assert (c1["signing_rule"], c1["signatory_classes"]) == ("A+B", {"alice": "A", "bob": "B", "carol": "B"})
    assert c1["verdict"] == "needs_review"
    row = next(csv.DictReader(io.StringIO((batch["out"] / "summary.csv").read_text())))
    assert (row["account"], row["signing_rule"]) == ("11", "A+B")
    assert run_batch(config(batch, scans=scans, claims=claims, signatories=cards), models).processed == 0


def test_a_damaged_signature_card_fails_its_cheques_not_the_night(batch: dict[str, Path], verifier_manifest: Path,
                                                                   tmp_path: Path):
    """One bad row in a bank's signatory table of thousands (a person without a name, a rule nobody can meet) used
    to stop the whole run (exit 2); now the cheques on that account fail, named, and the others are verified."""
    scans = tmp_path / "cheques"
    for name in ("c1.png", "c2.png", "c3.png"):
        save_image(scans / name, page_with([(scribble(SIG_A), 300, 400)]))
    claims, cards = tmp_path / "claims.csv", tmp_path / "cards.csv"
    claims.write_text("document,account\nc1.png,11\nc2.png,22\nc3.png,33\n")
    cards.write_text("account,identity,class,mandate\n11,alice,,any\n11,,,\n"  # a person's name missing
                     "22,alice,A,A+C\n22,bob,B,\n"  # nobody of class C
                     "33,alice,,any\n33,bob,,\n44,bob,,some\n")  # 44: no cheque tonight, still said
    s = run_batch(config(batch, scans=scans, claims=claims, signatories=cards), DoubleModels(verifier_manifest))
    reps = all_reports(batch["out"])
    for r in reps.values():
        jsonschema.validate(r, load_schema())
    for doc, line in (("c1.png", "line 3: empty account or identity"), ("c2.png", "line 4: mandate 'A\\+C' for 22")):
        r = reps[doc]
        assert (r["status"], r["error"]["kind"], r["account"]) == ("error", "bad_signatory_card", doc[1] * 2)
        assert re.search(f"signature card of account {doc[1] * 2} cannot be used: signatory table .*{line}",
                         r["error"]["message"])
    assert (reps["c3.png"]["status"], reps["c3.png"]["signers_required"]) == ("ok", 1)
    assert s.failed == 2
    said = [w for w in s.warnings if "signature card that cannot be used" in w]
    assert len(said) == 1 and said[0].startswith("3 account(s)") and "the 2 document(s)" in said[0]
    assert "account 44" in said[0]
    listed = json.loads((batch["out"] / "summary.json").read_text())["damaged_signature_cards"]
    assert [d["account"] for d in listed] == ["11", "22", "44"]  # complete, where the warning names the first 5
    assert "line 8: mandate must be" in listed[2]["message"]
    cards.write_text("account,identity,mandate\n11,alice,any\n11,bob,\n22,alice,\n33,alice,any\n33,bob,\n")
    s = run_batch(config(batch, scans=scans, claims=claims, signatories=cards), DoubleModels(verifier_manifest))
    assert s.processed == 2 and s.failed == 0  # the mended cards: the two failed cheques are verified


def test_a_rule_over_an_amount_adds_to_the_cards_rule_never_loosens_it(tmp_path: Path):
    """A helper's card: "an A and a B" and "2 over 10000". Taken alone, the rule over 10,000 let two A signatories
    pass the larger cheque (and two B's); a cheque over an amount meets every rule up to it."""
    cards = tmp_path / "cards.csv"
    cards.write_text("account,identity,class,mandate\n1,alice,A,A+B\n1,bob,A,2 over 10000\n1,carol,B,\n"
                     "2,alice,,all\n2,bob,,\n2,carol,A,A+B over 10000\n2,dave,B,\n"
                     "3,alice,,2\n3,bob,,1 over 10000\n3,carol,,\n"  # an odd card: one signer over 10,000?
                     "4,alice,,any\n4,bob,,2 over 10000\n4,carol,,all over 50000\n")
    read = load_signatories(cards)
    big = Decimal("20000.00")
    assert read["1"].claim(big) == read["1"].claim(Decimal(5)) == claim_of(ABC, parse_rule("A+B"), CLASSES)
    assert not read["1"].claim(big).met({"alice", "bob"})  # the helper's case: was genuine
    assert read["2"].claim(big) == ("alice", "bob", "carol", "dave")  # all, then all again
    assert read["3"].claim(big) == Mandate(ABC, 2)
    assert [read["4"].claim(Decimal(a)) for a in ("1", "10000.01", "50000.01")] == [
        Mandate(ABC, 1), Mandate(ABC, 2), ABC]  # the usual card: as before
    # rules that each can be met can be met together: an A and a B, two A's over 100 -> two A's and a B
    cards.write_text("account,identity,class,mandate\n1,alice,A,A+B\n1,bob,A,2A over 100\n1,carol,B,\n")
    assert load_signatories(cards)["1"].claim(Decimal(101)) == ABC


def test_ways_nobody_can_take_are_left_out_and_ambiguous_ones_refused(tmp_path: Path):
    # one of two A signatories has left: "A+B or 2A" is still met by an A and a B; the card is not refused
    left = claim_of(("alice", "carol"), parse_rule("A+B or 2A"), {"alice": "A", "carol": "B"})
    assert left == ("alice", "carol")  # an A and a B of two people: both
    three = claim_of(("alice", "carol", "dave"), parse_rule("A+B or 2A"), {"alice": "A", "carol": "B", "dave": "B"})
    assert isinstance(three, Mandate) and rule_text(three.rule) == "A+B"
    with pytest.raises(ValueError, match="'2A' needs 2 person\\(s\\) of class A, and 1 are \\(classes: A 1, B 1\\)"):
        claim_of(("alice", "carol"), parse_rule("2A"), {"alice": "A", "carol": "B"})
    # "any 2 with A or B": (2 with A) or B, or 2 with (A or B)? Each way must give its number of signers
    for cell in ("any 2 with A or B", "2 with A or any", "3 with A or 2B"):
        with pytest.raises(ValueError, match="is ambiguous: give each way its number of signers"):
            parse_rule(cell)
    with pytest.raises(ValueError, match="\\(3 with DIRECTOR or 3 with secretary, or 3 with DIRECTOR or 1 with "):
        parse_rule("3 with director or secretary")  # the card's own classes, not A and B
    assert rule_text(parse_rule("2 with A or 2 with B") or ()) == "2 with A or 2 with B"
    assert parse_rule("2 with A or 1 with B") == parse_rule("B or 2 with A")
    assert parse_rule("2 with A or 2B") == (Need(2, (("A", 1),)), Need(2, (("B", 2),)))  # 2B has its number


def test_an_amount_whose_dot_may_separate_thousands_is_refused(tmp_path: Path):
    """In a comma-decimal locale 12.500 is twelve thousand five hundred; read as 12.50 it picked the looser rule."""
    cards, claims = tmp_path / "cards.csv", tmp_path / "claims.csv"
    cards.write_text("account;identity;class;mandate\n1;alice;A;any\n1;carol;B;A+B over 5000\n")
    claims.write_text("document;account;amount\na.tif;1;7.250\n")
    read = read_claims(claims, signatories=cards)  # not guessed: held to every rule of the card, A+B
    assert re.search("line 2: amount .7.250. is ambiguous .*7250,00 if the dot", read.unusable_amounts["a.tif"])
    assert read.people["a.tif"] == ("alice", "carol") and read.strictest == ("a.tif",)
    claims.write_text("document;account;amount\na.tif;1;7250.00\nb.tif;1;7.25\nc.tif;1;1234.500\n")
    read = read_claims(claims, signatories=cards)
    assert read.people["a.tif"] == ("alice", "carol") and read.people["b.tif"] == Mandate(("alice", "carol"), 1)
    assert read.people["c.tif"] == Mandate(("alice", "carol"), 1)  # four digits before the dot: no thousands dot


def test_a_review_sheets_caption_wraps_a_long_claim_instead_of_cutting_it():
    import cv2

    from sigpipe.pipeline.review import _wrap
    claim = "claimed: account 11: A+B of " + ", ".join(f"person-{i} ({'AB'[i % 2]})" for i in range(12))
    parts = _wrap(claim, 600)
    assert len(parts) > 1 and " ".join(parts) == claim  # nothing lost: the last signatory's class is there
    assert all(cv2.getTextSize(p, cv2.FONT_HERSHEY_SIMPLEX, 0.55, 1)[0][0] <= 600 for p in parts)
    assert "".join(_wrap("x" * 400, 100)) == "x" * 400  # a word wider than the sheet is cut, not dropped
