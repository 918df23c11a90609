"""The claims CSV: which person each document's signatures are claimed to be from.

Header ``document,identity`` (other columns are ignored); ``document`` is the path relative to SCANS, with ``/``
separators. Blank lines are skipped.
"""

from __future__ import annotations

import csv
from collections.abc import Collection
from pathlib import Path

from sigpipe.pipeline.errors import ClaimsError

REQUIRED_COLUMNS = ("document", "identity")


def normalise_document(name: str) -> str:
    """A document name as written by people (``./a\\b.pdf``) in the form reports use (``a/b.pdf``)."""
    name = name.strip().replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    return name


def load_claims(path: str | Path) -> dict[str, str]:
    """Read a claims CSV.

    Returns:
        ``{document (relative POSIX path): identity}``.

    Raises:
        ClaimsError: unreadable file, header without ``document`` and ``identity``, a row with an empty value, or
            a document claimed for two different identities. The message names the file and the row.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise ClaimsError(f"cannot read claims file {path}: {e}") from e
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    cols = [c.strip().lower() for c in header] if header else []
    if not header or any(c not in cols for c in REQUIRED_COLUMNS):
        raise ClaimsError(
            f"claims file {path}: the first line must be the header 'document,identity', got "
            f"{','.join(header) if header else 'an empty file'!r}"
        )
    di, ii = cols.index("document"), cols.index("identity")
    claims: dict[str, str] = {}
    for lineno, row in enumerate(reader, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) <= max(di, ii):
            raise ClaimsError(f"claims file {path}, line {lineno}: expected {len(cols)} columns, got {len(row)}")
        doc, ident = normalise_document(row[di]), row[ii].strip()
        if not doc or not ident:
            raise ClaimsError(f"claims file {path}, line {lineno}: empty document or identity")
        if claims.get(doc, ident) != ident:
            raise ClaimsError(
                f"claims file {path}, line {lineno}: {doc} is claimed for both {claims[doc]!r} and {ident!r}"
            )
        claims[doc] = ident
    return claims


def claim_warnings(claims: dict[str, str], documents: Collection[str], people: Collection[str]) -> list[str]:
    """Problems with claims that do not stop a run: claimed documents that are not in SCANS, claimed people
    without references (their documents get ``no_reference`` signatures)."""
    docs, enrolled = set(documents), set(people)
    out = [f"claims name a document that is not in SCANS: {d}" for d in sorted(set(claims) - docs)]
    for person in sorted({p for d, p in claims.items() if d in docs} - enrolled):
        n = sum(1 for d, p in claims.items() if p == person and d in docs)
        out.append(f"claimed identity {person!r} has no usable references in REFS ({n} document(s) need review)")
    return out
