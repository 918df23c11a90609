"""Detector benchmark: accuracy on the real test split, recall / false boxes on synthetic documents, and latency per
backend. Prints one JSON object on stdout (logs go to stderr).

    python benchmarks/detector.py [--weights W] [--split test] [--limit N] [--synthetic DIR] [--runs 20]

- ``accuracy``: mAP50, mAP50-95, precision, recall (Ultralytics val, conf 0.001) on ``--split`` of
  ``--data-root`` (default ``../shared/datasets/detection/docs`` relative to the repo root). The dataset is
  linked into a temporary folder, so nothing (e.g. label caches) is written beside it.
- ``accuracy_<backend>``: the same for the manifest's default backend, the model ``sigpipe run`` runs (a static
  square letterbox, where Ultralytics letterboxes the ``.pt`` to rectangles, so the figures differ a little).
- ``at_shipped_conf``: recall, precision and false boxes per page on ``--split`` at the shipped confidence (IoU >= 0.5),
  with the default backend; ``recall_ci95`` and ``false_boxes_per_page_ci95`` are 95% bootstrap intervals over the
  pages (``--bootstrap`` resamples): how far figures on 64 test pages can be trusted.
- ``synthetic``: with ``--synthetic DIR`` holding ``truth.json``: the same on those documents, default backend.
- ``versus_baseline``: with ``--baseline OTHER`` (a manifest), the differences of recall and false boxes per page
  (this model minus OTHER, each at its own shipped confidence and default backend) on the same pages, with paired
  bootstrap intervals: an interval that holds 0 is a difference these pages cannot tell from chance.
- ``latency``: ms per page (median of ``--runs``, after a warm-up) for pt / onnx / openvino, where the export
  exists in the manifest or can be made (into a temporary folder); single pages and batches of 8.
- ``--tta``: everything at the shipped confidence (and latency) with test-time augmentation, each page and its
  mirror image fused (``sigpipe run --detector-tta``), at the manifest's ``tta_conf``; mAP stays the plain network's.
  With ``--baseline`` the same manifest, the paired difference of TTA against the plain detector.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sigpipe.datasets.corpus import IMAGE_SUFFIXES  # noqa: E402
from sigpipe.detector.detector import (  # noqa: E402
    DEFAULT_CONF,
    DEFAULT_IMGSZ,
    DEFAULT_IOU,
    DEFAULT_MAX_DET,
    SignatureDetector,
    resolve_model,
)
from sigpipe.detector.evaluate import (  # noqa: E402
    compare_detections,
    document_predictions,
    evaluate,
    page_detection_stats,
    yolo_split_pages,
)
from sigpipe.detector.export import export  # noqa: E402

log = logging.getLogger("benchmarks.detector")


def linked_dataset(data_root: Path, split: str, limit: int | None, tmp: Path) -> tuple[Path, list[Path]]:
    """Symlink ``split`` (or its first ``limit`` images) of a YOLO dataset into ``tmp``; return (yaml, images)."""
    images = sorted(p for p in (data_root / "images" / split).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise SystemExit(f"no images in {data_root / 'images' / split}")
    images = images[:limit] if limit else images
    (tmp / "images" / split).mkdir(parents=True)
    (tmp / "labels" / split).mkdir(parents=True)
    for img in images:
        (tmp / "images" / split / img.name).symlink_to(img)
        label = data_root / "labels" / split / (img.stem + ".txt")
        if label.is_file():
            (tmp / "labels" / split / label.name).symlink_to(label)
    yaml = tmp / "data.yaml"
    yaml.write_text(f"path: {tmp}\ntrain: images/{split}\nval: images/{split}\n{split}: images/{split}\n"
                    "names:\n  0: signature\n")
    return yaml, images


def backend_models(weights: Path, manifest: Any, tmp: Path, imgsz: int) -> dict[str, Path | str]:
    """Model path per backend, or the reason it is unavailable."""
    out: dict[str, Path | str] = {"pt": weights} if weights.suffix == ".pt" else {}
    if weights.suffix != ".pt":  # an export was passed directly: benchmark just that
        return {"onnx" if weights.suffix == ".onnx" else "openvino": weights}
    known = (manifest.get("backends") or {}) if manifest is not None else {}
    for fmt, pkg in (("onnx", "onnxruntime"), ("openvino", "openvino")):
        if fmt in known and (manifest.path.parent / known[fmt]).exists():
            out[fmt] = manifest.path.parent / known[fmt]
        elif importlib.util.find_spec(pkg) is None:
            out[fmt] = f"skipped: python package {pkg!r} is not installed"
        else:
            try:
                out[fmt] = export(weights, format=fmt, imgsz=imgsz, out_dir=tmp / fmt)
            except Exception as e:  # report, do not abort the benchmark
                out[fmt] = f"skipped: export failed: {e}"
    return out


def latency(det: SignatureDetector, pages: list[np.ndarray], runs: int) -> dict[str, float]:
    """Median ms per page: one page at a time, and in batches of 8."""
    det.detect(pages[0])  # warm-up
    single = []
    for i in range(runs):
        t = time.perf_counter()
        det.detect(pages[i % len(pages)])
        single.append((time.perf_counter() - t) * 1000)
    batch = [pages[i % len(pages)] for i in range(8)]
    det.detect_batch(batch)
    batched = []
    for _ in range(max(1, runs // 8)):
        t = time.perf_counter()
        det.detect_batch(batch)
        batched.append((time.perf_counter() - t) * 1000 / len(batch))
    return {
        "ms_per_page": round(statistics.median(single), 2),
        "ms_per_page_p90": round(float(np.percentile(single, 90)), 2),
        "ms_per_page_batch8": round(statistics.median(batched), 2),
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, default=None, help="Model or manifest (default: the bundled detector).")
    ap.add_argument("--data-root", type=Path, default=ROOT.parent / "shared/datasets/detection/docs")
    ap.add_argument("--split", default="test", choices=["val", "test"])
    ap.add_argument("--limit", type=int, default=None, help="Use only the first N images of the split.")
    ap.add_argument("--synthetic", type=Path, default=None, help="Folder with truth.json (synthetic documents).")
    ap.add_argument("--synthetic-limit", type=int, default=None)
    ap.add_argument("--imgsz", type=int, default=None, help="Default: the manifest's, else 640.")
    ap.add_argument("--conf", type=float, default=None, help="Operating threshold (default: the manifest's).")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=20, help="Timed pages per backend.")
    ap.add_argument("--backends", default="pt,onnx,openvino")
    ap.add_argument("--skip-accuracy", action="store_true")
    ap.add_argument("--bootstrap", type=int, default=1000, help="Resamples of the pages for the intervals (0: none).")
    ap.add_argument("--tta", action="store_true", help="Test-time augmentation (mirror image), at tta_conf.")
    ap.add_argument("--precision", choices=["f32", "bf16"], default="f32",
                    help="The default backend's precision (bf16: OpenVINO in bfloat16, sigpipe run --precision "
                         "bf16); latency is then also timed for openvino_bf16.")
    ap.add_argument("--baseline", type=Path, default=None,
                    help="Another detector manifest: paired differences of recall and false boxes per page.")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")

    weights, manifest = resolve_model(args.weights)
    imgsz = args.imgsz or (int(manifest.get("imgsz", DEFAULT_IMGSZ)) if manifest else DEFAULT_IMGSZ)
    conf_key = "tta_conf" if args.tta else "conf"
    if args.conf is None and args.tta and (manifest is None or manifest.get(conf_key) is None):
        raise SystemExit("--tta needs --conf or a manifest with tta_conf (scripts/ship_detector.py --tta-only)")
    conf = args.conf if args.conf is not None else (float(manifest.get(conf_key, DEFAULT_CONF)) if manifest
                                                     else DEFAULT_CONF)
    iou = float(manifest.get("iou", DEFAULT_IOU)) if manifest else DEFAULT_IOU
    max_det = int(manifest.get("max_det", DEFAULT_MAX_DET)) if manifest else DEFAULT_MAX_DET
    downscale = str(manifest.get("downscale", "bilinear")) if manifest else "bilinear"
    result: dict[str, Any] = {
        "model": {"weights": str(weights), "ident": manifest.ident if manifest else weights.name,
                  "imgsz": imgsz, "conf": conf, "iou": iou, "max_det": max_det, "downscale": downscale,
                  "tta": args.tta},
        "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
                    "threads": args.threads},
    }
    with tempfile.TemporaryDirectory(prefix="sigpipe-detbench-") as tmp_s:
        tmp = Path(tmp_s)
        yaml, images = linked_dataset(args.data_root, args.split, args.limit, tmp / "data")
        if not args.skip_accuracy:
            t = time.perf_counter()
            acc = evaluate(yaml, weights, split=args.split, imgsz=imgsz, conf=0.001, iou=iou, threads=args.threads,
                           downscale=downscale)
            result["accuracy"] = {"split": args.split, "data": str(args.data_root), **acc,
                                  "seconds": round(time.perf_counter() - t, 1)}
            log.info("accuracy: %s", result["accuracy"])
        # the detector as `sigpipe run` builds it: the manifest's default backend
        if manifest is not None:
            shipped = SignatureDetector.from_manifest(manifest.path, threads=args.threads, conf=conf, tta=args.tta,
                                                      precision=args.precision)
        else:
            shipped = SignatureDetector(weights, imgsz=imgsz, conf=conf, iou=iou, max_det=max_det,
                                        threads=args.threads, downscale=downscale, tta=args.tta)
        if not args.skip_accuracy:
            if shipped.backend != "pt":
                t = time.perf_counter()
                acc = evaluate(yaml, shipped.path, split=args.split, imgsz=shipped.imgsz, conf=0.001, iou=iou,
                               batch=1, threads=args.threads, downscale=downscale)
                result[f"accuracy_{shipped.backend}"] = {**acc, "seconds": round(time.perf_counter() - t, 1)}
                log.info("accuracy %s: %s", shipped.backend, result[f"accuracy_{shipped.backend}"])
            truth = yolo_split_pages(args.data_root, args.split)[: args.limit]
            real_pages = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p, _ in truth]
            real_truth = [b for _, b in truth]
            preds = [shipped.detect(img) for img in real_pages]
            result["at_shipped_conf"] = {"split": args.split, "backend": shipped.backend,
                                         "precision": shipped.precision, "conf": conf,
                                         "iou_match": 0.5,
                                         **page_detection_stats(preds, real_truth, bootstrap=args.bootstrap)}
            log.info("at shipped conf: %s", result["at_shipped_conf"])
        baseline = SignatureDetector.from_manifest(args.baseline, threads=args.threads) if args.baseline else None
        if baseline is not None:
            result["versus_baseline"] = {"baseline": baseline.ident, "conf": baseline.conf}
            if not args.skip_accuracy:
                result["versus_baseline"][args.split] = compare_detections(
                    preds, [baseline.detect(img) for img in real_pages], real_truth, bootstrap=args.bootstrap)
        if args.synthetic is not None:
            syn_preds, syn_truth = document_predictions(shipped, args.synthetic / "truth.json", args.synthetic_limit)
            result["synthetic"] = {"dir": str(args.synthetic), "backend": shipped.backend,
                                   "precision": shipped.precision, "conf": conf,
                                   "iou_match": 0.5,
                                   **page_detection_stats(syn_preds, syn_truth, bootstrap=args.bootstrap)}
            log.info("synthetic: %s", result["synthetic"])
            if baseline is not None:
                base_preds, _ = document_predictions(baseline, args.synthetic / "truth.json", args.synthetic_limit)
                result["versus_baseline"]["synthetic"] = compare_detections(syn_preds, base_preds, syn_truth,
                                                                            bootstrap=args.bootstrap)
        if baseline is not None:
            log.info("versus baseline: %s", result["versus_baseline"])
        pages = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in images[:8]]
        result["latency_pages"] = {"count": len(pages), "shapes": sorted({f"{p.shape[1]}x{p.shape[0]}"
                                                                           for p in pages})}
        wanted = [b.strip() for b in args.backends.split(",") if b.strip()]
        models = backend_models(weights, manifest, tmp / "exports", imgsz)
        result["latency"] = {}
        if args.precision == "bf16" and "openvino" in wanted:
            wanted.append("openvino_bf16")
        for name in wanted:
            backend, precision = (name[: -len("_bf16")], "bf16") if name.endswith("_bf16") else (name, "f32")
            model = models.get(backend, "skipped: not available for this model")
            if isinstance(model, str):
                result["latency"][name] = model
                continue
            det = SignatureDetector(model, imgsz=imgsz, conf=conf, iou=iou, max_det=max_det, threads=args.threads,
                                    downscale=downscale, tta=args.tta, precision=precision)
            result["latency"][name] = latency(det, pages, args.runs)
            log.info("latency %s: %s", name, result["latency"][name])
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    from sigpipe.errors import SigpipeError

    try:
        main()
    except SigpipeError as e:  # bad data (label lines, a missing split): one line, as the CLI says it
        raise SystemExit(f"error: {e}") from None
