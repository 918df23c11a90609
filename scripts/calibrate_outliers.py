"""Give a verifier manifest the references check's calibration (``decision.outlier_margin``, ``outlier_screen``)
in place.

    .venv/bin/python scripts/calibrate_outliers.py sigpipe/weights/verifier.pt.json \
        --data ../shared/datasets/signatures/cedar --data .../bhsig-bengali --data .../bhsig-hindi

Calibrated on the validation writers the manifest names (``sigpipe.verifier.refcheck``), with the model's default
backend, as ``sigpipe run`` embeds references. Verdicts do not depend on it, so the model keeps its tag and identity
(the manifest's sha256 covers the weights file only); ``sigpipe verifier calibrate`` does this for the models it
writes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sigpipe.datasets.corpus import Corpus  # noqa: E402
from sigpipe.verifier.data import SignatureArrays, load_arrays  # noqa: E402
from sigpipe.verifier.preprocess import PreprocessConfig  # noqa: E402
from sigpipe.verifier.refcheck import calibrate_manifest  # noqa: E402
from sigpipe.weights import Manifest  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("manifest", type=Path)
    ap.add_argument("--data", type=Path, action="append", required=True, help="a corpus the model was trained on")
    args = ap.parse_args()
    m = Manifest.load(args.manifest)
    splits = m["training"]["splits"]
    corpora = {c.name: c for c in (Corpus(p) for p in args.data)}
    missing = sorted(c for c, parts in splits.items() if parts.get("val") and c not in corpora)
    if missing:
        raise SystemExit(f"--data lacks the corpora {missing}, whose validation writers calibrate the check")
    cfg = PreprocessConfig.from_dict(m["preprocess"])
    val = SignatureArrays.concat([load_arrays(corpora[c], cfg, splits[c]["val"]) for c in splits
                                  if splits[c].get("val")])
    print(json.dumps({"model": m.ident, **calibrate_manifest(args.manifest, val)}, indent=2))


if __name__ == "__main__":
    main()
