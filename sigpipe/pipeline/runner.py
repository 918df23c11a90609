"""The batch runner behind ``sigpipe run``: discovery, claims, references, resumable parallel processing, summary.

Every document gets exactly one report, ``OUT/<relative path>.json``, written atomically (temporary file, fsync,
``os.replace``), so a run killed at any moment leaves only complete reports; the next run keeps those (same input
sha256, same claim, same models, same references, same settings, status ok; :func:`stale_reason`) and processes the
rest. One bad document never stops the batch: it gets a report with status ``error``. With ``workers > 1`` documents
are processed in parallel by spawned worker processes that each load the models once (in the pool's initializer) and
use ``cores // workers`` torch threads; a worker that dies (segfault, killed for memory) is replaced and the
documents it may have been holding are retried one at a time, so only the culprit gets a ``worker_crashed`` report.
With a ``timeout``, documents always run in worker processes (one per worker, none queued behind another), and a
document still running after ``timeout`` seconds has its worker killed and gets a ``timeout`` report, so one file that
hangs a native library cannot stall an overnight batch.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import hashlib
import itertools
import json
import logging
import multiprocessing
import os
import pickle
import re
import signal
import stat
import sys
import tempfile
import threading
import time
import unicodedata
import warnings
from collections import Counter, deque
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from sigpipe._files import (
    UNREAD_DOCUMENTS,
    name_folding,
    owned_folder,
    remove_stale_copies,
    remove_stale_folders,
    temporary_folder,
    visible_files,
)
from sigpipe._onnx import REQUESTED_PRECISIONS, native_bf16
from sigpipe.errors import InputError, ModelError
from sigpipe.pipeline.claims import (
    Claim,
    Claims,
    Mandate,
    Rule,
    claim_warnings,
    claimants,
    read_claims,
    signers_required,
)
from sigpipe.pipeline.errors import (
    BadSignatoryCardError,
    ClaimsError,
    DocumentTimeoutError,
    NoClaimError,
    NoDocumentsError,
    OutputWriteError,
    TemporaryFolderError,
    UnknownAccountError,
    WorkerCrashError,
)
from sigpipe.pipeline.flow import Detector, FlowConfig, SignaturePredictor, model_idents, specimen_loader
from sigpipe.pipeline.ingest import (
    DEFAULT_DPI,
    MAX_DOCUMENT_PAGES,
    MAX_PAGE_PIXELS,
    SCAN_SUFFIXES,
    IngestConfig,
    PageSelection,
    check_backend,
    discover_scans,
    relative_name,
)
from sigpipe.pipeline.orientation import OrientingDetector, PageOrienter
from sigpipe.pipeline.progress import Progress, StderrHandler
from sigpipe.pipeline.report import (
    LOCK_FILE,
    SUMMARY_CSV,
    SUMMARY_JSON,
    TMP_SUFFIX,
    DocumentInfo,
    DocumentReport,
    Failure,
    ReferenceSet,
    RunSettings,
    RunSummary,
    SignatureResult,
    claimed_unsigned,
    document_verdict,
    orphaned_reports,
    out_lock,
    read_report,
    remove_stale_temporaries,
    report_path,
    write_report,
    write_summary,
)
from sigpipe.verifier.gallery import Gallery
from sigpipe.verifier.refcheck import suspect_specimens
from sigpipe.verifier.verifier import Verifier
from sigpipe.weights import sha256_file

log = logging.getLogger(__name__)
LOGGED_SUSPECTS = 20  # suspect references logged one by one; the rest in one line
SELF_CHECK_TOLERANCE = 1e-4  # reports round distances and thresholds; a hand edit moves them by more
MAX_IDLE_BREAKS = 3  # worker pools that may break in a row before any document ran in them
AUTO_WORKERS = 0  # RunConfig.workers (``--workers auto``): worker processes for a large batch (auto_workers)
AUTO_WORKERS_FROM = 64  # documents to process from which ``auto`` starts worker processes
AUTO_WORKERS_MAX = 8  # worker processes ``auto`` starts at the most (each loads the models: ~300 MB)


@dataclass(frozen=True)
class RunConfig:
    """Settings of one batch run (what ``sigpipe run`` parses its options into).

    Attributes:
        scans: folder of documents (searched recursively), or a single document.
        refs: ``REFS/<person>/*`` genuine specimens.
        out: where reports go (created).
        claims: optional CSV ``document,identity`` (or ``document,account``).
        signatories: the signatory table ``account,identity[,mandate]`` for claims by account (a bank's
            signature cards: who may sign for each account, and how many of them must).
        workers: documents processed in parallel (1 = in this process; :data:`AUTO_WORKERS`, 0: one worker process
            per core for a large batch, :func:`auto_workers`).
        dpi: PDF rendering resolution.
        pdf_backend: ``pypdfium2`` or ``pdf2image``.
        detector_weights, verifier_weights: model manifests (None = the bundled models).
        detector_tta: run the detector on each page and its mirror image and fuse the boxes (twice the detector's
            time; its manifest's ``tta_conf``).
        orient: turn pages scanned upside down or sideways upright before detection (the orientation model,
            :mod:`sigpipe.pipeline.orientation`; about 2.5 ms a page on 2 cores).
        orientation_weights: the orientation model's manifest (None = the bundled model).
        precision: ``f32``, or ``bf16`` to run both models' networks on OpenVINO in bfloat16 (about twice as fast on
            CPUs that compute in it, slower where it is emulated; :mod:`sigpipe._onnx`), or ``auto``: bf16 where this
            CPU computes it natively, else f32 (each model's ident says which it ran in).
        crop_margin: margin around detector boxes, as a fraction of the box size.
        max_pixels: pages over this many pixels are refused.
        max_pages: a document with more pages to read fails (error kind ``too_many_pages``).
        force: reprocess every document even when its report is up to date.
        cache: embedding cache of the references (None = ``sigpipe._ultralytics.cache_dir()/gallery``).
        progress: write progress lines to stderr.
        threads: total CPU threads to share among workers (None = the cores this process may use, or
            ``$SIGPIPE_THREADS``).
        timeout: seconds one document may take before its worker is killed and it fails with kind ``timeout``
            (None = no limit; with a limit, documents run in worker processes even with one worker).
        pages: which pages of each document to read (``--pages``, :class:`~sigpipe.pipeline.ingest.PageSelection`
            syntax, e.g. ``"1"`` or ``"-1"``); None reads them all.
        accept_score: the score each signature judged genuine needs for its document to be ``genuine``; below it
            the document is ``needs_review`` (``--accept-score``; None: no such bar).
        other_signers: documents may bear other people's signatures (``--other-signers``; contracts): once every
            claimed person has a genuine signature on a document, the others are ``other_signer``, not ``forged``.
    """

    scans: Path
    refs: Path
    out: Path = Path("sigpipe-reports")
    claims: Path | None = None
    signatories: Path | None = None
    workers: int = 1
    dpi: int = DEFAULT_DPI
    pdf_backend: str = "pypdfium2"
    detector_weights: Path | None = None
    verifier_weights: Path | None = None
    detector_tta: bool = False
    orient: bool = True
    orientation_weights: Path | None = None
    precision: str = "f32"
    crop_margin: float = 0.08
    max_pixels: int = MAX_PAGE_PIXELS
    max_pages: int = MAX_DOCUMENT_PAGES
    force: bool = False
    cache: Path | None = None
    progress: bool = True
    threads: int | None = None
    timeout: float | None = None
    pages: str | None = None
    accept_score: float | None = None
    other_signers: bool = False

    def __post_init__(self) -> None:
        for name in ("scans", "refs", "out", "claims", "signatories", "detector_weights", "verifier_weights",
                     "orientation_weights", "cache"):
            value = getattr(self, name)
            if isinstance(value, str):  # a library caller's str paths: as Paths
                object.__setattr__(self, name, Path(value))
        if self.workers < 0:
            raise ValueError(f"workers must be at least 1, or 0 for auto, got {self.workers}")
        if self.max_pages < 1:
            raise ValueError(f"max_pages must be at least 1, got {self.max_pages}")
        if self.timeout is not None and not self.timeout > 0:
            raise ValueError(f"timeout must be positive seconds, got {self.timeout}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be at least 1, got {self.threads}")
        if self.precision not in REQUESTED_PRECISIONS:
            raise ValueError(f"precision must be one of {REQUESTED_PRECISIONS}, got {self.precision!r}")
        self.ingest  # noqa: B018 - validates dpi, backend, pixel limit and page selection
        self.flow  # noqa: B018

    @property
    def ingest(self) -> IngestConfig:
        return IngestConfig(dpi=self.dpi, pdf_backend=self.pdf_backend, max_pixels=self.max_pixels,
                            pages=PageSelection.parse(self.pages) if self.pages is not None else None,
                            max_pages=self.max_pages)

    @property
    def flow(self) -> FlowConfig:
        return FlowConfig(crop_margin=self.crop_margin, accept_score=self.accept_score,
                          other_signers=self.other_signers)


class ModelProvider(Protocol):
    """Builds the two models; must be picklable (worker processes call it in their initializer)."""

    def __call__(self, threads: int) -> tuple[Detector, Verifier]: ...


@dataclass(frozen=True)
class ManifestModels:
    """The :class:`ModelProvider` used by ``sigpipe run``: models from manifests (None = bundled)."""

    detector: Path | None = None
    verifier: Path | None = None
    detector_tta: bool = False
    precision: str = "f32"
    orient: bool = True
    orientation: Path | None = None

    def __call__(self, threads: int) -> tuple[Detector, Verifier]:
        """Load both models; when either fails, one :class:`ModelError` names every problem.

        Raises:
            ModelError: a manifest or weights file is missing, corrupt, or does not match its hash.
        """
        errors: list[str] = []
        verifier: Verifier | None = None
        detector: Detector | None = None
        try:
            verifier = Verifier.from_manifest(self.verifier, threads=threads, precision=self.precision)
        except ModelError as e:
            errors.append(f"verifier: {e}")
        try:
            from sigpipe.detector.detector import SignatureDetector

            detector = SignatureDetector.from_manifest(self.detector, threads=threads, tta=self.detector_tta,
                                                       precision=self.precision)
        except ModelError as e:
            errors.append(f"detector: {e}")
        if self.orient and detector is not None:
            try:
                detector = OrientingDetector(detector, PageOrienter(self.orientation, threads=threads,
                                                                    precision=self.precision))
            except ModelError as e:
                errors.append(f"orientation: {e}")
        if errors or detector is None or verifier is None:
            raise ModelError("; ".join(e.rstrip(".") for e in errors))
        return detector, verifier


@dataclass(frozen=True)
class _Task:
    name: str
    path: str
    claimed: Claim | None
    sha256: str | None
    drawn: dict[str, Any] = field(default_factory=dict)  # report fields of a cheque claimed by account (_drawn)


@dataclass
class _Outcome:
    """What the parent keeps while the batch runs."""

    reports: dict[str, DocumentReport] = field(default_factory=dict)
    pages_processed: int = 0
    processed: int = 0


def load_predictor(refs: str | Path, *, detector_weights: Path | None = None, verifier_weights: Path | None = None,
                   orient: bool = True, precision: str = "f32", threads: int | None = None,
                   ingest: IngestConfig = IngestConfig(), crop_margin: float = 0.08,
                   accept_score: float | None = None, cache: str | Path | None = None,
                   people: Collection[str] | None = None, other_signers: bool = False) -> SignaturePredictor:
    """The library's way into the pipeline: the bundled models (or the manifests given) with ``refs`` enrolled, as
    ``sigpipe run`` builds them, ready to judge one document at a time::

        predictor = load_predictor("examples/refs")
        report = predictor("examples/scans/0008_cheque.tif", claimed="peter-harris")
        report.verdict, [s.verdict for s in report.signatures], report.to_dict()

    Args:
        refs: ``REFS/<person>/*`` genuine specimens.
        detector_weights, verifier_weights: model manifests (None: the bundled models).
        orient: turn pages scanned upside down or sideways upright first.
        precision: ``f32``, ``bf16`` or ``auto`` (``sigpipe run --precision``).
        threads: CPU threads for the models (None: :func:`available_cores`).
        ingest: how documents (and specimen PDFs and pages) are rendered: the predictor's default, which a call
            can override (``predictor(path, ingest=...)``).
        crop_margin: margin around detector boxes before the verifier.
        accept_score: the score signatures judged genuine need for a ``genuine`` document (``--accept-score``).
        cache: embedding cache of the references (None: the default cache folder, ``sigpipe cache info``).
        people: enrol only these people of ``refs`` (None: everybody; a str is one name). Documents claimed by
            others get ``no_reference``, and a document without a claim is matched among these people only; a name
            without usable references is warned about.
        other_signers: documents may bear other people's signatures (``--other-signers``).

    Raises:
        ModelError: a model is missing or fails its hash check. InputError: ``refs`` is not a references folder.
        ValueError: an option out of its range (``threads``, ``crop_margin``, ``accept_score``, ``precision``).
    """
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be at least 1, not {threads}")
    flow = FlowConfig(crop_margin=crop_margin, accept_score=accept_score,  # checks its values before models load
                      other_signers=other_signers)
    detector, verifier = ManifestModels(detector_weights, verifier_weights, precision=precision,
                                        orient=orient)(threads or available_cores())
    warn_non_utf8_names()
    gallery = Gallery.enroll(refs, verifier, loader=specimen_loader(detector, replace(ingest, pages=None),
                                                                    crop_margin), cache=cache, people=people)
    wanted = [people] if isinstance(people, str) else sorted(set(people or ()))
    for person in wanted:
        if unicodedata.normalize("NFC", person) not in gallery.embeddings:
            log.warning("%r has no usable references in %s: documents claimed by them get no_reference", person,
                        refs)
    return SignaturePredictor(detector, verifier, gallery, flow, ingest, hint_claims=True)


def warn_non_utf8_names() -> None:
    """Warn when this Python reads file names in another encoding than UTF-8 (a locale such as ``en_US.ISO-8859-1``,
    outside Python's UTF-8 mode), as claims files and reports are written: a name with accents then matches no
    claim. The ``sigpipe`` command restarts itself in UTF-8 mode; a program of one's own runs with PYTHONUTF8=1."""
    encoding = sys.getfilesystemencoding()
    if not sys.flags.utf8_mode and encoding.lower().replace("-", "") != "utf8":
        log.warning("file names are read as %s, not UTF-8: a document or person whose name is not plain ASCII will "
                    "not match its claim (claims files are UTF-8); run Python with PYTHONUTF8=1", encoding)


def auto_workers(documents: int, cores: int) -> int:
    """How many documents ``--workers auto`` processes at a time: one worker process per core (at most
    :data:`AUTO_WORKERS_MAX`) for :data:`AUTO_WORKERS_FROM` documents or more, else 1 (in this process).

    Half of a document's time is Python and OpenCV work on one core, so one process leaves the other cores idle
    then; two workers of one thread each ran the 200-page throughput batch on 2 cores in 26 s against 31 s for one
    process of two threads (README, "The whole pipeline"). Workers start about a second later than the run's own
    models, which a batch of 40 documents did not win back."""
    return min(cores, AUTO_WORKERS_MAX) if documents >= AUTO_WORKERS_FROM and cores > 1 else 1


def _no_worker_processes() -> str | None:
    """Why worker processes cannot start here, or None: their queues' semaphores need a usable /dev/shm (a
    container's ``--ipc=none``, a read-only one), which a lock made the same way finds out at once."""
    try:
        multiprocessing.get_context("spawn").Lock()
    except OSError as e:
        return f"{e.strerror or e}; their queues need a writable /dev/shm"
    return None


def available_cores() -> int:
    """CPU threads this process may use: ``$SIGPIPE_THREADS`` if set (not 0), else the CPUs in its affinity mask."""
    from sigpipe._ultralytics import default_threads

    return default_threads()


_SHEET_NAME = re.compile(r".+\.sig\d+\.png")  # a review sheet: <document>.sig<N>.png


def _old_sheets(docs: Sequence[Path], scans: Path) -> set[Path]:
    """The review sheets (``<document>.sig<N>.png``) in a folder under SCANS that a run wrote into (its
    ``OUT/.sigpipe.lock``): an earlier night's OUT inside SCANS. Only those: a folder of real scans may hold a lock
    too (an OUT given above it, an older release's OUT given as SCANS), and its scans are documents."""
    marked: dict[Path, bool] = {}

    def run_folder(folder: Path) -> bool:
        if folder not in marked:
            marked[folder] = folder != scans and folder.parent != folder and (
                (folder / LOCK_FILE).is_file() or run_folder(folder.parent))
        return marked[folder]

    return {p for p in docs if _SHEET_NAME.fullmatch(p.name) and run_folder(p.parent)} if scans.is_dir() else set()


def _sha256_or_none(path: Path, max_bytes: int) -> str | None:
    """The file's sha256, to check its report by; None when it cannot be read, or is larger than a document may be
    (a sparse file of terabytes would be hashed here, before any --timeout applies): it then fails alone."""
    try:
        if path.stat().st_size > max_bytes:
            return None
        return sha256_file(path)
    except OSError:
        return None


def run_batch(config: RunConfig, models: ModelProvider | None = None) -> RunSummary:
    """Process every document under ``config.scans`` and write reports and the summary to ``config.out``.

    Args:
        config: the run's settings.
        models: builds the detector and verifier (default :class:`ManifestModels` from the config's manifests).
            Tests inject doubles here; it must be picklable when documents run in worker processes
            (``config.workers`` above 1, or auto on a large batch, or a ``timeout``).

    Returns:
        The summary (also written to ``OUT/summary.json`` and ``OUT/summary.csv``).

    Raises:
        NoDocumentsError: SCANS holds no document.
        ClaimsError: malformed claims CSV.
        MissingDependencyError: the chosen PDF backend is not installed.
        ModelError: a model cannot be loaded.
        InputError: REFS is not a folder, or OUT cannot be written.
        OutputBusyError: another run is writing to OUT.
    """
    started = datetime.now(UTC)
    t0 = time.monotonic()
    warn_non_utf8_names()
    if Path(config.out).resolve() == Path(config.scans).resolve():  # before OUT is taken: nothing written there
        raise InputError(f"OUT is SCANS itself ({config.out}): give the reports a folder of their own (--out)")
    with ExitStack() as stack:
        held = False

        def hold() -> None:
            """Take OUT for this run (one run at a time) and retract an earlier run's summary: this run's is
            written when it ends, so a summary in OUT always says that the last run into it finished."""
            nonlocal held
            if held:
                return
            _check_writable(config.out)
            stack.enter_context(out_lock(config.out))
            for name in (SUMMARY_JSON, SUMMARY_CSV):
                try:
                    (config.out / name).unlink(missing_ok=True)
                except OSError as e:  # a folder of that name (left by an old version for a SCANS folder so named)
                    raise OutputWriteError(f"cannot replace {config.out / name}: {e}; move it out of the way") from e
            held = True

        if Path(config.out).is_dir():  # at once: a bad claims file or an empty SCANS must not leave last night's
            hold()
        return _run(config, models, t0, started, hold)


def _run(config: RunConfig, models: ModelProvider | None, t0: float, started: datetime,
         hold: Callable[[], None]) -> RunSummary:
    """:func:`run_batch`'s work (``t0``: its monotonic start; ``started``: its start in UTC); ``hold()`` takes OUT,
    once the inputs are checked (a usage error leaves a new OUT uncreated)."""
    _check_temporary_folder()
    # every run, not only one with workers: a run with workers killed outright leaves the enrolled references'
    # embeddings and images in the temporary folder, and the next run may well have none
    _remove_stale_handovers()
    asked = os.environ.get("TMPDIR")
    if asked and os.path.realpath(asked) != os.path.realpath(tempfile.gettempdir()):  # Python's fallback, unsaid
        log.warning("TMPDIR=%s cannot be used (missing or not writable): documents are copied into %s instead",
                    asked, tempfile.gettempdir())
    if (left := remove_stale_copies()):
        log.info("removed %d document copies left in %s by processes killed", left, tempfile.gettempdir())
    check_backend(config.pdf_backend)
    unread: list[tuple[Path, str]] = []
    docs = discover_scans(config.scans, unread)
    unread_failures = [Failure(f"{relative_name(folder, Path(config.scans))}/", "unreadable_folder",
                               f"cannot read this folder ({why}): its documents were not processed")
                       for folder, why in unread]
    for f in unread_failures:
        log.error("%s: %s", f.document, f.message)
    refs_root, scans_root = Path(config.refs).resolve(), Path(config.scans).resolve()
    out_root = Path(config.out).resolve()
    specimens = ({p for p in docs if p.resolve().is_relative_to(refs_root)}  # REFS inside SCANS: not documents
                 if scans_root.is_dir() and refs_root.is_relative_to(scans_root) else set())
    # OUT inside SCANS: its files (review sheets, anything put there) are not documents either
    ours = ({p for p in docs if p.resolve().is_relative_to(out_root)}
            if scans_root.is_dir() and out_root.is_relative_to(scans_root) else set())
    sheets = _old_sheets(docs, Path(config.scans)) - ours  # an earlier run's OUT there: its review sheets likewise
    docs = [p for p in docs if p not in specimens and p not in ours and p not in sheets]
    if all(p.suffix.lower() in X9_SUFFIXES for p in docs):  # none, or only cash letters: split them first
        letters = _x9_files(config.scans)
        raise NoDocumentsError(
            f"no documents found in {config.scans} (looked for {', '.join(sorted(SCAN_SUFFIXES))}, "
            "recursively, case-insensitive" + (f"; {len(unread)} folder(s) cannot be read" if unread else "")
            + (f"; the {len(specimens)} under REFS are references" if specimens
                                               else "") + (f"; the {len(ours)} under OUT are sigpipe's own"
                                                           if ours else "")
            + (f"; {len(sheets)} are review sheets of an earlier run" if sheets else "") + ")"
            + (f"; {letters[0]} is an image cash letter (X9.37): 'sigpipe x9 split' makes its cheques documents"
               if letters else "")
        )
    names: dict[str, Path] = {}
    clashes: list[str] = []
    for p in docs:
        name = relative_name(p, config.scans)
        if name in names:  # a name that is not UTF-8, escaped, and a file really named so: one report for two
            clashes.append(f"{ascii(str(p))} (as {ascii(str(names[name]))})")
            continue
        names[name] = p
    if config.signatories and not config.claims:
        raise ClaimsError(f"a signatory table ({config.signatories}) is read through claims naming each document's "
                          "account: give --claims with a column 'account'")
    read = (read_claims(config.claims, names, config.scans, config.signatories) if config.claims
            else Claims({}, {}, {}))
    folded = _one_report_file(names, Path(config.out))  # after the claims are read: they name these documents
    for f in folded:
        del names[f.document]
        log.error("%s: %s", f.document, f.message)
    claims = read.people
    strictest = set(read.strictest)

    def drawn(name: str) -> dict[str, Any]:  # report fields: the account a cheque is claimed by, and its amount
        return {"account": read.accounts.get(name), "amount": read.amounts.get(name),
                "amount_missing": name in strictest, "currency": read.currencies.get(name, "")}

    unknown = {d: why for d, why in read.unknown.items() if d in names}  # (those not in SCANS: claims_not_in_scans)
    refused = {d: (UnknownAccountError.kind, why) for d, why in unknown.items()}
    damaged = {d: why for d, why in read.damaged.items() if d in names}
    refused |= {d: (BadSignatoryCardError.kind, why) for d, why in damaged.items()}
    if config.signatories:  # cheques by account: one the claims do not name is not guessed at one-to-many
        refused |= {n: (NoClaimError.kind, f"not claimed in {config.claims}: with a signatory table each document "
                        "is verified against the account the claims name") for n in names
                    if n not in claims and n not in refused}
    if not Path(config.refs).is_dir():
        raise InputError(f"references folder not found: {config.refs}")
    unlisted: list[OSError] = []  # (a broken link, person folders linked into a share not mounted, is no file)
    if not any(p.is_file() for p in visible_files(Path(config.refs), unlisted.append)):
        # a share that is not mounted leaves its empty mount point: every signature no_reference, every document to
        # review, and exit 0, which a scheduler read as a good night
        if unlisted:
            raise InputError(f"the references folder {config.refs} cannot be read: {unlisted[0]}")
        raise InputError(f"the references folder {config.refs} holds no file: nothing to verify the signatures "
                         "against (a share not mounted?); put each person's specimens in REFS/<person>/")

    cores = config.threads or available_cores()
    provider: ModelProvider = models or ManifestModels(config.detector_weights, config.verifier_weights,
                                                       config.detector_tta, config.precision, config.orient,
                                                       config.orientation_weights)
    detector, verifier = provider(cores)
    idents = model_idents(detector, verifier)
    hold()
    # a specimen PDF is read whole, whatever --pages selects of the documents
    specimen_ingest = replace(config.ingest, pages=None)
    # every document claimed: only the claimed people are read, however many REFS holds
    needed = (None if any(name not in claims and name not in refused for name in names)
              else {p for name in names if name in claims for p in claimants(claims[name])})
    gallery = Gallery.enroll(config.refs, verifier, loader=specimen_loader(detector, specimen_ingest,
                                                                           config.crop_margin),
                             cache=config.cache, people=needed)
    ref_errors, n_people = dict(gallery.errors), len(gallery.people)
    # claims on unknown accounts naming documents not in SCANS are warned about with the rest (no people to check)
    in_scans = set(names) | {f.document for f in folded}  # a document without a report file is still in SCANS
    warnings = claim_warnings(claims | {d: "?" for d in read.unknown if d not in in_scans}, in_scans, gallery.people,
                              gallery.folders)
    unclaimed = [n for n in names if n not in claims and n not in refused
                 and Path(n).suffix.lower() not in UNREAD_DOCUMENTS]  # (a file that fails unread: matched to nobody)
    no_claim = sorted(n for n, (kind, _) in refused.items() if kind == NoClaimError.kind)
    if no_claim:
        warnings.append(f"{len(no_claim)} document(s) have no claim in {config.claims}: with a signatory table they "
                        f"fail (error kind {NoClaimError.kind}) ({', '.join(no_claim[:5])}"
                        f"{', ...' if len(no_claim) > 5 else ''})")
    unusable = {d: why for d, why in read.unusable_amounts.items() if d in names}
    if unusable:  # before the strictest: these are its cause, and the fix is in the claims file
        warnings.append(f"{len(unusable)} document(s) have an amount in the claims that cannot be used: each is held "
                        "to every rule of its account's card, as without an amount: "
                        + "; ".join(f"{d}: {why}" for d, why in sorted(unusable.items())[:5])
                        + ("; ... (all of them: summary.json, unusable_amounts)" if len(unusable) > 5 else ""))
    if read.strictest:
        warnings.append(f"{len(read.strictest)} document(s) are drawn on accounts whose mandate asks more signers "
                        "over an amount, and the claims give no amount (or none that can be used): each is held to "
                        f"its account's strictest rule ({', '.join(read.strictest[:5])}"
                        f"{', ...' if len(read.strictest) > 5 else ''})")
    if unknown:
        warnings.append(f"{len(unknown)} document(s) are drawn on accounts the signatory table does not hold: "
                        f"they fail (error kind {UnknownAccountError.kind}): "
                        + "; ".join(f"{d}: {why}" for d, why in sorted(unknown.items())[:5])
                        + ("; ..." if len(unknown) > 5 else ""))
    if read.damaged_cards:  # said whether or not tonight's cheques use them: the table needs mending
        warnings.append(f"{len(read.damaged_cards)} account(s) of the signatory table have a signature card that "
                        f"cannot be used, and the {len(damaged)} document(s) drawn on them fail (error kind "
                        f"{BadSignatoryCardError.kind}): " + "; ".join(list(read.damaged_cards.values())[:5])
                        + ("; ... (all of them: summary.json, damaged_signature_cards)"
                           if len(read.damaged_cards) > 5 else ""))
    if config.claims and unclaimed:  # an empty export, or rows lost: one-to-many is not what was asked for
        warnings.append(f"{len(unclaimed)} of {len(names)} document(s) have no claim in {config.claims}: they are "
                        f"matched one-to-many against everybody ({', '.join(unclaimed[:5])}"
                        f"{', ...' if len(unclaimed) > 5 else ''})")
    if specimens:
        warnings.append(f"REFS ({config.refs}) lies inside SCANS: its {len(specimens)} file(s) are references, "
                        "not processed as documents")
    if sheets:
        warnings.append(f"{len(sheets)} review sheet(s) of earlier runs (folders holding {LOCK_FILE} under SCANS) "
                        f"are not processed as documents: {', '.join(sorted(map(str, sheets))[:3])}"
                        f"{', ...' if len(sheets) > 3 else ''}")
    if ours:
        warnings.append(f"OUT ({config.out}) lies inside SCANS: its {len(ours)} file(s) (review sheets, ...) are "
                        "not processed as documents")
    if clashes:
        warnings.append(f"{len(clashes)} file(s) not processed: each has the report name of another file (a name "
                        f"that is not UTF-8, escaped, and a file really named so): {'; '.join(clashes[:5])}"
                        "; rename one of them")
    unread_prefixes = tuple(f.document for f in unread_failures)  # their documents are there, just not readable
    orphans = [o for o in orphaned_reports(config.out, names) if not o.startswith(unread_prefixes)]
    if orphans:
        warnings.append(f"{len(orphans)} report(s) in {config.out} are of documents no longer in SCANS (renamed "
                        f"or removed): {', '.join(orphans[:5])}{', ...' if len(orphans) > 5 else ''}; this "
                        "summary leaves them out")
    if not gallery.people and needed != set():  # (nobody to read when every claim failed: no REFS problem)
        warnings.append(f"no usable references in {config.refs}: every signature will be 'no_reference'")
    single = single_reference_warning(gallery.embeddings, getattr(getattr(verifier, "manifest", None), "data", None))
    if single:
        warnings.append(single)
    for w in warnings:
        log.warning("%s", w)
    warnings += gallery.warnings  # logged as they happened
    if gallery.errors:
        log.warning("%d reference file(s) could not be used (see summary.json reference_errors)",
                     len(gallery.errors))
    t_check = time.monotonic()
    suspects = suspect_specimens(gallery)
    for s in suspects[:LOGGED_SUSPECTS]:  # a large gallery can have hundreds: summary.json lists them all
        log.warning("%s", s.message())
    if len(suspects) > LOGGED_SUSPECTS:
        log.warning("%d more suspect references (summary.json suspect_references; sigpipe check-refs lists them)",
                    len(suspects) - LOGGED_SUSPECTS)
    if gallery.verifier.rule.outlier_margin is not None:
        log.info("references checked: %d suspect(s) among %d specimens of %d people (%.1f s)", len(suspects),
                 sum(len(e) for e in gallery.embeddings.values()), len(gallery.people),
                 time.monotonic() - t_check)
    else:  # a model of `verifier train` or `ensemble`: its run's suspect_references were [] unsaid
        log.warning("references not checked for suspects (another person's signature among someone's specimens): "
                    "%s has no decision.outlier_margin; scripts/calibrate_outliers.py gives it one",
                    gallery.verifier.ident)
    suspect_files, gallery_root = {s.file for s in suspects}, gallery.root
    log.info("%d documents, %d people enrolled%s, models: %s", len(names), len(gallery.people),
             "" if needed is None else f" (those claimed, of {len(gallery.folders)} in REFS)", idents)
    if config.precision == "bf16" and not native_bf16():
        log.warning("this CPU does not compute bfloat16 natively: bf16 is emulated, slower than f32 "
                    "(--precision auto picks bf16 only where it is native)")

    removed = remove_stale_temporaries(config.out)
    if removed:
        log.info("removed %d temporary file(s) left by an interrupted run", removed)
    killers = _Suspects.load(config.out)  # documents that killed a run in one process outright
    outcome = _Outcome()
    tasks: list[_Task] = []
    predictor = SignaturePredictor(detector, verifier, gallery, config.flow)
    settings = predictor.settings(config.ingest)
    enrolled_files = gallery.specimen_files()  # once: a dict of every enrolled specimen, not one per document
    redo: Counter[str] = Counter()
    for name, path in names.items():
        claimed = claims.get(name)
        digest = _sha256_or_none(path, config.ingest.max_bytes)
        if name in refused:  # nothing to verify it against: its report says why, the next run retries it
            _record(outcome, config.out, DocumentReport.failure(
                DocumentInfo(name, digest, 0), None, *refused[name], idents, **drawn(name)))
            continue
        if not config.force:
            old = read_report(report_path(config.out, name))
            if old is not None:
                why = "its report file holds another name's report" if old.document.path != name else stale_reason(
                    old, digest, claimed, idents, predictor.references(claimed), settings, specimens=enrolled_files,
                    **drawn(name))  # (a file renamed Cheque.pdf -> cheque.pdf where OUT ignores case)
                if why is None:
                    outcome.reports[name] = old
                    continue
                redo[why] += 1
        tasks.append(_Task(name, str(path), claimed, digest, drawn(name)))
    kept = len(outcome.reports) - len(refused)
    if kept or redo:
        log.info("%d document(s) already have an up-to-date report; %d to process%s", kept, len(tasks),
                 "".join(f"; {n} because {why}" for why, n in sorted(redo.items())))

    progress = Progress(len(tasks), enabled=config.progress)
    wanted = config.workers or auto_workers(len(tasks), cores)
    if config.workers == AUTO_WORKERS and wanted > 1 and (no_pool := _no_worker_processes()) is not None:
        log.info("no worker processes for --workers auto (%s): documents are processed in this process", no_pool)
        wanted = 1
    workers = min(wanted, max(1, len(tasks)))
    if workers > cores:
        log.warning("%d workers on %d cores: each worker gets 1 thread; fewer workers would be faster",
                    workers, cores)
    pooled = tasks
    isolated = workers == 1 and config.timeout is None
    if isolated:
        # a document that killed a run reading it in one process (out of memory, a crash in a native library) is read
        # last, in a worker process of its own, until it has been read without that: in one process it killed the
        # run at the same document every night, and no summary was ever written; now it fails alone (worker_crashed)
        pooled = [t for t in tasks if killers.suspected(t)]
        if pooled:
            shown = ", ".join(t.name for t in pooled[:5]) + (", ..." if len(pooled) > 5 else "")
            warnings.append(f"{len(pooled)} document(s) killed a process reading them before, a run into "
                            f"{config.out} or its worker (out of memory? a crash? or stopped by SIGKILL): {shown}; "
                            "each is read last, in a process of its own (with --timeout every document is)")
            log.warning("%s", warnings[-1])
        apart = {t.name for t in pooled}
        try:
            for task in tasks:
                if task.name in apart:
                    continue
                killers.reading(task)
                report = predictor(task.path, relative=task.name, claimed=task.claimed, sha256=task.sha256,
                                   ingest=config.ingest)
                _record(outcome, config.out, replace(report, **task.drawn), progress)
        except (KeyboardInterrupt, SystemExit):  # Ctrl-C, SIGTERM: a poppler process rendering would outlive the run
            kill_all([p for p in descendants(os.getpid()) if _command(p) in POPPLER_TOOLS])  # only those: this
            raise  # process may be a program of the caller's, with children of its own
        finally:
            killers.reading(None)
    if pooled:
        threads = max(1, cores // workers)
        try:
            with _handover({f: getattr(gallery, f) for f in HANDED_OVER}) as state:
                del detector, verifier, gallery, predictor  # the workers load their own; free the parent's copy
                gc.collect()
                init = _WorkerInit(provider, threads, state, config.flow, config.ingest, idents,
                                   logging.getLogger().getEffectiveLevel())
                by_name = {t.name: t for t in pooled}
                # a suspect alone in its worker: two to a worker, the first one killed it, and both were read again
                for group in ([t] for t in pooled) if isolated else [pooled]:
                    for report in _run_pool(group, workers, init, config.timeout):
                        _record(outcome, config.out, replace(report, **drawn(report.document.path)), progress)
                        done = by_name.get(report.document.path)
                        if done is None:
                            continue
                        if report.error is not None and report.error.kind == WorkerCrashError.kind:
                            killers.crashed(done)  # (with --workers or --timeout too: tomorrow's may run in one)
                        else:
                            killers.cleared(done)
        except (NoWorkerProcesses, TemporaryFolderError) as e:  # (/dev/shm, TMPDIR): the night goes on all the same
            if not isolated:
                raise
            why = e.why if isinstance(e, NoWorkerProcesses) else str(e)
            for t in pooled:
                if t.name not in outcome.reports:
                    _record(outcome, config.out, DocumentReport.failure(
                        DocumentInfo(t.name, t.sha256, 0), t.claimed, WorkerCrashError.kind,
                        f"not read: it killed an earlier run's process, and no worker process to read it apart can "
                        f"start here ({why})", idents, **t.drawn), progress)
    killers.save()
    for task in tasks:  # every document found has a report, or the summary says why not: none goes missing
        if task.name not in outcome.reports:
            log.error("%s: no result came back for it", task.name)
            _record(outcome, config.out, DocumentReport.failure(
                DocumentInfo(task.name, task.sha256, 0), task.claimed, "internal",
                "no result came back for this document (a worker lost it); run again", idents,
                **task.drawn), progress)

    ordered = [outcome.reports[n] for n in sorted(outcome.reports)]
    resting = [r.document.path for r in ordered for s in r.signatures if s.verdict == "genuine"
               and s.nearest_reference and gallery_root is not None
               and str(gallery_root / s.nearest_reference) in suspect_files]
    if resting:
        warnings.append(f"{len(resting)} signature(s) judged genuine are closest to a suspect reference (see "
                        f"suspect_references): {', '.join(resting[:5])}{', ...' if len(resting) > 5 else ''}")
        log.warning("%s", warnings[-1])
    copies = duplicate_documents(ordered)
    if copies:
        shown = "; ".join(" = ".join(g) for g in copies[:5])
        warnings.append(f"{len(copies)} set(s) of documents have identical contents (the same file under two "
                        f"names: a cheque presented twice?): {shown}{'; ...' if len(copies) > 5 else ''}")
        log.warning("%s", warnings[-1])
    unsigned = claimed_unsigned(ordered)
    if unsigned:  # a cheque presented as signed: unsigned, or its signature missed (faint, a patterned background)
        warnings.append(f"{len(unsigned)} claimed document(s) show no signature the detector found: not signed, or "
                        f"signed where it cannot see (faint ink, a patterned background); look at each (sigpipe "
                        f"review lists them; summary.json claimed_unsigned): {', '.join(unsigned[:5])}"
                        f"{', ...' if len(unsigned) > 5 else ''}")
        log.warning("%s", warnings[-1])
    summary = RunSummary.from_reports(
        ordered, processed=outcome.processed, pages_processed=outcome.pages_processed,
        elapsed_s=time.monotonic() - t0, reference_errors=ref_errors, warnings=warnings, people=n_people,
        workers=workers, models=idents, suspect_references=suspects, unread=[*unread_failures, *folded],
        started_at=started, finished_at=datetime.now(UTC),
        claims_not_in_scans=sorted((set(claims) | set(read.unknown)) - set(names) - {f.document for f in folded}),
        unclaimed_documents=sorted(unclaimed) if config.claims else (), duplicate_documents=copies,
        damaged_signature_cards=read.damaged_cards, unusable_amounts=unusable,
    )
    try:
        write_summary(config.out, summary, ordered)
    except OSError as e:
        raise OutputWriteError(f"cannot write the summary to {config.out}: {e}") from e
    return summary


def single_reference_warning(embeddings: dict[str, Any], manifest: dict[str, Any] | None) -> str | None:
    """A warning naming the enrolled people with a single usable reference, or None: with one specimen the
    verifier is least sure, and a bank keeping one signature card per customer should know by how much (the skilled
    forgeries the manifest's test writers had accepted at K=1 and at K=5, when it records them)."""
    single = sorted(p for p, e in embeddings.items() if len(e) == 1)
    if not single:
        return None
    cells = ((manifest or {}).get("benchmarks") or {}).get("test_writers") or {}
    rates = {k: [c[k]["far_skilled"] for c in cells.values() if isinstance(c.get(k), dict)
                 and isinstance(c[k].get("far_skilled"), float)] for k in ("k1", "k5")}
    span = {k: f"{min(r):.0%}-{max(r):.0%}" for k, r in rates.items() if r}
    measured = (f" (on the verifier's test writers it accepted {span['k1']} of skilled forgeries with one reference, "
                f"{span['k5']} with five: README, Models)") if len(span) == 2 else ""
    shown = ", ".join(single[:5]) + (", ..." if len(single) > 5 else "")
    return (f"{len(single)} of {len(embeddings)} enrolled people have a single usable reference ({shown}): their "
            f"signatures are judged on it alone{measured}; enrol more specimens where you can")


EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()  # of a zero-byte file


def duplicate_documents(reports: Sequence[DocumentReport]) -> list[list[str]]:
    """Documents whose files have the same contents (sha256), as sorted groups of their names, groups in the order of
    their first name. Only byte-identical files count: a second scan of the same paper is not found; nor do empty
    files (two zero-byte files are no cheque presented twice, and each has failed as ``empty_document``)."""
    by_digest: dict[str, list[str]] = {}
    for r in reports:
        if r.document.sha256 is not None and r.document.sha256 != EMPTY_SHA256:
            by_digest.setdefault(r.document.sha256, []).append(r.document.path)
    return sorted((sorted(g) for g in by_digest.values() if len(g) > 1), key=lambda g: g[0])


X9_SUFFIXES = (".x937", ".x9", ".icl")


def _x9_files(scans: Path, limit: int = 10_000) -> list[Path]:
    """Image cash letters in SCANS (the first of its ``limit`` entries), for the hint when it holds no document."""
    entries = [scans] if scans.is_file() else itertools.islice(scans.rglob("*"), limit) if scans.is_dir() else []
    return [p for p in entries if p.suffix.lower() in X9_SUFFIXES][:1]


def _rule_of(claim: Claim | None) -> tuple[Rule, dict[str, str]]:
    """A claim's signing classes: its rule and each person's class (none for a plain mandate)."""
    return (claim.rule, claim.class_of) if isinstance(claim, Mandate) else ((), {})


def _one_report_file(names: Mapping[str, Path], out: Path) -> list[Failure]:
    """The documents whose report would be the same file in ``out`` as another's, where OUT's file system does not
    tell their names apart (:func:`~sigpipe._files.name_folding`: a Windows share, a vfat drive): each fails without a
    report, and the first in name order keeps the file. Without this the later one's report replaced the earlier
    one's, every night again, without a word. Where one of them already has its report there (an earlier night's),
    it keeps it: the newcomer fails. An OUT not made yet is probed where it will be made."""
    probed = out
    while not probed.is_dir() and probed.parent != probed:  # a new OUT: the folder it is made in
        probed = probed.parent
    folding = name_folding(probed)
    if folding is None:
        return []
    key, ignored = folding
    groups: dict[str, list[str]] = {}
    for name in sorted(names):
        groups.setdefault(key(name), []).append(name)
    failed = []
    for group in groups.values():
        if len(group) < 2:
            continue
        owner = next((n for n in group if (r := read_report(report_path(out, n))) is not None
                      and r.document.path == n), group[0])
        for name in group:
            if name == owner:
                continue
            failed.append(Failure(name, OutputWriteError.kind,
                                  f"no report: it would be the same file as {owner}'s report, because OUT ({out}) is "
                                  f"on a file system that ignores {ignored} in names; rename one of them in SCANS, or "
                                  "give an OUT on a file system that tells them apart"))
    return failed


def stale_reason(old: DocumentReport, sha256: str | None, claimed: Claim | None, models: dict[str, str],
                 references: ReferenceSet, settings: RunSettings, account: str | None = None,
                 amount: Decimal | None = None, amount_missing: bool = False, currency: str = "",
                 specimens: Mapping[str, Mapping[str, str | None]] | None = None) -> str | None:
    """Why a document's existing report must be redone, or None when it is up to date (status ok, and the same
    input, claim (with a cheque's account and amount), models, references and settings as this run).

    ``specimens`` (a gallery's :meth:`~sigpipe.verifier.gallery.Gallery.specimen_files`: each person's specimen
    files, relative to REFS, and their sha256) also redoes a report whose ``nearest_reference`` names a file its
    person no longer has, or (``nearest_reference_sha256``) a file now holding other contents: a specimen renamed,
    or two swapping names, leaves the references' contents, and so their sha256, as they were, but the report would
    point an auditor or a review sheet at a file that is gone or at another signature."""
    if not old.ok:
        return "it failed"
    if sha256 is None or old.document.sha256 != sha256:
        return "the input changed"
    if set(claimants(old.claimed_identity)) != set(claimants(claimed)) or \
            signers_required(old.claimed_identity) != signers_required(claimed) or \
            _rule_of(old.claimed_identity) != _rule_of(claimed) or \
            (old.account, old.amount, old.currency, old.amount_missing) != (account, amount, currency, amount_missing):
        # (order of the people is no change)
        return "the claim changed"
    if old.models != models:
        return "the models changed"
    if old.references != references:
        return "the references changed"
    if old.settings is not None and old.settings.reader != settings.reader:
        return "this release reads documents otherwise"
    if old.settings != settings:
        return "the settings changed"
    if not _agrees_with_itself(old):
        return "it does not agree with itself (edited?)"
    if specimens is not None and any(_moved(s, specimens) for s in old.signatures):
        return "a specimen it names was renamed or moved"
    return None


def _moved(s: SignatureResult, specimens: Mapping[str, Mapping[str, str | None]]) -> bool:
    """Whether signature ``s``'s ``nearest_reference`` is no longer its person's file of the contents it was
    compared with (a person no longer enrolled is the references' change, not this)."""
    if s.nearest_reference is None or s.identity is None or s.identity not in specimens:
        return False
    files = specimens[s.identity]
    if s.nearest_reference not in files:
        return True
    now = files[s.nearest_reference]
    return s.nearest_reference_sha256 is not None and now is not None and now != s.nearest_reference_sha256


def _agrees_with_itself(r: DocumentReport) -> bool:
    """Whether each signature's verdict follows from its distance and threshold, and the document's from its
    signatures (a report edited by hand, e.g. ``forged`` turned ``genuine``, is redone rather than kept)."""
    for s in r.signatures:
        if s.distance is None or s.threshold is None:
            continue
        margin = s.distance - s.threshold  # a distance and threshold rounded to the same value may sit either side
        if margin > SELF_CHECK_TOLERANCE and s.verdict == "genuine" or margin < -SELF_CHECK_TOLERANCE and \
                s.verdict in ("forged", "unknown_signer", "other_signer"):
            return False
    accept = r.settings.accept_score if r.settings is not None else None
    others = r.settings is not None and r.settings.other_signers
    return r.verdict == document_verdict(r.signatures, claimed=r.claimed_identity, accept_score=accept,
                                         other_signers=others)


def _check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".sigpipe-write-test-", dir=out)  # a new file: no planted link followed
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise InputError(f"cannot write reports to {out}: {e}") from e


def _save(out: Path, report: DocumentReport) -> DocumentReport:
    """Write a report; returns it, or for a document whose report cannot have a file (a name longer than the file
    system allows, a path through another document's report or through OUT's summary) a failure report kept in the
    summary only. Any other failure to write stops the run with one clear error (the next document would fail too).

    Raises:
        OutputWriteError: the report cannot be written.
    """
    def alone(why: str) -> DocumentReport:  # this document's report cannot be written; the others' can
        log.error("%s: %s", report.document.path, why)
        return DocumentReport.failure(report.document, report.claimed_identity, OutputWriteError.kind,
                                      f"no report file: {why}", report.models)

    top = report.document.path.split("/", 1)[0]
    if top != report.document.path and top in (SUMMARY_JSON, SUMMARY_CSV):
        return alone(f"it would go inside {out / top}, where the run's summary goes; rename the folder {top!r} "
                     "in SCANS")
    try:
        write_report(out, report)
        return report
    except OSError as e:
        if e.errno == errno.ENAMETOOLONG:
            where = report_path(out, report.document.path)
            if len(os.fsencode(where.name)) > 255:  # (the temporary file's name is short: not that)
                return alone(f"{where.name!r} is longer than the file system allows; shorten the document's name")
            return alone(f"its report's path in OUT ({len(os.fsencode(where))} bytes) is longer than the file system "
                         "allows; shorten the folders' names in SCANS, or give a shorter OUT")
        if e.errno == errno.EINVAL:  # a Windows share, a vfat drive: <>:"\|?*, a trailing dot or space, CON, NUL...
            return alone(f"OUT's file system refuses the name {report_path(out, report.document.path).name!r} or "
                         f"a folder's above it ({e.strerror}): Windows shares and vfat drives refuse the characters "
                         "<>:\"\\|?*, names ending in a dot or a space and names such as CON, NUL or COM1; rename the "
                         "document or the folder")
        if e.errno == errno.ELOOP:
            return alone(f"{e.filename} in OUT is a symbolic link: reports are not written through links in OUT; "
                         "remove it")
        if e.errno in (errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
            return alone(f"{report_path(out, report.document.path)} clashes with another document's report or "
                         f"folder ({e.strerror}); rename one of them")
        raise OutputWriteError(
            f"cannot write the report of {report.document.path} to {out}: {e}. The reports written so far are "
            "complete; run again to resume") from e


def _record(outcome: _Outcome, out: Path, report: DocumentReport, progress: Progress | None = None) -> None:
    report = _save(out, report)
    outcome.reports[report.document.path] = report
    outcome.processed += 1
    outcome.pages_processed += report.document.pages
    if progress is not None:
        progress.update(report.document.pages, failed=not report.ok)


# --- worker processes --------------------------------------------------------------------------------------------

HANDED_OVER = ("embeddings", "images", "digests", "sources", "source_digests")  # what workers get of the gallery


@dataclass(frozen=True)
class _WorkerInit:
    """Everything a worker needs, pickled once per worker process; the enrolled gallery (embeddings, images,
    its :data:`HANDED_OVER` fields) in the file ``gallery`` (:func:`_handover`)."""

    provider: Any
    threads: int
    gallery: tuple[str, str]  # the file's path and the sha256 of what the run wrote into it
    flow: FlowConfig
    ingest: IngestConfig
    idents: dict[str, str]
    log_level: int
    parent: int = field(default_factory=os.getpid)  # the run's process, which a worker must not outlive


_STATE: dict[str, Any] = {}
HANDOVER_PREFIX = "sigpipe-workers-"


@contextmanager
def _handover(state: object) -> Iterator[tuple[str, str]]:
    """``state`` (the enrolled gallery) in a file for the worker processes to read, removed when they are done;
    yields its path and the sha256 of its bytes, which a worker checks before it unpickles them: a pickle runs code,
    and a temporary folder that others may write (not sticky: they can rename the run's folder and put their own
    in its place) would let them choose it.

    Through the pool's start-up pipe instead, it could hang the run: Python 3.11's spawn writes it into a pipe whose
    reading end the parent still holds, so a worker killed before reading it (the out-of-memory killer) leaves that
    write waiting for ever once it is over the pipe's 64 KiB (16 specimens are 225 KB); it was also a copy per
    worker. The file is in a folder of the account's own (0700) in the temporary folder; one that a run killed
    outright (SIGKILL) leaves behind is removed by the account's next run (:func:`_run`).
    """
    with ExitStack() as stack:
        try:
            folder = stack.enter_context(owned_folder(HANDOVER_PREFIX))
        except OSError as e:
            raise _no_room(e) from e
        path = folder / "gallery.pickle"
        data = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            with open(path, "xb") as f:
                f.write(data)
        except OSError as e:
            raise _no_room(e) from e
        yield str(path), hashlib.sha256(data).hexdigest()


_REPLACED = ("the worker processes' copy of the references ({path}) is not what the run wrote: something else "
             "replaced it; it was not read, and no document was processed. Set TMPDIR to a folder only this "
             "account can write")


def _replaced(gallery: tuple[str, str]) -> str | None:
    """Why the workers refused the references' file (:func:`_handover`), or None: it is as the run wrote it."""
    path, digest = gallery
    try:
        with open(path, "rb") as f:
            intact = hashlib.sha256(f.read()).hexdigest() == digest
    except OSError:
        return None  # gone: the run is ending
    return None if intact else _REPLACED.format(path=path)


def _no_room(e: OSError) -> TemporaryFolderError:
    return TemporaryFolderError(
        f"cannot write the worker processes' copy of the references into the temporary folder "
        f"{tempfile.gettempdir()} ({e.strerror or e}): free space there, or set TMPDIR to a folder with room "
        "(or run with --workers 1 and no --timeout); no document was processed")


READING_FILE = ".sigpipe-reading"  # in OUT: what a run in one process is reading, and what killed such a run
MAX_READING_BYTES = 16 << 20  # 1000 deep paths of CJK names fit


MAX_SUSPECTS = 1000  # documents remembered at the most (the latest): a record that cannot grow for ever


class _Suspects:
    """``OUT/.sigpipe-reading`` (JSON): the document a run in one process is reading now (``reading``: its name and
    sha256), and those that killed a process reading them before (``suspects``): a run killed outright while reading
    one leaves it there, and a worker's crash adds it. Later runs read each suspect last, in a worker process of its
    own, until one reads it without the process dying. Known by name or by contents (a suspect renamed is still one),
    and kept while absent from SCANS (a night with another SCANS forgot them, and the next killed the run again). A
    single name remembered let two such documents kill the runs in turn (a retest). Best effort: a record that
    cannot be read or written is none (never a failed run); written by replacing the file (a link to a file
    elsewhere is never written through). Read and written under OUT's lock."""

    def __init__(self, path: Path, entries: list[tuple[str, str]]) -> None:
        self.path = path
        self.entries = entries[-MAX_SUSPECTS:]  # (name, sha256), oldest first
        self._now: tuple[str, str] | None = None

    @classmethod
    def load(cls, out: Path) -> _Suspects:
        path = out / READING_FILE
        entries: list[tuple[str, str]] = []
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        except OSError:
            return cls(path, entries)
        try:
            if stat.S_ISREG(os.fstat(fd).st_mode):  # a folder or a FIFO of that name: no record
                data = json.loads(os.read(fd, MAX_READING_BYTES).decode("utf-8", "surrogateescape"))
                found = data.get("suspects", [])
                found = [*(found if isinstance(found, list) else []), data.get("reading")]  # killed reading it
                entries = [e for e in map(_suspect, found) if e is not None]
        except (OSError, ValueError, AttributeError, TypeError, KeyError, RecursionError):
            pass
        finally:
            os.close(fd)
        return cls(path, entries)

    def suspected(self, task: _Task) -> bool:
        return any(task.name == n or (task.sha256 is not None and task.sha256 == d) for n, d in self.entries)

    def reading(self, task: _Task | None) -> None:
        """Record that this run now reads ``task`` in its own process (None: none)."""
        self._now = None if task is None else (task.name, task.sha256 or "")
        self.save()

    def crashed(self, task: _Task) -> None:
        """``task`` killed the worker process reading it: recorded at once (a run stopped after it kept it in
        memory only, a retest)."""
        if not self.suspected(task):
            self.entries = [*self.entries, (task.name, task.sha256 or "")][-MAX_SUSPECTS:]
            self.save()

    def cleared(self, task: _Task) -> None:
        """``task`` was read in a worker process without it dying: no longer a suspect."""
        self.entries = [(n, d) for n, d in self.entries if n != task.name and (not d or d != task.sha256)]

    def save(self) -> None:
        if not self.entries and self._now is None:
            with contextlib.suppress(OSError):
                if self.path.is_file() and not self.path.is_symlink():
                    self.path.unlink()
            return
        data = json.dumps({"reading": self._now, "suspects": self.entries}, ensure_ascii=False).encode("utf-8",
                                                                                                  "surrogateescape")
        with contextlib.suppress(OSError):  # (a full disk: the run stops on its next report anyway)
            # a name of its own (a folder planted at a fixed one turned the record off, a retest); one a kill leaves
            # is removed with the run's other temporaries
            fd, new = tempfile.mkstemp(dir=self.path.parent, prefix=f"{self.path.name}.", suffix=TMP_SUFFIX)
            try:
                os.write(fd, data)  # no sync: a process's death, not the machine's, is the case
            finally:
                os.close(fd)
            try:
                os.replace(new, self.path)
            except OSError:
                os.unlink(new)
                raise


class NoWorkerProcesses(ModelError):
    """Worker processes cannot start here at all (``why``: no usable /dev/shm)."""

    def __init__(self, why: str) -> None:
        super().__init__(f"cannot start worker processes ({why}): run with --workers 1 and no --timeout, or give the "
                         "run a writable /dev/shm")
        self.why = why


def _suspect(entry: object) -> tuple[str, str] | None:
    """A record's entry as ``(name, sha256)``: ``[name, sha256]``, or a name alone (the record's first form)."""
    if isinstance(entry, str):
        return entry, ""
    if isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str):
        return entry[0], entry[1] if isinstance(entry[1], str) else ""
    return None


def _check_temporary_folder() -> None:
    """Stop the run when there is no temporary folder to copy documents into (:func:`~sigpipe._files.
    temporary_folder`: a container's read-only root gave a traceback, or copies in the working folder).

    Raises:
        TemporaryFolderError: none.
    """
    try:
        temporary_folder()
    except OSError as e:
        raise TemporaryFolderError(str(e.strerror)) from e


def _remove_stale_handovers() -> None:
    """Remove the handover folders (:func:`_handover`) of this account's runs that are no longer running."""
    remove_stale_folders(HANDOVER_PREFIX)


def _die_with_parent(parent: int) -> None:
    """End this worker when the run's process dies, even by SIGKILL (a scheduler, the out-of-memory killer), which no
    handler sees: otherwise the worker lives on, holding its models' memory, and one stuck on a file that hangs a
    library holds a core for ever. On Linux the kernel sends SIGKILL (``PR_SET_PDEATHSIG``, which works even while
    native code holds the interpreter); everywhere a thread checks the parent every second."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)
    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _init_worker(init: _WorkerInit) -> None:
    """Pool initializer: die with the run, configure logging and threads, load the models once, rebuild the
    gallery.

    Ctrl-C, and a session's end (SIGHUP), reach every process of the terminal's group: the run handles them (and
    stops its workers), so a worker ignores them rather than print its own traceback. A worker that finds the
    gallery's file gone started too late: the run has ended (its last documents were done before this worker had
    loaded its models, or it was interrupted), and it leaves quietly instead of logging a failed start after a
    successful run.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the session's end reaches the run too, which stops its workers
    warnings.simplefilter("always")  # as `sigpipe run` does: each document's library warnings logged (_warnings)
    warnings.simplefilter("ignore", ResourceWarning)
    _die_with_parent(init.parent)
    logging.basicConfig(level=init.log_level, handlers=[StderrHandler()])  # as the CLI logs: names escaped
    if "torch" in sys.modules:  # inherited from the parent; the exported-model backends never import it
        sys.modules["torch"].set_num_threads(init.threads)
    detector, verifier = init.provider(init.threads)
    got = model_idents(detector, verifier)
    if got != init.idents:
        raise ModelError(f"worker loaded different models {got} than the parent {init.idents}")
    path, digest = init.gallery
    try:
        f = open(path, "rb")  # the run's own file, in its own private folder
    except FileNotFoundError:
        os._exit(0)
    with f:
        data = f.read()
    if hashlib.sha256(data).hexdigest() != digest:
        raise TemporaryFolderError(_REPLACED.format(path=path))
    gallery = Gallery(verifier, **pickle.loads(data))  # noqa: S301  # the bytes the run wrote, checked above
    _STATE.update(predictor=SignaturePredictor(detector, verifier, gallery, init.flow), ingest=init.ingest)


def _ping(hold: float = 0.0) -> int:
    time.sleep(hold)  # a busy worker makes the pool hand the next ping to another one
    return os.getpid()


def _process(task: _Task) -> dict[str, Any]:
    """Worker task: process one document and return its report as a dict (the parent writes it: one place that
    handles a full disk the same way whatever the number of workers)."""
    predictor: SignaturePredictor = _STATE["predictor"]
    report = predictor(task.path, relative=task.name, claimed=task.claimed, sha256=task.sha256,
                       ingest=_STATE["ingest"])
    return report.to_dict()


def _start_pool(workers: int, init: _WorkerInit, all_started: bool = False) -> ProcessPoolExecutor:
    """A fresh pool whose first worker has started (its models loaded), or with ``all_started`` every worker (so
    that a document's time limit does not count a worker's start-up).

    Raises:
        ModelError: the worker could not start (its initializer failed).
    """
    for attempt in range(1, MAX_IDLE_BREAKS + 1):  # a worker killed as it starts (for memory) is tried again
        try:
            ex = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                     initializer=_init_worker, initargs=(init,))
        except OSError as e:  # its queues' semaphores live in /dev/shm (a container's --ipc=none, a read-only one)
            raise NoWorkerProcesses(f"{e.strerror or e}; their queues need a writable /dev/shm") from e
        try:
            if not all_started:
                ex.submit(_ping).result()
            else:  # the pool spawns a worker per submission while none is idle: one ping each, until all answered
                pids: set[int] = set()
                while len(pids) < workers:
                    pids |= {f.result() for f in [ex.submit(_ping, 0.05) for _ in range(workers)]}
            return ex
        except (KeyboardInterrupt, SystemExit):  # Ctrl-C, SIGTERM while the workers start: they stop with the run
            _kill_workers(ex)
            raise
        except BrokenProcessPool as e:
            ex.shutdown(wait=False, cancel_futures=True)
            if (why := _replaced(init.gallery)) is not None:  # the workers refused it: no use trying again
                raise TemporaryFolderError(why) from e
            if attempt == MAX_IDLE_BREAKS:
                raise ModelError(f"worker processes could not start, {attempt} times (loading the models failed in a "
                                 "worker: see the log above; or a worker was killed, e.g. out of memory)") from e
            log.warning("a worker process died as it started; starting the pool again")
    raise AssertionError("unreachable")


def _run_pool(tasks: list[_Task], workers: int, init: _WorkerInit, timeout: float | None = None
              ) -> Iterator[DocumentReport]:
    """Process ``tasks`` in a spawned process pool; yields each report as it completes (the caller writes it).

    At most ``workers + 1`` documents are submitted at a time (``workers`` with a ``timeout``, so that a document's
    clock starts when a worker takes it). When the pool breaks (a worker died), the documents that were in flight
    become suspects and are retried one at a time in a fresh pool: a document that breaks the pool alone is the
    culprit and gets a ``worker_crashed`` report; the others are processed normally. A document still running after
    ``timeout`` seconds gets a ``timeout`` report; the pool is killed and the other documents in flight are retried
    first in a fresh one.
    """
    pending: deque[_Task] = deque(tasks)
    suspects: deque[_Task] = deque()
    depth = workers if timeout is not None else workers + 1
    idle_breaks = 0  # pools that broke before any document was in flight, in a row
    while pending or suspects:
        ex = _start_pool(workers, init, all_started=timeout is not None)
        inflight: dict[Future[dict[str, Any]], _Task] = {}
        started: dict[Future[dict[str, Any]], float] = {}

        at_submit: list[bool] = []  # the pool broke as a document was handed to it, not while one ran

        def submit(queue: deque[_Task]) -> None:
            t = queue.popleft()
            try:
                inflight[ex.submit(_process, t)] = t  # noqa: B023 - this pool's, called only while it lives
            except BrokenProcessPool:  # a worker died as the pool started: t never ran, so it waits its turn again
                queue.appendleft(t)
                at_submit.append(True)  # noqa: B023
                raise

        try:
            while pending or suspects or inflight:
                if suspects:
                    if not inflight:
                        submit(suspects)
                else:
                    while pending and len(inflight) < depth:
                        submit(pending)
                now = time.monotonic()
                for fut in inflight:
                    started.setdefault(fut, now)
                wait_s = None if timeout is None else max(0.0, min(started[f] for f in inflight) + timeout - now)
                done, _ = wait(inflight, timeout=wait_s, return_when=FIRST_COMPLETED)
                if not done and timeout is not None:
                    now = time.monotonic()
                    late = [f for f in inflight if now - started[f] >= timeout]
                    if late:
                        _kill_workers(ex)
                        for fut in late:
                            t = inflight.pop(fut)
                            del started[fut]
                            log.error("%s: still running after %gs; its worker was stopped", t.name, timeout)
                            report = DocumentReport.failure(
                                DocumentInfo(t.name, t.sha256, 0), t.claimed, DocumentTimeoutError.kind,
                                f"processing took longer than the {timeout:g}s limit (--timeout); stopped",
                                init.idents)
                            yield report
                        # the others were cut short through no fault of their own: first in the next pool
                        pending.extendleft(reversed([inflight[f] for f in inflight]))
                        inflight.clear()
                        break
                for fut in done:
                    report = _collect(fut, inflight[fut], init)  # raises BrokenProcessPool with fut in flight
                    del inflight[fut]
                    del started[fut]  # a finished future holds its report: kept, a night's would pile up here
                    yield report
        except (KeyboardInterrupt, SystemExit):  # Ctrl-C, SIGTERM: the workers stop with the run, not after
            _kill_workers(ex)
            raise
        except BrokenProcessPool:
            _kill_workers(ex)  # the others too, and the dead one's copy of its scan: left for good before
            lost = list(inflight.values())
            idle_breaks = 0 if lost else idle_breaks + 1
            if idle_breaks >= MAX_IDLE_BREAKS:
                raise ModelError(f"worker processes keep dying before they take a document ({idle_breaks} pools in a "
                                 "row; out of memory?); the reports written so far are complete: run again") from None
            if not lost:
                log.warning("a worker process died as the pool started; starting another")
            elif len(lost) == 1 and not at_submit:
                t = lost[0]
                log.error("%s: the worker process died while processing it", t.name)
                report = DocumentReport.failure(
                    DocumentInfo(t.name, t.sha256, 0), t.claimed, WorkerCrashError.kind,
                    "the worker process died while processing this document (crash, or killed for memory)",
                    init.idents)
                yield report
            else:
                log.warning("a worker process died; retrying its %d document(s) one at a time", len(lost))
                suspects.extend(lost)
        finally:
            ex.shutdown(wait=False, cancel_futures=True)


def _kill_workers(ex: ProcessPoolExecutor) -> None:
    """Kill the pool's worker processes (a stuck native call cannot be interrupted otherwise; Python 3.14 has
    ``ProcessPoolExecutor.kill_workers``, 3.11 only the private process table), their private copies of documents,
    and the processes they started (poppler's, rendering a PDF pypdfium2 could not open): those would outlive their
    worker, and one that hangs on a file would hold a core every night after."""
    for proc in list((getattr(ex, "_processes", None) or {}).values()):
        try:
            started = descendants(proc.pid) if proc.pid is not None else []
            proc.kill()
            proc.join(5)
            kill_all(started)
        except (OSError, ValueError, AttributeError):
            pass
    remove_stale_copies()  # the killed workers' private copies of customers' scans: not left for the next run


def descendants(pid: int) -> list[int]:
    """The processes ``pid`` started, and theirs (Linux's ``/proc``; none found elsewhere)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        for children in Path(f"/proc/{todo.pop()}/task").glob("*/children"):
            try:
                kids = [int(k) for k in children.read_text().split()]
            except (OSError, ValueError):  # gone meanwhile
                continue
            found += kids
            todo += kids
    return found


