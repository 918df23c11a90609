"""References gallery: the genuine specimens of each person, embedded once and cached by content hash.

``REFS/<person>/*`` holds images (or PDFs / whole pages, from which a detector crops the signature). Embeddings and
the preprocessed images (which a verifier's second stage compares with the questioned signature) are cached in
``REFS``-independent storage keyed by the file's sha256, the verifier's identity and the loader's (the detector that
crops page and PDF specimens), so a re-run is instant and an edited specimen is enrolled again. The same file
hashes fingerprint each person's references (:meth:`Gallery.fingerprint`), which reports record so that a re-run
redoes what a changed reference affects.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import tempfile
import time
import unicodedata
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from sigpipe._files import (
    MAX_DOCUMENT_BYTES,
    UNREAD_DOCUMENTS,
    CopyError,
    holds_image,
    open_regular,
    private_copy,
    readable_by_all,
    trusted_cache,
    visible_files,
)
from sigpipe._names import readable
from sigpipe._ultralytics import cache_dir
from sigpipe.datasets.corpus import READ_IMAGE_SUFFIXES, read_gray
from sigpipe.errors import InputError, SigpipeError
from sigpipe.verifier.decide import aggregate_groups, distances, reference_spread
from sigpipe.verifier.verifier import Decision, Verifier
from sigpipe.weights import new_file_mode, sha256_file

log = logging.getLogger(__name__)

SPECIMEN_SUFFIXES = READ_IMAGE_SUFFIXES | {".pdf"}
ENROLL_BATCH = 128  # specimen crops embedded per forward pass at enrolment
SHORTLIST = 3  # one-to-many with a second stage: the people it re-scores, best by Siamese margin
# When a specimen image is a page (cropped by the detector) rather than a signature crop: see looks_like_page. Part of
# the embedding cache's key, so specimens that an earlier rule took whole are cropped now.
PAGE_RULE = ("page-rule 4: 350x800 with 60 ink marks, or 700x1400 counted at 200 dpi by a finer file's own; "
             "negatives refused; a page without a detection and under 60 marks taken whole")


class SpecimenLoader(Protocol):
    """Turns a specimen file that is a PDF or a whole page into the signature crops found in it (the pipeline's
    detector). ``ident`` names everything the crops depend on (detector, rendering, margin): it is part of the
    embedding cache's key, so a new detector re-crops such specimens instead of reusing the old crops' embeddings."""

    @property
    def ident(self) -> str: ...

    def __call__(self, path: Path) -> list[np.ndarray]: ...


@dataclass(frozen=True)
class Match:
    """A questioned signature compared with one person (the claimed one, or the best one-to-many match)."""

    identity: str
    decision: Decision


@dataclass(frozen=True)
class _Index:
    """Every person's references stacked, for ranking everybody against a query in one matrix product.

    ``key`` names the arrays it was built from (person and ``id``); ``keep`` holds those arrays so that no other
    array can take one of their ids while the index lives.
    """

    key: tuple[tuple[str, int], ...]
    keep: tuple[np.ndarray, ...]
    people: tuple[str, ...]
    refs: np.ndarray  # (N, D) float64, person after person
    starts: np.ndarray  # (P,) first row of each person
    counts: np.ndarray  # (P,) references of each person
    spreads: np.ndarray  # (P,) mean distance among each person's references
    thresholds: np.ndarray  # (P,)


def specimen_images(x: np.ndarray) -> np.ndarray:
    """References' preprocessed images as the gallery keeps them (and as its cache stores them): ``(N, H, W)``
    uint8 from :meth:`Verifier.prepare`'s ``(N, 1, H, W)`` floats in [0, 1]. The second stage sees references in
    this form, so whatever compares a signature with references (``sigpipe run``, ``sigpipe verify``) rounds them
    the same way and gets the same distance."""
    return np.round(x[:, 0] * 255).astype(np.uint8)


@dataclass
class Gallery:
    """Enrolled people: ``embeddings[person]`` is ``(K, D)`` float32 and ``images[person]`` the ``(K, H, W)`` uint8
    preprocessed specimens (0 = background, 255 = ink); ``errors`` lists unusable specimen files; ``digests[person]``
    the sha256 of each of that person's enrolled specimen files; ``sources[person]`` the file each row of
    ``embeddings[person]`` came from (a PDF or page specimen can give several), relative to ``root`` (REFS) in
    POSIX form (``alice/2019/a.png``), and ``source_digests[person]`` that file's sha256 for each row; ``warnings``
    what else went wrong at enrolment (an unusable cache, person folders taken as one person), also logged;
    ``folders`` every person with a folder in ``root``, enrolled or not (an enrolment limited to some people leaves
    the others unread)."""

    verifier: Verifier
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    images: dict[str, np.ndarray] = field(default_factory=dict)
    digests: dict[str, tuple[str, ...]] = field(default_factory=dict)
    sources: dict[str, tuple[str, ...]] = field(default_factory=dict)
    source_digests: dict[str, tuple[str, ...]] = field(default_factory=dict)
    root: Path | None = None
    warnings: list[str] = field(default_factory=list)
    folders: tuple[str, ...] = ()
    duplicates: list[str] = field(default_factory=list)  # those of the warnings about files enrolled twice
    odd: list[str] = field(default_factory=list)  # those about specimens turned or holding several signatures
    _index: _Index | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def people(self) -> list[str]:
        return sorted(self.embeddings)

    @classmethod
    def enroll(
        cls, refs: str | Path, verifier: Verifier, loader: SpecimenLoader | None = None,
        cache: str | Path | None = None, people: Collection[str] | None = None,
    ) -> Gallery:
        """Embed every specimen in ``refs/<person>/`` and its sub-folders (cached by content hash).

        A specimen without ink (blank, or too small to hold a signature) and specimen files outside a person's folder
        are listed in ``errors`` instead of being enrolled. The cache is an optimisation: a cache folder that cannot be
        created or written is warned about once and the specimens are embedded without it; an unreadable cache entry
        (a crash can leave an empty one) is embedded again and rewritten. Person folders whose names differ only in
        Unicode form (``Zoë`` composed and decomposed) are one person, as claims name them either way (a warning).

        Args:
            refs: folder with one sub-folder per person.
            loader: turns a PDF or whole-page specimen into signature crops (the pipeline passes the detector);
                without it, every image file is taken as a signature crop and PDFs are reported as errors.
            cache: cache folder of embeddings and preprocessed specimens (default ``cache_dir()/gallery``), keyed by
                each file's sha256, the verifier and, with a loader, the loader's ``ident`` (for every specimen:
                telling a page from a crop would mean reading each cached file again).
            people: enrol only these people (names as claims spell them, either Unicode form); the other folders
                are listed in ``folders`` but not read. A run whose documents are all claimed needs only the claimed
                people, however many REFS holds (a bank's whole customer base). Default: everybody.

        Raises:
            InputError: ``refs`` is not a folder, or holds specimen files but nobody could be enrolled from person
                folders (``--refs`` given one person's folder).
        """
        root = Path(refs)
        if not root.is_dir():
            raise InputError(f"references folder not found: {root}")
        g = cls(verifier, root=root)

        def warn(message: str) -> None:
            g.warnings.append(message)
            log.warning("%s", message)

        store: Path | None = None  # None: no caching
        writing = True  # False after a failed write: entries are still read
        try:
            folder = Path(cache) if cache is not None else gallery_cache()
            # biometric data: a folder this run creates is its user's alone (an existing one keeps its permissions,
            # which a team sharing a cache may have chosen)
            # created 0700 if need be, and used by its real path alone when it can be trusted: a link on the way to
            # it, re-pointed after the check (a security test's), cannot send the entries elsewhere
            real, distrust = trusted_cache(folder, root)
            if real is not None:
                store = real
                exposed = readable_by_all(real)
                if exposed:
                    warn(f"the embedding cache {exposed}")
            else:  # another account could change what the references embed to: a forgery would pass
                warn(f"not using the embedding cache {folder}: {distrust}, so another account could change what "
                     "the references embed to; the references are embedded without caching (README, The cache)")
        except OSError as e:
            warn(f"cannot use the embedding cache {folder} ({e}): the references are embedded without caching")
        except InputError as e:  # no folder to name (an account without a home)
            warn(f"{e}: the references are embedded without caching")
        # the preprocessing too: a manifest edited by hand keeps its ident, and cached specimens must match the queries
        prep = json.dumps(verifier.preprocess_cfg.to_dict(), sort_keys=True)
        basis = f"{verifier.ident}|{prep}" + ("" if loader is None else f"|{loader.ident}|{PAGE_RULE}")
        key = hashlib.sha256(basis.encode()).hexdigest()[:12]
        # Cached embeddings are read back; the crops of the other specimens are embedded in batched forward passes
        # (one pass per specimen costs far more on a CPU), a bounded number of crops held at a time.
        found: dict[str, list[tuple[np.ndarray, np.ndarray] | None]] = {}
        digests: dict[str, list[str]] = {}
        files: dict[str, list[str]] = {}  # each slot's file, relative to root
        pending: list[tuple[str, int, Path, Path | None, list[np.ndarray]]] = []

        def skip(f: Path, why: str) -> None:
            g.errors[readable(str(f))] = why
            log.warning("reference %s skipped: %s", readable(str(f)), why)

        def flush() -> None:
            x = verifier.prepare([c for *_, crops in pending for c in crops])
            embs = verifier.embed_prepared(x)
            imgs = specimen_images(x)
            at = 0
            for person, slot, f, cached, crops in pending:
                n, at = len(crops), at + len(crops)
                inked = imgs[at - n : at].any(axis=(1, 2))
                if not inked.any():  # blank or uniform: nothing to compare a signature with (a speck passes)
                    skip(f, "no ink found: the specimen is blank or too small to hold a signature")
                    continue
                item = (embs[at - n : at][inked], imgs[at - n : at][inked])
                found[person][slot] = item
                if cached is not None and writing:
                    save(cached, item)
            pending.clear()

        denied = False

        def read_entry(cached: Path) -> tuple[np.ndarray, np.ndarray] | None:
            nonlocal denied
            try:
                item = _read_cached(cached)
                if item is not None:
                    with contextlib.suppress(OSError):  # another account's entry in a shared cache: left as it is
                        os.utime(cached)  # used: 'cache prune --unused-days' keeps it
                return item
            except PermissionError as e:  # another account's entry, in a cache shared without group read
                if not denied:
                    denied = True
                    warn(f"entries of the embedding cache {cached.parent} cannot be read ({e.strerror}): their "
                         "specimens are embedded again; a cache shared among accounts needs their group's read "
                         "permission")
                return None

        def save(cached: Path, item: tuple[np.ndarray, np.ndarray]) -> None:
            nonlocal writing
            tmp: Path | None = None
            try:
                # a new file of its own (runs sharing a cache do not share it; a link planted there is not followed)
                fd, name = tempfile.mkstemp(prefix=f"{cached.stem}.", suffix=".tmp.npz", dir=cached.parent)
                tmp = Path(name)
                os.fchmod(fd, new_file_mode())  # as a plain write would: a team's cache stays readable to the team
                with os.fdopen(fd, "wb") as f:
                    np.savez(f, embedding=item[0], image=item[1])
                tmp.replace(cached)
            except OSError as e:  # a full disk, a read-only folder: the embeddings are in memory all the same
                with contextlib.suppress(OSError):
                    if tmp is not None:
                        tmp.unlink(missing_ok=True)
                warn(f"cannot write to the embedding cache {cached.parent} ({e}): new embeddings are not cached")
                writing = False

        loose = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in SPECIMEN_SUFFIXES)
        for f in loose:
            skip(f, "not in a person's folder: specimens go in REFS/<person>/")
        if isinstance(people, str):  # one name, not its letters
            people = [people]
        wanted = None if people is None else {unicodedata.normalize("NFC", p) for p in people}
        for gone in sorted(p for p in root.iterdir() if p.is_symlink() and not p.exists()
                           and not p.name.startswith(".") and p.suffix.lower() not in SPECIMEN_SUFFIXES):
            if wanted is None or unicodedata.normalize("NFC", readable(gone.name)) in wanted:
                skip(gone, "a broken link: the person's folder it pointed to is gone (a share not mounted?)")
        folders: dict[str, str] = {}  # person: the first folder of theirs
        for person_dir in person_dirs(root):
            person = unicodedata.normalize("NFC", readable(person_dir.name))  # as claims CSVs spell it
            first = folders.setdefault(person, person_dir.name)
            if wanted is not None and person not in wanted:
                continue
            if first != person_dir.name:
                warn(f"REFS folders {ascii(first)} and {ascii(person_dir.name)} differ only in Unicode form: their "
                     f"specimens are taken as one person, {person!r}")
            slots = found.setdefault(person, [])
            hashes = digests.setdefault(person, [])
            named = files.setdefault(person, [])
            problems: dict[Path, str] = {}
            for f in specimen_files(person_dir, problems):
                try:
                    # without a cache nothing is looked up: the copy below is the one read
                    digest = sha256_file(f) if store is not None else ""
                    item = read_entry(store / f"{key}-{digest}.npz") if store is not None else None
                    if item is not None:
                        slots.append(item)
                        hashes.append(digest)
                        named.append(readable(f.relative_to(root).as_posix()))
                        continue
                    # the bytes decoded are the bytes hashed: read by path again, a specimen swapped for another
                    # between the two reads (and put back after) would leave the other's embedding cached under this
                    # file's sha256, and every later run would judge against it while REFS looks as it should
                    with private_copy(f, MAX_DOCUMENT_BYTES) as (copy, digest):
                        try:
                            crops = specimen_crops(copy, loader, verifier.preprocess_cfg.colour)
                        except (SigpipeError, OSError, ValueError) as e:  # named by the file, not its copy
                            skip(f, str(e).replace(str(copy), str(f)))
                            continue
                    cached = None if store is None else store / f"{key}-{digest}.npz"
                    pending.append((person, len(slots), f, cached, crops))
                    slots.append(None)
                    hashes.append(digest)
                    named.append(readable(f.relative_to(root).as_posix()))
                except CopyError as e:  # the temporary folder's fault: judging without this specimen would
                    if e.errno == errno.ENOENT and e.filename is None:  # change verdicts unsaid; none at all:
                        raise InputError(f"cannot copy the reference {f}: {e.strerror}") from e  # it says what to do
                    raise InputError(
                        f"cannot copy the reference {f} into the temporary folder {tempfile.gettempdir()} "
                        f"({e.strerror or e}): free space there, or set TMPDIR to a folder with room") from e
                except (SigpipeError, OSError, ValueError) as e:
                    skip(f, str(e))
                if sum(len(item[4]) for item in pending) >= ENROLL_BATCH:
                    flush()
            for where, why in problems.items():
                skip(where, why)
        if pending:
            flush()
        g.folders = tuple(sorted(folders))
        if loose and not folders:
            raise InputError(f"{root} holds specimen files but no person folders: it should hold one folder per "
                             "person (REFS/<person>/<specimens>), not one person's specimens")
        for person, slots in found.items():
            done = [e for e in slots if e is not None]
            if done:
                g.embeddings[person] = np.concatenate([e for e, _ in done]).astype(np.float32)
                g.images[person] = np.concatenate([i for _, i in done])
                g.digests[person] = tuple(d for d, e in zip(digests[person], slots, strict=True) if e is not None)
                g.sources[person] = tuple(name for name, e in zip(files[person], slots, strict=True)
                                          if e is not None for _ in range(len(e[0])))
                g.source_digests[person] = tuple(d for d, e in zip(digests[person], slots, strict=True)
                                                 if e is not None for _ in range(len(e[0])))
        for message in _duplicates({p: [(d, f) for d, f, e in zip(digests[p], files[p], found[p], strict=True)
                                        if e is not None] for p in g.embeddings}):
            warn(message)
            g.duplicates.append(message)
        for message in _near_duplicates(g):
            warn(message)
            g.duplicates.append(message)
        for message in _odd_layouts(g):
            warn(message)
            g.odd.append(message)
        return g

    def source(self, person: str, index: int | None) -> str | None:
        """The specimen file (relative to REFS) of row ``index`` of ``person``'s references; None when unknown (a
        gallery built from arrays)."""
        files = self.sources.get(person)
        return files[index] if files is not None and index is not None and 0 <= index < len(files) else None

    def source_sha256(self, person: str, index: int | None) -> str | None:
        """The sha256 of :meth:`source`'s file as it was enrolled; None when unknown."""
        digests = self.source_digests.get(person)
        return digests[index] if digests is not None and index is not None and 0 <= index < len(digests) else None

    def specimen_files(self) -> dict[str, dict[str, str | None]]:
        """Each enrolled person's specimen files (relative to REFS) and their sha256 (None when unknown)."""
        return {p: dict(zip(names, self.source_digests.get(p) or [None] * len(names), strict=True))
                for p, names in self.sources.items()}

    def specimen_path(self, relative: str) -> str:
        """A specimen file as ``errors`` name files: under ``root`` when the gallery was enrolled from a folder."""
        return relative if self.root is None else str(self.root / relative)

    def fingerprint(self, identities: Sequence[str] | None) -> tuple[int, int, str]:
        """What a signature of a document is compared with: ``(people, specimens, sha256)`` of the references of the
        claimed people (those of them enrolled), or of every enrolled person for ``None`` (one-to-many).

        The sha256 covers each person's name and the contents of their specimen files (sorted, so renaming or
        reordering files changes nothing; adding, removing or editing one does). A person enrolled without file
        digests (a gallery built from arrays) is fingerprinted by their embeddings instead.
        """
        if identities is None:
            people = self.people
        else:
            people = sorted({p for p in identities if p in self.embeddings})
        lines = []
        for person in people:
            files = self.digests.get(person)
            part = ("\n".join(sorted(files)).encode() if files is not None
                    else np.ascontiguousarray(self.embeddings[person], np.float32).tobytes())
            lines.append(f"{person}\t{hashlib.sha256(part).hexdigest()}\n")
        specimens = sum(len(self.embeddings[p]) for p in people)
        return len(people), specimens, hashlib.sha256("".join(lines).encode()).hexdigest()

    def compare(self, query: np.ndarray, identity: str, query_image: np.ndarray | None = None,
                second_stage: bool = True) -> Match:
        """Compare one embedding ``(D,)`` (and its preprocessed image ``(1, H, W)``, which a verifier with a second
        stage needs) with a named person's references."""
        return Match(identity, self.verifier.decide(query, self.embeddings[identity], query_image,
                                                    self.images.get(identity), second_stage=second_stage))

    def best_match(self, query: np.ndarray, query_image: np.ndarray | None = None,
                   shortlist: int = SHORTLIST) -> Match | None:
        """One-to-many: the enrolled person the query is most clearly genuine for, i.e. with the lowest distance
        relative to that person's own threshold (which depends on their number of references and their spread).

        Everybody is ranked by that margin on the Siamese distance at once (:meth:`margins`); the best is then
        compared in full, or with a second stage the ``shortlist`` best (the pair network costs K forward passes per
        person), the best of them by the fused margin being the match.
        """
        if not self.embeddings:
            return None
        people, m = self.margins(query)
        order = np.argsort(m, kind="stable")[: shortlist if self.verifier.needs_images else 1]
        best: Match | None = None
        for person in (people[i] for i in order):
            match = self.compare(query, person, query_image)
            if best is None or _margin(match) < _margin(best):
                best = match
        return best

    def margins(self, query: np.ndarray) -> tuple[tuple[str, ...], np.ndarray]:
        """The Siamese margin (aggregated distance minus threshold, as :meth:`Verifier.decide` computes them
        without a second stage) of ``query`` ``(D,)`` for every enrolled person: ``(people, (P,) margins)``; for
        ``(Q, D)`` queries, ``(people, (Q, P) margins)``.

        One distance computation over all the references stacked (built once, and again when ``embeddings``
        changes): ranking 10,000 people this way takes milliseconds, not a Python call per person.
        """
        if not self.embeddings:
            return (), np.zeros(np.shape(query)[:-1] + (0,))
        idx = self._stacked()
        agg = aggregate_groups(distances(query, idx.refs), idx.starts, idx.counts, self.verifier.rule.aggregation,
                               idx.spreads)
        return idx.people, agg - idx.thresholds

    def _stacked(self) -> _Index:
        key = tuple((p, id(e)) for p, e in self.embeddings.items())
        if self._index is not None and self._index.key == key:
            return self._index
        people = tuple(self.people)
        arrays = [np.atleast_2d(np.asarray(self.embeddings[p], np.float64)) for p in people]
        counts = np.array([len(a) for a in arrays])
        spreads = np.array([reference_spread(a) for a in arrays])
        rule = self.verifier.rule
        self._index = _Index(
            key=key, keep=tuple(self.embeddings.values()), people=people, refs=np.concatenate(arrays),
            starts=np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.intp), counts=counts, spreads=spreads,
            thresholds=np.array([rule.threshold(int(k), float(sp)) for k, sp in zip(counts, spreads, strict=True)]),
        )
        return self._index


