"""Every ONNX session sigpipe opens has its threads sleep when idle (sigpipe/_onnx.py)."""

from pathlib import Path

import pytest

import sigpipe._onnx
from sigpipe._onnx import SPIN_ENV, cpu_session, resolve_precision

ROOT = Path(__file__).resolve().parents[1]
PAIR_ONNX = ROOT / "sigpipe" / "weights" / "verifier-pair.onnx"


def spinning(session) -> str | None:  # noqa: ANN001 - an onnxruntime.InferenceSession
    try:
        return session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning")
    except Exception:  # noqa: BLE001 - onnxruntime raises when the entry was never set (its default: spin)
        return None


@pytest.mark.skipif(not PAIR_ONNX.exists(), reason="no shipped second stage")
def test_sessions_do_not_spin_unless_asked(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(SPIN_ENV, raising=False)
    s = cpu_session(PAIR_ONNX, 1)
    assert spinning(s) == "0" and s.get_session_options().intra_op_num_threads == 1
    monkeypatch.setenv(SPIN_ENV, "1")
    assert spinning(cpu_session(PAIR_ONNX, 2)) is None


@pytest.mark.skipif(not PAIR_ONNX.exists(), reason="no shipped second stage")
def test_the_shipped_verifier_opens_both_networks_without_spinning(monkeypatch: pytest.MonkeyPatch):
    from sigpipe.verifier.verifier import Verifier

    monkeypatch.delenv(SPIN_ENV, raising=False)
    v = Verifier.from_manifest(backend="onnx", threads=1)
    assert v.pair is not None
    assert spinning(v._session) == "0" and spinning(v.pair._session) == "0"


def test_auto_precision_follows_the_cpu_and_the_backend(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(sigpipe._onnx, "native_bf16", lambda: True)
    assert resolve_precision("auto", exported=True) == "bf16"
    assert resolve_precision("auto", exported=False) == "f32"  # PyTorch models run in f32
    monkeypatch.setattr(sigpipe._onnx, "native_bf16", lambda: False)
    assert resolve_precision("auto", exported=True) == "f32"
    assert resolve_precision("bf16", exported=True) == "bf16" and resolve_precision("f32", exported=True) == "f32"
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("fp16", exported=True)


def test_native_bf16_is_found_on_a_cpu_that_has_it():
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    if "avx512_bf16" not in flags and "amx_bf16" not in flags:
        pytest.skip("this CPU does not compute bfloat16 natively")
    assert sigpipe._onnx.native_bf16()


def test_openvino_threads_are_not_pinned_to_cores():
    """OpenVINO pins each process's threads from the first core up: two workers of one thread each (`sigpipe run
    --workers 2`) then ran their detectors on one core of two, each inference taking twice as long."""
    from sigpipe._onnx import OpenVinoSession
    from sigpipe.detector.runtime import OpenVinoNetwork
    from sigpipe.weights import WEIGHTS_DIR

    detector = OpenVinoNetwork(WEIGHTS_DIR / "detector_openvino_model", 1)
    session = OpenVinoSession(WEIGHTS_DIR / "orientation.onnx", 1, "f32")
    for compiled in (detector._compiled[()], session._compiled):
        assert compiled.get_property("ENABLE_CPU_PINNING") is False
        assert compiled.get_property("INFERENCE_NUM_THREADS") == 1
