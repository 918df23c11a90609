"""Pages scanned upside down or sideways, end to end; prints JSON.

Takes a batch (SCANS with a claims CSV and REFS, e.g. the one ``benchmarks/throughput.py --work DIR --keep``
leaves in ``DIR/batch-200``), writes a copy whose every page is turned by 90, 180 or 270 degrees (at random, seeded;
each document saved as a multi-page TIFF of its pages rendered at 200 dpi, claims renamed to match), and runs
``sigpipe run`` on the upright batch, on the turned one, and on the turned one with ``--no-orient``. Each run on the
turned batch is compared with the upright run, document by document: the same document verdict, and for each
signature of the upright run, whether it is found again (a box on the same page that, turned back, overlaps it at
IoU >= 0.5), with the same verdict, the right ``page_rotation``, and how far its distance moved.

    python benchmarks/turned_pages.py work/tp/batch-200 --work work/turned
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


def turn_batch(src: Path, dst: Path, seed: int) -> dict[str, int]:
    """Write the turned copy of ``src/scans`` to ``dst/scans`` and its claims; returns each new name's turn."""
    from sigpipe.pipeline.ingest import IngestConfig, discover_scans, iter_pages, relative_name

    rng = np.random.default_rng(seed)
    turns: dict[str, int] = {}
    names: dict[str, str] = {}
    for path in discover_scans(src / "scans"):
        rel = relative_name(path, src / "scans")
        k = int(rng.integers(1, 4))
        pages = [Image.fromarray(np.ascontiguousarray(np.rot90(p.image[:, :, ::-1], k)))
                 for p in iter_pages(path, IngestConfig())]
        new = rel + ".tif"
        (dst / "scans" / new).parent.mkdir(parents=True, exist_ok=True)
        pages[0].save(dst / "scans" / new, save_all=True, append_images=pages[1:], compression="tiff_lzw",
                      dpi=(200, 200))
        turns[new], names[rel] = 90 * k, new
    with open(src / "claims.csv", newline="") as f, open(dst / "claims.csv", "w", newline="") as g:
        w = csv.writer(g)
        w.writerow(["document", "identity"])
        for row in csv.DictReader(f):
            w.writerow([names[row["document"]], row["identity"]])
    return turns


def run(scans: Path, refs: Path, claims: Path, out: Path, *extra: str) -> tuple[dict[str, dict[str, Any]], float]:
    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "from sigpipe.cli import main; main()", "-q", "run", str(scans), "--refs",
                    str(refs), "--claims", str(claims), "--out", str(out), "--no-progress", *extra], check=True,
                   stdout=subprocess.DEVNULL)  # its summary line: this script's stdout is its JSON alone
    secs = time.perf_counter() - t
    reports = {}
    for p in out.rglob("*.json"):
        if p.name != "summary.json":
            r = json.loads(p.read_text())
            reports[r["document"]["path"]] = r
    return reports, secs


def iou(a: list[float], b: tuple[float, ...]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def compare(upright: dict[str, dict[str, Any]], turned: dict[str, dict[str, Any]], turns: dict[str, int]
            ) -> dict[str, Any]:
    """Each upright signature is paired with the turned run's signature on the same page whose box, mapped back to
    the upright page, overlaps it most (IoU >= 0.5)."""
    from sigpipe.pipeline.orientation import box_to_scanned

    same_doc = found = same_sig = rotation_right = n_sigs = 0
    gaps = []
    for name, r in upright.items():
        t = turned[name + ".tif"]
        k = turns[name + ".tif"] // 90
        same_doc += t["verdict"] == r["verdict"]
        back = [(s, box_to_scanned(tuple(s["bbox"]), 4 - k, tuple(s["page_size"]))) for s in t["signatures"]]
        for a in r["signatures"]:
            n_sigs += 1
            cands = [(iou(a["bbox"], box), s) for s, box in back if s["page"] == a["page"]]
            best = max(cands, key=lambda c: c[0], default=(0.0, None))
            if best[0] < 0.5 or best[1] is None:
                continue
            b = best[1]
            found += 1
            same_sig += a["verdict"] == b["verdict"]
            rotation_right += b.get("page_rotation", 0) == 90 * k
            if a["distance"] is not None and b["distance"] is not None:
                gaps.append(abs(a["distance"] - b["distance"]))
    return {"documents": len(upright), "same_document_verdict": same_doc, "upright_signatures": n_sigs,
            "found_again": found, "same_signature_verdict": same_sig, "page_rotation_right": rotation_right,
            "median_distance_change": round(float(np.median(gaps)), 4) if gaps else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("batch", type=Path, help="folder with scans/, refs/ and claims.csv")
    ap.add_argument("--work", type=Path, required=True, help="folder for the turned batch and the reports")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    shutil.rmtree(args.work / "scans", ignore_errors=True)
    args.work.mkdir(parents=True, exist_ok=True)
    turns = turn_batch(args.batch, args.work, args.seed)
    refs = args.batch / "refs"
    upright, s0 = run(args.batch / "scans", refs, args.batch / "claims.csv", args.work / "out-upright")
    turned, s1 = run(args.work / "scans", refs, args.work / "claims.csv", args.work / "out-turned")
    plain, s2 = run(args.work / "scans", refs, args.work / "claims.csv", args.work / "out-turned-plain", "--no-orient")
    pages = sum(r["document"]["pages"] for r in upright.values())
    print(json.dumps({
        "pages": pages,
        "turned_with_orientation": {**compare(upright, turned, turns), "seconds": round(s1, 2)},
        "turned_without_orientation": {**compare(upright, plain, turns), "seconds": round(s2, 2)},
        "upright_seconds": round(s0, 2),
    }, indent=2))


if __name__ == "__main__":
    main()
