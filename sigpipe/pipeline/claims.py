"""The claims CSV: which person each document's signatures are claimed to be from.

Header ``document,identity`` (other columns are ignored); ``document`` is the path relative to SCANS, with ``/``
separators. Blank lines are skipped. A document signed by several people (a contract) is listed once per signatory.
Spreadsheets saved as CSV in locales whose decimal mark is a comma separate fields with ``;``; a header separated by
``;`` or by tabs is read that way, and so is a file whose first line names its delimiter as Excel writes it (``sep=;``).
The file is UTF-8 (with or without a BOM), or UTF-16 with a BOM (Excel's "Unicode Text").
An optional column ``mandate`` says how many of a document's claimed people must sign it: ``all`` (the default, also
a blank cell), ``any`` (one of them: a joint account's "either to sign"), or a number (a company's "any two
directors": ``2``, also written ``any 2``).
A row may name the account a document (a cheque) is drawn on, column ``account``, instead of people: the account's
people and mandate are then the signatory table's (``--signatories``, :func:`load_signatories`; :func:`read_claims`),
and an optional column ``amount`` gives the cheque's amount, which picks the card's rules over amounts
(:func:`parse_amount`: ``1,234.56`` and ``1.234,56`` alike).
An optional column ``class`` gives each person a signing class (a company card's "A" and "B" signatories), which a
mandate may name: ``A+B``, ``2A``, ``A+B or 2A`` (:func:`parse_rule`).
"""

from __future__ import annotations

import codecs
import csv
import difflib
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from sigpipe._files import open_regular
from sigpipe.pipeline.errors import ClaimsError

REQUIRED_COLUMNS = ("document", "identity")
MANDATE_COLUMN = "mandate"
ACCOUNT_COLUMN = "account"  # a claims file's rows may name the account a cheque is drawn on instead of people
AMOUNT_COLUMN = "amount"  # a cheque's amount, for an account whose mandate asks more signers over an amount
CLASS_COLUMN = "class"  # a person's signing class (a company card's A and B signatories), which mandates may name
CURRENCY_COLUMN = "currency"  # the currency of a row's amount (a claims file) or of its rule over an amount (a table)


@dataclass(frozen=True, order=True)
class Need:
    """One way to meet a mandate: at least ``total`` of the claimed people signing, among them at least ``n`` of
    each ``(class, n)`` of ``classes`` (signing classes, a company card's "A" and "B" signatories). Written as a
    mandate cell writes it (:func:`parse_rule`): ``2``, ``A+B``, ``2A``, ``3 with A``."""

    total: int
    classes: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        if self.total < max(1, sum(n for _, n in self.classes)) or any(n < 1 for _, n in self.classes) or \
                len({c for c, _ in self.classes}) != len(self.classes):
            raise ValueError(f"not a mandate: {self.total} signer(s) with {self.classes!r}")

    def met(self, signed: Collection[str], class_of: dict[str, str]) -> bool:
        """Whether the people who ``signed`` (different people) meet it, ``class_of`` giving each one's class."""
        counts = Counter(class_of.get(p, "") for p in signed)
        return len(signed) >= self.total and all(counts[c] >= n for c, n in self.classes)

    def __str__(self) -> str:
        terms = "+".join(f"{n if n > 1 else ''}{c}" for c, n in self.classes)
        if not terms:
            return str(self.total)
        return terms if self.total == sum(n for _, n in self.classes) else f"{self.total} with {terms}"


# A mandate written with signing classes: its ways to be met (any one suffices), sorted, none a stricter copy of
# another (:func:`canonical_rule`).
Rule = tuple[Need, ...]


def canonical_rule(needs: Iterable[Need]) -> Rule:
    """``needs`` without repeats and without a need that asks at least as much as another (which is then met
    first), sorted: one form for each rule, so two cards that say the same compare equal."""
    unique = sorted(set(needs))

    def covers(a: Need, b: Need) -> bool:  # meeting b always meets a
        got = dict(b.classes)
        return a.total <= b.total and all(got.get(c, 0) >= n for c, n in a.classes)

    return tuple(b for b in unique if not any(a != b and covers(a, b) for a in unique))


def rule_text(rule: Rule) -> str:
    """A rule as a mandate cell writes it: ``A+B or 2A``."""
    return " or ".join(str(n) for n in rule)


def all_of(rules: Iterable[Rule]) -> Rule:
    """The rule met exactly when every one of ``rules`` is (a cheque of unknown amount under a card's rules for
    every amount): each way of meeting one combined with each of the others'."""
    out: list[Need] = [Need(1)]
    for rule in rules:
        merged = []
        for a in out:
            for b in rule:
                counts = dict(a.classes)
                for c, n in b.classes:
                    counts[c] = max(counts.get(c, 0), n)
                merged.append(Need(max(a.total, b.total, sum(counts.values())), tuple(sorted(counts.items()))))
        out = merged
    return canonical_rule(out)


@dataclass(frozen=True)
class Mandate:
    """Several people of whom any ``required`` must sign (fewer than all of them): a joint account's "either to
    sign" (1 of 2), a company's "any two directors". Build it with :func:`normalise_claim` or :func:`claim_of`,
    which give a plain tuple when everybody must sign.

    With signing classes (a company card's "one A and one B signatory"), ``rule`` says who must sign (the
    :class:`Need` objects, any one of which suffices), ``classes`` each person's class ("" for none) and
    ``required`` is the fewest signers that can meet it.
    """

    people: tuple[str, ...]
    required: int
    rule: Rule = ()
    classes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(set(self.people)) != len(self.people) or isinstance(self.required, bool) or \
                not isinstance(self.required, int) or not 1 <= self.required < len(self.people):
            raise ValueError(f"a mandate asks 1 to {len(self.people) - 1} of its different people to sign, not "
                             f"{self.required!r} of {list(self.people)} (all of them: a tuple of the names)")
        if (self.rule or self.classes) and (
                len(self.classes) != len(self.people) or self.rule != canonical_rule(self.rule)
                or not any(n.classes for n in self.rule) or self.required != min(n.total for n in self.rule)
                or not all(n.met(self.people, self.class_of) for n in self.rule)):  # each way: everybody meets it
            raise ValueError(f"signing rule {rule_text(self.rule)!r} with classes {list(self.classes)} does not fit "
                             f"{list(self.people)} asked {self.required}")

    @property
    def class_of(self) -> dict[str, str]:
        """Each person's signing class, for those who have one."""
        return {p: c for p, c in zip(self.people, self.classes, strict=False) if c}  # none without classes

    def met(self, signed: Collection[str]) -> bool:
        """Whether the claimed people who ``signed`` meet the mandate."""
        signed = set(signed) & set(self.people)
        if not self.rule:
            return len(signed) >= self.required
        return any(n.met(signed, self.class_of) for n in self.rule)

    def __str__(self) -> str:
        if not self.rule:
            return f"any {self.required} of {', '.join(self.people)}"
        named = ", ".join(f"{p} ({c})" if c else p for p, c in zip(self.people, self.classes, strict=True))
        return f"{rule_text(self.rule)} of {named}"


# Who a document is claimed to be signed by: one person, several who must all sign (in the order of the claims
# file), or several of whom some must sign.
Claim = str | tuple[str, ...] | Mandate


def claimants(claim: Claim | None) -> tuple[str, ...]:
    """The people of a claim as a tuple (empty without a claim)."""
    if claim is None:
        return ()
    if isinstance(claim, Mandate):
        return claim.people
    return (claim,) if isinstance(claim, str) else tuple(claim)


def signers_required(claim: Claim | None) -> int:
    """How many of the claim's people must have a genuine signature on the document (0 without a claim)."""
    return claim.required if isinstance(claim, Mandate) else len(claimants(claim))


