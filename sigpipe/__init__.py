"""sigpipe: find handwritten signatures on scanned documents and tell genuine from forged.

The library's entry points (imported lazily, so ``import sigpipe`` loads no model runtime)::

    import sigpipe

    predictor = sigpipe.load_predictor("examples/refs")          # bundled models, references enrolled
    report = predictor("examples/scans/0008_cheque.tif", claimed="peter-harris")
    print(report.verdict, report.to_json())

    summary = sigpipe.run_batch(sigpipe.RunConfig(scans=Path("scans"), refs=Path("refs"), out=Path("reports")))

See :mod:`sigpipe.pipeline` (the batch pipeline), :mod:`sigpipe.verifier` and :mod:`sigpipe.detector`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sigpipe._offline import quiet_runtimes

quiet_runtimes()  # before any model runtime is imported: no telemetry from OpenVINO or ONNX Runtime

if TYPE_CHECKING:
    from sigpipe.errors import InputError, ModelError, SigpipeError
    from sigpipe.pipeline.flow import SignaturePredictor
    from sigpipe.pipeline.ingest import IngestConfig, PageSelection
    from sigpipe.pipeline.report import DocumentReport, RunSummary, SignatureResult
    from sigpipe.pipeline.runner import RunConfig, load_predictor, run_batch
    from sigpipe.verifier.gallery import Gallery
    from sigpipe.verifier.verifier import Verifier

__version__ = "0.2.0"  # raised with each release that changes what reports say (pyproject.toml reads it here)

__all__ = [
    "DocumentReport", "Gallery", "IngestConfig", "InputError", "ModelError", "PageSelection", "RunConfig",
    "RunSummary", "SignaturePredictor", "SignatureResult", "SigpipeError", "Verifier", "__version__",
    "load_predictor", "run_batch",
]

_WHERE = {
    "InputError": "errors", "ModelError": "errors", "SigpipeError": "errors",
    "SignaturePredictor": "pipeline.flow", "IngestConfig": "pipeline.ingest", "PageSelection": "pipeline.ingest",
    "DocumentReport": "pipeline.report", "RunSummary": "pipeline.report", "SignatureResult": "pipeline.report",
    "RunConfig": "pipeline.runner", "load_predictor": "pipeline.runner", "run_batch": "pipeline.runner",
    "Gallery": "verifier.gallery", "Verifier": "verifier.verifier",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"sigpipe.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'sigpipe' has no attribute {name!r}")
