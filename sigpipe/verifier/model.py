"""Embedding networks: shared-weight CNNs producing L2-normalised signature embeddings.

Two architectures are registered: ``resnet-s``, a compact residual net, and ``signet-s``, a SigNet-like plain CNN
(Dey et al. 2017) scaled to the same input. The Siamese/triplet view is simply the same network applied to anchor,
positive and negative (:class:`SiameseTriplet`). :class:`EnsembleNet` joins trained networks into one embedding;
:func:`build_network` builds whatever a manifest describes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual shortcut (1x1 projection when the shape changes)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1: nn.Module = nn.BatchNorm2d(cout)  # nn.Identity once folded (fuse_for_inference)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2: nn.Module = nn.BatchNorm2d(cout)
        self.short: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.short(x), inplace=True)


class GeM(nn.Module):
    """Generalised-mean pooling (p=3), a learnable middle ground between average and max pooling."""

    def __init__(self, p: float = 3.0) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.tensor(p))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(min=1e-6).pow(self.p).mean(dim=(2, 3)).pow(1.0 / self.p)


class EmbeddingNet(nn.Module):
    """Backbone + pooling + linear projection + L2 normalisation.

    Input: ``(N, 1, H, W)`` float32 in [0, 1] (preprocessed signatures). Output: ``(N, dim)`` float32, unit norm.
    """

    def __init__(self, backbone: nn.Module, channels: int, dim: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.pool = GeM()
        self.drop = nn.Dropout(0.1)
        self.fc = nn.Linear(channels, dim)
        self.dim: int = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.pool(self.backbone(x))
        return F.normalize(self.fc(self.drop(z)), dim=1)


def resnet_s(dim: int = 128, width: int = 32) -> EmbeddingNet:
    """Compact residual net: stem (5x5, stride 2) and four residual stages, each halving the resolution."""
    w = width
    backbone = nn.Sequential(
        nn.Conv2d(1, w, 5, 2, 2, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
        BasicBlock(w, 2 * w, 2),
        BasicBlock(2 * w, 3 * w, 2),
        BasicBlock(3 * w, 4 * w, 2),
        BasicBlock(4 * w, 6 * w, 1),
    )
    return EmbeddingNet(backbone, 6 * w, dim)


def signet_s(dim: int = 128, width: int = 32) -> EmbeddingNet:
    """SigNet-like plain CNN (large first kernel, conv-BN-ReLU-maxpool stages), scaled to the small input."""
    w = width

    def cbr(cin: int, cout: int, k: int, s: int = 1) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, k, s, k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    backbone = nn.Sequential(
        *cbr(1, w, 7, 2), nn.MaxPool2d(2),
        *cbr(w, 3 * w, 5), nn.MaxPool2d(2),
        *cbr(3 * w, 4 * w, 3), *cbr(4 * w, 4 * w, 3), nn.MaxPool2d(2),
        *cbr(4 * w, 6 * w, 3),
    )
    return EmbeddingNet(backbone, 6 * w, dim)


ARCHITECTURES: dict[str, Callable[..., EmbeddingNet]] = {"resnet-s": resnet_s, "signet-s": signet_s}
ENSEMBLE = "ensemble"


def build_model(architecture: str, dim: int = 128, width: int = 32) -> EmbeddingNet:
    """Build a registered architecture by name."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown verifier architecture {architecture!r}; known: {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[architecture](dim=dim, width=width)


class EnsembleNet(nn.Module):
    """Several embedding networks over the same input, their unit embeddings concatenated and scaled by
    ``1/sqrt(n)``: again a unit vector, whose squared Euclidean distance to another is the mean of the members'
    squared distances. Independently trained members err on different signatures, so the mean distance separates
    genuine from forged better than any one of them.

    Input: ``(N, 1, H, W)`` float32 in [0, 1]. Output: ``(N, sum of the members' dims)`` float32, unit norm.
    """

    def __init__(self, members: Sequence[EmbeddingNet | EnsembleNet]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)
        self.dim: int = sum(m.dim for m in members)
        self.scale = 1.0 / math.sqrt(len(members))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([m(x) for m in self.members], dim=1) * self.scale


