"""Packed corpora: a signature corpus as the preprocessed arrays training reads, in one file.

Training reads preprocessed arrays and document views (:mod:`sigpipe.verifier.data`, :mod:`sigpipe.verifier.docviews`),
cached under keys that name each image file's bytes; where the corpora are not (a GPU machine that only the working
tree reaches: 88 MB of images against the 64 MiB that travel), neither is the cache. ``sigpipe verifier pack`` writes
one ``<corpus>.npz`` per corpus (56 MB for the three corpora with three views of each training image) holding
what a run with the given preprocessing, split and view seed reads, and ``sigpipe verifier train --data PACK.npz``
(``train-pair`` too) reads it instead of the folder: the same arrays, so the same training run.

A pack holds every writer's preprocessed signatures, and document views of the training writers (``--doc-views``
views, seed ``--seed``) and of the validation writers (1 view, seed ``--seed`` + 1), as training draws them. A run
asking for other views, another split's writers' views, or other preprocessing is refused with the reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sigpipe.datasets.corpus import Corpus, WriterSamples, split_writers
from sigpipe.errors import InputError
from sigpipe.verifier.data import SignatureArrays, load_arrays
from sigpipe.verifier.preprocess import PreprocessConfig

SUFFIX = ".npz"
FORMAT = "sigpipe-packed-corpus/1"


def is_pack(path: str | Path) -> bool:
    """Whether ``path`` names a packed corpus (a file ending ``.npz``) rather than a corpus folder."""
    return Path(path).suffix.lower() == SUFFIX and not Path(path).is_dir()


@dataclass(frozen=True)
class ViewSet:
    """Document views of some of a pack's images: ``views`` ``(V, M, H, W)``, ``rows`` ``(M,)`` their indices."""

    views: np.ndarray
    rows: np.ndarray


