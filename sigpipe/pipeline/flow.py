"""The per-document flow: pages -> detector (batched) -> crops -> verifier (batched) -> comparison -> verdicts.

:class:`SignaturePredictor` composes the stages, like doctr's ``ocr_predictor(det, reco)``: build it once from a
detector, a verifier and an enrolled :class:`~sigpipe.verifier.gallery.Gallery`, then call it on documents. It checks
its parts when built (a gallery embedded with another verifier would compare incompatible vectors).
"""

from __future__ import annotations

import errno
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol, TypeVar, runtime_checkable

import numpy as np

from sigpipe._files import CopyError, private_copy
from sigpipe._warnings import collected
from sigpipe.errors import InputError, SigpipeError
from sigpipe.pipeline.claims import Claim, NameHints, claimants, normalise_claim
from sigpipe.pipeline.deskew import level_crop
from sigpipe.pipeline.errors import FileChangedError
from sigpipe.pipeline.ingest import IngestConfig, Page, iter_pages
from sigpipe.pipeline.orientation import box_to_scanned, turn_upright
from sigpipe.pipeline.placed import PLACED_WORDS, same_place, shows_ink
from sigpipe.pipeline.report import (
    READER_REVISION,
    DocumentInfo,
    DocumentReport,
    ReferenceSet,
    RunSettings,
    SignatureResult,
)
from sigpipe.verifier.gallery import Gallery, Match, SpecimenLoader
from sigpipe.verifier.preprocess import has_ink
from sigpipe.verifier.verifier import Verifier
from sigpipe.weights import sha256_file

log = logging.getLogger(__name__)


class DetectionLike(Protocol):
    """What the flow reads from a detection (``sigpipe.detector.detector.Detection`` satisfies it)."""

    @property
    def bbox(self) -> tuple[float, float, float, float]: ...

    @property
    def confidence(self) -> float: ...


@runtime_checkable
class Detector(Protocol):
    """What the flow needs from a detector (``SignatureDetector`` satisfies it).

    ``detect_batch`` takes ``(H, W, 3)`` uint8 BGR pages and returns, per page, detections whose ``bbox`` is
    ``(x1, y1, x2, y2)`` in pixels of that page.
    """

    @property
    def ident(self) -> str: ...

    def detect_batch(self, pages: list[np.ndarray]) -> Sequence[Sequence[DetectionLike]]: ...


@dataclass(frozen=True)
class FlowConfig:
    """Settings of the per-document flow.

    Attributes:
        crop_margin: margin added on every side of a detector box before cropping, as a fraction of the box's
            width (left/right) and height (top/bottom); the crop is clipped to the page.
        page_batch: pages passed to the detector at once (pages are released as soon as they are cropped).
        embed_batch: crops per forward pass of the verifier.
        decimals: rounding of distances, thresholds and scores in reports.
        accept_score: a document whose signatures are all judged genuine is ``genuine`` only when each has at least
            this score, else ``needs_review`` (a close call goes to a person); None: no such bar.
        other_signers: documents may bear other people's signatures besides the claimed people's (contracts:
            :func:`~sigpipe.pipeline.report.mark_other_signers`).
    """

    crop_margin: float = 0.08
    page_batch: int = 4
    embed_batch: int = 64
    decimals: int = 6
    accept_score: float | None = None
    other_signers: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.crop_margin <= 1.0:
            raise ValueError(f"crop_margin must be in [0, 1], got {self.crop_margin}")
        if self.accept_score is not None and not 0.0 < self.accept_score < 1.0:
            raise ValueError(f"accept_score must be between 0 and 1 (exclusive), got {self.accept_score}")
        if self.page_batch < 1 or self.embed_batch < 1:
            raise ValueError("page_batch and embed_batch must be >= 1")


