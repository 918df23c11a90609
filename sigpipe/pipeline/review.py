"""Review sheets: the signatures a person should look at after a run, as images beside what they were compared with.

``sigpipe review OUT --scans SCANS --refs REFS`` reads the reports a run wrote and, for each signature to review,
renders its page again (at the report's dpi, with its PDF backend), cuts the signature out as the verifier saw it
(the report's box, crop margin and page turn) and writes one PNG sheet: the page with the box drawn, the questioned
signature upright, and the reference specimen it was closest to (``nearest_reference``), under a caption with the
verdict and the figures. ``index.html`` lists the sheets, the unsigned and the failed documents. No model runs,
unless a nearest reference is a PDF or whole page, whose signature the detector finds again.

The reports are the record: a document changed since its report is not reviewed (its sha256 differs) but listed, so
the sheet never shows other pixels than those the verdict rests on.
"""

from __future__ import annotations

import csv
import errno
import html
import json
import logging
import math
import os
import re
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote

import cv2
import numpy as np

from sigpipe._files import name_folding
from sigpipe._names import from_readable, readable
from sigpipe.errors import SigpipeError
from sigpipe.pipeline.claims import Mandate, NameHints, claimants, rule_text
from sigpipe.pipeline.flow import upright_crop
from sigpipe.pipeline.ingest import DEFAULT_DPI, IngestConfig, PageSelection, iter_pages
from sigpipe.pipeline.orientation import turn_upright
from sigpipe.pipeline.placed import not_judged
from sigpipe.pipeline.report import (
    REPORT_SUFFIX,
    REVIEW_VERDICTS,
    SUMMARY_CSV,
    SUMMARY_JSON,
    DocumentReport,
    SignatureResult,
    read_report,
    remove_stale_temporaries,
    write_bytes_atomic,
)
from sigpipe.verifier.gallery import SpecimenLoader, person_dirs, specimen_crops, specimen_files
from sigpipe.weights import sha256_file

if TYPE_CHECKING:
    from sigpipe.verifier.verifier import Verifier

log = logging.getLogger(__name__)

SHEET_SUFFIX = ".png"
STALE_SHEET_S = 3600.0  # a sheet is written and renamed within seconds: a temporary an hour old was left by a kill
INDEX_HTML = "index.html"
PANEL_H = 300  # pixels: height of the three panels of a sheet
PANEL_W = 480  # pixels: their widest
_CAPTION_LINE = 26
SPECIMENS_KEPT = 64  # reference specimens kept read between sheets (a night's batch names thousands of people)
STRIP_SHOWN = 8  # a person's specimens shown in a row under a sheet's panels: all of them, up to this many
_STRIP_H = 120  # pixels: the row's images
_DEFAULT_MARGIN = 0.08  # the crop margin of reports written before reports recorded their settings
# the order sheets are listed in: the verdicts a reviewer must act on first
_VERDICT_ORDER = {"forged": 0, "copied": 1, "unknown_signer": 1, "no_ink": 2, "no_reference": 2, "electronic": 2,
                  "other_signer": 3, "genuine": 4}
_HELD_ORDER = 3  # a signature judged genuine whose document is held for review (a close call): before the genuine
_COLOURS = {"genuine": (40, 140, 40), "forged": (30, 30, 210)}  # BGR; the other verdicts orange
_OTHER_COLOUR = (0, 140, 235)

SpecimenReader = Callable[[Path], list[np.ndarray]]
Specimens = OrderedDict[str, tuple[list[np.ndarray], str | None]]  # reference -> its signatures, or why none (kept)
# (questioned crop, the crops of a reference file) -> index of the crop the verifier finds nearest
NearestCrop = Callable[[np.ndarray, list[np.ndarray]], int]


@dataclass(frozen=True)
class Sheet:
    """One signature put up for review.

    Attributes:
        document: the document (relative to SCANS); number: the signature's 1-based place in its report.
        signature: what the report says of it; document_verdict: the document's verdict.
        file: the sheet (relative to the review folder).
        reference_note: why the reference panel is empty, or that the reference is a suspect specimen; None when
            shown plainly.
        held: why a signature judged genuine is held for review with its document (:func:`held_for`); None.
    """

    document: str
    number: int
    signature: SignatureResult
    document_verdict: str
    claimed: str | None
    file: str
    reference_note: str | None = None
    held: str | None = None

    @property
    def order(self) -> int:
        """Where the sheet comes in the index: the verdicts a reviewer must act on first."""
        return _HELD_ORDER if self.held else _VERDICT_ORDER[self.signature.verdict]

    @property
    def margin(self) -> float:
        """How far the verdict is from going the other way: the distance's gap to the threshold, relative to the
        threshold (infinite when nothing was compared). Within a verdict the index lists the closest calls first,
        where a reviewer's eye changes most."""
        d, t = self.signature.distance, self.signature.threshold
        return abs(d - t) / t if d is not None and t is not None and t > 0 else math.inf


def held_for(sig: SignatureResult, report: DocumentReport) -> str | None:
    """Why a signature judged genuine is nonetheless held for review with its document (``needs_review``): its
    score under the run's ``--accept-score`` bar, or a claimed person's signature missing; None when it is not held.
    A green 'genuine' on such a sheet read as approved."""
    if sig.verdict != "genuine" or report.verdict != "needs_review":
        return None
    bar = report.settings.accept_score if report.settings else None
    if bar is not None and (sig.score is None or sig.score < bar):
        return f"held for review: score {_figure(sig.score)} is under the --accept-score bar {bar:g}"
    holding = sorted({s.verdict for s in report.signatures} & REVIEW_VERDICTS)
    if holding:  # what holds the document: say it (a loan package's e-signed pages held its wet-ink ones unsaid)
        return f"held for review with its document: another signature is {' / '.join(holding)}"
    if bar is not None and any(s.score is None or s.score < bar for s in report.signatures if s.verdict == "genuine"):
        return f"held for review with its document: another signature's score is under --accept-score {bar:g}"
    # a cheque without the amount its card's rules ask for is held to all of them: say so, the amount is the fix
    unpriced = " (no usable amount in the claims: held to every rule of the account's card)" if report.amount_missing \
        else ""
    if isinstance(report.claimed_identity, Mandate) and report.claimed_identity.rule:
        return (f"held for review with its document: those who signed do not meet the mandate "
                f"{rule_text(report.claimed_identity.rule)}{unpriced}")
    if isinstance(report.claimed_identity, Mandate):
        return (f"held for review with its document: fewer than {report.claimed_identity.required} of the claimed "
                f"people signed{unpriced}")
    signed = {x.identity for x in report.signatures if x.verdict == "genuine"}
    missing = [p for p in claimants(report.claimed_identity) if p not in signed]  # named: which of them, the reviewer
    who = f" ({', '.join(missing)})" if missing else ""  # asked of a three-party contract
    return f"held for review with its document: a claimed person's signature is missing{who}{unpriced}"