# Specimens as the verifier sees them (preprocessed canvases, ink light) that a bank's export got wrong all at once,
# which the comparison of each with its person's other specimens cannot see (a specimen audit: every specimen turned a
# quarter, or cards of three stacked signatures, made every genuine cheque forged, check-refs silent). Said of REFS as
# a whole, not of a specimen: one person's signatures may well be tall (a name over a surname: 38% of CEDAR's
# specimens so rearranged have ink 1.5 times taller than wide; initials 21%) or carry a date below (a retest).
TALL_INK = 1.5  # ink height over width: 1 of 3,420 corpus specimens is over it (CEDAR 027's tall hand); turned ~4
STACKED_GAPS = 2  # blank bands across the ink, each 8% of its height: 3 of 3,420 corpus specimens have two
ODD_SHARE = 0.5  # of the specimens enrolled, at least ODD_MIN of them (six people with a card each went unsaid at 8)
ODD_MIN = 5
ODD_WORDS = {
    "turned": "have ink at least 1.5 times taller than wide: exported turned a quarter? Save them the right way up",
    "stacked": "hold their ink in three or more bands one above another: signature cards of several specimens? Crop "
               "each specimen into a file of its own",
}


def odd_layout(canvas: np.ndarray) -> str | None:
    """How a preprocessed specimen (``(H, W)``, ink light on black) looks unlike one signature the right way up:
    ``"turned"`` (ink taller than wide), ``"stacked"`` (ink in three or more bands one above another), or None."""
    img = np.asarray(canvas, np.float32)
    if img.max() <= 0:
        return None
    ink = img > 0.2 * img.max()
    ys, xs = np.nonzero(ink)
    h, w = int(ys.max() - ys.min() + 1), int(xs.max() - xs.min() + 1)
    if h > TALL_INK * w:
        return "turned"
    blank = np.diff(np.flatnonzero(ink.any(axis=1))) - 1  # blank rows between one inked row and the next
    return "stacked" if int((blank >= max(2, 0.08 * h)).sum()) >= STACKED_GAPS else None