def crop_box(image: np.ndarray, bbox: Sequence[float], margin: float = 0.08) -> np.ndarray:
    """Cut a detector box out of a page, with a margin, clipped to the page.

    Args:
        image: ``(H, W)`` or ``(H, W, C)`` uint8 page.
        bbox: ``(x1, y1, x2, y2)`` in pixels of ``image``.
        margin: added on each side as a fraction of the box's width (x) and height (y).

    Returns:
        A copy of the region, at least 1x1 pixel.
    """
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in bbox)
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    left = int(np.clip(np.floor(x1 - mx), 0, w - 1))
    top = int(np.clip(np.floor(y1 - my), 0, h - 1))
    right = int(np.clip(np.ceil(x2 + mx), left + 1, w))
    bottom = int(np.clip(np.ceil(y2 + my), top + 1, h))
    return image[top:bottom, left:right].copy()


def crop_detection(image: np.ndarray, detection: DetectionLike, margin: float = 0.08) -> np.ndarray:
    """:func:`crop_box` of a detection, turned upright when the detector turned its page first (a detection with a
    ``rotation``: :class:`~sigpipe.pipeline.orientation.OrientingDetector`), and levelled when it levelled the page
    (a ``skew``)."""
    return upright_crop(image, detection.bbox, rotation_of(detection), skew_of(detection), margin)


def upright_crop(image: np.ndarray, bbox: Sequence[float], rotation: int = 0, skew: float = 0.0,
                 margin: float = 0.08) -> np.ndarray:
    """The crop of ``bbox`` (pixels of ``image``, the page as scanned) with ``margin``, turned upright by
    ``rotation`` (degrees counter-clockwise the page is turned from upright) and levelled by ``skew``
    (:func:`~sigpipe.pipeline.deskew.level_crop`): what the verifier judged, from a report's fields."""
    k = rotation // 90
    if not skew:
        return turn_upright(crop_box(image, bbox, margin), k)
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in bbox)
    hull = box_to_scanned((x1, y1, x2, y2), (4 - k) % 4, (w, h))  # in pixels of the page turned upright
    return level_crop(turn_upright(image, k), hull, skew, margin)


def rotation_of(detection: DetectionLike) -> int:
    """Degrees counter-clockwise the detection's page was turned from upright (0 for a plain detector's)."""
    return int(getattr(detection, "rotation", 0))


def skew_of(detection: DetectionLike) -> float:
    """Degrees counter-clockwise the detection's upright page was turned to level it (0.0 for a plain detector's)."""
    return float(getattr(detection, "skew", 0.0))


D = TypeVar("D", bound=DetectionLike)


def reading_order(detections: Sequence[D]) -> list[D]:
    """A page's detections as a person numbers them: line by line from the top, each line left to right.

    Two boxes are on one line when their vertical extents overlap by at least half the shorter one's height (the
    line's extent so far, against the next box by its centre). Sorting by the top edge alone let half a pixel of
    the detector's jitter (another file format, another precision) decide which of two signatures side by side
    was "signature 1".
    """
    lines: list[list[D]] = []
    for d in sorted(detections, key=lambda d: (float(d.bbox[1]) + float(d.bbox[3]), float(d.bbox[0]))):
        y1, y2 = float(d.bbox[1]), float(d.bbox[3])
        if lines:
            top = min(float(o.bbox[1]) for o in lines[-1])
            bottom = max(float(o.bbox[3]) for o in lines[-1])
            if min(y2, bottom) - max(y1, top) >= 0.5 * min(y2 - y1, bottom - top):
                lines[-1].append(d)
                continue
        lines.append([d])
    return [d for line in lines for d in sorted(line, key=lambda d: (float(d.bbox[0]), float(d.bbox[1])))]


@dataclass(frozen=True, eq=False)
class ConformedBox:
    """A conformed signature in a PDF page's text ("/s/ Jane Doe": :func:`~sigpipe.pipeline.placed.find_conformed`)
    that the detector did not box, as a detection: found in the text itself, so its confidence is 1."""

    bbox: tuple[float, float, float, float]
    name: str
    confidence: float = 1.0


def placed_on(page: Page, detection: DetectionLike) -> tuple[str | None, str | None]:
    """How a detection's signature came onto its page (:meth:`~sigpipe.pipeline.ingest.Page.placed_origin`; a
    :class:`ConformedBox` is ``conformed``) and, for a conformed one, the name typed."""
    if isinstance(detection, ConformedBox):
        return "conformed", detection.name
    box = (float(detection.bbox[0]), float(detection.bbox[1]), float(detection.bbox[2]), float(detection.bbox[3]))
    placed = page.placed_origin(box)
    if placed != "conformed" or page.placed is None:
        return placed, None
    return placed, page.placed.conformed_name(box)


