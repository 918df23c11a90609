"""Export round trips: an ONNX (and, where installed, OpenVINO) export finds the same boxes as the .pt model."""

from __future__ import annotations

import importlib.util
import json
import shutil
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
    res = CliRunner().invoke(
        cli, ["detector", "export", "--weights", str(manifest_path), "--out", str(out), "--dynamic"]
    )
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
    # Non-square pages: the export has dynamic axes, so sigpipe's own runtime letterboxes to the smallest
    # stride-aligned rectangle as Ultralytics does for the .pt model; boxes must agree with the .pt model and
    # with the independent re-implementation, in page pixels.
    for shape in ((550, 1200), (2339, 1654)):
        page = document_page(*shape, seed=6)
        got = as_array(ox.detect(page))
        ref = reference_boxes(onnx_dir / "detector.pt", page, IMGSZ, ox.conf, ox.iou, ox.max_det, rect=True)
        want = as_array(pt.detect(page))
        assert len(got) == len(ref) == len(want) > 0
        scale = max(shape) / IMGSZ
        for row in (*ref, *want):
            d = np.abs(got[:, :4] - row[:4]).max(axis=1)
            assert d.min() <= 0.05 * scale and abs(got[int(np.argmin(d)), 4] - row[4]) <= 1e-4


def test_static_export_gets_the_square_letterbox(onnx_dir: Path, tmp_path: Path) -> None:
    """A static export (the default) gets the full square letterbox and still maps boxes back to page pixels."""
    static = export(onnx_dir / "detector.pt.json", format="onnx", out_dir=tmp_path)
    pt = SignatureDetector.from_manifest(onnx_dir / "detector.pt.json")
    ox = SignatureDetector(static, imgsz=640, conf=pt.conf, iou=pt.iou, max_det=pt.max_det, threads=2)
    assert ox.imgsz == IMGSZ  # the export's own size wins over a wrong argument
    for shape in ((550, 1200), (960, 960)):
        page = document_page(*shape, seed=6)
        got = as_array(ox.detect_batch([page, page])[1])  # a batch on a batch-1 model runs page by page
        ref = reference_boxes(onnx_dir / "detector.pt", page, IMGSZ, ox.conf, ox.iou, ox.max_det, rect=False)
        assert len(got) == len(ref) > 0
        for row in ref:
            assert np.abs(got[:, :4] - row[:4]).max(axis=1).min() <= 0.05 * max(shape) / IMGSZ


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
@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
def test_openvino_round_trip(manifest_path: Path, tmp_path: Path, dynamic: bool) -> None:
    path = export(manifest_path, format="openvino", out_dir=tmp_path, dynamic=dynamic)
    assert path == tmp_path / "detector_openvino_model" and path.is_dir()
    ov = SignatureDetector.from_manifest(tmp_path / "detector.pt.json", backend="openvino", threads=2)
    assert ov.backend == "openvino"
    # Compiled in f32 (not bf16, OpenVINO's default on CPUs that support it): the confident boxes and their
    # confidences agree with the .pt model (run independently, letterboxed the same way) up to float rounding, on
    # a square page and on pages letterboxed to the square or, for the dynamic export, to rectangles (each input
    # shape compiled on first use; a batch of one shape reuses it).
    for shape in ((960, 960), (550, 1200), (2339, 1654)):
        page = document_page(*shape, seed=5)
        a = reference_boxes(tmp_path / "detector.pt", page, IMGSZ, ov.conf, ov.iou, ov.max_det, rect=dynamic)
        b1, b2 = (as_array(d) for d in ov.detect_batch([page, page]))
        np.testing.assert_array_equal(b1, b2)
        top = a[a[:, 4] >= np.median(a[:, 4])]
        assert len(top) > 0
        for row in top:
            d = np.abs(b1[:, :4] - row[:4]).max(axis=1)
            assert d.min() <= 0.1 * max(shape) / 960 and abs(b1[int(np.argmin(d)), 4] - row[4]) < 1e-3


@pytest.mark.skipif(not HAS_OPENVINO, reason="openvino is not installed")
def test_openvino_in_bf16_is_marked_and_close_to_f32(manifest_path: Path, onnx_dir: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    export(manifest_path, format="openvino", out_dir=tmp_path)
    f32 = SignatureDetector.from_manifest(tmp_path / "detector.pt.json", backend="openvino", threads=2)
    bf16 = SignatureDetector.from_manifest(tmp_path / "detector.pt.json", backend="openvino", threads=2,
                                           precision="bf16")
    assert bf16.precision == "bf16" and bf16.ident == f32.ident + " bf16"  # reports and re-runs tell them apart
    page = document_page(960, 960, seed=5)
    a, b = as_array(f32.detect(page)), as_array(bf16.detect(page))
    top = a[a[:, 4] >= np.median(a[:, 4])]
    assert len(top) > 0
    for row in top:  # bfloat16 keeps 8 bits of mantissa: boxes move by pixels, confidences by hundredths
        d = np.abs(b[:, :4] - row[:4]).max(axis=1)
        assert d.min() <= 8 and abs(b[int(np.argmin(d)), 4] - row[4]) < 0.05
    with pytest.raises(ValueError, match="bf16 with the OpenVINO backend"):
        SignatureDetector.from_manifest(onnx_dir / "detector.pt.json", backend="onnx", precision="bf16")
    import sigpipe._onnx

    for native in (True, False):  # auto: bf16 for OpenVINO on a CPU that computes it natively, else f32
        monkeypatch.setattr(sigpipe._onnx, "native_bf16", lambda native=native: native)
        auto = SignatureDetector.from_manifest(tmp_path / "detector.pt.json", backend="openvino", threads=2,
                                               precision="auto")
        assert auto.precision == ("bf16" if native else "f32")
        assert auto.ident == (bf16.ident if native else f32.ident)
        assert SignatureDetector.from_manifest(onnx_dir / "detector.pt.json", backend="onnx",
                                               precision="auto").precision == "f32"


def test_an_export_to_another_folder_lists_only_what_is_there(manifest_path: Path, tmp_path: Path) -> None:
    # a manifest like the bundled one: its default backend an export that lives beside it, not in the new folder
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy2(manifest_path.with_name(manifest_path.name[: -len(".json")]), src)
    data = json.loads(manifest_path.read_text())
    data.update(default_backend="openvino", backends={"openvino": "detector_openvino_model"},
                backend_sha256={"openvino": "0" * 64}, export_imgsz={"openvino": 64})
    (src / manifest_path.name).write_text(json.dumps(data))
    export(src / manifest_path.name, format="onnx", out_dir=tmp_path / "new")
    m = json.loads((tmp_path / "new" / manifest_path.name).read_text())
    assert m["backends"] == {"onnx": "detector.onnx"} and m["default_backend"] == "onnx"
    assert set(m["backend_sha256"]) == set(m["export_imgsz"]) == {"onnx"}
    assert SignatureDetector.from_manifest(tmp_path / "new" / manifest_path.name, threads=1).backend == "onnx"
