"""Which way up: the orientation model on held-out upright pages, each also turned by 90, 180 and 270 degrees; prints
JSON.

For each set: ``upright_turned`` (upright pages the pipeline would turn: the harm), ``turned_fixed`` of
``turned_pages`` (turned pages it puts upright), ``wrong_turn`` (pages it would turn the wrong way), ``accuracy``
(the most likely class right, whatever the confidence) and ``ms_per_page`` (reducing a full page and the ONNX
model, 2 threads), at the manifest's ``min_confidence``.

``--no-cue DIR``: signature images on their own (a bank may run clipped signatures as documents), each in its four
turns: none should be turned (``turned``).

Sets: the real test split of the detection dataset (Tobacco800 and Roboflow pages; the model was trained on its train
split and validated on its val split) and synthetic documents of another seed than the training pages (e.g.
``sigpipe datasets synth-documents --signatures <corpus> --pages 120 --seed 7 --out DIR``), rendered at 200 dpi as
``sigpipe run`` renders them.

    python benchmarks/orientation.py --synthetic DIR [--weights MANIFEST]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REAL_TEST = ROOT.parent / "shared" / "datasets" / "detection" / "docs" / "images" / "test"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--real", type=Path, default=REAL_TEST, help="folder of real upright pages")
    ap.add_argument("--synthetic", type=Path, default=None, help="folder of synthetic documents (another seed)")
    ap.add_argument("--no-cue", type=Path, default=None,
                    help="folder of signature images (writers the model was not trained on): how many it would turn")
    ap.add_argument("--weights", type=Path, default=None, help="orientation manifest (default: the bundled one)")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    from sigpipe.pipeline.orientation_train import evaluate, evaluate_no_cue
    from sigpipe.weights import bundled_manifest

    manifest = args.weights or bundled_manifest("orientation").path
    out = {"real_test": evaluate(manifest, [args.real])}
    if args.synthetic:
        out["synthetic"] = evaluate(manifest, [args.synthetic])
    if args.no_cue:
        out["signature_images"] = evaluate_no_cue(manifest, [args.no_cue])
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