def conformed_unboxed(page: Page, detections: Sequence[DetectionLike]) -> list[ConformedBox]:
    """The page's conformed signatures that no detection boxed (:meth:`~sigpipe.pipeline.placed.PlacedMarks.
    conformed_name`; a detection that did is judged as the detector's box, whose typed text
    :meth:`~sigpipe.pipeline.placed.PlacedMarks.origin` calls ``conformed``) and that show on the page (an OCR
    layer's text where the scan shows nothing, or text covered over, is none)."""
    if page.placed is None or not page.placed.conformed:
        return []
    boxes = [(float(d.bbox[0]), float(d.bbox[1]), float(d.bbox[2]), float(d.bbox[3])) for d in detections]
    return [ConformedBox(c, name) for c, name in page.placed.conformed
            if not any(same_place(c, b) for b in boxes) and shows_ink(page.image, c)]  # white-out over it: none


# A specimen page's boxes beside its most confident one: weaker than this share of its confidence, not a signature
# of the same standing (a cheque's handwritten memo at 0.34 beside the signature's 0.85, a retest); one on its line
# and within SAME_LINE_GAP of its height, the same signature boxed in two (a long name, first and last apart)
SECOND_SIGNATURE_SHARE = 0.5
SAME_LINE_GAP = 0.4


def one_signature(dets: Sequence[DetectionLike]) -> DetectionLike | None:
    """The one signature a specimen page's detections show: the most confident, its box grown over the boxes of the
    same signature; None when another signature of like confidence stands apart from it."""
    ranked = sorted(dets, key=lambda d: -float(d.confidence))
    best = ranked[0]
    x1, y1, x2, y2 = (float(v) for v in best.bbox)
    for d in ranked[1:]:
        if float(d.confidence) < SECOND_SIGNATURE_SHARE * float(best.confidence):
            break
        a1, b1, a2, b2 = (float(v) for v in d.bbox)
        height = min(y2 - y1, b2 - b1)
        same_line = min(y2, b2) - max(y1, b1) >= 0.5 * height
        gap = max(a1 - x2, x1 - a2, 0.0)
        if not (same_line and gap <= SAME_LINE_GAP * height):
            return None
        x1, y1, x2, y2 = min(x1, a1), min(y1, b1), max(x2, a2), max(y2, b2)
    if (x1, y1, x2, y2) == tuple(float(v) for v in best.bbox):
        return best
    return _Grown((x1, y1, x2, y2), float(best.confidence), rotation_of(best), skew_of(best))


@dataclass(frozen=True)
class _Grown:
    """A detection's box grown over another box of the same signature (:func:`one_signature`)."""

    bbox: tuple[float, float, float, float]
    confidence: float
    rotation: int = 0
    skew: float = 0.0


STILL_READING_S = 30.0  # a document read longer than this says how far it has got, every as many seconds