@dataclass(frozen=True)
class ReviewResult:
    """What :func:`write_review` did.

    Attributes:
        sheets: the sheets written, in the order of the index (forged first; within a verdict, the closest calls
            first).
        unsigned: documents without a signature. failed: ``(document, error kind, message)`` of failed documents.
        unclaimed_genuine: ``(document, the people matched)`` of the documents a run's claims file left out and that
            came out ``genuine`` one-to-many: a claims row lost lets whoever's signature it is pass, a fraud audit
            found (their signatures are not to review otherwise).
        claimed_unsigned: ``(document, who it is claimed for)`` of those of ``unsigned`` that are claimed: presented
            as signed, so not signed or signed where the detector cannot see; listed after the sheets, before the
            other documents without one, with a link to the file.
        problems: ``(document, why)`` for documents that could not be reviewed (missing, changed since the report,
            unreadable); their sheets are not written.
        reports: reports read.
    """

    sheets: tuple[Sheet, ...]
    unsigned: tuple[str, ...]
    failed: tuple[tuple[str, str, str], ...]
    problems: tuple[tuple[str, str], ...]
    reports: int
    claimed_unsigned: tuple[tuple[str, str], ...] = ()
    unclaimed_genuine: tuple[tuple[str, tuple[str, ...]], ...] = ()


class LazyLoader:
    """A :class:`~sigpipe.verifier.gallery.SpecimenLoader` built at its first use: the detector is loaded only when
    a reference to show is a PDF or a whole page."""

    def __init__(self, make: Callable[[], SpecimenLoader]) -> None:
        self._make = make
        self._loader: SpecimenLoader | None = None

    @property
    def ident(self) -> str:
        return self._get().ident

    def _get(self) -> SpecimenLoader:
        if self._loader is None:
            self._loader = self._make()
        return self._loader

    def __call__(self, path: Path) -> list[np.ndarray]:
        return self._get()(path)


def specimen_reader(loader: SpecimenLoader | None) -> SpecimenReader:
    """Reads a reference specimen as enrolment does (:func:`~sigpipe.verifier.gallery.specimen_crops`): an image
    as it is, a PDF or whole page through ``loader`` (every signature it finds, one per page or more); without a
    loader such specimens cannot be shown."""
    return lambda path: specimen_crops(path, loader)


def first_crop(_query: np.ndarray, crops: list[np.ndarray]) -> int:
    """A :data:`NearestCrop` that needs no model: the first crop (right whenever a reference file holds one)."""
    return 0


def nearest_crop(verifier: Callable[[], Verifier]) -> NearestCrop:
    """A :data:`NearestCrop` that embeds the crops with ``verifier()`` (built at the first file with several
    signatures) and picks the one nearest the questioned signature by the Siamese distance, as the report's
    ``nearest_reference`` was chosen: a reference file of several pages holds several signatures."""
    made: list[Verifier] = []

    def choose(query: np.ndarray, crops: list[np.ndarray]) -> int:
        if len(crops) < 2:
            return 0
        if not made:
            made.append(verifier())
        emb = made[0].embed([query, *crops])
        return int(np.argmin(np.linalg.norm(emb[1:] - emb[0], axis=1)))

    return choose


def iter_reports(out: Path) -> Iterator[tuple[str, DocumentReport | None]]:
    """The report files under ``out`` (not the summary), sorted, each with its report, or None for a file that does
    not read as one (truncated by a crash, edited by hand); their names relative to ``out``."""
    for p in sorted(out.rglob(f"*{REPORT_SUFFIX}")):
        if p.parent == out and p.name == SUMMARY_JSON:
            continue
        yield p.relative_to(out).as_posix(), read_report(p)


def names_person(report: DocumentReport, person: str) -> bool:
    """Whether ``report`` names ``person`` (as REFS folders and claims name people, either Unicode form): claimed,
    judged as the signer, or one of their specimens the closest reference."""
    want = unicodedata.normalize("NFC", person)
    people = {*claimants(report.claimed_identity), *(s.identity for s in report.signatures if s.identity),
              *(s.nearest_reference.split("/", 1)[0] for s in report.signatures if s.nearest_reference)}
    return want in {unicodedata.normalize("NFC", p) for p in people}


def files_naming(person: str, out: Path, review_folders: Sequence[Path] = ()) -> tuple[list[Path], list[Path]]:
    """What in ``out`` (a run's OUT) names ``person``: their reports, the review sheets of those documents in
    ``out/review``, the sheets each of ``review_folders`` (``sigpipe review --to`` elsewhere) lists beside their
    name in its ``index.html``, those ``index.html`` files, and ``summary.json`` / ``summary.csv`` when they name
    them; and the report files that cannot be read (to look at by hand). For erasing a person's data (README).

    Raises:
        ValueError: ``person`` is empty.
    """
    want = unicodedata.normalize("NFC", person).strip()
    if not want:
        raise ValueError("give a person's name (as their REFS folder is named)")
    found: list[Path] = []
    unreadable: list[Path] = []
    for name, report in iter_reports(out):
        if report is None:
            unreadable.append(out / name)
            continue
        if not names_person(report, want):
            continue
        found.append(out / name)
        found += [f for n in range(1, len(report.signatures) + 1)
                  if (f := out / "review" / sheet_name(report.document.path, n)).is_file()]
    for folder in dict.fromkeys([out / "review", *review_folders]):  # a sheet named by a document of another
        found += _listed_beside(folder, want)  # night: only as its index says
    summary = out / SUMMARY_JSON
    try:
        if summary.is_file() and _json_names(json.loads(summary.read_text(encoding="utf-8")), want):
            found.append(summary)  # its warnings name people (suspect references, duplicates)
    except (OSError, ValueError):
        unreadable.append(summary)
    rows_file = out / SUMMARY_CSV
    if rows_file.is_file():
        with open(rows_file, encoding="utf-8", newline="") as text:
            if any(want in {unicodedata.normalize("NFC", p[1:] if p.startswith("'") else p)  # as _cell wrote it
                            for p in (row.get("identity") or "", *(row.get("claimed_identity") or "").split(";"))}
                   for row in csv.DictReader(text)):
                found.append(rows_file)
    return list(dict.fromkeys(found)), unreadable  # a sheet both a report and an index name: once


