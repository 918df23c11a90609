"""Export round trips: an ONNX (and, where installed, OpenVINO) export finds the same boxes as the .pt model."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from sigpipe.cli import cli
from sigpipe.detector import SignatureDetector
from sigpipe.detector.export import export
from sigpipe.errors import InputError, ModelError, SigpipeError
from sigpipe.weights import Manifest

from .conftest import IMGSZ, document_page
from .test_detector import as_array, reference_boxes

HAS_OPENVINO = importlib.util.find_spec("openvino") is not None


@pytest.fixture(scope="module")
def onnx_dir(manifest_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("onnx")
    res = CliRunner().invoke(cli, ["detector", "export", "--weights", str(manifest_path), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert Path(res.stdout.strip().splitlines()[-1]) == out / "detector.onnx"
    return out


def test_export_updates_manifest_copy(onnx_dir: Path, manifest_path: Path) -> None:
    m = Manifest.load(onnx_dir / "detector.pt.json")
    assert m.get("backends") == {"onnx": "detector.onnx"}
    assert len(m["backend_sha256"]["onnx"]) == 64
    assert m.sha256 == Manifest.load(manifest_path).sha256  # same .pt
    assert "backends" not in json.loads(manifest_path.read_text())  # the original manifest is left alone


def test_onnx_matches_pt(onnx_dir: Path) -> None:
    pt = SignatureDetector.from_manifest(onnx_dir / "detector.pt.json", threads=2)
    ox = SignatureDetector.from_manifest(onnx_dir / "detector.pt.json", backend="onnx", threads=2)
    assert ox.backend == "onnx" and ox.ident == pt.ident and ox.imgsz == IMGSZ
    # A square page letterboxes to the same square input for both, so the outputs must agree.
    page = document_page(960, 960, seed=5)
    a, b = as_array(pt.detect(page)), as_array(ox.detect(page))
    assert len(a) > 0 and abs(len(a) - len(b)) <= 1
    # Equal up to float rounding; near-ties may swap order or the last kept box, so match the upper half by position.
    for row in a[a[:, 4] >= np.median(a[:, 4])]:
        d = np.abs(b[:, :4] - row[:4]).max(axis=1)
        j = int(np.argmin(d))
        assert d[j] <= 0.05 and abs(b[j, 4] - row[4]) <= 1e-4, (row, b[j])
    # Non-square pages: the static ONNX model always gets the full square letterbox; its boxes must still map back
    # to page pixels exactly (checked against the independent re-implementation with square padding).
    for shape in ((550, 1200), (2339, 1654)):
        page = document_page(*shape, seed=6)
        got = as_array(ox.detect(page))
        ref = reference_boxes(onnx_dir / "detector.pt", page, IMGSZ, ox.conf, ox.iou, ox.max_det, rect=False)
        assert len(got) == len(ref) > 0
        scale = max(shape) / IMGSZ
        for row in ref:
            assert np.abs(got[:, :4] - row[:4]).max(axis=1).min() <= 0.05 * scale


def test_tampered_onnx_is_refused(onnx_dir: Path, tmp_path: Path) -> None:
    for name in ("detector.pt", "detector.pt.json"):
        (tmp_path / name).write_bytes((onnx_dir / name).read_bytes())
    (tmp_path / "detector.onnx").write_bytes((onnx_dir / "detector.onnx").read_bytes() + b"\0")
    with pytest.raises(ModelError, match="does not match"):
        SignatureDetector.from_manifest(tmp_path / "detector.pt.json", backend="onnx")
    (tmp_path / "detector.onnx").unlink()
    with pytest.raises(ModelError, match="missing"):
        SignatureDetector.from_manifest(tmp_path / "detector.pt.json", backend="onnx")


def test_export_errors(tmp_path: Path, onnx_dir: Path) -> None:
    with pytest.raises(InputError, match="format"):
        export(onnx_dir / "detector.pt", format="tflite")
    with pytest.raises(InputError, match=r"\.pt"):
        export(onnx_dir / "detector.onnx", format="onnx")
    with pytest.raises(ModelError, match="not found"):
        export(tmp_path / "none.pt")


@pytest.mark.skipif(HAS_OPENVINO, reason="openvino is installed")
def test_openvino_export_names_missing_package(manifest_path: Path, tmp_path: Path) -> None:
    with pytest.raises(SigpipeError, match="openvino"):
        export(manifest_path, format="openvino", out_dir=tmp_path)


@pytest.mark.skipif(not HAS_OPENVINO, reason="openvino is not installed")
def test_openvino_round_trip(manifest_path: Path, tmp_path: Path) -> None:
    path = export(manifest_path, format="openvino", out_dir=tmp_path)
    assert path == tmp_path / "detector_openvino_model" and path.is_dir()
    pt = SignatureDetector.from_manifest(tmp_path / "detector.pt.json", threads=2)
    ov = SignatureDetector.from_manifest(tmp_path / "detector.pt.json", backend="openvino", threads=2)
    assert ov.backend == "openvino"
    page = document_page(960, 960, seed=5)
    a, b = as_array(pt.detect(page)), as_array(ov.detect(page))
    # Compiled in f32 (not bf16, OpenVINO's default on CPUs that support it): the confident boxes and their
    # confidences agree with the .pt model up to float rounding.
    top = a[a[:, 4] > 0.5]
    assert len(top) > 0
    for row in top:
        d = np.abs(b[:, :4] - row[:4]).max(axis=1)
        assert d.min() <= 0.1 and abs(b[int(np.argmin(d)), 4] - row[4]) < 1e-3
