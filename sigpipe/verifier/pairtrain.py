"""Train the verifier's second stage (``sigpipe verifier train-pair``): the 2-channel pair network of
:mod:`sigpipe.verifier.pairnet`, on the training writers of a Siamese verifier, with its preprocessing.

Each step draws ``batch`` pairs (reference, query) of the training writers: a genuine query (another genuine signature
of the same writer), a skilled forgery of that writer, or a genuine signature of another writer, in the proportions
``p_genuine``, ``p_skilled`` and the rest; half the queries are document views (``docviews``: the signature placed on
a synthetic scanned page and cropped back, as ``sigpipe run`` sees it). Both images of a pair get the same mirror
flip and writer warp (``train.writer_warp``: a new writer's hand, the pair's relation kept), then independent
augmentation, and the two are swapped at random. Loss: binary cross-entropy; an exponential moving average of the
weights is validated and kept. Validation: the pair network alone at K=1 on the validation writers (clean and
document-view queries), the mean of the two EERs.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sigpipe._training import check_precision, one_cycle, training_autocast
from sigpipe.errors import ModelError
from sigpipe.verifier.data import SignatureArrays
from sigpipe.verifier.metrics import eer
from sigpipe.verifier.model import PairNet, training_memory_format
from sigpipe.verifier.pairnet import ARCHITECTURE
from sigpipe.verifier.preprocess import PreprocessConfig
from sigpipe.verifier.train import (
    VerifierTrainConfig,
    augment,
    load_split,
    load_views,
    mirror,
    writer_splits,
    writer_warp,
)
from sigpipe.weights import Manifest, write_manifest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PairTrainConfig:
    """Settings of a pair-network training run (all recorded in its manifest)."""

    like: Path  # the Siamese verifier's manifest: its writer splits and preprocessing are used
    data: tuple[Path, ...]
    out: Path = Path("runs/verifier-pair")
    width: int = 32
    epochs: int = 14
    steps: int = 300
    batch: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warp: float = 0.5
    p_genuine: float = 0.45
    p_skilled: float = 0.40
    view_prob: float = 0.5
    ema: float = 0.998
    seed: int = 0
    threads: int | None = 2
    device: str | None = None
    init: Path | None = None
    tag: str = "v1"
    precision: str = "f32"  # "bf16": forward passes under bfloat16 autocast (sigpipe._training)


def splits_config(cfg: PairTrainConfig) -> tuple[VerifierTrainConfig, Manifest]:
    like = Manifest.load(cfg.like)
    try:  # a trained model records its config; an ensemble, its members'
        tc = like["training"].get("config") or like["members"][0]["training"]["config"]
        splits = like["training"]["splits"]
        split, split_seed = tuple(tc["split"]), int(tc["split_seed"])
    except (KeyError, IndexError, TypeError, ValueError) as e:
        raise ModelError(f"{cfg.like} records no writer splits of a Siamese verifier to train the pair network on "
                         f"(a verifier trained by 'sigpipe verifier train' or joined by 'verifier ensemble'; {e!r})"
                         ) from e
    vcfg = VerifierTrainConfig(data=tuple(cfg.data), preprocess=PreprocessConfig.from_dict(like["preprocess"]),
                               split=split, split_seed=split_seed, threads=cfg.threads)
    if writer_splits(vcfg) != splits:
        raise ModelError(f"--data does not give the writer splits of {like.ident}: pass the corpora it was trained on")
    return vcfg, like


def quick_val(net: nn.Module, val: SignatureArrays, views: np.ndarray, device: str) -> dict[str, float]:
    """The pair network's EER at K=1 (mean logit against the writer's first genuine signature by name) on clean and
    document-view queries of the validation writers; ``score`` = their mean."""
    net.eval()
    res = {}
    refs, queries, kinds = [], [], []
    for w in sorted(set(val.writer.tolist())):
        gi = np.flatnonzero((val.writer == w) & ~val.forged)
        gi = gi[np.argsort(val.name[gi], kind="stable")]
        fi = np.flatnonzero((val.writer == w) & val.forged)
        if gi.size < 2 or fi.size == 0:
            continue
        for qi, kind in [(int(i), 1) for i in gi[1:]] + [(int(i), 0) for i in fi]:
            refs.append(int(gi[0]))
            queries.append(qi)
            kinds.append(kind)
    r, q, y = np.array(refs), np.array(queries), np.array(kinds)
    for name, qimgs in (("eer_k1", val.images), ("doc_eer_k1", views)):
        out = []
        with torch.no_grad():
            for i in range(0, len(r), 256):
                a = torch.as_tensor(val.images[r[i : i + 256]]).float().div(255).unsqueeze(1).to(device)
                b = torch.as_tensor(qimgs[q[i : i + 256]]).float().div(255).unsqueeze(1).to(device)
                out.append(((net(a, b) + net(b, a)) / 2).float().cpu().numpy())
        z = np.concatenate(out)
        res[name] = eer(-z[y == 1], -z[y == 0]).eer
    res["score"] = float(np.mean([res["eer_k1"], res["doc_eer_k1"]]))
    return res


def train_pairnet(cfg: PairTrainConfig) -> Path:
    """Train; keep the best epoch by validation score; write ``cfg.out/pair.pt`` and its manifest.

    Raises:
        ModelError: ``--data`` does not reproduce the Siamese verifier's writer splits.
    """
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if not 0 <= cfg.p_genuine + cfg.p_skilled <= 1:
        raise ValueError("p_genuine + p_skilled must be within [0, 1]")
    check_precision(cfg.precision)
    device = cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
    vcfg, like = splits_config(cfg)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    cfg.out.mkdir(parents=True, exist_ok=True)
    tr = load_split(vcfg, "train")
    train_views = load_views(vcfg, "train", 1, vcfg.seed)[0]  # document views of the training images (aligned)
    va = load_split(vcfg, "val")
    val_views = load_views(vcfg, "val", 1, vcfg.seed + 1)[0]
    ws = sorted(set(tr.writer.tolist()))
    gen_idx = {w: np.flatnonzero((tr.writer == w) & ~tr.forged) for w in ws}
    forg_idx = {w: np.flatnonzero((tr.writer == w) & tr.forged) for w in ws}
    imgs, vimgs = torch.as_tensor(tr.images), torch.as_tensor(train_views)
    net = PairNet(cfg.width)
    if cfg.init:
        net.load_state_dict(torch.load(cfg.init, map_location="cpu", weights_only=True))
    memory_format = training_memory_format(device, cfg.width)
    net = net.to(device).to(memory_format=memory_format)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = one_cycle(opt, cfg.lr, cfg.epochs * cfg.steps, pct_start=0.1)
    ema = torch.optim.swa_utils.AveragedModel(net, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.ema),
                                              use_buffers=True)
    best: dict[str, Any] | None = None
    history = []
    weights = cfg.out / "pair.pt"
    for ep in range(cfg.epochs):
        net.train()
        t0, total = time.time(), 0.0
        for _ in range(cfg.steps):
            ref_i, q_i, lab = [], [], []
            for wi in rng.integers(0, len(ws), cfg.batch):
                w = ws[wi]
                g = gen_idx[w]
                a = rng.choice(g)
                u = rng.random()
                if u < cfg.p_genuine or forg_idx[w].size == 0:
                    b, y = rng.choice(g[g != a]), 1.0
                elif u < cfg.p_genuine + cfg.p_skilled:
                    b, y = rng.choice(forg_idx[w]), 0.0
                else:
                    b, y = rng.choice(gen_idx[ws[(wi + rng.integers(1, len(ws))) % len(ws)]]), 0.0
                ref_i.append(a)
                q_i.append(b)
                lab.append(y)
            qv = torch.as_tensor(rng.random(cfg.batch) < cfg.view_prob)
            qi = torch.as_tensor(np.array(q_i))
            xa = imgs[torch.as_tensor(np.array(ref_i))].float().div(255).unsqueeze(1)
            xb = torch.where(qv[:, None, None], vimgs[qi], imgs[qi]).float().div(255).unsqueeze(1)
            x = torch.cat([xa, xb])
            pid = torch.arange(cfg.batch).repeat(2)  # one warp per pair: its two images stay comparable
            x = mirror(x, torch.as_tensor(rng.integers(0, 4, cfg.batch)).repeat(2))
            if cfg.warp > 0:
                x = writer_warp(x, pid, gen, cfg.warp)
            x = augment(x, gen)
            xa, xb = x[: cfg.batch], x[cfg.batch :]
            swap = (torch.rand(cfg.batch, generator=gen) < 0.5)[:, None, None, None]
            xa, xb = torch.where(swap, xb, xa), torch.where(swap, xa, xb)
            with training_autocast(device, cfg.precision):
                logit = net(xa.to(device).contiguous(memory_format=memory_format),
                            xb.to(device).contiguous(memory_format=memory_format))
            target = torch.as_tensor(lab, dtype=torch.float32, device=device)
            loss = F.binary_cross_entropy_with_logits(logit.float(), target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            ema.update_parameters(net)
            total += float(loss.detach())
        v = quick_val(ema.module, va, val_views, device)
        rec = {"epoch": ep + 1, "loss": round(total / cfg.steps, 4), "seconds": round(time.time() - t0, 1),
               **{k: round(x, 4) for k, x in v.items()}}
        history.append(rec)
        log.info("pair epoch %s", json.dumps(rec))
        if best is None or v["score"] < best["score"]:
            best = rec
            state = {k: t.detach().cpu().contiguous() for k, t in ema.module.state_dict().items()
                     if k != "n_averaged"}
            torch.save(state, weights)
        # the manifest after every epoch: an interrupted run leaves its best weights usable and described
        assert best is not None
        _write_manifest(weights, cfg, vcfg, like, best, history)
    return weights


def _write_manifest(weights: Path, cfg: PairTrainConfig, vcfg: VerifierTrainConfig, like: Manifest,
                    best: dict[str, Any], history: list[dict[str, Any]]) -> None:
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()}
    config["data"] = [str(p) for p in cfg.data]
    write_manifest(weights, {
        "name": "signet-pair", "tag": cfg.tag, "architecture": ARCHITECTURE, "width": cfg.width,
        "input": like["input"], "preprocess": like["preprocess"],
        "training": {"config": config, "like": like.ident, "splits": like["training"]["splits"],
                     "data": config["data"], "view_seeds": {"train": vcfg.seed, "val": vcfg.seed + 1},
                     "best_epoch_val": best, "epochs_run": len(history), "history": history,
                     "provenance": like["training"].get("provenance")},
    })