def _json_names(data: object, person: str) -> bool:
    """Whether a summary's JSON names ``person``: a value that is the name, a path in their REFS folder
    (``alice/01.png``, ``.../alice/01.png``), or the name quoted in a warning (``'alice'``)."""
    if isinstance(data, dict):
        return any(_json_names(v, person) for v in data.values())
    if isinstance(data, list):
        return any(_json_names(v, person) for v in data)
    if not isinstance(data, str):
        return False
    text = unicodedata.normalize("NFC", data)
    return text == person or text.startswith(f"{person}/") or f"/{person}/" in text or f"'{person}'" in text


_ROW_FIELDS = re.compile(r"(?:identity|closest enrolled \(no match\)): (.*?)<br>"
                         r"|reference: ([^<]*?)/[^<]*?(?:<br>|</td>)|claimed: (.*?)</td>", re.S)


def _row_names(row: str) -> set[str]:
    """The people a review index's row names: the identity, the closest reference's folder, the claimed people."""
    names: set[str] = set()
    for identity, reference, claimed in _ROW_FIELDS.findall(row):
        if identity or reference:
            names.add(html.unescape(identity or reference))
        elif claimed:
            text = html.unescape(claimed)
            if text.startswith("account ") and ": " in text:
                text = text.split(": ", 1)[1]
            text = re.sub(r"^.*? of ", "", text) if re.match(r"(?:any \d+|\S.*?) of ", text) else text
            names.update(re.sub(r" \([^)]*\)$", "", n) for n in text.split(", "))
    return {unicodedata.normalize("NFC", n.strip()) for n in names}


def _listed_beside(folder: Path, person: str) -> list[Path]:
    """The sheets that ``folder/index.html`` (a review's) lists in a row naming ``person`` (claimed, the identity, or
    a specimen of theirs the closest reference), then the index itself; [] when it names them nowhere."""
    index = folder / INDEX_HTML
    try:
        text = unicodedata.normalize("NFC", index.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    rows = [row for row in re.findall(r"<tr\b.*?</tr>", text, re.S) if person in _row_names(row)]
    sheets = [_below(folder, unquote(html.unescape(href))) for row in rows
              for href in dict.fromkeys(re.findall(r'<a href="([^"]+)"', row))]
    return [f for f in sheets if f is not None and f.is_file()] + ([index] if rows else [])


def to_review(report: DocumentReport, everything: bool = False) -> list[int]:
    """Indexes of ``report``'s signatures to review: every one when ``everything``; else those not judged
    ``genuine``, and all of a document whose verdict is not ``genuine`` (e.g. ``needs_review`` because a claimed
    person's signature is missing)."""
    if everything or report.verdict not in ("genuine", "unsigned"):
        return list(range(len(report.signatures)))
    return [i for i, s in enumerate(report.signatures) if s.verdict != "genuine"]


def sheet_name(document: str, number: int) -> str:
    """The sheet of signature ``number`` (1-based) of ``document``: ``<document>.sig<number>.png``, relative to the
    review folder."""
    return f"{document}.sig{number}{SHEET_SUFFIX}"


def suspect_files(out: Path) -> set[str]:
    """The suspect specimens named in ``out``'s summary (as the summary names them), empty without one."""
    return _summary_names(out, "suspect_references", "file")


def unclaimed_files(out: Path) -> set[str]:
    """The documents ``out``'s summary says its run's claims file left out (matched one-to-many), empty without
    one or without a claims file."""
    return _summary_names(out, "unclaimed_documents")


def _summary_names(out: Path, key: str, field: str | None = None) -> set[str]:
    """The names ``out``'s summary lists under ``key`` (each item's ``field`` when given); empty without a readable
    summary."""
    try:
        data = json.loads((out / SUMMARY_JSON).read_text(encoding="utf-8"))
        return {str(item[field] if field else item) for item in data.get(key, [])}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return set()


def reportless_failures(out: Path, reported: Collection[str]) -> list[tuple[str, str, str]]:
    """``(document, error kind, message)`` of the failures ``out``'s summary lists whose document has no report of
    its own among ``reported`` (the documents the reports read name): a report the file system refused (a name a
    Windows share forbids, one that is another's there: Cheque.png's file holds cheque.png's report), one too long a
    name for it, a folder that could not be read. Empty without a summary."""
    try:
        data = json.loads((out / SUMMARY_JSON).read_text(encoding="utf-8"))
        failures = [(str(f["document"]), str(f["kind"]), str(f["message"])) for f in data.get("failures", [])]
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return []
    return [f for f in failures if f[0] not in reported]


def _is_suspect(reference: str, suspects: set[str]) -> bool:
    """Whether ``reference`` (relative to REFS) is among ``suspects`` (named with the run's REFS path before it)."""
    parts = tuple(reference.split("/"))
    return any(Path(s).parts[-len(parts):] == parts for s in suspects)


def _ascii(text: str) -> str:
    """``text`` as OpenCV's fonts can draw it: non-ASCII characters escaped (the index shows them as they are)."""
    return text.encode("ascii", "backslashreplace").decode("ascii")


def _fit(image: np.ndarray, width: int, height: int, upscale: float = 2.0) -> np.ndarray:
    """``image`` (BGR) scaled to fit ``width`` x ``height``, enlarged at most ``upscale`` times."""
    h, w = image.shape[:2]
    s = min(width / w, height / h, upscale)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)


