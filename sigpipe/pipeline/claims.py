"""The claims CSV: which person each document's signatures are claimed to be from.

Header ``document,identity`` (other columns are ignored); ``document`` is the path relative to SCANS, with ``/``
separators. Blank lines are skipped. A document signed by several people (a contract) is listed once per signatory.
Spreadsheets saved as CSV in locales whose decimal mark is a comma separate fields with ``;``; a header separated by
``;`` or by tabs is read that way.
"""

from __future__ import annotations

import csv
import unicodedata
from collections.abc import Collection
from pathlib import Path

from sigpipe.pipeline.errors import ClaimsError

REQUIRED_COLUMNS = ("document", "identity")

# Who a document is claimed to be signed by: one person, or several (in the order of the claims file).
Claim = str | tuple[str, ...]


def claimants(claim: Claim | None) -> tuple[str, ...]:
    """The people of a claim as a tuple (empty without a claim)."""
    if claim is None:
        return ()
    return (claim,) if isinstance(claim, str) else tuple(claim)


def normalise_document(name: str) -> str:
    """A document name as written by people (``./a\\b.pdf``) in the form reports use (``a/b.pdf``)."""
    name = name.strip().replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    return name


def load_claims(path: str | Path) -> dict[str, Claim]:
    """Read a claims CSV.

    Returns:
        ``{document (relative POSIX path): identity}``, or ``(identity, ...)`` for a document listed with several
        identities (in the order of their first row; a repeated row counts once).

    Raises:
        ClaimsError: unreadable file, header without ``document`` and ``identity``, or a row with an empty value.
            The message names the file and the row.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise ClaimsError(f"cannot read claims file {path}: {e}") from e
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), "")
    delimiter = next((d for d in (",", ";", "\t") if d in first), ",")
    reader = csv.reader(lines, delimiter=delimiter)
    header = next(reader, None)
    cols = [c.strip().lower() for c in header] if header else []
    if not header or any(c not in cols for c in REQUIRED_COLUMNS):
        raise ClaimsError(
            f"claims file {path}: the first line must be the header 'document,identity', got "
            f"{','.join(header) if header else 'an empty file'!r}"
        )
    di, ii = cols.index("document"), cols.index("identity")
    people: dict[str, list[str]] = {}
    for lineno, row in enumerate(reader, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) <= max(di, ii):
            raise ClaimsError(f"claims file {path}, line {lineno}: expected {len(cols)} columns, got {len(row)}")
        doc, ident = normalise_document(row[di]), unicodedata.normalize("NFC", row[ii].strip())
        if not doc or not ident:
            raise ClaimsError(f"claims file {path}, line {lineno}: empty document or identity")
        names = people.setdefault(doc, [])
        if ident not in names:
            names.append(ident)
    return {doc: names[0] if len(names) == 1 else tuple(names) for doc, names in people.items()}


def match_documents(claims: dict[str, Claim], documents: Collection[str], scans: str | Path) -> dict[str, Claim]:
    """The claims keyed by the names of the documents they mean.

    A claim names a document as people write it; it is matched to a document name (POSIX path relative to SCANS)
    whatever the Unicode form of its accents (macOS writes file names decomposed, spreadsheets composed) and when it
    is an absolute path inside SCANS. Claims that match no document keep their name (see :func:`claim_warnings`).
    """
    def nfc(s: str) -> str:
        return unicodedata.normalize("NFC", s)

    root = Path(scans).resolve()
    by_form = {nfc(d): d for d in documents}
    out: dict[str, Claim] = {}
    for doc, claim in claims.items():
        key = doc
        if Path(doc).is_absolute():
            try:
                key = Path(doc).resolve().relative_to(root).as_posix() if root.is_dir() else Path(doc).name
            except ValueError:
                pass
        out[by_form.get(nfc(key), doc)] = claim
    return out


def claim_warnings(claims: dict[str, Claim], documents: Collection[str], people: Collection[str]) -> list[str]:
    """Problems with claims that do not stop a run: claimed documents that are not in SCANS, claimed people
    without references (their documents get ``no_reference`` signatures or need review)."""
    docs, enrolled = set(documents), set(people)
    out = [f"claims name a document that is not in SCANS: {d}" for d in sorted(set(claims) - docs)]
    claimed = {d: claimants(c) for d, c in claims.items() if d in docs}
    for person in sorted({p for names in claimed.values() for p in names} - enrolled):
        n = sum(1 for names in claimed.values() if person in names)
        out.append(f"claimed identity {person!r} has no usable references in REFS ({n} document(s) need review)")
    return out
