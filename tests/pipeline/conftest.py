"""Fixtures for the pipeline tests: a tiny random verifier, test documents built offline, a small batch."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))  # pipeline_doubles, for this process and spawned workers

from pipeline_doubles import SIG_A, SIG_B, page_with, save_image, save_pdf, scribble  # noqa: E402

from sigpipe.verifier.decide import DecisionRule  # noqa: E402
from sigpipe.verifier.model import build_model  # noqa: E402
from sigpipe.verifier.preprocess import PreprocessConfig  # noqa: E402
from sigpipe.verifier.verifier import Verifier  # noqa: E402
from sigpipe.weights import write_manifest  # noqa: E402


@pytest.fixture(scope="session")
def verifier_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-init tiny verifier (resnet-s, width 8, 128-d) with a complete manifest; returns the manifest."""
    torch.manual_seed(0)
    net = build_model("resnet-s", 128, 8)
    weights = tmp_path_factory.mktemp("verifier") / "tiny-verifier.pt"
    torch.save(net.state_dict(), weights)
    return write_manifest(weights, {
        "name": "tiny-verifier", "tag": "test", "architecture": "resnet-s", "width": 8, "embedding_dim": 128,
        "preprocess": PreprocessConfig().to_dict(),
        "decision": DecisionRule("mean", {1: 0.5, 5: 0.5}, 10.0, 0.0).to_dict(),
    })


@pytest.fixture(scope="session")
def staged_manifest(verifier_manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny verifier with a random-init pair network (width 8) as its second stage, weight 0.5."""
    import json
    import shutil

    from sigpipe.verifier.model import PairNet
    from sigpipe.weights import sha256_file

    d = tmp_path_factory.mktemp("staged")
    shutil.copyfile(verifier_manifest.with_suffix(""), d / "tiny-verifier.pt")
    torch.manual_seed(1)
    torch.save(PairNet(8).state_dict(), d / "tiny-pair.pt")
    m = json.loads(verifier_manifest.read_text())
    m["tag"] = "staged"
    m["second_stage"] = {"architecture": "pairnet-2ch", "width": 8, "file": "tiny-pair.pt",
                         "sha256": sha256_file(d / "tiny-pair.pt"), "orders": 2}
    m["decision"] = DecisionRule("mean", {1: 0.5, 5: 0.5}, 10.0, 0.0, pair_weight=0.5).to_dict()
    (d / "tiny-verifier.pt.json").write_text(json.dumps(m))
    return d / "tiny-verifier.pt.json"


@pytest.fixture(scope="session")
def verifier(verifier_manifest: Path) -> Verifier:
    return Verifier.from_manifest(verifier_manifest, threads=1)


@pytest.fixture(autouse=True)
def _private_cache_one_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep gallery caches out of ~/.cache; one torch thread (tiny models; the CI machine may be busy, where
    several threads per process are much slower)."""
    monkeypatch.setenv("SIGPIPE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SIGPIPE_THREADS", "1")


@pytest.fixture
def batch(tmp_path: Path) -> dict[str, Path]:
    """SCANS with good, unsigned and broken documents; REFS for alice and bob (plus one unreadable specimen);
    a claims CSV. Returns the paths by name."""
    a, b = scribble(SIG_A), scribble(SIG_B)
    scans, refs = tmp_path / "scans", tmp_path / "refs"
    save_pdf(scans / "alice_letter.pdf", [page_with([]), page_with([(a, 300, 400)])])
    save_image(scans / "sub" / "bob_form.png", page_with([(b, 100, 100)]), dpi=(150, 150))
    frames = [Image.fromarray(page_with([])), Image.fromarray(page_with([(a, 500, 50)]))]
    (scans / "sub" / "deeper").mkdir(parents=True)
    frames[0].save(scans / "sub" / "deeper" / "multi.TIF", save_all=True, append_images=frames[1:], dpi=(300, 300))
    save_image(scans / "unsigned.jpg", page_with([]), quality=95)
    (scans / "broken.pdf").write_text("this is a text file, not a PDF\n")
    save_image(scans / ".hidden.png", page_with([(a, 10, 10)]))
    (scans / "notes.txt").write_text("ignored\n")
    save_image(refs / "alice" / "a1.png", a)
    save_image(refs / "bob" / "b1.png", b)
    (refs / "bob" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    claims = tmp_path / "claims.csv"
    claims.write_text("document,identity\nalice_letter.pdf,alice\nsub/bob_form.png,carol\nmissing.pdf,alice\n")
    return {"scans": scans, "refs": refs, "claims": claims, "out": tmp_path / "out", "cache": tmp_path / "gcache"}
