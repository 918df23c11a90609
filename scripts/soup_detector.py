"""Average the weights of two detectors of one lineage (a "model soup"), as the shipped v6 and v7 were made.

    .venv/bin/python scripts/soup_detector.py A.pt B.pt OUT.pt [--weight 0.5]

OUT is A's checkpoint with every floating-point weight replaced by ``weight * A + (1 - weight) * B``. Both must be
Ultralytics checkpoints of the same architecture, B continued from A (or both from one parent): only then is their
average a working network (docs/models.md, detector v6). A continuation that learns a new kind of page while losing
on real ones, averaged with the weights it started from, kept the real pages and most of the new gain.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def soup(a: Path, b: Path, out: Path, weight: float = 0.5) -> None:
    # our own checkpoints (the shipped one is hash-checked by its manifest before it is used anywhere else)
    ca = torch.load(a, map_location="cpu", weights_only=False)
    cb = torch.load(b, map_location="cpu", weights_only=False)
    ma, mb = (c.get("ema") or c["model"] for c in (ca, cb))  # a run's checkpoints keep the weights as its EMA
    sa, sb = ma.state_dict(), mb.state_dict()
    if sa.keys() != sb.keys() or any(sa[k].shape != sb[k].shape for k in sa):
        raise SystemExit(f"{a} and {b} are not the same architecture")
    mixed = {k: (weight * sa[k].float() + (1 - weight) * sb[k].float()).to(sa[k].dtype)
             if sa[k].is_floating_point() else sa[k] for k in sa}
    ma.load_state_dict(mixed)
    ca["model"], ca["ema"] = ma, None  # as a shipped checkpoint holds it
    for key in ("optimizer", "updates", "scaler"):  # nothing of either run's optimiser state
        ca.pop(key, None)
    ca["train_args"] = {**ca.get("train_args", {}), "soup": f"{weight} {a.name} + {1 - weight} {b.name}"}
    torch.save(ca, out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("a", type=Path)
    p.add_argument("b", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--weight", type=float, default=0.5, help="A's share (B gets the rest)")
    args = p.parse_args()
    soup(args.a, args.b, args.out, args.weight)
    print(args.out)


if __name__ == "__main__":
    main()
