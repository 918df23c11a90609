"""The model runtimes kept from phoning home, before they are first imported (by ``import sigpipe``).

OpenVINO sends a usage event to Google Analytics on import, from a forked process, unless its user opted out in
``~/intel``; ONNX Runtime writes a device id and a queue of telemetry events under ``~/.cache/Microsoft`` and sends
them later. On a bank's server that is traffic to the internet through its proxy, files in the account's home, a
warning on stderr where the home is read-only, and, with no home at all (an arbitrary uid), an OpenVINO that fails
to load ("Could not determine home directory"). Ultralytics is kept offline separately (:mod:`sigpipe._ultralytics`).
"""

from __future__ import annotations

import os
import sys

# OpenVINO's importers fall back to a no-op stub when its telemetry package cannot be imported (openvino/tools/ovc)
OPENVINO_TELEMETRY = "openvino_telemetry"
ORT_TELEMETRY_ENV = "ORT_DISABLE_TELEMETRY"  # read by ONNX Runtime when it starts


def quiet_runtimes() -> None:
    """Turn both runtimes' telemetry off, leaving alone a choice the environment or the host program made first
    (the variable set, or OpenVINO's telemetry already imported). Idempotent."""
    os.environ.setdefault(ORT_TELEMETRY_ENV, "1")
    sys.modules.setdefault(OPENVINO_TELEMETRY, None)  # type: ignore[arg-type]  # None: "import it" fails
