"""Throughput and peak memory of ``sigpipe run`` against a naive baseline, on the same synthetic batch; prints JSON.

For each size given with ``--pages`` a batch of cheques and letters is generated (``benchmarks/end_to_end.py``'s
``make_batch``: real signatures from ``../shared/datasets/signatures``), then, in the same run, timed:

(a) ``sigpipe run`` (a subprocess, exactly as a user runs it; model loading and reference enrolment included);
(b) a naive baseline (a subprocess too): each PDF converted whole with pdf2image (pypdfium2 rendering every page up
    front when poppler is not installed), Ultralytics ``predict`` called once per page with its default settings
    (and its default thread count), and each crop verified on its own (one verifier forward pass per signature, then
    the product's own decision: ``Gallery.compare`` or ``best_match``, second stage included), with ONNX Runtime's
    default spinning threads (``SIGPIPE_ORT_SPINNING=1``; sigpipe turns them off, ``sigpipe/_onnx.py``).

Both runs use the same models, references and claims. Peak memory is the largest sum of the resident set sizes of
the process and all its children, sampled every 200 ms (every 50 ms, as until session 47, the sampling itself
took 8% of a core: listing a process's children reads every process's status). With two sizes (``--pages 100
400``) the output also gives the peak-memory ratio: sigpipe streams pages, so its peak should not grow with the
batch.

    python benchmarks/throughput.py --pages 200
    python benchmarks/throughput.py --pages 100 400 --skip-baseline
    python benchmarks/throughput.py --pages 200 --kinds cheque   # a bank's overnight cheques
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_S = 0.2  # seconds between two samples of the process tree's memory
sys.path.insert(0, str(Path(__file__).resolve().parent))

from end_to_end import DEFAULT_CORPUS, make_batch  # noqa: E402


def measure(cmd: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run ``cmd``; returns its exit code, wall seconds, peak RSS of its process tree (MB) and stderr tail."""
    import psutil

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        try:
            root = psutil.Process(proc.pid)
        except psutil.NoSuchProcess:
            return
        while not stop.is_set():
            total = 0
            try:
                for p in [root, *root.children(recursive=True)]:
                    try:
                        total += p.memory_info().rss
                    except psutil.NoSuchProcess:
                        pass
            except psutil.NoSuchProcess:
                break
            peak = max(peak, total)
            stop.wait(SAMPLE_S)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    out, err = proc.communicate()
    secs = time.perf_counter() - t0
    stop.set()
    th.join()
    return {"rc": proc.returncode, "seconds": round(secs, 2), "peak_rss_mb": round(peak / 2**20, 1),
            "stdout": out[-2000:], "stderr": err[-2000:]}


def sigpipe_cmd(batch: dict[str, Path], out: Path, args: argparse.Namespace) -> list[str]:
    cmd = [sys.executable, "-c", "from sigpipe.cli import main; main()", "run", str(batch["scans"]),
           "--refs", str(batch["refs"]), "--claims", str(batch["claims"]), "--out", str(out),
           "--workers", str(args.workers), "--dpi", str(args.dpi), "--no-progress",
           "--precision", args.precision]
    if args.no_orient:
        cmd.append("--no-orient")
    if args.detector_weights:
        cmd += ["--detector-weights", str(args.detector_weights)]
    if args.verifier_weights:
        cmd += ["--verifier-weights", str(args.verifier_weights)]
    return cmd


def baseline_cmd(batch: dict[str, Path], args: argparse.Namespace) -> list[str]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--baseline-worker", str(batch["scans"]),
           str(batch["refs"]), str(batch["claims"]), "--dpi", str(args.dpi)]
    if args.detector_weights:
        cmd += ["--detector-weights", str(args.detector_weights)]
    if args.verifier_weights:
        cmd += ["--verifier-weights", str(args.verifier_weights)]
    return cmd


