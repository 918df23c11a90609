"""Every ONNX session sigpipe opens has its threads sleep when idle (sigpipe/_onnx.py)."""

from pathlib import Path

import pytest

from sigpipe._onnx import SPIN_ENV, cpu_session

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
