"""The batch pipeline: files -> pages -> signatures -> verdicts -> reports.

- :mod:`~sigpipe.pipeline.ingest`: discovery and streaming page readers (PDF, TIFF, PNG, JPEG).
- :mod:`~sigpipe.pipeline.flow`: :class:`SignaturePredictor`, the per-document flow.
- :mod:`~sigpipe.pipeline.report`: report dataclasses (schema_version "1"), the JSON Schema, the summary.
- :mod:`~sigpipe.pipeline.runner`: :func:`run_batch`, resumable and parallel.
- :mod:`~sigpipe.pipeline.claims`: claims files, mandates, signatory tables; :mod:`~sigpipe.pipeline.x9`: image cash
  letters (X9.37 files of cheque images) split into documents.

Submodules are imported lazily so ``import sigpipe.pipeline`` stays cheap (no torch).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sigpipe.pipeline.claims import Mandate
    from sigpipe.pipeline.flow import FlowConfig, SignaturePredictor
    from sigpipe.pipeline.ingest import IngestConfig, Page, discover_scans, iter_pages
    from sigpipe.pipeline.report import DocumentReport, RunSummary, SignatureResult, load_schema
    from sigpipe.pipeline.runner import ManifestModels, RunConfig, run_batch

__all__ = [
    "DocumentReport", "FlowConfig", "IngestConfig", "ManifestModels", "Mandate", "Page", "RunConfig", "RunSummary",
    "SignaturePredictor", "SignatureResult", "discover_scans", "iter_pages", "load_schema", "run_batch",
]

_WHERE = {
    "Mandate": "claims",
    "FlowConfig": "flow", "SignaturePredictor": "flow",
    "IngestConfig": "ingest", "Page": "ingest", "discover_scans": "ingest", "iter_pages": "ingest",
    "DocumentReport": "report", "RunSummary": "report", "SignatureResult": "report", "load_schema": "report",
    "ManifestModels": "runner", "RunConfig": "runner", "run_batch": "runner",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"sigpipe.pipeline.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'sigpipe.pipeline' has no attribute {name!r}")
