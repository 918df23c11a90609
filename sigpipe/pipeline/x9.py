"""Image cash letters: the ANSI X9.37 / X9.100-187 files in which banks exchange cheque images (US image
clearing; "X9 files", ``.x937``, ``.icl``).

A file is a run of records, each a 4-byte big-endian length (not counting itself) and the record, whose first two
characters are its type. The text is EBCDIC (code page 037) or ASCII; the images are binary. An item is a check
detail record (type 25: payor bank routing number, on-us field, amount, sequence number) followed by its addenda and
image views (type 50, the view's side and format, each followed by a type 52 holding the image, usually a bitonal
TIFF compressed in CCITT Group 4). Field positions as in the standard and in moov-io/imagecashletter (Apache-2.0),
whose parsers were read, not copied.

:func:`read_items` streams the items; :func:`split_files` writes each item's front image as a document of its own
and a claims CSV naming the account each is drawn on (``sigpipe x9 split``), for ``sigpipe run --claims ...
--signatories ...``.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

from sigpipe._files import open_regular
from sigpipe.errors import InputError
from sigpipe.pipeline.report import write_bytes_atomic, write_text_atomic
from sigpipe.weights import sha256_file

log = logging.getLogger(__name__)

# image view format (record 50, positions 21-22) -> file suffix; other formats (IOCA, JBIG, JPEG 2000) are not read
FORMATS = {"00": ".tif", "20": ".png", "21": ".jpg"}
SIDES = {"0": "front", "1": "back"}
CLAIMS_CSV = "claims.csv"
CLAIMS_COLUMNS = ("document", "account", "amount", "serial", "routing", "on_us", "sequence", "business_date",
                  "x9_file")
ITEM_RECORDS = ("26", "27", "28", "50", "51", "52", "54")  # a check detail's addenda and image views
MAX_RECORD = 64 << 20  # a record longer than this is not an image view (a cheque's TIFF is tens of kilobytes)


class X9Error(InputError):
    """A file that is not an image cash letter, or one cut short or damaged."""

    kind = "bad_x9_file"


@dataclass(frozen=True)
class ImageView:
    side: str  # "front" or "back"
    format: str  # record 50's image view format indicator ("00" TIFF)
    compression: str  # its compression algorithm identifier ("00" CCITT Group 4)
    data: bytes


@dataclass(frozen=True)
class X9Item:
    """One cheque of an image cash letter (a check detail record and its image views)."""

    sequence: str  # ECE institution item sequence number: the item's identity in the bundle
    routing: str  # payor bank routing number with its check digit
    on_us: str  # the on-us field as the MICR line reads it ('/' the on-us symbol, '*' a character not read)
    aux_on_us: str
    amount_cents: int | None  # None: the field is not a number
    business_date: str  # the bundle's, YYYYMMDD
    record: int  # the check detail record's number in the file (1-based), for messages
    views: tuple[ImageView, ...] = field(default=())
    problems: tuple[str, ...] = ()  # image view records that could not be read

    @property
    def account(self) -> str:
        """The account the cheque is drawn on: the on-us field before its first on-us symbol (``/``), the US
        layout (account, then the serial number or a transaction code); the whole field without one."""
        return self.on_us.split("/", 1)[0].strip()

    @property
    def serial(self) -> str:
        """The cheque's serial number: the auxiliary on-us field (business cheques), else the on-us field after
        the account."""
        return self.aux_on_us.strip() or (self.on_us.split("/", 1)[1].strip("/ ") if "/" in self.on_us else "")

    @property
    def amount(self) -> str:
        """The amount in dollars and cents (``1234.56``), or "" when the file's field is not a number."""
        c = self.amount_cents
        return "" if c is None else f"{c // 100}.{c % 100:02d}"

    def view(self, side: str) -> ImageView | None:
        """The item's first image view of ``side`` ("front" or "back"), or None."""
        return next((v for v in self.views if v.side == side), None)


def _records(f: BinaryIO, path: Path) -> Iterator[tuple[int, bytes]]:
    """The records of an X9 file, each with its number (1-based)."""
    n = 0
    while True:
        head = f.read(4)
        if not head:
            return
        n += 1
        if len(head) < 4:
            raise X9Error(f"{path}: cut short in record {n}'s length")
        size = int.from_bytes(head, "big")
        if size < 2 or size > MAX_RECORD:
            raise X9Error(f"{path}: record {n} claims {size} bytes: not an X9.37 file, or a damaged one")
        body = f.read(size)
        if len(body) < size:
            raise X9Error(f"{path}: cut short in record {n} ({len(body)} of its {size} bytes)")
        yield n, body