def _odd_layouts(g: Gallery) -> list[str]:
    """Warnings for REFS whose specimens are mostly :func:`odd_layout` in one way (:data:`ODD_SHARE`)."""
    found: dict[str, list[str]] = {}
    n = 0
    for person in sorted(g.images):
        for i, image in enumerate(g.images[person]):
            n += 1
            if (kind := odd_layout(image)) is not None:
                rel = g.source(person, i)
                found.setdefault(kind, []).append(g.specimen_path(rel) if rel else f"{person}[{i}]")
    return [f"{len(files)} of the {n} specimens enrolled {ODD_WORDS[kind]} ({', '.join(files[:3])}"
            f"{', ...' if len(files) > 3 else ''}); they are used all the same"
            for kind, files in sorted(found.items()) if n >= ODD_MIN and len(files) >= ODD_SHARE * n]


# Two specimens of one person nearer than this are one signature saved twice (a JPEG of a PNG, a rescan): 98.7% of
# JPEG copies (quality 75) of 300 corpus specimens are nearer (median 0.004), and of 20,700 pairs of genuine specimens
# of 75 writers, the 76 nearer are the corpora's own copies of one image (70 pixel for pixel); distinct signatures of a
# steady hand come as near as 0.045. Counted twice, a copy narrows the person's threshold unsaid, as an identical file
# did before it was warned about (a specimen audit)
NEAR_DUPLICATE = 0.03
# ... and nearer than this share of the median distance among the person's specimens (three at least): the figure
# above is the shipped verifier's; a verifier of other scale (a retrained one, a test's) is judged by its own spread
NEAR_SHARE = 0.1


