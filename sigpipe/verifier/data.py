"""Preprocessed signature arrays for training and evaluation, cached on disk.

Preprocessing every image of the corpora takes minutes; the arrays are cached in ``cache_dir()/verifier`` keyed by
the preprocessing parameters and the corpus' file list, so later runs start at once.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sigpipe._files import readable_by_all, save_npz, trusted_cache
from sigpipe._ultralytics import cache_dir
from sigpipe.datasets.corpus import Corpus, read_gray
from sigpipe.verifier.preprocess import PreprocessConfig, preprocess
from sigpipe.weights import sha256_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SignatureArrays:
    """Preprocessed signatures of some writers.

    Attributes:
        images: ``(N, H, W)`` uint8, 0 = background, 255 = ink (preprocessed, quantised to save memory).
        writer: ``(N,)`` str, ``"<corpus>/<writer>"``.
        forged: ``(N,)`` bool, True for skilled forgeries of ``writer``.
        name: ``(N,)`` str, the file name (references are chosen by sorted name).
    """

    images: np.ndarray
    writer: np.ndarray
    forged: np.ndarray
    name: np.ndarray

    def select(self, mask: np.ndarray) -> SignatureArrays:
        return SignatureArrays(self.images[mask], self.writer[mask], self.forged[mask], self.name[mask])

    @staticmethod
    def concat(parts: list[SignatureArrays]) -> SignatureArrays:
        return SignatureArrays(
            np.concatenate([p.images for p in parts]),
            np.concatenate([p.writer for p in parts]),
            np.concatenate([p.forged for p in parts]),
            np.concatenate([p.name for p in parts]),
        )

    def as_float(self) -> np.ndarray:
        """``(N, 1, H, W)`` float32 in [0, 1]."""
        return (self.images.astype(np.float32) / 255.0)[:, None]


def corpus_files(corpus: Corpus, writers: list[str]) -> list[tuple[str, bool, Path]]:
    """``(writer, forged, path)`` of every signature of ``writers``: each writer's genuine ones, then forgeries."""
    out: list[tuple[str, bool, Path]] = []
    for w in writers:
        s = corpus[w]
        out += [(w, False, p) for p in s.genuine] + [(w, True, p) for p in s.forged]
    return out


def files_fingerprint(files: list[tuple[str, bool, Path]]) -> list[tuple[str, bool, str, str]]:
    """What cached arrays of ``files`` depend on besides the settings: each file's name and the sha256 of its bytes
    (as the references' cache keys specimens).

    An image replaced under the same name is preprocessed again, not read stale from the cache; a corpus copied
    again (new modification times, the same bytes) keeps its cache, which matters for the document views: an
    hour of rendering for three views of the training writers on two cores."""
    return [(w, f, str(p), sha256_file(p)) for w, f, p in files]


def load_arrays(corpus: Corpus, cfg: PreprocessConfig, writers: list[str] | None = None) -> SignatureArrays:
    """Preprocess (or load from cache) all signatures of ``writers`` (default: all) of ``corpus``."""
    files = corpus_files(corpus, writers if writers is not None else corpus.writers)
    key = hashlib.sha256(
        json.dumps([cfg.to_dict(), str(corpus.root.resolve()), files_fingerprint(files)]).encode()
    ).hexdigest()[:16]
    store = training_cache(corpus)
    cache = None if store is None else store / f"{corpus.name}-{key}.npz"
    if cache is not None and cache.is_file():
        z = np.load(cache)
        return SignatureArrays(z["images"], z["writer"], z["forged"], z["name"])
    log.info("preprocessing %d signatures of %s%s", len(files), corpus.name,
             "" if cache is None else f" (cached to {cache})")
    imgs = np.zeros((len(files), cfg.height, cfg.width), np.uint8)
    for i, (_, _, p) in enumerate(files):
        imgs[i] = np.round(preprocess(read_gray(p, cfg.colour), cfg) * 255).astype(np.uint8)
    arr = SignatureArrays(
        imgs,
        np.array([f"{corpus.name}/{w}" for w, _, _ in files]),
        np.array([f for _, f, _ in files], bool),
        np.array([p.name for _, _, p in files]),
    )
    if cache is not None:
        save_npz(cache, compressed=True, images=arr.images, writer=arr.writer, forged=arr.forged, name=arr.name)
    return arr


def training_cache(corpus: Corpus) -> Path | None:
    """The folder of preprocessed training arrays (``cache_dir()/verifier``, created 0700: signature images of named
    writers, biometric data), as its real path, or None (a warning) when another account could write or replace
    it (:func:`sigpipe._files.trusted_cache`; the corpus's owner is trusted as this account is): the arrays carry
    which signatures are forgeries, and a security test rewrote them."""
    folder = cache_dir() / "verifier"
    try:
        real, why = trusted_cache(folder, corpus.root)
    except OSError as e:
        why = str(e)
        real = None
    if real is None:
        log.warning("not using the training cache %s: %s; the signatures are preprocessed without caching", folder,
                    why)
    elif exposed := readable_by_all(real):
        log.warning("the training cache %s", exposed)
    return real