def normalise_claim(claimed: Claim | Sequence[str] | None, required: int | None = None) -> Claim | None:
    """A claim as reports hold it: a name, a tuple of two or more different names (a list or a tuple of one
    name, or names repeated, as a caller may give them), a :class:`Mandate` when ``required`` (or a Mandate given)
    asks fewer of them than all, or None. Names are read as a claims CSV's are: spaces around them dropped, in
    Unicode's composed form (NFC), as REFS folders are enrolled.

    Args:
        required: how many of the people must sign (None: all of them; the Mandate's own when one is given).

    Raises:
        ValueError: an empty name, no name at all, or ``required`` under 1 or over the number of people.
    """
    if claimed is None:
        if required is not None:
            raise ValueError("a mandate needs claimed people")
        return None
    if isinstance(claimed, Mandate):
        if claimed.rule and required in (None, claimed.required):
            return claimed  # its names were normalised when its classes were given to them (claim_of)
        required = claimed.required if required is None else required
        claimed = claimed.people
    if isinstance(claimed, str):
        claimed = [claimed]
    elif isinstance(claimed, bytes | Mapping) or not isinstance(claimed, Iterable):
        raise ValueError(f"claimed must be a person's name, several names or None, not {claimed!r}")
    raw = list(claimed)
    if isinstance(claimed, Set):  # a set's order is the hash seed's: the names', as read
        raw.sort(key=lambda n: unicodedata.normalize("NFC", n.strip()) if isinstance(n, str) else "")
    if not raw or not all(isinstance(n, str) and n.strip() for n in raw):
        raise ValueError(f"claimed must be a person's name, several names or None, not {raw!r}")
    names = tuple(dict.fromkeys(unicodedata.normalize("NFC", n.strip()) for n in raw))
    if required is not None and (isinstance(required, bool) or not isinstance(required, int)
                                 or not 1 <= required <= len(names)):
        raise ValueError(f"signers required must be 1 to {len(names)} (the people claimed), not {required!r}")
    if required is not None and required < len(names):
        return Mandate(names, required)
    return names[0] if len(names) == 1 else names


def claim_of(people: Sequence[str], rule: Rule | None, classes: dict[str, str] | None = None) -> Claim:
    """The claim of ``people`` under ``rule`` (None: all of them must sign), ``classes`` giving the signing class of
    those who have one: a plain count becomes a :class:`Mandate` of that many (or everybody's tuple), a rule with
    classes a Mandate carrying them.

    Raises:
        ValueError: a rule that ``people`` cannot meet (more signers than they are, a class too few of them have).
    """
    names = normalise_claim(list(people))
    assert names is not None
    names_t = claimants(names)
    if rule is None:
        return names
    rule = canonical_rule(rule)
    if not any(n.classes for n in rule):
        claim = normalise_claim(names_t, min(n.total for n in rule))
        assert claim is not None
        return claim
    cls = tuple((classes or {}).get(p, "") for p in names_t)
    class_of = {p: c for p, c in zip(names_t, cls, strict=True) if c}
    # a way of meeting the rule that the people cannot take, even all of them signing (one of two A signatories
    # left: "A+B or 2A"), changes nothing: it is left out; a rule none of whose ways they can take is an error
    possible = tuple(n for n in rule if n.met(names_t, class_of))
    if not possible:
        n, have = rule[0], Counter(cls)
        short = [(c, k) for c, k in n.classes if have[c] < k]
        raise ValueError(
            f"{str(n)!r} needs {short[0][1]} person(s) of class {short[0][0]}, and {have[short[0][0]]} are (classes: "
            f"{', '.join(f'{c} {k}' for c, k in sorted(have.items()) if c) or 'none'})" if short
            else f"{str(n)!r} needs {n.total} signers, of {len(names_t)} person(s)")
    fewest = min(n.total for n in possible)
    if fewest == len(names_t):
        return names  # every way of meeting it has everybody sign
    return Mandate(names_t, fewest, possible, cls)


def _mandate_like(text: str) -> bool:  # a count: a shifted name ("Smith, John") also reads as a class
    try:
        parse_mandate(text)
        return True
    except ValueError:
        return False


_CLASS = re.compile(r"[^\W\d_][\w-]{0,19}")  # a signing class: A, B, director
_WORDS = {"any", "all", "or", "over", "with", "and"}


def signing_class(text: str) -> str:
    """A signing class as written on a card (``a``, ``Director``) in the form rules match (upper case).

    Raises:
        ValueError: not a word of letters (digits, ``-`` and ``_`` after the first), or one of the mandate's words.
    """
    t = unicodedata.normalize("NFKC", text).strip()
    if not _CLASS.fullmatch(t) or t.casefold() in _WORDS:
        raise ValueError(f"a signing class is a word such as A or director, not {text.strip()!r}")
    return t.upper()


def parse_rule(text: str) -> Rule | None:
    """A mandate cell: None for ``all`` or a blank cell (everybody must sign); otherwise the ways to meet it,
    separated by ``or``: ``any`` (one), a number of signers (``2``, also ``any 2``), signing classes joined by
    ``+`` (``A+B``: one A and one B signatory; ``2A``; ``A+2B``), or a number with classes (``3 with A``: three,
    one of them an A).

    Raises:
        ValueError: anything else, or a number under 1.
    """
    t = " ".join(text.split())
    if t.casefold() in ("", "all"):
        return None
    needs: list[Need] = []
    for way in re.split(r" or ", t, flags=re.IGNORECASE):
        # (2.0: a spreadsheet's number column with blanks, which pandas writes as floats)
        m = None if way.casefold() == "any" else re.fullmatch(r"(?:any )?(\d{1,4})(?:\.0+)?(?: with (.+))?", way,
                                                              re.IGNORECASE)
        total, terms = (int(m.group(1)), m.group(2) or "") if m else (1, "") if way.casefold() == "any" else (0, way)
        counts: dict[str, int] = {}
        for term in terms.split("+") if terms else []:
            mt = re.fullmatch(r"(\d{1,3})? ?(\S+)", term.strip())
            try:
                cls = signing_class(mt.group(2)) if mt else signing_class(term)
            except ValueError:
                cls = ""
            if not mt or not cls or (mt.group(1) is not None and int(mt.group(1)) < 1):
                raise ValueError(f"mandate must be 'all', 'any', a number of signers (e.g. 2) or signing classes "
                                 f"(e.g. A+B), not {text.strip()!r}")
            counts[cls] = counts.get(cls, 0) + int(mt.group(1) or 1)
        if (m is None and not counts and way.casefold() != "any") or (m is not None and total < 1):
            raise ValueError(f"mandate must be 'all', 'any', a number of signers (e.g. 2) or signing classes "
                             f"(e.g. A+B), not {text.strip()!r}")
        need = Need(max(total, sum(counts.values())), tuple(sorted(counts.items())))
        wide = [n for n in needs if n.classes and n.total > sum(k for _, k in n.classes)]
        widest = max(wide, key=lambda n: n.total, default=None)
        if m is None and widest is not None and need.total < widest.total:  # "2 with A or B": (2 with A) or B?
            raise ValueError(f"mandate {text.strip()!r} is ambiguous: give each way its number of signers "
                             f"({widest} or {widest.total} with {way}, or {widest} or {need.total} with {way})")
        needs.append(need)
    return canonical_rule(needs)


def parse_mandate(text: str) -> int | None:
    """A claims file's mandate cell as a number of signers: None for ``all`` or a blank cell (everybody), 1 for
    ``any``, N for ``N`` or ``any N``.

    Raises:
        ValueError: anything else (signing classes included: :func:`parse_rule`), or a number under 1.
    """
    rule = parse_rule(text)
    if rule is None:
        return None
    if len(rule) != 1 or rule[0].classes:
        raise ValueError(f"mandate must be 'all', 'any' or a number of signers (e.g. 2), not {text.strip()!r}")
    return rule[0].total


# ISO 4217 codes an amount may carry (any case), and the signs and abbreviations written for them; other words
# (a scale such as "LAC" or "MIO": 1.5 lakh is 150,000) are not dropped as if they were a currency
CURRENCIES = frozenset("USD EUR GBP CHF PLN CZK HUF SEK NOK DKK ISK RON BGN RSD UAH TRY INR PKR LKR NPR BDT JPY CNY "
                       "HKD SGD KRW AUD NZD CAD MXN BRL ZAR AED SAR ILS".split())
