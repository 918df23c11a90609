"""The verifier's second stage: a pair classifier that looks at a reference and a questioned signature together.

The Siamese network embeds each signature alone, so it can only compare what survives in 256 numbers. The pair
network stacks the two preprocessed images as the 2 channels of one input (early fusion, as in 2-channel patch
comparison networks) and answers "same writer, genuine?" with a logit, seeing stroke against stroke. Trained on the
Siamese model's training writers (``sigpipe verifier train-pair``), it errs on other signatures than the Siamese
distance does, and the two together separate genuine from skilled forgeries better than either (README, "Verifier").

At decision time (``decide.fuse``) the pair logits of a query against each of a person's K references are averaged
(each pair scored as (reference, query), or in both orders averaged: ``second_stage.orders``) and
``pair_weight * softplus(-mean logit)`` -- the pair network's negative log-likelihood of "genuine" -- is added to
the Siamese distance. The weights file, its sha256 and its ONNX export are recorded in the verifier manifest under
``second_stage``; the weight and thresholds in its ``decision``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sigpipe.errors import ModelError, model_load_error
from sigpipe.verifier.protocol import PairTerm
from sigpipe.weights import Manifest, sha256_file

ARCHITECTURE = "pairnet-2ch"
PAIR_BATCH = 256  # pairs per forward pass


class PairScorer:
    """The pair network of a verifier manifest's ``second_stage``, hash-checked, on PyTorch or ONNX Runtime.

    Args:
        manifest: the verifier manifest holding ``second_stage`` (``file``, ``sha256``, ``width``, optionally
            ``onnx`` and ``onnx_sha256``).
        backend: ``"pt"`` or ``"onnx"``.
        device: torch device for ``"pt"``.
        threads: ONNX Runtime intra-op threads.
        precision: ``"f32"``, or ``"bf16"`` (ONNX backend: OpenVINO in bfloat16, :mod:`sigpipe._onnx`).

    Raises:
        ModelError: no second stage, a missing file, a sha256 mismatch or an unloadable file.
    """

    def __init__(self, manifest: Manifest, backend: str = "pt", device: str = "cpu", threads: int = 1,
                 precision: str = "f32") -> None:
        spec: dict[str, Any] | None = manifest.get("second_stage")
        if not spec:
            raise ModelError(f"{manifest.ident} has no second stage")
        if spec.get("architecture") != ARCHITECTURE:
            raise ModelError(f"unknown second-stage architecture {spec.get('architecture')!r} in {manifest.path}")
        self.spec = spec
        self.orders = int(spec.get("orders", 2))
        if self.orders not in (1, 2):
            raise ModelError(f"second_stage.orders must be 1 or 2, got {self.orders} in {manifest.path}")
        self.backend = backend
        self.device = device
        self.net = None
        self._session = None
        if backend == "onnx":
            if not spec.get("onnx"):
                raise ModelError(f"{manifest.ident} has no ONNX export of its second stage; create one with "
                                 "'sigpipe verifier export'")
            path = self._checked(manifest, spec["onnx"], spec.get("onnx_sha256"))
            from sigpipe._onnx import cpu_session

            try:
                self._session = cpu_session(path, threads, precision)
            except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
                raise model_load_error(f"cannot load ONNX pair network {path}", e) from e
        else:
            import torch  # lazily, with the network: the ONNX path runs without torch

            from sigpipe.verifier.model import PairNet

            path = self._checked(manifest, spec["file"], spec.get("sha256"))
            net = PairNet(int(spec.get("width", 32)))
            try:
                net.load_state_dict(torch.load(path, map_location=device, weights_only=True), strict=True)
            except Exception as e:  # noqa: BLE001 - any unpickling/shape error means the file is unusable
                raise ModelError(f"cannot load pair network weights {path}: {e}") from e
            self.net = net.to(device).eval()

    @staticmethod
    def _checked(manifest: Manifest, name: str, expected: str | None) -> Path:
        path = manifest.path.parent / name
        if not path.is_file():
            raise ModelError(f"second-stage file of {manifest.name}.{manifest.tag} is missing: {path}")
        if expected is None or sha256_file(path) != expected:
            raise ModelError(f"second-stage file {path} does not match its manifest sha256: refusing to load a "
                             "modified or corrupt model")
        return path

    def logits(self, refs: np.ndarray, queries: np.ndarray) -> np.ndarray:
        """Logits of ``(refs[i], queries[i])`` pairs; with ``orders`` 2 each pair is scored in both orders (the
        network was trained on pairs swapped at random) and the two logits averaged.

        Args:
            refs, queries: ``(N, 1, H, W)`` float32 preprocessed signatures in [0, 1] (or uint8 in [0, 255]).

        Returns:
            ``(N,)`` float: high = the query looks like a genuine signature of the reference's writer.
        """
        refs, queries = _as_float(refs), _as_float(queries)
        if len(refs) != len(queries):
            raise ValueError(f"{len(refs)} references for {len(queries)} queries")
        out = []
        for i in range(0, len(refs), PAIR_BATCH):
            a, b = refs[i : i + PAIR_BATCH], queries[i : i + PAIR_BATCH]
            if self.orders == 1:
                out.append(self._forward(a, b))
                continue
            # one pass over both orders: (a, b) then (b, a)
            z = self._forward(np.concatenate([a, b]), np.concatenate([b, a]))
            out.append((z[: len(a)] + z[len(a) :]) / 2)
        return np.concatenate(out).astype(np.float64) if out else np.zeros(0)

    def _forward(self, ref: np.ndarray, query: np.ndarray) -> np.ndarray:
        if self._session is not None:
            return self._session.run(None, {"reference": ref, "query": query})[0]
        import torch

        assert self.net is not None
        with torch.no_grad():
            return self.net(torch.from_numpy(ref).to(self.device), torch.from_numpy(query).to(self.device)
                            ).float().cpu().numpy()

    def mean_logit(self, refs: np.ndarray, query: np.ndarray) -> float:
        """Mean logit of one query ``(1, H, W)`` or ``(1, 1, H, W)`` against each of ``refs`` ``(K, 1, H, W)``."""
        refs = _as_float(refs)
        q = _as_float(query).reshape(1, *refs.shape[1:])
        return float(self.logits(refs, np.repeat(q, len(refs), 0)).mean())


def _as_float(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / 255.0
    if x.ndim == 3:
        x = x[:, None]
    return np.ascontiguousarray(x, np.float32)


def protocol_pairs(scorer: PairScorer, images: np.ndarray, query_images: np.ndarray | None = None) -> PairTerm:
    """A :data:`PairTerm` over preprocessed arrays for the evaluation protocol (``protocol.writer_distances``).

    Args:
        images: ``(N, H, W)`` uint8 (or ``(N, 1, H, W)`` float) signatures the references are taken from.
        query_images: the same signatures as queries are seen (e.g. document crops), aligned with ``images``;
            default ``images``.

    Pair logits are memoised, so asking for K=5 after K=1 only scores the new pairs.
    """
    queries = images if query_images is None else query_images
    memo: dict[tuple[int, int], float] = {}

    def term(ref_idx: np.ndarray, query_idx: np.ndarray) -> np.ndarray:
        pairs = [(int(r), int(q)) for q in query_idx for r in ref_idx]
        todo = sorted({p for p in pairs if p not in memo})
        if todo:
            r = np.array([p[0] for p in todo])
            q = np.array([p[1] for p in todo])
            for p, z in zip(todo, scorer.logits(images[r], queries[q]), strict=True):
                memo[p] = float(z)
        z = np.array([memo[p] for p in pairs]).reshape(len(query_idx), len(ref_idx))
        return z.mean(1) if z.size else np.zeros(len(query_idx))

    return term
