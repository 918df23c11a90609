"""End-to-end accuracy of ``sigpipe run`` on a synthetic batch with truth; prints JSON.

A batch of cheques and letters is generated with ``sigpipe.datasets.synth_documents`` from real signatures
(``../shared/datasets/signatures/<corpus>``). For each selected writer the first ``--refs-per-writer`` genuine
signatures (by name) become the references ``REFS/<writer>/`` and are withheld from the generator, so no reference
image is ever pasted into a document. The claims CSV claims, for each signed document, the writer of its first
signature. ``sigpipe run`` is then run as a user would (a subprocess), and its reports are compared with the truth:

- detection: a detection matches a truth signature on the same page at IoU >= ``--iou`` (greedy, best IoU first);
  ``detection_recall`` = matched truth signatures / truth signatures, ``detection_precision`` likewise for boxes.
- verification (matched signatures only): a *positive* is a genuine signature of the claimed person (one-to-many: a
  genuine signature of an enrolled writer); a *negative* is a skilled forgery, or another person's signature.
  ``far`` = negatives whose verdict is ``genuine``, ``frr`` = positives whose verdict is not ``genuine`` (in
  one-to-many mode an accepted positive must also name the right writer), also split by skilled / random.
- ``frr_with_missed`` counts the positives the detector missed as rejected too: the rate a user sees.
- documents: the truth verdict (forged if any negative, genuine if all positive, unsigned if none) against the report.

Use writers the verifier was not trained on (``--writers`` picks them by id), or the figures are optimistic.

    python benchmarks/end_to_end.py --pages 200 --corpus ../shared/datasets/signatures/cedar --writers 031-045
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = ROOT.parent / "shared" / "datasets" / "signatures" / "cedar"


# --- the batch ---------------------------------------------------------------------------------------------------

def parse_writers(spec: str | None, available: list[str]) -> list[str]:
    """``"031-045,050"`` -> those writer ids present in ``available``; None -> all of them."""
    if not spec:
        return available
    chosen: list[str] = []
    for part in spec.split(","):
        if "-" in part:
            lo, hi = part.split("-")
            chosen += [w for w in available if lo <= w <= hi]
        elif part in available:
            chosen.append(part)
    return sorted(set(chosen))


def make_batch(corpus: Path, pages: int, root: Path, seed: int = 0, refs_per_writer: int = 5,
               writers: str | None = None, kinds: tuple[str, ...] = ("cheque", "letter"),
               max_writers: int | None = None, security: float = 0.0, bitonal: float = 0.0) -> dict[str, Path]:
    """Generate SCANS (with truth.json), REFS and a claims CSV under ``root``; returns their paths.

    Reference images are withheld from the generator (a reduced corpus of symlinks is built for it).
    """
    from sigpipe.datasets.synth_documents import SynthOptions, generate_documents, load_truth

    available = sorted(p.name for p in corpus.iterdir() if (p / "genuine").is_dir())
    chosen = parse_writers(writers, available)[: max_writers or None]
    reduced, refs = root / "corpus", root / "refs"
    for w in chosen:
        genuine = sorted((corpus / w / "genuine").glob("*.png"))
        if len(genuine) <= refs_per_writer:
            continue
        for i, src in enumerate(genuine):
            dst = (refs / w if i < refs_per_writer else reduced / w / "genuine") / src.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            if not dst.exists():
                dst.symlink_to(src.resolve())
        for src in sorted((corpus / w / "forged").glob("*.png")):
            dst = reduced / w / "forged" / src.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            if not dst.exists():
                dst.symlink_to(src.resolve())
    if not reduced.is_dir():
        raise SystemExit(f"no writer of {corpus} has more than {refs_per_writer} genuine signatures")
    scans = root / "scans"
    options = SynthOptions(security=security, bitonal=bitonal)
    truth_path = generate_documents(reduced, pages, scans, seed, kinds=kinds, options=options)
    truth = load_truth(truth_path)
    claims = root / "claims.csv"
    with open(claims, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["document", "identity"])
        for doc in truth.documents:
            if doc.signatures:
                w.writerow([doc.path, doc.signatures[0].writer])
    # truth.json lives in SCANS (not a scan suffix: discovery ignores it); move it out to keep SCANS clean
    moved = root / "truth.json"
    truth_path.replace(moved)
    return {"scans": scans, "refs": refs, "claims": claims, "truth": moved}


def run_sigpipe(batch: dict[str, Path], out: Path, *, claims: bool, workers: int = 1,
                detector: Path | None = None, verifier: Path | None = None, extra: list[str] | None = None,
                cache: Path | None = None) -> tuple[int, float, str]:
    """Run ``sigpipe run`` in a subprocess; returns (exit code, wall seconds, stderr tail)."""
    cmd = [sys.executable, "-c", "from sigpipe.cli import main; main()", "run", str(batch["scans"]),
           "--refs", str(batch["refs"]), "--out", str(out), "--workers", str(workers), "--no-progress"]
    if claims:
        cmd += ["--claims", str(batch["claims"])]
    if detector:
        cmd += ["--detector-weights", str(detector)]
    if verifier:
        cmd += ["--verifier-weights", str(verifier)]
    cmd += extra or []
    env = dict(os.environ)
    if cache:
        env["SIGPIPE_CACHE"] = str(cache)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    return proc.returncode, time.perf_counter() - t0, proc.stderr[-3000:]


# --- scoring -----------------------------------------------------------------------------------------------------

def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match(truth: list[dict[str, Any]], found: list[dict[str, Any]], threshold: float) -> list[tuple[int, int]]:
    """Greedy one-to-one matching of truth and detected boxes of one page by IoU (best first)."""
    pairs = sorted(((iou(tuple(t["bbox"]), tuple(f["bbox"])), i, j) for i, t in enumerate(truth)
                    for j, f in enumerate(found)), reverse=True)
    used_t: set[int] = set()
    used_f: set[int] = set()
    out = []
    for v, i, j in pairs:
        if v < threshold:
            break
        if i not in used_t and j not in used_f:
            used_t.add(i)
            used_f.add(j)
            out.append((i, j))
    return out


def score(truth_path: Path, out: Path, claims: bool, iou_threshold: float = 0.5) -> dict[str, Any]:
    """Compare the reports in ``out`` with the truth manifest; see the module docstring for the definitions.

    Also writes ``out/summary-labelled.csv``: ``summary.csv`` with a ``truth`` column (``genuine`` for a matched
    positive, ``forged`` for a matched negative, empty otherwise), the input of ``sigpipe verifier operating-point``.
    """
    truth = json.loads(truth_path.read_text())
    labels: dict[tuple[str, int, tuple[float, ...]], str] = {}
    c: dict[str, int] = {k: 0 for k in ("truth", "detections", "matched", "pos", "pos_accepted", "pos_missed",
                                         "neg", "neg_accepted", "skilled", "skilled_accepted", "random",
                                         "random_accepted", "docs", "docs_correct", "docs_failed",
                                         "misidentified")}
    for doc in truth["documents"]:
        c["docs"] += 1
        rep_path = out / f"{doc['path']}.json"
        rep = json.loads(rep_path.read_text()) if rep_path.is_file() else None
        sigs = doc["signatures"]
        claimed = sigs[0]["writer"] if (claims and sigs) else None
        positives = [s["genuine"] and (s["writer"] == claimed if claims else True) for s in sigs]
        c["truth"] += len(sigs)
        if rep is None or rep["status"] != "ok":
            c["docs_failed"] += 1
            continue
        found = rep["signatures"]
        c["detections"] += len(found)
        for page in range(1, doc["pages"] + 1):
            t_idx = [i for i, s in enumerate(sigs) if s["page"] == page]
            f_idx = [j for j, f in enumerate(found) if f["page"] == page]
            pairs = match([sigs[i] for i in t_idx], [found[j] for j in f_idx], iou_threshold)
            matched_t = {t_idx[a] for a, _ in pairs}
            for i in t_idx:
                if positives[i] and i not in matched_t:
                    c["pos_missed"] += 1
            for a, b in pairs:
                t, f = sigs[t_idx[a]], found[f_idx[b]]
                c["matched"] += 1
                accepted = f["verdict"] == "genuine"
                box = tuple(float(v) for v in f["bbox"])
                labels[doc["path"], page, box] = "genuine" if positives[t_idx[a]] else "forged"
                if positives[t_idx[a]]:
                    c["pos"] += 1
                    right_person = f["identity"] == t["writer"]
                    c["pos_accepted"] += int(accepted and right_person)
                    c["misidentified"] += int(accepted and not right_person)
                else:
                    c["neg"] += 1
                    c["neg_accepted"] += int(accepted)
                    kind = "skilled" if (not t["genuine"] and (not claims or t["writer"] == claimed)) else "random"
                    c[kind] += 1
                    c[f"{kind}_accepted"] += int(accepted)
        expected = ("unsigned" if not sigs else "genuine" if all(positives) else "forged")
        got = rep["verdict"]
        c["docs_correct"] += int(got == expected or (expected == "forged" and got == "needs_review"))

    def rate(num: int, den: int) -> float | None:
        return round(num / den, 4) if den else None

    write_labelled(out, labels)
    all_pos = c["pos"] + c["pos_missed"]
    return {
        "mode": "claims" if claims else "one-to-many",
        "documents": c["docs"], "documents_failed": c["docs_failed"],
        "truth_signatures": c["truth"], "detections": c["detections"], "matched": c["matched"],
        "detection_recall": rate(c["matched"], c["truth"]),
        "detection_precision": rate(c["matched"], c["detections"]),
        "positives": c["pos"], "negatives": c["neg"],
        "far": rate(c["neg_accepted"], c["neg"]),
        "far_skilled": rate(c["skilled_accepted"], c["skilled"]),
        "far_random": rate(c["random_accepted"], c["random"]),
        "frr": rate(c["pos"] - c["pos_accepted"], c["pos"]),
        "frr_with_missed": rate(all_pos - c["pos_accepted"], all_pos),
        "misidentified": c["misidentified"],
        "document_accuracy": rate(c["docs_correct"], c["docs"] - c["docs_failed"]),
        "iou_threshold": iou_threshold,
    }


def write_labelled(out: Path, labels: dict[tuple[str, int, tuple[float, ...]], str]) -> Path:
    """``out/summary.csv`` with a ``truth`` column from ``labels`` keyed by (document, page, bbox)."""
    with open(out / "summary.csv", newline="") as f:
        rows = list(csv.reader(f))
    cols = rows[0]
    i_doc, i_page, i_box = cols.index("document"), cols.index("page"), cols.index("x1")
    lines = [[*cols, "truth"]]
    for r in rows[1:]:
        key = (r[i_doc], int(r[i_page]), tuple(float(v) for v in r[i_box:i_box + 4])) if r[i_page] else None
        lines.append([*r, labels.get(key, "") if key else ""])
    path = out / "summary-labelled.csv"
    with open(path, "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(lines)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pages", type=int, default=200, help="pages in the synthetic batch")
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="per-writer corpus to take signatures from")
    ap.add_argument("--writers", default=None, help="writer ids to use, e.g. '031-045' (default: all)")
    ap.add_argument("--max-writers", type=int, default=None, help="use at most this many writers")
    ap.add_argument("--refs-per-writer", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--kinds", default="cheque,letter", help="document types of the batch")
    ap.add_argument("--security", type=float, default=0.0,
                    help="share of cheques on strong security backgrounds (the same documents otherwise)")
    ap.add_argument("--bitonal", type=float, default=0.0,
                    help="share of documents scanned bitonal (synth-documents --bitonal; the same otherwise)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--iou", type=float, default=0.5)
    ap.add_argument("--one-to-many", action="store_true", help="also score a run without claims")
    ap.add_argument("--detector-weights", type=Path, default=None)
    ap.add_argument("--verifier-weights", type=Path, default=None)
    ap.add_argument("--work", type=Path, default=None,
                    help="folder for the batch and reports (default: a temp dir, removed at the end unless --keep)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (its path is printed as 'work')")
    args = ap.parse_args(argv)

    work = args.work or Path(tempfile.mkdtemp(prefix="sigpipe-e2e-"))
    try:
        return _measure(args, work)
    finally:  # a temp dir of 50-80 MB per run was left in /tmp by every run (43 of them by session 47)
        if args.work is None and not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def _measure(args: argparse.Namespace, work: Path) -> int:
    """Generate the batch into ``work``, run sigpipe on it and print the figures."""
    t0 = time.perf_counter()
    batch = make_batch(args.corpus, args.pages, work / "batch", args.seed, args.refs_per_writer, args.writers,
                       kinds=tuple(k for k in args.kinds.split(",") if k), max_writers=args.max_writers,
                       security=args.security, bitonal=args.bitonal)
    gen_s = time.perf_counter() - t0
    results: dict[str, Any] = {"corpus": str(args.corpus), "pages": args.pages, "seed": args.seed,
                               "kinds": args.kinds, "security": args.security, "bitonal": args.bitonal,
                               "writers": len(list(batch["refs"].iterdir())),
                               "refs_per_writer": args.refs_per_writer, "generate_s": round(gen_s, 1), "runs": []}
    for claims in [True, False] if args.one_to_many else [True]:
        out = work / ("out-claims" if claims else "out-one-to-many")
        rc, secs, err = run_sigpipe(batch, out, claims=claims, workers=args.workers,
                                    detector=args.detector_weights, verifier=args.verifier_weights,
                                    cache=work / "cache")
        if rc not in (0, 1):
            print(json.dumps({"error": f"sigpipe run exited {rc}", "stderr": err}), file=sys.stdout)
            return 2
        r = score(batch["truth"], out, claims, args.iou)
        summary = json.loads((out / "summary.json").read_text())
        r.update(seconds=round(secs, 1), pages_per_s=round(args.pages / secs, 3), models=summary["models"])
        results["runs"].append(r)
    results["work"] = str(work) if args.work is not None or args.keep else None
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