_CURRENCY_SIGNS = {"$": "USD", "US$": "USD", "€": "EUR", "£": "GBP", "₹": "INR", "RS": "INR", "ZŁ": "PLN",
                   "KČ": "CZK", "FR": "CHF", "SFR": "CHF", "¥": "JPY", "₩": "KRW", "₺": "TRY", "₪": "ILS",
                   "R$": "BRL", "A$": "AUD", "C$": "CAD", "₴": "UAH"}


def _currency(token: str) -> str:
    """The ISO code of a currency as written beside an amount (``€``, ``eur``, ``Rs.``, ``zł``, ``SFr.``).

    Raises:
        ValueError: not a currency sigpipe knows.
    """
    t = token.strip().upper().rstrip(".")
    code = t if t in CURRENCIES else _CURRENCY_SIGNS.get(t)
    if code is None:
        raise ValueError(f"{token.strip()!r} is not a currency sigpipe knows (an ISO code such as EUR, or $, €, £, "
                         "₹, Rs., zł, Fr.)")
    return code


def parse_money(text: str) -> tuple[Decimal, str]:
    """An amount as a claims file writes it, in either locale's convention, and its currency (an ISO code; ""
    when none is written): ``1234.56``, ``1,234.56``, ``$1,234.56``, ``1.234,56``, ``1234,56``, ``1 234,56 zł``,
    ``CHF 1'234.50``, ``10.000,-``, ``Rs. 1,23,456/-``. Where both marks appear the last one is the decimal mark;
    a comma alone before one or two digits is a decimal comma, before groups of three digits a thousands comma
    (``12,500``: twelve thousand five hundred).

    Raises:
        ValueError: anything else (not a number, a negative one, groups that are not of three digits, a word
            that is no currency), and ``12.500`` (a thousands dot where the decimal mark is a comma: read as
            12.50 it would pick a looser rule).
    """
    bad = ValueError(f"amount must be a number such as 1234.56, 1,234.56 or 1.234,56, not {text.strip()!r}")
    m = re.fullmatch(r"(\D*?)\s*(\d|\d.*?\d)\s*(\D*)", " ".join(text.split()))  # (currency) number (marks, currency)
    if m is None:
        raise bad
    lead, t, trail = m.groups()
    if re.search(r"[.,]$", lead) and lead.strip().upper().rstrip(".") not in ("RS", "FR", "SFR"):
        raise bad  # $.50: a decimal mark before the digits, not the end of Rs. or Fr.
    dash = re.match(r"([.,])\s*[-\u2013\u2014]|/-", trail)  # 10.000,- and 1'234.- (no cents), Rs. 500/- (India)
    if dash:
        t, trail = t + (f"{dash.group(1)}00" if dash.group(1) else ""), trail[dash.end():]
    codes = set()
    for c in (lead, trail):
        if not c.strip():
            continue
        if not any(ch.isalpha() or unicodedata.category(ch) == "Sc" for ch in c):
            raise bad  # -5, (100), +100
        try:
            codes.add(_currency(c))
        except ValueError as e:
            raise ValueError(f"amount {text.strip()!r}: {e}") from None
    if len(codes) > 1:
        raise ValueError(f"amount {text.strip()!r} names two currencies")
    if re.fullmatch(r"[1-9]\d{0,2}\.\d{3}", t):  # 12.500: twelve and a half, or (a comma-decimal locale's) 12,500?
        w, p = t.split(".")
        raise ValueError(f"amount {text.strip()!r} is ambiguous (a dot between thousands, where the decimal mark "
                         f"is a comma?): write it with two decimals ({w}{p}.00 or {w}{p},00 if the dot separates "
                         "thousands)")
    groups = r"[1-9]\d{0,2}(?:[ '\u2019]\d{3})+"  # 1 234,56 (any space), 1'234.56 (Swiss)
    whole, sep, part = None, "", ""
    if re.fullmatch(rf"{groups}(?:[.,]\d+)?", t):
        whole, sep, part = re.fullmatch(r"([^.,]+)(?:([.,])(\d+))?", t).groups("")  # type: ignore[union-attr]
        whole = re.sub(r"[ '\u2019]", "", whole)
    elif re.fullmatch(r"\d+(?:\.\d+)?|[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?|[1-9]\d?(?:,\d\d)+,\d{3}(?:\.\d+)?", t):
        whole = t.replace(",", "")  # 1234.56, 1,234.56, 12,500; 1,23,456.00 (lakh groups, as Indian cheques)
    elif re.fullmatch(r"\d+,\d{1,2}|[1-9]\d{0,2}(?:\.\d{3})+,\d+", t):  # 1234,56, 1.234,56
        whole = t.replace(".", "").replace(",", ".")
    elif re.fullmatch(r"[1-9]\d{0,2}(?:\.\d{3}){2,}", t):  # 1.234.567
        whole = t.replace(".", "")
    if whole is None:
        raise bad
    return Decimal(whole + (f".{part}" if sep else "")), codes.pop() if codes else ""


def parse_amount(text: str) -> Decimal:
    """An amount as :func:`parse_money` reads it, without its currency."""
    return parse_money(text)[0]


# "amount" in the languages of banks' spreadsheets: a column so named holds the cheques' amounts
_AMOUNT_WORDS = frozenset("amount amounts amt betrag montant importe importo kwota bedrag belopp beløb beløp částka "
                          "castka összeg tutar राशि".split())


def _amount_like(column: str) -> bool:
    """Whether a claims file's column (lower case) looks meant for the cheques' amounts: ``Betrag``, ``montant``,
    ``Amount (EUR)``, ``cheque amount``, ``amounts``."""
    words = re.findall(r"[^\W\d_]+", unicodedata.normalize("NFKC", column).casefold())
    return any(w in _AMOUNT_WORDS for w in words) or bool(difflib.get_close_matches(column, [AMOUNT_COLUMN], 1, 0.8))


# what database and statistics exports write in an empty cell: blank, in a class, mandate, amount or currency cell
_NULLS = frozenset({"null", "na", "n/a", "#n/a", "nan", "none", "<na>", "nat"})


def _cell(row: list[str], i: int | None) -> str:
    """Field ``i`` of a row (stripped; "" for a column the row does not reach, and for an export's NULL or NA):
    for a class, a mandate, an amount or a currency, never for a name (Na is a surname)."""
    t = row[i].strip() if i is not None and i < len(row) else ""
    return "" if t.casefold() in _NULLS else t


def _with_currency(money: tuple[Decimal, str], column: str) -> tuple[Decimal, str]:
    """An amount and the currency it names, with the row's currency column (``column``, "" for none) taken into
    account: the two must agree.

    Raises:
        ValueError: the column names no currency sigpipe knows, or another currency than the amount's own.
    """
    if not column:
        return money
    code = _currency(column)
    if money[1] and money[1] != code:
        raise ValueError(f"amount in {money[1]} on a row whose currency column gives {code}")
    return money[0], code


def _spaced(row: list[str]) -> int:
    """How many fields of a row after the first start with a space (a tool's ", " after every field gives its
    trailing empty field one too)."""
    return sum(1 for c in row[1:] if c[:1].isspace())


def _comma_cut(row: list[str], width: int, raw_width: int, ii: int | None, mi: int | None,
               ci: int | None) -> int | None:
    """The field of a comma-separated row (under a header of ``width`` columns, ``raw_width`` with its trailing
    separators) that reads as the tail of the one before it, cut at an unquoted comma (``Kowalski, J``,
    ``Invoices 101, 102``), or None: the one field of the row that starts with a space (a file typed with a space
    after every comma has several), on a row with more fields than the header; or, on a row as long, right after
    the identity (column ``ii``) where a class (``ci``) or a mandate (``mi``) that is not a number of signers
    would be."""
    if _spaced(row) != 1:
        return None
    j = next(j for j in range(1, len(row)) if row[j][:1].isspace())
    if j >= width or not row[j].strip():
        return None
    if len(row) > raw_width:
        return j
    if ii is None or j != ii + 1:
        return None
    if j == ci:
        return j
    if j == mi:
        try:
            rule, _ = _parse_rule(row[j])  # " any", " 2 over 10000": a space typed before a mandate
        except ValueError:
            return j
        return j if rule is not None and any(n.classes for n in rule) else None
    return None


