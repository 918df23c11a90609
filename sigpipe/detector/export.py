"""Export the detector to ONNX or OpenVINO (offline, via Ultralytics) and record the export in its manifest."""

from __future__ import annotations

import importlib.util
import logging
import shutil
from pathlib import Path

from sigpipe._ultralytics import configure, yolo_class
from sigpipe.detector.detector import DEFAULT_IMGSZ, model_sha256, resolve_model
from sigpipe.errors import InputError, ModelError, SigpipeError
from sigpipe.weights import manifest_text

log = logging.getLogger(__name__)

FORMATS = ("onnx", "openvino")
# Python packages each export needs (Ultralytics would try to pip-install them; sigpipe never does).
REQUIREMENTS = {"onnx": ("onnx", "onnxslim", "onnxruntime"), "openvino": ("openvino",)}


def _missing(packages: tuple[str, ...]) -> list[str]:
    return [p for p in packages if importlib.util.find_spec(p) is None]


def export(
    weights: str | Path | None,
    format: str = "onnx",
    imgsz: int | None = None,
    out_dir: str | Path | None = None,
    dynamic: bool = False,
) -> Path:
    """Export a ``.pt`` detector to ONNX (``<stem>.onnx``) or OpenVINO (``<stem>_openvino_model/``).

    The export is written beside the weights (or into ``out_dir``, which then also gets a copy of the weights).
    When the weights have a manifest (``<weights>.json``), the manifest beside the export is updated:
    ``backends[format]`` names the export and ``backend_sha256[format]`` records its hash, so
    :meth:`SignatureDetector.from_manifest` can load it with ``backend=format``.

    Args:
        weights: the ``.pt`` file, or its manifest; ``None``: the bundled detector.
        format: ``"onnx"`` or ``"openvino"``.
        imgsz: input size of the export (the long side of a page at inference); ``None``: the manifest's ``imgsz``
            (else 640).
        dynamic: export with dynamic axes, so each page is letterboxed to its smallest stride-aligned rectangle
            (:mod:`sigpipe.detector.runtime`) as Ultralytics does for the ``.pt`` model, instead of the full
            ``imgsz`` square. Faster on cheque strips; on the bundled v3 model it found fewer synthetic signatures
            (recall 0.854 vs 0.904 on a 200-page batch), so shipped exports are static.
        out_dir: where to write; ``None``: beside the weights.

    Returns:
        Path of the exported file (ONNX) or folder (OpenVINO).

    Raises:
        SigpipeError: a package the export needs is not installed (named in the message).
        ModelError: the weights or their manifest are missing or do not match.
        InputError: unknown format, or not a ``.pt``.
    """
    if format not in FORMATS:
        raise InputError(f"unknown export format {format!r}; expected one of {list(FORMATS)}")
    missing = _missing(REQUIREMENTS[format])
    if missing:
        raise SigpipeError(
            f"{format} export needs the Python package(s) {', '.join(missing)}, which are not installed "
            f"(pip install {' '.join(missing)})"
        )
    src, manifest = resolve_model(weights)
    if src.suffix != ".pt":
        raise InputError(f"can only export a PyTorch .pt detector, got {src}")
    if imgsz is None:
        imgsz = int(manifest.get("imgsz", DEFAULT_IMGSZ)) if manifest else DEFAULT_IMGSZ
    out = Path(out_dir) if out_dir is not None else src.parent
    out.mkdir(parents=True, exist_ok=True)
    pt = out / src.name
    if pt.resolve() != src.resolve():
        shutil.copy2(src, pt)
    configure()
    YOLO = yolo_class()
    model = YOLO(str(pt), task="detect")
    kwargs: dict[str, object] = {"format": format, "imgsz": int(imgsz), "device": "cpu", "dynamic": dynamic, "batch": 1}
    if format == "onnx":
        kwargs["simplify"] = True
    try:
        exported = Path(model.export(**kwargs))
    except Exception as e:  # Ultralytics raises assorted errors from the converters
        raise ModelError(f"{format} export of {src} failed: {type(e).__name__}: {e}") from e
    log.info("exported %s -> %s", src, exported)
    if manifest is not None:
        data = dict(manifest.data)
        # the exports the manifest lists that are there beside it (in another folder: only the one just written)
        listed = {k: v for k, v in (data.get("backends") or {}).items() if (out / str(v)).exists()}
        backends = {**listed, format: exported.name}
        data["backends"] = backends
        data["backend_sha256"] = {**{k: v for k, v in (data.get("backend_sha256") or {}).items() if k in backends},
                                  format: model_sha256(exported)}
        data["export_imgsz"] = {**{k: v for k, v in (data.get("export_imgsz") or {}).items() if k in backends},
                                format: int(imgsz)}
        if data.get("default_backend") not in (*backends, "pt"):
            data["default_backend"] = format  # the shipped default's files are not in this folder
        (out / manifest.path.name).write_text(manifest_text(data, keep_mark=manifest.edited))
    return exported
