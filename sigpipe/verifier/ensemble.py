"""Join trained verifiers into one model: an :class:`~sigpipe.verifier.model.EnsembleNet` over their networks,
calibrated like a trained model on the validation writers none of them was trained on.

With 136 training writers each network learns its writers almost perfectly and new writers much less well, and two
networks trained differently err on different signatures: averaging their squared distances lowered the validation
EER by about a fifth (README, "Verifier"). The members must share preprocessing and writer splits, so the
validation writers that calibrate the ensemble are unseen by every member.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sigpipe.errors import InputError
from sigpipe.verifier.model import ENSEMBLE, EnsembleNet
from sigpipe.verifier.preprocess import PreprocessConfig
from sigpipe.verifier.train import (
    VerifierTrainConfig,
    calibrate,
    embed_arrays,
    load_split,
    load_views,
    validate,
    writer_splits,
)
from sigpipe.verifier.verifier import Verifier
from sigpipe.weights import Manifest, write_manifest

log = logging.getLogger(__name__)

MEMBER_KEYS = ("architecture", "width", "embedding_dim", "members")  # what build_network reads of a member


def member_spec(m: Manifest) -> dict[str, Any]:
    """A member's network spec (as :func:`~sigpipe.verifier.model.build_network` reads it) and where it came from."""
    return {
        **{k: m[k] for k in MEMBER_KEYS if k in m.data},
        "model": m.ident,
        "training": {k: m["training"].get(k) for k in ("config", "best_epoch_val", "epochs_run")},
    }


def build_ensemble(members: Sequence[str | Path], data: Sequence[Path], out: Path, tag: str,
                   view_seed: int = 1, threads: int | None = None) -> Path:
    """Join the verifiers of ``members`` (manifests) and calibrate the result on their validation writers.

    Args:
        members: two or more verifier manifests, with the same preprocessing and writer splits.
        data: the per-writer corpora the members were trained on (their validation writers calibrate the ensemble).
        out: output folder for ``verifier.pt`` and its manifest.
        tag: the new model's tag.
        view_seed: seed of the document views of the validation writers (as in training: ``seed + 1``).
        threads: torch CPU threads.

    Returns:
        Path of the weights file (its manifest is ``<path>.json``).

    Raises:
        InputError: fewer than two members, members that are not trained verifiers, or that differ in preprocessing
            or writer splits.
        ModelError: a member that fails its hash check.
    """
    import torch

    if len(members) < 2:
        raise InputError("an ensemble needs at least two member models")
    if len({Path(m).resolve() for m in members}) < len(members):
        raise InputError("a member is given twice: an ensemble of a model with itself is that model")
    if threads:
        torch.set_num_threads(threads)
    manifests = [Manifest.load(p) for p in members]
    for m in manifests:  # the shipped verifier is one: its KeyError 'config' said nothing of that
        if m.get("members"):
            raise InputError(f"{m.path} is an ensemble itself ({len(m['members'])} networks): give single networks "
                             "as members ('sigpipe verifier train --init' with one of its members says how to take "
                             "one out)")
    verifiers = [Verifier(m, backend="pt") for m in manifests]  # checks each member's sha256
    first = manifests[0]
    try:
        pcfg = PreprocessConfig.from_dict(first["preprocess"])
        tcfg = first["training"]["config"]
        split, split_seed = tuple(tcfg["split"]), int(tcfg["split_seed"])
        member_splits = [m["training"]["splits"] for m in manifests]
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"the members must be verifiers trained by 'sigpipe verifier train' (their manifests record "
                         f"the writer splits): {type(e).__name__} {e}") from e
    cfg = VerifierTrainConfig(data=tuple(Path(p) for p in data), preprocess=pcfg, split=split, split_seed=split_seed,
                              threads=threads)
    splits = writer_splits(cfg)
    for m, theirs in zip(manifests, member_splits, strict=True):
        if m["preprocess"] != first["preprocess"]:
            raise InputError(f"{m.ident} preprocesses differently from {first.ident}: members must share it")
        for corpus, parts in splits.items():
            if theirs.get(corpus) != parts:
                raise InputError(f"{m.ident} was not trained with the writer splits of {corpus} given here: its "
                                 "validation writers could be another member's training writers")
    net = EnsembleNet([v.torch_net for v in verifiers]).eval()
    val = load_split(cfg, "val")
    views = load_views(cfg, "val", 1, view_seed)[0]
    score = validate(net, val, "cpu", views)
    rule, _ = calibrate(embed_arrays(net, val.images, "cpu"), val, embed_arrays(net, views, "cpu"))
    log.info("ensemble of %s: validation %s", [m.ident for m in manifests], score)
    out.mkdir(parents=True, exist_ok=True)
    weights = out / "verifier.pt"
    torch.save({k: v.cpu().contiguous() for k, v in net.state_dict().items()}, weights)
    manifest = {
        "name": first.name,
        "tag": tag,
        "architecture": ENSEMBLE,
        "members": [member_spec(m) for m in manifests],
        "embedding_dim": net.dim,
        "distance": "euclidean on L2-normalised embeddings (members' unit embeddings concatenated, scaled by "
                    "1/sqrt(members): squared distance = mean of the members' squared distances)",
        "input": first["input"],
        "preprocess": pcfg.to_dict(),
        "decision": rule.to_dict(),
        "training": {
            "method": "ensemble of independently trained members (see members), calibrated on the validation "
                      "writers none of them was trained on",
            "data": [str(p) for p in data],
            "splits": splits,
            "validation": {k: round(x, 4) for k, x in score.items()},
            "view_seed": view_seed,
            "provenance": first["training"].get("provenance"),
        },
        "benchmarks": {},
    }
    write_manifest(weights, manifest)
    return weights