def _cut_number(cell: str, after: str, longer: bool = True) -> bool:
    """Whether two fields of a comma-separated row are one number cut at an unquoted comma: ``12`` then
    ``500.00``, ``500.00 USD`` or ``500`` (12,500: a group of three digits after one to three digits; ``500`` then
    a serial ``101`` is taken for one too: read as 500 a cut amount would pick a looser rule), ``2 over 10`` then
    ``000``; and cents, ``10000`` then ``50``, only when the row has more fields than the header (``longer``):
    ``12500`` then a branch ``42`` is not."""
    whole = re.search(r"(?<![\d.,])(\d+)$", cell.strip())
    tail = re.fullmatch(r"(\d{1,3})(\.\d+)?(?:\s*[^\d\s.,].*)?", after.strip())
    if whole is None or tail is None:
        return False
    return len(whole.group(1)) <= 3 and len(tail.group(1)) == 3 or \
        longer and len(tail.group(1)) <= 2 and tail.group(2) is None


def _parse_rule(cell: str) -> tuple[Rule | None, tuple[Decimal, str] | None]:
    """A mandate cell as (its rule, :func:`parse_rule`; over this amount, in this currency ("" none), or None):
    ``any``, ``2 over 10000``, ``A+B over 10.000,00 €``."""
    m = re.fullmatch(r"(.*?)\s+over\s+(\S.*)", cell.strip(), re.IGNORECASE)
    if m is None:
        return parse_rule(cell), None
    return parse_rule(m.group(1)), parse_money(m.group(2))


@dataclass(frozen=True)
class SignatoryCard:
    """An account's signature card: who may sign for it, the rule for who must (``rule``), the rules over amounts
    (``limits``: (amount, rule) in ascending amounts; a cheque over an amount is held to that rule as well) and each
    person's signing class (``classes``, "" for none; empty when the card gives none). A card one of whose rows
    the table gets wrong (an empty identity, a mandate that is not one) has an ``error``: the cheques drawn on the
    account fail, not the night's run."""

    people: tuple[str, ...]
    rule: Rule
    limits: tuple[tuple[Decimal, Rule], ...] = ()
    classes: tuple[str, ...] = ()
    error: str = ""  # why the card cannot be used (a row of it the table gets wrong), "" when it can
    currency: str = ""  # the currency its rules over amounts name (an ISO code), "" when they name none

    def claim(self, amount: Decimal | None) -> Claim:
        """The claim of a cheque of ``amount`` drawn on the account: the card's rule and each of its rules for an
        amount the cheque is over, at once (:func:`all_of`); an unknown amount (None) is held to all of them.

        Raises:
            ClaimsError: the card has an error (:attr:`error`).
        """
        if self.error:
            raise ClaimsError(self.error)
        # over an amount, the card's rule for it and every rule below it too: a card whose rule over 10,000 reads
        # looser than its plain one ("A+B", "2 over 10000") must not let two A signatories pass the larger cheque
        rule = all_of([self.rule, *(r for over, r in self.limits if amount is None or amount > over)])
        return claim_of(self.people, rule, dict(zip(self.people, self.classes, strict=False)))


def normalise_document(name: str) -> str:
    """A document name as written by people (``./a\\b.pdf``) in the form reports use (``a/b.pdf``). A ``\\xNN``
    escape, as reports write the bytes of a name that is not UTF-8 (``caf\\xe9.pdf``), is kept (see
    :func:`match_documents`)."""
    name = _BACKSLASH.sub("/", name.strip())
    while name.startswith("./"):
        name = name[2:]
    return name


_BACKSLASH = re.compile(r"\\(?!x[0-9a-f]{2})")  # a Windows separator, not an escaped byte


def load_claims(path: str | Path, documents: Collection[str] | None = None,
                scans: str | Path | None = None) -> dict[str, Claim]:
    """Read a claims CSV naming people (``document,identity``); given the ``documents`` of ``scans``, keyed by the
    documents its rows mean (:func:`match_documents`), the rows of one document in several spellings counted
    together, its mandate too. A file naming accounts needs their signatories: :func:`read_claims`.

    Returns:
        ``{document (relative POSIX path): identity}``, or ``(identity, ...)`` for a document listed with several
        identities (in the order of their first row; a repeated row counts once), or a :class:`Mandate` of them
        when its ``mandate`` asks fewer than all.

    Raises:
        ClaimsError: unreadable file or one that is not UTF-8 (or UTF-16 with a BOM) text, header without
            ``document`` and ``identity``, a row with an empty value, or a row with more fields than a header of just
            these two (an unquoted delimiter in a name), a field over the csv module's size limit, a mandate that
            is not ``all``, ``any`` or a number, asks more people than are claimed, or differs between a document's
            rows; a row naming an account. The message names the file and the line.
    """
    return read_claims(path, documents, scans).people


@dataclass(frozen=True)
class Claims:
    """A claims file read against a signatory table: whom each document is claimed to be signed by.

    ``people``: document -> :data:`Claim` (an account's people and mandate for a document claimed by account);
    ``accounts``: document -> the account it is claimed by (as the claims file writes it); ``unknown``: document ->
    why its account cannot be used (not in the signatory table), for documents absent from ``people``;
    ``strictest``: documents held to their account's strictest rule for want of an amount; ``damaged``: document
    -> why its account's signature card cannot be used (a row of it the table gets wrong), for documents absent
    from ``people``; ``damaged_cards``: that reason for every such account of the table (by :func:`account_key`);
    ``amounts``: document -> the amount the claims give it, for documents claimed by account (those that fail
    too: a failed cheque is handled by hand); ``currencies``: document -> the currency its amount names, for those
    that name one; ``unusable_amounts``: document -> why the amount the claims give it cannot be used (not a
    number, cut at an unquoted comma, two amounts, another currency than its card's): it is held to all of its
    card's rules, as one without an amount (and in ``strictest`` when the card has rules over amounts).
    """

    people: dict[str, Claim]
    accounts: dict[str, str]
    unknown: dict[str, str]
    strictest: tuple[str, ...] = ()  # documents on accounts with amount limits, without an amount
    damaged: dict[str, str] = field(default_factory=dict)  # document -> why its account's card cannot be used
    damaged_cards: dict[str, str] = field(default_factory=dict)  # account (account_key) -> why its card cannot be used
    amounts: dict[str, Decimal] = field(default_factory=dict)  # document claimed by account -> its amount, if given
    unusable_amounts: dict[str, str] = field(default_factory=dict)  # document -> why its amount cannot be used
    currencies: dict[str, str] = field(default_factory=dict)  # document -> the currency its amount names (ISO)