POPPLER_TOOLS = frozenset({"pdfinfo", "pdftoppm", "pdftocairo"})  # what pdf2image runs


def _command(pid: int) -> str:
    """The command name of process ``pid`` (Linux's ``/proc``), "" when unknown."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def kill_all(pids: Sequence[int]) -> None:
    """SIGKILL each of ``pids`` that is still there, and reap those that are this process's children by then: a
    killed worker's poppler processes are handed to the run where it is its namespace's init (pid 1 in a container,
    no ``--init``), and, never waited for, they piled up as zombies until a pids limit stopped new workers."""
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 2.0
    for pid in pids:
        while True:
            try:
                if os.waitpid(pid, os.WNOHANG)[0] or time.monotonic() > deadline:
                    break
            except ChildProcessError:  # not this process's: its own parent, or init, reaps it
                break
            time.sleep(0.01)


def _collect(fut: Future[dict[str, Any]], task: _Task, init: _WorkerInit) -> DocumentReport:
    """The report of a finished task (re-raises :class:`BrokenProcessPool`; other task errors become a report)."""
    try:
        return DocumentReport.from_dict(fut.result())
    except BrokenProcessPool:
        raise
    except Exception as e:  # noqa: BLE001 - a failure outside the document flow: record it and go on
        return DocumentReport.failure(DocumentInfo(task.name, task.sha256, 0), task.claimed, "internal",
                                      f"{type(e).__name__}: {e}", init.idents)
