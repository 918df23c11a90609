"""Triplet training of the embedding network (pytorch-metric-learning), writer-disjoint validation.

Triplets: anchor = a genuine signature of a person, positive = another genuine of that person, negative = a skilled
forgery of that person or another person's signature (random forgery). Batches come from ``MPerClassSampler`` over
*writers* (m images of each writer, genuine and forged mixed); for the loss, genuine signatures carry their writer's
label and every forgery a label of its own, so forgeries are only ever negatives. ``TripletMarginMiner`` keeps the
triplets that violate the margin (hard and semi-hard) and ``TripletMarginLoss`` trains on them, with the same
Euclidean distance on unit embeddings that the decision uses.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_metric_learning import losses, miners, samplers

from sigpipe._training import check_precision, one_cycle, training_autocast
from sigpipe.datasets.corpus import split_writers
from sigpipe.errors import InputError
from sigpipe.verifier.copies import COPY_SIMILARITY
from sigpipe.verifier.data import SignatureArrays, load_arrays
from sigpipe.verifier.decide import AGGREGATIONS, DecisionRule, fit_logistic
from sigpipe.verifier.docviews import document_views
from sigpipe.verifier.metrics import eer
from sigpipe.verifier.model import Embedder, build_model, training_memory_format
from sigpipe.verifier.pack import PackedCorpus, is_pack, open_corpus
from sigpipe.verifier.preprocess import PreprocessConfig
from sigpipe.verifier.protocol import PairTerm, QueryDistances, protocol_distances
from sigpipe.weights import write_manifest

log = logging.getLogger(__name__)

CALIBRATION_KS = (1, 2, 3, 5, 8)
PAIR_WEIGHTS = (0.04, 0.06, 0.08, 0.1, 0.12, 0.15, 0.2, 0.25, 0.3)  # for DecisionRule.pair_weight, chosen on validation
PAIR_NOTE = ("; second stage: the pair network's term (decide.fuse) added to the distances, its weight chosen "
             "among PAIR_WEIGHTS by the mean validation EER at K=1 and 5 before the thresholds")
SPREAD_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)  # candidates for DecisionRule.spread_weight, chosen on validation
POOLED_NOTE = ("; queries pooled: the clean validation signatures and their document views (docviews.py), both "
               "against clean references")


@dataclass(frozen=True)
class VerifierTrainConfig:
    """Settings of a verifier training run (all recorded in the manifest)."""

    data: tuple[Path, ...]
    out: Path = Path("runs/verifier")
    extra: tuple[Path, ...] = ()  # corpora used for training only (e.g. synthetic writers): never validated on
    architecture: str = "resnet-s"
    width: int = 32
    dim: int = 128
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    epochs: int = 40
    steps_per_epoch: int = 100
    m_per_writer: int = 8
    batch: int = 96
    lr: float = 2e-3
    weight_decay: float = 1e-4
    margin: float = 0.25
    aux_loss: str = "none"  # "arcface": also an ArcFace loss over classes (writer, genuine|forged); see train_verifier
    aux_weight: float = 1.0
    doc_views: int = 0  # document views per training image (docviews.py); validation then also scores doc crops
    ema: float = 0.0  # > 0: validate, keep and ship an exponential moving average of the weights with this decay
    mirror_writers: int = 1  # 1, 2 or 4: mirror images of each training writer (left-right, upside-down) as new writers
    writer_warp: float = 0.0  # > 0: one random warp per writer and batch, shared by its genuine and forged images
    split: tuple[float, float, float] = (0.7, 0.1, 0.2)
    split_seed: int = 0
    seed: int = 0
    patience: int = 10
    max_minutes: float | None = None  # stop after the epoch that ends past this many minutes of training (resumable)
    threads: int | None = None
    device: str | None = None
    init: Path | None = None
    resume: bool = False
    tag: str = "v1"
    precision: str = "f32"  # "bf16": forward passes under bfloat16 autocast (sigpipe._training)


def writer_splits(cfg: VerifierTrainConfig) -> dict[str, dict[str, list[str]]]:
    """Per corpus: ``{"train": [...], "val": [...], "test": [...]}`` writer ids (seeded, writer-disjoint)."""
    out = {}
    for root in cfg.data:
        c = open_corpus(root)
        tr, va, te = split_writers(c.writers, cfg.split, cfg.split_seed)
        out[c.name] = {"train": tr, "val": va, "test": te}
    for root in cfg.extra:
        c = open_corpus(root)
        out[c.name] = {"train": c.writers, "val": [], "test": []}
    return out


def load_split(cfg: VerifierTrainConfig, part: str) -> SignatureArrays:
    splits = writer_splits(cfg)
    parts = []
    for root in (*cfg.data, *cfg.extra):
        c = open_corpus(root)
        if splits[c.name][part]:
            parts.append(c.arrays(cfg.preprocess, splits[c.name][part]) if isinstance(c, PackedCorpus)
                         else load_arrays(c, cfg.preprocess, splits[c.name][part]))
    return SignatureArrays.concat(parts)


def load_views(cfg: VerifierTrainConfig, part: str, views: int, seed: int) -> np.ndarray:
    """``(views, N, H, W)`` document views aligned with ``load_split(cfg, part)``."""
    splits = writer_splits(cfg)
    parts = []
    for root in (*cfg.data, *cfg.extra):
        c = open_corpus(root)
        if splits[c.name][part]:
            parts.append(c.views(cfg.preprocess, splits[c.name][part], views, seed) if isinstance(c, PackedCorpus)
                         else document_views(c, cfg.preprocess, splits[c.name][part], views, seed,
                                             workers=cfg.threads or os.cpu_count() or 1))
    return np.concatenate(parts, axis=1)


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random affine (rotation, scale, aspect, shear, shift), smooth elastic jitter, stroke width and ink level.

    Args:
        x: ``(B, 1, H, W)`` float in [0, 1], ink bright.
    """
    b, _, h, w = x.shape
    dev = x.device

    def u(lo: float, hi: float) -> torch.Tensor:
        return (torch.rand(b, generator=gen) * (hi - lo) + lo).to(dev)

    ang = u(-5, 5) * math.pi / 180
    s = u(0.88, 1.08)
    asp = u(0.92, 1.08)
    sh = u(-0.15, 0.15)
    cos, sin = torch.cos(ang), torch.sin(ang)
    theta = torch.stack(
        [
            torch.stack([cos / (s * asp), -sin / s + sh, u(-0.06, 0.06)], 1),
            torch.stack([sin / (s * asp), cos / s, u(-0.08, 0.08)], 1),
        ],
        1,
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    noise = (torch.rand(b, 2, 3, 6, generator=gen) * 2 - 1).to(dev) * 0.03
    grid = grid + F.interpolate(noise, size=(h, w), mode="bicubic", align_corners=False).permute(0, 2, 3, 1)
    y = F.grid_sample(x, grid, padding_mode="zeros", align_corners=False)
    r = torch.rand(b, generator=gen).to(dev)
    thick = F.max_pool2d(y, 3, 1, 1)
    thin = -F.max_pool2d(-y, 3, 1, 1)
    y = torch.where((r < 0.2)[:, None, None, None], 0.5 * (y + thick), y)
    y = torch.where((r > 0.9)[:, None, None, None], 0.5 * (y + thin), y)
    return (y * u(0.75, 1.15)[:, None, None, None]).clamp(0, 1)


def mirror(x: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """Mirror each image by its code: bit 0 left-right, bit 1 upside-down.

    Args:
        x: ``(B, 1, H, W)``; flips: ``(B,)`` int in [0, 4).
    """
    f = flips.to(x.device)[:, None, None, None]
    x = torch.where((f & 1).bool(), x.flip(-1), x)
    return torch.where((f & 2).bool(), x.flip(-2), x)


def writer_warp(x: torch.Tensor, writers: torch.Tensor, gen: torch.Generator, strength: float) -> torch.Tensor:
    """Warp every writer's images of a batch by one random affine + smooth elastic field of its own.

    Genuine signatures and the skilled forgeries of a writer move together, so what tells them apart survives, while
    the writer's overall shape, the thing a network memorises of a few training writers, changes from batch to batch:
    each batch holds new pseudo-writers. At ``strength`` 1: rotation up to 6 degrees, shear up to 0.3, one axis
    squeezed up to x1.28, elastic displacement up to 4% of the image size.

    Args:
        x: ``(B, 1, H, W)`` float in [0, 1], ink bright; writers: ``(B,)`` int writer label of each image.
    """
    uniq, inv = torch.unique(writers, return_inverse=True)
    k = len(uniq)

    def u(lo: float, hi: float) -> torch.Tensor:
        return torch.rand(k, generator=gen) * (hi - lo) + lo

    ang = u(-6, 6) * strength * math.pi / 180
    sh = u(-0.3, 0.3) * strength
    asp = torch.exp(u(-0.25, 0.25) * strength)
    sx, sy = asp.clamp(min=1.0), (1.0 / asp).clamp(min=1.0)  # squeeze one axis, never stretch ink off the canvas
    cos, sin = torch.cos(ang), torch.sin(ang)
    zero = torch.zeros(k)
    theta = torch.stack([torch.stack([cos * sx, -sin * sy + sh, zero], 1),
                         torch.stack([sin * sx, cos * sy, zero], 1)], 1)[inv].to(x.device)
    b, _, h, w = x.shape
    grid = F.affine_grid(theta, [b, 1, h, w], align_corners=False)
    noise = ((torch.rand(k, 2, 3, 6, generator=gen) * 2 - 1) * 0.08 * strength)[inv].to(x.device)
    grid = grid + F.interpolate(noise, size=(h, w), mode="bicubic", align_corners=False).permute(0, 2, 3, 1)
    return F.grid_sample(x, grid, padding_mode="zeros", align_corners=False)


@torch.no_grad()
def embed_arrays(net: Embedder, x: np.ndarray | torch.Tensor, device: str, batch: int = 256) -> np.ndarray:
    """Embed ``(N, 1, H, W)`` float32 [0, 1] (or uint8 ``(N, H, W)``) inputs; returns ``(N, D)`` float32."""
    net.eval()
    t = torch.as_tensor(x)
    if t.dtype == torch.uint8:
        t = t.float().div(255.0).unsqueeze(1)
    outs = [net(t[i : i + batch].to(device)).cpu() for i in range(0, len(t), batch)]
    return torch.cat(outs).numpy() if outs else np.zeros((0, net.dim), np.float32)


def validate(net: Embedder, val: SignatureArrays, device: str, views: np.ndarray | None = None
             ) -> dict[str, float]:
    """Validation EERs at K=1 and K=5 (mean aggregation) and their mean, ``score``.

    With ``views`` (``(N, H, W)`` document views aligned with ``val``) also ``doc_eer_k*``: the queries are the
    document crops and the references clean specimens, as in ``sigpipe run``; ``score`` averages all of them.
    """
    emb = embed_arrays(net, val.images, device)
    qembs = {"": None} if views is None else {"": None, "doc_": embed_arrays(net, views, device)}
    res = {}
    for prefix, qemb in qembs.items():
        for k in (1, 5):
            q = protocol_distances(emb, val.writer, val.forged, val.name, k, "mean", qemb)
            if q.genuine.size and q.skilled.size:  # K=5 needs writers with at least 6 genuine signatures
                res[f"{prefix}eer_k{k}"] = eer(q.genuine, q.skilled).eer
    if not res:
        raise ValueError("the validation writers have too few genuine signatures or no skilled forgeries")
    res["score"] = float(np.mean(list(res.values())))
    return res


MIN_CALIBRATION_WRITERS = 5  # fewer validation writers than this: calibrate warns
_KNOWN_CORPORA = {"cedar": "CEDAR (Univ. at Buffalo)", "bhsig-bengali": "BHSig260-Bengali",
                  "bhsig-hindi": "BHSig260-Hindi"}


def _provenance(data: Sequence[Path]) -> str:
    """Where the training signatures come from, as far as their folder names say: the research corpora this
    project trains on by name, any other folder as the user's own (a bank's model said "CEDAR and BHSig260")."""
    names = [Path(p).stem if is_pack(p) else Path(p).resolve().name for p in data]  # a pack: <corpus>.npz
    known = [_KNOWN_CORPORA[n] for n in names if n in _KNOWN_CORPORA]
    other = [n for n in names if n not in _KNOWN_CORPORA]
    parts = ([f"{', '.join(known)}: research-use signature corpora"] if known else []) + \
        ([f"{', '.join(other)}: the trainer's own data (its provenance and licence are the trainer's to record)"]
         if other else [])
    return "; ".join(parts)


def calibrate(emb: np.ndarray, val: SignatureArrays, view_emb: np.ndarray | None = None,
              pairs: tuple[PairTerm, PairTerm | None] | None = None) -> tuple[DecisionRule, dict[str, Any]]:
    """Choose the aggregation by validation EER, then the weight of each person's reference spread in their
    threshold (``DecisionRule.spread_weight``, among :data:`SPREAD_WEIGHTS`, by the mean validation EER over the
    K >= 2 it applies to), then -- with a second stage -- its weight (``DecisionRule.pair_weight``, among
    :data:`PAIR_WEIGHTS`, by the mean validation EER at K = 1 and 5), then thresholds per K (at the EER point) and
    the score's logistic.

    With ``view_emb`` (embeddings of document views aligned with ``val``) the queries of both kinds are pooled:
    one threshold serves clean specimens (``sigpipe verify``) and document crops (``sigpipe run``).

    Args:
        pairs: the second stage's pair terms (``pairnet.protocol_pairs``) for clean queries and for the document
            views (None when ``view_emb`` is).
    """

    writers = len(set(val.writer.tolist()))
    if writers < MIN_CALIBRATION_WRITERS:  # a bank's 10 writers split 70/10/20 calibrate on one
        log.warning("calibrating on %d validation writer(s): the thresholds and the score follow %s, not writers in "
                    "general (at least %d advised; this project's were calibrated on 20)",
                    writers, "that person" if writers == 1 else "those people", MIN_CALIBRATION_WRITERS)

    def pooled(k: int, agg: str, spread_weight: float = 0.0, pair_weight: float = 0.0) -> QueryDistances:
        pc, pv = pairs if pairs is not None and pair_weight > 0 else (None, None)
        qs = [protocol_distances(emb, val.writer, val.forged, val.name, k, agg, spread_weight=spread_weight,
                                 pair=pc, pair_weight=pair_weight)]
        if view_emb is not None:
            qs.append(protocol_distances(emb, val.writer, val.forged, val.name, k, agg, view_emb, spread_weight,
                                         pv, pair_weight))
        return QueryDistances(np.concatenate([q.genuine for q in qs]), np.concatenate([q.skilled for q in qs]),
                              np.concatenate([q.random for q in qs]), qs[0].writers)

    def mean_eer(ks: tuple[int, ...], agg: str, spread_weight: float = 0.0, pair_weight: float = 0.0) -> float:
        """Mean EER over the K that the validation writers allow; NaN when they allow none of ``ks``."""
        es = [eer(q.genuine, q.skilled).eer for k in ks for q in [pooled(k, agg, spread_weight, pair_weight)]
              if q.genuine.size and q.skilled.size]
        return float(np.mean(es)) if es else float("nan")

    report: dict[str, Any] = {}
    best_agg, best_e = "mean", float("inf")
    for agg in AGGREGATIONS:
        e = mean_eer((1, 5), agg)
        report[f"val_eer_{agg}"] = e
        if e < best_e - 1e-9:
            best_agg, best_e = agg, e
    multi = tuple(k for k in CALIBRATION_KS if k >= 2)
    best_w, best_e = 0.0, float("inf")
    for w in SPREAD_WEIGHTS:
        e = mean_eer(multi, best_agg, w)
        if np.isnan(e):  # no validation writer has 3 genuine signatures: nothing to choose the weight on
            break
        report[f"val_eer_k2+_spread_weight_{w}"] = e
        if e < best_e - 1e-9:
            best_w, best_e = w, e
    best_p = 0.0
    if pairs is not None:
        best_e = mean_eer((1, 5), best_agg, best_w)
        report["val_eer_k1,5_pair_weight_0.0"] = best_e
        for pw in PAIR_WEIGHTS:
            e = mean_eer((1, 5), best_agg, best_w, pw)
            report[f"val_eer_k1,5_pair_weight_{pw}"] = e
            if e < best_e - 1e-9:
                best_p, best_e = pw, e
    thresholds: dict[int, float] = {}
    xs, ys = [], []
    for k in CALIBRATION_KS:
        q = pooled(k, best_agg, best_w, best_p)
        if not (q.genuine.size and q.skilled.size):
            continue
        thresholds[k] = eer(q.genuine, q.skilled).threshold
        neg = np.concatenate([q.skilled, q.random])
        xs += [q.genuine - thresholds[k], neg - thresholds[k]]
        ys += [np.ones(q.genuine.size), np.zeros(neg.size)]
    a, b = fit_logistic(np.concatenate(xs), np.concatenate(ys))
    rule = DecisionRule(
        best_agg, thresholds, a, b,
        calibration={
            "method": "aggregation, then spread weight, chosen by validation EER; threshold at the equal-error point "
            "of genuine vs skilled forgeries of the validation writers, per number of references K (plus the spread "
            "weight times each person's reference spread); score = logistic fit on validation distances "
            "(genuine vs skilled + random forgeries)" + (POOLED_NOTE if view_emb is not None else "")
            + (PAIR_NOTE if pairs is not None else ""),
            **report,
        },
        spread_weight=best_w,
        pair_weight=best_p,
        copy_similarity=COPY_SIMILARITY,  # measured on the preprocessed canvases, not fitted (copies.py)
    )
    return rule, report


# what a resumed run may change: where and how fast it runs, not what it trains
_RESUME_FREE = ("resume", "threads", "device", "out", "precision", "patience", "tag", "init", "max_minutes")


def _resumable_config(cfg: VerifierTrainConfig) -> dict[str, Any]:
    """The settings a checkpoint records, which a resumed run must give again."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items() if k not in _RESUME_FREE}


def _checkpoint(path: Path, **state: Any) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def ensemble_init_message(path: Path, state: dict[str, Any]) -> str | None:
    """Why ``--init`` weights ``state`` cannot start a network when they are an ensemble's (the shipped verifier is
    one, and failed with some 60 missing keys), with the command that takes one member out; None otherwise."""
    members = sorted({k.split(".")[1] for k in state if k.startswith("members.")})
    if not members:
        return None
    return (f"--init {path} is an ensemble of {len(members)} networks (the shipped verifier is one): train "
            "from one member, taken out with: python -c \"import torch; s = torch.load('"
            f"{path}', weights_only=True); torch.save({{k[10:]: v for k, v in s.items() if "
            "k.startswith('members.0.')}, 'member0.pt')\" (members.1. for the other); the fine-tuned member is "
            "a single network, without the ensemble and the second stage")


def check_training_data(cfg: VerifierTrainConfig) -> None:
    """What training would otherwise find only after loading images or training an epoch: corpora that are not
    per-writer corpora, two corpora with one name, no validation writers to choose the best epoch on, or a batch the
    training writers cannot fill. Lists folders only.

    Raises:
        InputError: any of those.
    """
    try:
        corpora = [open_corpus(p) for p in (*cfg.data, *cfg.extra)]
        splits = writer_splits(cfg)
    except ValueError as e:
        raise InputError(str(e)) from e
    seen: dict[str, Path] = {}
    for c in corpora:
        if c.name in seen:
            raise InputError(f"{seen[c.name]} and {c.root} are both named {c.name!r}: corpora are told apart by their "
                             "folder names (rename one, or give it once)")
        seen[c.name] = c.root
    val = [c[w] for c in corpora[: len(cfg.data)] for w in splits[c.name]["val"]]
    if not any(len(s.genuine) >= 2 and s.forged for s in val):
        raise InputError(f"no validation writer with 2 genuine signatures and a forgery among the {len(val)} that the "
                         f"split {'/'.join(f'{f:g}' for f in cfg.split)} leaves in --data: add writers")
    writers = sum(len(parts["train"]) for parts in splits.values()) * cfg.mirror_writers
    if cfg.batch % cfg.m_per_writer or cfg.batch > writers * cfg.m_per_writer:
        raise InputError(f"--batch {cfg.batch}: must be a multiple of {cfg.m_per_writer} (images per writer in a "
                         f"batch) and at most {writers * cfg.m_per_writer} ({writers} training writers x "
                         f"{cfg.m_per_writer})")


def train_verifier(cfg: VerifierTrainConfig) -> Path:
    """Train, keep the best epoch by validation EER, calibrate, and write ``verifier.pt`` + manifest to ``cfg.out``.

    Returns:
        Path of the weights file (its manifest is ``<path>.json``).

    Raises:
        InputError: data that cannot train (:func:`check_training_data`), checked before any image is loaded.
    """
    if cfg.mirror_writers not in (1, 2, 4):
        raise ValueError(f"mirror_writers must be 1, 2 or 4, got {cfg.mirror_writers}")
    check_precision(cfg.precision)
    check_training_data(cfg)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)

    t0 = time.time()
    train = load_split(cfg, "train")
    val = load_split(cfg, "val")
    val_views = None
    if cfg.doc_views:  # the same signatures cropped from synthetic documents: extra samples of the same writers
        views = load_views(cfg, "train", cfg.doc_views, cfg.seed)
        train = SignatureArrays.concat([train, *(SignatureArrays(v, train.writer, train.forged, train.name)
                                                 for v in views)])
        val_views = load_views(cfg, "val", 1, cfg.seed + 1)[0]  # another seed than training's views
    log.info("train: %d images of %d writers; val: %d images of %d writers (%.0fs)",
             len(train.images), len(set(train.writer)), len(val.images), len(set(val.writer)), time.time() - t0)

    writers = sorted(set(train.writer.tolist()))
    wid = {w: i for i, w in enumerate(writers)}
    sample_labels = np.array([wid[w] for w in train.writer])
    # Sample j is image j % n mirrored by code j // n; a mirrored writer is a writer of its own (its genuine
    # signatures and forgeries mirrored alike), so the training set holds mirror_writers times as many writers.
    n = len(train.images)
    mirrors = cfg.mirror_writers
    sample_labels = np.concatenate([sample_labels * mirrors + f for f in range(mirrors)])
    forged_all = np.tile(train.forged, mirrors)
    loss_labels = torch.as_tensor(
        np.where(forged_all, len(writers) * mirrors + np.arange(len(sample_labels)), sample_labels)
    )
    sample_t = torch.as_tensor(sample_labels)
    images = torch.as_tensor(train.images)

    net = build_model(cfg.architecture, cfg.dim, cfg.width).to(device)
    if cfg.init:
        state = torch.load(cfg.init, map_location=device, weights_only=True)
        if (message := ensemble_init_message(cfg.init, state)) is not None:
            raise InputError(message)
        net.load_state_dict(state)
    memory_format = training_memory_format(device, cfg.width)
    net = net.to(memory_format=memory_format)
    loss_fn = losses.TripletMarginLoss(margin=cfg.margin)
    miner = miners.TripletMarginMiner(margin=cfg.margin, type_of_triplets="all")
    # Optional auxiliary loss (SigNet-F's idea in metric-learning form): ArcFace over 2 classes per writer, genuine
    # and "forgery of this writer", so every training writer's forgeries are pushed an angular margin away from
    # that writer's genuine signatures, not only the ones that happen to form violating triplets in a batch.
    aux_fn = None
    if cfg.aux_loss == "arcface":
        aux_fn = losses.ArcFaceLoss(num_classes=2 * len(writers) * mirrors, embedding_size=cfg.dim).to(device)
    elif cfg.aux_loss != "none":
        raise ValueError(f"unknown auxiliary loss {cfg.aux_loss!r}; expected 'none' or 'arcface'")
    aux_labels = torch.as_tensor(2 * sample_labels + forged_all.astype(np.int64))
    sampler = samplers.MPerClassSampler(
        sample_labels, m=cfg.m_per_writer, batch_size=cfg.batch, length_before_new_iter=cfg.steps_per_epoch * cfg.batch
    )
    params = list(net.parameters()) + (list(aux_fn.parameters()) if aux_fn is not None else [])
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = one_cycle(opt, cfg.lr, cfg.epochs * cfg.steps_per_epoch, pct_start=0.1)
    # Weight averaging: the validation score swings from epoch to epoch (few validation writers, small batches), so
    # a moving average of the weights (buffers too: BatchNorm statistics) is validated and kept instead of the raw
    # weights of whichever epoch happened to land low.
    ema = (torch.optim.swa_utils.AveragedModel(net, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.ema),
                                               use_buffers=True) if cfg.ema > 0 else None)
    if ema is not None:
        ema.update_parameters(net)  # the average starts at the initial weights (its first update copies)
    # the network that is validated, checkpointed as best and shipped
    kept = cast(Embedder, ema.module) if ema is not None else net
    start, best_score, best_state, history, stale = 0, float("inf"), None, [], 0
    last = out / "last.ckpt"
    run_config = _resumable_config(cfg)
    if cfg.resume and not last.is_file():
        raise InputError(f"nothing to resume: {out} holds no last.ckpt of an interrupted run")
    if cfg.resume:
        ck = torch.load(last, map_location=device, weights_only=False)  # our own checkpoint, not a shipped model
        changed = sorted(k for k, v in (ck.get("config") or {}).items() if run_config.get(k) != v)
        if changed:
            raise InputError(f"cannot resume {last} with other settings than it was trained with: "
                             + ", ".join(f"{k} {ck['config'][k]!r} -> {run_config.get(k)!r}" for k in changed))
        net.load_state_dict(ck["model"])
        if ema is not None:
            ema.load_state_dict(ck["ema"])
        if aux_fn is not None:
            aux_fn.load_state_dict(ck["aux"])
        opt.load_state_dict(ck["opt"])
        sched.load_state_dict(ck["sched"])
        start, best_score, best_state, history = ck["epoch"], ck["best_score"], ck["best_state"], ck["history"]
        gen.set_state(ck["gen"])
        stale = int(ck.get("stale", 0))  # epochs without a better one: early stopping counts on across the break
        if ck.get("sampler_labels") is not None:  # the sampler shuffles its writer list in place, epoch after epoch
            sampler.labels = list(ck["sampler_labels"])
        if ck.get("torch_rng") is not None:  # dropout draws from torch's global generator
            torch.set_rng_state(ck["torch_rng"])
        if ck.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ck["cuda_rng"])
        log.info("resumed from %s at epoch %d", last, start)

    started = time.time()  # (--max-minutes counts the training epochs, not the loading before them)
    for epoch in range(start, cfg.epochs):
        net.train()
        te, tot, ntrip = time.time(), 0.0, 0
        # MPerClassSampler draws from numpy's global generator (pytorch-metric-learning's): seeded for each epoch,
        # so that two runs with one --seed, and a run and its --resume, draw the same batches (it also shuffles its
        # writer list in place, carried from epoch to epoch: the checkpoint keeps it, as it keeps torch's generator,
        # which dropout draws from)
        np.random.seed([cfg.seed, epoch])
        idx = np.fromiter(iter(sampler), int)
        for step in range(cfg.steps_per_epoch):
            bi = torch.as_tensor(idx[step * cfg.batch : (step + 1) * cfg.batch])
            x = images[bi % n].float().div(255.0).unsqueeze(1)
            if mirrors > 1:
                x = mirror(x, bi // n)
            if cfg.writer_warp > 0:
                x = writer_warp(x, sample_t[bi], gen, cfg.writer_warp)
            x = augment(x, gen).to(device, memory_format=memory_format)
            lab = loss_labels[bi].to(device)
            with training_autocast(device, cfg.precision):
                emb = net(x)
            emb = emb.float()  # mining and the losses in f32
            trip = miner(emb, lab)
            loss = loss_fn(emb, lab, trip)
            if aux_fn is not None:
                loss = loss + cfg.aux_weight * aux_fn(emb, aux_labels[bi].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if ema is not None:
                ema.update_parameters(net)
            tot += float(loss.detach())
            ntrip += int(trip[0].numel())
        v = validate(kept, val, device, val_views)
        rec = {"epoch": epoch + 1, "loss": tot / cfg.steps_per_epoch, "triplets": ntrip / cfg.steps_per_epoch,
               "seconds": round(time.time() - te, 1), **{k: round(x, 4) for k, x in v.items()}}
        history.append(rec)
        log.info("epoch %s", json.dumps(rec))
        if v["score"] < best_score:
            best_score, best_state, stale = v["score"], copy.deepcopy(kept.state_dict()), 0
        else:
            stale += 1
        _checkpoint(last, config=run_config, model=net.state_dict(), opt=opt.state_dict(), sched=sched.state_dict(),
                    epoch=epoch + 1,
                    best_score=best_score, best_state=best_state, history=history, gen=gen.get_state(),
                    aux=aux_fn.state_dict() if aux_fn is not None else None,
                    ema=ema.state_dict() if ema is not None else None, stale=stale,
                    sampler_labels=list(sampler.labels),
                    torch_rng=torch.get_rng_state(),
                    cuda_rng=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None)
        if stale >= cfg.patience:
            log.info("early stop: validation EER did not improve for %d epochs", cfg.patience)
            break
        if cfg.max_minutes is not None and time.time() - started > 60 * cfg.max_minutes and epoch + 1 < cfg.epochs:
            log.info("stopping after epoch %d: --max-minutes %g reached (--resume continues)", epoch + 1,
                     cfg.max_minutes)
            break

    assert best_state is not None, "no epoch was trained"
    net.load_state_dict(best_state)
    view_emb = embed_arrays(net, val_views, device) if val_views is not None else None
    rule, _ = calibrate(embed_arrays(net, val.images, device), val, view_emb)
    weights = out / "verifier.pt"
    torch.save({k: v.cpu() for k, v in best_state.items()}, weights)
    splits = writer_splits(cfg)
    manifest = {
        "name": "signet-triplet",
        "tag": cfg.tag,
        "architecture": cfg.architecture,
        "width": cfg.width,
        "embedding_dim": cfg.dim,
        "distance": "euclidean on L2-normalised embeddings",
        "input": {"channels": 1, "height": cfg.preprocess.height, "width": cfg.preprocess.width,
                  "range": "[0,1], ink bright"},
        "preprocess": cfg.preprocess.to_dict(),
        "decision": rule.to_dict(),
        "training": {
            "data": [str(p) for p in cfg.data],
            "extra_training_only": [str(p) for p in cfg.extra],
            "splits": splits,
            "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()
                       if k not in ("data", "extra", "preprocess", "out")},
            "best_epoch_val": min(history, key=lambda r: r["score"]),
            "epochs_run": len(history),
            "history": history,
            "provenance": _provenance([*cfg.data, *cfg.extra]),
        },
        "benchmarks": {},
    }
    write_manifest(weights, manifest)
    return weights