def read_claims(path: str | Path, documents: Collection[str] | None = None, scans: str | Path | None = None,
                signatories: str | Path | None = None) -> Claims:
    """Read a claims CSV (:func:`load_claims`) whose rows name a document's people (``identity``) or the account
    it is drawn on (``account``; a cheque), the account's people and mandate taken from the ``signatories`` table
    (:func:`load_signatories`), under the rule for the row's ``amount`` where the account's mandate asks more
    signers over an amount (the strictest rule without one). A document is claimed by one account or by people,
    not both.

    Raises:
        ClaimsError: as :func:`load_claims`; a row with both or neither of identity and account, a document
            claimed by two accounts or by an account and people, a mandate on an account's row (the table gives
            it), an amount that is not a number or differs between a document's rows, a file naming accounts
            without a table, or a bad table.
    """
    path = Path(path)
    table = _read_table(path, "claims file", "document", normalise_document)
    if table.accounts and signatories is None:
        line = min(line for rows in table.accounts.values() for _, line in rows)
        raise ClaimsError(f"claims file {path}, line {line}: claims by account need the signatory table "
                          "(--signatories FILE: account,identity[,mandate])")
    cards = load_signatories(signatories) if signatories is not None else {}
    meant = _resolver(documents, Path(scans or ".")) if documents is not None else (lambda key: key)
    groups: dict[str, list[str]] = {}  # the document meant -> its spellings, in the order they first appear
    for doc in [*table.people, *table.accounts]:
        if doc not in groups.get(meant(doc), []):
            groups.setdefault(meant(doc), []).append(doc)
    people: dict[str, Claim] = {}
    accounts: dict[str, str] = {}
    unknown: dict[str, str] = {}
    strictest: list[str] = []
    damaged: dict[str, str] = {}
    amount_of: dict[str, Decimal] = {}
    currency_of: dict[str, str] = {}
    unusable: dict[str, str] = {}
    # the currencies the claims name for cheques on cards whose rules over amounts name none, an amount naming
    # none counting as one of its own (the bank's), a cheque's rows with and without it (12500.00, $12,500.00) as
    # the one named: with one, it is the bank's; with several, which one a card means is not known (_amount)
    loose = sorted({next((cur for _, cur, _, _ in rows if cur), "none named") for key, rows in table.amounts.items()
                    for acc, _ in table.accounts.get(key, [])[:1]
                    if (c := cards.get(account_key(acc))) is not None and c.limits and not c.currency})
    zeros: dict[str, str] | None = None
    for doc, spellings in groups.items():
        named = [a for key in spellings for a in table.accounts.get(key, [])]
        if not named:
            people[doc] = _claim(path, "claims file", doc, [table.people[key] for key in spellings],
                                 [g for key in spellings for g in table.mandates.get(key, [])],
                                 {p: c for key in spellings for p, (c, _) in table.classes.get(key, {}).items()})
            continue
        (account, line), *others = sorted(named, key=lambda a: a[1])
        if any(account_key(a) != account_key(account) for a, _ in others):
            other, at = next((a, n) for a, n in others if account_key(a) != account_key(account))
            raise ClaimsError(f"claims file {path}, line {at}: {doc} is claimed by account {other!r}, but line "
                              f"{line} gives account {account!r}; a document is drawn on one account")
        if any(key in table.people for key in spellings):
            raise ClaimsError(f"claims file {path}, line {line}: {doc} is claimed by account {account!r} and by "
                              "people; claim it one way (the account's people are its signatory table's)")
        accounts[doc] = account
        card = cards.get(account_key(account))
        amount, currency, why = _amount(path, doc, spellings, table, card, account, loose)
        if amount is not None:  # recorded for a cheque that fails too: it is handled by hand
            amount_of[doc] = amount
            if currency:
                currency_of[doc] = currency
        if why:
            unusable[doc] = why
        if card is not None and card.error:
            damaged[doc] = card.error
            continue
        if card is not None:
            people[doc] = card.claim(amount)
            if amount is None and card.limits:
                strictest.append(doc)
            continue
        if zeros is None:  # the table's accounts by their digits after leading zeros, once
            zeros = {}
            for a in cards:
                zeros.setdefault(a.lstrip("0"), a)
        near = [zeros[k] for k in (account_key(account).lstrip("0"),) if k in zeros]
        unknown[doc] = (f"account {account!r} is not in the signatory table {signatories}" + (
            f"; it has {near[0]!r}: a spreadsheet drops leading zeros (format the column as text)" if near else "")
            + ("; the MICR line was not read where it shows '*'" if "*" in account else "")
            + ("; no account was read from the cheque's MICR on-us field (its on_us column, if sigpipe x9 split "
               "wrote the claims)" if account == "?" else ""))
    return Claims(people, accounts, unknown, tuple(strictest), damaged,
                  {a: c.error for a, c in sorted(cards.items()) if c.error}, amount_of, unusable, currency_of)


def _amount(path: Path, doc: str, spellings: list[str], table: _Table, card: SignatoryCard | None, account: str,
            loose: list[str]) -> tuple[Decimal | None, str, str]:
    """A cheque's amount from its claims rows: (the amount, None when none is given or it cannot be used; its
    currency, "" when it names none; why the amount the rows give cannot be used, "" when it can or none is
    given)."""
    amounts = sorted((a for key in spellings for a in table.amounts.get(key, [])), key=lambda a: a[3])
    bad = sorted((b for key in spellings for b in table.bad_amounts.get(key, [])), key=lambda b: b[1])
    if bad:
        return None, "", f"claims file {path}, line {bad[0][1]}: {bad[0][0]}"
    if not amounts:
        return None, "", ""
    value, currency, written, line = amounts[0]
    named = {a[1] for a in amounts if a[1]}  # 12500.00 and $12,500.00: one amount, one written with its currency
    differ = next((a for a in amounts if a[0] != value or len(named) > 1 and a[1] != currency), None)
    if differ is not None:
        return None, "", (f"claims file {path}, line {differ[3]}: amount {differ[2]!r} for {doc}, but line {line} "
                          f"gives {written!r}")
    currency = next(iter(named), "")
    if card is None or not card.limits or not currency:
        return value, currency, ""
    if card.currency and currency != card.currency:
        return None, "", (f"claims file {path}, line {line}: amount {written!r} is in {currency}, and the rules over "
                          f"amounts of account {account}'s card in {card.currency}")
    if not card.currency and len(loose) > 1:
        named_all = [c for c in loose if c != "none named"]
        return None, "", (f"claims file {path}, line {line}: amount {written!r} is in {currency}, the rules over "
                          f"amounts of account {account}'s card name no currency, and the claims give amounts in "
                          f"{', '.join(named_all)}{' and in none named' if 'none named' in loose else ''}: write "
                          "the card's rules with their currency (2 over 10000 USD)")
    return value, currency, ""


def load_signatories(path: str | Path) -> dict[str, SignatoryCard]:
    """Read a signatory table: header ``account,identity``, a row per person who may sign for the account, and
    optionally ``mandate`` (as a claims file's: ``all``, ``any``, how many must sign, or of which signing classes,
    ``A+B``; and, on rows of their own, who must sign over an amount: ``2 over 10000``, ``A+B over 10000``) and
    ``class`` (each person's signing class), read as claims files are (delimiters, encodings, quoting).

    Returns:
        ``{account (:func:`account_key`): card}``.

    Raises:
        ClaimsError: the table cannot be read (as :func:`load_claims`: its file, header, a row whose fields do not
            fit the header, an empty or scientific-notation account) or lists no account. A row that names its
            account but gets the rest wrong (an empty identity, a mandate that is not one or that its people
            cannot meet, two rules for one amount, a person given two classes) gives that account's card an
            ``error`` instead.
    """
    path = Path(path)
    what = "signatory table"
    table = _read_table(path, what, "account", account_key)
    cards = {}
    for account in sorted(set(table.people) | set(table.damaged)):
        names = table.people.get(account, [])
        classes = {p: c for p, (c, _) in table.classes.get(account, {}).items()}
        try:
            if account in table.damaged:
                raise ClaimsError(table.damaged[account])
            rule = _rule(path, what, account, names, table.mandates.get(account, []), classes)
            limits: dict[Decimal, tuple[Rule, str, int]] = {}
            named = sorted({(c, line) for _, c, _, _, line in table.limits.get(account, []) if c}, key=lambda c: c[1])
            if len({c for c, _ in named}) > 1:
                other = next(n for n in named if n[0] != named[0][0])
                raise ClaimsError(f"{what} {path}, line {other[1]}: a rule over an amount in {other[0]} for "
                                  f"{account}, but line {named[0][1]} gives one in {named[0][0]}; one currency each")
            for over, _, given, cell, line in table.limits.get(account, []):
                r = _rule(path, what, account, names, [(given, cell, line)], classes)
                if limits.setdefault(over, (r, cell, line))[0] != r:
                    raise ClaimsError(f"{what} {path}, line {line}: mandate {cell!r} for {account}, but line "
                                      f"{limits[over][2]} gives {limits[over][1]!r}; one rule for each amount")
        except ClaimsError as e:  # this account's cheques fail, not every cheque of the night
            cards[account] = SignatoryCard(tuple(names), (), error=f"the signature card of account {account} "
                                           f"cannot be used: {e}")
            continue
        # rules each of which its people can meet can be met together too (all_of): no check is needed for them
        cards[account] = SignatoryCard(
            tuple(names), rule, tuple((over, r) for over, (r, _, _) in sorted(limits.items())),
            tuple(classes.get(p, "") for p in names) if classes else (), currency=named[0][0] if named else "")
    if not cards:  # an export that came out empty would fail every cheque of the night, one by one
        raise ClaimsError(f"{what} {path} lists no account")
    return cards


