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
people and mandate are then the signatory table's (``--signatories``, :func:`load_signatories`; :func:`read_claims`).
"""

from __future__ import annotations

import codecs
import csv
import difflib
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from sigpipe.pipeline.errors import ClaimsError

REQUIRED_COLUMNS = ("document", "identity")
MANDATE_COLUMN = "mandate"
ACCOUNT_COLUMN = "account"  # a claims file's rows may name the account a cheque is drawn on instead of people
AMOUNT_COLUMN = "amount"  # a cheque's amount, for an account whose mandate asks more signers over an amount


@dataclass(frozen=True)
class Mandate:
    """Several people of whom any ``required`` must sign (fewer than all of them): a joint account's "either to
    sign" (1 of 2), a company's "any two directors". Build it with :func:`normalise_claim`, which gives a plain tuple
    when everybody must sign."""

    people: tuple[str, ...]
    required: int

    def __post_init__(self) -> None:
        if len(set(self.people)) != len(self.people) or isinstance(self.required, bool) or \
                not isinstance(self.required, int) or not 1 <= self.required < len(self.people):
            raise ValueError(f"a mandate asks 1 to {len(self.people) - 1} of its different people to sign, not "
                             f"{self.required!r} of {list(self.people)} (all of them: a tuple of the names)")

    def __str__(self) -> str:
        return f"any {self.required} of {', '.join(self.people)}"


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
        required = claimed.required if required is None else required
        claimed = claimed.people
    if isinstance(claimed, str):
        claimed = [claimed]
    elif not isinstance(claimed, Iterable):
        raise ValueError(f"claimed must be a person's name, several names or None, not {claimed!r}")
    raw = list(claimed)
    if not raw or not all(isinstance(n, str) and n.strip() for n in raw):
        raise ValueError(f"claimed must be a person's name, several names or None, not {raw!r}")
    names = tuple(dict.fromkeys(unicodedata.normalize("NFC", n.strip()) for n in raw))
    if required is not None and (isinstance(required, bool) or not isinstance(required, int)
                                 or not 1 <= required <= len(names)):
        raise ValueError(f"signers required must be 1 to {len(names)} (the people claimed), not {required!r}")
    if required is not None and required < len(names):
        return Mandate(names, required)
    return names[0] if len(names) == 1 else names


def _mandate_like(text: str) -> bool:
    try:
        parse_mandate(text)
        return True
    except ValueError:
        return False


def parse_mandate(text: str) -> int | None:
    """A claims file's mandate cell as a number of signers: None for ``all`` or a blank cell (everybody), 1 for
    ``any``, N for ``N`` or ``any N``.

    Raises:
        ValueError: anything else, or a number under 1.
    """
    t = " ".join(text.split()).casefold()
    if t in ("", "all"):
        return None
    if t == "any":
        return 1
    m = re.fullmatch(r"(?:any )?(\d{1,4})", t)
    if not m or int(m.group(1)) < 1:
        raise ValueError(f"mandate must be 'all', 'any' or a number of signers (e.g. 2), not {text.strip()!r}")
    return int(m.group(1))


def parse_amount(text: str) -> Decimal:
    """An amount as a claims file writes it: ``1234.56``, ``1,234.56`` or ``$1,234.56`` (a dot for the decimals).

    Raises:
        ValueError: anything else (``1.234,56`` included: which mark is the decimal one is not guessed).
    """
    t = text.strip().removeprefix("$").strip()
    if not re.fullmatch(r"(\d+|\d{1,3}(,\d{3})+)(\.\d+)?", t):
        raise ValueError(f"amount must be a number such as 1234.56 or 1,234.56, not {text.strip()!r}")
    return Decimal(t.replace(",", ""))


def _parse_rule(cell: str) -> tuple[int | None, Decimal | None]:
    """A mandate cell as (signers required, over this amount or None): ``any``, ``2 over 10000``."""
    m = re.fullmatch(r"(.*?)\s+over\s+(\S.*)", cell.strip(), re.IGNORECASE)
    if m is None:
        return parse_mandate(cell), None
    return parse_mandate(m.group(1)), parse_amount(m.group(2))


@dataclass(frozen=True)
class SignatoryCard:
    """An account's signature card: who may sign for it, how many of them must (``required``), and how many
    must over an amount (``limits``: (amount, signers required) in ascending amounts; a cheque over an amount
    needs that many)."""

    people: tuple[str, ...]
    required: int
    limits: tuple[tuple[Decimal, int], ...] = ()

    def claim(self, amount: Decimal | None) -> Claim:
        """The claim of a cheque of ``amount`` drawn on the account; an unknown amount (None) under limits gets the
        strictest of the card's rules."""
        n = self.required
        if amount is None:
            n = max([n, *(r for _, r in self.limits)])
        else:
            n = next((r for over, r in reversed(self.limits) if amount > over), n)
        claim = normalise_claim(self.people, n)
        assert claim is not None
        return claim


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
    ``strictest``: documents held to their account's strictest rule for want of an amount.
    """

    people: dict[str, Claim]
    accounts: dict[str, str]
    unknown: dict[str, str]
    strictest: tuple[str, ...] = ()  # documents on accounts with amount limits, without an amount


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
    zeros: dict[str, str] | None = None
    for doc, spellings in groups.items():
        named = [a for key in spellings for a in table.accounts.get(key, [])]
        if not named:
            people[doc] = _claim(path, "claims file", doc, [table.people[key] for key in spellings],
                                 [g for key in spellings for g in table.mandates.get(key, [])])
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
        if card is not None:
            amounts = sorted((a for key in spellings for a in table.amounts.get(key, [])), key=lambda a: a[2])
            differ = [m for m in amounts if m[0] != amounts[0][0]]
            if differ:
                raise ClaimsError(f"claims file {path}, line {differ[0][2]}: amount {differ[0][1]!r} for {doc}, but "
                                  f"line {amounts[0][2]} gives {amounts[0][1]!r}")
            people[doc] = card.claim(amounts[0][0] if amounts else None)
            if card.limits and not amounts:
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
    return Claims(people, accounts, unknown, tuple(strictest))


def load_signatories(path: str | Path) -> dict[str, SignatoryCard]:
    """Read a signatory table: header ``account,identity``, a row per person who may sign for the account, and
    optionally ``mandate`` (as a claims file's: ``all``, ``any``, or how many must sign; and, on rows of their
    own, how many must sign over an amount: ``2 over 10000``), read as claims files are (delimiters, encodings,
    quoting).

    Returns:
        ``{account (:func:`account_key`): card}``.

    Raises:
        ClaimsError: as :func:`load_claims`, for the table; two rules for one amount that differ.
    """
    path = Path(path)
    what = "signatory table"
    table = _read_table(path, what, "account", account_key)
    cards = {}
    for account, names in table.people.items():
        claim = _claim(path, what, account, [names], table.mandates.get(account, []))
        limits: dict[Decimal, tuple[int, str, int]] = {}
        for over, required, cell, line in table.limits.get(account, []):
            n = len(names) if required is None else required
            if n > len(names):
                raise ClaimsError(f"{what} {path}, line {line}: mandate {cell!r} for {account}, which lists "
                                  f"{len(names)} person(s)")
            if limits.setdefault(over, (n, cell, line))[0] != n:
                raise ClaimsError(f"{what} {path}, line {line}: mandate {cell!r} for {account}, but line "
                                  f"{limits[over][2]} gives {limits[over][1]!r}; one rule for each amount")
        cards[account] = SignatoryCard(claimants(claim), signers_required(claim),
                                       tuple((over, n) for over, (n, _, _) in sorted(limits.items())))
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
    mandates: dict[str, list[tuple[int | None, str, int]]]  # key -> (signers required, as written, line)
    accounts: dict[str, list[tuple[str, int]]]  # claims by account: document -> (account as written, line)
    limits: dict[str, list[tuple[Decimal, int | None, str, int]]]  # account -> (over amount, required, cell, line)
    amounts: dict[str, list[tuple[Decimal, str, int]]]  # claims by account: document -> (amount, as written, line)


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
    known = (key, "identity", ACCOUNT_COLUMN, AMOUNT_COLUMN) if claims_file else (key, "identity")
    if mi is None:  # other columns are the user's own (notes), but a misspelt mandate would be dropped unsaid
        like = difflib.get_close_matches(MANDATE_COLUMN, [c for c in cols if c not in known], 1, 0.75)
        if like:
            raise ClaimsError(f"{what} {path}, line {start + 1}: column {like[0]!r} is not one sigpipe reads; "
                              f"name it {MANDATE_COLUMN!r} for the number of signers {key}s need")
    table = _Table({}, {}, {}, {}, {})
    for lineno, row in rows:
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) <= max(i for i in (ki, ii, ai) if i is not None):
            raise ClaimsError(f"{what} {path}, line {lineno}: expected {len(cols)} columns, got {len(row)}")
        if any(c.strip() for c in row[len(cols):]):  # an unquoted delimiter in a field: the identity shifted
            extra = next(c for c in row[len(cols):] if c.strip())
            raise ClaimsError(
                f"{what} {path}, line {lineno}: {len(row)} fields under a header of {len(cols)}; put double "
                f"quotes around a field that contains {delimiter!r}"
                + (f", or add the column {MANDATE_COLUMN!r} to the header" if mi is None and _mandate_like(extra)
                   else "")
            )
        k = normalise(_account(row[ki], what, path, lineno) if key == ACCOUNT_COLUMN else row[ki])
        ident = unicodedata.normalize("NFC", row[ii].strip()) if ii is not None else ""
        account = _account(row[ai], what, path, lineno) if ai is not None else ""
        cell = row[mi].strip() if mi is not None and mi < len(row) else ""
        if not k or not (ident or account):
            raise ClaimsError(f"{what} {path}, line {lineno}: empty {key} or "
                              f"{'identity' if ai is None else 'identity and account'}")
        if account:
            if ident:
                raise ClaimsError(f"{what} {path}, line {lineno}: an identity and an account; a row names the "
                                  "person claimed or the account the document is drawn on, not both")
            if cell:
                raise ClaimsError(f"{what} {path}, line {lineno}: a mandate on a claim by account; the signatory "
                                  "table gives the account's mandate")
            table.accounts.setdefault(k, []).append((account, lineno))  # checked once the key's rows are known
            money = row[mo].strip() if mo is not None and mo < len(row) else ""
            if money:
                try:
                    table.amounts.setdefault(k, []).append((parse_amount(money), money, lineno))
                except ValueError as e:
                    raise ClaimsError(f"{what} {path}, line {lineno}: {e}") from e
            continue
        listed = table.people.setdefault(k, [])
        if ident not in listed:
            listed.append(ident)
        if not cell:
            continue  # everybody, unless another row of the key gives a mandate
        try:
            required, over = _parse_rule(cell)
        except ValueError as e:
            raise ClaimsError(f"{what} {path}, line {lineno}: {e}") from e
        if over is None:
            table.mandates.setdefault(k, []).append((required, cell, lineno))  # checked once the key's rows are known
        elif claims_file:
            raise ClaimsError(f"{what} {path}, line {lineno}: mandate {cell!r}: a rule over an amount belongs in "
                              "the signatory table (--signatories), for the account")
        else:
            table.limits.setdefault(k, []).append((over, required, cell, lineno))
    return table


def _claim(path: Path, what: str, key: str, people: list[list[str]], given: list[tuple[int | None, str, int]]) -> Claim:
    """The claim of a document (or an account) from its rows' people (a list per spelling) and mandates."""
    names = list(dict.fromkeys(n for spelled in people for n in spelled))
    given = sorted(((len(names) if r is None else r, cell, line) for r, cell, line in given),  # "all": everybody
                   key=lambda g: g[2])
    differing = [g for g in given if g[0] != given[0][0]]
    if differing:
        raise ClaimsError(f"{what} {path}, line {differing[0][2]}: mandate {differing[0][1]!r} for {key}, "
                          f"but line {given[0][2]} gives {given[0][1]!r}; one mandate each")
    try:
        claim = normalise_claim(names, given[0][0] if given else None)
    except ValueError:
        _, cell, lineno = given[0]
        raise ClaimsError(f"{what} {path}, line {lineno}: mandate {cell!r} for {key}, which "
                          f"{'is claimed for' if what == 'claims file' else 'lists'} {len(names)} person(s)") from None
    assert claim is not None
    return claim


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
        data = path.read_bytes()
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
    required: dict[str, int] = {}
    for doc, claim in claims.items():
        names = people.setdefault(meant(doc), [])
        for person in claimants(claim):
            if person not in names:
                names.append(person)
        if isinstance(claim, Mandate):
            if required.setdefault(meant(doc), claim.required) != claim.required:
                raise ClaimsError(f"claims: two spellings of document {meant(doc)} give different mandates")
    merged = {doc: normalise_claim(names, required.get(doc)) for doc, names in people.items()}
    return {doc: claim for doc, claim in merged.items() if claim is not None}


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
    out = [f"claims name a document that is not in SCANS: {d}" for d in absent[:LISTED]]
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
        like = hints.meant(person)
        hint = (f"; REFS has {like!r}: the same person? Claims must name the folder exactly, so nothing is "
                "matched by likeness" if like else "")
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
