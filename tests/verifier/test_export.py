"""The verifier's ONNX export: same embeddings as PyTorch, recorded and hash-checked in the manifest."""

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from sigpipe.cli import cli
from sigpipe.errors import ModelError
from sigpipe.verifier.model import build_model, fuse_for_inference
from sigpipe.verifier.verifier import Verifier


@pytest.fixture
def exported(tiny_verifier: Path) -> Path:
    r = CliRunner().invoke(cli, ["verifier", "export", "--weights", str(tiny_verifier)])
    assert r.exit_code == 0, r.output
    assert Path(r.output.strip().splitlines()[-1]) == tiny_verifier.with_name("tiny.onnx")
    return tiny_verifier


def test_fused_network_matches_unfused():
    import torch

    for arch in ("resnet-s", "signet-s"):
        torch.manual_seed(0)
        net = build_model(arch, 16, 8)
        net.train()
        net(torch.rand(8, 1, 80, 160))  # move BatchNorm running statistics away from their initial values
        net.eval()
        fused = fuse_for_inference(net)
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
        x = torch.rand(3, 1, 80, 160)
        with torch.no_grad():
            np.testing.assert_allclose(fused(x).numpy(), net(x).numpy(), atol=1e-5)


def test_export_is_recorded_and_becomes_the_default(exported: Path):
    data = json.loads(exported.read_text())
    assert data["backends"] == {"onnx": "tiny.onnx"} and data["default_backend"] == "onnx"
    assert len(data["backend_sha256"]["onnx"]) == 64
    assert Verifier.from_manifest(exported).backend == "onnx"
    assert Verifier.from_manifest(exported, backend="pt").backend == "pt"


def bar_crops(n: int, seed: int) -> list[np.ndarray]:
    """Crops with one dark bar each, placed at random."""
    rng = np.random.default_rng(seed)
    crops = [np.full((60, 150), 235, np.uint8) for _ in range(n)]
    for c in crops:
        c[rng.integers(10, 40) : 50, rng.integers(5, 60) : 140] = 20
    return crops


def test_onnx_and_pt_give_the_same_embeddings_and_decisions(exported: Path):
    crops = bar_crops(5, seed=0)
    a, b = Verifier.from_manifest(exported), Verifier.from_manifest(exported, backend="pt")
    ea, eb = a.embed(crops), b.embed(crops)
    assert ea.shape == eb.shape == (5, 16)
    np.testing.assert_allclose(ea, eb, atol=1e-5)
    assert a.decide(ea[0], ea[1:]).genuine == b.decide(eb[0], eb[1:]).genuine
    assert a.ident == b.ident  # the .pt names the model; the export is a derived copy
    assert a.embed_prepared(np.zeros((0, 1, 80, 160), np.float32)).shape == (0, 16)


def test_tampered_or_missing_export_is_refused(exported: Path):
    onnx = exported.with_name("tiny.onnx")
    onnx.write_bytes(onnx.read_bytes()[:-10])
    with pytest.raises(ModelError, match="does not match its manifest"):
        Verifier.from_manifest(exported)
    Verifier.from_manifest(exported, backend="pt")  # the PyTorch weights are still fine
    onnx.unlink()
    with pytest.raises(ModelError, match="missing"):
        Verifier.from_manifest(exported)


def test_unknown_or_unexported_backend_is_a_clear_error(tiny_verifier: Path):
    with pytest.raises(ModelError, match="no ONNX export"):
        Verifier.from_manifest(tiny_verifier, backend="onnx")
    with pytest.raises(ModelError, match="unknown verifier backend"):
        Verifier.from_manifest(tiny_verifier, backend="tensorrt")
    assert Verifier.from_manifest(tiny_verifier).backend == "pt"  # no export recorded: PyTorch


def test_bf16_runs_the_export_on_openvino_close_to_f32(exported: Path):
    crops = bar_crops(4, seed=1)
    f32, bf16 = Verifier.from_manifest(exported), Verifier.from_manifest(exported, precision="bf16")
    assert bf16.ident == f32.ident + " bf16"  # reports, caches and re-runs tell the two apart
    e32, e16 = f32.embed(crops), bf16.embed(crops)
    np.testing.assert_allclose(np.linalg.norm(e16, axis=1), 1.0, atol=0.02)
    np.testing.assert_allclose(e16, e32, atol=0.03)  # bfloat16 keeps 8 bits of mantissa
    with pytest.raises(ValueError, match="bf16 with the ONNX backend"):
        Verifier.from_manifest(exported, backend="pt", precision="bf16")


def test_auto_precision_is_bf16_only_for_the_export_on_a_native_bf16_cpu(exported: Path,
                                                                          monkeypatch: pytest.MonkeyPatch):
    import sigpipe._onnx

    monkeypatch.setattr(sigpipe._onnx, "native_bf16", lambda: True)
    assert Verifier.from_manifest(exported, precision="auto").precision == "bf16"
    assert Verifier.from_manifest(exported, backend="pt", precision="auto").precision == "f32"  # no error: f32
    monkeypatch.setattr(sigpipe._onnx, "native_bf16", lambda: False)
    v = Verifier.from_manifest(exported, precision="auto")
    assert v.precision == "f32" and not v.ident.endswith(" bf16")


def test_exporting_an_edited_manifest_keeps_it_marked_edited(tiny_verifier: Path):
    """An export rewrites the manifest; a hand-edited one (a threshold changed) must not come out stamped as the
    model it was copied from: a re-run would keep every report that model made."""
    clean = Verifier.from_manifest(tiny_verifier).ident
    data = json.loads(tiny_verifier.read_text())
    data["decision"]["thresholds"] = {k: 1.5 for k in data["decision"]["thresholds"]}
    tiny_verifier.write_text(json.dumps(data))
    edited = Verifier.from_manifest(tiny_verifier).ident
    assert " edited-" in edited and edited != clean
    r = CliRunner().invoke(cli, ["verifier", "export", "--weights", str(tiny_verifier)])
    assert r.exit_code == 0, r.output
    after = Verifier.from_manifest(tiny_verifier)
    assert after.backend == "onnx" and " edited-" in after.ident and after.ident != clean
    assert after.rule.threshold(5, 0.0) >= 1.5