def account_key(account: str) -> str:
    """An account number as written (``0012-3456 78``, an IBAN in groups of four) in the form accounts are
    matched by: compatibility-normalised, upper case, without spaces, dashes of any kind, dots, slashes (a MICR
    on-us field's separators) or quotes, and out of a spreadsheet's text formula (``="0012"``). Leading zeros are
    kept: ``00123`` and ``123`` are different accounts."""
    t = unicodedata.normalize("NFKC", account).strip()
    if t.startswith("="):  # Excel's ="0012345678", which keeps the zeros of a number shown as text
        t = t[1:]
    return re.sub(r"[\s\-\u2010-\u2015\u2212./\"']", "", t).upper()


_SCIENTIFIC = re.compile(r"\d+([.,]\d+)?E\+\d+", re.IGNORECASE)  # 1.23457E+11: a spreadsheet's number, digits lost


def _account(text: str, what: str, path: Path, lineno: int) -> str:
    """A cell naming an account, refused when a spreadsheet has turned it into a number in scientific notation."""
    t = text.strip()
    if _SCIENTIFIC.fullmatch(t):
        raise ClaimsError(f"{what} {path}, line {lineno}: account {t!r} is a number a spreadsheet shortened (its "
                          "digits are lost); export the account column as text")
    return t


@dataclass
class _Table:
    people: dict[str, list[str]]  # key -> its identities, in the order of their first row
    mandates: dict[str, list[tuple[Rule | None, str, int]]]  # key -> (its rule, None for all; as written, line)
    accounts: dict[str, list[tuple[str, int]]]  # claims by account: document -> (account as written, line)
    limits: dict[str, list[tuple[Decimal, str, Rule | None, str, int]]]  # account -> (over, currency, rule, cell, line)
    amounts: dict[str, list[tuple[Decimal, str, str, int]]]  # document -> (amount, currency, as written, line)
    classes: dict[str, dict[str, tuple[str, int]]]  # key -> identity -> (its signing class, line)
    damaged: dict[str, str]  # signatory table: account -> its first row error (the card cannot be used)
    bad_amounts: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # document -> (why, line)


def _read_table(path: Path, what: str, key: str, normalise: Callable[[str], str]) -> _Table:
    """The rows of a claims file (``key`` "document": each row names an identity or an account) or of a
    signatory table (``key`` "account": each row names an identity)."""
    lines = _read_lines(path, what)
    start = _next_content(lines, 0)
    sep = re.fullmatch(r"sep=(.)", lines[start].strip(" "), re.IGNORECASE) if start < len(lines) else None
    if sep:  # Excel's first line naming the delimiter; the header follows
        start = _next_content(lines, start + 1)
    first = lines[start] if start < len(lines) else ""
    claims_file = key == "document"  # its rows may name accounts instead of people (a table's may not)
    names = ("identity", ACCOUNT_COLUMN) if claims_file else ("identity",)
    delimiter = sep.group(1) if sep else header_delimiter(first, (key, *names))
    rows = _rows(lines, start, delimiter, path, what)
    _, header = next(rows, (start, None))
    cols = [c.strip().lower() for c in header] if header else []
    raw_width = len(cols)  # with the header's trailing separators: a row as long came from the same spreadsheet
    while cols and not cols[-1]:  # a header's trailing separators name no column: a field under them is a shift
        cols.pop()
    if not header or key not in cols or not any(c in cols for c in names):
        raise ClaimsError(
            f"{what} {path}{f', line {start + 1}' if first else ''}: the first line must be the header "
            f"'{key},identity'{f' (or {key},account)' if claims_file else ''}, got {first or 'an empty file'!r}"
        )
    ki = cols.index(key)
    ii = cols.index("identity") if "identity" in cols else None
    ai = cols.index(ACCOUNT_COLUMN) if claims_file and ACCOUNT_COLUMN in cols else None
    mi = cols.index(MANDATE_COLUMN) if MANDATE_COLUMN in cols else None
    mo = cols.index(AMOUNT_COLUMN) if claims_file and AMOUNT_COLUMN in cols else None
    ci = cols.index(CLASS_COLUMN) if CLASS_COLUMN in cols else None
    cu = cols.index(CURRENCY_COLUMN) if CURRENCY_COLUMN in cols else None
    known = (key, "identity", CLASS_COLUMN, CURRENCY_COLUMN, *((ACCOUNT_COLUMN, AMOUNT_COLUMN) if claims_file else ()))
    if claims_file and ai is not None and mo is None:  # an amount under another name would be dropped unsaid
        like = [c for c in cols if c not in known and _amount_like(c)]
        if like:
            raise ClaimsError(f"{what} {path}, line {start + 1}: column {like[0]!r} is not one sigpipe reads; name "
                              f"it {AMOUNT_COLUMN!r} for the cheques' amounts (which pick their cards' rules over "
                              "amounts)")
    if mi is None:  # other columns are the user's own (notes), but a misspelt mandate would be dropped unsaid
        # a misspelling (mandates, mandat), not another word (SAP's Mandant, mandatory, mandate_id)
        like = difflib.get_close_matches(MANDATE_COLUMN, [c for c in cols if c not in known and c.isalpha()], 1, 0.88)
        if like:
            raise ClaimsError(f"{what} {path}, line {start + 1}: column {like[0]!r} is not one sigpipe reads; "
                              f"name it {MANDATE_COLUMN!r} for the number of signers {key}s need")
    table = _Table({}, {}, {}, {}, {}, {}, {})
    body = list(rows)
    # a file whose rows all end in a separator more than its header (a tool's style) has rows that long: only a
    # row longer than most is one an unquoted comma shifted. Most, of the rows without a sign of a cut (exactly
    # one field starting with a space): a file whose every row has a cut memo is not read as its style
    lengths = Counter(len(r) for _, r in body if any(c.strip() for c in r) and _spaced(r) != 1)
    raw_width = max(raw_width, lengths.most_common(1)[0][0] if lengths else 0)
    for lineno, row in body:
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) <= max(i for i in (ki, ii, ai) if i is not None):
            raise ClaimsError(f"{what} {path}, line {lineno}: expected {len(cols)} columns, got {len(row)}")
        # an unquoted delimiter in a field: the fields after it shifted. Blank fields past the header are a
        # spreadsheet's trailing separators, unless a name was cut at a comma: "Kowalski, J" -> "Kowalski", " J"
        cut = _comma_cut(row, len(cols), raw_width, ii, mi, ci) if delimiter == "," else None
        if cut is not None or any(c.strip() for c in row[len(cols):]):
            extra = next((c for c in row[len(cols):] if c.strip()), "")
            what_cut = "a name" if cut == (ii or 0) + 1 else "a field"
            name = f"{row[cut - 1].strip()!r}, then {row[cut]!r}" if cut is not None else ""
            shifted = ClaimsError(
                f"{what} {path}, line {lineno}: "
                + (f"{len(row)} fields under a header of {len(cols)}" + (f" ({name}: {what_cut} cut at a comma?)"
                                                                         if name else "")
                   if len(row) > len(cols) else f"{what_cut} cut at a comma ({name})")
                + f"; put double quotes around a field that contains {delimiter!r}"
                + (f", or add the column {MANDATE_COLUMN!r} to the header" if mi is None and ai is None and extra
                   and _mandate_like(extra) else "")
            )
            if claims_file or ki != 0 or not row[ki].strip():  # whose row it is cannot be told: the run stops
                raise shifted
            table.damaged.setdefault(normalise(_account(row[ki], what, path, lineno)), str(shifted))
            continue  # the account, first, is as written: its card cannot be used, the others can
        k = normalise(_account(row[ki], what, path, lineno) if key == ACCOUNT_COLUMN else row[ki])
        ident = unicodedata.normalize("NFC", row[ii].strip()) if ii is not None else ""
        account = _account(row[ai], what, path, lineno) if ai is not None else ""
        cell = _cell(row, mi)
        klass = _cell(row, ci)
        money_in = _cell(row, cu)  # a currency column beside the amounts (or the table's rules over amounts)
        if not k or not (ident or account):
            empty = ClaimsError(f"{what} {path}, line {lineno}: empty {key} or "
                                f"{'identity' if ai is None else 'identity and account'}")
            if claims_file or not k:
                raise empty
            table.damaged.setdefault(k, str(empty))  # the account's card is incomplete: its cheques fail
            continue
        if account:
            if ident:
                raise ClaimsError(f"{what} {path}, line {lineno}: an identity and an account; a row names the "
                                  "person claimed or the account the document is drawn on, not both")
            if cell or klass:
                raise ClaimsError(f"{what} {path}, line {lineno}: a {'mandate' if cell else 'signing class'} on a "
                                  f"claim by account; the signatory table gives the account's")
            table.accounts.setdefault(k, []).append((account, lineno))  # checked once the key's rows are known
            money = _cell(row, mo)
            if money:  # an amount that cannot be used holds the cheque to all of its card's rules, not the night
                try:
                    if delimiter == "," and mo is not None and mo + 1 < len(row) and \
                            _cut_number(money, row[mo + 1], len(row) > raw_width):
                        raise ValueError(f"amount {money!r}, then {row[mo + 1].strip()!r}: an amount cut at an "
                                         "unquoted comma? put double quotes around it")
                    value, currency = _with_currency(parse_money(money), money_in)
                    table.amounts.setdefault(k, []).append((value, currency, money, lineno))
                except ValueError as e:
                    table.bad_amounts.setdefault(k, []).append((str(e), lineno))
            continue
        try:  # a table's row that names its account: an error fails that account's cheques alone
            listed = table.people.setdefault(k, [])
            if ident not in listed:
                listed.append(ident)
            if klass:
                try:
                    klass = signing_class(klass)
                except ValueError as e:
                    raise ClaimsError(f"{what} {path}, line {lineno}: {e}") from e
                given, at = table.classes.setdefault(k, {}).setdefault(ident, (klass, lineno))
                if given != klass:
                    raise ClaimsError(f"{what} {path}, line {lineno}: {ident} is of class {klass} for {k}, but line "
                                      f"{at} gives class {given}; one class each")
            if not cell:
                continue  # everybody, unless another row of the key gives a mandate
            try:
                required, over = _parse_rule(cell)
                if over is not None:
                    over = _with_currency(over, money_in)
                if delimiter == "," and over is not None and mi is not None and mi + 1 < len(row) and \
                        _cut_number(cell, row[mi + 1]):
                    raise ValueError(f"mandate {cell!r}, then {row[mi + 1].strip()!r}: an amount cut at an unquoted "
                                     "comma? put double quotes around the mandate")
            except ValueError as e:
                raise ClaimsError(f"{what} {path}, line {lineno}: {e}") from e
            if over is None:
                table.mandates.setdefault(k, []).append((required, cell, lineno))  # checked once all rows are read
            elif claims_file:
                raise ClaimsError(f"{what} {path}, line {lineno}: mandate {cell!r}: a rule over an amount belongs in "
                                  "the signatory table (--signatories), for the account")
            else:
                table.limits.setdefault(k, []).append((over[0], over[1], required, cell, lineno))
        except ClaimsError as e:
            if claims_file:
                raise
            table.damaged.setdefault(k, str(e))
    return table