class PackedCorpus:
    """A packed corpus (:func:`pack_corpus`), read as training reads a :class:`~sigpipe.datasets.corpus.Corpus`.

    Raises:
        InputError: a missing or unreadable file, or not a pack.
    """

    def __init__(self, path: str | Path) -> None:
        self.root = Path(path)
        try:
            with np.load(self.root, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                self.images, self.writer, self.forged, self.file = z["images"], z["writer"], z["forged"], z["names"]
                self._views = {key: ViewSet(z[f"views_{i}"], z[f"rows_{i}"]) for i, key in
                               enumerate(tuple(k) for k in meta["views"])}
        except (OSError, ValueError, KeyError) as e:
            raise InputError(f"{self.root} is not a packed corpus ('sigpipe verifier pack' writes them): {e}") from e
        if meta.get("format") != FORMAT:
            raise InputError(f"{self.root}: unknown pack format {meta.get('format')!r} (expected {FORMAT})")
        self.name: str = meta["name"]
        self.preprocess: dict[str, Any] = meta["preprocess"]
        order: dict[str, list[int]] = {}
        for i, w in enumerate(self.writer.tolist()):
            order.setdefault(w, []).append(i)
        self._rows = order

    @property
    def writers(self) -> list[str]:
        return sorted(self._rows)

    def __getitem__(self, writer: str) -> WriterSamples:
        rows = self._rows[writer]
        return WriterSamples(writer, tuple(Path(self.file[i]) for i in rows if not self.forged[i]),
                             tuple(Path(self.file[i]) for i in rows if self.forged[i]))

    def _check(self, cfg: PreprocessConfig) -> None:
        if cfg.to_dict() != self.preprocess:
            raise InputError(f"{self.root} was packed with other preprocessing than this run's: packs take the "
                             "shipped verifier's at --input-size; pack the corpus again with the run's --input-size")

    def rows(self, writers: list[str]) -> np.ndarray:
        """The pack's rows of ``writers``, in the order :func:`~sigpipe.verifier.data.load_arrays` gives them."""
        missing = [w for w in writers if w not in self._rows]
        if missing:
            raise InputError(f"{self.root} holds no writer {', '.join(missing[:5])}")
        return np.array([i for w in writers for i in self._rows[w]], np.int64)

    def arrays(self, cfg: PreprocessConfig, writers: list[str]) -> SignatureArrays:
        """As ``load_arrays(corpus, cfg, writers)`` gives them."""
        self._check(cfg)
        r = self.rows(writers)
        return SignatureArrays(self.images[r], np.array([f"{self.name}/{w}" for w in self.writer[r]]),
                               self.forged[r], self.file[r])

    def views(self, cfg: PreprocessConfig, writers: list[str], views: int, seed: int) -> np.ndarray:
        """As ``document_views(corpus, cfg, writers, views, seed)`` gives them: ``(views, N, H, W)``."""
        self._check(cfg)
        have = self._views.get((views, seed))
        if have is None:
            raise InputError(f"{self.root} holds no document views for {views} view(s) of seed {seed} (it holds "
                             f"{', '.join(f'{v} of seed {s}' for v, s in sorted(self._views)) or 'none'}): "
                             "pack it with the run's --doc-views and --seed")
        where = {int(r): j for j, r in enumerate(have.rows)}
        wanted = self.rows(writers)
        if any(int(r) not in where for r in wanted):
            raise InputError(f"{self.root}'s document views of seed {seed} are of other writers than this run's "
                             "(another --split or --split-seed?): pack it with the run's split")
        return have.views[:, [where[int(r)] for r in wanted]]


def pack_corpus(folder: Path, out: Path, cfg: PreprocessConfig, split: tuple[float, float, float], split_seed: int,
                doc_views: int, seed: int, workers: int = 1) -> Path:
    """Write ``out/<corpus name>.npz``: every writer's preprocessed signatures (read through the training cache),
    with ``doc_views`` document views of seed ``seed`` of the training writers and one of seed ``seed`` + 1 of the
    validation writers under ``split`` / ``split_seed`` (``doc_views`` 0: none). Returns the file's path."""
    from sigpipe._files import save_npz
    from sigpipe.verifier.docviews import document_views

    corpus = Corpus(folder)
    chunks: list[SignatureArrays] = []
    keep: dict[str, np.ndarray] = {}
    views: list[tuple[int, int]] = []
    start = 0
    for k, part in enumerate(split_writers(corpus.writers, split, split_seed)):
        if not part:
            continue
        a = load_arrays(corpus, cfg, part)
        chunks.append(a)
        if doc_views and k < 2:  # training writers' views, and validation writers' (training's own seeds)
            v, s = (doc_views, seed) if k == 0 else (1, seed + 1)
            keep[f"views_{len(views)}"] = document_views(corpus, cfg, part, v, s, workers=workers)
            keep[f"rows_{len(views)}"] = np.arange(start, start + len(a.images))
            views.append((v, s))
        start += len(a.images)
    arrays = SignatureArrays.concat(chunks)
    meta = {"format": FORMAT, "name": corpus.name, "preprocess": cfg.to_dict(), "views": views,
            "split": list(split), "split_seed": split_seed, "source": str(folder)}
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{corpus.name}{SUFFIX}"
    writer = np.array([w.split("/", 1)[1] for w in arrays.writer.tolist()])  # "<corpus>/<writer>" as read
    save_npz(path, compressed=True, meta=np.array(json.dumps(meta)), images=arrays.images, writer=writer,
             forged=arrays.forged, names=arrays.name, **keep)
    return path


_OPENED: dict[tuple[str, int, int], PackedCorpus] = {}  # a run opens each corpus several times; a pack is read once
MAX_OPEN = 8  # packs kept open at a time (a run's corpora: 3 here)


def open_corpus(path: str | Path) -> Corpus | PackedCorpus:
    """A corpus folder, or a packed corpus (a ``.npz`` file)."""
    if not is_pack(path):
        return Corpus(path)
    try:
        st = Path(path).stat()
    except OSError as e:
        raise InputError(f"packed corpus not found: {path} ({e.strerror})") from e
    key = (str(Path(path).resolve()), st.st_mtime_ns, st.st_size)
    if key not in _OPENED:
        if len(_OPENED) >= MAX_OPEN:  # an earlier run's packs (a process training several models)
            _OPENED.clear()
        _OPENED[key] = PackedCorpus(path)
    return _OPENED[key]