def _near_duplicates(g: Gallery) -> list[str]:
    """Warnings for specimens of one person, from different files, that are one signature saved twice."""
    out = []
    for person in sorted(g.embeddings):
        e = np.asarray(g.embeddings[person], np.float64)
        digests = g.source_digests.get(person)
        if len(e) < 3 or digests is None:
            continue
        d = np.sqrt(np.clip(2.0 - 2.0 * e @ e.T, 0.0, None))
        near = min(NEAR_DUPLICATE, NEAR_SHARE * float(np.median(d[np.triu_indices(len(e), 1)])))
        pairs = [(i, j) for i, j in zip(*np.nonzero(np.triu(d < near, 1)), strict=True)
                 if digests[i] != digests[j]]  # the same file twice is _duplicates'; a PDF's pages are specimens
        if pairs:
            shown = "; ".join(f"{g.source(person, int(i))} ~ {g.source(person, int(j))} ({d[i, j]:.3f})"
                              for i, j in pairs[:3]) + ("; ..." if len(pairs) > 3 else "")
            out.append(f"'{person}' has {len(pairs)} pair(s) of specimens that are one signature saved twice "
                       f"({shown}): each copy counts in their threshold; keep one")
    return out


def _duplicates(enrolled: dict[str, list[tuple[str, str]]]) -> list[str]:
    """Warnings for specimen files of the same content enrolled more than once: under several people (a file filed
    under both: it belongs to one of them), or twice for one person (counted twice, it narrows that person's spread
    and so their threshold). One warning per group of people. ``enrolled[person]`` lists ``(sha256, file)`` of the
    person's enrolled specimens."""
    where: dict[str, list[tuple[str, str]]] = {}
    for person, items in enrolled.items():
        for digest, file in items:
            where.setdefault(digest, []).append((person, file))
    groups: dict[tuple[str, ...], list[str]] = {}
    for places in where.values():
        if len(places) > 1:
            groups.setdefault(tuple(sorted({p for p, _ in places})), []).append(" = ".join(f for _, f in places))
    out = []
    for people, same in sorted(groups.items()):
        shown = "; ".join(same[:3]) + ("; ..." if len(same) > 3 else "")
        names = ", ".join(f"'{p}'" for p in people)  # names are readable() already: repr would escape twice
        out.append(f"{len(same)} specimen(s) enrolled for {len(people)} people, {names}, are the same files "
                   f"({shown}): each belongs to one of them" if len(people) > 1 else
                   f"{names} has {len(same)} specimen(s) more than once ({shown}): each copy counts in their "
                   "threshold; keep one")
    return out


