"""Calibrate a trained verifier again: a new decision rule (aggregation, spread weight, thresholds, score) for the
same network, chosen on the validation writers recorded in its manifest.

The weights are copied unchanged; the new model gets its own tag, so its identity (and every report naming it)
differs from the old one's. Use it when the decision procedure improves, as when ``sigpipe verifier calibrate``
gave the shipped ensemble its per-person thresholds (README, "Verifier").
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
from sigpipe.verifier.train import calibrate, embed_arrays, validate
from sigpipe.verifier.verifier import Verifier
from sigpipe.weights import Manifest, write_manifest

log = logging.getLogger(__name__)

DROPPED_KEYS = ("backends", "backend_sha256", "default_backend", "file", "sha256")  # re-derived for the new model


def recalibrate(manifest: str | Path, data: Sequence[Path], out: Path, tag: str, threads: int | None = None) -> Path:
    """Write ``out/verifier.pt`` (the same weights) with a manifest holding a newly calibrated decision rule.

    Args:
        manifest: the trained verifier's manifest; its ``training.splits`` name the validation writers that
            calibrate (with their document views, seed ``training.view_seed``).
        data: the per-writer corpora it was trained on (matched to the splits by folder name).
        out: output folder.
        tag: the new model's tag (must differ from the old one).
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
    used = [c for c in splits if c in corpora and splits[c]["val"]]
    view_seed = int(m["training"].get("view_seed", m["training"].get("config", {}).get("seed", 0) + 1))
    val = SignatureArrays.concat([load_arrays(corpora[c], cfg, splits[c]["val"]) for c in used])
    views = np.concatenate([document_views(corpora[c], cfg, splits[c]["val"], 1, view_seed, workers=threads or 1)
                            for c in used], axis=1)[0]
    score = validate(net, val, "cpu", views)
    rule, _ = calibrate(embed_arrays(net, val.images, "cpu"), val, embed_arrays(net, views, "cpu"))
    log.info("%s recalibrated: aggregation %s, spread weight %s", m.ident, rule.aggregation, rule.spread_weight)
    out.mkdir(parents=True, exist_ok=True)
    weights = out / "verifier.pt"
    if m.weights_path.resolve() != weights.resolve():
        shutil.copyfile(m.weights_path, weights)
    new = {k: v for k, v in m.data.items() if k not in DROPPED_KEYS}
    new["tag"] = tag
    new["decision"] = rule.to_dict()
    new["training"] = {
        **m["training"],
        "validation": {k: round(x, 4) for k, x in score.items()},
        "recalibrated": {"from": m.ident, "data": [str(p) for p in data], "view_seed": view_seed},
    }
    new["benchmarks"] = {}
    write_manifest(weights, new)
    return weights
