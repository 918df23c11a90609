"""sigpipe never touches the network: importing it and running a YOLOv8 forward pass opens no connection.

Runs in a fresh interpreter so that the import-time checks of Ultralytics really run (in the test process it may
have been imported already), with a fresh cache folder, and with every way of opening a connection replaced by one
that records the attempt and fails. Code that swallows the failure (Ultralytics' ``is_online()`` does) is still
caught, because the attempts are counted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import json, socket, sys

    attempts = []

    def deny(*args, **kwargs):
        attempts.append(repr(args[:2])[:200])
        raise OSError("network access is disabled in this test")

    socket.socket.connect = deny
    socket.socket.connect_ex = deny
    socket.create_connection = deny
    socket.getaddrinfo = deny

    import numpy as np
    import sigpipe
    import sigpipe.cli
    from sigpipe._ultralytics import yolo_class

    YOLO = yolo_class()
    model = YOLO("yolov8n.yaml", task="detect")
    results = model.predict(np.full((96, 128, 3), 255, np.uint8), imgsz=64, device="cpu", verbose=False)
    print(json.dumps({"attempts": attempts, "results": len(results)}))
    """
)


def test_no_network(tmp_path: Path) -> None:
    env = {**os.environ, "SIGPIPE_CACHE": str(tmp_path / "cache"), "SIGPIPE_THREADS": "2"}
    for key in ("YOLO_OFFLINE", "YOLO_CONFIG_DIR", "YOLO_AUTOINSTALL"):  # sigpipe must set these itself
        env.pop(key, None)
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["results"] == 1
    assert out["attempts"] == [], f"network access attempted: {out['attempts']}"


RUNTIMES = textwrap.dedent(
    """
    import json, os, sys
    import sigpipe

    predictor = sigpipe.load_predictor(sys.argv[1])
    report = predictor(sys.argv[2], claimed="j-kowalski")
    from openvino.tools.ovc import convert_model  # export (Ultralytics' OpenVINO format) still has its converter
    print(json.dumps({"verdict": report.verdict, "ort": os.environ.get("ORT_DISABLE_TELEMETRY"),
                      "ov_telemetry": repr(sys.modules.get("openvino_telemetry"))}))
    """
)


def test_the_model_runtimes_send_no_telemetry_and_write_nothing_in_home(tmp_path: Path) -> None:
    """OpenVINO sends a usage event on import and ONNX Runtime queues telemetry under ~/.cache/Microsoft: both are
    off once sigpipe is imported; what they would have written in HOME is the evidence (~/intel, ~/.cache)."""
    example = Path(__file__).resolve().parents[1] / "examples"
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "SIGPIPE_CACHE": str(tmp_path / "cache")}
    for key in ("ORT_DISABLE_TELEMETRY", "XDG_CACHE_HOME", "XDG_CONFIG_HOME"):
        env.pop(key, None)
    proc = subprocess.run([sys.executable, "-c", RUNTIMES, str(example / "refs"),
                           str(example / "scans" / "0002_cheque.pdf")],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["verdict"] in ("genuine", "forged") and out["ort"] == "1" and out["ov_telemetry"] == "None"
    assert sorted(p.relative_to(home).as_posix() for p in home.rglob("*")) == []
