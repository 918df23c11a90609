"""Ship a trained detector: copy its weights into sigpipe/weights, calibrate the confidence threshold on the real
validation split, measure it, export ONNX and OpenVINO (the default backend), and write the manifest.

    .venv/bin/python scripts/ship_detector.py RUN_DIR/weights/best.pt --imgsz 512 --tag v1 [--training "..."]
        [--dest DIR]
    .venv/bin/python scripts/ship_detector.py --tta-only MANIFEST

``--dest`` ships into another folder (default: sigpipe/weights), to measure a candidate with
``benchmarks/detector.py --weights DIR/detector.pt.json --baseline sigpipe/weights/detector.pt.json`` before
deciding whether it replaces the bundled model.

The confidence threshold maximises F1 (IoU >= 0.5) on the validation pages, swept with the OpenVINO export that
``sigpipe run`` uses (a static 512 square letterbox; the .pt under Ultralytics letterboxes to rectangles and scores a
little differently); the test split is only measured. The same sweep with test-time augmentation (each page and
its mirror image, boxes fused: ``SignatureDetector(tta=True)``) gives ``tta_conf``, the threshold ``sigpipe run
--detector-tta`` uses; ``--tta-only`` adds it to a model already shipped without changing anything else.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sigpipe.detector.calibrate import NMS_IOU, best_row, sweep  # noqa: E402
from sigpipe.detector.detector import SignatureDetector  # noqa: E402
from sigpipe.detector.evaluate import evaluate, yolo_split_pages  # noqa: E402
from sigpipe.detector.export import export  # noqa: E402
from sigpipe.detector.runtime import SecondLook  # noqa: E402
from sigpipe.weights import WEIGHTS_DIR, manifest_text, write_manifest  # noqa: E402

DOCS = ROOT.parent / "shared" / "datasets" / "detection" / "docs"


def split_pages(split: str) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(cv2.imread(str(img), cv2.IMREAD_COLOR), boxes) for img, boxes in yolo_split_pages(DOCS, split)]


def calibrate_tta(manifest: Path) -> dict[str, object]:
    """Sweep the shipped model (its default backend) with test-time augmentation and record ``tta_conf``, its
    calibration and the test figures at it in the manifest; returns what was added."""
    probe = SignatureDetector.from_manifest(manifest, conf=0.05, tta=True)
    val_rows, test_rows = sweep(probe, split_pages("val")), sweep(probe, split_pages("test"))
    best = best_row(val_rows)
    added = {
        "tta_conf": best["conf"],
        "tta_calibration": {"method": "confidence maximising F1 (IoU >= 0.5) on the real validation split, each page "
                                      "and its left-right mirror image run and their boxes fused", **best},
        "real_test_at_tta_conf": min(test_rows, key=lambda r: abs(r["conf"] - best["conf"])),
    }
    m = json.loads(manifest.read_text())
    m["tta_conf"], m["tta_calibration"] = added["tta_conf"], added["tta_calibration"]
    m.setdefault("benchmarks", {})["real_test_at_tta_conf"] = added["real_test_at_tta_conf"]
    manifest.write_text(manifest_text(m))
    return added


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("weights", type=Path, nargs="?", help="best.pt of a training run")
    ap.add_argument("--tta-only", type=Path, metavar="MANIFEST",
                    help="only calibrate test-time augmentation (tta_conf) for a model already shipped")
    ap.add_argument("--imgsz", type=int, default=512)
    ap.add_argument("--tag", default="v1")
    ap.add_argument("--training", default="", help="free text: how it was trained (epochs, schedule)")
    ap.add_argument("--downscale", default="bilinear", choices=["bilinear", "area"],
                    help="how the model was trained to see pages shrunk (sigpipe detector train --downscale)")
    ap.add_argument("--dest", type=Path, default=WEIGHTS_DIR, help="folder to ship into (default: sigpipe/weights)")
    ap.add_argument("--second-look", default="0.10,0.10,0.20", metavar="QUANTILE,SHARE[,FIRST]",
                    help="the manifest's second_look (white_quantile, min_midtone_share: a patterned page on which "
                         "nothing is found is looked at again with its levels stretched; stretched_first_share: a "
                         "page patterned more than this is looked at stretched first; docs/models.md, Detector (z)), "
                         "or 'none'")
    ap.add_argument("--bitonal-medians", default="3,5", metavar="SIZE[,SIZE...]",
                    help="second_look's bitonal_medians: a bitonal cheque on which nothing is found is looked at "
                         "through median filters of these sizes in turn ('none': not)")
    ap.add_argument("--bitonal-min-aspect", type=float, default=1.8,
                    help="second_look's bitonal_min_aspect: the median filters only on pages at least this many "
                         "times as wide as tall (cheques)")
    args = ap.parse_args()
    if args.tta_only:
        print(json.dumps(calibrate_tta(args.tta_only), indent=2))
        return
    if args.weights is None:
        ap.error("give the weights to ship, or --tta-only MANIFEST")
    second_look = None
    if args.second_look != "none":
        values = [float(v) for v in args.second_look.split(",")]
        if len(values) not in (2, 3):
            ap.error("--second-look takes QUANTILE,SHARE[,FIRST]")
        medians = () if args.bitonal_medians == "none" else tuple(int(v) for v in args.bitonal_medians.split(","))
        look = SecondLook(*values[:2], values[2] if len(values) == 3 else None, medians,
                          args.bitonal_min_aspect)  # in range
        second_look = look.to_manifest()

    args.dest.mkdir(parents=True, exist_ok=True)
    dst = args.dest / "detector.pt"
    shutil.copyfile(args.weights, dst)
    with tempfile.TemporaryDirectory() as tmp:
        probe = SignatureDetector(export(args.weights, "openvino", imgsz=args.imgsz, out_dir=tmp), imgsz=args.imgsz,
                                  conf=0.05, iou=NMS_IOU, downscale=args.downscale)
        val_rows = sweep(probe, split_pages("val"))
        test_rows = sweep(probe, split_pages("test"))
    best = best_row(val_rows)
    with tempfile.TemporaryDirectory() as tmp:
        yaml = Path(tmp) / "docs.yaml"
        yaml.write_text(
            f"path: {DOCS}\ntrain: images/train\nval: images/val\ntest: images/test\nnames:\n  0: signature\n"
        )
        figures = {split: evaluate(yaml, dst, split=split, imgsz=args.imgsz, downscale=args.downscale)
                   for split in ("val", "test")}
    at_conf = min(test_rows, key=lambda r: abs(r["conf"] - best["conf"]))
    manifest = {
        "name": "yolov8n-signature",
        "tag": args.tag,
        "architecture": "yolov8n (Ultralytics 8.4, from yolov8n.yaml; no pretrained weights), 1 class: signature",
        "imgsz": args.imgsz,
        "downscale": args.downscale,
        "conf": best["conf"],
        "iou": NMS_IOU,
        "max_det": 300,  # Ultralytics' default: a strip of 60 cheques is one page
        **({"second_look": second_look} if second_look else {}),
        "calibration": {"method": "confidence maximising F1 (IoU >= 0.5) on the real validation split", **best},
        "training": {
            "data": "Tobacco800 + Roboflow signatures pages (../shared/datasets/detection/docs, train split 524 pages)",
            "provenance": "Tobacco800 (public research set); Roboflow 'signatures' document set (CC BY 4.0)",
            "notes": args.training,
        },
        "benchmarks": {
            "real_val": figures["val"],
            "real_test": figures["test"],
            "real_test_at_shipped_conf": at_conf,
        },
    }
    write_manifest(dst, manifest)
    shutil.rmtree(args.dest / "detector_openvino_model", ignore_errors=True)
    onnx = export(dst, "onnx", imgsz=args.imgsz)
    openvino = export(dst, "openvino", imgsz=args.imgsz)
    m = json.loads((args.dest / "detector.pt.json").read_text())
    m["default_backend"] = "openvino"  # f32: the .pt's confidences, fastest here (benchmarks/detector.py)
    (args.dest / "detector.pt.json").write_text(manifest_text(m))
    calibrate_tta(args.dest / "detector.pt.json")
    print(json.dumps({"onnx": str(onnx), "openvino": str(openvino), **manifest["benchmarks"], "conf": best["conf"]},
                     indent=2))


if __name__ == "__main__":
    main()
