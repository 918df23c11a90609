"""Fixtures for the detector tests: an untrained (but input-dependent) YOLOv8n and a tiny labelled dataset.

Everything is generated offline in a temporary folder; nothing is downloaded and nothing is trained (training even a
toy detector to usefulness takes minutes on a 2-core CPU).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from sigpipe.detector.detector import SignatureDetector
from sigpipe.detector.testing import make_untrained_detector

IMGSZ = 320
CONF = 0.05


def document_page(h: int, w: int, seed: int = 0, bars: int = 6, gray: bool = True) -> np.ndarray:
    """A white page with dark bars ("text lines" / "signatures"): ``(h, w)`` uint8, or ``(h, w, 3)`` BGR."""
    rng = np.random.default_rng(seed)
    page = np.full((h, w), 255, np.uint8)
    for _ in range(bars):
        bw, bh = int(rng.integers(w // 20 + 2, w // 4 + 3)), int(rng.integers(h // 60 + 2, h // 12 + 3))
        x, y = int(rng.integers(0, max(1, w - bw))), int(rng.integers(0, max(1, h - bh)))
        page[y : y + bh, x : x + bw] = int(rng.integers(0, 80))
    return page if gray else cv2.cvtColor(page, cv2.COLOR_GRAY2BGR)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("detmodel")
    make_untrained_detector(
        d / "detector.pt",
        seed=0,
        manifest={
            "name": "sigdet-test", "tag": "v0", "architecture": "yolov8n", "imgsz": IMGSZ, "conf": CONF,
            "iou": 0.7, "max_det": 100,
        },
    )
    return d


@pytest.fixture(scope="session")
def manifest_path(model_dir: Path) -> Path:
    return model_dir / "detector.pt.json"


@pytest.fixture(scope="session")
def det(manifest_path: Path) -> SignatureDetector:
    return SignatureDetector.from_manifest(manifest_path, threads=2)


@pytest.fixture(scope="session")
def low_conf_det(model_dir: Path) -> SignatureDetector:
    """The same model with a near-zero threshold: many boxes, for geometry tests."""
    return SignatureDetector(model_dir / "detector.pt", imgsz=IMGSZ, conf=0.001, max_det=50, threads=2)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-image YOLO dataset (val and test splits) of white pages with dark boxes; returns its data.yaml."""
    root = tmp_path_factory.mktemp("detdata")
    rng = np.random.default_rng(0)
    for split in ("train", "val", "test"):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i in range(4 if split != "train" else 1):
            h, w = int(rng.integers(96, 160)), int(rng.integers(96, 160))
            img = np.full((h, w, 3), 255, np.uint8)
            lines = []
            for _ in range(int(rng.integers(1, 3))):
                bw, bh = int(rng.integers(w // 5, w // 2)), int(rng.integers(h // 6, h // 3))
                x, y = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
                img[y : y + bh, x : x + bw] = 30
                lines.append(f"0 {(x + bw / 2) / w:.6f} {(y + bh / 2) / h:.6f} {bw / w:.6f} {bh / h:.6f}")
            cv2.imwrite(str(root / "images" / split / f"{i}.png"), img)
            (root / "labels" / split / f"{i}.txt").write_text("\n".join(lines) + "\n")
    yaml = root / "data.yaml"
    yaml.write_text(
        f"path: {root}\ntrain: images/train\nval: images/val\ntest: images/test\nnames:\n  0: signature\n"
    )
    return yaml