def build_network(spec: Mapping[str, Any]) -> Embedder:
    """The network a verifier manifest describes.

    Args:
        spec: ``{"architecture": <registered name>, "embedding_dim": D, "width": W}``, or
            ``{"architecture": "ensemble", "members": [spec, ...]}``.

    Raises:
        ValueError: an unknown architecture or an incomplete spec.
    """
    try:
        if spec["architecture"] == ENSEMBLE:
            return EnsembleNet([build_network(m) for m in spec["members"]])
        return build_model(spec["architecture"], int(spec["embedding_dim"]), int(spec.get("width", 32)))
    except (KeyError, TypeError) as e:
        raise ValueError(f"incomplete network spec ({type(e).__name__}: {e})") from e


Embedder = EmbeddingNet | EnsembleNet  # what build_network builds: ``(N, 1, H, W)`` -> ``(N, dim)`` unit vectors


class PairNet(nn.Module):
    """The verifier's second stage (``sigpipe.verifier.pairnet``): a reference and a questioned signature stacked as
    the 2 channels of one input, residual stages, GeM pooling, one logit (high = genuine signature of the
    reference's writer).

    Input: two ``(N, 1, H, W)`` float32 batches in [0, 1]. Output: ``(N,)`` float32 logits.
    """

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        w = width
        self.body = nn.Sequential(
            nn.Conv2d(2, w, 5, 2, 2, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
            BasicBlock(w, 2 * w, 2), BasicBlock(2 * w, 2 * w, 1),
            BasicBlock(2 * w, 3 * w, 2),
            BasicBlock(3 * w, 4 * w, 2),
            BasicBlock(4 * w, 6 * w, 1),
        )
        self.pool = GeM()
        self.drop = nn.Dropout(0.2)
        self.fc = nn.Linear(6 * w, 1)

    def forward(self, ref: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(self.pool(self.body(torch.cat([ref, query], 1))))).squeeze(1)


def training_memory_format(device: str, width: int) -> torch.memory_format:
    """The memory format to train a network of this ``width`` in.

    NHWC makes a training step ~25% faster on the CPU (oneDNN), but for narrow networks oneDNN's backward pass for
    the convolution weights (``mkldnn_convolution_backward_weights``) corrupts the heap: torch 2.14.1, seen as a
    segfault, "double free" or "corrupted size" for widths 4 and 8, not 12 and up, on AMD EPYC with AVX-512 (gone with
    ``ONEDNN_MAX_CPU_ISA=AVX2``); so narrow networks, such as the tests', stay NCHW.
    """
    return torch.channels_last if device == "cpu" and width >= 16 else torch.contiguous_format


class SiameseTriplet(nn.Module):
    """The Siamese view: one shared network over anchor, positive and negative batches."""

    def __init__(self, net: EmbeddingNet) -> None:
        super().__init__()
        self.net = net

    def forward(
        self, anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n = anchor.shape[0]
        z = self.net(torch.cat([anchor, positive, negative]))
        return z[:n], z[n : 2 * n], z[2 * n :]


def fuse_for_inference(net: nn.Module) -> nn.Module:
    """A copy of ``net`` in eval mode with every BatchNorm folded into the convolution before it (same outputs up
    to float rounding; fewer operators for exported graphs)."""
    import copy

    from torch.nn.utils.fusion import fuse_conv_bn_eval

    net = copy.deepcopy(net).eval()
    for mod in net.modules():
        if isinstance(mod, BasicBlock):
            if isinstance(mod.bn1, nn.BatchNorm2d) and isinstance(mod.bn2, nn.BatchNorm2d):
                mod.conv1, mod.bn1 = fuse_conv_bn_eval(mod.conv1, mod.bn1), nn.Identity()
                mod.conv2, mod.bn2 = fuse_conv_bn_eval(mod.conv2, mod.bn2), nn.Identity()
        elif isinstance(mod, nn.Sequential):
            for i in range(len(mod) - 1):
                conv, bn = mod[i], mod[i + 1]
                if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                    mod[i], mod[i + 1] = fuse_conv_bn_eval(conv, bn), nn.Identity()
    return net
