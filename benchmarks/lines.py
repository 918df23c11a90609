"""The verifier on signatures written through a printed signature line; prints JSON.

Usage: .venv/bin/python benchmarks/lines.py [--weights MANIFEST] [--baseline MANIFEST] [--corpus NAME ...]

A cheque's or a contract's signature line runs through the lower strokes of many signatures, and the preprocessing
removes it with the strokes where they cross it. Here each held-out test writer (the manifest's ``test`` split) has
its first 5 genuine signatures by name as clean references; every other genuine signature and every skilled forgery
is shrunk to a page's scale (a factor drawn from 0.3-0.5 of the corpus scan, seed 1), printed on white paper over a
black 2-px line through its lower strokes (``line``) or on the same paper without it (``plain``; ``on_paper`` of
``benchmarks/copies.py``) and cropped with the pipeline's 8% margin. Per corpus and case: the genuine signatures and
skilled forgeries accepted at K=5 (``Verifier.decide``, the shipped thresholds), crops left without ink, and the
EER of the distance less the person's threshold. ``--baseline`` runs a second manifest on the same crops.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
from copies import ROOT, on_paper  # benchmarks/copies.py, beside this script

from sigpipe.datasets.corpus import Corpus
from sigpipe.verifier.data import corpus_files
from sigpipe.verifier.gallery import specimen_images
from sigpipe.verifier.metrics import eer
from sigpipe.verifier.preprocess import has_ink
from sigpipe.verifier.verifier import Verifier

REFS = 5


def cases(corpus: Corpus, writers: list[str], seed: int
          ) -> list[tuple[str, list[np.ndarray], np.ndarray, bool, float]]:
    """``(writer, references, query image, forged, scale)`` for every query of ``writers``."""
    rng = np.random.default_rng(seed)
    out = []
    for w in writers:
        files = corpus_files(corpus, [w])
        genuine = sorted((p for _, f, p in files if not f), key=lambda p: p.name)
        forged = sorted((p for _, f, p in files if f), key=lambda p: p.name)
        refs = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in genuine[:REFS]]
        for p, is_forged in [(p, False) for p in genuine[REFS:]] + [(p, True) for p in forged]:
            out.append((w, refs, cv2.imread(str(p), cv2.IMREAD_GRAYSCALE), is_forged, float(rng.uniform(0.3, 0.5))))
    return out


def measure(v: Verifier, queries: list[tuple[str, list[np.ndarray], np.ndarray, bool, float]]
            ) -> dict[str, dict[str, object]]:
    gallery: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    out: dict[str, dict[str, object]] = {}
    for case, line in (("line", True), ("plain", False)):
        accepted = {"genuine": 0, "skilled": 0}
        total = {"genuine": 0, "skilled": 0}
        margins: dict[str, list[float]] = {"genuine": [], "skilled": []}
        no_ink = 0
        for w, refs, image, forged, scale in queries:
            if w not in gallery:
                xr = v.prepare(refs)
                gallery[w] = (v.embed_prepared(xr), specimen_images(xr))
            emb, imgs = gallery[w]
            kind = "skilled" if forged else "genuine"
            total[kind] += 1
            x = v.prepare([on_paper(image, scale, line)])
            if not has_ink(x)[0]:
                no_ink += 1  # the pipeline says no_ink: not accepted, and as far from the person as can be
                margins[kind].append(np.inf)
                continue
            d = v.decide(v.embed_prepared(x)[0], emb, x[0], imgs)
            accepted[kind] += d.genuine
            margins[kind].append(d.distance - d.threshold)
        out[case] = {"genuine_accepted": f"{accepted['genuine']} of {total['genuine']}",
                     "skilled_accepted": f"{accepted['skilled']} of {total['skilled']}",
                     "frr": round(1 - accepted["genuine"] / max(total["genuine"], 1), 4),
                     "far_skilled": round(accepted["skilled"] / max(total["skilled"], 1), 4),
                     "no_ink": no_ink,
                     "eer_k5": round(eer(np.array(margins["genuine"]), np.array(margins["skilled"])).eer, 4)}
    return out


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", type=Path, default=None, help="verifier manifest (default: bundled)")
    ap.add_argument("--baseline", type=Path, default=None, help="a second manifest, run on the same crops")
    ap.add_argument("--corpus", nargs="+", default=["cedar", "bhsig-bengali", "bhsig-hindi"])
    ap.add_argument("--data-root", type=Path, default=ROOT)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    models = [Verifier.from_manifest(args.weights, threads=2)]
    if args.baseline:
        models.append(Verifier.from_manifest(args.baseline, threads=2))
    out: dict[str, object] = {"model": models[0].ident, "baseline": models[1].ident if args.baseline else None,
                              "seed": args.seed, "corpora": {}}
    for name in args.corpus:
        queries = cases(Corpus(args.data_root / name), models[0].manifest["training"]["splits"][name]["test"],
                        args.seed)
        res = {"model": measure(models[0], queries)}
        if args.baseline:
            res["baseline"] = measure(models[1], queries)
        out["corpora"][name] = res  # type: ignore[index]
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
