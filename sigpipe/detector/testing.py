"""A stand-in detector for tests: built in about a second, offline, with no training.

A freshly initialised YOLOv8 predicts the same box everywhere (its batch-norm statistics are the identity and its
box-regression bias spreads every box over the whole page). :func:`make_untrained_detector` makes one whose outputs
depend on the page, so that tests can exercise box mapping, thresholds, NMS and exports:

- batch-norm statistics are re-estimated on a few synthetic pages, so features vary with the input;
- the class logits are damped, so confidences spread over ``(0, 1)`` instead of saturating;
- box regression is set to small, stride-sized boxes around each anchor point.

The boxes mean nothing (the model has never seen a signature); only their geometry is meaningful.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from sigpipe._ultralytics import configure, yolo_class
from sigpipe.weights import write_manifest


def make_untrained_detector(
    path: str | Path,
    *,
    seed: int = 0,
    arch: str = "yolov8n.yaml",
    manifest: dict[str, Any] | None = None,
) -> Path:
    """Write an untrained single-class YOLOv8 checkpoint (Ultralytics format) and, optionally, its manifest.

    Args:
        path: where to write the ``.pt`` file (its folder is created).
        seed: torch seed for the initial weights and the calibration pages (same seed: same file contents,
            apart from the save date).
        arch: Ultralytics architecture yaml.
        manifest: when given, also write ``<path>.json`` with these fields (plus ``file`` and ``sha256``);
            it should hold ``name``, ``tag``, ``architecture``, ``imgsz``, ``conf``, ``iou``.

    Returns:
        The weights path.
    """
    configure()
    YOLO = yolo_class()
    from ultralytics.nn.tasks import DetectionModel  # only after configure(): offline, quiet

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = DetectionModel(arch, nc=1, verbose=False)
    model.names = {0: "signature"}
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None  # cumulative average over the calibration batches
            m.reset_running_stats()
    gen = torch.Generator().manual_seed(seed)

    def pages(n: int = 4, size: int = 160) -> torch.Tensor:
        """Letterboxed document-like pages, 0-1 RGB like the predictor's input: white, a few dark bars, grey pad."""
        x = torch.ones(n, 1, size, size)
        r = (torch.rand(n, 13, generator=gen) * size).long()
        for i in range(n):
            pad = int(r[i, 0]) // 3
            if i % 2:
                x[i, :, :pad] = 114 / 255
            else:
                x[i, :, :, size - pad :] = 114 / 255
            for k in range(1, 12, 4):  # up to three dark bars
                x0, y0 = int(r[i, k]), int(r[i, k + 1])
                x[i, :, y0 : y0 + 4 + int(r[i, k + 2]) // 8, x0 : x0 + 8 + int(r[i, k + 3]) // 2] = 0.1
        return x.expand(n, 3, size, size).contiguous()

    model.train()
    with torch.no_grad():
        for _ in range(4):
            model(pages())
    model.eval()
    layers: Any = model.model
    head = layers[-1]  # Ultralytics' Detect head (cv2: box branches, cv3: class branches)
    reg_max = int(head.reg_max)
    logits: list[torch.Tensor] = []
    hooks = [seq[-1].register_forward_hook(lambda _m, _i, out: logits.append(out)) for seq in head.cv3]
    with torch.no_grad():
        model(pages())
    for h in hooks:
        h.remove()
    with torch.no_grad():
        for seq, out in zip(head.cv3, logits, strict=True):  # class logits -> mean -4, std 1.5 on such pages
            conv = seq[-1]
            scale = 1.5 / float(out.std().clamp_min(1e-6))
            feature_mean = float(out.mean()) - conv.bias  # mean of W x, per class
            conv.weight.mul_(scale)
            conv.bias.copy_(-4.0 - scale * feature_mean)
        for seq in head.cv2:  # box distances: mostly the bias, decaying over the DFL bins -> ~0.6 stride per side
            seq[-1].weight.mul_(0.002)
            seq[-1].bias.copy_((-1.0 * torch.arange(float(reg_max))).repeat(4))
    wrapper = YOLO(arch, task="detect")
    wrapper.model = model
    wrapper.save(str(path))
    if manifest is not None:
        write_manifest(path, manifest)
    return path
