import stat
from pathlib import Path

import numpy as np
import pytest

from sigpipe.datasets.corpus import Corpus
from sigpipe.verifier.data import load_arrays
from sigpipe.verifier.docviews import document_views
from sigpipe.verifier.preprocess import PreprocessConfig
from sigpipe.verifier.protocol import protocol_distances


def test_document_views_are_aligned_document_crops_and_cached(tiny_corpus: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SIGPIPE_CACHE", str(tmp_path / "cache"))
    corpus, cfg = Corpus(tiny_corpus), PreprocessConfig()
    clean = load_arrays(corpus, cfg, ["001", "002"])
    views = document_views(corpus, cfg, ["001", "002"], views=2, seed=3)
    assert views.shape == (2, len(clean.images), cfg.height, cfg.width) and views.dtype == np.uint8
    assert (views.reshape(2, len(clean.images), -1).max(axis=2) > 128).all()  # every view holds ink
    # a view is its own image placed in a document, not the clean preprocessing and not another image
    own = np.abs(views[0].astype(float) - clean.images).mean(axis=(1, 2))
    assert (own > 0).all()
    flat = lambda a: (a.reshape(len(a), -1) > 64).astype(float)  # noqa: E731
    overlap = flat(views[0]) @ flat(clean.images).T  # ink pixels in common, view i vs clean j
    assert (overlap.argmax(axis=1) == np.arange(len(clean.images))).mean() >= 0.75
    assert not np.array_equal(views[0], views[1])  # two views: two documents
    cached = list((tmp_path / "cache" / "verifier").glob("*-views-*.npz"))
    assert len(cached) == 1
    # the writers' signature images (a bank training on its customers'): a folder of the user's alone
    assert stat.S_IMODE((tmp_path / "cache" / "verifier").stat().st_mode) == 0o700
    assert np.array_equal(document_views(corpus, cfg, ["001", "002"], views=2, seed=3), views)


def test_protocol_takes_queries_from_query_embeddings():
    emb = np.eye(4, dtype=np.float32)[[0, 0, 0, 1]]  # writer a: 3 genuine (refs + query); b: 1 genuine
    writer = np.array(["a", "a", "a", "b"])
    forged = np.zeros(4, bool)
    name = np.array(["1", "2", "3", "1"])
    same = protocol_distances(emb, writer, forged, name, 2, "min")
    assert np.allclose(same.genuine, 0.0)
    moved = emb.copy()
    moved[2] = [0, 0, 1, 0]  # the query of writer a, seen as a document crop
    q = protocol_distances(emb, writer, forged, name, 2, "min", query_emb=moved)
    assert np.allclose(q.genuine, np.sqrt(2.0))  # the query moved; the references (emb) did not