@dataclass(frozen=True)
class SpecimenCropper:
    """The pipeline's :class:`~sigpipe.verifier.gallery.SpecimenLoader` for references that are PDFs or whole pages:
    each page goes through the detector, and its detection is cropped (with ``margin``) and returned; pages where
    nothing is detected contribute nothing, nor does a signature placed on a PDF page digitally (an e-signature's
    typed name, a pasted picture: :mod:`sigpipe.pipeline.placed`), which is not a wet-ink specimen (filed among a
    person's specimens, a typed adoption made typed names pass as that person's). The page's signature is
    :func:`one_signature` of its detections; a page holding another signature of like confidence apart from it
    refuses the file (:class:`~sigpipe.errors.InputError`): which is the person's is not guessed. The most confident
    box was taken, and an account-opening form signed by the customer and a bank officer enrolled the officer's
    signature as the customer's only specimen: the officer's cheques came out genuine, the customer's forged (a
    specimen audit, session 36)."""

    detector: Detector
    ingest: IngestConfig = IngestConfig()
    margin: float = 0.08

    @property
    def ident(self) -> str:
        """What the crops depend on (part of the gallery's cache key): the models, the rendering, and how this
        release reads pages (:data:`~sigpipe.pipeline.report.READER_REVISION`: a page specimen fed in askew is
        levelled since revision 4, so its cached crop from an earlier release is cut again)."""
        orientation = getattr(self.detector, "orientation_ident", None)
        turned = f" orientation={orientation}" if orientation else ""
        return (f"{self.detector.ident}{turned} dpi={self.ingest.dpi} pdf={self.ingest.pdf_backend} "
                f"margin={self.margin} reader={READER_REVISION} one-signature-pages 2")

    def __call__(self, path: Path) -> list[np.ndarray]:
        crops: list[np.ndarray] = []
        for page in iter_pages(path, self.ingest):
            dets = self.detector.detect_batch([page.image])[0]
            if dets:
                best = one_signature(dets)
                if best is None:
                    raise InputError(f"{path}: page {page.number} holds more than one signature (a form signed by the "
                                     "person and an officer or a witness, or a sheet of specimens?): which are this "
                                     "person's is not guessed; crop each of their specimens into a file of its own")
                x1, y1, x2, y2 = (float(v) for v in best.bbox)
                placed = page.placed_origin((x1, y1, x2, y2))
                if placed is not None:
                    log.warning("%s: page %d: its signature is %s, placed digitally rather than signed on paper: not "
                                "enrolled as a specimen", path, page.number, PLACED_WORDS[placed])
                    continue
                crops.append(crop_detection(page.image, best, self.margin))
        return crops


def specimen_loader(detector: Detector, ingest: IngestConfig = IngestConfig(), margin: float = 0.08) -> SpecimenLoader:
    """The loader :func:`~sigpipe.verifier.gallery.Gallery.enroll` takes for PDF and whole-page references (see
    :class:`SpecimenCropper`)."""
    return SpecimenCropper(detector, ingest, margin)


def model_idents(detector: Detector, verifier: Verifier) -> dict[str, str]:
    """The models a report rests on, by role: ``detector``, ``verifier``, and ``orientation`` for a detector that
    turns pages upright first (its ``orientation_ident``)."""
    idents = {"detector": detector.ident, "verifier": verifier.ident}
    orientation = getattr(detector, "orientation_ident", None)
    if orientation:
        idents["orientation"] = str(orientation)
    return idents


@dataclass(frozen=True)
class FoundSignature:
    """Where a detected signature is: 1-based ``page``, its ``page_size`` (w, h) and ``dpi``, the detector's
    ``bbox`` (x1, y1, x2, y2) in page pixels and ``confidence``, and the page's ``rotation`` (degrees
    counter-clockwise from upright, as the orientation model found it; 0 without one) and ``skew`` (degrees it was
    turned to level it; :mod:`sigpipe.pipeline.deskew`); ``placed``: how it came onto a PDF page that says so
    (:meth:`~sigpipe.pipeline.placed.PlacedMarks.origin`), None for scanned ink or when not known; ``typed_name``:
    a conformed signature's name as typed; ``gaps``: where the verifier's preprocessing took printed lines out of
    its strokes (``Verifier.prepare_marked``), for the copy check."""

    page: int
    page_size: tuple[int, int]
    dpi: int
    bbox: tuple[float, float, float, float]
    confidence: float
    rotation: int = 0
    skew: float = 0.0
    placed: str | None = None
    typed_name: str | None = None
    gaps: np.ndarray | None = field(default=None, compare=False, repr=False)


