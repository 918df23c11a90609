"""Export the verifier to ONNX for inference with ONNX Runtime (3-4x faster than eager PyTorch on a small CPU).

The export sits beside the weights (``verifier.onnx`` for ``verifier.pt``) and is recorded in the manifest like the
detector's: ``backends: {"onnx": <file>}``, ``backend_sha256`` and ``default_backend``. The ``.pt`` stays the
model's identity (its sha256 names the model in reports); the export is a derived, hash-checked copy.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import torch

from sigpipe.errors import ModelError
from sigpipe.weights import Manifest, manifest_text, sha256_file

log = logging.getLogger(__name__)

OPSET = 17


def export_onnx(manifest_path: str | Path, make_default: bool = True, atol: float = 1e-4) -> Path:
    """Export the verifier of ``manifest_path`` to ONNX and record it in that manifest.

    The exported graph has BatchNorm folded into the convolutions and a dynamic batch axis. It is checked against
    the PyTorch model on random inputs before the manifest is touched. A second stage (pair network) is exported
    beside it (``verifier-pair.onnx``) and recorded in ``second_stage``.

    Returns:
        Path of the ``.onnx`` file.

    Raises:
        ModelError: the weights do not match the manifest, or the export disagrees with PyTorch.
    """
    import onnxruntime as ort

    from sigpipe.verifier.model import fuse_for_inference
    from sigpipe.verifier.verifier import Verifier

    m = Manifest.load(manifest_path)
    v = Verifier(m, backend="pt")
    net = fuse_for_inference(v.torch_net)
    h, w = v.preprocess_cfg.height, v.preprocess_cfg.width
    out = m.weights_path.with_suffix(".onnx")
    x = torch.rand(2, 1, h, w, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings():  # the TorchScript-based exporter announces its deprecation
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(net, (x,), str(out), input_names=["image"], output_names=["embedding"],
                          dynamic_axes={"image": {0: "batch"}, "embedding": {0: "batch"}}, opset_version=OPSET,
                          dynamo=False)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    xs = torch.rand(5, 1, h, w, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = v.torch_net(xs).numpy()
    got = sess.run(None, {"image": xs.numpy()})[0]
    err = float(np.abs(got - want).max())
    if err > atol:
        out.unlink(missing_ok=True)
        raise ModelError(f"ONNX export of {m.weights_path} differs from PyTorch by {err:.2e} (> {atol})")
    data = dict(m.data)
    if v.pair is not None:
        pair_out = _export_pair(v, out.with_name(out.stem + "-pair.onnx"), atol)
        data["second_stage"] = {**data["second_stage"], "onnx": pair_out.name, "onnx_sha256": sha256_file(pair_out)}
    data["backends"] = {**(data.get("backends") or {}), "onnx": out.name}
    data["backend_sha256"] = {**(data.get("backend_sha256") or {}), "onnx": sha256_file(out)}
    if make_default:
        data["default_backend"] = "onnx"
    m.path.write_text(manifest_text(data, keep_mark=m.edited))
    log.info("exported %s -> %s (max difference from PyTorch %.1e)", m.weights_path, out, err)
    return out


def _export_pair(v, out: Path, atol: float) -> Path:  # noqa: ANN001 - a Verifier with a PyTorch second stage
    """Export the verifier's pair network to ``out`` (inputs ``reference`` and ``query``, output ``logit``)."""
    import onnxruntime as ort

    from sigpipe.verifier.model import fuse_for_inference

    assert v.pair is not None and v.pair.net is not None
    net = fuse_for_inference(v.pair.net)
    h, w = v.preprocess_cfg.height, v.preprocess_cfg.width
    g = torch.Generator().manual_seed(2)
    x, y = torch.rand(2, 1, h, w, generator=g), torch.rand(2, 1, h, w, generator=g)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(net, (x, y), str(out), input_names=["reference", "query"], output_names=["logit"],
                          dynamic_axes={"reference": {0: "batch"}, "query": {0: "batch"}, "logit": {0: "batch"}},
                          opset_version=OPSET, dynamo=False)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    xs, ys = torch.rand(5, 1, h, w, generator=g), torch.rand(5, 1, h, w, generator=g)
    with torch.no_grad():
        want = v.pair.net(xs, ys).numpy()
    err = float(np.abs(sess.run(None, {"reference": xs.numpy(), "query": ys.numpy()})[0] - want).max())
    if err > atol * 10:  # logits, not unit vectors: a looser absolute tolerance
        out.unlink(missing_ok=True)
        raise ModelError(f"ONNX export of the pair network differs from PyTorch by {err:.2e} (> {atol * 10})")
    return out
