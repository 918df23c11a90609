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
from typing import Any

import numpy as np

from sigpipe.datasets.corpus import Corpus
from sigpipe.errors import ModelError
from sigpipe.verifier.data import SignatureArrays, load_arrays
from sigpipe.verifier.docviews import document_views
from sigpipe.verifier.pairnet import ARCHITECTURE, PairScorer, protocol_pairs
from sigpipe.verifier.refcheck import calibrate_manifest
from sigpipe.verifier.train import calibrate, embed_arrays, validate
from sigpipe.verifier.verifier import Verifier
from sigpipe.weights import Manifest, sha256_file, write_manifest

log = logging.getLogger(__name__)

DROPPED_KEYS = ("backends", "backend_sha256", "default_backend", "file", "sha256")  # re-derived for the new model


def recalibrate(manifest: str | Path, data: Sequence[Path], out: Path, tag: str, threads: int | None = None,
                pair: str | Path | None = None, orders: int | None = None) -> Path:
    """Write ``out/verifier.pt`` (the same weights) with a manifest holding a newly calibrated decision rule (and
    the margin of the references check, ``sigpipe.verifier.refcheck``).

    Args:
        manifest: the trained verifier's manifest; its ``training.splits`` name the validation writers that
            calibrate (with their document views, seed ``training.view_seed``).
        data: the per-writer corpora it was trained on (matched to the splits by folder name).
        out: output folder.
        tag: the new model's tag (must differ from the old one).
        threads: torch CPU threads.
        pair: manifest of a pair network (``sigpipe verifier train-pair``) to attach as the second stage, trained
            on the same writer splits; without it a second stage the model already has is kept and recalibrated.
        orders: score each pair in 1 or both (2) orders (the second stage costs that many forward passes); None:
            as the kept second stage does, or 2 for a new one.

    Raises:
        ModelError: the weights fail their hash check, the tag is unchanged, a corpus with validation writers
            is not among ``data``, or the pair network was trained on other writer splits.
    """
    import torch

    if threads:
        torch.set_num_threads(threads)
    m = Manifest.load(manifest)
    if tag == m.tag:
        raise ModelError(f"the recalibrated model needs a tag other than {m.tag!r}: its decisions differ")
    verifier = Verifier(m, backend="pt")  # checks the weights' sha256
    net = verifier.torch_net
    cfg = verifier.preprocess_cfg
    splits: dict[str, dict[str, list[str]]] = m["training"]["splits"]
    corpora = {c.name: c for c in (Corpus(p) for p in data)}
    missing = sorted(c for c, parts in splits.items() if parts.get("val") and c not in corpora)
    if missing:
        raise ModelError(f"--data lacks the corpora {missing}, whose validation writers calibrate the model")
    used = [c for c in splits if c in corpora and splits[c]["val"]]
    for c in used:  # matched by folder name: the writers must be there too (another corpus of that name?)
        absent = sorted(set(splits[c]["val"]) - set(corpora[c].writers))
        if absent:
            raise ModelError(f"--data {corpora[c].root} lacks the validation writers {absent[:10]}"
                             f"{' ...' if len(absent) > 10 else ''} of {m.ident} (its corpus {c!r}): is it the "
                             "corpus the model was trained on?")
    view_seed = int(m["training"].get("view_seed", m["training"].get("config", {}).get("seed", 0) + 1))
    val = SignatureArrays.concat([load_arrays(corpora[c], cfg, splits[c]["val"]) for c in used])
    views = np.concatenate([document_views(corpora[c], cfg, splits[c]["val"], 1, view_seed, workers=threads or 1)
                            for c in used], axis=1)[0]
    score = validate(net, val, "cpu", views)
    out.mkdir(parents=True, exist_ok=True)
    stage = _second_stage(m, pair, orders, out, splits)
    pairs = None
    if stage is not None:
        staged = Manifest(m.name, tag, m.file, m.sha256, m.architecture, out / "verifier.pt.json",
                          {**m.data, "second_stage": stage})
        scorer = PairScorer(staged, backend="pt", threads=threads or 1)
        pairs = (protocol_pairs(scorer, val.images), protocol_pairs(scorer, val.images, views))
    rule, _ = calibrate(embed_arrays(net, val.images, "cpu"), val, embed_arrays(net, views, "cpu"), pairs)
    log.info("%s recalibrated: aggregation %s, spread weight %s, pair weight %s", m.ident, rule.aggregation,
             rule.spread_weight, rule.pair_weight)
    if stage is not None and rule.pair_weight == 0:
        log.warning("the second stage %s does not lower the validation EER at any weight: left out",
                    stage.get("model", stage["file"]))
        (out / stage["file"]).unlink()
        stage = None
    weights = out / "verifier.pt"
    if m.weights_path.resolve() != weights.resolve():
        shutil.copyfile(m.weights_path, weights)
    new = {k: v for k, v in m.data.items() if k not in DROPPED_KEYS}
    new["tag"] = tag
    new["decision"] = rule.to_dict()
    if stage is not None:
        new["second_stage"] = stage
    new["training"] = {
        **m["training"],
        "validation": {k: round(x, 4) for k, x in score.items()},
        "recalibrated": {"from": m.ident, "data": [str(p) for p in data], "view_seed": view_seed},
    }
    new["benchmarks"] = {}
    calibrate_manifest(write_manifest(weights, new), val)
    return weights


def _second_stage(m: Manifest, pair: str | Path | None, orders: int | None, out: Path,
                  splits: dict[str, dict[str, list[str]]]) -> dict[str, Any] | None:
    """The ``second_stage`` record of the recalibrated model, its weights copied into ``out`` (None: no stage)."""
    if orders not in (None, 1, 2):
        raise ModelError(f"orders must be 1 or 2, got {orders}")
    if pair is None:
        old = m.get("second_stage")
        if not old:
            return None
        src = m.path.parent / old["file"]
        spec = {k: v for k, v in old.items() if k not in ("onnx", "onnx_sha256")}
        orders = orders or int(old.get("orders", 2))
    else:
        pm = Manifest.load(pair)
        src = pm.verify()
        if pm.architecture != ARCHITECTURE:
            raise ModelError(f"{pair} is a {pm.architecture!r} model, not a pair network ({ARCHITECTURE})")
        if pm["training"]["splits"] != splits:
            raise ModelError(f"{pm.ident} was trained on other writer splits than {m.ident}: its training writers "
                             "could be the validation writers that calibrate, or the test writers")
        spec = {"architecture": ARCHITECTURE, "width": pm.get("width", 32), "model": pm.ident,
                "training": {k: v for k, v in pm["training"].items() if k != "splits"}}
    dst = out / "verifier-pair.pt"
    if src.resolve() != dst.resolve():
        shutil.copyfile(src, dst)
    if pair is None and sha256_file(dst) != old["sha256"]:
        raise ModelError(f"second-stage file {src} does not match its manifest sha256")
    return {**spec, "file": dst.name, "sha256": sha256_file(dst), "orders": orders or 2}