class SignaturePredictor:
    """Finds and verifies the signatures of documents.

    Args:
        detector: anything with ``ident`` and ``detect_batch`` (see :class:`Detector`).
        verifier: the :class:`~sigpipe.verifier.verifier.Verifier`.
        gallery: references enrolled with the same verifier.
        config: flow settings.
        ingest: how documents are rendered when a call gives no ``ingest`` of its own.
        hint_claims: warn, at each call, of a claimed person without references, naming the person in REFS the
            name likely means (``J-Kowalski`` for ``j-kowalski``): what ``sigpipe run`` says once for its batch, for a
            caller of its own (:func:`~sigpipe.pipeline.runner.load_predictor`).

    Raises:
        TypeError: a part lacks what the flow calls.
        ValueError: the gallery was embedded with a different verifier.
    """

    def __init__(self, detector: Detector, verifier: Verifier, gallery: Gallery,
                 config: FlowConfig = FlowConfig(), ingest: IngestConfig = IngestConfig(),
                 hint_claims: bool = False) -> None:
        has_detect = callable(getattr(detector, "detect_batch", None))
        if not has_detect or not isinstance(getattr(detector, "ident", None), str):
            raise TypeError(f"detector {detector!r} needs a detect_batch(pages) method and an ident string")
        for name in ("prepare", "embed_prepared", "decide"):
            if not callable(getattr(verifier, name, None)):
                raise TypeError(f"verifier {verifier!r} has no {name}() method")
        if gallery.verifier.ident != verifier.ident:
            raise ValueError(
                f"the references were embedded with verifier {gallery.verifier.ident!r}, not {verifier.ident!r}: "
                "enroll them again with this verifier"
            )
        self.detector = detector
        self.verifier = verifier
        self.gallery = gallery
        self.config = config
        self.ingest = ingest
        self.hint_claims = hint_claims
        self._everybody: ReferenceSet | None = None  # one-to-many's, computed once
        self._hints: NameHints | None = None  # REFS's names, for hint_claims

    @property
    def models(self) -> dict[str, str]:
        """``{"detector": ident, "verifier": ident}`` (and ``"orientation"`` when the detector turns pages upright
        first) as written into reports."""
        return model_idents(self.detector, self.verifier)

    def references(self, claimed: Claim | None) -> ReferenceSet:
        """The references a document with this claim (None: one-to-many) is compared with, as written into reports
        and compared by re-runs. One-to-many's is computed once (it hashes every enrolled person, ~20 ms for 10,000
        people); a claim's each time (microseconds), so a service that sees millions of claims holds none of them."""
        if claimed is not None:
            return ReferenceSet(*self.gallery.fingerprint(claimants(claimed)))
        if self._everybody is None:
            self._everybody = ReferenceSet(*self.gallery.fingerprint(None))
        return self._everybody

    def _hint(self, claimed: Claim | None, rel: str) -> None:
        """Warn of the claimed people without references (:attr:`hint_claims`)."""
        for person in claimants(claimed) if claimed is not None else ():
            if person in self.gallery.embeddings:
                continue
            if self._hints is None:
                self._hints = NameHints(set(self.gallery.people) | set(self.gallery.folders))
            like = self._hints.meant(person)
            like = None if like == person else like  # its own folder, left out of `people=` or of no usable file
            log.warning("%s: claimed %r has no usable references: its signatures get no_reference%s%s", rel, person,
                        "" if isinstance(claimed, str) else " when they match no other claimed person",
                        f"; REFS has {like!r}: the same person? Claims must name the folder exactly" if like else "")

    def settings(self, ingest: IngestConfig) -> RunSettings:
        """The options the report depends on, as written into reports and compared by re-runs."""
        return RunSettings(ingest.dpi, ingest.pdf_backend, self.config.crop_margin,
                           ingest.pages.spec if ingest.pages is not None else None, self.config.accept_score,
                           READER_REVISION, self.config.other_signers)

    # -- the stages ---------------------------------------------------------------------------------------------
    def find_signatures(self, pages: Iterable[Page], name: str = "") -> tuple[list[FoundSignature], np.ndarray, int]:
        """Detect and crop the signatures of a stream of pages.

        Pages are consumed ``page_batch`` at a time; each crop is preprocessed for the verifier right away, so the
        pages can be dropped. A page with as many boxes as the detector keeps (``max_det``) is warned about, naming
        the document ``name``.

        Returns:
            ``(found, prepared, pages)``: ``found[i]`` locates signature ``i``; ``prepared`` is its
            ``(N, 1, h, w)`` float32 verifier input; ``pages`` is the number of pages read.
        """
        found: list[FoundSignature] = []
        prepared: list[np.ndarray] = []
        batch: list[Page] = []
        n_pages = 0

        def flush() -> None:
            dets = self.detector.detect_batch([p.image for p in batch])
            if len(dets) != len(batch):
                raise RuntimeError(f"detector returned {len(dets)} results for {len(batch)} pages")
            limit = getattr(self.detector, "max_det", None)
            for page, page_dets in zip(batch, dets, strict=True):
                if limit is not None and len(page_dets) >= limit:  # any more were dropped: forgeries among them?
                    log.warning("%spage %d holds as many signatures as the detector keeps (max_det %d): any more on "
                                "it are not verified", f"{name}: " if name else "", page.number, limit)
                typed = conformed_unboxed(page, page_dets)
                for d in reading_order([*page_dets, *typed]):  # as a person numbers them, and `sigpipe verify`
                    crop = crop_detection(page.image, d, self.config.crop_margin)
                    canvas, gaps = self.verifier.prepare_marked(crop)
                    prepared.append(canvas)
                    x1, y1, x2, y2 = (float(v) for v in d.bbox)
                    placed, typed_name = placed_on(page, d)
                    found.append(FoundSignature(page.number, page.size, page.dpi, (x1, y1, x2, y2),
                                                float(d.confidence), rotation_of(d), skew_of(d), placed, typed_name,
                                                gaps))
            batch.clear()

        for page in pages:
            n_pages += 1
            batch.append(page)
            if len(batch) >= self.config.page_batch:
                flush()
        if batch:
            flush()
        x = np.concatenate(prepared) if prepared else np.zeros((0, 1, 1, 1), np.float32)
        return found, x, n_pages

    def judge(self, embedding: np.ndarray, claimed: Claim | None, image: np.ndarray | None = None
              ) -> tuple[Match | None, str]:
        """Compare one embedding (and its preprocessed image ``(1, H, W)``, which a verifier with a second stage
        needs) with the claimed person, with the claimed people (a document signed by several), or one-to-many
        without a claim.

        With several people claimed, the signature is judged against the one it matches best (lowest distance
        relative to that person's threshold): ``genuine`` when within that threshold; ``forged`` when it matches
        nobody, unless a claimed person has no references (it may be theirs: ``no_reference``).

        Returns:
            ``(match, verdict)``: ``match`` is None exactly when the verdict is ``no_reference`` (no claimed person
            has references, or the gallery is empty).
        """
        if claimed is None:
            best = self.gallery.best_match(embedding, image)
            if best is None:
                return None, "no_reference"
            return best, "genuine" if best.decision.genuine else "unknown_signer"
        people = claimants(claimed)
        enrolled = [p for p in people if p in self.gallery.embeddings]
        if not enrolled:
            return None, "no_reference"
        m = min((self.gallery.compare(embedding, p, image) for p in enrolled),  # a tie: not by the claim's order
                key=lambda m: (m.decision.distance - m.decision.threshold, m.identity))
        if m.decision.genuine:
            return m, "genuine"
        return (None, "no_reference") if len(enrolled) < len(people) else (m, "forged")

    def predict_pages(self, pages: Iterable[Page], claimed: Claim | None, name: str = ""
                      ) -> tuple[list[SignatureResult], int]:
        """Run the flow on a stream of pages.

        Returns:
            ``(signatures, pages_read)``.
        """
        found, x, n_pages = self.find_signatures(pages, name)
        emb = self.verifier.embed_prepared(x, batch=self.config.embed_batch) if len(found) else None
        inked = has_ink(x) if len(found) else np.zeros(0, bool)
        nd = self.config.decimals
        results = []
        for i, f in enumerate(found):
            assert emb is not None
            if f.placed == "conformed":  # "/s/" and a name in type: a shape to compare with nobody's, by nobody's name
                match, verdict, claimed_one = None, "electronic", None
            else:
                match, verdict = self.judge(emb[i], claimed, x[i]) if inked[i] else (None, "no_ink")
                if f.placed is not None:  # typed, drawn or pasted on the page: its shape is compared, not judged
                    verdict = "electronic"
                elif verdict == "genuine" and match is not None:  # too near: one of the person's specimens pasted
                    copy = self.verifier.copy_of(x[i], self.gallery.images.get(match.identity), f.gaps)
                    if copy is not None:
                        verdict, match = "copied", replace(match, decision=replace(match.decision, nearest=copy))
                claimed_one = claimed if isinstance(claimed, str) else None
            d = match.decision if match else None
            x1, y1, x2, y2 = (round(v, 2) for v in f.bbox)
            results.append(SignatureResult(
                page=f.page, bbox=(x1, y1, x2, y2), page_size=f.page_size, dpi=f.dpi,
                detection_confidence=round(float(np.clip(f.confidence, 0.0, 1.0)), 4),
                identity=match.identity if match else claimed_one,
                distance=round(max(d.distance, 0.0), nd) if d else None,
                threshold=round(d.threshold, nd) if d else None,
                score=round(d.score, nd) if d else None,
                verdict=verdict, page_rotation=f.rotation, page_skew=f.skew,
                nearest_reference=self.gallery.source(match.identity, d.nearest) if match and d else None,
                nearest_reference_sha256=self.gallery.source_sha256(match.identity, d.nearest) if match and d
                else None,
                placed=f.placed, typed_name=f.typed_name,
            ))
        return results, n_pages

    def __call__(self, path: str | Path, *, relative: str | None = None,
                 claimed: Claim | Sequence[str] | None = None, sha256: str | None = None,
                 ingest: IngestConfig | None = None) -> DocumentReport:
        """Process one document file; never raises for a problem of the document itself.

        Args:
            path: the file.
            relative: its name in the report (default: the file name).
            claimed: the identity claimed for its signatures (a tuple for a document signed by several people who
                must all sign, a :class:`~sigpipe.pipeline.claims.Mandate` when fewer of them must:
                ``Mandate(("alice", "bob"), 1)`` for a joint account's "either to sign"), or None for one-to-many
                matching.
            sha256: the file's sha256 when already known (computed otherwise).
            ingest: how pages are rendered (default: the predictor's).

        Returns:
            A report with status ``ok``, or ``error`` with the reason (bad input, or an unexpected failure).

        Raises:
            ValueError: ``claimed`` is an empty name or names nobody, or ``sha256`` is not 64 hexadecimal digits.
        """
        claimed = normalise_claim(claimed)
        ingest = ingest or self.ingest
        path = Path(path)
        rel = Path(relative).as_posix() if isinstance(relative, os.PathLike) else relative
        rel = (rel if rel != "." else None) or path.name or str(path)  # Path("") is ".": no name given
        if sha256 is not None:  # as reports write it; another spelling was taken for a file that changed
            if not isinstance(sha256, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
                raise ValueError(f"sha256 must be 64 hexadecimal digits, got {sha256!r}")
            sha256 = sha256.lower()
        if self.hint_claims:
            self._hint(claimed, rel)
        t0 = time.perf_counter()
        pages_read = 0
        numbers: list[int] = []  # of the pages read
        refs, settings = self.references(claimed), self.settings(ingest)  # what the report's result rests on

        def counted(it: Iterable[Page]) -> Iterable[Page]:
            nonlocal pages_read
            said = t0
            for p in it:
                pages_read += 1
                numbers.append(p.number)
                if (now := time.perf_counter()) - said >= STILL_READING_S:  # a 400-page contract: minutes
                    said = now  # of silence after an ETA of seconds, which invited killing the run
                    log.info("%s: still reading, %d page(s) read (%.0f s)", rel, pages_read, now - t0)
                yield p

        def failure(info: DocumentInfo, kind: str, message: str) -> DocumentReport:
            return DocumentReport.failure(info, claimed, kind, message, self.models, refs, settings)

        def changed(digest: str) -> DocumentReport | None:
            """The failure of a file that changed while it was processed (still being written by a scanner, or
            replaced), None when it is as it was: a verdict, or an error, is recorded under the sha256 it was
            reached on or not at all (half a PDF read as 'corrupt' would send someone to rescan it). A file that can
            no longer be read (its permissions taken away, removed) is not called changed: the copy judged is the
            file as it was read."""
            try:
                same = sha256_file(path) == digest
            except OSError:
                return None
            return None if same else changed_failure(digest)

        def changed_failure(digest: str) -> DocumentReport:
            log.warning("%s: the file changed while it was processed", rel)
            return failure(DocumentInfo(rel, digest, pages_read), FileChangedError.kind,
                           "the file changed while it was processed (still being written, or replaced): run again")

        with ExitStack() as held:
            # the bytes hashed are the bytes read: a private copy, hashed as it is made, is what every reader opens.
            # Read by path, a link re-pointed (or a file rewritten) between the hash and the decoder had a forged
            # scan's sha256 recorded with the verdict of a genuine one, which every later run kept
            try:
                copy, digest = held.enter_context(private_copy(path, ingest.max_bytes))
            except CopyError as e:  # the temporary folder's fault, not the document's: said as such
                if e.errno == errno.ENOENT and e.filename is None:  # none at all (_files.temporary_folder says so)
                    why = f"cannot copy it: {e.strerror}; run again"
                else:
                    why = (f"cannot copy it into the temporary folder {tempfile.gettempdir()} ({e.strerror}): free "
                           "space there, or set TMPDIR to a folder with room; run again")
                log.error("%s: %s", rel, why)
                return failure(DocumentInfo(rel, None, 0), "temporary_copy", why)
            except OSError as e:
                kind = "file_too_large" if e.errno == errno.EFBIG else "unreadable_file"
                log.error("%s: %s (%s)", rel, e.strerror or e, kind)
                return failure(DocumentInfo(rel, None, 0), kind, f"cannot read the file: {e}" if
                               kind == "unreadable_file" else f"not read: {e.strerror}")
            if sha256 is not None and digest != sha256:  # not the file the run listed and checked its report by
                return changed_failure(sha256)
            try:
                with collected() as said:  # a library's complaint about this file, named (this thread's alone)
                    try:
                        sigs, n = self.predict_pages(counted(iter_pages(copy, ingest)), claimed, rel)
                    finally:  # a library's deprecation notice is about the code, not the file: debug only
                        for text, w in dict((f"{w.category.__name__}: {w.message}", w) for w in said).items():
                            code = issubclass(w.category,
                                              (DeprecationWarning, PendingDeprecationWarning, FutureWarning))
                            log.log(logging.DEBUG if code else logging.WARNING, "%s: %s", rel, text)
            except SigpipeError as e:
                if (moved := changed(digest)) is not None:
                    return moved
                log.error("%s: %s (%s)", rel, e, e.kind)  # the document failed: an error, as its exit status says
                return failure(DocumentInfo(rel, digest, pages_read), e.kind, str(e))
            except OSError as e:  # the file or its folder made unreadable under the run (permissions), a disk error
                if (moved := changed(digest)) is not None:
                    return moved
                log.error("%s: cannot read the file: %s (unreadable_file)", rel, e)
                return failure(DocumentInfo(rel, digest, pages_read), "unreadable_file", f"cannot read the file: {e}")
            except MemoryError:
                log.error("%s: out of memory", rel)
                return failure(DocumentInfo(rel, digest, pages_read), "out_of_memory",
                               "ran out of memory while processing this document")
            except Exception as e:  # noqa: BLE001 - one bad document must never stop the batch
                if (moved := changed(digest)) is not None:
                    return moved
                log.exception("%s: unexpected failure", rel)
                return failure(DocumentInfo(rel, digest, pages_read), "internal", f"{type(e).__name__}: {e}")
            if (moved := changed(digest)) is not None:  # the verdict is recorded under the sha256 it was judged on
                return moved
            log.debug("%s: %d pages, %d signatures in %.2fs", rel, n, len(sigs), time.perf_counter() - t0)
            if ingest.pages is not None and not sigs and numbers:
                log.warning("%s: unsigned on the page(s) read, %s (--pages %s): a signature on another page (a blank "
                            "page scanned after the signature page?) is not looked for", rel,
                            ", ".join(map(str, numbers)), ingest.pages.spec)
            return DocumentReport.success(DocumentInfo(rel, digest, n), claimed, sigs, self.models, refs, settings)