def _bgr(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image


def _panel(image: np.ndarray | None, label: str, note: str | None = None) -> np.ndarray:
    """A labelled panel ``PANEL_W`` wide: the image fitted in, or ``note`` where there is none."""
    panel = np.full((PANEL_H + _CAPTION_LINE, PANEL_W, 3), 255, np.uint8)
    label = _ascii(label)
    label = label if len(label) <= 62 else f"{label[:24]}...{label[-35:]}"  # what it is, and the file's name
    cv2.putText(panel, label, (4, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (90, 90, 90), 1, cv2.LINE_AA)
    if image is not None:
        fitted = _fit(_bgr(image), PANEL_W - 8, PANEL_H - 8)
        h, w = fitted.shape[:2]
        y0, x0 = _CAPTION_LINE + (PANEL_H - h) // 2, (PANEL_W - w) // 2
        panel[y0:y0 + h, x0:x0 + w] = fitted
        cv2.rectangle(panel, (x0 - 1, y0 - 1), (x0 + w, y0 + h), (200, 200, 200), 1)
    if note:  # in the middle of an empty panel; under an image, at the bottom on white so that it stays legible
        y = _CAPTION_LINE + PANEL_H // 2 if image is None else _CAPTION_LINE + PANEL_H - 6
        text = _ascii(note)[:62]
        if image is not None:
            (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
            cv2.rectangle(panel, (2, y - th - 4), (8 + tw, y + 4), (255, 255, 255), -1)
        cv2.putText(panel, text, (4, y), cv2.FONT_HERSHEY_SIMPLEX, 0.45, _OTHER_COLOUR, 1, cv2.LINE_AA)
    return panel


def _figure(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def render_sheet(page: np.ndarray, sig: SignatureResult, crop: np.ndarray, reference: np.ndarray | None,
                 caption: Sequence[str], reference_label: str, reference_note: str | None = None,
                 others: Sequence[tuple[int, tuple[float, float, float, float]]] = (),
                 caption_colour: tuple[int, int, int] | None = None, strip: np.ndarray | None = None) -> np.ndarray:
    """Compose a sheet: caption lines above three panels (the page with the box in red and the questioned signature,
    both turned upright, and the reference).

    Args:
        page: ``(H, W, 3)`` or ``(H, W)`` uint8 page as scanned, in the pixels of ``sig.bbox``.
        crop: the questioned signature as the verifier saw it (upright). reference: the specimen, or None.
        others: the page's other signatures, ``(number, box)`` (same pixels), drawn in grey with their numbers.
        caption_colour: the verdict line's colour (BGR; default: the verdict's).
        strip: a row to put under the panels (:func:`specimen_strip`).

    Returns:
        ``(H', 3 * PANEL_W, 3)`` uint8 BGR image.
    """
    page = _bgr(page).copy()
    thick = max(2, round(max(page.shape[:2]) / 400))
    for number, box in others:
        a1, b1, a2, b2 = (round(v) for v in box)
        cv2.rectangle(page, (a1, b1), (a2, b2), (150, 150, 150), thick)
        cv2.putText(page, str(number), (a1 + thick, b1 - 3 * thick if b1 > 30 * thick else b2 + 25 * thick),
                    cv2.FONT_HERSHEY_SIMPLEX, thick, (120, 120, 120), thick + 1, cv2.LINE_AA)
    x1, y1, x2, y2 = (round(v) for v in sig.bbox)
    cv2.rectangle(page, (x1, y1), (x2, y2), (0, 0, 230), thick)
    turned = f" (turned upright: scanned {sig.page_rotation} deg round)" if sig.page_rotation else ""
    panels = np.hstack([
        _panel(turn_upright(page, sig.page_rotation // 90), f"page {sig.page}{turned}"),
        _panel(crop, "questioned signature" + (f" (levelled: turned {sig.page_skew:+.1f} deg)"
                                               if sig.page_skew else "")),
        _panel(reference, reference_label, reference_note),
    ])
    rows = [(i, part) for i, line in enumerate(caption) for part in _wrap(_ascii(line)[:600], panels.shape[1] - 12)]
    head = np.full((_CAPTION_LINE * len(rows) + 8, panels.shape[1], 3), 255, np.uint8)
    for k, (i, part) in enumerate(rows):
        colour = (caption_colour or _COLOURS.get(sig.verdict, _OTHER_COLOUR)) if i == 1 else (0, 0, 0)
        cv2.putText(head, part, (6, 20 + k * _CAPTION_LINE), cv2.FONT_HERSHEY_SIMPLEX, 0.55, colour, 1, cv2.LINE_AA)
    return np.vstack([head, panels] + ([strip] if strip is not None else []))


def _wrap(line: str, width: int) -> list[str]:
    """``line`` broken at spaces into parts each drawn within ``width`` pixels in the caption's font (a word longer
    than that is cut): a claim of many signatories with their classes was cut off at the sheet's edge."""
    def wide(text: str) -> bool:
        return cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.55, 1)[0][0] > width

    parts: list[str] = []
    for word in line.split(" "):
        if parts and not wide(f"{parts[-1]} {word}"):
            parts[-1] = f"{parts[-1]} {word}"
            continue
        while wide(word) and len(word) > 1:
            lo, hi = 1, len(word) - 1  # the longest head that fits (one character at least)
            while lo < hi:
                mid = (lo + hi + 1) // 2
                lo, hi = (mid, hi) if not wide(word[:mid]) else (lo, mid - 1)
            parts.append(word[:lo])
            word = word[lo:]
        parts.append(word)
    return parts or [""]


def specimen_strip(person: str, specimens: Sequence[tuple[str, np.ndarray | None]], total: int,
                   closest: str | None) -> np.ndarray:
    """A row of a person's specimens, ``(name relative to REFS, image or None when unreadable)`` (at most
    :data:`STRIP_SHOWN` of ``total``: the first ones and the closest), each fitted in its own cell, the one
    ``closest`` outlined: the verdict weighs them all, and an examiner judges a signature against the person's
    range, not one specimen."""
    cell = 3 * PANEL_W // STRIP_SHOWN
    row = np.full((_CAPTION_LINE + _STRIP_H + 22, 3 * PANEL_W, 3), 255, np.uint8)
    shown = f"{STRIP_SHOWN} of " if total > STRIP_SHOWN else ""
    cv2.putText(row, _ascii(f"{person}'s specimens ({shown}{total}), each scaled to fit")[:150], (4, 18),
                cv2.FONT_HERSHEY_SIMPLEX, 0.45, (90, 90, 90), 1, cv2.LINE_AA)
    for k, (name, image) in enumerate(specimens[:STRIP_SHOWN]):
        x0, y0 = k * cell + 4, _CAPTION_LINE
        near = name == closest
        cv2.rectangle(row, (x0, y0), (x0 + cell - 8, y0 + _STRIP_H), (0, 0, 0) if near else (200, 200, 200),
                      2 if near else 1)
        if image is not None:
            fitted = _fit(_bgr(image), cell - 14, _STRIP_H - 6, upscale=1.0)
            h, w = fitted.shape[:2]
            ya, xa = y0 + (_STRIP_H - h) // 2, x0 + (cell - 8 - w) // 2
            row[ya:ya + h, xa:xa + w] = fitted
        label = ("closest: " if near else "") + name.rsplit("/", 1)[-1] + ("" if image is not None else " (unreadable)")
        cv2.putText(row, _ascii(label)[:26], (x0, y0 + _STRIP_H + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (0, 0, 0) if near else (90, 90, 90), 1, cv2.LINE_AA)
    return row


def caption_lines(document: str, number: int, sig: SignatureResult, document_verdict: str,
                  claimed: str | None, held: str | None = None, specimens: int | None = None) -> list[str]:
    """The sheet's caption: where the signature is, its verdict (and ``held``: why a genuine one is held for review,
    or a hint for a claimed name without references), the figures, and how many specimens the claimed person has
    when it is one person (one: the weaker judgement)."""
    claim = f"claimed: {claimed}" if claimed else "no claim (matched one-to-many)"
    refs = ""
    if specimens is not None:
        refs = f"  judged on {specimens} specimen{'s' if specimens != 1 else ''}"
        refs += " (one: more forgeries pass, README)" if specimens == 1 else ""
    return [
        f"{document}  page {sig.page}  signature {number}  (document: {document_verdict}; {claim})",
        (f"{sig.verdict}  closest enrolled person: {sig.identity or '-'} (beyond their threshold: nobody matches)"
         if sig.verdict == "unknown_signer" else f"{sig.verdict}  identity: {sig.identity or '-'}")
        + (f"  -  {held}" if held else ""),
        f"found in the page's text: /s/ {sig.typed_name or '?'}, compared with nobody" if sig.placed == "conformed" else
        ("shape compared for information only: " if sig.verdict == "electronic" else "")
        + f"distance {_figure(sig.distance)}  threshold {_figure(sig.threshold)}  score {_figure(sig.score)}  "
        f"detection {sig.detection_confidence:.2f}{refs}",
    ] + ([not_judged(sig.placed)] if sig.verdict == "electronic" else []) + (
        [f"the same picture as the specimen {sig.nearest_reference or '?'} (pasted or stamped, not signed anew): "
         "not judged"] if sig.verdict == "copied" else [])


def _claim_text(report: DocumentReport) -> str | None:
    """Who the document is claimed for, as a sheet says it (``account 0012-34, amount 2500.00: any 1 of alice,
    bob``)."""
    c = report.claimed_identity
    text = ", ".join(c) if isinstance(c, tuple) else str(c) if isinstance(c, Mandate) else c
    if not (report.account and text):
        return text
    amount = f", amount {report.amount:f}{' ' + report.currency if report.currency else ''}" \
        if report.amount is not None else ", no usable amount" if report.amount_missing else ""
    return f"account {report.account}{amount}: {text}"


def _pages(path: Path, report: DocumentReport, wanted: set[int]) -> dict[int, np.ndarray]:
    """The pages numbered ``wanted`` of the document, rendered as its run rendered them."""
    s = report.settings
    config = IngestConfig(dpi=s.dpi if s else DEFAULT_DPI, pdf_backend=s.pdf_backend if s else "pypdfium2",
                          pages=PageSelection.parse(",".join(map(str, sorted(wanted)))))
    return {p.number: p.image for p in iter_pages(path, config)}


PAGE_ASPECT_TOLERANCE = 0.02  # another rasteriser version rounds a page's size; other proportions: another page


def _in_page_pixels(sig: SignatureResult, page: np.ndarray) -> SignatureResult:
    """``sig`` with its box scaled to ``page`` when the page renders at another size than the report's (another
    rasteriser version).

    Raises:
        SigpipeError: the page has other proportions than the report's (an older release read it otherwise: its
            CropBox, say): a box scaled onto it would frame something else.
    """
    h, w = page.shape[:2]
    pw, ph = sig.page_size
    if (w, h) == (pw, ph):
        return sig
    sx, sy = w / pw, h / ph
    if abs(sx / sy - 1.0) > PAGE_ASPECT_TOLERANCE:
        raise SigpipeError(f"page {sig.page} reads as {w} x {h} px, not {pw} x {ph} as in its report (read "
                           "otherwise since): run 'sigpipe run' again")
    x1, y1, x2, y2 = sig.bbox
    return replace(sig, bbox=(x1 * sx, y1 * sy, x2 * sx, y2 * sy), page_size=(w, h))


def questioned_crop(page: np.ndarray, sig: SignatureResult, margin: float) -> np.ndarray:
    """The signature as the pipeline cut it out for the verifier: ``sig.bbox`` on the page as scanned, with
    ``margin``, turned upright by ``sig.page_rotation``."""
    return upright_crop(page, sig.bbox, sig.page_rotation, sig.page_skew, margin)


class NoReportsError(SigpipeError):
    """The folder given as a run's OUT holds no report."""


def _existing(base: Path, name: str) -> Path:
    """``base/name`` (``name`` relative, ``/``-separated, as reports write it); a name the run escaped
    (:func:`~sigpipe._names.readable`: not UTF-8) is looked for under its real bytes when the escaped text is not
    a file."""
    path = base.joinpath(*name.split("/"))
    if not path.exists() and "\\x" in name:
        real = base.joinpath(*from_readable(name).split("/"))
        if real.exists():
            return real
    return path


def _relative_name(name: str) -> bool:
    """Whether ``name`` (a document or reference as a report names it) is a path below its folder, as written and
    with its ``\\xNN`` escapes read back (:func:`_existing` looks for both: ``\\x2e\\x2e`` is ``..``): not absolute,
    no ``..`` or empty part, no NUL. sigpipe writes no other; an edited report may, to have another file shown."""
    if any("\ud800" <= c <= "\udfff" for c in name):  # a lone surrogate: JSON has them, file names not
        return False
    for form in {name, from_readable(name)}:
        parts = form.split("/")
        if form.startswith("/") or ".." in parts or "" in parts or "\0" in form:
            return False
    return True


def _below(base: Path, name: str) -> Path | None:
    """``base/name`` as :func:`_existing` finds it, or None when ``name`` (from a report: it may have been edited)
    leads out of ``base``. The path found is checked to lie under ``base`` too, with ``..`` resolved but links not
    followed: a run follows links inside SCANS and REFS (a folder of scans linked in), so their documents and
    specimens may lie elsewhere."""
    if not _relative_name(name):
        return None
    path = _existing(base, name)
    return path if Path(os.path.abspath(path)).is_relative_to(os.path.abspath(base)) else None


# a box may pass the page's edge by this fraction of its side (the detector clips boxes to the page; a page size
# rescaled when recorded may round); an edited report's box further out is refused
_BOX_SLACK = 0.01


def _checked(sig: SignatureResult) -> None:
    """Refuse values no run writes (an edited report) before they reach the drawing: a box not within its page
    (finite but absurd, 1e300, overflows OpenCV's drawing), a page size or number that is not positive."""
    (x1, y1, x2, y2), (w, h) = sig.bbox, sig.page_size
    try:
        within = w > 0 and h > 0 and all(math.isfinite(v) for v in sig.bbox) and \
            -_BOX_SLACK * w <= x1 <= x2 <= (1 + _BOX_SLACK) * w and -_BOX_SLACK * h <= y1 <= y2 <= (1 + _BOX_SLACK) * h
    except OverflowError:  # a page size too large for a float (JSON integers have no bound)
        within = False
    if not within or sig.page < 1:
        raise ValueError(f"its report holds impossible values for signature at page {sig.page}: box {sig.bbox}, "
                         f"page size {sig.page_size}")


def _reference(refs: Path, ref: str, read_specimen: SpecimenReader) -> tuple[list[np.ndarray], str | None]:
    """The signatures of reference ``ref`` (a report's ``nearest_reference``, relative to REFS), or none and why the
    sheet cannot show it: missing, unreadable, or outside REFS (an edited report), which is not read."""
    try:
        path = _below(refs, ref)
        if path is None:
            return [], "cannot show it: the report names a reference outside REFS"
        return read_specimen(path), None
    except (SigpipeError, OSError) as e:
        return [], f"cannot show it: {e}"


def _other_contents(refs: Path, ref: str, sha256: str | None) -> bool:
    """Whether specimen ``ref`` is known (``sha256``, from the report) to have held other contents when compared."""
    path = None if sha256 is None else _below(refs, ref)
    try:
        return path is not None and sha256_file(path) != sha256
    except OSError:
        return False  # unreadable now: _specimens_of has said so


def _specimens_of(refs: Path, ref: str, read_specimen: SpecimenReader,
                  specimens: Specimens) -> tuple[list[np.ndarray], str | None]:
    """The signatures of reference ``ref`` (:func:`_reference`), through the few kept read."""
    if ref not in specimens:
        specimens[ref] = _reference(refs, ref, read_specimen)
        while len(specimens) > SPECIMENS_KEPT:  # memory flat however many people the batch names
            specimens.popitem(last=False)
    specimens.move_to_end(ref)
    return specimens[ref]


def _person_strip(refs: Path, ref: str, shown: np.ndarray | None, read_specimen: SpecimenReader,
                  specimens: Specimens) -> np.ndarray | None:
    """The row of specimens of the person whose specimen ``ref`` is (its first folder under REFS), ``shown`` being
    the crop of ``ref`` on the sheet; None for a person of one specimen (the panel shows it)."""
    person = ref.split("/", 1)[0]
    folder = _below(refs, person)
    if folder is None or not folder.is_dir():
        return None
    names = [readable(f.relative_to(refs).as_posix()) for f in specimen_files(folder)]
    if len(names) < 2:
        return None
    chosen = names[:STRIP_SHOWN] if ref in names[:STRIP_SHOWN] else names[:STRIP_SHOWN - 1] + [ref]
    items: list[tuple[str, np.ndarray | None]] = []
    for name in chosen:
        crops = [shown] if name == ref and shown is not None else _specimens_of(refs, name, read_specimen,
                                                                                 specimens)[0]
        items.append((name, crops[0] if crops else None))
    return specimen_strip(person, items, len(names), ref)


def _review_document(report: DocumentReport, chosen: list[int], scans: Path, refs: Path, to: Path,
                     read_specimen: SpecimenReader, nearest: NearestCrop, suspects: set[str],
                     specimens: Specimens, meant: Callable[[str], str | None] = lambda _: None
                     ) -> tuple[list[Sheet], list[str]]:
    """Write the sheets of one document's ``chosen`` signatures; returns them and the signatures it could not show.
    ``meant``: the person in REFS a claimed name without references likely means (:class:`NameHints`), or None.

    Raises:
        SigpipeError, OSError, ValueError: the document cannot be reviewed (missing, changed, unreadable, its
            report edited into values no run writes).
    """
    doc = report.document.path
    path = _below(scans, doc)
    if path is None:  # sigpipe writes none such: an edited report
        raise SigpipeError("its report names no path inside SCANS")
    if scans.is_file():  # SCANS may be one document
        path = scans
    if not path.is_file():
        raise SigpipeError(f"not found under {scans}")
    if sha256_file(path) != report.document.sha256:
        raise SigpipeError("changed since its report (sha256 differs): run 'sigpipe run' again first")
    for sig in report.signatures:  # every box of a chosen signature's page is drawn on its sheet
        _checked(sig)
    pages = _pages(path, report, {report.signatures[i].page for i in chosen})
    margin = report.settings.crop_margin if report.settings else _DEFAULT_MARGIN
    refs_set = report.references  # one claimed person: their specimens are each signature's references
    specimens_of_one = refs_set.specimens if refs_set is not None and refs_set.people == 1 and isinstance(
        report.claimed_identity, str) else None
    sheets: list[Sheet] = []
    missing: list[str] = []
    for i in chosen:
        sig = report.signatures[i]
        page = pages.get(sig.page)
        if page is None:
            missing.append(f"page {sig.page} of signature {i + 1} is not in the file")
            continue
        sig_px = _in_page_pixels(sig, page)
        crop = questioned_crop(page, sig_px, margin)
        ref = sig.nearest_reference
        reference: np.ndarray | None = None
        note: str | None
        strip: np.ndarray | None = None
        hint: str | None = None
        if ref is None:
            note, label = ("not compared: no ink the verifier could see", "reference") if sig.verdict == "no_ink" \
                else ("no reference specimen", "nearest reference")
            like = meant(sig.identity) if sig.verdict == "no_reference" and sig.identity else None
            if like is not None:  # the run's warning said so; the reviewer should see it too
                hint = f"REFS has {like!r}: the same person? (claims must name the folder exactly)"
                note = f"no reference specimen; {hint}"
        else:
            crops, note = _specimens_of(refs, ref, read_specimen, specimens)
            if crops and _other_contents(refs, ref, sig.nearest_reference_sha256):
                crops, note = [], "cannot show it: the file holds other contents than when compared (sha256 differs)"
            if crops:
                reference = crops[nearest(crop, crops)]
            elif note is not None:  # the sheet is written, without the specimen to compare: the review is not whole
                missing.append(f"signature {i + 1}: its closest reference {ref} {note} (renamed or moved since the "
                               "run? 'sigpipe run' again redoes such reports)")
            if note is None and _is_suspect(ref, suspects):
                note = "SUSPECT specimen (summary.json suspect_references)"
            label = f"closest reference (all weigh in): {ref}"
            strip = _person_strip(refs, ref, reference, read_specimen, specimens)
        name = sheet_name(doc, i + 1)
        others = [(j + 1, _in_page_pixels(o, page).bbox) for j, o in enumerate(report.signatures)
                  if j != i and o.page == sig.page]
        held = held_for(sig, report)
        image = render_sheet(page, sig_px, crop, reference,
                             caption_lines(doc, i + 1, sig, report.verdict, _claim_text(report), held or hint,
                                           specimens_of_one),
                             label, note, others, _OTHER_COLOUR if held else None, strip)
        ok, png = cv2.imencode(SHEET_SUFFIX, image)
        if not ok:  # pragma: no cover - OpenCV encodes any uint8 BGR image
            raise RuntimeError(f"cannot encode the sheet of {doc} signature {i + 1}")
        try:
            write_bytes_atomic(to.joinpath(*name.split("/")), png.tobytes())
        except OSError as e:
            if e.errno == errno.ENAMETOOLONG:
                missing.append(f"signature {i + 1}: its sheet's name is too long for the file system")
                continue
            if e.errno == errno.EINVAL:  # a Windows share, a vfat drive: <>:"\|?*, a trailing dot, CON...
                missing.append(f"signature {i + 1}: the review folder's file system refuses its sheet's name "
                               f"{Path(name).name!r} ({e.strerror}); review into a folder on another file system")
                continue
            raise  # a full disk, a folder that cannot be written: no use going on
        sheets.append(Sheet(doc, i + 1, sig, report.verdict, _claim_text(report), name, note, held))
    return sheets, missing


def write_review(out: Path, scans: Path, refs: Path, to: Path, read_specimen: SpecimenReader,
                 everything: bool = False, nearest: NearestCrop = first_crop) -> ReviewResult:
    """Write the review sheets of the reports in ``out`` and ``to/index.html``.

    Args:
        out: the run's output folder (its reports). scans, refs: the run's SCANS and REFS.
        to: the folder for the sheets and the index (may be inside ``out``).
        read_specimen: reads a reference specimen file as the signatures it holds (see :func:`specimen_reader`);
            raises :class:`SigpipeError` when it cannot.
        everything: sheets for every signature, genuine ones included.
        nearest: which of a reference file's signatures to show (see :func:`nearest_crop`).

    Returns:
        What was written and what could not be reviewed. A document that cannot be reviewed (missing, changed, its
        report unreadable or edited) is listed and skipped; it never stops the others.

    Raises:
        NoReportsError: ``out`` holds no report file (nothing is written or removed).
        OSError: a sheet or the index cannot be written.
    """
    found = list(iter_reports(out))
    if not found:
        raise NoReportsError(f"{out} holds no sigpipe report: give the --out folder of a 'sigpipe run'")
    suspects = suspect_files(out)
    unclaimed = unclaimed_files(out)
    earlier_review = (to / INDEX_HTML).is_file()  # then sheets of signatures no longer to review are removed
    # the sheets show signatures and reference specimens, biometric data: a folder the review creates is its user's
    # alone, as the cache's is (one that exists keeps the permissions its owner gave it, a review team's say)
    to.mkdir(mode=0o700, parents=True, exist_ok=True)
    # a sheet half-written by a review killed mid-write shows a customer's signature for ever: gone once surely stale
    remove_stale_temporaries(to, older_than=STALE_SHEET_S)
    folding = name_folding(to)  # a Windows share, a vfat drive: Cheque.pdf's sheets would be cheque.pdf's
    sheeted: dict[str, str] = {}  # a document's name as the file system of ``to`` sees it -> the document
    sheets: list[Sheet] = []
    unsigned: list[str] = []
    claimed_unsigned: list[tuple[str, str]] = []
    unclaimed_genuine: list[tuple[str, tuple[str, ...]]] = []
    failed: list[tuple[str, str, str]] = []
    problems: list[tuple[str, str]] = []
    specimens: Specimens = OrderedDict()  # the most recently shown
    hints: list[NameHints] = []  # REFS's person folders, listed when a no_reference sheet first asks

    def meant(person: str) -> str | None:
        if not hints:
            hints.append(NameHints(p.name for p in person_dirs(refs)) if refs.is_dir() else NameHints(()))
        return hints[0].meant(person)

    for file, report in found:
        if report is None:
            doc = file[: -len(REPORT_SUFFIX)]
            problems.append((doc, f"its report {file} cannot be read (truncated or edited): run 'sigpipe run' "
                                  "again"))
            continue
        doc = report.document.path
        if report.error is not None:
            failed.append((doc, report.error.kind, report.error.message))
            continue
        if not report.signatures:
            unsigned.append(doc)
            if report.claimed_identity:
                claimed_unsigned.append((doc, _claim_text(report) or ""))
            continue
        if doc in unclaimed and report.verdict == "genuine" and not report.claimed_identity:
            unclaimed_genuine.append((doc, tuple(dict.fromkeys(s.identity for s in report.signatures if s.identity))))
        chosen = to_review(report, everything)
        if not chosen:
            continue
        if folding is not None and (other := sheeted.setdefault(folding[0](doc), doc)) != doc:
            problems.append((doc, f"its sheets would be the same files as {other}'s: the review folder's file "
                                  f"system ignores {folding[1]} in names; review into a folder on another file "
                                  "system"))
            continue
        try:
            done, missing = _review_document(report, chosen, scans, refs, to, read_specimen, nearest, suspects,
                                             specimens, meant)
        except (SigpipeError, OSError, ValueError) as e:
            if isinstance(e, OSError) and not isinstance(e, FileNotFoundError) and e.filename is not None and \
                    Path(e.filename).resolve().is_relative_to(to.resolve()):
                raise  # writing the review failed, not reading the document
            log.warning("%s: not reviewed: %s", doc, e)
            problems.append((doc, str(e)))
            continue
        sheets += done
        problems += [(doc, why) for why in missing]
    reported = {report.document.path for _, report in found if report is not None}
    failed += reportless_failures(out, reported)  # no report to read, but failed all the same
    sheets.sort(key=lambda s: (s.order, s.margin, s.document, s.number))
    if earlier_review:
        _remove_stale_sheets(to, {s.file for s in sheets}, folding[0] if folding else None)
    result = ReviewResult(tuple(sheets), tuple(unsigned), tuple(failed), tuple(problems), len(found),
                          tuple(claimed_unsigned), tuple(unclaimed_genuine))
    # a name from an edited report may hold a lone surrogate, which UTF-8 cannot encode: shown escaped
    write_bytes_atomic(to / INDEX_HTML, index_html(result, out, scans).encode("utf-8", "backslashreplace"))
    return result


def _document_link(document: str, scans: Path | None) -> str:
    """``document`` (relative to SCANS) as HTML, a link to its file when SCANS is known and it is there."""
    e = html.escape
    path = _below(scans, document) if scans is not None and scans.is_dir() else scans
    if path is None or not path.is_file():
        return e(document)
    return f'<a href="{e(Path(os.path.abspath(path)).as_uri())}">{e(document)}</a>'


_SHEET_NAME = re.compile(r".+\.sig[1-9]\d*\.png")


def _remove_stale_sheets(to: Path, current: set[str], key: Callable[[str], str] | None = None) -> None:
    """Delete the sheets an earlier review wrote into ``to`` (named ``<document>.sig<N>.png``) that this one did
    not: signatures now judged genuine, documents gone. Nothing else in ``to`` is touched. ``key``: names as the
    file system of ``to`` tells them apart (:func:`~sigpipe._files.name_folding`): where it ignores case, this
    review's sheet of ``Cheque.pdf`` written over the earlier one of ``cheque.pdf`` keeps the earlier name."""
    fold = key or (lambda name: name)
    kept = {fold(name) for name in current}
    stale = [p for p in to.rglob("*.png") if _SHEET_NAME.fullmatch(p.name)
             and fold(p.relative_to(to).as_posix()) not in kept]
    for p in stale:
        p.unlink(missing_ok=True)
    if stale:
        log.info("removed %d sheet(s) of an earlier review that this one does not list", len(stale))


def index_html(result: ReviewResult, out: Path, scans: Path | None = None) -> str:
    """A self-contained HTML page listing the sheets (forged first), then the documents not reviewed, the unsigned
    and the failed ones."""
    e = html.escape
    rows = []
    for s in result.sheets:
        sig = s.signature
        note = f"<br><b>{e(s.reference_note)}</b>" if s.reference_note else ""
        note += f"<br><b>{e(s.held)}</b>" if s.held else ""
        kind = "held" if s.held else e(sig.verdict)
        who = "closest enrolled (no match)" if sig.verdict == "unknown_signer" else "identity"
        if sig.verdict == "electronic":
            typed = f": /s/ {e(sig.typed_name)}" if sig.typed_name else ""
            note = f"<br><b>{e(not_judged(sig.placed))}{typed} (figures for information)</b>" + note
        if sig.verdict == "copied":
            note = ("<br><b>the same picture as the reference below (pasted or stamped, not signed anew): not "
                    "judged</b>" + note)
        rows.append(
            f'<tr class="{kind}"><td>{e(s.document)}<br>page {sig.page}, signature {s.number}<br>'
            f"document: {e(s.document_verdict)}<br>claimed: {e(s.claimed or '-')}</td>"
            f"<td><b>{e(sig.verdict)}</b><br>{who}: {e(sig.identity or '-')}<br>distance {_figure(sig.distance)}"
            f"<br>threshold {_figure(sig.threshold)}<br>score {_figure(sig.score)}<br>"
            f"reference: {e(sig.nearest_reference or '-')}{note}</td>"
            f'<td><a href="{e(quote(s.file))}"><img src="{e(quote(s.file))}" width="720" loading="lazy" '
            f'alt="review sheet of {e(s.document)}, page {sig.page}, signature {s.number}: {e(sig.verdict)}, the '
            f'signature beside its nearest reference"></a></td></tr>')

    def listing(title: str, items: list[str]) -> str:
        if not items:
            return ""
        return f"<h2>{e(title)} ({len(items)})</h2><ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"

    parts = [
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>sigpipe review</title><style>"
        "body{font-family:sans-serif}td{vertical-align:top;padding:6px;border-bottom:1px solid #ccc}"
        "th{text-align:left;padding:6px}caption{text-align:left;font-weight:bold}"
        "tr.forged td:first-child{border-left:6px solid #d22}tr.genuine td:first-child{border-left:6px solid #282}"
        "tr.unknown_signer td:first-child,tr.no_reference td:first-child,tr.no_ink td:first-child,"
        "tr.electronic td:first-child,tr.copied td:first-child,"
        "tr.held td:first-child"
        "{border-left:6px solid #eb8c00}"
        "</style></head><body>",
        f"<h1>sigpipe review of {e(str(out))}</h1>",
        f"<p>{result.reports} reports; {len(result.sheets)} signatures to review: forged first, and within each "
        "verdict the closest calls (distance nearest the threshold) first.</p>",
        ("<table><caption>Signatures to review</caption><tr><th scope=\"col\">Where</th>"
         "<th scope=\"col\">Verdict and figures</th><th scope=\"col\">Review sheet</th></tr>"
         f"{''.join(rows)}</table>") if rows else "<p>No signature to review.</p>",
        # rows as the sheets' (claimed: ...</td>): find-person finds the people they name
        ("<table><caption>Claimed, but no signature found: not signed, or signed where the detector cannot see "
         f"(faint ink, a patterned background): look at each ({len(result.claimed_unsigned)})</caption>"
         + "".join(f'<tr class="held"><td>{_document_link(d, scans)}<br>claimed: {e(who)}</td></tr>'
                   for d, who in result.claimed_unsigned) + "</table>") if result.claimed_unsigned else "",
        ("<table><caption>Not in the run's claims file, and genuine for whoever they matched (one-to-many): a claims "
         "row lost lets another customer's signature pass; check each is meant to be so "
         f"({len(result.unclaimed_genuine)})</caption>"
         + "".join(f'<tr class="held"><td>{_document_link(d, scans)}<br>'
                   + "".join(f"identity: {e(p)}<br>" for p in people) + "</td></tr>"
                   for d, people in result.unclaimed_genuine) + "</table>") if result.unclaimed_genuine else "",
        listing("Not reviewed", [f"{e(d)}: {e(why)}" for d, why in result.problems]),
        listing("Unsigned documents" + (" (not claimed)" if result.claimed_unsigned else ""),
                [e(d) for d in result.unsigned if d not in {c for c, _ in result.claimed_unsigned}]),
        listing("Failed documents", [f"{e(d)}: {e(k)}: {e(m)}" for d, k, m in result.failed]),
        "</body></html>\n",
    ]
    return "\n".join(p for p in parts if p)