def _rule(path: Path, what: str, key: str, names: list[str], given: list[tuple[Rule | None, str, int]],
          classes: dict[str, str]) -> Rule:
    """The one rule of a document's (or an account's) mandate cells (``all`` and none: everybody), checked that
    its people can meet it."""
    ruled = sorted(((r or (Need(len(names)),), cell, line) for r, cell, line in given), key=lambda g: g[2])
    differing = [g for g in ruled if g[0] != ruled[0][0]]
    if differing:
        raise ClaimsError(f"{what} {path}, line {differing[0][2]}: mandate {differing[0][1]!r} for {key}, "
                          f"but line {ruled[0][2]} gives {ruled[0][1]!r}; one mandate each")
    rule = ruled[0][0] if ruled else (Need(len(names)),)
    try:
        claim_of(names, rule, classes)
    except ValueError as e:
        _, cell, lineno = ruled[0]
        if not any(n.classes for n in rule):
            why = f"mandate {cell!r} for {key}, which {'is claimed for' if what == 'claims file' else 'lists'} " \
                  f"{len(names)} person(s)"
        elif not classes:  # a word that is no class of theirs
            why = (f"mandate must be 'all', 'any' or a number of signers (e.g. 2), or signing classes (e.g. A+B) "
                   f"that a {CLASS_COLUMN!r} column gives the people, not {cell!r}")
        else:
            why = f"mandate {cell!r} for {key}: {e}"
        raise ClaimsError(f"{what} {path}, line {lineno}: {why}") from None
    return rule


def _claim(path: Path, what: str, key: str, people: list[list[str]], given: list[tuple[Rule | None, str, int]],
           classes: dict[str, str] | None = None) -> Claim:
    """The claim of a document (or an account) from its rows' people (a list per spelling), mandates and the
    signing classes of its people."""
    names = list(dict.fromkeys(n for spelled in people for n in spelled))
    return claim_of(names, _rule(path, what, key, names, given, classes or {}), classes)


def _rows(lines: list[str], start: int, delimiter: str, path: Path,
          what: str = "claims file") -> Iterator[tuple[int, list[str]]]:
    """The CSV rows of ``lines`` from index ``start`` on, each with its line number in the file. A line the csv
    module refuses (a field over its size limit; a quote still open at the end) is a :class:`ClaimsError` naming it,
    not a traceback; so is a quoted field running over several lines: a quote left open in a note column swallowed
    the claims of every following line into that note, and their documents went unclaimed without a word."""
    reader = csv.reader(lines[start:], delimiter=delimiter, strict=True)
    end = 0  # lines read so far
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            why = (f"a field longer than {csv.field_size_limit()} characters (a quote left open?)"
                   if "field larger" in str(e) else f"not CSV ({e}): a quote left open?")
            raise ClaimsError(f"{what} {path}, line {start + end + 1}: {why}") from e
        first, end = end + 1, reader.line_num
        if end > first:
            raise ClaimsError(f"{what} {path}, lines {start + first}-{start + end}: one quoted field runs over "
                              f"{end - first + 1} lines (a quote left open?); each claim must be one line")
        yield start + end, row


def header_delimiter(header: str, columns: Sequence[str] = REQUIRED_COLUMNS) -> str:
    """The delimiter of a CSV whose header line is ``header``: ``,``, or ``;`` as spreadsheets save CSV in locales
    whose decimal mark is a comma, or a tab: the first under which the header has the first of ``columns`` and one
    of the others (a column named ``Name, Vorname`` in a ``;`` file), else the first it holds."""
    for d in (",", ";", "\t"):
        cols = {c.strip().strip('"').strip().lower() for c in header.split(d)}
        if columns[0] in cols and any(c in cols for c in columns[1:]):
            return d
    return next((d for d in (",", ";", "\t") if d in header), ",")


def _read_lines(path: Path, what: str = "claims file") -> list[str]:
    """The lines of a claims file: UTF-8 (BOM or not) or UTF-16 with a BOM; anything else is an error naming the
    line (guessing Latin-1 would silently mangle the names that claims are matched by)."""
    try:
        with open_regular(path) as f:  # a FIFO in a drop folder would block the run for ever
            data = f.read()
    except OSError as e:
        raise ClaimsError(f"cannot read {what} {path}: {e}") from e
    encoding = "utf-16" if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) else "utf-8-sig"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as e:  # cut at the first byte that is not text, marked as a NUL is
        text = e.object[: e.start].decode(encoding) + "\0"
    bad = text.find("\0")  # a NUL is not text either: UTF-16 without a BOM, or binary content
    if bad >= 0:
        line = text[:bad].count("\n") + 1
        raise ClaimsError(
            f"{what} {path} is not {'UTF-16' if encoding == 'utf-16' else 'UTF-8'} text (line {line}): "
            "save it as 'CSV UTF-8 (Comma delimited)'"
        )
    return re.split(r"\r\n|\r|\n", text.removesuffix("\r\n").removesuffix("\n").removesuffix("\r"))


