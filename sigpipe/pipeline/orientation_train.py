"""Training and evaluating the page-orientation network (:mod:`sigpipe.pipeline.orientation`).

Its labels cost nothing: every upright page, turned by 0, 90, 180 and 270 degrees, is four examples. Pages come from
document folders (PDF, TIFF, PNG, JPEG, as ``sigpipe run`` reads them): the real pages of the detection dataset and
synthetic documents. Torch is imported here only.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from sigpipe._training import one_cycle
from sigpipe.pipeline.ingest import IngestConfig, discover_scans, iter_pages
from sigpipe.pipeline.orientation import ROTATIONS, orientation_input
from sigpipe.weights import Manifest, sha256_path, write_manifest

log = logging.getLogger(__name__)

KEEP_SIDE = 1024  # pages are kept in memory at this longer side (gray): enough for any input size up to it


def build_net(width: int = 16) -> Any:
    """The orientation CNN: five stride-2 stages of 3x3 convolutions (batch norm, ReLU) over the ``(1, S, S)``
    input, mean and max pooled over the page, then a linear layer to 4 logits."""
    import torch
    from torch import nn

    class OrientNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            chans = [1, width, 2 * width, 3 * width, 4 * width, 6 * width]
            layers: list[nn.Module] = []
            for i, (a, b) in enumerate(zip(chans[:-1], chans[1:], strict=True)):
                layers += [nn.Conv2d(a, b, 3, 2, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU(inplace=True)]
                if i > 0:
                    layers += [nn.Conv2d(b, b, 3, 1, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU(inplace=True)]
            self.features = nn.Sequential(*layers)
            self.head = nn.Linear(2 * chans[-1], len(ROTATIONS))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            f = self.features(x)
            return self.head(torch.cat([f.mean(dim=(2, 3)), f.amax(dim=(2, 3))], dim=1))

    return OrientNet()


def load_pages(folders: Sequence[str | Path], dpi: int = 150, limit: int | None = None,
               keep_side: int | None = KEEP_SIDE) -> list[np.ndarray]:
    """Every page of every document under ``folders`` (recursive), gray uint8, its longer side reduced to
    ``keep_side`` at most (None: as rendered, BGR). Documents that cannot be read are skipped with a warning."""
    pages: list[np.ndarray] = []
    config = IngestConfig(dpi=dpi)
    for folder in folders:
        for path in discover_scans(folder):
            try:
                for page in iter_pages(path, config):
                    if keep_side is None:
                        pages.append(page.image)
                        continue
                    g = cv2.cvtColor(page.image, cv2.COLOR_BGR2GRAY)
                    f = keep_side / max(g.shape)
                    if f < 1:
                        g = cv2.resize(g, (round(g.shape[1] * f), round(g.shape[0] * f)), interpolation=cv2.INTER_AREA)
                    pages.append(g)
            except Exception as e:  # noqa: BLE001 - a bad file in a training folder is skipped, not fatal
                log.warning("%s: skipped (%s)", path, e)
            if limit and len(pages) >= limit:
                return pages[:limit]
    return pages


def augmented(page: np.ndarray, k: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """One training input: ``page`` turned by class ``k``, scaled (its longer side 70-100% of the input), placed at
    random, skewed by up to 3 degrees, with random contrast, blur and noise."""
    turned = np.rot90(page, k)
    x = orientation_input(turned, size, scale=float(rng.uniform(0.7, 1.0)),
                          offset=(float(rng.uniform()), float(rng.uniform())))
    angle = float(rng.uniform(-3, 3))
    m = cv2.getRotationMatrix2D((size / 2, size / 2), angle, 1.0)
    x = cv2.warpAffine(x, m, (size, size), flags=cv2.INTER_LINEAR, borderValue=0.0)
    if rng.uniform() < 0.3:
        x = cv2.GaussianBlur(x, (3, 3), float(rng.uniform(0.3, 1.0)))
    x = x * float(rng.uniform(0.6, 1.2))
    if rng.uniform() < 0.5:
        x = x + rng.normal(0, float(rng.uniform(0.01, 0.06)), x.shape).astype(np.float32)
    return np.clip(x, 0.0, 1.0).astype(np.float32)


def all_turns(pages: Sequence[np.ndarray], size: int, no_cue: Sequence[np.ndarray] = ()
              ) -> tuple[np.ndarray, np.ndarray]:
    """Every page (and image without an orientation cue, class 0 whatever its turn) in each of the four turns, as
    the network sees it at inference: ``(4N, 1, S, S)`` inputs and their classes."""
    xs, ys = [], []
    for image, cue in [(p, True) for p in pages] + [(p, False) for p in no_cue]:
        for k in range(len(ROTATIONS)):
            xs.append(orientation_input(np.rot90(image, k), size))
            ys.append(k if cue else 0)
    return np.stack(xs)[:, None], np.asarray(ys, np.int64)


@dataclass(frozen=True)
class OrientTrainConfig:
    """Settings of a training run (recorded in the manifest)."""

    size: int = 512
    width: int = 8
    epochs: int = 16
    batch: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    precision: str = "f32"
    threads: int = 2
    tag: str | None = None  # the model's tag (reports name it orient-cnn.<tag> <sha256 prefix>); None: s<seed>


def _predict(net: Any, x: np.ndarray, batch: int = 32) -> np.ndarray:
    import torch

    net.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out.append(torch.softmax(net(torch.from_numpy(x[i:i + batch])).float(), dim=1).numpy())
    return np.concatenate(out) if out else np.zeros((0, len(ROTATIONS)), np.float32)


def turn_figures(probs: np.ndarray, labels: np.ndarray, min_confidence: float) -> dict[str, Any]:
    """What the pipeline would do with these pages at ``min_confidence``: ``upright_turned`` (upright pages turned,
    the harm), ``turned_fixed`` / ``turned_pages`` (turned pages put upright), ``wrong_turn`` (pages turned the
    wrong way) and ``accuracy`` (argmax right)."""
    k = probs.argmax(axis=1)
    p = probs[np.arange(len(k)), k]
    turn = (k != 0) & (p >= min_confidence)
    upright = labels == 0
    return {
        "pages": int(len(labels)),
        "accuracy": round(float((k == labels).mean()), 4) if len(labels) else None,
        "upright_turned": int((turn & upright).sum()),
        "upright_pages": int(upright.sum()),
        "turned_fixed": int((turn & (k == labels) & ~upright).sum()),
        "turned_pages": int((~upright).sum()),
        "wrong_turn": int((turn & (k != labels) & ~upright).sum()),
    }


def no_cue_figures(probs: np.ndarray, min_confidence: float) -> dict[str, int]:
    """Of images without an orientation cue (each in its four turns), how many the pipeline would turn (all wrongly):
    :func:`turn_figures` with every image upright."""
    figures = turn_figures(probs, np.zeros(len(probs), np.int64), min_confidence)
    return {"images": figures["pages"], "turned": figures["upright_turned"]}


def choose_min_confidence(probs: np.ndarray, labels: np.ndarray, floor: float = 0.5) -> float:
    """The lowest confidence (at least ``floor``) at which no upright page of the validation set would be turned and
    no page turned the wrong way: just above the most confident such mistake."""
    k = probs.argmax(axis=1)
    p = probs[np.arange(len(k)), k]
    bad = (k != 0) & (k != labels)
    worst = float(p[bad].max()) if bad.any() else 0.0
    return round(max(floor, min(0.999, math.nextafter(worst, 1.0) + 1e-4)), 4)


def train(train_dirs: Sequence[str | Path], val_dirs: Sequence[str | Path], out: str | Path,
          config: OrientTrainConfig = OrientTrainConfig(), no_cue_dirs: Sequence[str | Path] = (),
          no_cue_val_dirs: Sequence[str | Path] = ()) -> Path:
    """Train, keep the epoch with the lowest validation loss, choose ``min_confidence`` on the validation pages,
    export ONNX and write the manifest. Returns the manifest's path.

    ``no_cue_dirs`` hold images that say nothing about which way up they are (signature images: a bank may run
    clipped signatures as documents): they are shown in a random turn as class 0, "leave it as it is", so the model
    does not turn such a page; ``no_cue_val_dirs`` likewise join the validation set, in all four turns."""
    import torch
    from torch import nn

    from sigpipe._training import training_autocast

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    rng = np.random.default_rng(config.seed)
    t0 = time.perf_counter()
    pages = load_pages(train_dirs)
    val_pages = load_pages(val_dirs)
    no_cue, no_cue_val = load_pages(no_cue_dirs), load_pages(no_cue_val_dirs)
    if not pages or not val_pages:
        raise ValueError(f"no pages to train on ({len(pages)}) or to validate on ({len(val_pages)})")
    xv, yv = all_turns(val_pages, config.size, no_cue_val)
    images = pages + no_cue
    log.info("%d training and %d validation pages loaded in %.0f s", len(pages), len(val_pages),
             time.perf_counter() - t0)
    net = build_net(config.width)
    n_items = len(pages) * len(ROTATIONS) + len(no_cue)  # each page in four turns, each no-cue image once
    steps = math.ceil(n_items / config.batch)
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = one_cycle(opt, config.lr, steps * config.epochs, pct_start=0.15)
    loss_fn = nn.CrossEntropyLoss()
    best = (math.inf, -1)
    history = []
    for epoch in range(1, config.epochs + 1):
        net.train()
        t = time.perf_counter()
        order = rng.permutation(np.concatenate([np.repeat(np.arange(len(pages)), len(ROTATIONS)),
                                                len(pages) + np.arange(len(no_cue))]))
        turns = rng.integers(0, len(ROTATIONS), len(order))
        labels = np.where(order < len(pages), turns, 0)
        total = 0.0
        for s in range(steps):
            idx = slice(s * config.batch, (s + 1) * config.batch)
            x = np.stack([augmented(images[i], int(k), config.size, rng) for i, k in
                          zip(order[idx], turns[idx], strict=True)])[:, None]
            y = torch.from_numpy(labels[idx].astype(np.int64))
            with training_autocast("cpu", config.precision):
                logits = net(torch.from_numpy(x))
            loss = loss_fn(logits.float(), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        probs = _predict(net, xv)
        val_loss = float(-np.log(np.clip(probs[np.arange(len(yv)), yv], 1e-9, 1)).mean())
        acc = float((probs.argmax(1) == yv).mean())
        history.append({"epoch": epoch, "loss": round(total / steps, 4), "val_loss": round(val_loss, 4),
                        "val_accuracy": round(acc, 4), "seconds": round(time.perf_counter() - t, 1)})
        log.info("epoch %d: %s", epoch, history[-1])
        if val_loss < best[0]:
            best = (val_loss, epoch)
            torch.save(net.state_dict(), out / "orientation.pt")
    net.load_state_dict(torch.load(out / "orientation.pt", weights_only=True))
    probs = _predict(net, xv)
    min_conf = choose_min_confidence(probs, yv)
    n_val = len(val_pages) * len(ROTATIONS)
    onnx_path = out / "orientation.onnx"
    net.eval()
    torch.onnx.export(net, (torch.zeros(1, 1, config.size, config.size),), str(onnx_path), input_names=["page"],
                      output_names=["logits"], dynamic_axes={"page": {0: "n"}, "logits": {0: "n"}}, opset_version=17,
                      dynamo=False)
    return write_manifest(out / "orientation.pt", {
        "name": "orient-cnn", "tag": config.tag or f"s{config.seed}", "architecture": "orient-cnn",
        "classes": [f"turned {r} degrees counter-clockwise" for r in ROTATIONS],
        "preprocessing": {"size": config.size, "input": "gray, ink 1 and paper 0, longer side = size, centred"},
        "decision": {"min_confidence": min_conf,
                     "rule": "turn a page back when the most likely class is not 0 at this probability or more; "
                             "the lowest such value at which no validation page was turned wrongly"},
        "backends": {"onnx": onnx_path.name}, "backend_sha256": {"onnx": sha256_path(onnx_path)},
        "training": {**asdict(config), "train": [str(d) for d in train_dirs], "val": [str(d) for d in val_dirs],
                     "no_cue": [str(d) for d in no_cue_dirs], "no_cue_val": [str(d) for d in no_cue_val_dirs],
                     "pages": len(pages), "val_pages": len(val_pages), "no_cue_images": len(no_cue),
                     "no_cue_val_images": len(no_cue_val), "best_epoch": best[1], "history": history},
        "validation": turn_figures(probs[:n_val], yv[:n_val], min_conf),
        "validation_no_cue": no_cue_figures(probs[n_val:], min_conf),
    })


def evaluate(manifest: str | Path | Manifest, dirs: Sequence[str | Path], min_confidence: float | None = None,
             dpi: int = 200) -> dict[str, Any]:
    """The model's figures on every page under ``dirs`` (PDFs rendered at ``dpi``, as ``sigpipe run`` does), each
    in its four turns (see :func:`turn_figures`), at the manifest's ``min_confidence`` unless given, with the time
    per page the pipeline spends on it (reducing the page and the ONNX model)."""
    from sigpipe.pipeline.orientation import PageOrienter

    orienter = PageOrienter(manifest)
    pages = load_pages(dirs, dpi=dpi, keep_side=None)
    labels = np.tile(np.arange(len(ROTATIONS)), len(pages))
    rows: list[np.ndarray] = []
    seconds = 0.0
    for page in pages:
        for k in range(len(ROTATIONS)):
            x = np.ascontiguousarray(np.rot90(page, k))  # a scanned page is contiguous
            t = time.perf_counter()
            rows.append(orienter.probabilities([x]))
            seconds += time.perf_counter() - t
    probs = np.concatenate(rows) if rows else np.zeros((0, 4), np.float32)
    ms = seconds * 1000 / max(1, len(labels))
    conf = orienter.min_confidence if min_confidence is None else min_confidence
    return {"model": orienter.ident, "min_confidence": conf, **turn_figures(probs, labels, conf),
            "ms_per_page": round(ms, 2)}


def evaluate_no_cue(manifest: str | Path | Manifest, dirs: Sequence[str | Path]) -> dict[str, Any]:
    """How many images without an orientation cue (signature images) under ``dirs``, each in its four turns, the
    pipeline would turn (``turned``: all wrongly; the manifest's ``min_page_size`` included) and how many the network
    alone would (``network_would_turn``, :func:`no_cue_figures`)."""
    from sigpipe.pipeline.orientation import PageOrienter

    orienter = PageOrienter(manifest)
    images = [np.ascontiguousarray(np.rot90(im, k)) for im in load_pages(dirs, keep_side=None)
              for k in range(len(ROTATIONS))]
    probs = orienter.probabilities(images) if images else np.zeros((0, len(ROTATIONS)), np.float32)
    network = no_cue_figures(probs, orienter.min_confidence)
    return {"model": orienter.ident, "images": network["images"],
            "turned": sum(k != 0 for k in orienter.turns(images)), "network_would_turn": network["turned"]}