def _read_cached(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """A cache entry's ``(embeddings, images)``, or None to embed the specimen again: no entry, a damaged one, or
    one written by a version that enrolled blank specimens.

    Raises:
        PermissionError: the entry is not this account's to read (a shared cache): the caller says so.
    """
    try:
        if not path.is_file():
            return None
        with np.load(path) as z:
            emb, img = z["embedding"], z["image"]
        if emb.ndim != 2 or img.ndim != 3 or len(emb) != len(img) or not len(img):
            raise ValueError(f"arrays of shapes {emb.shape} and {img.shape}")
    except PermissionError:
        raise
    except Exception as e:  # noqa: BLE001 - a damaged entry (empty after a crash, truncated, not a .npz) fails in
        # numpy, zipfile or zlib in many ways; each is a cache miss
        log.info("embedding cache entry %s is unreadable (%s: %s): the specimen is embedded again", path,
                 type(e).__name__, e)
        return None
    return (emb, img) if img.any() else None


# Cache entries as ``Gallery.enroll`` names them: ``<key>-<sha256 of the specimen file>.npz``, and the temporaries
# of ``save`` (``<key>-<sha256>.<random>.tmp.npz``; earlier releases put the pid there).
_ENTRY = re.compile(r"^[0-9a-f]{12}-([0-9a-f]{64})\.npz$")
_TEMPORARY = re.compile(r"^[0-9a-f]{12}-[0-9a-f]{64}\.\w+\.tmp\.npz$")
STALE_TEMPORARY_S = 3600.0  # an enrolment writes its temporary and renames it within seconds


def cache_entries(folder: Path) -> list[Path]:
    """The cache entries in ``folder`` (not temporaries, nor other files), sorted."""
    return sorted(f for f in folder.iterdir() if _ENTRY.match(f.name) and f.is_file()) if folder.is_dir() else []


def gallery_cache() -> Path:
    """The default folder of the references' embedding cache."""
    return cache_dir() / "gallery"


@dataclass(frozen=True)
class CachePrune:
    """What :func:`prune_cache` found: entries ``kept`` (of a specimen still in REFS) and ``removed`` (of none, or
    ``unused`` of them: not used for as long as asked), the bytes those held, leftover temporaries removed, and the
    specimen files of REFS it could not read (their entries are removed too: a file that cannot be read cannot be
    enrolled)."""

    kept: int
    removed: int
    removed_bytes: int
    temporaries: int
    unreadable: tuple[str, ...]
    unused: int = 0

    def to_dict(self) -> dict[str, object]:
        return {"kept": self.kept, "removed": self.removed, "unused": self.unused,
                "removed_bytes": self.removed_bytes, "temporaries": self.temporaries,
                "unreadable": list(self.unreadable)}


def specimen_digests(refs: Path) -> tuple[set[str], list[str]]:
    """The sha256 of every specimen file under ``refs`` (person folders and their sub-folders, hidden names skipped,
    as :meth:`Gallery.enroll` reads them), and the files that could not be read."""
    digests: set[str] = set()
    unreadable: list[str] = []
    for person_dir in person_dirs(refs):
        problems: dict[Path, str] = {}
        for f in specimen_files(person_dir, problems):
            try:
                digests.add(sha256_file(f))
            except OSError:
                unreadable.append(str(f))
        # (a file of a kind never read as a specimen, a .zip say, or a FIFO, has no cache entry to keep: not unreadable)
        unreadable += [str(p) for p in problems if not (p.suffix.lower() in UNREAD_DOCUMENTS and p.is_file())
                       and not (p.exists() and not p.is_file() and not p.is_dir())]
    return digests, unreadable


def prune_cache(refs: Sequence[Path], folder: Path | None = None, dry_run: bool = False,
                unused_days: float | None = None) -> CachePrune:
    """Remove the embedding cache entries of specimens that are no longer in any of the ``refs`` folders.

    An entry holds a specimen's embeddings and its preprocessed image (biometric data), under the sha256 of the
    file's content: removing a person's folder from REFS leaves their entries behind until pruned. Entries of every
    model and rendering are considered; files that are not cache entries are left alone. Safe beside a run: a run
    that misses an entry embeds the specimen again.

    Args:
        refs: every references folder the cache serves (an entry is kept when its file is in any of them).
        folder: the cache folder (default :func:`gallery_cache`).
        dry_run: count, remove nothing.
        unused_days: also remove the entries no enrolment has written or read for that many days, of specimens
            still in REFS too: after an upgrade that changed the models, the old release's entries (biometric data)
            are never read again. An enrolment marks each entry it uses (its modification time).

    Raises:
        InputError: a folder of ``refs`` holds no person folder (one person's folder given, or a mistyped path):
            pruning against it would remove everything.
    """
    keep: set[str] = set()
    unreadable: list[str] = []
    for r in refs:
        if not person_dirs(Path(r)):
            raise InputError(f"{r} holds no person folder: give references folders (REFS/<person>/<specimens>); "
                             "'sigpipe cache clear' empties the cache")
        digests, bad = specimen_digests(Path(r))
        keep |= digests
        unreadable += bad
    folder = folder or gallery_cache()
    kept = removed = removed_bytes = temporaries = unused = 0
    now = time.time()
    for f in sorted(folder.iterdir()) if folder.is_dir() else []:
        m = _ENTRY.match(f.name)
        try:
            if m is not None and f.is_file():
                st = f.stat()
                stale = unused_days is not None and now - st.st_mtime > unused_days * 86400.0
                if m.group(1) in keep and not stale:
                    kept += 1
                    continue
                if not dry_run:
                    f.unlink()
                removed, removed_bytes = removed + 1, removed_bytes + st.st_size
                unused += int(m.group(1) in keep)
            elif _TEMPORARY.match(f.name) and f.is_file() and now - f.stat().st_mtime > STALE_TEMPORARY_S:
                if not dry_run:
                    f.unlink()
                temporaries += 1
        except FileNotFoundError:  # removed meanwhile (another prune)
            continue
    return CachePrune(kept, removed, removed_bytes, temporaries, tuple(unreadable), unused)


def _margin(m: Match) -> float:
    return m.decision.distance - m.decision.threshold


def person_dirs(refs: Path) -> list[Path]:
    """The person folders of a references folder (hidden ones skipped), sorted."""
    return sorted(p for p in refs.iterdir() if p.is_dir() and not p.name.startswith("."))


def specimen_files(person_dir: Path, problems: dict[Path, str] | None = None) -> list[Path]:
    """A person's specimen files: in their folder and its sub-folders (``REFS/<person>/2019/...``; linked folders
    followed, each real folder once), hidden names skipped, sorted by relative path. Sub-folders that cannot be read
    and broken links with a specimen's suffix go into ``problems`` (file or folder: why), not silently away."""
    files: list[Path] = []

    def unreadable(e: OSError) -> None:
        if problems is not None:
            problems[Path(e.filename or person_dir)] = f"cannot read this folder: {e.strerror or e}"

    for p in visible_files(person_dir, unreadable):
        if p.suffix.lower() in UNREAD_DOCUMENTS and _image_inside(p):  # a PNG saved as .gif: read, as a scan is
            files.append(p)
            continue
        if p.suffix.lower() in UNREAD_DOCUMENTS and problems is not None and not p.name.startswith("~$"):
            what, todo = UNREAD_DOCUMENTS[p.suffix.lower()]  # a phone's photo of a specimen card, say
            todo = todo.replace("into SCANS and move", "here and move")
            problems[p] = f"{what}, not read as a specimen (PDF, TIFF, PNG, JPEG, BMP and Netpbm are): {todo}"
        if p.suffix.lower() not in SPECIMEN_SUFFIXES:
            continue
        if p.is_file():
            files.append(p)
        elif p.is_symlink() and not p.exists() and problems is not None:
            problems[p] = "a broken link: the specimen it pointed to is gone"
        elif p.exists() and problems is not None:  # not read (it could block the run), but not passed over unsaid
            problems[p] = "not a regular file (a FIFO, device or socket): not read as a specimen"
    return sorted(files, key=lambda p: p.relative_to(person_dir).as_posix())


def _image_inside(p: Path) -> bool:
    """Whether the file ``p`` holds a PNG, JPEG, TIFF or BMP image by its first bytes, whatever its name says."""
    try:
        with open_regular(p) as f:  # (a FIFO so named would block a plain open for ever)
            return holds_image(f.read(16))
    except OSError:
        return False


def signature_image(f: Path, channel: str = "luma", read: Callable[..., np.ndarray] = read_gray) -> np.ndarray | None:
    """An image file read as the verifier reads specimens (gray by ``channel``, its ``preprocess.colour``), or None
    when it is a whole page (:func:`looks_like_page`), decided on its luminance whatever the channel (red print
    counts). ``read``: :func:`read_gray` or a reader of its signature with more checks."""
    img = read(f)
    if looks_like_page(img, declared_dpi(f)):
        return None
    if is_negative(img):  # its "ink" would be the paper: every genuine signature judged forged against it
        raise InputError(f"{f}: light ink on a dark background (a negative, or a scanner's inverted export?): save it "
                         "as dark ink on light paper")
    return img if channel == "luma" else read(f, channel)


def declared_dpi(f: Path) -> float | None:
    """The resolution an image file declares (the finer of its two axes), or None when it declares none, an
    implausible one, or cannot be read."""
    from PIL import Image

    try:
        with open_regular(f) as fh, Image.open(fh) as im:
            dpi = im.info.get("dpi")
        d = max(float(dpi[0]), float(dpi[1])) if isinstance(dpi, tuple) and len(dpi) == 2 else None
    except (OSError, ValueError, TypeError, SyntaxError, ImportError, Image.DecompressionBombError):
        return None
    return d if d is not None and 50 <= d <= 4800 else None


def is_negative(img: np.ndarray) -> bool:
    """Whether a grayscale signature image is light ink on dark paper: its border and most of it dark (a signature
    crop is mostly paper; a card's coloured or grey background stays well above this), with some light strokes on
    it (an image dark all over has no ink to speak of: "no ink found", as before) and nothing darker than its
    paper."""
    h, w = img.shape[:2]
    if h < 8 or w < 8:
        return False
    edge = max(1, min(h, w) // 20)
    border = np.concatenate([img[:edge].ravel(), img[-edge:].ravel(), img[:, :edge].ravel(), img[:, -edge:].ravel()])
    paper = float(np.median(border))
    if paper >= 96 or float(np.median(img)) >= 96:
        return False
    light = float(np.mean(img >= min(160.0, paper + 60)))  # CEDAR's grey ink on grey paper inverted: 120 on 18
    # strokes, not a white slip photographed on a dark table (30-45% of the frame); and no ink darker than the
    # paper (a dark-grey e-signature pad or an underexposed photo, whose ink is dark: a retest)
    darker = float(np.mean(img < paper - 40))
    return 0.002 <= light <= 0.2 and darker < 0.002


def specimen_crops(f: Path, loader: SpecimenLoader | None, channel: str = "luma") -> list[np.ndarray]:
    """The signature crops of one specimen file: the image itself (gray by ``channel``, the verifier's
    ``preprocess.colour``, as its crops of colour pages are), or what ``loader`` finds in a PDF (by its content,
    whatever its name, as documents are read) or page."""
    from sigpipe.pipeline.ingest import reads_as_pdf  # lazily: the pipeline imports the verifier

    if not reads_as_pdf(f):
        if loader is None:
            return [read_gray(f, channel)]
        img = signature_image(f, channel)
        if img is not None:
            return [img]
    if loader is None:
        raise InputError(f"{f}: a PDF or page specimen needs the detector to find the signature")
    crops = loader(f)
    if not crops and not reads_as_pdf(f):
        img = read_gray(f)  # a page-sized image: one signature scanned large (600 dpi, no resolution in the file)?
        if ink_marks(img) < PAGE_MARKS and not is_negative(img):  # no printed text: taken whole, as smaller ones are
            return [img if channel == "luma" else read_gray(f, channel)]
    if not crops:
        raise InputError(f"{f}: no signature found in this specimen")
    return crops


def looks_like_page(img: np.ndarray, dpi: float | None = None) -> bool:
    """Whether a grayscale specimen image is a scanned page (a letter, a cheque, a form) rather than a signature crop:
    A4 or letter-sized at 200 dpi (at least 700x1400), or cheque-sized (at least 350x800) and holding more separate
    ink marks than a signature has, i.e. printed text. Measured (session 17, docs/models.md): of the 10,260 specimens
    of the three corpora none is taken for a page (11 are cheque-sized, with at most 44 ink marks of 12 px or more;
    99% of all have at most 26), while cheques at 200 dpi have 133 or more and letters more still. A noisy, faint
    scan can have hundreds of speck marks (two CEDAR specimens: 326 and 519), hence the size as well.

    The page size is counted at 200 dpi when the file declares a finer ``dpi`` (never coarser: screenshots and
    e-signature pads declare 72): a signature scanned at 600 dpi (2931x852) was taken for a page, and the detector
    boxed one word of it (a specimen audit, session 36). Printed text makes a page at any declared dpi: a signature
    card at 300 dpi (1140x495) counted at 200 dpi was used whole, frame and print with it, and a letter whose file
    wrongly declared 600 dpi likewise (a retest)."""
    short, long = sorted(img.shape[:2])
    scale = min(1.0, 200.0 / dpi) if dpi else 1.0
    if short * scale >= 700 and long * scale >= 1400:  # by its size: the ink is not counted
        return True
    return short >= 350 and long >= 800 and ink_marks(img) >= PAGE_MARKS


PAGE_MARKS = 60  # ink marks of 12 px or more: more than a signature has (printed text)


def ink_marks(img: np.ndarray, min_px: int = 12) -> int:
    """Connected ink components of at least ``min_px`` pixels (Otsu threshold, 8-connected) in a grayscale image."""
    _, ink = cv2.threshold(img, 0, 1, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    _, _, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    return int((stats[1:, cv2.CC_STAT_AREA] >= min_px).sum())