def baseline(scans: Path, refs: Path, claims_csv: Path, dpi: int, detector: Path | None,
             verifier_manifest: Path | None) -> dict[str, Any]:
    """The naive way: whole-document conversion, one ``predict`` per page, one verifier call per crop."""
    import csv

    import numpy as np
    from PIL import Image, ImageSequence

    from sigpipe._ultralytics import configure
    from sigpipe.datasets.corpus import read_gray
    from sigpipe.pipeline.ingest import discover_scans, poppler_available, relative_name
    from sigpipe.verifier.gallery import Gallery
    from sigpipe.verifier.verifier import Verifier
    from sigpipe.weights import Manifest, bundled_manifest

    configure(threads=max(1, (os.cpu_count() or 2) - 1))  # offline; Ultralytics' own default thread count
    from ultralytics import YOLO

    det_manifest = bundled_manifest("detector") if detector is None else Manifest.load(detector)
    model = YOLO(str(det_manifest.weights_path), task="detect")
    ver = Verifier.from_manifest(verifier_manifest, threads=max(1, (os.cpu_count() or 2) - 1))
    with open(claims_csv, newline="") as f:
        claims = {row["document"]: row["identity"] for row in csv.DictReader(f)}
    gallery = Gallery(ver)  # one forward pass per specimen; the product's decisions (second stage included)
    for p in sorted(refs.iterdir()):
        if p.is_dir():
            x = np.concatenate([ver.prepare([read_gray(s)]) for s in sorted(p.iterdir())])
            gallery.embeddings[p.name] = np.concatenate([ver.embed_prepared(x[i : i + 1]) for i in range(len(x))])
            gallery.images[p.name] = np.round(x[:, 0] * 255).astype(np.uint8)
    use_poppler = poppler_available()
    pages = signatures = 0
    for path in discover_scans(scans):
        if path.suffix.lower() == ".pdf":
            if use_poppler:
                from pdf2image import convert_from_path

                images = convert_from_path(str(path), dpi=dpi)
            else:
                import pypdfium2 as pdfium

                doc = pdfium.PdfDocument(str(path))
                images = [doc[i].render(scale=dpi / 72).to_pil() for i in range(len(doc))]
        else:
            with Image.open(path) as im:
                images = [f.convert("RGB") for f in ImageSequence.Iterator(im)]
        claimed = claims.get(relative_name(path, scans))
        for img in images:
            pages += 1
            bgr = np.ascontiguousarray(np.asarray(img.convert("RGB"))[:, :, ::-1])
            result = model.predict(bgr)[0]  # default settings
            for x1, y1, x2, y2 in result.boxes.xyxy.cpu().numpy().astype(int):
                crop = bgr[max(0, y1):y2, max(0, x1):x2]
                if crop.size == 0:
                    continue
                x = ver.prepare([crop])
                emb = ver.embed_prepared(x)[0]
                if claimed in gallery.embeddings:
                    gallery.compare(emb, claimed, x[0])
                else:
                    gallery.best_match(emb, x[0])
                signatures += 1
    return {"pages": pages, "signatures": signatures, "pdf": "pdf2image" if use_poppler else
            "pypdfium2, whole document (poppler not installed)"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pages", type=int, nargs="+", default=[200], help="batch size(s) in pages, e.g. 100 400")
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--max-writers", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--kinds", default="cheque,letter",
                    help="document types of the batch (synth-documents --kinds), e.g. cheque for a bank's cheque run")
    ap.add_argument("--workers", default="auto", help="sigpipe run --workers (N or auto, its default)")
    ap.add_argument("--dpi", type=int, default=200)
    ap.add_argument("--detector-weights", type=Path, default=None)
    ap.add_argument("--verifier-weights", type=Path, default=None)
    ap.add_argument("--precision", choices=["f32", "bf16", "auto"], default="f32",
                    help="sigpipe run --precision (bf16: both models on OpenVINO in bfloat16; auto: bf16 where native)")
    ap.add_argument("--no-orient", action="store_true", help="sigpipe run --no-orient (pages not turned upright)")
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument("--work", type=Path, default=None, help="folder for batches and reports (default: temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--baseline-worker", nargs=3, metavar=("SCANS", "REFS", "CLAIMS"), type=Path,
                    help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.baseline_worker:
        info = baseline(*args.baseline_worker, dpi=args.dpi, detector=args.detector_weights,
                        verifier_manifest=args.verifier_weights)
        print(json.dumps(info))
        return 0

    work = args.work or Path(tempfile.mkdtemp(prefix="sigpipe-throughput-"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    results: dict[str, Any] = {"runs": [], "kinds": args.kinds, "workers": args.workers, "dpi": args.dpi,
                               "precision": args.precision, "orient": not args.no_orient,
                               "cpus": os.cpu_count()}
    for n in args.pages:
        batch = make_batch(args.corpus, n, work / f"batch-{n}", args.seed, max_writers=args.max_writers,
                           kinds=tuple(args.kinds.split(",")))
        run: dict[str, Any] = {"pages": n}
        out = work / f"out-{n}"
        shutil.rmtree(out, ignore_errors=True)
        m = measure(sigpipe_cmd(batch, out, args), {**env, "SIGPIPE_CACHE": str(work / f"cache-{n}-sigpipe")})
        if m["rc"] not in (0, 1):
            print(json.dumps({"error": "sigpipe run failed", **m}, indent=2))
            return 2
        summary = json.loads((out / "summary.json").read_text())
        run["documents"] = summary["documents"]
        run["sigpipe"] = {"seconds": m["seconds"], "pages_per_s": round(n / m["seconds"], 3),
                          "peak_rss_mb": m["peak_rss_mb"], "signatures": summary["signatures"],
                          "failed": summary["failed"], "workers": summary["workers"]}
        results["models"] = summary["models"]
        if not args.skip_baseline:
            b = measure(baseline_cmd(batch, args), {**env, "SIGPIPE_ORT_SPINNING": "1"})  # ONNX Runtime's defaults
            if b["rc"] != 0:
                run["baseline"] = {"error": b["stderr"]}
            else:
                info = json.loads(b["stdout"].strip().splitlines()[-1])
                run["baseline"] = {"seconds": b["seconds"], "pages_per_s": round(n / b["seconds"], 3),
                                   "peak_rss_mb": b["peak_rss_mb"], **info}
                run["speedup"] = round(b["seconds"] / m["seconds"], 2)
        results["runs"].append(run)
    if len(results["runs"]) >= 2:
        first, last = results["runs"][0], results["runs"][-1]
        results["memory_growth"] = {
            "pages": [first["pages"], last["pages"]],
            "sigpipe_peak_ratio": round(last["sigpipe"]["peak_rss_mb"] / first["sigpipe"]["peak_rss_mb"], 3),
        }
        if "peak_rss_mb" in first.get("baseline", {}) and "peak_rss_mb" in last.get("baseline", {}):
            results["memory_growth"]["baseline_peak_ratio"] = round(
                last["baseline"]["peak_rss_mb"] / first["baseline"]["peak_rss_mb"], 3)
    if not args.keep and args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    else:
        results["work"] = str(work)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
