"""Synthetic scanned documents with signatures from a per-writer corpus, and their ground truth.

Renders cheques, one- to three-page letters and contracts, and forms: printed text (Source Serif 4, Arimo), ruled
lines, boxes, logos, rubber stamps and handwritten non-signature marks (dates, amounts, initials, notes, in
handwriting fonts: hard negatives for a detector). Signatures from a corpus (``ROOT/<writer>/genuine|forged/*.png``)
are placed where people sign, blended as ink (paper removed, multiplied onto the page in dark blue or black), then
every page goes through simulated scanning (paper tint, skew, blur, noise, specks, JPEG, sometimes binarisation).

Documents are written as PDF (multi-page), multi-page TIFF, PNG and JPEG, with ``truth.json`` listing every
signature's page and box in pixels of the page rendered at ``dpi``. With ``yolo=True`` an Ultralytics detection
dataset is written under ``OUT/yolo`` whose labels are exactly the truth boxes.

Everything random is drawn from ``numpy.random.Generator`` objects derived from the seed: the same corpus, seed and
options give the same documents and truth.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import shutil
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import fontpkg
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from sigpipe.datasets.corpus import Corpus, read_gray
from sigpipe.errors import InputError

log = logging.getLogger(__name__)

KINDS: tuple[str, ...] = ("cheque", "letter", "contract", "form")
FORMATS: tuple[str, ...] = ("pdf", "tiff", "png", "jpeg")
TRUTH_SCHEMA = "sigpipe.synth-documents/1"
SUFFIX = {"pdf": ".pdf", "tiff": ".tif", "png": ".png", "jpeg": ".jpg"}

SERIF = "source-serif-4"
SANS = "arimo"
HAND_FONTS: tuple[str, ...] = ("caveat", "kalam", "indie-flower", "shadows-into-light")
# Typeset script (printed, not handwritten): letterheads and bank names set in it are hard negatives.
SCRIPT_TYPE_FONTS: tuple[str, ...] = ("great-vibes", "dancing-script", "yellowtail", "satisfy", "pacifico")

# Page sizes in inches (width, height).
PAGE_SIZES: dict[str, tuple[float, float]] = {"a4": (210 / 25.4, 297 / 25.4), "letter": (8.5, 11.0)}
CHEQUE_SIZES: tuple[tuple[float, float], ...] = ((6.0, 2.75), (6.25, 2.75), (7.0, 3.0), (8.0, 3.0))

# Signature width in inches per document type (a real signature on that kind of document).
SIGNATURE_WIDTH_IN: dict[str, tuple[float, float]] = {
    "cheque": (1.5, 2.5),
    "letter": (2.0, 3.0),
    "contract": (1.8, 2.8),
    "form": (1.5, 2.4),
}


# --------------------------------------------------------------------------------------------------------------
# Truth


@dataclass(frozen=True)
class SignatureTruth:
    """One signature placed on a document.

    Attributes:
        page: 1-based page number.
        bbox: ``(x1, y1, x2, y2)`` tight box around the ink in pixels of the page rendered at the document's dpi;
            ``x2``/``y2`` are exclusive (width = ``x2 - x1``), ``0 <= x1 < x2 <= page width``.
        writer: writer id in the source corpus (for a forgery: the writer who was imitated).
        genuine: True for a genuine signature, False for a skilled forgery.
        source: path of the source image relative to the corpus root (``<writer>/genuine/NN.png``).
    """

    page: int
    bbox: tuple[int, int, int, int]
    writer: str
    genuine: bool
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "page": self.page,
            "bbox": list(self.bbox),
            "writer": self.writer,
            "genuine": self.genuine,
            "kind": "genuine" if self.genuine else "forged",
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SignatureTruth:
        x1, y1, x2, y2 = (int(v) for v in d["bbox"])
        return cls(int(d["page"]), (x1, y1, x2, y2), str(d["writer"]), bool(d["genuine"]), str(d["source"]))


@dataclass(frozen=True)
class DocumentTruth:
    """One generated document.

    Attributes:
        path: file path relative to the output folder (POSIX separators).
        format: ``pdf``, ``tiff``, ``png`` or ``jpeg``.
        kind: ``cheque``, ``letter``, ``contract`` or ``form``.
        pages: number of pages.
        page_size: ``(width, height)`` of every page in pixels at ``dpi``.
        dpi: resolution the pages were rendered at (PDFs rasterised at this dpi give back ``page_size``).
        signatures: the signatures, in page order.
    """

    path: str
    format: str
    kind: str
    pages: int
    page_size: tuple[int, int]
    dpi: int
    signatures: tuple[SignatureTruth, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "type": self.kind,
            "pages": self.pages,
            "page_size": list(self.page_size),
            "dpi": self.dpi,
            "signatures": [s.to_dict() for s in self.signatures],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DocumentTruth:
        w, h = (int(v) for v in d["page_size"])
        return cls(
            path=str(d["path"]),
            format=str(d["format"]),
            kind=str(d["type"]),
            pages=int(d["pages"]),
            page_size=(w, h),
            dpi=int(d["dpi"]),
            signatures=tuple(SignatureTruth.from_dict(s) for s in d["signatures"]),
        )


@dataclass(frozen=True)
class SynthTruth:
    """The truth manifest of a generated batch (``truth.json``).

    Attributes:
        seed: the seed the batch was generated with.
        corpus: the signature corpus folder, as given.
        documents: every document, in generation order.
    """

    seed: int
    corpus: str
    documents: tuple[DocumentTruth, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": TRUTH_SCHEMA,
            "seed": self.seed,
            "corpus": self.corpus,
            "documents": [d.to_dict() for d in self.documents],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SynthTruth:
        if d.get("schema") != TRUTH_SCHEMA:
            raise InputError(f"not a synthetic-documents truth manifest (schema {d.get('schema')!r})")
        return cls(int(d["seed"]), str(d["corpus"]), tuple(DocumentTruth.from_dict(x) for x in d["documents"]))

    def save(self, path: str | Path) -> None:
        """Write as JSON, one document per line."""
        d = self.to_dict()
        head = ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in d.items() if k != "documents")
        docs = ",\n".join(f"  {json.dumps(doc)}" for doc in d["documents"])
        Path(path).write_text(f"{{\n{head},\n \"documents\": [\n{docs}\n ]\n}}\n", encoding="utf-8")


def load_truth(path: str | Path) -> SynthTruth:
    """Read a ``truth.json`` written by :func:`generate_documents`.

    Raises:
        InputError: the file is missing or is not such a manifest.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"truth manifest not found: {path}")
    try:
        return SynthTruth.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError) as e:
        raise InputError(f"malformed truth manifest {path}: {e}") from e


@dataclass(frozen=True)
class SynthOptions:
    """Settings of the generator (defaults in one place).

    Attributes:
        dpi: rendering resolution; page pixel sizes and truth boxes are at this dpi.
        kinds: document types to draw from.
        kind_weights: relative frequency of each type in ``kinds`` (None: equal).
        formats: output formats to draw from (multi-page documents only use ``pdf``/``tiff``).
        unsigned: probability that a document carries no signature at all.
        forged: probability that a signature is a skilled forgery (when the writer has forgeries).
        two_signers: probability of a second signer on cheques and letters (contracts usually have two; forms
            have a witness box of their own, 40% of the time, signed in 80% of those).
        security: probability that a cheque carries a strong security background (a dense guilloche, a
            pantograph screen with a hidden word, microprint or a tinted emblem) over the faint one every cheque
            has. Drawn from a generator of its own, so a seed's documents are the same with and without it.
        script_type: probability that a document's printed names are set in a script typeface: a letter's or
            form's letterhead (company name, and a letter's address in two lines), a cheque's bank name and, on
            a company's cheque, the payer. Printed script that looks like handwriting, as on many real
            letterheads, is a hard negative for a detector. Drawn from a generator of its own.
        bitonal: probability that a document is scanned bitonal whatever its scanner profile drew (a 1-bit
            threshold; cheques are otherwise 8% bitonal, other documents 30%): with ``security``, the pattern
            thresholded to black dots and lines of an image cash letter. Drawn from a generator of its own.
        yolo_long_side: long side in pixels of the page images of the YOLO export.
        yolo_quality: JPEG quality of the YOLO export images.
        val_fraction: fraction of documents whose pages go to the YOLO ``val`` split.
        clean: render without scan artefacts (for debugging and looking at layouts).
        compact: keep files small (bundled examples): pages stored losslessly (PNG, TIFF) are binarised, the
            others get little noise and JPEG quality 70.
    """

    dpi: int = 200
    kinds: tuple[str, ...] = KINDS
    kind_weights: tuple[float, ...] | None = None
    formats: tuple[str, ...] = FORMATS
    unsigned: float = 0.08
    forged: float = 0.25
    two_signers: float = 0.2
    security: float = 0.0
    script_type: float = 0.0
    bitonal: float = 0.0
    yolo_long_side: int = 1024
    yolo_quality: int = 90
    val_fraction: float = 0.15
    clean: bool = False
    compact: bool = False

    def __post_init__(self) -> None:
        bad = [k for k in self.kinds if k not in KINDS]
        if not self.kinds or bad:
            raise ValueError(f"kinds must be a non-empty subset of {KINDS}, got {self.kinds}")
        badf = [f for f in self.formats if f not in FORMATS]
        if not self.formats or badf:
            raise ValueError(f"formats must be a non-empty subset of {FORMATS}, got {self.formats}")
        if self.kind_weights is not None and len(self.kind_weights) != len(self.kinds):
            raise ValueError("kind_weights needs one weight per kind")
        if not 50 <= self.dpi <= 600:
            raise ValueError(f"dpi must be in [50, 600], got {self.dpi}")


# --------------------------------------------------------------------------------------------------------------
# Text material

FIRST = (
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth", "William",
    "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Charles", "Karen", "Daniel", "Nancy",
    "Matthew", "Lisa", "Anthony", "Margaret", "Mark", "Sandra", "Paul", "Ashley", "Steven", "Dorothy", "Andrew",
    "Helen", "Kenneth", "Carol", "George", "Ruth", "Edward", "Sharon", "Ronald", "Laura", "Arthur", "Anna",
)
LAST = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson", "Anderson", "Taylor", "Thomas",
    "Moore", "Martin", "Jackson", "Thompson", "White", "Harris", "Clark", "Lewis", "Robinson", "Walker", "Young",
    "Allen", "King", "Wright", "Hill", "Green", "Adams", "Baker", "Nelson", "Carter", "Mitchell", "Roberts",
    "Turner", "Phillips", "Campbell", "Parker", "Evans", "Edwards", "Collins", "Stewart", "Morris", "Hobbs",
)
COMPANY_A = (
    "Northfield", "Harbor", "Summit", "Granite", "Westbrook", "Lakeside", "Pioneer", "Atlas", "Meridian", "Crescent",
    "Riverside", "Oakmont", "Sterling", "Beacon", "Keystone", "Evergreen", "Redwood", "Bayview", "Hamilton",
)
COMPANY_B = (
    "Holdings", "Industries", "Research", "Associates", "Consulting", "Logistics", "Partners", "Tobacco Company",
    "Manufacturing", "Insurance Co.", "Laboratories", "Foods Inc.", "Engineering", "Capital", "Trust Company",
)
BANKS = (
    "First National Bank", "Citizens Savings Bank", "Union Trust Bank", "Commerce Bank", "Harbor Federal",
    "Mutual Savings & Loan", "Farmers State Bank", "Metropolitan Credit Union", "Central Bank & Trust",
)
STREETS = ("Main Street", "Oak Avenue", "Park Place", "Elm Street", "Market Street", "Lake Road", "Hill Drive",
           "Third Avenue", "Madison Avenue", "Broad Street", "Church Lane", "Mill Road", "Pine Court")
CITIES = ("New York, NY 10017", "Richmond, VA 23261", "Chicago, IL 60601", "Louisville, KY 40202",
          "Boston, MA 02110", "Atlanta, GA 30303", "Denver, CO 80202", "Winston-Salem, NC 27102",
          "Minneapolis, MN 55402", "Springfield, IL 62701", "Hartford, CT 06103", "Portland, OR 97204")
TITLES = ("President", "Vice President", "Director", "Treasurer", "General Counsel", "Manager, Research",
          "Chief Financial Officer", "Secretary", "Senior Analyst", "Program Director", "Chairman")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")

SUBJECTS = ("The committee", "Our department", "The enclosed report", "The company", "Management", "The board",
            "Your office", "The project team", "The research group", "Our legal staff", "The sales division",
            "This office", "The review panel", "Our accounting group")
VERBS = ("has reviewed", "will consider", "recommends", "has approved", "requests", "is pleased to confirm",
         "has completed", "will provide", "expects", "acknowledges", "has received", "will forward", "proposes")
