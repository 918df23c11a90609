"""The copy check (``sigpipe.verifier.copies``) on the signature corpora: copies of a specimen caught, and distinct
re-signings wrongly taken for copies; prints JSON.

Usage: .venv/bin/python benchmarks/copies.py [--corpus DIR ...] [--max-writers N] [--angles 0 1 2 ...]

Per writer with at least 7 genuine signatures: the first 5 by name are the specimens (as a person's folder in REFS),
the others re-signings, each compared with the 5 (``copied_specimen``, at the shipped ``decision.copy_similarity``,
preprocessed as ``sigpipe run`` does a crop, ``Verifier.prepare_marked``): any flagged is a false alarm, unless the
corpus holds the same image twice (BHSig does: its pairs above 0.95 are one image saved twice or re-cropped by a
row). Copies: specimens 1 and 4 of each writer turned by each angle (the sign drawn at random), scaled by a factor
drawn from 0.7-1.3 and saved as JPEG at quality 60, as a specimen pasted askew onto a cheque, printed and scanned
again; each must be told a copy of its own specimen. ``over_a_line``: the same two specimens and every re-signing
shrunk to a page's scale (a factor drawn from 0.3-0.5 of the corpus scan), printed on paper over a 2-px signature
line through the lower part of their strokes (``with_line``) or on plain paper (``without``), and cropped with the
pipeline's 8% margin around the ink.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from sigpipe.datasets.corpus import Corpus
from sigpipe.verifier.copies import copied_specimen, copy_similarity
from sigpipe.verifier.data import corpus_files
from sigpipe.verifier.gallery import specimen_images
from sigpipe.verifier.verifier import Verifier

ROOT = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "signatures"
SPECIMENS = 5
COPIED = (0, 3)  # which specimens are copied


def askew(image: np.ndarray, degrees: float, scale: float) -> np.ndarray:
    """``image`` turned and scaled on a border of its own paper (no ink cut off)."""
    paper = int(np.median(image))
    pad = max(image.shape) // 4
    big = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=paper)
    h, w = big.shape
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, scale)
    return cv2.warpAffine(big, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=paper)


def on_paper(image: np.ndarray, scale: float, line: bool, paper: int = 245, margin: float = 0.08) -> np.ndarray:
    """``image`` shrunk by ``scale`` and printed on paper (over a signature line through the lower part of its
    strokes with ``line``), cropped around its ink with ``margin`` as the pipeline crops a detector's box."""
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    thr, _ = cv2.threshold(small, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    ys, xs = np.nonzero(small < thr)
    if ys.size == 0:
        return small
    h, w = small.shape
    page = np.full((h + 200, w + 400), paper, np.uint8)
    if line:
        row = 100 + int(np.percentile(ys, 80))
        page[row : row + 2, 40:-40] = 30
    page[100 : 100 + h, 200 : 200 + w] = np.minimum(page[100 : 100 + h, 200 : 200 + w], small)
    y0, y1, x0, x1 = 100 + ys.min(), 100 + ys.max(), 200 + xs.min(), 200 + xs.max()
    my, mx = int(margin * (y1 - y0)), int(margin * (x1 - x0))
    return page[y0 - my : y1 + my + 1, x0 - mx : x1 + mx + 1]


def measure(v: Verifier, corpus: Corpus, angles: list[float], max_writers: int | None,
            rng: np.random.Generator) -> dict[str, object]:
    bar = v.rule.copy_similarity

    def told(image: np.ndarray, specimens: np.ndarray) -> int | None:
        x, gaps = v.prepare_marked(image)
        return copied_specimen(x[0], specimens, bar, gaps)

    resigned = flagged = 0
    most_alike = -1.0
    caught = {a: 0 for a in angles}
    copies = 0
    seconds: list[float] = []
    lined = {"with_line": {"copies_caught": 0, "resignings_flagged": 0},
             "without": {"copies_caught": 0, "resignings_flagged": 0}}
    for w in corpus.writers[:max_writers]:
        files = sorted((p for _, forged, p in corpus_files(corpus, [w]) if not forged), key=lambda p: p.name)
        if len(files) < SPECIMENS + 2:
            continue
        images = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in files]
        specimens = specimen_images(v.prepare(images[:SPECIMENS]))
        for image in images[SPECIMENS:]:
            x, gaps = v.prepare_marked(image)
            t = time.perf_counter()
            flagged += copied_specimen(x[0], specimens, bar, gaps) is not None
            seconds.append(time.perf_counter() - t)
            most_alike = max(most_alike, float(copy_similarity(x[0], specimens, gaps).max()))
            resigned += 1
            scale = float(rng.uniform(0.3, 0.5))
            for kind, line in (("with_line", True), ("without", False)):
                lined[kind]["resignings_flagged"] += told(on_paper(image, scale, line), specimens) is not None
        for i in COPIED:
            copies += 1
            for a in angles:
                img = askew(images[i], float(rng.choice([-1.0, 1.0]) * a), float(rng.uniform(0.7, 1.3)))
                img = cv2.imdecode(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 60])[1], 0)
                caught[a] += told(img, specimens) == i
            scale = float(rng.uniform(0.3, 0.5))
            for kind, line in (("with_line", True), ("without", False)):
                lined[kind]["copies_caught"] += told(on_paper(images[i], scale, line), specimens) == i
    return {"corpus": corpus.name, "writers": copies // len(COPIED), "resignings": resigned,
            "resignings_flagged": flagged, "resignings_most_alike": round(most_alike, 3),
            "ms_per_check": round(1000 * float(np.median(seconds)), 2) if seconds else None,
            "copies_per_angle": copies,
            "copies_caught": {f"{a:g}": caught[a] for a in angles},
            "over_a_line": {"copies": copies, "resignings": resigned, **lined}}


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, nargs="+",
                    default=[ROOT / n for n in ("cedar", "bhsig-bengali", "bhsig-hindi")])
    ap.add_argument("--max-writers", type=int, default=None, help="the first N writers of each corpus")
    ap.add_argument("--angles", type=float, nargs="+", default=[0, 1, 2, 3, 5, 8, 12, 16])
    ap.add_argument("--weights", type=Path, default=None, help="verifier manifest (default: bundled)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    v = Verifier.from_manifest(args.weights, threads=2)
    rng = np.random.default_rng(args.seed)
    out = {"verifier": v.ident, "copy_similarity": v.rule.copy_similarity, "seed": args.seed,
           "corpora": [measure(v, Corpus(c), args.angles, args.max_writers, rng) for c in args.corpus]}
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
