"""Document views: training signatures as the pipeline sees them, cropped from synthetic scanned documents.

The corpora hold clean specimens, but ``sigpipe run`` verifies crops of scanned pages: the signature was written on a
cheque or a letter (typed name below it, a signature line through it, "Sincerely," above), scanned (skew, blur,
binarisation, JPEG), found by the detector (a box a little off) and cropped with a margin. On a synthetic batch of
CEDAR writers the verifier's distance of a genuine crop to its writer's clean references was 0.15 larger than that
of the same clean image (false rejects 55% instead of 29%). Training on document views closes that gap at its source.

Each view places one corpus image with :class:`~sigpipe.datasets.synth_documents.QueuedSignatures` in a document
of a random kind, scans it with a random scanner profile, sometimes JPEG-compresses the page as a saved file would
be, jitters the truth box like a detector box and crops it with the pipeline's margin. Views are aligned with
:func:`~sigpipe.verifier.data.load_arrays` (same writers, same order), cached like it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from sigpipe._files import save_npz
from sigpipe.datasets.corpus import Corpus, read_gray
from sigpipe.verifier.data import corpus_files, files_fingerprint, training_cache
from sigpipe.verifier.preprocess import PreprocessConfig, preprocess

log = logging.getLogger(__name__)

VERSION = 1  # bump when the rendering changes: it is part of the cache key
CHUNK = 64  # images per work unit (each unit has its own seeded random state)


def _render_chunk(args: tuple[str, list[tuple[str, bool, str]], list[int], list[int], dict, float, float]
                  ) -> list[tuple[int, np.ndarray]]:
    """Render the images ``items`` (indices ``idx``) into documents; returns (index, preprocessed uint8) pairs."""
    from sigpipe.datasets.synth_documents import KINDS, QueuedSignatures, SynthOptions, render_document
    from sigpipe.pipeline.flow import crop_box  # lazily: the pipeline imports the verifier

    root, items, idx, seed, pcfg, margin, jitter = args
    cfg = PreprocessConfig.from_dict(pcfg)
    corpus = Corpus(root)
    rng = np.random.default_rng(seed)
    opts = SynthOptions(two_signers=0.0)
    rel_to_idx = {Path(p).relative_to(corpus.root).as_posix(): i for (_, _, p), i in zip(items, idx, strict=True)}
    queue = [(w, not f, Path(p)) for w, f, p in items]
    sigs = QueuedSignatures(corpus, queue)
    out: list[tuple[int, np.ndarray]] = []
    while sigs.queue:
        kind = str(rng.choice(KINDS))
        pages, truths, _ = render_document(corpus, kind, 1, rng, opts, True, _sigs=sigs)
        for t in truths:
            i = rel_to_idx.get(t.source)
            if i is None:  # a random signer placed after the queue ran out
                continue
            page: np.ndarray = np.asarray(pages[t.page - 1].convert("L"))
            if pages[t.page - 1].mode != "1" and rng.random() < 0.5:  # saved as JPEG (or a PDF of JPEGs)
                ok, buf = cv2.imencode(".jpg", page, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(60, 93))])
                page = np.asarray(cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)) if ok else page
            x1, y1, x2, y2 = t.bbox
            bw, bh = x2 - x1, y2 - y1
            d = rng.normal(0.0, jitter, 4) * (bw, bh, bw, bh)
            crop = crop_box(page, (x1 + d[0], y1 + d[1], x2 + d[2], y2 + d[3]), margin)
            out.append((i, np.round(preprocess(crop, cfg) * 255).astype(np.uint8)))
    return out


def document_views(corpus: Corpus, cfg: PreprocessConfig, writers: list[str], views: int = 1, seed: int = 0,
                   margin: float | None = None, jitter: float = 0.03, workers: int = 1) -> np.ndarray:
    """Render ``views`` document crops of every signature of ``writers`` (or load them from the cache).

    Args:
        corpus: the signature corpus.
        cfg: the verifier's preprocessing.
        writers: writer ids, as for ``load_arrays``.
        views: crops per image, each in another document.
        seed: seed of all rendering.
        margin: crop margin as a fraction of the box (default: the pipeline's ``FlowConfig.crop_margin``).
        jitter: standard deviation of each box side's offset, as a fraction of the box size (detector error).
        workers: processes to render with.

    Returns:
        ``(views, N, H, W)`` uint8, ``[v, i]`` a view of the ``i``-th image of ``load_arrays(corpus, cfg, writers)``.
        An image the generator could not place (rare: it fell off a skewed page) keeps its clean preprocessing.
    """
    if margin is None:
        from sigpipe.pipeline.flow import FlowConfig  # lazily: the pipeline imports the verifier

        margin = FlowConfig().crop_margin
    files = corpus_files(corpus, writers)  # in the order of load_arrays
    key = hashlib.sha256(json.dumps([VERSION, cfg.to_dict(), str(corpus.root.resolve()), writers, views, seed,
                                     margin, jitter, files_fingerprint(files)]).encode()).hexdigest()[:16]
    store = training_cache(corpus)
    cache = None if store is None else store / f"{corpus.name}-views-{key}.npz"
    if cache is not None and cache.is_file():
        return np.load(cache)["views"]
    log.info("rendering %d document views of %d signatures of %s%s", views * len(files), len(files),
             corpus.name, "" if cache is None else f" (cached to {cache})")
    out = np.zeros((views, len(files), cfg.height, cfg.width), np.uint8)
    jobs = []
    for v in range(views):
        order = np.random.default_rng([seed, v]).permutation(len(files))
        for c in range(0, len(order), CHUNK):
            idx = [int(i) for i in order[c : c + CHUNK]]
            items = [(files[i][0], files[i][1], str(files[i][2])) for i in idx]
            jobs.append((v, (str(corpus.root), items, idx, [seed, v, c], cfg.to_dict(), margin, jitter)))
    done = np.zeros((views, len(files)), bool)
    if workers > 1:
        with ProcessPoolExecutor(workers) as ex:
            results = list(ex.map(_render_chunk, [a for _, a in jobs]))
    else:
        results = [_render_chunk(a) for _, a in jobs]
    for (v, _), res in zip(jobs, results, strict=True):
        for i, img in res:
            out[v, i] = img
            done[v, i] = True
    missing = np.argwhere(~done)
    if missing.size:
        log.warning("%d of %d views could not be rendered; using the clean image there", len(missing), done.size)
        for v, i in missing:
            out[v, i] = np.round(preprocess(read_gray(files[i][2], cfg.colour), cfg) * 255).astype(np.uint8)
    if cache is not None:
        save_npz(cache, compressed=True, views=out)
    return out
