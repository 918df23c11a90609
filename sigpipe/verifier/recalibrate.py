"""Calibrate a trained verifier again: a new decision rule (aggregation, whitening, thresholds, score) for the same
network, chosen on the validation writers recorded in its manifest.

The weights are copied unchanged; the new model gets its own tag, so its identity (and every report naming it)
differs from the old one's. Use it when the decision procedure improves, e.g. ``sigpipe verifier calibrate`` gave
the shipped ensemble its whitened-centroid rule (README, "Verifier").
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sigpipe.datasets.corpus import Corpus
from sigpipe.errors import ModelError
from sigpipe.verifier.data import SignatureArrays, load_arrays
from sigpipe.verifier.docviews import document_views
from sigpipe.verifier.train import calibrate, embed_arrays, validate, whitening_data
from sigpipe.verifier.verifier import Verifier
from sigpipe.weights import Manifest, write_manifest

log = logging.getLogger(__name__)

DROPPED_KEYS = ("backends", "backend_sha256", "default_backend", "benchmarks")  # re-derived for the new model


def recalibrate(manifest: str | Path, data: Sequence[Path], out: Path, tag: str, train_views: int = 0,
                threads: int | None = None) -> Path:
    """Write ``out/verifier.pt`` (the same weights) with a manifest holding a newly calibrated decision rule.

    Args:
        manifest: the trained verifier's manifest; its ``training.splits`` name the validation writers (which
            calibrate) and training writers (which the whitening is fitted on).
        data: the per-writer corpora it was trained on (matched to the splits by folder name).
        out: output folder.
        tag: the new model's tag (must differ from the old one).
        train_views: document views of each training signature added to the whitening's data (0: clean only).
        threads: torch CPU threads.

    Raises:
        ModelError: the weights fail their hash check, the tag is unchanged, or a corpus with validation writers
            is not among ``data``.
    """
    import torch

    if threads:
        torch.set_num_threads(threads)
    m = Manifest.load(manifest)
    if tag == m.tag:
        raise ModelError(f"the recalibrated model needs a tag other than {m.tag!r}: its decisions differ")
    verifier = Verifier(m, backend="pt")  # checks the weights' sha256
    net = verifier.net
    assert net is not None
    cfg = verifier.preprocess_cfg
    splits: dict[str, dict[str, list[str]]] = m["training"]["splits"]
    corpora = {c.name: c for c in (Corpus(p) for p in data)}
    missing = sorted(c for c, parts in splits.items() if parts.get("val") and c not in corpora)
    if missing:
        raise ModelError(f"--data lacks the corpora {missing}, whose validation writers calibrate the model")
    used = [c for c in splits if c in corpora]
    view_seed = int(m["training"].get("view_seed", m["training"].get("config", {}).get("seed", 0) + 1))

    def arrays(part: str) -> SignatureArrays:
        return SignatureArrays.concat([load_arrays(corpora[c], cfg, splits[c][part]) for c in used
                                       if splits[c][part]])

    def views(part: str, n: int, seed: int) -> np.ndarray:
        return np.concatenate([document_views(corpora[c], cfg, splits[c][part], n, seed, workers=threads or 1)
                               for c in used if splits[c][part]], axis=1)

    val = arrays("val")
    val_views = views("val", 1, view_seed)[0]
    train = arrays("train")
    tv = views("train", train_views, view_seed + 10) if train_views else None
    score = validate(net, val, "cpu", val_views)
    rule, _ = calibrate(embed_arrays(net, val.images, "cpu"), val, embed_arrays(net, val_views, "cpu"),
                        whitening_data(net, train, "cpu", tv))
    log.info("%s recalibrated: aggregation %s, whitening %s", m.ident, rule.aggregation,
             None if rule.whitening is None else rule.whitening.shrinkage)
    out.mkdir(parents=True, exist_ok=True)
    weights = out / "verifier.pt"
    if m.weights_path.resolve() != weights.resolve():
        shutil.copyfile(m.weights_path, weights)
    data_out = {k: v for k, v in m.data.items() if k not in DROPPED_KEYS and k not in ("file", "sha256")}
    data_out["tag"] = tag
    data_out["decision"] = rule.to_dict(out)
    data_out["training"] = {
        **m["training"],
        "validation": {k: round(x, 4) for k, x in score.items()},
        "recalibrated": {"from": m.ident, "data": [str(p) for p in data], "train_views": train_views,
                         "view_seed": view_seed},
    }
    data_out["benchmarks"] = {}
    write_manifest(weights, data_out)
    return weights
