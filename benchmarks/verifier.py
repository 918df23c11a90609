"""Verifier accuracy on held-out writers and embedding throughput; prints JSON.

Usage: .venv/bin/python benchmarks/verifier.py [--weights MANIFEST] [--data-root ../shared/datasets/signatures]

For each corpus the manifest's training record names the writers held out as ``test`` (never used for training,
early stopping or calibration); the DESIGN.md protocol runs on them with K=1 and K=5 references, at the shipped
thresholds. ``k1_doc``/``k5_doc``: the same with each query signature cropped from a synthetic scanned document
(``sigpipe.verifier.docviews``, seed 7) and clean references, as ``sigpipe run`` sees them. ``k1_lit``/``k5_lit``
(``--lit-views``): each query photographed under uneven light (:func:`lit_views`: a soft-edged shadow, a gradient or
a vignette darkening the paper to 35-65% of its light, seed 11), references clean.

Each EER comes with ``eer_ci95``, a 95% bootstrap interval over the writers (the writers are what varies from one
population to the next; a test split holds 9 to 20 per corpus). ``eer_own_threshold`` is the mean of each
writer's own EER, the error were every person's threshold set right for them (on their own queries: a bound,
optimistic for a writer's few queries): its gap to ``eer`` is at most the price of one threshold rule (``t[K]``
plus the references' spread) for everybody. ``mean_eer`` is the mean of all those EERs with its interval (writers
resampled within each corpus). With ``--baseline OTHER_MANIFEST`` (same writer splits),
``versus_baseline`` gives the difference of the two models' ``mean_eer`` with a paired interval (the same resampled
writers for both): a difference whose interval holds 0 is not one the test writers can tell apart.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from sigpipe.datasets.corpus import Corpus, read_gray
from sigpipe.stats import bootstrap_interval
from sigpipe.verifier.data import corpus_files, load_arrays
from sigpipe.verifier.docviews import document_views
from sigpipe.verifier.evaluate import protocol_metrics
from sigpipe.verifier.metrics import eer
from sigpipe.verifier.pairnet import protocol_pairs
from sigpipe.verifier.preprocess import PreprocessConfig, preprocess
from sigpipe.verifier.protocol import QueryDistances, pool, writer_distances
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
    out = {"backend": v.backend, "threads": threads, "embed_per_s": round(net, 1),
           "preprocess_and_embed_per_s": round(full, 1)}
    if v.pair is not None:  # the second stage: one query against K=5 references, as the pipeline calls it
        refs, q = x[:5], x[5:6]
        v.pair.mean_logit(refs, q)
        t = time.perf_counter()
        for i in range(40):
            v.pair.mean_logit(refs, x[6 + i : 7 + i])
        out["second_stage_ms_per_signature_k5"] = round(1000 * (time.perf_counter() - t) / 40, 2)
        out["second_stage_orders"] = v.pair.orders
    return out


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


def light_field(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A random uneven lighting over an ``h`` x ``w`` image, as a phone's photo of a document has: ``(h, w)`` float32
    factors in [0.35, 1]: a gradient, a soft-edged shadow, or light falling off around a point."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    kind, low, angle = int(rng.integers(3)), rng.uniform(0.35, 0.65), rng.uniform(0, 2 * np.pi)
    along = (xx - w / 2) * np.cos(angle) + (yy - h / 2) * np.sin(angle)
    diag = float(np.hypot(h, w))
    if kind == 0:
        t = (along / diag + 0.5).clip(0, 1)
    elif kind == 1:
        offset, soft = rng.uniform(-0.25, 0.25) * diag, rng.uniform(0.02, 0.15) * diag
        t = 1 / (1 + np.exp(-4 * (along - offset) / soft))
    else:
        r = np.hypot(yy - rng.uniform(0.2, 0.8) * h, xx - rng.uniform(0.2, 0.8) * w)
        t = (r / r.max()) ** 2
    return (1 - (1 - low) * t).astype(np.float32)


def lit_views(corpus: Corpus, cfg: PreprocessConfig, writers: list[str], seed: int = 11) -> np.ndarray:
    """Every signature of ``writers`` (``load_arrays`` order) under a random :func:`light_field`, with sensor noise,
    preprocessed: ``(N, height, width)`` uint8."""
    rng = np.random.default_rng(seed)
    files = corpus_files(corpus, writers)
    out = np.zeros((len(files), cfg.height, cfg.width), np.uint8)
    for i, (_, _, path) in enumerate(files):
        gray = read_gray(path, cfg.colour)
        shot = gray * light_field(*gray.shape, rng) + rng.normal(0, 2, gray.shape)
        out[i] = np.round(preprocess(np.clip(np.round(shot), 0, 255).astype(np.uint8), cfg) * 255)
    return out


def rounded(metrics: dict[str, object]) -> dict[str, object]:
    return {key: round(val, 4) if isinstance(val, float) else val for key, val in metrics.items()}


Cells = dict[str, dict[str, QueryDistances]]  # figure key ("k1", "k5_doc", ...) -> writer -> its query distances


def figure_cells(v: Verifier, arrays, views: list[np.ndarray],  # noqa: ANN001 - SignatureArrays
                 lit: np.ndarray | None = None) -> Cells:
    """Per-writer protocol distances of every figure of one corpus: K=1 and 5, clean, each document view and the
    lit view."""
    emb = v.embed_prepared(arrays.as_float())
    qembs: dict[str, np.ndarray | None] = {"": None}
    pairs = {"": protocol_pairs(v.pair, arrays.images) if v.pair else None}
    named = [("_doc" + (f"{i + 1}" if len(views) > 1 else ""), view) for i, view in enumerate(views)]
    for suffix, view in named + ([("_lit", lit)] if lit is not None else []):  # as queries, clean references
        qembs[suffix] = v.embed_prepared(view.astype(np.float32)[:, None] / 255.0)
        pairs[suffix] = protocol_pairs(v.pair, arrays.images, view) if v.pair else None
    return {f"k{k}{suffix}": writer_distances(emb, arrays.writer, arrays.forged, arrays.name, k,
                                              v.rule.aggregation, q, v.rule.spread_weight, pairs[suffix],
                                              v.rule.pair_weight)
            for k in (1, 5) for suffix, q in qembs.items()}


def cell_eer(per_writer: dict[str, QueryDistances], writers: list[str]) -> float:
    """EER of one figure over ``writers`` (repeats allowed); NaN when they hold no genuine or no forged query."""
    q = pool(per_writer[w] for w in writers if w in per_writer)
    return eer(q.genuine, q.skilled).eer if q.genuine.size and q.skilled.size else float("nan")


def own_threshold_eer(per_writer: dict[str, QueryDistances]) -> float:
    """The mean of each writer's own EER (writers with genuine and skilled-forgery queries): the error if every
    person's threshold sat right for them. Each writer's threshold is chosen on its own queries, so this is a bound
    (optimistic for a writer's few queries): its gap to the pooled EER is at most what one threshold rule for
    everybody costs; the rest is the distances' own overlap."""
    own = [eer(q.genuine, q.skilled).eer for q in per_writer.values() if q.genuine.size and q.skilled.size]
    return float(np.mean(own)) if own else float("nan")


def mean_eer(cells: dict[str, Cells], sample: list[list[str]], lit: bool = False) -> float:
    """Mean EER over every figure of every corpus, with ``sample[i]`` the writers of the i-th corpus: the clean and
    document figures (as earlier sessions measured it), or with ``lit`` the lit ones."""
    return float(np.nanmean([cell_eer(per_writer, ws) for ws, c in zip(sample, cells.values(), strict=True)
                             for key, per_writer in c.items() if key.endswith("_lit") == lit]))


def ci(lo_hi: tuple[float, float]) -> list[float]:
    return [round(lo_hi[0], 4), round(lo_hi[1], 4)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--weights", type=Path, default=None, help="verifier manifest (default: bundled)")
    ap.add_argument("--baseline", type=Path, default=None,
                    help="another verifier manifest with the same writer splits: report the paired difference")
    ap.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "datasets" / "signatures")
    ap.add_argument("--split", default="test", choices=["test", "val"])
    ap.add_argument("--doc-views", type=int, default=1, metavar="N",
                    help="also score the writers' signatures cropped from N synthetic documents each (0: skip)")
    ap.add_argument("--lit-views", action="store_true",
                    help="also score the writers' signatures under uneven light (k1_lit, k5_lit, mean_eer_lit)")
    ap.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples of the writers")
    ap.add_argument("--precision", choices=["f32", "bf16"], default="f32",
                    help="bf16: the ONNX networks on OpenVINO in bfloat16 (sigpipe run --precision bf16); with "
                         "--baseline the same manifest, the paired difference against f32")
    args = ap.parse_args()
    v = Verifier.from_manifest(args.weights, precision=args.precision)
    splits = v.manifest["training"]["splits"]
    base = Verifier.from_manifest(args.baseline) if args.baseline else None
    if base is not None and base.manifest["training"]["splits"] != splits:
        raise SystemExit(f"{args.baseline} was trained with other writer splits: its test writers are not ours")
    out: dict[str, object] = {"model": v.ident, "split": args.split, "corpora": {}}
    cells: dict[str, Cells] = {}
    base_cells: dict[str, Cells] = {}
    for name, parts in splits.items():
        root = args.data_root / name
        if not root.is_dir() or not parts[args.split]:
            continue
        corpus = Corpus(root)
        arrays = load_arrays(corpus, v.preprocess_cfg, parts[args.split])
        views = list(document_views(corpus, v.preprocess_cfg, parts[args.split], args.doc_views, seed=7,
                                    workers=2)) if args.doc_views else []
        lit = lit_views(corpus, v.preprocess_cfg, parts[args.split]) if args.lit_views else None
        cells[name] = figure_cells(v, arrays, views, lit)
        res = {}
        for key, per_writer in cells[name].items():
            writers = sorted(per_writer)
            k = int(key[1:].split("_")[0])
            res[key] = rounded(protocol_metrics(pool(per_writer.values()), v.rule.threshold(k)))
            res[key]["eer_ci95"] = ci(bootstrap_interval(
                [writers], lambda s, pw=per_writer: cell_eer(pw, s[0]), n=args.bootstrap))
            res[key]["eer_own_threshold"] = round(own_threshold_eer(per_writer), 4)
        out["corpora"][name] = res  # type: ignore[index]
        if base is not None:
            if base.preprocess_cfg != v.preprocess_cfg:
                arrays = load_arrays(corpus, base.preprocess_cfg, parts[args.split])
                views = list(document_views(corpus, base.preprocess_cfg, parts[args.split], args.doc_views,
                                            seed=7, workers=2)) if args.doc_views else []
                lit = lit_views(corpus, base.preprocess_cfg, parts[args.split]) if args.lit_views else None
            base_cells[name] = figure_cells(base, arrays, views, lit)
    strata = [sorted(next(iter(c.values()))) for c in cells.values()]
    out["mean_eer"] = {"value": round(mean_eer(cells, strata), 4),
                       "ci95": ci(bootstrap_interval(strata, lambda s: mean_eer(cells, s), n=args.bootstrap))}
    if args.lit_views:
        out["mean_eer_lit"] = {"value": round(mean_eer(cells, strata, True), 4), "ci95": ci(bootstrap_interval(
            strata, lambda s: mean_eer(cells, s, True), n=args.bootstrap))}
    if base is not None:
        out["versus_baseline"] = {
            "baseline": base.ident,
            "baseline_mean_eer": round(mean_eer(base_cells, strata), 4),
            "mean_eer_difference": round(mean_eer(cells, strata) - mean_eer(base_cells, strata), 4),
            "ci95": ci(bootstrap_interval(strata, lambda s: mean_eer(cells, s) - mean_eer(base_cells, s),
                                          n=args.bootstrap)),
        }
        if args.lit_views:
            out["versus_baseline"]["baseline_mean_eer_lit"] = round(mean_eer(base_cells, strata, True), 4)
            out["versus_baseline"]["mean_eer_lit_difference"] = round(
                mean_eer(cells, strata, True) - mean_eer(base_cells, strata, True), 4)
            out["versus_baseline"]["lit_ci95"] = ci(bootstrap_interval(
                strata, lambda s: mean_eer(cells, s, True) - mean_eer(base_cells, s, True), n=args.bootstrap))
    out["throughput"] = throughput(v)
    if v.backend != "pt":
        out["throughput_pt"] = throughput(Verifier.from_manifest(args.weights, backend="pt"))
    out["architectures"] = architecture_speed(v)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
