"""Numeric precision of training runs, shared by the verifier's and the detector's trainers.

``bf16`` runs the forward passes under ``torch.autocast`` in bfloat16 (convolutions and matrix products in bf16;
weights, optimiser state and the losses in f32). On an Intel Xeon with AMX, which computes bf16 natively, a training
step takes about half the time: one ``resnet-s`` verifier step on 96 inputs 347 ms against 158 ms, one YOLOv8n step
on 16 pages at 512 px 1.83 s against 0.97 s (2 threads; docs/models.md). Not measured on other CPUs.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

TRAINING_PRECISIONS = ("f32", "bf16")


def check_precision(precision: str) -> str:
    """``precision`` itself if it is one of :data:`TRAINING_PRECISIONS`.

    Raises:
        ValueError: any other value.
    """
    if precision not in TRAINING_PRECISIONS:
        raise ValueError(f"training precision must be one of {TRAINING_PRECISIONS}, got {precision!r}")
    return precision


def training_autocast(device: str, precision: str) -> contextlib.AbstractContextManager[object]:
    """The context a training forward pass runs in: bfloat16 autocast on ``device`` for ``bf16``, else nothing.

    Raises:
        ValueError: an unknown precision.
    """
    if check_precision(precision) == "f32":
        return contextlib.nullcontext()
    import torch  # here: the CLI imports this module for its choices, and `sigpipe run` never needs torch

    return torch.autocast(device_type="cuda" if str(device).startswith("cuda") else "cpu", dtype=torch.bfloat16)


def one_cycle(opt: torch.optim.Optimizer, max_lr: float, total_steps: int,
              pct_start: float) -> torch.optim.lr_scheduler.OneCycleLR:
    """PyTorch's one-cycle learning-rate schedule (warm-up for ``pct_start`` of the steps, then annealing), with a
    warm-up that never lasts exactly one step: PyTorch divides by its length less one, so 10 steps at 0.1 (a
    user's "2 epochs of 5 steps" smoke test) failed with ZeroDivisionError. Such a run warms up for two steps."""
    import torch

    if total_steps >= 3 and float(pct_start * total_steps) - 1 == 0:
        pct_start = 2 / total_steps
    return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=total_steps, pct_start=pct_start)