def _decoder(first: bytes, path: Path) -> str:
    """The text encoding of a file whose first record is ``first``: EBCDIC (cp037) or ASCII."""
    if first[:2] == b"\xf0\xf1":
        return "cp037"
    if first[:2] == b"01":
        return "ascii"
    raise X9Error(f"{path}: not an X9.37 image cash letter (its first record is not a file header, type 01, in "
                  "EBCDIC or ASCII)")


def _num(text: str, what: str, path: Path, n: int) -> int:
    text = text.strip()
    if not text:
        return 0
    if not text.isdigit():
        raise X9Error(f"{path}: record {n}: {what} {text!r} is not a number")
    return int(text)


def read_items(path: str | Path) -> Iterator[X9Item]:
    """The items (cheques) of an image cash letter, in file order, each with its image views.

    Raises:
        X9Error: the file cannot be read, is not an X9.37 file, or is cut short or damaged (raised after the items
            before the damage).
    """
    path = Path(path)
    try:
        f = open_regular(path)
    except OSError as e:
        raise X9Error(f"cannot read {path}: {e}") from e
    with f:
        enc = ""
        date = ""
        item: X9Item | None = None
        pending: tuple[str, str, str] | None = None  # the last image view detail (side, format, compression)
        last = 0
        for n, rec in _records(f, path):
            last = n
            if not enc:
                enc = _decoder(rec, path)
            kind = rec[:2].decode(enc, "replace")
            if kind not in ITEM_RECORDS and item is not None:  # the item's addenda and images are over
                yield item
                item = None
                pending = None
            if kind in ("25", "31", "50", "20") and len(rec) < 80:
                raise X9Error(f"{path}: record {n} (type {kind}) has {len(rec)} bytes; 80 expected")
            if kind == "99":  # the file control record: the file ends here (a transfer may pad it after)
                return
            if kind == "20":
                date = rec[22:30].decode(enc, "replace").strip()
            elif kind == "25":
                t = rec[:80].decode(enc, "replace")
                amount = t[47:57].strip()  # unreadable: the signatures can still be checked, under the strictest rule
                item = X9Item(sequence=t[57:72].strip(), routing=t[18:27].strip(), on_us=t[27:47].strip(),
                              aux_on_us=t[2:17].strip(), amount_cents=int(amount) if amount.isdigit() else None,
                              business_date=date, record=n)
            elif kind == "31":
                log.info("%s: record %d is a return (type 31), not a cheque presented for payment: skipped", path, n)
            elif kind == "50" and item is not None:
                t = rec[:80].decode(enc, "replace")
                pending = (SIDES.get(t[31], f"side {t[31]!r}"), t[20:22], t[22:24])
            elif kind == "52" and item is not None and pending is not None:
                try:
                    item = _with_view(item, rec, enc, pending, path, n)
                except X9Error as e:  # one image's damaged lengths: the record's own length still frames the next
                    item = replace(item, problems=(*item.problems, str(e)))
                pending = None
        if not enc:
            raise X9Error(f"{path}: empty file: not an X9.37 image cash letter")
        if item is not None:
            yield item
        raise X9Error(f"{path}: ends after record {last} without its file control record (type 99): cut short? "
                      "The cheques before the end were read")


def _with_view(item: X9Item, rec: bytes, enc: str, view: tuple[str, str, str], path: Path, n: int) -> X9Item:
    """``item`` with the image of image view data record ``rec`` (type 52) added."""
    def number(start: int, width: int, what: str) -> int:
        if len(rec) < start + width:
            raise X9Error(f"{path}: record {n} (image view data) ends inside its {what}")
        return _num(rec[start:start + width].decode(enc, "replace"), what, path, n)

    key = number(101, 4, "image reference key length")
    sig = number(105 + key, 5, "digital signature length")
    size = number(110 + key + sig, 7, "image data length")
    start = 117 + key + sig
    if len(rec) < start + size:
        raise X9Error(f"{path}: record {n} (image view data) holds {len(rec) - start} of its image's {size} bytes")
    if not size:
        return item
    side, fmt, compression = view
    return replace(item, views=(*item.views, ImageView(side, fmt, compression, bytes(rec[start:start + size]))))


@dataclass
class SplitResult:
    """What :func:`split_files` wrote: documents (relative to OUT) and the items it could not write, with why."""

    documents: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # files that are not readable image cash letters, with why
    notes: list[str] = field(default_factory=list)  # items written with something missing (their amount)
    claims: Path | None = None


