"""Verifier accuracy on held-out writers and embedding throughput; prints JSON.

Usage: .venv/bin/python benchmarks/verifier.py [--weights MANIFEST] [--data-root ../shared/datasets/signatures]

For each corpus the manifest's training record names the writers held out as ``test`` (never used for training,
early stopping or calibration); the DESIGN.md protocol runs on them with K=1 and K=5 references, at the shipped
thresholds. ``k1_doc``/``k5_doc``: the same with each query signature cropped from a synthetic scanned document
(``sigpipe.verifier.docviews``, seed 7) and clean references, as ``sigpipe run`` sees them.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from sigpipe.datasets.corpus import Corpus
from sigpipe.verifier.data import load_arrays
from sigpipe.verifier.docviews import document_views
from sigpipe.verifier.evaluate import evaluate_arrays
from sigpipe.verifier.verifier import Verifier

ROOT = Path(__file__).resolve().parents[1]


def throughput(v: Verifier, n: int = 512, threads: int = 2) -> dict[str, float]:
    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    x = rng.random((n, 1, v.preprocess_cfg.height, v.preprocess_cfg.width)).astype(np.float32)
    v.embed_prepared(x[:64])
    t = time.perf_counter()
    v.embed_prepared(x, batch=128)
    net = n / (time.perf_counter() - t)
    crops = [np.where(rng.random((150, 400)) < 0.03, 20, 235).astype(np.uint8) for _ in range(128)]
    t = time.perf_counter()
    v.embed(crops)
    full = len(crops) / (time.perf_counter() - t)
    return {"backend": v.backend, "threads": threads, "embed_per_s": round(net, 1),
            "preprocess_and_embed_per_s": round(full, 1)}


def architecture_speed(v: Verifier, n: int = 384, threads: int = 2) -> dict[str, dict[str, float]]:
    """Embeddings/s of every registered architecture at its default size on this model's input (PyTorch, batches
    of 128; speed does not depend on the weights, so untrained networks are timed)."""
    from sigpipe.verifier.model import ARCHITECTURES, build_model

    torch.set_num_threads(threads)
    x = torch.rand(n, 1, v.preprocess_cfg.height, v.preprocess_cfg.width)
    out = {}
    for name in ARCHITECTURES:
        net = build_model(name).eval()  # the registered default size (dim 128, width 32)
        with torch.no_grad():
            net(x[:32])
            t = time.perf_counter()
            for i in range(0, n, 128):
                net(x[i : i + 128])
        out[name] = {"params_m": round(sum(p.numel() for p in net.parameters()) / 1e6, 2),
                     "embed_per_s_pt": round(n / (time.perf_counter() - t), 1)}
    return out


def rounded(metrics: dict[str, object]) -> dict[str, object]:
    return {key: round(val, 4) if isinstance(val, float) else val for key, val in metrics.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--weights", type=Path, default=None, help="verifier manifest (default: bundled)")
    ap.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "datasets" / "signatures")
    ap.add_argument("--split", default="test", choices=["test", "val"])
    ap.add_argument("--doc-views", type=int, default=1, metavar="N",
                    help="also score the writers' signatures cropped from N synthetic documents each (0: skip)")
    args = ap.parse_args()
    v = Verifier.from_manifest(args.weights)
    splits = v.manifest["training"]["splits"]
    out: dict[str, object] = {"model": v.ident, "split": args.split, "corpora": {}}
    for name, parts in splits.items():
        root = args.data_root / name
        if not root.is_dir():
            continue
        res = {}
        corpus = Corpus(root)
        arrays = load_arrays(corpus, v.preprocess_cfg, parts[args.split])
        views = document_views(corpus, v.preprocess_cfg, parts[args.split], args.doc_views, seed=7,
                               workers=2) if args.doc_views else []
        for k in (1, 5):
            res[f"k{k}"] = rounded(evaluate_arrays(v, arrays, k)[0])
            for i, view in enumerate(views):  # document crops as queries, clean references
                key = f"k{k}_doc" + (f"{i + 1}" if len(views) > 1 else "")
                res[key] = rounded(evaluate_arrays(v, arrays, k, view)[0])
        out["corpora"][name] = res  # type: ignore[index]
    out["throughput"] = throughput(v)
    if v.backend != "pt":
        out["throughput_pt"] = throughput(Verifier.from_manifest(args.weights, backend="pt"))
    out["architectures"] = architecture_speed(v)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
