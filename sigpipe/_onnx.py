"""ONNX Runtime sessions as sigpipe opens them: CPU, a fixed thread count, and no spinning threads.

By default ONNX Runtime's threads keep spinning for a while after each run, waiting for the next one. The pipeline
alternates between models (the detector, the verifier's embedding network, its pair network), and the spinning
threads of one steal the cores from the next: on 2 cores, a pair-network call right after an embedding call took
2.2 times as long as alone (27 ms against 12).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

SPIN_ENV = "SIGPIPE_ORT_SPINNING"  # "1": ONNX Runtime's default spinning (benchmarks/throughput.py's naive baseline)


def cpu_session(path: str | Path, threads: int) -> Any:
    """An ``onnxruntime.InferenceSession`` on the CPU with ``threads`` intra-op threads that sleep when idle."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    if os.environ.get(SPIN_ENV) != "1":
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