OBJECTS = ("the proposed budget for the coming fiscal year", "the results of the recent survey",
           "the revised schedule of deliveries", "your letter of last week", "the terms of the agreement",
           "the funding request for the second phase", "the draft of the annual report",
           "a summary of the meeting held on Tuesday", "the invoices for the third quarter",
           "the recommendations of the advisory board", "the changes to the distribution program",
           "additional copies of the documents", "the estimates prepared by our consultants")
TAILS = ("", "", " as discussed at our last meeting", " by the end of the quarter", " at your earliest convenience",
         " in accordance with our policy", " before the next board meeting", " for your records",
         " subject to final approval", " with the attached comments", " as soon as possible")
EXTRA = ("Please let me know if you have any questions.", "We appreciate your cooperation in this matter.",
         "Copies have been sent to all members of the committee.", "Thank you for your prompt attention.",
         "I look forward to hearing from you.", "Further details will follow under separate cover.")
CLAUSES = ("Term", "Payment", "Confidentiality", "Termination", "Governing Law", "Indemnification", "Notices",
           "Entire Agreement", "Assignment", "Warranties", "Services", "Compensation", "Severability",
           "Force Majeure", "Amendments", "Records and Audit", "Insurance", "Dispute Resolution")
LEGAL = ("The Parties agree that", "Each Party shall", "The Contractor shall", "The Company may",
         "Notwithstanding the foregoing,", "Except as otherwise provided herein,", "Upon written notice,",
         "Neither Party shall", "In the event of a breach,", "The Client shall")
LEGAL_OBJ = ("perform the services described in Schedule A", "keep all Confidential Information in strict confidence",
             "pay all undisputed invoices within thirty (30) days of receipt",
             "terminate this Agreement upon thirty (30) days written notice",
             "be governed by the laws of the State of New York", "maintain adequate insurance coverage",
             "indemnify and hold harmless the other Party from any claims", "assign its rights without consent",
             "provide written notice to the addresses set forth above", "keep complete and accurate records",
             "comply with all applicable laws and regulations", "remain in effect for a period of two (2) years")
FORM_TITLES = ("APPLICATION FOR EMPLOYMENT", "CHANGE OF ADDRESS REQUEST", "EXPENSE REIMBURSEMENT FORM",
               "ACCOUNT OPENING FORM", "PURCHASE ORDER REQUEST", "CONSENT AND AUTHORIZATION",
               "VENDOR REGISTRATION FORM", "TRAVEL AUTHORIZATION", "CLAIM FORM", "MEMBERSHIP APPLICATION")
SECTIONS = ("APPLICANT", "DETAILS", "PAYMENT", "CONTACT INFORMATION", "ITEMS", "EMPLOYMENT", "BANK DETAILS",
            "AUTHORIZATION", "OFFICE USE ONLY", "ADDITIONAL INFORMATION")
FIELDS = (("Last name", "last"), ("First name", "first"), ("Date of birth", "date"), ("Address", "street"),
          ("City / State / ZIP", "city"), ("Telephone", "phone"), ("Account number", "number"),
          ("Amount", "amount"), ("Department", "dept"), ("Employee ID", "number"), ("Date", "date"),
          ("Reference no.", "number"), ("Position", "title"), ("Company", "company"))
NOTES = ("OK", "File", "see me", "approved", "call back", "copy to legal", "done", "pls review", "FYI", "noted",
         "urgent", "paid", "per phone", "hold")
STAMP_WORDS = ("RECEIVED", "APPROVED", "PAID", "COPY", "CONFIDENTIAL", "FILED", "ENTERED", "VOID", "URGENT")


def _pick(rng: np.random.Generator, seq: Sequence[Any]) -> Any:
    return seq[int(rng.integers(len(seq)))]


def _name(rng: np.random.Generator) -> str:
    return f"{_pick(rng, FIRST)} {_pick(rng, 'ABCDEFGHJKLMNPRSTW')}. {_pick(rng, LAST)}"


def _company(rng: np.random.Generator) -> str:
    return f"{_pick(rng, COMPANY_A)} {_pick(rng, COMPANY_B)}"


def _date_text(rng: np.random.Generator) -> str:
    return f"{_pick(rng, MONTHS)} {int(rng.integers(1, 29))}, {int(rng.integers(1962, 2024))}"


def _hand_date(rng: np.random.Generator) -> str:
    d, m, y = int(rng.integers(1, 29)), int(rng.integers(1, 13)), int(rng.integers(1985, 2025))
    style = int(rng.integers(4))
    if style == 0:
        return f"{m}/{d}/{y % 100:02d}"
    if style == 1:
        return f"{d:02d}.{m:02d}.{y}"
    if style == 2:
        return f"{MONTHS[m - 1][:3]} {d}, {y}"
    return f"{m}-{d}-{y}"


def _amount(rng: np.random.Generator) -> tuple[int, int]:
    dollars = int(np.exp(rng.uniform(math.log(5), math.log(25000))))
    cents = int(rng.choice([0, 0, 0, int(rng.integers(1, 100))]))
    return dollars, cents


_ONES = ("", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
         "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")


