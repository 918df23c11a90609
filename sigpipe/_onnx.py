"""ONNX sessions as sigpipe opens them: CPU, a fixed thread count, and no spinning threads; in bf16, OpenVINO.

By default ONNX Runtime's threads keep spinning for a while after each run, waiting for the next one. The pipeline
alternates between models (the detector, the verifier's embedding network, its pair network), and the spinning
threads of one steal the cores from the next: on 2 cores, a pair-network call right after an embedding call took
2.2 times as long as alone (27 ms against 12).

In ``bf16`` precision the same ONNX file runs on OpenVINO computing in bfloat16: on CPUs that do so natively
(AVX512_BF16, AMX) the verifier's networks run in half the time, with embeddings moved by < 0.001 and pair logits by
~0.02; where bf16 is emulated it is slower. Models run that way carry :data:`BF16_SUFFIX` in their ident.
``auto`` (:func:`resolve_precision`) picks bf16 where OpenVINO reports that this CPU computes it natively.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

PRECISIONS = ("f32", "bf16")
REQUESTED_PRECISIONS = (*PRECISIONS, "auto")  # what a caller may ask for; "auto" resolves to one of PRECISIONS
BF16_SUFFIX = " bf16"  # appended to a model's ident when it runs in bf16: reports and re-runs tell the two apart
SPIN_ENV = "SIGPIPE_ORT_SPINNING"  # "1": ONNX Runtime's default spinning (benchmarks/throughput.py's naive baseline)


def cpu_session(path: str | Path, threads: int, precision: str = "f32") -> Any:
    """An ``onnxruntime.InferenceSession`` on the CPU with ``threads`` intra-op threads that sleep when idle, or for
    ``precision`` bf16 an :class:`OpenVinoSession` of the same file."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "bf16":
        return OpenVinoSession(path, threads, precision)
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    if os.environ.get(SPIN_ENV) != "1":
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def native_bf16() -> bool:
    """Whether OpenVINO computes bfloat16 natively on this CPU (AVX512_BF16 or AMX): its ``BF16`` capability."""
    try:
        import openvino as ov

        return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:  # noqa: BLE001 - no OpenVINO, or a CPU plugin that cannot say: compute in f32
        return False


def resolve_precision(precision: str, exported: bool) -> str:
    """The precision a model runs in: ``auto`` is bf16 for a model on an exported backend (``exported``) on a CPU
    with native bf16, else f32; ``f32`` and ``bf16`` are themselves.

    Raises:
        ValueError: an unknown precision.
    """
    if precision not in REQUESTED_PRECISIONS:
        raise ValueError(f"precision must be one of {REQUESTED_PRECISIONS}, got {precision!r}")
    if precision != "auto":
        return precision
    return "bf16" if exported and native_bf16() else "f32"


def openvino_config(threads: int, precision: str) -> dict[str, Any]:
    """How sigpipe compiles a model for OpenVINO's CPU plugin: one request's latency, ``threads`` threads, computing
    in ``precision``, and its threads not pinned to cores.

    OpenVINO pins its threads by default, each process from the first core up, so the worker processes of
    ``sigpipe run --workers 2`` (one thread each) ran their detectors on the same core: each inference took 230 ms
    instead of 100 on 2 cores, and two workers were slower than one process of two threads (README, "The whole
    pipeline")."""
    return {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": precision,
            "ENABLE_CPU_PINNING": False}


class OpenVinoSession:
    """An ONNX file compiled by OpenVINO for the CPU, answering ``run`` as an ``onnxruntime.InferenceSession`` does."""

    def __init__(self, path: str | Path, threads: int, precision: str) -> None:
        import openvino as ov

        core = ov.Core()
        self._compiled = core.compile_model(core.read_model(str(path)), "CPU", openvino_config(threads, precision))
        self._outputs = list(self._compiled.outputs)
        self._lock = threading.Lock()  # one infer request behind a CompiledModel's call: one thread at a time

    def run(self, output_names: list[str] | None, feeds: dict[str, Any]) -> list[Any]:
        """The outputs (all of them; ``output_names`` must be None) for inputs given by name. Safe from several
        threads, as ``onnxruntime.InferenceSession.run`` is: calls take turns."""
        if output_names is not None:
            raise ValueError("OpenVinoSession.run returns every output; pass None")
        with self._lock:
            result = self._compiled(feeds)
            return [np.array(result[o]) for o in self._outputs]
