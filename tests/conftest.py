"""Fixtures shared by the test packages."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def conv_dtypes(monkeypatch: pytest.MonkeyPatch) -> list[torch.dtype]:
    """The dtype of every ``nn.Conv2d`` output computed in training mode with gradients (a training step) while
    the test runs."""
    seen: list[torch.dtype] = []
    forward = torch.nn.Conv2d.forward

    def spy(self: torch.nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
        out = forward(self, x)
        if torch.is_grad_enabled() and self.training:
            seen.append(out.dtype)
        return out

    monkeypatch.setattr(torch.nn.Conv2d, "forward", spy)
    return seen
