"""Ship a trained verifier: copy ``verifier.pt`` (and its second stage, ``verifier-pair.pt``) + manifest into
sigpipe/weights, record benchmark figures, export ONNX.

    .venv/bin/python scripts/ship_verifier.py RUN_DIR/verifier.pt.json BENCH.json

BENCH.json is the output of ``benchmarks/verifier.py --weights RUN_DIR/verifier.pt.json`` (held-out test writers).
The manifest's sha256 covers the weights file only, so adding figures does not change the model's identity.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sigpipe.verifier.export import export_onnx  # noqa: E402
from sigpipe.weights import WEIGHTS_DIR, Manifest, manifest_text  # noqa: E402


def main() -> None:
    src, bench = Path(sys.argv[1]), Path(sys.argv[2])
    m = Manifest.load(src)
    m.verify()
    data = dict(m.data)
    figures = json.loads(bench.read_text())
    if figures.get("model") != m.ident:
        raise SystemExit(f"{bench} was measured on {figures.get('model')}, not {m.ident}")
    data["benchmarks"] = {
        "command": "python benchmarks/verifier.py (held-out test writers of each corpus, DESIGN.md protocol)",
        "test_writers": figures["corpora"],
        **({"mean_eer": figures["mean_eer"]} if "mean_eer" in figures else {}),
        **({"versus_baseline": figures["versus_baseline"]} if "versus_baseline" in figures else {}),
        "throughput": figures["throughput"],
        **({"throughput_pt": figures["throughput_pt"]} if "throughput_pt" in figures else {}),
        **({"architectures": figures["architectures"]} if "architectures" in figures else {}),
    }
    shutil.copyfile(m.weights_path, WEIGHTS_DIR / "verifier.pt")
    for f in ("verifier.onnx", "verifier.pt.json", "verifier-pair.pt", "verifier-pair.onnx"):
        (WEIGHTS_DIR / f).unlink(missing_ok=True)
    stage = data.get("second_stage")
    if stage:  # the pair network travels with the model; its ONNX export is re-derived below
        shutil.copyfile(m.path.parent / stage["file"], WEIGHTS_DIR / "verifier-pair.pt")
        data["second_stage"] = {k: v for k, v in stage.items() if k not in ("onnx", "onnx_sha256")}
        data["second_stage"]["file"] = "verifier-pair.pt"
    for key in ("backends", "backend_sha256", "default_backend"):  # re-derived below from the shipped .pt
        data.pop(key, None)
    (WEIGHTS_DIR / "verifier.pt.json").write_text(manifest_text(data))
    Manifest.load(WEIGHTS_DIR / "verifier.pt.json").verify()
    export_onnx(WEIGHTS_DIR / "verifier.pt.json")  # ONNX Runtime: the default CPU backend
    print(f"shipped {m.ident} to {WEIGHTS_DIR}")


if __name__ == "__main__":
    main()