def _words(n: int) -> str:
    """English words for ``0 <= n < 1_000_000``."""
    if n == 0:
        return "zero"
    parts = []
    if n >= 1000:
        parts.append(_words(n // 1000) + " thousand")
        n %= 1000
    if n >= 100:
        parts.append(_ONES[n // 100] + " hundred")
        n %= 100
    if n >= 20:
        parts.append(_TENS[n // 10] + ("-" + _ONES[n % 10] if n % 10 else ""))
    elif n:
        parts.append(_ONES[n])
    return " ".join(parts)


def _sentence(rng: np.random.Generator) -> str:
    if rng.random() < 0.15:
        return str(_pick(rng, EXTRA))
    return f"{_pick(rng, SUBJECTS)} {_pick(rng, VERBS)} {_pick(rng, OBJECTS)}{_pick(rng, TAILS)}."


def _paragraph_text(rng: np.random.Generator, n_min: int = 2, n_max: int = 5) -> str:
    return " ".join(_sentence(rng) for _ in range(int(rng.integers(n_min, n_max + 1))))


def _legal_text(rng: np.random.Generator) -> str:
    return " ".join(f"{_pick(rng, LEGAL)} {_pick(rng, LEGAL_OBJ)}{_pick(rng, TAILS)}."
                    for _ in range(int(rng.integers(2, 5))))


def _field_value(rng: np.random.Generator, kind: str) -> str:
    if kind == "last":
        return str(_pick(rng, LAST))
    if kind == "first":
        return str(_pick(rng, FIRST))
    if kind == "date":
        return _hand_date(rng)
    if kind == "street":
        return f"{int(rng.integers(1, 999))} {_pick(rng, STREETS)}"
    if kind == "city":
        return str(_pick(rng, CITIES))
    if kind == "phone":
        return f"({int(rng.integers(200, 999))}) {int(rng.integers(200, 999))}-{int(rng.integers(1000, 9999))}"
    if kind == "number":
        return str(int(rng.integers(10_000, 99_999_999)))
    if kind == "amount":
        d, c = _amount(rng)
        return f"${d:,}.{c:02d}"
    if kind == "title":
        return str(_pick(rng, TITLES))
    if kind == "company":
        return _company(rng)
    return str(_pick(rng, ("Accounting", "Research", "Sales", "Legal", "Marketing", "Operations")))


# --------------------------------------------------------------------------------------------------------------
# Fonts and ink


@functools.lru_cache(maxsize=512)
def _font(name: str, size: int, weight: int = 400) -> ImageFont.FreeTypeFont:
    """A TrueType font from a ``fontpkg-*`` package at ``size`` pixels (variable fonts set to ``weight``)."""
    font = ImageFont.truetype(fontpkg.path(name), max(4, int(size)))
    try:
        axes = font.get_variation_axes()
    except OSError:  # a static font
        return font
    values = []
    for ax in axes:
        tag = ax["name"].decode() if isinstance(ax["name"], bytes) else str(ax["name"])
        if tag == "Weight":
            values.append(float(np.clip(weight, ax["minimum"], ax["maximum"])))
        elif tag == "Optical Size":
            values.append(float(np.clip(size / 3.0, ax["minimum"], ax["maximum"])))
        else:
            values.append(float(ax["default"] or 0))
    font.set_variation_by_axes(values)
    return font


@functools.lru_cache(maxsize=256)
def _squeezed_glyph(font_name: str, size: int, weight: int, ch: str, width: int) -> Image.Image:
    """An ``L`` mask of ``ch`` squeezed to ``width`` pixels; its top is the font's ascender line."""
    font = _font(font_name, size, weight)
    asc, desc = font.getmetrics()
    gw = int(math.ceil(font.getlength(ch)))
    im = Image.new("L", (gw + 2, asc + desc), 0)
    ImageDraw.Draw(im).text((1, 0), ch, font=font, fill=255, anchor="la")
    return im.resize((max(1, width), im.height), Image.Resampling.LANCZOS)


def ink_alpha(gray: np.ndarray) -> np.ndarray:
    """Turn a scanned signature into an ink coverage mask with the paper removed, cropped to the ink.

    Args:
        gray: ``(H, W)`` uint8 image, 0 = black ink, 255 = white paper (any paper level, faint background).

    Returns:
        ``(h, w)`` float32 alpha in [0, 1] (1 = full ink), cropped to the ink with a 2-pixel margin.

    Raises:
        InputError: the image holds no ink.
    """
    g = gray.astype(np.float32)
    paper = float(np.median(g))
    thr, _ = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    dark = g[g <= min(thr, paper - 1)]  # <=: Otsu gives 0 on a 0/255 image
    if dark.size == 0 or paper - float(np.percentile(dark, 10)) < 25:
        raise InputError("signature image holds no ink")
    ink = float(np.percentile(dark, 10))
    alpha = np.clip((paper - g) / (paper - ink), 0.0, 1.0)
    alpha[alpha < 0.22] = 0.0
    alpha = np.clip(alpha * 1.15, 0.0, 1.0) ** 0.8
    # drop scanner specks and faint background blobs, which would otherwise stretch the crop
    n, labels, stats, _ = cv2.connectedComponentsWithStats((alpha > 0.0).astype(np.uint8), connectivity=8)
    if n > 2:
        peak = np.zeros(n, np.float32)
        np.maximum.at(peak, labels.ravel(), alpha.ravel())
        keep = (stats[:, cv2.CC_STAT_AREA] >= max(6, 1e-4 * alpha.size)) & (peak >= 0.5)
        keep[0] = False
        alpha[~keep[labels]] = 0.0
    ys, xs = np.nonzero(alpha > 0.25)
    if ys.size == 0:
        raise InputError("signature image holds no ink")
    y0, y1 = max(0, ys.min() - 2), min(alpha.shape[0], ys.max() + 3)
    x0, x1 = max(0, xs.min() - 2), min(alpha.shape[1], xs.max() + 3)
    return np.ascontiguousarray(alpha[y0:y1, x0:x1], dtype=np.float32)


def _rotate_alpha(alpha: np.ndarray, angle: float, shear: float = 0.0) -> np.ndarray:
    """Rotate (degrees, counter-clockwise) and shear a ``(h, w)`` float32 alpha, enlarging it to keep every pixel."""
    h, w = alpha.shape
    rad = math.radians(angle)
    c, s = math.cos(rad), math.sin(rad)
    m = np.array([[c, s], [-s, c]], dtype=np.float64) @ np.array([[1.0, shear], [0.0, 1.0]])
    corners = np.array([[0, 0], [w, 0], [0, h], [w, h]], dtype=np.float64) @ m.T
    lo, hi = corners.min(0), corners.max(0)
    nw, nh = int(math.ceil(hi[0] - lo[0])) + 2, int(math.ceil(hi[1] - lo[1])) + 2
    mat = np.hstack([m, (-lo + 1.0).reshape(2, 1)])
    return cv2.warpAffine(alpha, mat, (nw, nh), flags=cv2.INTER_LINEAR, borderValue=0.0)


def _ink_colour(rng: np.random.Generator, kind: str = "pen") -> tuple[int, int, int]:
    """An RGB ink colour: ballpoint blue, blue-black or black (pen), or a stamp-pad colour."""
    if kind == "stamp":
        base = _pick(rng, ((190, 30, 40), (40, 60, 170), (110, 40, 140), (30, 110, 70), (200, 60, 30)))
    else:
        base = _pick(rng, ((25, 35, 120), (20, 45, 150), (30, 30, 70), (25, 25, 30), (15, 15, 20)))
    j = rng.integers(-12, 13, size=3)
    r, g, b = (int(np.clip(v + d, 0, 255)) for v, d in zip(base, j, strict=True))
    return (r, g, b)


@dataclass
class _Ink:
    alpha: np.ndarray  # (h, w) float32 in [0, 1]
    x: int
    y: int
    colour: tuple[int, int, int]
    strength: float = 1.0


@dataclass
class _Placed:
    page: int  # 0-based while rendering
    hull: np.ndarray  # (K, 2) float64 ink hull points (x, y) in page pixels
    writer: str
    genuine: bool
    source: str


@dataclass
class _SigSource:
    writer: str
    genuine: bool
    path: Path
    rel: str


class _Canvas:
    """One page being drawn: PIL for printed matter, deferred ink layers multiplied on at the end."""

    def __init__(self, size: tuple[int, int], dpi: int, page: int) -> None:
        self.w, self.h = size
        self.dpi = dpi
        self.page = page
        self.img = Image.new("RGB", size, (255, 255, 255))
        self.draw = ImageDraw.Draw(self.img)
        self.inks: list[_Ink] = []
        self.placed: list[_Placed] = []
        self.lw = max(1, round(dpi / 110))

    def px(self, inches: float) -> int:
        return int(round(inches * self.dpi))

    def pt(self, points: float) -> int:
        return max(4, int(round(points * self.dpi / 72)))

    def text(self, x: float, y: float, s: str, font: ImageFont.FreeTypeFont,
             fill: tuple[int, int, int] = (20, 20, 20), anchor: str = "la") -> float:
        """Draw ``s`` with its top-left (or ``anchor``) at (x, y); returns the width in pixels."""
        self.draw.text((x, y), s, font=font, fill=fill, anchor=anchor)
        return float(font.getlength(s))

    def typed(self, x: float, y: float, s: str, font_name: str, size: int, weight: int, pitch: float,
              fill: tuple[int, int, int] = (20, 20, 20)) -> None:
        """Typewriter text: one glyph per fixed ``pitch`` (pixels), centred in its cell.

        Glyphs wider than the cell (m, w, M, W) are squeezed horizontally to fit, as on a typewriter.
        """
        font = _font(font_name, size, weight)
        limit = int(pitch * 0.92)
        for i, ch in enumerate(s):
            if ch == " ":
                continue
            cx = x + (i + 0.5) * pitch
            if font.getlength(ch) > limit:
                mask = _squeezed_glyph(font_name, size, weight, ch, limit)
                x0, y0 = int(round(cx - mask.width / 2)), int(round(y))
                self.img.paste(fill, (x0, y0, x0 + mask.width, y0 + mask.height), mask)
            else:
                self.draw.text((cx, y), ch, font=font, fill=fill, anchor="ma")

    def hline(self, x0: float, x1: float, y: float, width: int | None = None,
              fill: tuple[int, int, int] = (30, 30, 30)) -> None:
        self.draw.line([(x0, y), (x1, y)], fill=fill, width=width or self.lw)

    def rect(self, x0: float, y0: float, x1: float, y1: float, width: int | None = None,
             fill: tuple[int, int, int] | None = None, outline: tuple[int, int, int] | None = (30, 30, 30)) -> None:
        self.draw.rectangle([x0, y0, x1, y1], outline=outline, fill=fill, width=width or self.lw)

    def add_ink(self, alpha: np.ndarray, x: float, y: float, colour: tuple[int, int, int],
                strength: float = 1.0) -> tuple[int, int]:
        """Queue an ink layer with its top-left at (x, y), shifted to lie inside the page; returns the position."""
        h, w = alpha.shape
        xi = int(np.clip(round(x), 0, max(0, self.w - w)))
        yi = int(np.clip(round(y), 0, max(0, self.h - h)))
        self.inks.append(_Ink(alpha, xi, yi, colour, strength))
        return xi, yi

    def finish(self) -> np.ndarray:
        """Multiply every ink layer onto the printed page.

        Returns:
            ``(H, W, 3)`` uint8 RGB page.
        """
        arr = np.asarray(self.img, dtype=np.uint8).copy()
        for ink in self.inks:
            h, w = ink.alpha.shape
            x1, y1 = min(self.w, ink.x + w), min(self.h, ink.y + h)
            a = ink.alpha[: y1 - ink.y, : x1 - ink.x, None] * ink.strength
            region = arr[ink.y:y1, ink.x:x1].astype(np.float32)
            tint = 1.0 - np.asarray(ink.colour, dtype=np.float32) / 255.0
            region *= 1.0 - a * tint
            arr[ink.y:y1, ink.x:x1] = np.clip(region + 0.5, 0, 255).astype(np.uint8)
        return arr


# --------------------------------------------------------------------------------------------------------------
# Handwriting, stamps, logos (all hard negatives)


def _hand_alpha(rng: np.random.Generator, text: str, size: int, font_name: str | None = None) -> np.ndarray:
    """Render a short handwritten string.

    Returns:
        ``(h, w)`` float32 alpha in [0, 1], slightly rotated, with per-glyph size and baseline jitter.
    """
    name = font_name or str(_pick(rng, HAND_FONTS))
    size = max(8, int(size))
    weight = int(rng.integers(400, 701))
    adv = 0.0
    glyphs = []
    for ch in text:
        f = _font(name, int(size * rng.uniform(0.92, 1.08)), weight)
        glyphs.append((ch, f, adv, rng.normal(0, size * 0.03)))
        adv += f.getlength(ch) * rng.uniform(0.95, 1.05)
    w, h = int(adv + size * 0.6), int(size * 1.7)
    im = Image.new("L", (max(w, 2), h), 0)
    d = ImageDraw.Draw(im)
    for ch, f, x, dy in glyphs:
        d.text((size * 0.3 + x, size * 1.15 + dy), ch, font=f, fill=255, anchor="ls")
    alpha = np.asarray(im, dtype=np.float32) / 255.0
    alpha = _rotate_alpha(alpha, rng.normal(0, 2.5) * min(1.0, 6.0 / max(1, len(text))), rng.uniform(-0.15, 0.1))
    return _crop_alpha(alpha)


def _crop_alpha(alpha: np.ndarray, margin: int = 1) -> np.ndarray:
    ys, xs = np.nonzero(alpha > 0.05)
    if ys.size == 0:
        return alpha[:1, :1] * 0
    return alpha[max(0, ys.min() - margin): ys.max() + 1 + margin, max(0, xs.min() - margin): xs.max() + 1 + margin]


def _stroke_alpha(rng: np.random.Generator, kind: str, size: int, width: int) -> np.ndarray:
    """A hand-drawn mark: ``check``, ``underline``, ``cross``, ``circle`` or ``arrow``.

    Returns:
        ``(h, w)`` float32 alpha in [0, 1].
    """
    s = max(8, size)
    canvas = np.zeros((2 * s, 4 * s if kind in ("underline", "arrow") else 2 * s), np.uint8)
    h, w = canvas.shape
    j = lambda: rng.normal(0, s * 0.05)  # noqa: E731
    if kind == "check":
        pts = [(s * 0.3 + j(), s * 1.0 + j()), (s * 0.8 + j(), s * 1.6 + j()), (s * 1.8 + j(), s * 0.2 + j())]
    elif kind == "cross":
        cv2.line(canvas, (int(s * 0.3), int(s * 0.3)), (int(s * 1.6), int(s * 1.7)), 255, width, cv2.LINE_AA)
        pts = [(s * 1.6 + j(), s * 0.3 + j()), (s * 0.35 + j(), s * 1.6 + j())]
    elif kind == "circle":
        t = np.linspace(0, 2 * np.pi * rng.uniform(1.0, 1.15), 40)
        pts = list(zip(s + s * 0.85 * np.cos(t) + rng.normal(0, s * 0.02, 40),
                       s + s * 0.7 * np.sin(t) + rng.normal(0, s * 0.02, 40), strict=True))
    elif kind == "arrow":
        pts = [(s * 0.2, s + j()), (w - s * 0.4, s + j()), (w - s * 0.9, s * 0.6 + j()),
               (w - s * 0.4, s + j()), (w - s * 0.9, s * 1.4 + j())]
    else:  # underline
        xs = np.linspace(s * 0.1, w - s * 0.1, 12)
        pts = list(zip(xs, s + np.cumsum(rng.normal(0, s * 0.03, 12)), strict=True))
    poly = np.array(pts, dtype=np.int32).reshape(-1, 1, 2)
    cv2.polylines(canvas, [poly], False, 255, width, cv2.LINE_AA)
    return _crop_alpha(canvas.astype(np.float32) / 255.0)


def _worn(rng: np.random.Generator, alpha: np.ndarray, amount: float) -> np.ndarray:
    """Uneven rubber-stamp inking: multiply ``alpha`` by blurred noise so parts fade out."""
    h, w = alpha.shape
    small = rng.random((max(2, h // 6), max(2, w // 6))).astype(np.float32)
    tex = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    tex = np.clip((tex - amount * 0.6) / (1.0 - amount * 0.6), 0.0, 1.0)
    fine = rng.random((h, w), dtype=np.float32) > amount * 0.35
    return alpha * tex * fine


def _stamp_alpha(rng: np.random.Generator, dpi: int) -> np.ndarray:
    """A rubber stamp (round seal with text around the rim, or a framed word with a date), rotated and worn.

    Returns:
        ``(h, w)`` float32 alpha in [0, 1].
    """
    lw = max(2, round(dpi / 70))
    if rng.random() < 0.45:  # round seal
        r = int(dpi * rng.uniform(0.55, 0.8))
        im = Image.new("L", (2 * r + 4, 2 * r + 4), 0)
        d = ImageDraw.Draw(im)
        c = r + 2
        d.ellipse([c - r, c - r, c + r, c + r], outline=255, width=lw)
        ri = int(r * 0.68)
        d.ellipse([c - ri, c - ri, c + ri, c + ri], outline=255, width=max(1, lw - 1))
        rim = f"{_company(rng).upper()} * {_pick(rng, CITIES).split(',')[0].upper()} *"
        f = _font(SANS, int(r * 0.19), 700)
        n = len(rim)
        for i, ch in enumerate(rim):
            ang = -math.pi / 2 + 2 * math.pi * i / n
            rr = (r + ri) / 2
            g = Image.new("L", (int(r * 0.3), int(r * 0.3)), 0)
            ImageDraw.Draw(g).text((g.width / 2, g.height / 2), ch, font=f, fill=255, anchor="mm")
            g = g.rotate(-math.degrees(ang) - 90, resample=Image.Resampling.BILINEAR)
            im.paste(255, (int(c + rr * math.cos(ang) - g.width / 2), int(c + rr * math.sin(ang) - g.height / 2)),
                     g)
        word = str(_pick(rng, ("SEAL", "NOTARY", "OFFICIAL", "APPROVED", "CERTIFIED")))
        d.text((c, c), word, font=_font(SANS, int(r * 0.22), 800), fill=255, anchor="mm")
    else:  # framed word + date
        word = str(_pick(rng, STAMP_WORDS))
        fsize = int(dpi * rng.uniform(0.2, 0.32))
        f = _font(SANS, fsize, 800)
        tw = int(f.getlength(word))
        date = _date_text(rng).upper()
        f2 = _font(SANS, int(fsize * 0.45), 600)
        w = max(tw, int(f2.getlength(date))) + fsize
        h = int(fsize * (2.0 if rng.random() < 0.6 else 1.4))
        im = Image.new("L", (w + 2 * lw, h + 2 * lw), 0)
        d = ImageDraw.Draw(im)
        d.rectangle([lw, lw, w + lw, h + lw], outline=255, width=lw)
        if rng.random() < 0.5:
            d.rectangle([3 * lw, 3 * lw, w - lw, h - lw], outline=255, width=max(1, lw // 2))
        d.text((w / 2 + lw, lw + fsize * 0.25), word, font=f, fill=255, anchor="ma")
        if h > fsize * 1.6:
            d.text((w / 2 + lw, lw + fsize * 1.3), date, font=f2, fill=255, anchor="ma")
    alpha = np.asarray(im, dtype=np.float32) / 255.0
    alpha = _rotate_alpha(alpha, rng.uniform(-25, 25))
    return _worn(rng, alpha, rng.uniform(0.05, 0.4))


def _side_rng(rng: np.random.Generator, key: int) -> np.random.Generator:
    """A generator of its own for an optional feature, derived from ``rng``'s seed without drawing from it."""
    ss = rng.bit_generator.seed_seq  # type: ignore[attr-defined]
    if not isinstance(ss, np.random.SeedSequence):
        raise TypeError("a document's generator is seeded from a SeedSequence")
    return np.random.default_rng(np.random.SeedSequence(ss.entropy, spawn_key=(*ss.spawn_key, key)))


def _script_font(ctx: _DocContext) -> str | None:
    """The script typeface this document's printed names are set in, or None (``SynthOptions.script_type``)."""
    if not ctx.opts.script_type:
        return None
    side = _side_rng(ctx.rng, 100)
    return str(_pick(side, SCRIPT_TYPE_FONTS)) if side.random() < ctx.opts.script_type else None


def _logo(cv: _Canvas, rng: np.random.Generator, x: float, y: float, size: int, name: str,
          script: str | None = None) -> float:
    """Draw a letterhead logo (shape + company name) with its top-left at (x, y); returns its height in pixels.

    ``script``: a script typeface for the company name (as printed, in its case) instead of serif or sans.
    """
    colour = _pick(rng, ((20, 20, 20), (25, 45, 120), (140, 20, 30), (20, 90, 60), (60, 60, 60)))
    shape = int(rng.integers(5))
    d = cv.draw
    if shape == 0:
        d.ellipse([x, y, x + size, y + size], fill=colour)
        d.text((x + size / 2, y + size / 2), name[0], font=_font(SERIF, int(size * 0.6), 700),
               fill=(255, 255, 255), anchor="mm")
    elif shape == 1:
        d.polygon([(x + size / 2, y), (x + size, y + size), (x, y + size)], fill=colour)
    elif shape == 2:
        for i in range(3):
            o = i * size * 0.18
            d.rectangle([x + o, y + o, x + o + size * 0.6, y + o + size * 0.6], outline=colour, width=cv.lw * 2)
    elif shape == 3:
        d.rectangle([x, y, x + size, y + size], fill=colour)
        d.text((x + size / 2, y + size / 2), "".join(w[0] for w in name.split()[:2]),
               font=_font(SANS, int(size * 0.45), 800), fill=(255, 255, 255), anchor="mm")
    else:
        d.polygon([(x + size / 2, y), (x + size, y + size / 2), (x + size / 2, y + size), (x, y + size / 2)],
                  outline=colour, width=cv.lw * 2)
        d.ellipse([x + size * 0.35, y + size * 0.35, x + size * 0.65, y + size * 0.65], fill=colour)
    f = _font(_pick(rng, (SERIF, SANS)), int(size * rng.uniform(0.38, 0.5)), int(rng.choice([600, 700, 800])))
    label = name.upper() if rng.random() < 0.5 else name
    if script:  # the same draws from rng either way
        f, label = _font(script, int(f.size * 1.35)), name
    d.text((x + size * 1.25, y + size * 0.5), label, font=f, fill=colour, anchor="lm")
    return float(size)


# --------------------------------------------------------------------------------------------------------------
# Signatures


class _Signatures:
    """Draws signature specimens from a corpus and places them on canvases as ink."""

    def __init__(self, corpus: Corpus) -> None:
        self.corpus = corpus
        self._cache: dict[Path, np.ndarray] = {}
        self._bad: set[Path] = set()

    def pick(self, rng: np.random.Generator, forged_p: float, exclude: Sequence[str] = ()) -> _SigSource:
        """Draw a writer (not in ``exclude`` when possible), genuine or forged, and one of its usable images.

        Raises:
            InputError: 50 draws in a row found only unreadable or blank images.
        """
        writers = [w for w in self.corpus.writers if w not in exclude] or self.corpus.writers
        for _ in range(50):
            writer = str(_pick(rng, writers))
            ws = self.corpus[writer]
            genuine = not (ws.forged and rng.random() < forged_p)
            path = Path(_pick(rng, ws.genuine if genuine else ws.forged))
            if self.usable(path):
                try:
                    rel = path.relative_to(self.corpus.root).as_posix()
                except ValueError:
                    rel = path.as_posix()
                return _SigSource(writer, genuine, path, rel)
        raise InputError(f"no usable signature image found in {self.corpus.root} (all blank or unreadable?)")

    def usable(self, path: Path) -> bool:
        """Whether ``path`` decodes and holds ink; a bad image is logged once and then skipped."""
        if path in self._bad:
            return False
        try:
            self.alpha(path)
        except InputError as e:
            log.warning("skipping signature image: %s", e)
            self._bad.add(path)
            return False
        return True

    def alpha(self, path: Path) -> np.ndarray:
        if path not in self._cache:
            try:
                self._cache[path] = ink_alpha(read_gray(path))
            except InputError as e:
                raise InputError(f"{e}: {path}") from e
        return self._cache[path]

    def place(self, cv: _Canvas, rng: np.random.Generator, src: _SigSource, x: float, baseline: float,
              width_in: tuple[float, float], max_h_in: float, max_w_px: float | None = None,
              room: float | None = None) -> None:
        """Put a signature with its left edge near ``x`` and its bottom near ``baseline`` (page pixels).

        Args:
            cv: the page.
            rng: random state.
            src: the specimen to place.
            x: left edge of the ink (pixels).
            baseline: the signature line; the ink bottom lands slightly below or above it.
            width_in: range of the ink width in inches.
            max_h_in: maximum ink height in inches.
            max_w_px: maximum ink width in pixels (the space available).
            room: free height above the baseline (pixels); a short signature may float up into it.
        """
        a = self.alpha(src.path)
        h0, w0 = a.shape
        tw = cv.dpi * rng.uniform(*width_in)
        if max_w_px is not None:
            tw = min(tw, max_w_px)
        scale = min(tw / w0, cv.dpi * max_h_in / h0)
        nw, nh = max(4, int(round(w0 * scale))), max(4, int(round(h0 * scale)))
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        a = cv2.resize(a, (nw, nh), interpolation=interp)
        a = _rotate_alpha(a, rng.normal(0, 2.5), rng.normal(0, 0.05))
        a = _crop_alpha(a, margin=1)
        if rng.random() < 0.3:  # pen pressure / dry pen: slightly lighter strokes
            a = a * rng.uniform(0.75, 0.95)
        h, w = a.shape
        bottom = baseline + h * rng.uniform(-0.05, 0.2)
        if room is not None and room > h:
            bottom -= rng.uniform(0.0, 0.5) * (room - h)
        top = bottom - h
        xi, yi = cv.add_ink(a, x, top, _ink_colour(rng), 1.0)
        ys, xs = np.nonzero(a > 0.25)
        if ys.size == 0:
            return
        pts = np.stack([xs, ys], axis=1).astype(np.int32)
        hull = cv2.convexHull(pts).reshape(-1, 2).astype(np.float64) + (xi, yi)
        cv.placed.append(_Placed(cv.page, hull, src.writer, src.genuine, src.rel))


class QueuedSignatures(_Signatures):
    """A :class:`_Signatures` that places given specimens in order (then random ones once the queue is empty).

    Used to render chosen signatures inside documents (e.g. the verifier's document views of its training images).
    """

    def __init__(self, corpus: Corpus, queue: Sequence[tuple[str, bool, Path]]) -> None:
        super().__init__(corpus)
        self.queue = list(reversed(queue))  # (writer, genuine, path), popped from the end

    def pick(self, rng: np.random.Generator, forged_p: float, exclude: Sequence[str] = ()) -> _SigSource:
        while self.queue:
            writer, genuine, path = self.queue.pop()
            if self.usable(path):
                return _SigSource(writer, genuine, path, path.relative_to(self.corpus.root).as_posix())
        return super().pick(rng, forged_p, exclude)


# --------------------------------------------------------------------------------------------------------------
# Document layouts


@dataclass
class _DocContext:
    rng: np.random.Generator
    dpi: int
    sigs: _Signatures
    opts: SynthOptions
    signers: list[_SigSource] = field(default_factory=list)

    def signer(self) -> _SigSource:
        s = self.sigs.pick(self.rng, self.opts.forged, exclude=[x.writer for x in self.signers])
        self.signers.append(s)
        return s


def _hand(cv: _Canvas, rng: np.random.Generator, text: str, x: float, y_base: float, size_pt: float,
          colour: tuple[int, int, int] | None = None, max_w: float | None = None) -> None:
    """Queue handwritten ``text`` with its left edge at ``x`` and its bottom near ``y_base``."""
    a = _hand_alpha(rng, text, cv.pt(size_pt))
    if max_w is not None and a.shape[1] > max_w > 8:
        s = max_w / a.shape[1]
        a = cv2.resize(a, (int(max_w), max(2, int(a.shape[0] * s))), interpolation=cv2.INTER_AREA)
    cv.add_ink(a, x, y_base - a.shape[0] * 0.85, colour or _ink_colour(rng))


def _paper_marks(cv: _Canvas, rng: np.random.Generator, avoid_y: tuple[float, float] | None = None) -> None:
    """Occasional margin notes, initials, ticks and stamps (hard negatives) away from ``avoid_y``."""
    def free(y: float, h: float) -> bool:
        return avoid_y is None or y + h < avoid_y[0] or y > avoid_y[1]

    if rng.random() < 0.35:  # stamp
        a = _stamp_alpha(rng, cv.dpi)
        y = rng.uniform(0.03, 0.5) * cv.h if rng.random() < 0.6 else rng.uniform(0.75, 0.93) * cv.h
        if free(y, a.shape[0]):
            cv.add_ink(a, rng.uniform(0.05, 0.95) * cv.w - a.shape[1] / 2, y, _ink_colour(rng, "stamp"),
                       rng.uniform(0.6, 0.9))
    for _ in range(int(rng.choice([0, 0, 1, 1, 2, 3]))):  # handwritten notes and marks
        y = rng.uniform(0.04, 0.95) * cv.h
        if not free(y - cv.px(0.4), cv.px(0.5)):
            continue
        r = rng.random()
        if r < 0.45:
            text = str(_pick(rng, NOTES)) if rng.random() < 0.6 else _hand_date(rng)
            if rng.random() < 0.3:
                text += f" {_pick(rng, 'ABCDEFGHJKLMPRSTW')}{_pick(rng, 'ABCDEFGHJKLMPRSTW')}"
            _hand(cv, rng, text, rng.uniform(0.03, 0.75) * cv.w, y, rng.uniform(13, 22))
        elif r < 0.65:
            _hand(cv, rng, f"{_pick(rng, 'ABCDEFGHJKLMPRSTW')}.{_pick(rng, 'ABCDEFGHJKLMPRSTW')}.",
                  rng.uniform(0.05, 0.9) * cv.w, y, rng.uniform(14, 22))
        else:  # a tick, arrow, cross or dash in a margin
            kind = str(_pick(rng, ("check", "check", "underline", "arrow", "cross")))
            a = _stroke_alpha(rng, kind, cv.pt(rng.uniform(10, 18)), max(1, cv.lw + int(rng.integers(0, 2))))
            x = rng.uniform(0.01, 0.06) * cv.w if rng.random() < 0.6 else rng.uniform(0.88, 0.95) * cv.w
            cv.add_ink(a, x, y, _ink_colour(rng))


@dataclass
class _TextStyle:
    font: ImageFont.FreeTypeFont
    size: int
    line: int
    typewriter: bool
    pitch: float
    font_name: str = SERIF
    weight: int = 400

    @classmethod
    def body(cls, dpi: int, rng: np.random.Generator) -> _TextStyle:
        typewriter = rng.random() < 0.4
        if typewriter:
            size = int(round(dpi * rng.uniform(10.5, 12) / 72))
            weight = int(rng.integers(450, 600))
            font = _font(SERIF, size, weight)
            return cls(font, size, int(size * rng.uniform(1.15, 1.45)), True, size * rng.uniform(0.6, 0.66),
                       SERIF, weight)
        size = int(round(dpi * rng.uniform(10, 12) / 72))
        name = str(_pick(rng, (SERIF, SERIF, SANS)))
        return cls(_font(name, size, 400), size, int(size * rng.uniform(1.2, 1.5)), False, 0.0, name, 400)

    def write(self, cv: _Canvas, x: float, y: float, s: str, fill: tuple[int, int, int] = (20, 20, 20)) -> None:
        if self.typewriter:
            cv.typed(x, y, s, self.font_name, self.size, self.weight, self.pitch, fill)
        else:
            cv.text(x, y, s, self.font, fill)

    def width(self, s: str) -> float:
        return len(s) * self.pitch if self.typewriter else float(self.font.getlength(s))

    def wrap(self, text: str, width: float) -> list[str]:
        if self.typewriter:
            return textwrap.wrap(text, max(10, int(width / self.pitch)))
        lines: list[str] = []
        cur = ""
        for word in text.split():
            trial = f"{cur} {word}" if cur else word
            if cur and self.font.getlength(trial) > width:
                lines.append(cur)
                cur = word
            else:
                cur = trial
        if cur:
            lines.append(cur)
        return lines

    def paragraph(self, cv: _Canvas, x: float, y: float, width: float, text: str, y_max: float,
                  indent: float = 0.0) -> float:
        """Write wrapped text from y down, stopping at ``y_max``; returns the y below the last line."""
        for i, ln in enumerate(self.wrap(text, width - indent)):
            if y + self.line > y_max:
                break
            self.write(cv, x + (indent if i == 0 else 0), y, ln)
            y += self.line
        return y


def _page_size(rng: np.random.Generator, dpi: int) -> tuple[int, int]:
    w, h = PAGE_SIZES[str(_pick(rng, ("a4", "letter")))]
    return int(round(w * dpi)), int(round(h * dpi))


def _signing_block(cv: _Canvas, ctx: _DocContext, st: _TextStyle, x: float, y: float, signed: bool,
                   name: str, title: str, closing: str | None, line: bool) -> float:
    """A letter's closing: ``closing``, space to sign, optional line, typed name and title; returns y below it."""
    rng = ctx.rng
    if closing:
        st.write(cv, x, y, closing)
        y += st.line
    gap = cv.px(rng.uniform(0.75, 1.05))
    base = y + gap
    if line:
        cv.hline(x, x + cv.px(2.6), base)
    if signed:
        ctx.sigs.place(cv, rng, ctx.signer(), x + cv.px(rng.uniform(-0.15, 0.5)), base + cv.px(0.05),
                       SIGNATURE_WIDTH_IN["letter"], max_h_in=1.3, max_w_px=cv.w - x - cv.px(0.3), room=gap)
    y = base + cv.px(0.08)
    st.write(cv, x, y, name)
    y += st.line
    st.write(cv, x, y, title)
    return y + st.line


def _render_letter(ctx: _DocContext, n_pages: int, signed: bool) -> list[_Canvas]:
    rng, dpi = ctx.rng, ctx.dpi
    script = _script_font(ctx)
    size = _page_size(rng, dpi)
    company = _company(rng)
    recipient = f"{_pick(rng, ('Mr.', 'Ms.', 'Dr.', 'Mrs.'))} {_name(rng)}"
    date = _date_text(rng)
    signer_name, signer_title = _name(rng), str(_pick(rng, TITLES))
    two = signed and rng.random() < ctx.opts.two_signers
    pages = []
    margin = rng.uniform(0.8, 1.3)
    st = _TextStyle.body(dpi, rng)
    for p in range(n_pages):
        cv = _Canvas(size, dpi, p)
        left = cv.px(margin)
        right = cv.w - cv.px(rng.uniform(0.8, 1.2))
        bottom = cv.h - cv.px(rng.uniform(0.8, 1.1))
        y = float(cv.px(rng.uniform(0.5, 0.8)))
        if p == 0:  # letterhead
            lsize = cv.px(rng.uniform(0.45, 0.75))
            centred = rng.random() < 0.4
            lx = (cv.w - lsize * 5) / 2 if centred else left
            y += _logo(cv, rng, lx, y, lsize, company, script) + cv.px(0.1)
            street, city = f"{int(rng.integers(1, 999))} {_pick(rng, STREETS)}", str(_pick(rng, CITIES))
            addr = f"{street}  -  {city}  -  Telephone ({int(rng.integers(200, 999))}) " \
                   f"{int(rng.integers(200, 999))}-{int(rng.integers(1000, 9999))}"
            if script:  # "111 Fifth Avenue / New York 3, N.Y." in script, two lines
                for ln in (street, city):
                    cv.text(cv.w / 2 if centred else left, y, ln, _font(script, cv.pt(13)),
                            anchor="ma" if centred else "la")
                    y += cv.pt(13) * 1.5
            else:
                cv.text(cv.w / 2 if centred else left, y, addr, _font(SANS, cv.pt(7.5)),
                        anchor="ma" if centred else "la")
                y += cv.pt(7.5) * 1.6
            if rng.random() < 0.6:
                cv.hline(left, right, y, width=cv.lw * int(rng.integers(1, 3)))
            y += cv.px(rng.uniform(0.4, 0.8))
            dx = left if rng.random() < 0.5 else cv.w / 2
            st.write(cv, dx, y, date)
            y += st.line * 3
            for ln in (recipient, _company(rng), f"{int(rng.integers(1, 999))} {_pick(rng, STREETS)}",
                       str(_pick(rng, CITIES))):
                st.write(cv, left, y, ln)
                y += st.line
            y += st.line
            if rng.random() < 0.4:
                st.write(cv, left + cv.px(0.5), y, f"Re: {_pick(rng, OBJECTS).capitalize()}")
                y += st.line * 2
            st.write(cv, left, y, f"Dear {recipient.split()[0]} {recipient.split()[-1]}:")
            y += st.line * 2
        else:  # continuation header
            for ln in (recipient, date, f"Page {p + 1}"):
                st.write(cv, left, y, ln)
                y += st.line
            y += st.line * 2
        last = p == n_pages - 1
        indent = cv.px(0.5) if rng.random() < 0.5 else 0.0
        closing_h = st.line * 5 + cv.px(1.1)
        n_par = int(rng.integers(1, 4)) if last else 99
        limit = bottom - (closing_h if last else 0)
        for _ in range(n_par):
            if y + st.line * 2 > limit:
                break
            y = st.paragraph(cv, left, y, right - left, _paragraph_text(rng), limit, indent) + st.line
        if last:
            y = min(y, bottom - closing_h)
            sig_top = y
            if two:  # "Sincerely," then two signing blocks side by side
                st.write(cv, left, y, str(_pick(rng, ("Sincerely,", "Very truly yours,", "Sincerely yours,"))))
                y += st.line
                _signing_block(cv, ctx, st, cv.w * 0.55, y, True, _name(rng), str(_pick(rng, TITLES)), None,
                               True)
                y = _signing_block(cv, ctx, st, left, y, True, signer_name, signer_title, None, True)
            else:
                cx = left if rng.random() < 0.45 else cv.w * rng.uniform(0.45, 0.55)
                closing = str(_pick(rng, ("Sincerely,", "Sincerely yours,", "Very truly yours,",
                                          "Yours sincerely,", "Best regards,", "Cordially,")))
                y = _signing_block(cv, ctx, st, cx, y, signed, signer_name, signer_title, closing,
                                   rng.random() < 0.15)
            sig_bottom = y
            y += st.line
            if rng.random() < 0.6:
                st.write(cv, left, y, f"{''.join(w[0] for w in signer_name.split()[::2])}:"
                         f"{_pick(rng, ('mk', 'js', 'bt', 'lr', 'dw'))}")
                y += st.line
            if rng.random() < 0.5 and y + st.line * 3 < cv.h - cv.px(0.5):
                st.write(cv, left, y, "cc:")
                for _ in range(int(rng.integers(1, 4))):
                    if y + st.line > cv.h - cv.px(0.4):
                        break
                    st.write(cv, left + cv.px(0.5), y, _name(rng))
                    y += st.line
            _paper_marks(cv, rng, avoid_y=(sig_top - cv.px(0.3), sig_bottom))
        else:
            _paper_marks(cv, rng)
        if rng.random() < 0.3:  # Bates-style footer of document archives
            cv.text(cv.w - cv.px(0.6), cv.h - cv.px(0.45), str(int(rng.integers(10**7, 10**9))),
                    _font(SANS, cv.pt(9), 700), anchor="ra")
        pages.append(cv)
    return pages


def _render_contract(ctx: _DocContext, n_pages: int, signed: bool) -> list[_Canvas]:
    rng, dpi = ctx.rng, ctx.dpi
    size = _page_size(rng, dpi)
    parties = (_company(rng), _company(rng))
    title = str(_pick(rng, ("SERVICE AGREEMENT", "CONSULTING AGREEMENT", "LEASE AGREEMENT", "SUPPLY CONTRACT",
                            "MEMORANDUM OF UNDERSTANDING", "CONFIDENTIALITY AGREEMENT", "LICENSE AGREEMENT")))
    pages = []
    clause = 1
    st = _TextStyle.body(dpi, rng)
    for p in range(n_pages):
        cv = _Canvas(size, dpi, p)
        left, right = cv.px(rng.uniform(0.9, 1.2)), cv.w - cv.px(rng.uniform(0.9, 1.2))
        bottom = cv.h - cv.px(1.0)
        y = float(cv.px(rng.uniform(0.7, 1.0)))
        bold = _font(SERIF, int(st.size * 1.0), 700)
        if p == 0:
            cv.text(cv.w / 2, y, title, _font(SERIF, int(st.size * 1.5), 700), anchor="ma")
            y += st.size * 3
            pre = (f"This {title.title()} (the \"Agreement\") is made and entered into as of {_date_text(rng)}, by "
                   f"and between {parties[0]} (\"the Company\") and {parties[1]} (\"the Contractor\"). "
                   + _legal_text(rng))
            y = st.paragraph(cv, left, y, right - left, pre, bottom) + st.line
        last = p == n_pages - 1
        block_h = cv.px(2.6)
        limit = bottom - (block_h + st.line * 4 if last else 0)
        n_cl = int(rng.integers(1, 3)) if last else 99
        for _ in range(n_cl):
            if y + st.line * 3 > limit:
                break
            head = f"{clause}. {_pick(rng, CLAUSES)}."
            cv.text(left, y, head, bold)
            indent = bold.getlength(head) + st.size * 0.8
            if st.typewriter:
                indent = math.ceil(indent / st.pitch) * st.pitch
            y = st.paragraph(cv, left, y, right - left, _legal_text(rng), limit, indent) + st.line
            clause += 1
        if not last and rng.random() < 0.6:  # initials at the foot of each page: hard negatives
            fy = cv.h - cv.px(0.7)
            st.write(cv, right - cv.px(2.4), fy, "Initials:")
            for k in range(2):
                x0 = right - cv.px(1.3) + k * cv.px(0.65)
                cv.hline(x0, x0 + cv.px(0.55), fy + st.size)
                if rng.random() < 0.8:
                    ini = f"{_pick(rng, 'ABCDEFGHJKLMPRSTW')}{_pick(rng, 'ABCDEFGHJKLMPRSTW')}"
                    _hand(cv, rng, ini, x0 + cv.px(0.05), fy + st.size, rng.uniform(13, 18), max_w=cv.px(0.6))
        if last:
            y = min(y, limit) + st.line
            y = st.paragraph(cv, left, y, right - left,
                             "IN WITNESS WHEREOF, the Parties have executed this Agreement as of the date first "
                             "written above.", bottom) + st.line
            y_top = y
            side = rng.random() < 0.7
            col_w = (right - left) / 2 if side else right - left
            n_block = 2 if rng.random() < 0.85 else 1
            for b in range(n_block):
                bx = left + (b * col_w if side else 0)
                by = y_top if side else y_top + b * cv.px(1.9)
                if by + cv.px(1.9) > cv.h - cv.px(0.3):
                    break
                cv.text(bx, by, parties[b].upper() if rng.random() < 0.5 else parties[b], bold)
                base = by + cv.px(rng.uniform(0.85, 1.05))
                st.write(cv, bx, base - st.size, "By:")
                lx = bx + st.width("By: ") + cv.px(0.05)
                line_w = min(col_w - (lx - bx) - cv.px(0.35), cv.px(3.2))
                cv.hline(lx, lx + line_w, base)
                if signed and (b == 0 or rng.random() < 0.85):
                    ctx.sigs.place(cv, rng, ctx.signer(), lx + cv.px(rng.uniform(0.0, 0.4)), base + cv.px(0.04),
                                   SIGNATURE_WIDTH_IN["contract"], max_h_in=1.1, max_w_px=line_w + cv.px(0.3),
                                   room=base - by - st.size * 1.3)
                ny = base + st.line * 0.6
                name = _name(rng)
                for lab, val in (("Name:", name), ("Title:", str(_pick(rng, TITLES))), ("Date:", None)):
                    st.write(cv, bx, ny, lab)
                    vx = bx + max(st.width(t) for t in ("Name: ", "Title: ", "Date: ")) + cv.px(0.05)
                    if val is not None and rng.random() < 0.75:
                        st.write(cv, vx, ny, val)
                    elif val is not None:  # hand-printed name: hard negative
                        cv.hline(vx, vx + cv.px(2.0), ny + st.size * 1.05)
                        _hand(cv, rng, val, vx + cv.px(0.05), ny + st.size, rng.uniform(12, 15),
                              max_w=cv.px(2.0))
                    else:
                        cv.hline(vx, vx + cv.px(1.6), ny + st.size * 1.05)
                        if signed:
                            _hand(cv, rng, _hand_date(rng), vx + cv.px(0.1), ny + st.size, rng.uniform(12, 16))
                    ny += st.line * 1.1
            if rng.random() < 0.25:  # notary/company seal, possibly over a signature
                a = _stamp_alpha(rng, dpi)
                cv.add_ink(a, rng.uniform(0.1, 0.7) * cv.w, y_top + rng.uniform(0.0, 0.4) * cv.px(1.5),
                           _ink_colour(rng, "stamp"), rng.uniform(0.55, 0.85))
        cv.text(cv.w / 2, cv.h - cv.px(0.5), f"Page {p + 1} of {n_pages}", _font(SANS, cv.pt(8)), anchor="ma")
        if not last:
            _paper_marks(cv, rng)
        pages.append(cv)
    return pages


def _render_form(ctx: _DocContext, n_pages: int, signed: bool) -> list[_Canvas]:
    rng, dpi = ctx.rng, ctx.dpi
    script = _script_font(ctx)
    size = _page_size(rng, dpi)
    org = _company(rng)
    title = str(_pick(rng, FORM_TITLES))
    shade = _pick(rng, ((235, 235, 235), (225, 232, 245), (245, 238, 220), (255, 255, 255)))
    lab_font = _font(SANS, max(8, int(dpi * 0.085)), 400)
    pages = []
    sec = 0
    sections = iter(rng.permutation(len(SECTIONS)).tolist())
    for p in range(n_pages):
        cv = _Canvas(size, dpi, p)
        left, right = cv.px(0.6), cv.w - cv.px(0.6)
        y = float(cv.px(0.5))
        if p == 0:
            lsize = cv.px(0.5)
            _logo(cv, rng, left, y, lsize, org, script)
            cv.text(right, y, f"Form {int(rng.integers(1, 99))}-{_pick(rng, 'ABCDK')} (rev. "
                    f"{int(rng.integers(1, 13))}/{int(rng.integers(1985, 2024))})", _font(SANS, cv.pt(7)),
                    anchor="ra")
            y += lsize + cv.px(0.25)
            cv.text(cv.w / 2, y, title, _font(SANS, cv.pt(15), 800), anchor="ma")
            y += cv.pt(15) * 1.8
            cv.text(left, y, "Please print clearly in ink. Complete all sections.", _font(SANS, cv.pt(8), 400))
            y += cv.pt(8) * 2
        last = p == n_pages - 1
        sig_h = (cv.px(1.4) * 2 + cv.px(1.0)) if last else cv.px(0.6)
        while y + cv.px(1.6) < cv.h - cv.px(0.8) - sig_h:
            sec += 1
            cv.rect(left, y, right, y + cv.pt(11) * 1.5, fill=shade, outline=(30, 30, 30))
            cv.text(left + cv.px(0.08), y + cv.pt(11) * 0.2,
                    f"SECTION {sec}. {SECTIONS[next(sections, 0)]}",
                    _font(SANS, cv.pt(9), 700))
            y += cv.pt(11) * 1.5
            rows = int(rng.integers(2, 5))
            if rng.random() < 0.3:  # a ruled table
                cols = [0.0, 0.15, 0.6, 0.8, 1.0]
                rh = cv.px(0.32)
                for r in range(rows + 2):
                    cv.hline(left, right, y + r * rh)
                for c in cols:
                    xx = left + c * (right - left)
                    cv.draw.line([(xx, y), (xx, y + (rows + 1) * rh)], fill=(30, 30, 30), width=cv.lw)
                for c, lab in zip(cols[:-1], ("Qty", "Description", "Unit price", "Total"), strict=True):
                    cv.text(left + c * (right - left) + cv.px(0.05), y + cv.px(0.07), lab, lab_font)
                for r in range(1, rows + 1):
                    if rng.random() < 0.7:
                        yy = y + (r + 1) * rh - cv.px(0.05)
                        _hand(cv, rng, str(int(rng.integers(1, 20))), left + cv.px(0.15), yy, 13)
                        _hand(cv, rng, str(_pick(rng, OBJECTS)).split(" the ")[-1][:24],
                              left + 0.15 * (right - left) + cv.px(0.1), yy, 13, max_w=0.44 * (right - left))
                        _hand(cv, rng, _field_value(rng, "amount"), left + 0.8 * (right - left) + cv.px(0.1), yy,
                              13, max_w=0.19 * (right - left))
                y += (rows + 1) * rh + cv.px(0.2)
                continue
            fields = iter(rng.permutation(len(FIELDS)).tolist())
            for _ in range(rows):
                n = int(rng.integers(1, 4))
                edges = np.sort(rng.uniform(0.25, 0.75, n - 1)) if n > 1 else np.array([])
                xs = [left] + [left + e * (right - left) for e in edges] + [right]
                rh = cv.px(rng.uniform(0.45, 0.55))
                for i in range(n):
                    cv.rect(xs[i], y, xs[i + 1], y + rh)
                    lab, kind = FIELDS[next(fields, 0)]
                    cv.text(xs[i] + cv.px(0.05), y + cv.px(0.03), lab, lab_font)
                    if rng.random() < 0.85:
                        _hand(cv, rng, _field_value(rng, kind), xs[i] + cv.px(0.12), y + rh - cv.px(0.06),
                              rng.uniform(12, 16), max_w=xs[i + 1] - xs[i] - cv.px(0.2))
                y += rh
            if rng.random() < 0.5:  # yes/no tick boxes
                y += cv.px(0.1)
                q = str(_pick(rng, ("Have you been employed here before?", "Is this a change of address?",
                                    "Receipts attached?", "Do you agree to the terms?")))
                cv.text(left, y, q, lab_font)
                bx = left + lab_font.getlength(q) + cv.px(0.3)
                ticked = int(rng.integers(2))
                for k, lab in enumerate(("Yes", "No")):
                    x0 = bx + k * cv.px(0.9)
                    s = cv.px(0.16)
                    cv.rect(x0, y, x0 + s, y + s)
                    cv.text(x0 + s + cv.px(0.08), y, lab, lab_font)
                    if k == ticked:
                        a = _stroke_alpha(rng, str(_pick(rng, ("check", "cross"))), int(s * 0.6), cv.lw + 1)
                        cv.add_ink(a, x0 - s * 0.1, y - s * 0.3, _ink_colour(rng))
                y += cv.px(0.35)
            y += cv.px(0.2)
        if last:
            st = _TextStyle(lab_font, int(lab_font.size), int(lab_font.size * 1.4), False, 0.0)
            decl = ("I certify that the information given on this form is true and complete to the best of my "
                    "knowledge. " + _legal_text(rng))
            y = st.paragraph(cv, left, y, right - left, decl, y + st.line * 4) + cv.px(0.1)
            boxes = 2 if rng.random() < 0.4 else 1
            for b in range(boxes):
                bh = cv.px(rng.uniform(0.95, 1.25))
                if y + bh > cv.h - cv.px(0.5):
                    break
                split = left + (right - left) * rng.uniform(0.6, 0.72)
                cv.rect(left, y, split, y + bh)
                cv.rect(split, y, right, y + bh)
                cv.text(left + cv.px(0.05), y + cv.px(0.03),
                        ("Signature of applicant", "Signature of witness / authorized officer")[b], lab_font)
                cv.text(split + cv.px(0.05), y + cv.px(0.03), "Date", lab_font)
                if signed and (b == 0 or rng.random() < 0.8):
                    ctx.sigs.place(cv, rng, ctx.signer(), left + cv.px(rng.uniform(0.2, 0.8)), y + bh - cv.px(0.08),
                                   SIGNATURE_WIDTH_IN["form"], max_h_in=bh / dpi - 0.15,
                                   max_w_px=split - left - cv.px(1.0), room=bh - cv.px(0.2))
                    _hand(cv, rng, _hand_date(rng), split + cv.px(0.15), y + bh - cv.px(0.15), rng.uniform(12, 16),
                          max_w=right - split - cv.px(0.3))
                y += bh + cv.px(0.15)
        cv.text(cv.w / 2, cv.h - cv.px(0.4), f"Page {p + 1} of {n_pages}", _font(SANS, cv.pt(7)), anchor="ma")
        pages.append(cv)
    return pages


def _guilloche(cv: _Canvas, rng: np.random.Generator, colour: tuple[int, int, int]) -> None:
    """Security background of a cheque: fine wavy lines in a pale colour."""
    xs = np.linspace(0, cv.w, 160)
    f1, f2 = rng.uniform(2, 6), rng.uniform(8, 16)
    ph = rng.uniform(0, 2 * np.pi)
    for k in range(0, cv.h + cv.px(0.3), max(3, cv.px(0.06))):
        ys = k + cv.px(0.1) * np.sin(xs / cv.w * 2 * np.pi * f1 + ph + k * 0.05) \
            + cv.px(0.03) * np.sin(xs / cv.w * 2 * np.pi * f2 + k * 0.11)
        cv.draw.line(list(zip(xs.tolist(), ys.tolist(), strict=True)), fill=colour, width=1)


SECURITY_PATTERNS = ("guilloche", "pantograph", "microprint", "emblem")
SECURITY_TINTS = ((40, 90, 170), (30, 130, 90), (170, 60, 90), (120, 80, 40), (110, 60, 150), (60, 120, 150))


def _security_background(cv: _Canvas, rng: np.random.Generator, bg: tuple[int, int, int]) -> str:
    """A strong security background over the whole cheque, as printed on real cheque stock.

    Its darkness (the share of a saturated tint mixed into the paper) is 0.12 to 0.45: from what a bank's
    scanner keeps faintly to a pattern as dark as a light pencil. Returns the pattern's name.
    """
    kind = _pick(rng, SECURITY_PATTERNS)
    tint = _pick(rng, SECURITY_TINTS)
    s = float(rng.uniform(0.12, 0.45))
    colour = tuple(int(round(c * (1 - s) + t * s)) for c, t in zip(bg, tint, strict=True))
    width = max(1, int(round(cv.lw * rng.uniform(0.6, 1.4))))
    if kind == "guilloche":  # two families of crossing waves, denser and darker than the plain one
        xs = np.linspace(0, cv.w, 240)
        step = max(3, cv.px(rng.uniform(0.03, 0.07)))
        for fam in range(2):
            f1, f2, ph = rng.uniform(1.5, 6), rng.uniform(8, 20), rng.uniform(0, 2 * np.pi)
            amp = cv.px(rng.uniform(0.05, 0.25))
            sign = 1 if fam == 0 else -1
            for k in range(-cv.px(0.5), cv.h + cv.px(0.5), step):
                ys = k + sign * amp * np.sin(xs / cv.w * 2 * np.pi * f1 + ph + k * 0.04) \
                    + cv.px(0.03) * np.sin(xs / cv.w * 2 * np.pi * f2 + k * 0.09)
                cv.draw.line(list(zip(xs.tolist(), ys.tolist(), strict=True)), fill=colour, width=width)
    elif kind == "pantograph":  # a dot screen whose dots are larger inside a hidden word
        pitch = max(3, cv.px(rng.uniform(0.025, 0.045)))
        mask = Image.new("L", (cv.w, cv.h), 0)
        word = str(_pick(rng, ("VOID", "COPY", "ORIGINAL", str(_pick(rng, BANKS)).split()[0].upper())))
        font = _font(SANS, max(8, int(cv.h * rng.uniform(0.25, 0.45))), 700)
        for yy in range(int(cv.h * 0.1), cv.h, int(cv.h * 0.5)):
            ImageDraw.Draw(mask).text((cv.w * rng.uniform(0.0, 0.3), yy), word, font=font, fill=255)
        inside = np.asarray(mask) > 0
        r_out, r_in = max(0.5, pitch * 0.18), max(1.0, pitch * 0.34)
        for y in range(pitch // 2, cv.h, pitch):
            for x in range((y // pitch % 2) * pitch // 2, cv.w, pitch):
                r = r_in if inside[y, x] else r_out
                cv.draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)
    elif kind == "microprint":  # rows of tiny repeated text
        size = max(4, cv.pt(rng.uniform(3, 4.5)))
        font = _font(SANS, size)
        phrase = (str(_pick(rng, BANKS)).upper() + " SECURITY PAPER  ") * 40
        for k, y in enumerate(range(0, cv.h, max(size + 1, int(size * rng.uniform(1.1, 1.6))))):
            cv.draw.text((-(k * size * 3) % (size * 20), y), phrase, font=font, fill=colour)
    else:  # emblem: concentric rosette rings and a tinted wash under the right half
        cx, cy = cv.w * rng.uniform(0.45, 0.8), cv.h * rng.uniform(0.35, 0.7)
        wash = tuple(int(round(c * (1 - s / 3) + t * s / 3)) for c, t in zip(bg, tint, strict=True))
        cv.draw.ellipse([cx - cv.h * 0.7, cy - cv.h * 0.7, cx + cv.h * 0.7, cy + cv.h * 0.7], fill=wash)
        petals, step = int(rng.integers(6, 14)), max(3, cv.px(rng.uniform(0.025, 0.05)))
        th = np.linspace(0, 2 * np.pi, 400)
        for r0 in range(step, int(cv.h * 0.65), step):
            rr = r0 * (1 + 0.12 * np.sin(petals * th + r0 * 0.05))
            pts = list(zip((cx + rr * np.cos(th)).tolist(), (cy + rr * np.sin(th)).tolist(), strict=True))
            cv.draw.line(pts, fill=colour, width=width)
    return kind


def _render_cheque(ctx: _DocContext, n_pages: int, signed: bool) -> list[_Canvas]:
    rng, dpi = ctx.rng, ctx.dpi
    script = _script_font(ctx)
    wi, hi = _pick(rng, CHEQUE_SIZES)
    cv = _Canvas((int(round(wi * dpi)), int(round(hi * dpi))), dpi, 0)
    bg = _pick(rng, ((232, 242, 236), (236, 240, 250), (250, 244, 228), (246, 246, 246), (240, 232, 244)))
    cv.draw.rectangle([0, 0, cv.w, cv.h], fill=bg)
    r, g, b = (int(c * rng.uniform(0.9, 0.95)) for c in bg)
    _guilloche(cv, rng, (r, g, b))
    if ctx.opts.security:  # from a generator of its own: the same cheque with and without the background
        sec = np.random.default_rng(rng.bit_generator.seed_seq.spawn(1)[0])  # type: ignore[attr-defined]
        if sec.random() < ctx.opts.security:
            _security_background(cv, sec, bg)
    ink = (25, 25, 30)
    small, mid = _font(SANS, cv.pt(7)), _font(SANS, cv.pt(8.5), 600)
    m = cv.px(0.25)
    cv.rect(cv.px(0.08), cv.px(0.08), cv.w - cv.px(0.08), cv.h - cv.px(0.08), outline=(90, 90, 100))
    person = rng.random() < 0.6
    payer = _name(rng).upper() if person else _company(rng).upper()
    if script and not person:  # a company's name in its script, not the account holder's
        cv.text(m, m - cv.pt(3), payer.title(), _font(script, cv.pt(13)), ink)
    else:
        cv.text(m, m, payer, mid, ink)
    cv.text(m, m + cv.pt(11), f"{int(rng.integers(1, 999))} {_pick(rng, STREETS)}", small, ink)
    cv.text(m, m + cv.pt(19), str(_pick(rng, CITIES)), small, ink)
    cv.text(cv.w - m, m, str(int(rng.integers(100, 9999))), _font(SANS, cv.pt(10), 700), ink, anchor="ra")
    bank = str(_pick(rng, BANKS))
    # date
    dy = cv.h * 0.27
    dx = cv.w * rng.uniform(0.58, 0.66)
    cv.text(dx, dy - cv.pt(8), "DATE", small, ink)
    cv.hline(dx + cv.px(0.4), dx + cv.px(1.6), dy)
    _hand(cv, rng, _hand_date(rng), dx + cv.px(0.5), dy - cv.px(0.02), rng.uniform(12, 16), max_w=cv.px(1.1))
    # payee and amount
    py = cv.h * rng.uniform(0.44, 0.48)
    cv.text(m, py - cv.pt(16), "PAY TO THE", small, ink)
    cv.text(m, py - cv.pt(8), "ORDER OF", small, ink)
    box_x = cv.w - m - cv.px(1.25)
    cv.hline(m + cv.px(0.75), box_x - cv.px(0.35), py)
    cv.text(box_x - cv.px(0.22), py - cv.pt(14), "$", _font(SANS, cv.pt(12), 700), ink)
    cv.rect(box_x, py - cv.px(0.3), cv.w - m, py + cv.px(0.02), outline=(60, 60, 70))
    dollars, cents = _amount(rng)
    _hand(cv, rng, _name(rng) if rng.random() < 0.6 else _company(rng), m + cv.px(0.9), py - cv.px(0.02),
          rng.uniform(13, 17), max_w=box_x - m - cv.px(1.4))
    _hand(cv, rng, f"{dollars:,}.{cents:02d}", box_x + cv.px(0.08), py - cv.px(0.03), rng.uniform(13, 17),
          max_w=cv.px(1.1))
    # amount in words
    wy = cv.h * rng.uniform(0.6, 0.63)
    cv.hline(m, cv.w - m - cv.px(0.9), wy)
    cv.text(cv.w - m - cv.px(0.85), wy - cv.pt(8), "DOLLARS", small, ink)
    words = f"{_words(dollars).capitalize()} and {cents:02d}/100"
    _hand(cv, rng, words, m + cv.px(0.1), wy - cv.px(0.02), rng.uniform(12, 15), max_w=cv.w - 2 * m - cv.px(1.1))
    # bank, memo, signature line
    by = cv.h * 0.68
    if script:
        cv.text(m, by - cv.pt(3), bank, _font(script, cv.pt(14)), ink)
    else:
        cv.text(m, by, bank, _font(SERIF, cv.pt(9), 700), ink)
    my = cv.h * 0.84
    cv.text(m, my - cv.pt(8), "MEMO", small, ink)
    cv.hline(m + cv.px(0.45), m + cv.px(2.2), my)
    if rng.random() < 0.6:
        _hand(cv, rng, str(_pick(rng, ("rent", "invoice 1043", "services", "deposit", "March", "dues", "refund"))),
              m + cv.px(0.55), my - cv.px(0.02), rng.uniform(12, 15), max_w=cv.px(1.6))
    two = signed and rng.random() < ctx.opts.two_signers
    sx0 = cv.w * rng.uniform(0.52, 0.58)
    sx1 = cv.w - m
    lines_y = [my] if not two else [cv.h * 0.72, cv.h * 0.87]
    for k, ly in enumerate(lines_y):
        cv.hline(sx0, sx1, ly)
        if rng.random() < 0.5:
            cv.text(sx1, ly + cv.pt(2), "AUTHORIZED SIGNATURE", _font(SANS, cv.pt(5.5)), ink, anchor="ra")
        if signed and (k == 0 or two):
            max_h = 0.9 if not two else 0.42
            ctx.sigs.place(cv, rng, ctx.signer(), sx0 + cv.px(rng.uniform(0.0, 0.3)), ly + cv.px(0.03),
                           SIGNATURE_WIDTH_IN["cheque"], max_h_in=max_h, max_w_px=sx1 - sx0,
                           room=ly - wy if k == 0 else None)
    micr = f"C{int(rng.integers(10**8, 10**9))}C A{int(rng.integers(10**8, 10**9))}A " \
           f"{int(rng.integers(10**7, 10**8))}C {int(rng.integers(100, 9999)):04d}"
    cv.typed(cv.w * 0.12, cv.h - cv.px(0.3), micr, SANS, cv.pt(11), 500, cv.pt(11) * 0.65, ink)
    return [cv]


_RENDERERS: dict[str, Callable[[_DocContext, int, bool], list[_Canvas]]] = {
    "cheque": _render_cheque,
    "letter": _render_letter,
    "contract": _render_contract,
    "form": _render_form,
}
_PAGE_COUNTS: dict[str, tuple[tuple[int, ...], tuple[float, ...]]] = {
    "cheque": ((1,), (1.0,)),
    "letter": ((1, 2, 3), (0.55, 0.3, 0.15)),
    "contract": ((1, 2, 3), (0.2, 0.4, 0.4)),
    "form": ((1, 2), (0.7, 0.3)),
}


# --------------------------------------------------------------------------------------------------------------
# Scanning


@dataclass(frozen=True)
class ScanProfile:
    """How one document was scanned (the same scanner for all its pages).

    Attributes:
        mode: ``rgb``, ``gray`` or ``binary`` (1-bit).
        paper: RGB paper tint multiplied onto the page.
        skew: maximum skew in degrees (each page draws its own angle in ``[-skew, skew]``).
        blur: Gaussian blur sigma in pixels (0 = none).
        noise: Gaussian noise sigma in grey levels.
        specks: number of dust specks per page.
        jpeg: quality of a JPEG round trip inside the scanner (None = none).
        threshold: grey threshold of the ``binary`` mode.
        coarse: resample factor simulating a low-resolution scan (1.0 = none).
        band: thickness (fraction of the short side) of a dark scanner-lid band along one edge (0 = none); the
            corners uncovered by the skew are then dark too.
    """

    mode: str = "gray"
    paper: tuple[int, int, int] = (255, 255, 255)
    skew: float = 0.0
    blur: float = 0.0
    noise: float = 0.0
    specks: int = 0
    jpeg: int | None = None
    threshold: int = 170
    coarse: float = 1.0
    band: float = 0.0


def random_profile(rng: np.random.Generator, kind: str) -> ScanProfile:
    """Draw a plausible scanner setup for a document of type ``kind``."""
    r = rng.random()
    if kind == "cheque":
        mode = "rgb" if r < 0.6 else ("gray" if r < 0.92 else "binary")
    else:
        mode = "binary" if r < 0.3 else ("gray" if r < 0.75 else "rgb")
    grey_paper = rng.random() < 0.2
    if grey_paper:
        v = int(rng.integers(205, 235))
        paper = (v, v, max(0, v - int(rng.integers(0, 12))))
    else:
        v = int(rng.integers(240, 256))
        paper = (v, v, max(0, v - int(rng.integers(0, 8))))
    return ScanProfile(
        mode=mode,
        paper=paper,
        skew=float(rng.uniform(0.0, 1.5)),
        blur=float(rng.choice([0.0, rng.uniform(0.4, 1.1)])),
        noise=float(rng.uniform(1.0, 7.0)),
        specks=int(rng.choice([0, 0, int(rng.integers(20, 400))])),
        jpeg=int(rng.integers(45, 90)) if rng.random() < 0.35 else None,
        threshold=int(min(200, np.dot(paper, (0.299, 0.587, 0.114)) - 40 - rng.integers(0, 30))),
        coarse=float(rng.choice([1.0, 1.0, rng.uniform(1.3, 2.0)])) if mode == "binary" else 1.0,
        band=float(rng.uniform(0.005, 0.05)) if rng.random() < 0.12 else 0.0,
    )


def compact_profile(profile: ScanProfile, fmt: str) -> ScanProfile:
    """A variant of ``profile`` whose pages compress well in format ``fmt`` (for small bundled examples)."""
    if fmt in ("png", "tiff"):
        return replace(profile, mode="binary", noise=min(profile.noise, 3.0), specks=min(profile.specks, 40),
                       jpeg=None, coarse=1.0, band=0.0)
    return replace(profile, noise=min(profile.noise, 1.5), specks=min(profile.specks, 40), band=0.0)


def scan_page(page: np.ndarray, profile: ScanProfile, rng: np.random.Generator) -> tuple[Image.Image, np.ndarray]:
    """Simulate scanning one rendered page.

    Args:
        page: ``(H, W, 3)`` uint8 RGB clean page.
        profile: the scanner setup.
        rng: random state (skew angle, offset, noise, specks).

    Returns:
        The scanned page as a PIL image of the same size (mode ``RGB``, ``L`` or ``1``), and the ``(2, 3)`` float64
        affine matrix mapping clean-page pixel coordinates ``(x, y)`` to scanned-page coordinates.
    """
    h, w = page.shape[:2]
    img = page
    if profile.mode != "rgb":
        img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        paper: Any = float(np.dot(profile.paper, (0.299, 0.587, 0.114)))
        img = cv2.multiply(img, np.full_like(img, 255), scale=paper / 255 / 255)
    else:
        paper = tuple(float(c) for c in profile.paper)
        img = (img.astype(np.float32) * (np.asarray(profile.paper, np.float32) / 255.0)).astype(np.uint8)
    angle = rng.uniform(-profile.skew, profile.skew)
    shift = rng.normal(0, 0.02 * min(h, w), size=2) if profile.skew > 0 else np.zeros(2)
    mat = np.asarray(cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0), np.float64)
    mat[:, 2] += shift
    if profile.skew > 0:
        border = (20.0 if img.ndim == 2 else (20.0, 20.0, 20.0)) if profile.band > 0 else paper
        img = cv2.warpAffine(img, mat, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                             borderValue=border)
    if profile.band > 0:  # dark band of the scanner lid along one edge, with a ragged inner border
        t = max(2, int(profile.band * min(h, w)))
        side = int(rng.integers(4))
        along = w if side < 2 else h
        ragged = t + np.cumsum(rng.integers(-1, 2, along)).clip(-t // 2, t // 2)
        idx = np.arange(t * 2)[None, :] < ragged[:, None]  # (along, 2t) mask, True = dark
        dark = np.where(idx, rng.integers(5, 40), 255).astype(np.uint8)
        region = {0: (slice(0, 2 * t), slice(None)), 1: (slice(h - 2 * t, h), slice(None)),
                  2: (slice(None), slice(0, 2 * t)), 3: (slice(None), slice(w - 2 * t, w))}[side]
        band = dark.T if side < 2 else dark
        if side in (1, 3):
            band = band[::-1] if side == 1 else band[:, ::-1]
        view = img[region]
        np.minimum(view, band[..., None] if img.ndim == 3 else band, out=view)
    if profile.specks:
        n = profile.specks
        ys, xs = rng.integers(0, h, n), rng.integers(0, w, n)
        val = rng.integers(0, 90, n).astype(np.uint8)
        img[ys, xs] = val[:, None] if img.ndim == 3 else val
        big = rng.random(n) < 0.2
        img[np.minimum(ys[big] + 1, h - 1), xs[big]] = val[big, None] if img.ndim == 3 else val[big]
    if profile.coarse > 1.0:
        small = cv2.resize(img, (int(w / profile.coarse), int(h / profile.coarse)), interpolation=cv2.INTER_AREA)
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    if profile.blur > 0:
        img = cv2.GaussianBlur(img, (0, 0), profile.blur)
    if profile.noise > 0:
        noise = rng.standard_normal((h, w), dtype=np.float32) * profile.noise
        f = img.astype(np.float32)
        f += noise[..., None] if img.ndim == 3 else noise
        img = np.clip(f, 0, 255).astype(np.uint8)
    if profile.jpeg is not None and profile.mode != "binary":
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, profile.jpeg])
        if ok:
            img = np.asarray(cv2.imdecode(buf, cv2.IMREAD_UNCHANGED))
    if profile.mode == "binary":
        return Image.fromarray(img > profile.threshold).convert("1"), mat
    return Image.fromarray(img, "RGB" if img.ndim == 3 else "L"), mat


def _truth_box(hull: np.ndarray, mat: np.ndarray, size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """Box of the ink hull after the scan's affine transform, clipped to the page; None when outside."""
    pts = hull @ mat[:, :2].T + mat[:, 2]
    w, h = size
    x1, y1 = int(np.floor(pts[:, 0].min())), int(np.floor(pts[:, 1].min()))
    x2, y2 = int(np.floor(pts[:, 0].max())) + 1, int(np.floor(pts[:, 1].max())) + 1
    x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
    if x2 - x1 < 2 or y2 - y1 < 2:
        return None
    return (x1, y1, x2, y2)


# --------------------------------------------------------------------------------------------------------------
# Writing


def _save(pages: list[Image.Image], path: Path, fmt: str, dpi: int, quality: int) -> None:
    """Write pages as ``fmt``: PDF (JPEG/CCITT images at ``dpi``), multi-page TIFF, PNG or JPEG."""
    first, rest = pages[0], pages[1:]
    if fmt == "pdf":
        extra: dict[str, Any] = {} if first.mode == "1" else {"quality": quality}  # 1-bit pages: CCITT G4
        fixed = time.gmtime(946_684_800)  # 2000-01-01, fixed: the same seed gives byte-identical PDFs
        # The page is a hair smaller than px * 72 / dpi points, so rasterisers that round up (pdfium takes the
        # ceiling) give back exactly the rendered pixel size at ``dpi`` rather than one pixel more.
        res = dpi * (1.0 + 2e-5)
        first.save(path, "PDF", save_all=True, append_images=rest, resolution=res, creationDate=fixed,
                   modDate=fixed, producer="sigpipe synth-documents", **extra)
    elif fmt == "tiff":
        comp = "group4" if first.mode == "1" else "tiff_deflate" if first.mode == "L" else "jpeg"
        extra = {"quality": quality} if comp == "jpeg" else {}
        first.save(path, "TIFF", save_all=True, append_images=rest, compression=comp, dpi=(dpi, dpi), **extra)
    elif fmt == "png":
        first.save(path, "PNG", dpi=(dpi, dpi), compress_level=6)
    else:
        im = first.convert("L") if first.mode == "1" else first
        im.save(path, "JPEG", quality=quality, dpi=(dpi, dpi))


def _choose_format(rng: np.random.Generator, formats: Sequence[str], n_pages: int) -> str:
    allowed = [f for f in formats if n_pages == 1 or f in ("pdf", "tiff")]
    if not allowed:
        raise ValueError(f"multi-page documents need pdf or tiff among formats {tuple(formats)}")
    return str(_pick(rng, allowed))


def _yolo_image(page: Image.Image, long_side: int) -> Image.Image:
    im = page.convert("L") if page.mode == "1" else page
    w, h = im.size
    s = long_side / max(w, h)
    if s < 1:
        arr = cv2.resize(np.asarray(im), (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        im = Image.fromarray(arr)
    return im


def yolo_label_lines(doc: DocumentTruth, page: int) -> list[str]:
    """YOLO label lines (``0 cx cy w h``, normalised to [0, 1]) of the signatures on ``page`` (1-based)."""
    w, h = doc.page_size
    out = []
    for s in doc.signatures:
        if s.page != page:
            continue
        x1, y1, x2, y2 = s.bbox
        out.append(f"0 {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} {(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}")
    return out


def write_data_yaml(root: Path, has_val: bool) -> Path:
    """Write ``root/data.yaml`` for Ultralytics (absolute ``path``; class 0 = signature)."""
    yaml = (f"# sigpipe synthetic documents\npath: {json.dumps(str(root.resolve()))}\n"
            f"train: images/train\nval: images/{'val' if has_val else 'train'}\n"
            f"names:\n  0: signature\n")
    out = root / "data.yaml"
    out.write_text(yaml, encoding="utf-8")
    return out


def render_document(
    corpus: Corpus,
    kind: str,
    n_pages: int,
    rng: np.random.Generator,
    options: SynthOptions | None = None,
    signed: bool = True,
    profile: ScanProfile | None = None,
    _sigs: _Signatures | None = None,
) -> tuple[list[Image.Image], list[SignatureTruth], tuple[int, int]]:
    """Render and scan one document.

    Args:
        corpus: the signature corpus.
        kind: ``cheque``, ``letter``, ``contract`` or ``form``.
        n_pages: number of pages (cheques always have 1).
        rng: random state.
        options: generator settings (dpi, forgery rate, ...).
        signed: False gives a document with empty signature lines.
        profile: the scanner setup (default: drawn with :func:`random_profile`; ignored when ``options.clean``).

    Returns:
        The scanned pages (PIL images, mode ``RGB``/``L``/``1``, all of size ``page_size``), the signatures with
        boxes in scanned-page pixels (``page`` 1-based), and ``page_size`` ``(width, height)``.
    """
    opts = options or SynthOptions()
    if kind not in _RENDERERS:
        raise ValueError(f"unknown document kind {kind!r}; expected one of {KINDS}")
    ctx = _DocContext(rng, opts.dpi, _sigs or _Signatures(corpus), opts)
    canvases = _RENDERERS[kind](ctx, 1 if kind == "cheque" else max(1, n_pages), signed)
    size = (canvases[0].w, canvases[0].h)
    if opts.clean:
        profile = ScanProfile()
    elif profile is None:
        profile = random_profile(rng, kind)
        if opts.bitonal and _side_rng(rng, 101).random() < opts.bitonal:
            profile = replace(profile, mode="binary")
    pages: list[Image.Image] = []
    truths: list[SignatureTruth] = []
    for cv in canvases:
        clean = cv.finish()
        if opts.clean:
            img, mat = Image.fromarray(clean), np.array([[1.0, 0, 0], [0, 1.0, 0]])
        else:
            img, mat = scan_page(clean, profile, rng)
        pages.append(img)
        for pl in cv.placed:
            box = _truth_box(pl.hull, mat, size)
            if box is not None:
                truths.append(SignatureTruth(pl.page + 1, box, pl.writer, pl.genuine, pl.source))
    truths.sort(key=lambda s: (s.page, s.bbox[1], s.bbox[0]))
    return pages, truths, size


def generate_documents(
    corpus_root: str | Path,
    n_pages: int,
    out: str | Path,
    seed: int = 0,
    *,
    yolo: bool = False,
    kinds: Sequence[str] = KINDS,
    options: SynthOptions | None = None,
) -> Path:
    """Generate a batch of synthetic signed documents with their truth (and optionally a YOLO dataset).

    Documents are drawn until ``n_pages`` pages exist in total (the last document may be shortened; without
    ``pdf``/``tiff`` among the formats every document has one page). Files are named ``NNNN_<kind>.<ext>`` in
    ``out``. Document ``i`` is rendered from ``default_rng([seed, 1, i])``, the plan (types, page counts, YOLO
    split) from ``default_rng([seed, 0])``.

    Args:
        corpus_root: a per-writer corpus (``ROOT/<writer>/genuine/*.png``, optional ``forged/*.png``).
        n_pages: total number of pages (>= 1).
        out: output folder (created; files of the same names are overwritten, other files are left alone
            except ``out/yolo/images`` and ``out/yolo/labels``, which are rewritten from scratch).
        seed: seed of everything random; the same inputs give the same documents and truth.
        yolo: also write an Ultralytics dataset under ``out/yolo`` (labels = truth boxes).
        kinds: document types to draw from (overrides ``options.kinds``).
        options: further settings (dpi, formats, rates); defaults from :class:`SynthOptions`.

    Returns:
        Path of the written ``truth.json``.

    Raises:
        InputError: the corpus folder is missing, empty or holds an unreadable image.
        ValueError: bad ``n_pages``, ``kinds`` or options.
    """
    if n_pages < 1:
        raise ValueError(f"n_pages must be >= 1, got {n_pages}")
    base = options or SynthOptions()
    opts = SynthOptions(**{**base.__dict__, "kinds": tuple(kinds)})
    corpus = Corpus(corpus_root)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sigs = _Signatures(corpus)
    weights = np.asarray(opts.kind_weights or [1.0] * len(opts.kinds), dtype=np.float64)
    weights = weights / weights.sum()
    plan_rng = np.random.default_rng([seed, 0])
    multi_ok = any(f in ("pdf", "tiff") for f in opts.formats)  # without them every document has one page
    ydir = out / "yolo"
    if yolo:
        for sub in ("images", "labels"):  # ours: stale pages of an earlier run would corrupt the dataset
            shutil.rmtree(ydir / sub, ignore_errors=True)
        for sub in ("images/train", "images/val", "labels/train", "labels/val"):
            (ydir / sub).mkdir(parents=True, exist_ok=True)
    docs: list[DocumentTruth] = []
    splits: list[str] = []
    left = n_pages
    i = 0
    while left > 0:
        i += 1
        kind = opts.kinds[int(plan_rng.choice(len(opts.kinds), p=weights))]
        counts, probs = _PAGE_COUNTS[kind]
        n = min(left, int(plan_rng.choice(counts, p=probs))) if multi_ok else 1
        split = "val" if plan_rng.random() < opts.val_fraction else "train"
        rng = np.random.default_rng([seed, 1, i])
        if kind == "cheque":
            n = 1
        signed = rng.random() >= opts.unsigned
        fmt = _choose_format(rng, opts.formats, n)
        quality = 70 if opts.compact else int(rng.integers(60, 92))
        profile = compact_profile(random_profile(rng, kind), fmt) if opts.compact else None
        pages, truths, size = render_document(corpus, kind, n, rng, opts, signed, profile, _sigs=sigs)
        name = f"{i:04d}_{kind}{SUFFIX[fmt]}"
        _save(pages, out / name, fmt, opts.dpi, quality)
        doc = DocumentTruth(name, fmt, kind, n, size, opts.dpi, tuple(truths))
        docs.append(doc)
        splits.append(split)
        if yolo:
            _write_yolo_pages(ydir, doc, pages, split, opts)
        left -= n
        log.debug("wrote %s (%d pages, %d signatures)", name, n, len(truths))
    if yolo:  # both splits non-empty when there are two documents or more; a lone document trains and validates
        if "train" not in splits:
            _move_split(ydir, docs[0], "val", "train")
            splits[0] = "train"
        if "val" not in splits and len(docs) > 1:
            _move_split(ydir, docs[-1], "train", "val")
            splits[-1] = "val"
        write_data_yaml(ydir, "val" in splits)
    truth = SynthTruth(seed, str(corpus_root), tuple(docs))
    path = out / "truth.json"
    truth.save(path)
    return path


def _yolo_stem(doc: DocumentTruth, page: int) -> str:
    return f"{Path(doc.path).stem}_p{page}"


def _write_yolo_pages(ydir: Path, doc: DocumentTruth, pages: list[Image.Image], split: str,
                      opts: SynthOptions) -> None:
    for k, page in enumerate(pages, start=1):
        stem = _yolo_stem(doc, k)
        _yolo_image(page, opts.yolo_long_side).save(ydir / "images" / split / f"{stem}.jpg", "JPEG",
                                                    quality=opts.yolo_quality)
        lines = yolo_label_lines(doc, k)
        (ydir / "labels" / split / f"{stem}.txt").write_text("".join(ln + "\n" for ln in lines), encoding="utf-8")


def _move_split(ydir: Path, doc: DocumentTruth, src: str, dst: str) -> None:
    for k in range(1, doc.pages + 1):
        stem = _yolo_stem(doc, k)
        (ydir / "images" / src / f"{stem}.jpg").replace(ydir / "images" / dst / f"{stem}.jpg")
        (ydir / "labels" / src / f"{stem}.txt").replace(ydir / "labels" / dst / f"{stem}.txt")
