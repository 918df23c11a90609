import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from sigpipe.verifier.decide import DecisionRule
from sigpipe.verifier.model import build_model
from sigpipe.verifier.preprocess import PreprocessConfig
from sigpipe.weights import write_manifest


@pytest.fixture
def tiny_verifier(tmp_path: Path) -> Path:
    """A random-init small verifier with a complete manifest; returns the manifest path."""
    torch.manual_seed(0)
    net = build_model("resnet-s", 16, 8)
    weights = tmp_path / "tiny.pt"
    torch.save(net.state_dict(), weights)
    return write_manifest(weights, {
        "name": "tiny", "tag": "test", "architecture": "resnet-s", "width": 8, "embedding_dim": 16,
        "preprocess": PreprocessConfig().to_dict(),
        "decision": DecisionRule("mean", {1: 0.3, 5: 0.25}, 12.0, 0.0).to_dict(),
    })


def scribble(rng: np.random.Generator, h: int = 90, w: int = 240) -> np.ndarray:
    img = np.full((h, w), 235, np.uint8)
    pts = np.stack([np.linspace(10, w - 10, 8), h / 2 + rng.normal(0, h / 5, 8)], 1).astype(np.int32)
    cv2.polylines(img, [pts], False, 20, 2, cv2.LINE_AA)
    return img


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    """3 writers x (4 genuine + 2 forged) scribbles in the per-writer layout."""
    rng = np.random.default_rng(0)
    root = tmp_path / "corpus"
    for w in ("001", "002", "003"):
        for kind, n in (("genuine", 4), ("forged", 2)):
            d = root / w / kind
            d.mkdir(parents=True)
            for i in range(n):
                cv2.imwrite(str(d / f"{i + 1:02d}.png"), scribble(rng))
    return root


@pytest.fixture
def six_writers(tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """6 writers (each tiny-corpus writer twice), so that a 0.5/0.5/0 split gives 3 train and 3 validation writers;
    preprocessed arrays are cached under tmp_path."""
    monkeypatch.setenv("SIGPIPE_CACHE", str(tmp_path / "cache"))
    corpus = tmp_path / "six"
    for w in sorted(tiny_corpus.iterdir()):
        for suffix in ("a", "b"):
            shutil.copytree(w, corpus / f"{w.name}{suffix}")
    return corpus
