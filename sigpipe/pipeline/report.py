"""Per-document reports (``schema_version`` "1") and the batch summary: frozen dataclasses, JSON, atomic files.

The JSON layout is a contract (see ``report.schema.json`` beside this module and the README). ``to_dict`` produces
exactly that layout and ``from_dict`` reads it back, so ``DocumentReport.from_dict(r.to_dict()) == r``.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import errno
import functools
import io
import json
import os
import re
import socket
import stat
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sigpipe._names import json_text
from sigpipe.pipeline.claims import (
    Claim,
    Mandate,
    claim_of,
    claimants,
    normalise_claim,
    parse_rule,
    rule_text,
    signers_required,
)
from sigpipe.pipeline.errors import OutputBusyError, OutputWriteError
from sigpipe.pipeline.placed import PLACED_KINDS
from sigpipe.weights import new_file_mode

if TYPE_CHECKING:
    from sigpipe.verifier.refcheck import SuspectSpecimen

SCHEMA_VERSION = "1"
# no_ink: found on the page, but its crop holds no ink the verifier can see (strokes fainter than a printed line
# beside them vanish in the preprocessing): not judged. electronic: placed on a PDF page digitally (typed text,
# vector strokes, a picture on a page that is not a scan, a signature field): compared, but not judged as handwriting
SIGNATURE_VERDICTS = ("genuine", "forged", "unknown_signer", "no_reference", "no_ink", "other_signer", "electronic",
                      "copied")
DOCUMENT_VERDICTS = ("genuine", "forged", "unsigned", "needs_review", "error")
# signature verdicts that hold their document for review (unless another is forged): not judged, or not judgeable
REVIEW_VERDICTS = frozenset({"unknown_signer", "no_reference", "no_ink", "electronic", "copied"})
REPORT_SUFFIX = ".json"
TMP_SUFFIX = ".sigpipe-tmp"
SUMMARY_JSON = "summary.json"
SUMMARY_CSV = "summary.csv"
LOCK_FILE = ".sigpipe.lock"
CSV_COLUMNS = ("document", "page", "x1", "y1", "x2", "y2", "identity", "distance", "threshold", "score",
               "verdict", "document_verdict", "detection_confidence", "claimed_identity", "page_rotation",
               "nearest_reference", "page_skew", "placed", "signers_required", "typed_name", "account",
               "signing_rule", "amount", "currency", "amount_missing", "error_kind")


@dataclass(frozen=True)
class DocumentInfo:
    """The input file: ``path`` relative to SCANS (POSIX), its ``sha256`` (None if unreadable), page count."""

    path: str
    sha256: str | None
    pages: int

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "pages": self.pages}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DocumentInfo:
        return cls(path=str(d["path"]), sha256=d["sha256"], pages=int(d["pages"]))


@dataclass(frozen=True)
class ErrorInfo:
    """Why a document failed: a stable machine-readable ``kind`` and a human ``message``."""

    kind: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "message": self.message}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ErrorInfo:
        return cls(kind=str(d["kind"]), message=str(d["message"]))


@dataclass(frozen=True)
class SignatureResult:
    """One detected signature and its verdict.

    Attributes:
        page: 1-based page number.
        bbox: ``(x1, y1, x2, y2)`` detector box in pixels of the rendered page (before the crop margin).
        page_size: ``(width, height)`` of the rendered page in pixels.
        dpi: resolution of the rendered page.
        detection_confidence: detector confidence in [0, 1].
        identity: the person compared with (claimed, or nearest enrolled one); None when nobody could be.
        distance, threshold, score: the verifier's decision (None for ``no_reference`` and ``no_ink``); ``score``
            is the calibrated probability that the signature is genuine for ``identity``.
        verdict: one of :data:`SIGNATURE_VERDICTS`.
        page_rotation: degrees counter-clockwise the page as scanned is turned from upright (0, 90, 180, 270), as the
            orientation model found it; the signature was verified turned back upright. ``bbox`` and ``page_size``
            stay in pixels of the page as scanned.
        nearest_reference: the specimen of ``identity`` closest to the signature (relative to REFS), the one a
            reviewer should compare it with; for ``copied``, the specimen it is a copy of; None for
            ``no_reference``, or when not known.
        nearest_reference_sha256: the sha256 of that specimen file's contents when it was compared, so that a
            re-run or a review notices the name now holding another file (two specimens swapping names); None when
            not known (reports of earlier releases, a gallery built from arrays).
        page_skew: degrees counter-clockwise the upright page was turned to level it (a page a few degrees askew,
            :mod:`sigpipe.pipeline.deskew`); ``bbox`` is then the hull of the box found on the levelled page, and
            the signature was verified levelled. 0 for a level page (and in reports of earlier releases).
        placed: how an ``electronic`` signature came onto its PDF page, one of
            :data:`~sigpipe.pipeline.placed.PLACED_KINDS` (``text``: typed glyphs, ``vector``: drawn strokes,
            ``image``: a picture on a page that is not a scan or over one, ``annotation``: a signature field);
            None for ink scanned from paper, or not known (image files, poppler).
        typed_name: a conformed signature's name as typed after "/s/" (``placed`` ``conformed``); None otherwise.
    """

    page: int
    bbox: tuple[float, float, float, float]
    page_size: tuple[int, int]
    dpi: int
    detection_confidence: float
    identity: str | None
    distance: float | None
    threshold: float | None
    score: float | None
    verdict: str
    page_rotation: int = 0
    nearest_reference: str | None = None
    page_skew: float = 0.0
    placed: str | None = None
    typed_name: str | None = None
    nearest_reference_sha256: str | None = None

    def __post_init__(self) -> None:
        if self.verdict not in SIGNATURE_VERDICTS:
            raise ValueError(f"unknown signature verdict {self.verdict!r}")
        if (self.placed is not None) != (self.verdict == "electronic") or \
                (self.placed is not None and self.placed not in PLACED_KINDS):
            raise ValueError(f"an electronic signature, and only one, says how it was placed: one of {PLACED_KINDS}, "
                             f"got {self.placed!r} for verdict {self.verdict!r}")
        if self.typed_name is not None and self.placed != "conformed":
            raise ValueError(f"only a conformed signature has a typed name, not one placed {self.placed!r}")
        if self.page_rotation not in (0, 90, 180, 270):
            raise ValueError(f"page_rotation must be 0, 90, 180 or 270, got {self.page_rotation!r}")
        if not abs(self.page_skew) <= 45:
            raise ValueError(f"page_skew must be within 45 degrees, got {self.page_skew!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "page": self.page, "bbox": list(self.bbox), "page_size": list(self.page_size), "dpi": self.dpi,
            "detection_confidence": self.detection_confidence, "identity": self.identity,
            "distance": self.distance, "threshold": self.threshold, "score": self.score, "verdict": self.verdict,
            "page_rotation": self.page_rotation, "page_skew": self.page_skew,
            "nearest_reference": self.nearest_reference, "placed": self.placed,
            **({"typed_name": self.typed_name} if self.typed_name is not None else {}),
            **({"nearest_reference_sha256": self.nearest_reference_sha256}
               if self.nearest_reference_sha256 is not None else {}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SignatureResult:
        x1, y1, x2, y2 = (float(v) for v in d["bbox"])
        w, h = (int(v) for v in d["page_size"])
        return cls(
            page=int(d["page"]), bbox=(x1, y1, x2, y2), page_size=(w, h), dpi=int(d["dpi"]),
            detection_confidence=float(d["detection_confidence"]), identity=d["identity"],
            distance=_opt_float(d["distance"]), threshold=_opt_float(d["threshold"]), score=_opt_float(d["score"]),
            verdict=str(d["verdict"]), page_rotation=int(d.get("page_rotation", 0)),
            nearest_reference=d.get("nearest_reference"), page_skew=float(d.get("page_skew", 0.0)),
            placed=d.get("placed"), typed_name=d.get("typed_name"),
            nearest_reference_sha256=d.get("nearest_reference_sha256"),
        )


@dataclass(frozen=True)
class ReferenceSet:
    """The references a document's signatures were compared with: the claimed person's (people's), or without a
    claim every enrolled person's. ``sha256`` fingerprints their specimen files' contents (see
    :meth:`sigpipe.verifier.gallery.Gallery.fingerprint`), so a re-run notices a specimen added, removed or edited.

    Attributes:
        people: people in the set (0 when no claimed person has usable references).
        specimens: reference signatures in the set (a PDF or page specimen may give several).
        sha256: the fingerprint.
    """

    people: int
    specimens: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"people": self.people, "specimens": self.specimens, "sha256": self.sha256}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReferenceSet:
        return cls(people=int(d["people"]), specimens=int(d["specimens"]), sha256=str(d["sha256"]))


# How this release reads documents and lists their signatures; a change that can alter a report bumps it, and
# re-runs redo the reports of an earlier revision (RunSettings.reader). 1: up to session 23; 2: PDF form fields
# (visible digital signatures) drawn, poppler renders the CropBox, a PNG's transparent colour is paper, 16-bit
# MinIsWhite TIFFs not inverted, a page's signatures in reading order. 3: signatures side by side on one line
# left to right (by the top edge alone, half a pixel of the detector's jitter could reorder them); images whose
# pixels are not square (a fax at 204 x 98 dpi) resampled to square pixels. 4: pages a few degrees askew levelled
# before detection, their signatures verified levelled (page_skew). 5: a signature placed on a PDF page digitally
# (typed, drawn, pasted, a signature field) is ``electronic``. 6: a conformed signature ("/s/ Jane Doe") in a PDF
# page's text is one, ``electronic`` (placed ``conformed``), where such a page read as unsigned. 7: session 29's
# later fixes to conformed signatures ("/s/ A. Smith" a name, right-to-left names, a signature line at the baseline
# no strike-through), which revision 6's reports were kept over; and signatures record the sha256 of their
# ``nearest_reference``, which reports of earlier revisions lack (so they would never be checked for specimens
# swapping names). 8: a reader's comments and markup on a PDF (sticky notes, highlights, ovals, review stamps...)
# not drawn on the page, a note larger than an icon judged as placed; an uncompressed TIFF stored a quarter turned
# (Orientation 5-8) read upright instead of scrambled; a PDF page whose image PDFium cannot decode is corrupt_pdf.
# 9: specimens read otherwise (a file declaring a finer resolution than 200 dpi sized at 200 dpi, so a 600-dpi
# signature is no page for the detector to crop; a page-sized image with no detection and no print taken whole), which
# the references' fingerprint, by file contents, does not see; a PDF page too large at --dpi drawn at a lower dpi.
# 10: pages four times the detector's input size or more halved (2x2 averages) before its bilinear shrink (a 200-dpi
# A4 page, a 300-dpi scan: thin strokes no longer break up; boxes move a little);
# a signature that is a copy of one of the person's specimens is told (``copied``), not ``genuine``.
# 11: a copy pasted askew (turned by up to 15 degrees, and so smaller on the canvas) is told ``copied`` too: the
# check caught 2 of 90 turned by two degrees, none by three; and so is a copy printed over a signature line, whose
# strokes the line's removal cut (the check compares without those pixels).
READER_REVISION = 11


@dataclass(frozen=True)
class RunSettings:
    """The run options a report depends on besides its input, claim, models and references.

    Attributes:
        dpi: PDF rendering resolution (``--dpi``).
        pdf_backend: the PDF renderer asked for (``--pdf-backend``; poppler is still the fallback).
        crop_margin: margin around detector boxes before the verifier, as a fraction of the box size.
        pages: the pages read of each document (``--pages``, e.g. ``"1"``); None for all of them.
        accept_score: the score a signature judged genuine needs for its document to be ``genuine`` rather than
            ``needs_review`` (``--accept-score``); None: no such bar.
        reader: how sigpipe read the document and listed its signatures (:data:`READER_REVISION` of the release
            that wrote the report; 1 in reports of releases without it): a release that reads documents otherwise
            redoes older reports.
        other_signers: documents may bear signatures of people other than the claimed ones (``--other-signers``:
            a contract's counterparty or witness): once every claimed person has a genuine signature on a
            document, its signatures that match none of them are ``other_signer`` instead of ``forged``.

    ``pages`` and ``accept_score`` are absent from the JSON when None, and ``other_signers`` when False, as in
    reports of releases without them.
    """

    dpi: int
    pdf_backend: str
    crop_margin: float
    pages: str | None = None
    accept_score: float | None = None
    reader: int = 1
    other_signers: bool = False

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"dpi": self.dpi, "pdf_backend": self.pdf_backend, "crop_margin": self.crop_margin,
                             "reader": self.reader}
        if self.pages is not None:
            d["pages"] = self.pages
        if self.accept_score is not None:
            d["accept_score"] = self.accept_score
        if self.other_signers:
            d["other_signers"] = True
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunSettings:
        pages, accept = d.get("pages"), d.get("accept_score")
        return cls(dpi=int(d["dpi"]), pdf_backend=str(d["pdf_backend"]), crop_margin=float(d["crop_margin"]),
                   pages=None if pages is None else str(pages),
                   accept_score=None if accept is None else float(accept), reader=int(d.get("reader", 1)),
                   other_signers=d.get("other_signers") is True)


def mark_other_signers(signatures: Sequence[SignatureResult], claimed: Claim | None) -> tuple[SignatureResult, ...]:
    """With ``--other-signers``: when every claimed person has a genuine signature among ``signatures``, those
    judged ``forged`` (matching none of the claimed people) become ``other_signer``; otherwise nothing changes (a
    claimed person's signature missing or failing is what a forgery looks like). Under a :class:`Mandate` too: a
    joint account's cheque signed by one holder and bearing a failed signature of the other is forged."""
    people = set(claimants(claimed))
    if not people or not people <= {s.identity for s in signatures if s.verdict == "genuine"}:
        return tuple(signatures)
    return tuple(dataclasses.replace(s, verdict="other_signer") if s.verdict == "forged" else s for s in signatures)


def signed_enough(signatures: Sequence[SignatureResult], claimed: Claim | None) -> bool:
    """Whether the signatures judged genuine are those of as many different claimed people as the claim requires
    (all of them, or a mandate's number), of the signing classes it requires (a mandate's ``A+B``)."""
    signed = {s.identity for s in signatures if s.verdict == "genuine" and s.identity} & set(claimants(claimed))
    if isinstance(claimed, Mandate):
        return claimed.met(signed)
    return len(signed) >= signers_required(claimed)


def document_verdict(signatures: Sequence[SignatureResult], failed: bool = False,
                     claimed: Claim | None = None, accept_score: float | None = None,
                     other_signers: bool = False) -> str:
    """The document verdict from its signatures and the claim.

    failed -> ``error``; no signature -> ``unsigned``; any forged -> ``forged``; any ``unknown_signer``,
    ``no_reference``, ``no_ink``, ``electronic`` or ``copied`` -> ``needs_review``; all genuine but a claimed
    person without a genuine signature of theirs (with several claimed, one missing; with a :class:`Mandate`, fewer
    of them signed than it requires) -> ``needs_review``; with ``accept_score``, a signature judged genuine with a
    lower ``score`` (a close call) -> ``needs_review``; otherwise (all genuine) -> ``genuine``.
    ``other_signer`` signatures (``other_signers``) do not count; where :func:`mark_other_signers` would not have
    given them (an edited report) the document is ``forged``.
    """
    if failed:
        return "error"
    if not signatures:
        return "unsigned"
    if any(s.verdict == "other_signer" for s in signatures):
        if not other_signers or mark_other_signers(
                [dataclasses.replace(s, verdict="forged") if s.verdict == "other_signer" else s for s in signatures],
                claimed) != tuple(signatures):
            return "forged"
        signatures = [s for s in signatures if s.verdict != "other_signer"]
    verdicts = {s.verdict for s in signatures}
    if "forged" in verdicts:
        return "forged"
    if verdicts & REVIEW_VERDICTS:
        return "needs_review"
    if not signed_enough(signatures, claimed):
        return "needs_review"
    if accept_score is not None and any(s.score is None or s.score < accept_score for s in signatures):
        return "needs_review"
    return "genuine"


# what reads documents and computes the figures at inference (torch and Ultralytics only train and export)
SOFTWARE = ("numpy", "opencv-python", "pillow", "pypdfium2", "onnxruntime", "openvino")


@functools.cache
def software_versions() -> dict[str, str]:
    """The versions of Python, of sigpipe, and of the libraries of :data:`SOFTWARE` installed (as their
    distributions say, without importing them; "" for one not installed): what a report was made with, for an
    auditor reproducing it."""
    import platform
    from importlib import metadata

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return ""

    from sigpipe import __version__  # the code running, also from a source tree that is not installed

    return {"python": platform.python_version(), "sigpipe": __version__, **{d: version(d) for d in SOFTWARE}}


@dataclass(frozen=True)
class DocumentReport:
    """Everything sigpipe concluded about one document (the per-document JSON file).

    ``software``: the versions of Python and the libraries that made it (:func:`software_versions`; empty in
    reports of older releases). Not part of what a re-run compares: a library upgrade does not redo a batch.

    ``claimed_identity`` is the person the claims file names for the document, a tuple of people for a document it
    lists with several (a JSON list), a :class:`Mandate` when fewer of them than all must sign (the list, and
    ``signers_required`` beside it), or None without a claim. ``account``: the account the claims file names for
    the document (a cheque's), whose people the signatory table gives, or None; ``amount``: the cheque's amount
    as the claims give it, which chose the card's rule (None: not given, or none that can be used), ``currency``
    the ISO code of the currency it names ("": none); ``amount_missing``: the card has rules
    over amounts and the claims give the cheque no amount (or none that can be used: summary.json's
    ``unusable_amounts`` says why), so it is held to all of them.
    """

    document: DocumentInfo
    claimed_identity: Claim | None
    status: str
    error: ErrorInfo | None
    signatures: tuple[SignatureResult, ...]
    verdict: str
    models: dict[str, str] = field(default_factory=dict)
    references: ReferenceSet | None = None
    settings: RunSettings | None = None
    schema_version: str = SCHEMA_VERSION
    software: dict[str, str] = field(default_factory=lambda: dict(software_versions()))
    account: str | None = None
    amount: Decimal | None = None
    amount_missing: bool = False
    currency: str = ""

    def __post_init__(self) -> None:
        if (self.amount is not None or self.amount_missing) and self.account is None or \
                self.amount is not None and (self.amount_missing or not self.amount.is_finite() or self.amount < 0) \
                or self.currency and (self.amount is None or not re.fullmatch("[A-Z]{3}", self.currency)):
            raise ValueError(f"an amount ({self.amount} {self.currency}, missing: {self.amount_missing}) is a "
                             "cheque's, claimed by account: a number >= 0 (in a currency's ISO code), or missing")
        if self.status not in ("ok", "error"):
            raise ValueError(f"unknown status {self.status!r}")
        if self.verdict not in DOCUMENT_VERDICTS:
            raise ValueError(f"unknown document verdict {self.verdict!r}")
        if (self.status == "error") != (self.error is not None):
            raise ValueError("a report has an error exactly when its status is 'error'")
        if (self.status == "error") != (self.verdict == "error"):
            raise ValueError("the verdict is 'error' exactly when the status is 'error'")

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @classmethod
    def success(cls, document: DocumentInfo, claimed: Claim | None,
                signatures: Sequence[SignatureResult],
                models: dict[str, str], references: ReferenceSet | None = None,
                settings: RunSettings | None = None) -> DocumentReport:
        """A processed document; its verdict is derived with :func:`document_verdict` (with the settings'
        ``accept_score``)."""
        sigs = tuple(signatures)
        others = settings is not None and settings.other_signers
        if others:
            sigs = mark_other_signers(sigs, claimed)
        verdict = document_verdict(sigs, claimed=claimed, accept_score=settings.accept_score if settings else None,
                                   other_signers=others)
        return cls(document, claimed, "ok", None, sigs, verdict, dict(models), references, settings)

    @classmethod
    def failure(cls, document: DocumentInfo, claimed: Claim | None, kind: str, message: str,
                models: dict[str, str], references: ReferenceSet | None = None,
                settings: RunSettings | None = None, account: str | None = None, amount: Decimal | None = None,
                amount_missing: bool = False, currency: str = "") -> DocumentReport:
        """A document that could not be processed (verdict ``error``)."""
        return cls(document, claimed, "error", ErrorInfo(kind, message), (), "error", dict(models), references,
                   settings, account=account, amount=amount, amount_missing=amount_missing, currency=currency)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "document": self.document.to_dict(),
            "claimed_identity": (list(claimants(self.claimed_identity)) if isinstance(self.claimed_identity,
                                                                                       tuple | Mandate)
                                 else self.claimed_identity),
            **({"signers_required": self.claimed_identity.required}
               if isinstance(self.claimed_identity, Mandate) else {}),
            **({"signing_rule": rule_text(self.claimed_identity.rule),
                "signatory_classes": self.claimed_identity.class_of}
               if isinstance(self.claimed_identity, Mandate) and self.claimed_identity.rule else {}),
            **({"account": self.account} if self.account is not None else {}),
            **({"amount": format(self.amount, "f")} if self.amount is not None else {}),
            **({"currency": self.currency} if self.currency else {}),
            **({"amount_missing": True} if self.amount_missing else {}),
            "status": self.status,
            "error": self.error.to_dict() if self.error else None,
            "signatures": [s.to_dict() for s in self.signatures],
            "verdict": self.verdict,
            "models": dict(self.models),
            "references": self.references.to_dict() if self.references else None,
            "settings": self.settings.to_dict() if self.settings else None,
            **({"software": dict(self.software)} if self.software else {}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DocumentReport:
        """Read a report dict (``references``, ``settings`` and ``software`` may be absent: reports of older sigpipe
        releases).

        Raises:
            ValueError: not a schema-version-1 report, or a field is missing or malformed.
        """
        try:
            if d["schema_version"] != SCHEMA_VERSION:
                raise ValueError(f"unsupported report schema_version {d['schema_version']!r}")
            return cls(
                document=DocumentInfo.from_dict(d["document"]),
                claimed_identity=_claim_from(d),
                status=str(d["status"]),
                error=ErrorInfo.from_dict(d["error"]) if d["error"] is not None else None,
                signatures=tuple(SignatureResult.from_dict(s) for s in d["signatures"]),
                verdict=str(d["verdict"]),
                models={str(k): str(v) for k, v in d["models"].items()},
                references=ReferenceSet.from_dict(d["references"]) if d.get("references") is not None else None,
                settings=RunSettings.from_dict(d["settings"]) if d.get("settings") is not None else None,
                software={str(k): str(v) for k, v in d.get("software", {}).items()},
                account=str(d["account"]) if d.get("account") is not None else None,
                amount=Decimal(str(d["amount"])) if d.get("amount") is not None else None,
                amount_missing=d.get("amount_missing") is True,
                currency=str(d.get("currency") or ""),
            )
        except (KeyError, TypeError, AttributeError, InvalidOperation) as e:
            raise ValueError(f"malformed report: {e!r}") from e

    def to_json(self) -> str:
        return json.dumps(json_text(self.to_dict()), indent=2) + "\n"


def _claim_from(d: dict[str, Any]) -> Claim | None:
    """A report dict's claim: ``claimed_identity``, with ``signers_required`` or ``signing_rule`` and
    ``signatory_classes`` beside it for a mandate."""
    claimed = d["claimed_identity"]
    if not isinstance(claimed, list):
        return claimed if claimed is None else str(claimed)
    if d.get("signing_rule") is not None:
        claim = claim_of(claimed, parse_rule(str(d["signing_rule"])), dict(d["signatory_classes"]))
        if signers_required(claim) != d.get("signers_required"):
            raise ValueError(f"signers_required {d.get('signers_required')!r} disagrees with signing_rule "
                             f"{d['signing_rule']!r}")
        return claim
    return normalise_claim(claimed, d.get("signers_required"))


def _opt_float(v: Any) -> float | None:
    return None if v is None else float(v)


def report_path(out: Path, relative: str) -> Path:
    """Where the report of the document at ``relative`` (POSIX, relative to SCANS) goes: ``out/<relative>.json``."""
    return out.joinpath(*relative.split("/")).with_name(Path(relative).name + REPORT_SUFFIX)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically: :func:`write_bytes_atomic`."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one, never a part.

    The data go to a temporary file in the same folder (named ``.<start of name>.*.sigpipe-tmp``: short, so that
    any name the file system allows for ``path`` fits), are flushed and fsynced, then renamed over ``path`` with
    :func:`os.replace`.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:40]}.", suffix=TMP_SUFFIX)
    try:
        os.fchmod(fd, new_file_mode())  # mkstemp's 0600 would hide the reports from the back office's accounts
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_report(out: Path, report: DocumentReport) -> Path:
    """Write ``report`` atomically to :func:`report_path`; returns the path.

    Raises:
        OSError: as writing does; ``ELOOP`` when a folder between ``out`` and the report is a symbolic link (one
            planted in a shared OUT would send the report, and the folders made for it, elsewhere).
    """
    path = report_path(out, report.document.path)
    folder = out
    for part in path.relative_to(out).parts[:-1]:
        folder = folder / part
        if folder.is_symlink():
            raise OSError(errno.ELOOP, "a folder on the way is a symbolic link", str(folder))
    write_text_atomic(path, report.to_json())
    return path


def read_report(path: Path) -> DocumentReport | None:
    """The report at ``path``, or None when it is absent, unreadable, or not a complete schema-1 report."""
    try:
        return DocumentReport.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, UnicodeDecodeError, TypeError, KeyError, AttributeError, OverflowError):
        return None  # an edited report (a null box, a list for an object, a number too large for a float) too


def remove_stale_temporaries(out: Path, older_than: float = 0.0) -> int:
    """Delete temporary files left in ``out`` by a run (or review) that was killed mid-write; returns how many.
    ``older_than``: only those last written that many seconds ago or more (where no lock keeps another writer out,
    a younger one may be being written)."""
    n = 0
    now = time.time()
    if out.is_dir():
        for p in out.rglob(f".*{TMP_SUFFIX}"):
            try:
                if older_than and now - p.stat().st_mtime < older_than:
                    continue
                p.unlink()
                n += 1
            except OSError:
                pass
    return n


@contextmanager
def out_lock(out: Path) -> Iterator[None]:
    """Hold OUT for one run: a second run into the same OUT fails at once, instead of deleting the first one's
    temporary files as a killed run's and overwriting its summary. An advisory lock (``flock``) on
    ``OUT/.sigpipe.lock``, released when the run ends or its process dies (no stale lock after a kill); where
    ``fcntl`` does not exist (Windows), no lock.

    Raises:
        OutputBusyError: another process holds OUT.
        OutputWriteError: the lock cannot be written (a full disk, a read-only OUT, a link in its place).
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    try:  # never through a link: one planted in OUT would have this run overwrite the file it points to
        # writable as the reports are (0666 less the umask): an OUT shared by a group's accounts is locked by each
        fd = os.open(out / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise OutputWriteError(f"{out / LOCK_FILE} is a symbolic link: remove it (sigpipe writes its lock "
                                   "there)") from None
        owner = ""
        with contextlib.suppress(OSError):
            st = os.stat(out / LOCK_FILE, follow_symlinks=False)
            if hasattr(os, "getuid") and st.st_uid != os.getuid():
                owner = (f"; it belongs to another account (uid {st.st_uid}, mode {stat.S_IMODE(st.st_mode):04o}): "
                         "let this account's group write it, or remove it while no run is writing to OUT")
        raise OutputWriteError(f"cannot write the run's lock {out / LOCK_FILE}: {e.strerror or e}{owner}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "another process"
            raise OutputBusyError(f"another sigpipe run ({holder}) is writing to {out}: wait for it to end, or give "
                                  "this run another --out") from None
        try:  # unbuffered: a full disk fails here, not in a buffer's flush at exit
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        except OSError as e:
            raise OutputWriteError(f"cannot write the run's lock {out / LOCK_FILE}: {e.strerror or e} (disk "
                                   "full?)") from None
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def orphaned_reports(out: Path, documents: Iterable[str]) -> list[str]:
    """The documents (relative names) that have a report in ``out`` but are not among ``documents``: inputs renamed
    or removed since an earlier run into the same OUT. Only files that read as reports count, and not one holding
    the report of a document among ``documents``: where OUT ignores case, ``Cheque.pdf.json`` keeps its name when
    the report of the file, renamed ``cheque.pdf``, is written over it."""
    if not out.is_dir():
        return []
    current = set(documents)
    found = []
    for p in out.rglob(f"*{REPORT_SUFFIX}"):
        name = p.relative_to(out).as_posix()[: -len(REPORT_SUFFIX)]
        if p.name != SUMMARY_JSON and name not in current and (old := read_report(p)) is not None \
                and old.document.path not in current:
            found.append(name)
    return sorted(found)


def load_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a document report."""
    text = resources.files("sigpipe.pipeline").joinpath("report.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


# --- the batch summary -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Failure:
    """A document that failed, for the summary."""

    document: str
    kind: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"document": self.document, "kind": self.kind, "message": self.message}


@dataclass(frozen=True)
class RunSummary:
    """What a batch run did, written to ``OUT/summary.json``.

    Attributes:
        documents: documents found under SCANS (processed now + skipped as already done).
        processed: documents processed in this run; skipped: documents whose existing report was kept.
        pages: pages of all documents (from their reports); pages_processed: pages rendered in this run.
        signatures: signatures in all reports.
        verdicts: document count per document verdict (every verdict present, zeros included).
        signature_verdicts: signature count per signature verdict.
        failures: the failed documents with their error.
        reference_errors: specimen files of REFS that could not be used, with the reason.
        suspect_references: specimens unlike the rest of their person's references, perhaps someone else's
            signature filed under that person (``sigpipe.verifier.refcheck``); they are used all the same.
        warnings: other problems worth a look (claims naming missing documents, people without references, ...).
        people: enrolled people (with at least one usable specimen).
        elapsed_s: wall time of the whole run, model loading included.
        pages_per_s: ``pages_processed / elapsed_s``.
        workers: worker processes used.
        models: the models' identities.
        started_at, finished_at: when the run started and when it wrote this summary, ISO 8601 in UTC to the
            second ("" when not known), so that a job reading ``summary.json`` can tell which night's run it is.
        claims_not_in_scans: every document the claims file names that is not in SCANS (the warnings name the
            first few); unclaimed_documents: with a claims file, every document it does not claim (compared
            one-to-many); duplicate_documents: groups of documents whose files are byte-identical;
            damaged_signature_cards: every account of the signatory table whose card cannot be used, with why;
            unusable_amounts: every document of the run whose amount in the claims cannot be used, with why (held
            to all of its card's rules). What the warnings say in prose, complete and for a program to reconcile.
        claimed_unsigned: every claimed document in which no signature was found (``unsigned``): a document
            presented as signed but not signed, or a signature the detector missed (faint ink, a patterned
            background); a reviewer should look at each.
    """

    documents: int
    processed: int
    skipped: int
    pages: int
    pages_processed: int
    signatures: int
    verdicts: dict[str, int]
    signature_verdicts: dict[str, int]
    failures: tuple[Failure, ...]
    reference_errors: dict[str, str]
    warnings: tuple[str, ...]
    people: int
    elapsed_s: float
    pages_per_s: float
    workers: int
    models: dict[str, str]
    suspect_references: tuple[SuspectSpecimen, ...] = ()
    started_at: str = ""
    finished_at: str = ""
    claims_not_in_scans: tuple[str, ...] = ()
    unclaimed_documents: tuple[str, ...] = ()
    duplicate_documents: tuple[tuple[str, ...], ...] = ()
    damaged_signature_cards: dict[str, str] = field(default_factory=dict)
    unusable_amounts: dict[str, str] = field(default_factory=dict)
    claimed_unsigned: tuple[str, ...] = ()

    @property
    def failed(self) -> int:
        return len(self.failures)

    @classmethod
    def from_reports(
        cls, reports: Iterable[DocumentReport], *, processed: int, pages_processed: int, elapsed_s: float,
        reference_errors: dict[str, str], warnings: Sequence[str], people: int, workers: int,
        models: dict[str, str], suspect_references: Sequence[SuspectSpecimen] = (), unread: Sequence[Failure] = (),
        started_at: datetime | None = None, finished_at: datetime | None = None,
        claims_not_in_scans: Sequence[str] = (), unclaimed_documents: Sequence[str] = (),
        duplicate_documents: Sequence[Sequence[str]] = (), damaged_signature_cards: dict[str, str] | None = None,
        unusable_amounts: dict[str, str] | None = None,
    ) -> RunSummary:
        """The summary of ``reports``; ``unread``: folders of SCANS that could not be read, listed with the
        failures (``<folder>/``, kind ``unreadable_folder``) since their documents were not checked."""
        reps = list(reports)
        verdicts = dict.fromkeys(DOCUMENT_VERDICTS, 0)
        sig_verdicts = dict.fromkeys(SIGNATURE_VERDICTS, 0)
        for r in reps:
            verdicts[r.verdict] += 1
            for s in r.signatures:
                sig_verdicts[s.verdict] += 1
        failures = tuple(Failure(r.document.path, r.error.kind, r.error.message)
                         for r in reps if r.error is not None) + tuple(unread)
        return cls(
            documents=len(reps), processed=processed, skipped=len(reps) - processed,
            pages=sum(r.document.pages for r in reps), pages_processed=pages_processed,
            signatures=sum(len(r.signatures) for r in reps), verdicts=verdicts, signature_verdicts=sig_verdicts,
            failures=failures, reference_errors=dict(reference_errors), warnings=tuple(warnings), people=people,
            elapsed_s=round(elapsed_s, 3),
            pages_per_s=round(pages_processed / elapsed_s, 3) if elapsed_s > 0 else 0.0,
            workers=workers, models=dict(models), suspect_references=tuple(suspect_references),
            started_at=_utc(started_at), finished_at=_utc(finished_at),
            claims_not_in_scans=tuple(claims_not_in_scans), unclaimed_documents=tuple(unclaimed_documents),
            duplicate_documents=tuple(tuple(g) for g in duplicate_documents),
            damaged_signature_cards=dict(damaged_signature_cards or {}),
            unusable_amounts=dict(unusable_amounts or {}),
            claimed_unsigned=tuple(claimed_unsigned(reps)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "documents": self.documents, "processed": self.processed, "skipped": self.skipped,
            "failed": self.failed, "pages": self.pages, "pages_processed": self.pages_processed,
            "signatures": self.signatures, "verdicts": dict(self.verdicts),
            "signature_verdicts": dict(self.signature_verdicts),
            "failures": [f.to_dict() for f in self.failures],
            "reference_errors": [{"file": k, "message": v} for k, v in sorted(self.reference_errors.items())],
            "suspect_references": [s.to_dict() for s in self.suspect_references],
            "warnings": list(self.warnings), "people": self.people,
            "elapsed_s": self.elapsed_s, "pages_per_s": self.pages_per_s, "workers": self.workers,
            "models": dict(self.models), "started_at": self.started_at, "finished_at": self.finished_at,
            "claims_not_in_scans": list(self.claims_not_in_scans),
            "unclaimed_documents": list(self.unclaimed_documents),
            "duplicate_documents": [list(g) for g in self.duplicate_documents],
            "damaged_signature_cards": [{"account": a, "message": m}
                                        for a, m in sorted(self.damaged_signature_cards.items())],
            "unusable_amounts": [{"document": d, "message": m} for d, m in sorted(self.unusable_amounts.items())],
            "claimed_unsigned": list(self.claimed_unsigned),
        }


def claimed_unsigned(reports: Iterable[DocumentReport]) -> list[str]:
    """The documents of ``reports`` claimed for someone in which no signature was found (verdict ``unsigned``)."""
    return [r.document.path for r in reports if r.verdict == "unsigned" and r.claimed_identity]


def _utc(t: datetime | None) -> str:
    """``t`` as ISO 8601 in UTC to the second (``2026-12-06T04:11:03Z``); "" for None."""
    return "" if t is None else t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def summary_csv(reports: Iterable[DocumentReport]) -> str:
    """One row per signature (columns :data:`CSV_COLUMNS`); a document without signatures gets one row with only
    its document, verdict and claim filled, so every document appears. ``claimed_identity`` joins several claimed
    people with ``;``, ``signers_required`` says how many of them a mandate asks (blank: all), ``account``
    which account the claim came from (blank: none), ``signing_rule`` a mandate's signing classes (``A+B``;
    blank: none, each person's class is in the JSON report), ``amount`` and ``currency`` the cheque's amount from
    the claims (blank: none given, or none that can be used), ``amount_missing`` ``true`` where the card's rules
    over amounts wanted one (the cheque is held to all of them) and ``error_kind`` a failed document's error kind
    (``timeout`` is retried by the next run, ``corrupt_pdf`` wants the file mended). Names that a
    spreadsheet would run as a formula are escaped (:func:`_cell`)."""
    buf = io.StringIO()
    # CRLF rows, as RFC 4180 has them: a name holding a bare carriage return is then quoted (with LF rows it was not,
    # and a reader or spreadsheet cut the row there, the rest of the name a cell of its own, unescaped)
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(CSV_COLUMNS)
    for r in reports:
        doc, claimed = _cell(r.document.path), _cell(";".join(claimants(r.claimed_identity)))
        required = r.claimed_identity.required if isinstance(r.claimed_identity, Mandate) else ""
        rule = rule_text(r.claimed_identity.rule) if isinstance(r.claimed_identity, Mandate) else ""
        account = _cell(r.account or "")
        amount = [format(r.amount, "f") if r.amount is not None else "", r.currency,
                  "true" if r.amount_missing else ""]
        if not r.signatures:
            w.writerow([doc, "", "", "", "", "", "", "", "", "", "", r.verdict, "", claimed, "", "", "", "", required,
                        "", account, rule, *amount, r.error.kind if r.error else ""])
        for s in r.signatures:
            w.writerow([doc, s.page, *s.bbox, _cell(s.identity or ""), _fmt(s.distance), _fmt(s.threshold),
                        _fmt(s.score), s.verdict, r.verdict, _fmt(s.detection_confidence), claimed, s.page_rotation,
                        _cell(s.nearest_reference or ""), s.page_skew, s.placed or "", required,
                        _cell(s.typed_name or ""), account, rule, *amount, ""])
    return buf.getvalue()


def _cell(name: str) -> str:
    """A file or person name as a CSV cell that Excel and LibreOffice show rather than run: a leading ``= + - @``,
    tab or carriage return (a formula: CSV injection, CWE-1236) gets a ``'`` in front, as OWASP advises. Names come
    from outside (an e-mailed scan's file name); the JSON reports keep them as they are. Each ``;``-separated part
    too (several claimed people are joined by ``;``, which a spreadsheet set to ``;``-separated lists splits on).
    A part that already starts with ``'`` gets one more, so that removing one leading ``'`` from every part that
    has one gives the name back (``-lit.png`` and ``'-lit.png`` were one cell). Control characters but tab, line
    feed and carriage return are written as ``\\xNN``, as the logs write them: an escape sequence in a file name
    (``\\x1b]0;...``) reached the terminal of whoever ran ``cat`` on the file."""
    name = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", name)
    return ";".join("'" + part if part[:1] in FORMULA_STARTS else part for part in name.split(";"))


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")  # the parts of a CSV cell that get a leading "'"
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # C0 but tab, LF, CR; DEL; C1


def _fmt(v: float | None) -> str:
    return "" if v is None else repr(v)


def write_summary(out: Path, summary: RunSummary, reports: Iterable[DocumentReport]) -> tuple[Path, Path]:
    """Write ``out/summary.csv`` and then ``out/summary.json`` atomically; returns their paths. The JSON comes last:
    its presence says the run finished, so it is not there unless the CSV is too; when it cannot be written (a
    full disk) the CSV goes again, as a summary in OUT belongs to a run that finished."""
    js, cs = out / SUMMARY_JSON, out / SUMMARY_CSV
    write_text_atomic(cs, summary_csv(reports))
    try:
        write_text_atomic(js, json.dumps(json_text(summary.to_dict()), indent=2) + "\n")
    except BaseException:
        with contextlib.suppress(OSError):
            cs.unlink()
        raise
    return js, cs
