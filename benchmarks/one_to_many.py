"""One-to-many matching at scale: time per questioned signature among N enrolled people; prints JSON.

Usage: .venv/bin/python benchmarks/one_to_many.py [--people 2000 10000] [--weights MANIFEST]

The galleries are random unit embeddings (5 references a person) and random preprocessed images, with the shipped
verifier's decision rule and second stage: what ``sigpipe run`` does for a document without a claim
(``Gallery.best_match``: everybody ranked at once, the best three compared in full). Also timed: building the
ranking index (once per run) and the reference fingerprint of everybody that reports record (once per run).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from sigpipe.verifier.gallery import Gallery
from sigpipe.verifier.verifier import Verifier


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--people", type=int, nargs="+", default=[2000, 10000])
    ap.add_argument("--weights", type=Path, default=None, help="verifier manifest (default: bundled)")
    ap.add_argument("--queries", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)

    v = Verifier.from_manifest(args.weights, threads=args.threads)
    rng = np.random.default_rng(0)
    dim = v.embed([np.full((80, 160), 255, np.uint8)]).shape[1]

    def unit(n: int) -> np.ndarray:
        x = rng.normal(size=(n, dim)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    runs = []
    for n in args.people:
        g = Gallery(v, {f"p{i}": unit(5) for i in range(n)},
                    images={f"p{i}": rng.integers(0, 255, (5, 80, 160), dtype=np.uint8) for i in range(n)})
        queries = unit(args.queries)
        image = rng.random((1, 80, 160), dtype=np.float32)
        t = time.perf_counter()
        g.best_match(queries[0], image)  # builds the index
        first = time.perf_counter() - t
        t = time.perf_counter()
        for q in queries:
            g.best_match(q, image)
        per = (time.perf_counter() - t) / len(queries)
        t = time.perf_counter()
        g.fingerprint(None)
        runs.append({"people": n, "ms_per_signature": round(per * 1000, 1), "first_call_s": round(first, 3),
                     "fingerprint_everybody_ms": round((time.perf_counter() - t) * 1000, 1)})
    out = {"verifier": v.ident, "threads": args.threads, "references_per_person": 5, "runs": runs}
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