def _next_content(lines: list[str], i: int) -> int:
    """The index of the first line from ``i`` on that is not blank (``len(lines)`` if none)."""
    return next((j for j in range(i, len(lines)) if lines[j].strip()), len(lines))


def match_documents(claims: dict[str, Claim], documents: Collection[str], scans: str | Path) -> dict[str, Claim]:
    """The claims keyed by the names of the documents they mean.

    A claim names a document as people write it; it is matched to a document name (POSIX path relative to SCANS)
    whatever the Unicode form of its accents (macOS writes file names decomposed, spreadsheets composed) and when it
    is an absolute path inside SCANS; of two files whose names differ only in that form, a claim means the one it
    names exactly. Claims that match no document keep their name (see :func:`claim_warnings`).
    Spellings that mean the same document (a contract listed once per signatory, as ``deed.pdf`` and as
    ``/scans/deed.pdf``) have their people merged, each person once: those of the spelling that comes first in the
    claims, then those of the next spelling.
    """
    meant = _resolver(documents, Path(scans))
    people: dict[str, list[str]] = {}
    required: dict[str, tuple[int, Rule]] = {}
    classes: dict[str, dict[str, str]] = {}
    for doc, claim in claims.items():
        names = people.setdefault(meant(doc), [])
        for person in claimants(claim):
            if person not in names:
                names.append(person)
        if isinstance(claim, Mandate):
            if required.setdefault(meant(doc), (claim.required, claim.rule)) != (claim.required, claim.rule):
                raise ClaimsError(f"claims: two spellings of document {meant(doc)} give different mandates")
            classes.setdefault(meant(doc), {}).update(claim.class_of)
    merged: dict[str, Claim] = {}
    for doc, names in people.items():
        n, rule = required.get(doc, (None, ()))
        one = claim_of(names, rule, classes.get(doc)) if rule else normalise_claim(names, n)
        if one is not None:
            merged[doc] = one
    return merged


def _resolver(documents: Collection[str], scans: Path) -> Callable[[str], str]:
    """The document (of ``documents``, names relative to ``scans``) a claim's name means, or the name itself when
    it means none (:func:`match_documents`)."""
    def nfc(s: str) -> str:
        return unicodedata.normalize("NFC", s)

    exact = set(documents)
    forms: dict[str, list[str]] = {}
    for d in documents:
        forms.setdefault(nfc(d), []).append(d)

    def one(key: str) -> str | None:  # the name itself, else the one document of its Unicode form
        same = forms.get(nfc(key), [])
        return key if key in exact else same[0] if len(same) == 1 else None  # two such files: only the exact name

    def meant(doc: str) -> str:
        key = _relative(doc, scans) if Path(doc).is_absolute() else doc
        if one(key) is None and "\\" in key:  # not an escaped byte after all: a folder named x1f...
            key = key.replace("\\", "/")
        return one(key) or doc

    return meant


def _relative(doc: str, scans: Path) -> str:
    """An absolute claim as a name relative to SCANS: as written first (a link inside SCANS is a document of its
    own, named by where it lies, not by what it points at), else with the folders resolved (SCANS given through a
    linked path, the claim through the real one). Unchanged when it lies outside SCANS."""
    if not scans.is_dir():
        return Path(doc).name  # SCANS is one document
    path = Path(doc)
    for base, p in ((Path(os.path.abspath(scans)), Path(os.path.normpath(path))),
                    (scans.resolve(), path.parent.resolve() / path.name)):
        try:
            return p.relative_to(base).as_posix()
        except ValueError:
            continue
    return doc


FUZZY_HINTS = 20  # claimed names without references given a "did you mean" by spelling (the rest by key only)
LISTED = 20  # claimed documents not in SCANS, and claimed people without references, named one by one; then counted


def _relative_hint(document: str, documents: Collection[str]) -> str:
    """A hint for a claimed document that is not in SCANS but ends in one that is: a path written from the working
    folder (``examples/scans/0001.png``) instead of from SCANS (``0001.png``); or that is one but for the case of
    its letters (``0001_CHEQUE.png``, a claims export from a system that upper-cases names): a hint, never a match,
    since the claimed file is then matched one-to-many against everybody."""
    tails = [d for d in documents if document.endswith("/" + d)]
    if tails:
        return f" (paths in claims are relative to SCANS: {max(tails, key=len)!r}?)"
    folded = document.casefold()
    cased = sorted(d for d in documents if d.casefold() == folded)
    return (f" (SCANS has {cased[0]!r}: claims must name the file as it is written, letter case too; it is "
            "matched one-to-many meanwhile)" if cased else "")


def claim_warnings(claims: dict[str, Claim], documents: Collection[str], people: Collection[str],
                   folders: Collection[str] = ()) -> list[str]:
    """Problems with claims that do not stop a run: claimed documents that are not in SCANS, claimed people
    without references (their documents get ``no_reference`` signatures or need review), each with the person in REFS
    whose name it most likely means, if any (``ALICE`` for ``alice``, a typo): a hint, never a match. The first
    :data:`LISTED` of each kind are named, the others counted in one line (a bank's whole claims table against one
    night's scans, or a wrong REFS, would otherwise give a line per claim).

    Args:
        people: the enrolled people.
        folders: every person with a folder in REFS (an enrolment limited to the claimed people reads no other);
            the hints are drawn from these and ``people``.
    """
    docs, enrolled = set(documents), set(people)
    absent = sorted(set(claims) - docs)
    out = [f"claims name a document that is not in SCANS: {d}{_relative_hint(d, docs)}" for d in absent[:LISTED]]
    if len(absent) > LISTED:
        out.append(f"claims name {len(absent) - LISTED} more document(s) that are not in SCANS "
                   f"({len(absent)} in all)")
    needing = Counter(p for d, c in claims.items() if d in docs for p in claimants(c))  # documents per person
    mandated = Counter(p for d, c in claims.items() if d in docs and isinstance(c, Mandate) for p in c.people)
    missing = sorted(set(needing) - enrolled)

    def held(people: list[str]) -> str:  # a mandate the others meet lets such a document through
        n, m = sum(needing[p] for p in people), sum(mandated[p] for p in people)
        return f"{n - m} document(s) need review" + (f", {m} more unless others meet its mandate" if m else "")

    if not missing:
        return out
    hints = NameHints((enrolled | set(folders)) - set(missing))
    for person in missing[:LISTED]:
        like = None if person in folders else hints.meant(person)  # their folder is there: not a misspelt name
        hint = (f"; REFS has {like!r}: the same person? Claims must name the folder exactly, so nothing is "
                "matched by likeness" if like else "; their folder holds no usable specimen (summary.json "
                "reference_errors says why)" if person in folders else "")
        out.append(f"claimed identity {person!r} has no usable references in REFS ({held([person])}){hint}")
    if len(missing) > LISTED:
        rest = missing[LISTED:]
        out.append(f"{len(rest)} more claimed identities have no usable references in REFS "
                   f"({held(rest)}; {len(missing)} in all)")
    return out


class NameHints:
    """The name in REFS a claimed name most likely means (``alice-smith`` for ``Alice Smith``, ``bob`` for ``bobb``):
    a hint for a person, never a match."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = sorted(set(names))
        self.by_key: dict[str, list[str]] = {}
        for person in self.names:
            self.by_key.setdefault(_name_key(person), []).append(person)
        self.fuzzy_left = FUZZY_HINTS  # difflib goes over every name: only for the first few asked

    def meant(self, person: str) -> str | None:
        """The name meant by ``person`` when it is not one of them: the same once case, spaces and punctuation are
        ignored, else (for the first :data:`FUZZY_HINTS` asked) a close spelling; None if none."""
        like = self.by_key.get(_name_key(person), [])
        if not like and self.fuzzy_left > 0:
            self.fuzzy_left -= 1
            like = difflib.get_close_matches(person, self.names, n=1, cutoff=0.85)
        return like[0] if like else None


def _name_key(name: str) -> str:
    """A name with case, accents' form, spaces and punctuation ignored: ``"Alice Smith"`` and ``alice-smith`` agree."""
    return "".join(ch for ch in unicodedata.normalize("NFKC", name).casefold() if ch.isalnum())