def split_files(files: Sequence[str | Path], out: str | Path) -> SplitResult:
    """Write each item's front image as ``OUT/<file's stem>-<its sha256's first 8 hex digits>/<sequence>.tif``
    (``.png``, ``.jpg`` for items in those formats: :data:`FORMATS`; a folder no other file's can take; the image's
    bytes as the file holds them: nothing is recompressed; the back, endorsements, is left out), and
    ``OUT/claims.csv`` naming the account each document is drawn on (columns :data:`CLAIMS_COLUMNS`), for ``sigpipe
    run OUT --claims OUT/claims.csv --signatories CARDS``. A claims.csv already in OUT keeps the rows of the other
    files' folders (a night's second cash letter split into the same OUT); a file given twice is read once. A file
    that is damaged part way keeps the items before the damage; an item without a readable account (a MICR line not
    read: ``*``) is listed under that account, which no signatory table holds, so its document fails alone with the
    reason.

    Raises:
        InputError: a file cannot be written to OUT, or OUT holds a claims.csv that this command did not write.
    """
    out = Path(out)
    try:  # customers' cheques, accounts and amounts: a folder this creates is its user's alone, as review's is
        out.mkdir(mode=0o700, parents=True, exist_ok=True)  # (one that exists keeps its permissions)
    except OSError as e:
        raise InputError(f"cannot create {out}: {e}") from e
    result = SplitResult()
    kept = _earlier_rows(out / CLAIMS_CSV)
    rows: list[list[str]] = []
    folders: set[str] = set()
    for file in dict.fromkeys(Path(os.path.abspath(f)) for f in files):  # a file given twice: once
        try:
            folder = (re.sub(r"[^\w.-]+", "_", file.stem) or "x9") + "-" + sha256_file(file)[:8]
        except OSError as e:
            result.failed.append(f"cannot read {file}: {e}")
            continue
        if folder in folders:  # the same contents under two names: its cheques once
            continue
        folders.add(folder)
        seen: set[str] = set()
        try:
            for item in read_items(file):
                view = item.view("front")
                label = f"{file.name}: item {item.sequence or '?'} (record {item.record})"
                suffix = FORMATS.get(view.format) if view is not None else None
                if view is None or suffix is None:
                    result.skipped.append(f"{label}: " + ("no front image" if view is None else
                                          f"front image in format {view.format!r}, which sigpipe does not read "
                                          "(TIFF, PNG and JPEG only)")
                                          + (f" ({'; '.join(item.problems)})" if item.problems else ""))
                    continue
                base = name = re.sub(r"[^\w-]+", "_", item.sequence) or f"record{item.record}"
                k = 2
                while name in seen:  # a sequence number used twice in one file: both kept
                    name, k = f"{base}_{k}", k + 1
                seen.add(name)
                doc, target = f"{folder}/{name}{suffix}", out / folder / f"{name}{suffix}"
                try:
                    if not (target.is_file() and target.read_bytes() == view.data):  # a re-split writes nothing
                        write_bytes_atomic(target, view.data)
                except OSError as e:
                    raise InputError(f"cannot write {target}: {e}") from e
                result.documents.append(doc)
                if item.amount_cents is None:
                    result.notes.append(f"{label}: item amount is not a number; the cheque is written without one")
                rows.append([doc, item.account or "?", item.amount, item.serial, item.routing, item.on_us,
                             item.sequence, item.business_date, file.name])
        except X9Error as e:  # this file's items before the damage are kept; the next file is read
            result.failed.append(str(e))
    rows = [r for r in kept if r[0].split("/", 1)[0] not in folders] + rows
    if rows:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\r\n")
        w.writerow(CLAIMS_COLUMNS)
        w.writerows(rows)
        result.claims = out / CLAIMS_CSV
        try:
            write_text_atomic(result.claims, buf.getvalue())
        except OSError as e:
            raise InputError(f"cannot write {result.claims}: {e}") from e
    return result


def _earlier_rows(path: Path) -> list[list[str]]:
    """The rows of a claims.csv an earlier split wrote into OUT ([] without one).

    Raises:
        InputError: it is not one this command wrote (its header differs): it is the user's, not to be replaced.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read {path}: {e}") from e
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or tuple(rows[0]) != CLAIMS_COLUMNS:
        raise InputError(f"{path} is not a claims file that 'sigpipe x9 split' wrote; split into another --out")
    return [r for r in rows[1:] if r]
