"""The references check (``sigpipe.verifier.refcheck``) on held-out writers; prints JSON.

Usage: .venv/bin/python benchmarks/reference_check.py [--weights MANIFEST] [--data-root DIR] [--trials 10]

For each corpus, each trial enrols every test writer (never seen in training or calibration) with ``n`` of their
genuine signatures drawn at random, and slips into half of the writers' references one genuine signature of another
test writer of the same corpus (an *intruder*: a specimen filed under the wrong person). The check runs on that
gallery as ``sigpipe run`` runs it. Per corpus and ``n``:

- ``intruders_flagged``: the share of intruders reported (the check's purpose);
- ``resembles_right``: of the flagged intruders, the share whose ``resembles`` names the writer they came from
  (``resembles_nobody``: the share for which it names nobody);
- ``genuine_flagged``: the share of genuine specimens reported (false alarms; calibrated to about 1% on the
  validation writers), with ``genuine_flagged_with_intruder`` for those sharing a folder with an intruder.

``timing``: the check over a gallery of 10,000 people with 5 specimens each (each person 5 genuine signatures of a
random BHSig-Hindi test writer).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from sigpipe.datasets.corpus import Corpus
from sigpipe.verifier.data import load_arrays
from sigpipe.verifier.gallery import Gallery
from sigpipe.verifier.refcheck import suspect_specimens
from sigpipe.verifier.verifier import Verifier

ROOT = Path(__file__).resolve().parents[1]
SIZES = (2, 3, 5, 8)


def trial(v: Verifier, emb: np.ndarray, images: np.ndarray, genuine: dict[str, np.ndarray], n: int,
          rng: np.random.Generator) -> dict[str, list[int]]:
    writers = sorted(genuine)
    g = Gallery(v)
    chosen = {w: rng.choice(genuine[w], size=n, replace=False) for w in writers}
    intruded = set(rng.choice(writers, size=len(writers) // 2, replace=False).tolist())
    truth: dict[str, str] = {}
    for w in writers:
        rows, files = list(chosen[w]), [f"{w}/g{i}" for i in chosen[w]]
        if w in intruded:
            src = rng.choice([o for o in writers if o != w])
            pick = rng.choice(np.setdiff1d(genuine[src], chosen[src]))
            rows.append(pick)
            files.append(f"{w}/intruder-{src}")
            truth[files[-1]] = src
        g.embeddings[w], g.images[w] = emb[rows], images[rows]
        g.sources[w] = tuple(files)
    flagged = {s.file: s for s in suspect_specimens(g)}
    out: dict[str, list[int]] = {"intruders_flagged": [], "resembles_right": [], "resembles_nobody": [],
                                 "genuine_flagged": [], "genuine_flagged_with_intruder": []}
    for w in writers:
        for f in g.sources[w]:
            if f in truth:
                out["intruders_flagged"].append(f in flagged)
                if f in flagged:
                    out["resembles_right"].append(flagged[f].resembles == truth[f])
                    out["resembles_nobody"].append(flagged[f].resembles is None)
            else:
                key = "genuine_flagged_with_intruder" if w in intruded else "genuine_flagged"
                out[key].append(f in flagged)
    return out


def timing(v: Verifier, emb: np.ndarray, images: np.ndarray, genuine: dict[str, np.ndarray], people: int = 10_000,
           per_person: int = 5) -> dict[str, float]:
    """The check over ``people`` people, each given ``per_person`` genuine signatures of a random test writer: the
    screen passes as many specimens to the full decision as on real references."""
    rng = np.random.default_rng(1)
    g = Gallery(v)
    writers = sorted(genuine)
    for p in range(people):
        rows = rng.choice(genuine[writers[rng.integers(len(writers))]], size=per_person, replace=False)
        g.embeddings[f"p{p:05d}"], g.images[f"p{p:05d}"] = emb[rows], images[rows]
    t = time.perf_counter()
    suspects = suspect_specimens(g)
    return {"people": people, "specimens_each": per_person, "seconds": round(time.perf_counter() - t, 2),
            "suspects": len(suspects)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", type=Path, default=None, help="verifier manifest (default: bundled)")
    ap.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "datasets" / "signatures")
    ap.add_argument("--split", default="test", choices=["test", "val"])
    ap.add_argument("--trials", type=int, default=10)
    args = ap.parse_args()
    v = Verifier.from_manifest(args.weights)
    if v.rule.outlier_margin is None:
        raise SystemExit(f"{v.ident} has no decision.outlier_margin (scripts/calibrate_outliers.py)")
    rng = np.random.default_rng(0)
    out: dict[str, object] = {"model": v.ident, "split": args.split, "outlier_margin": v.rule.outlier_margin,
                              "outlier_screen": v.rule.outlier_screen, "corpora": {}}
    for name, parts in v.manifest["training"]["splits"].items():
        root = args.data_root / name
        if not root.is_dir() or not parts[args.split]:
            continue
        arr = load_arrays(Corpus(root), v.preprocess_cfg, parts[args.split])
        emb = v.embed_prepared(arr.as_float())
        genuine = {w: np.flatnonzero((arr.writer == w) & ~arr.forged) for w in sorted(set(arr.writer.tolist()))}
        res = {}
        for n in SIZES:
            pooled: dict[str, list[int]] = {}
            for _ in range(args.trials):
                for k, vals in trial(v, emb, arr.images, genuine, n, rng).items():
                    pooled.setdefault(k, []).extend(vals)
            res[f"n{n}"] = {k: {"rate": round(float(np.mean(vals)), 4), "of": len(vals)}
                            for k, vals in pooled.items() if vals}
        out["corpora"][name] = res  # type: ignore[index]
        if name == "bhsig-hindi":  # the corpus with the most test writers
            out["timing"] = timing(v, emb, arr.images, genuine)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
