"""The verifier at inference time: a hash-checked model, its preprocessing and its decision rule, from one manifest."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sigpipe._onnx import BF16_SUFFIX, PRECISIONS, resolve_precision
from sigpipe._ultralytics import default_threads
from sigpipe.errors import ModelError, model_load_error
from sigpipe.verifier.copies import copied_specimen
from sigpipe.verifier.decide import DecisionRule, aggregate, distances, fuse, reference_spread
from sigpipe.verifier.pairnet import PairScorer
from sigpipe.verifier.preprocess import PreprocessConfig, preprocess_batch, preprocess_marked
from sigpipe.weights import Manifest, bundled_manifest

if TYPE_CHECKING:
    from sigpipe.verifier.model import Embedder

BACKENDS = ("pt", "onnx")


@dataclass(frozen=True)
class Decision:
    """The comparison of one questioned signature with one person's references.

    Attributes:
        distance: aggregated distance (lower = more similar); with a second stage, the Siamese distance plus the
            pair network's term (``decide.fuse``).
        threshold: the threshold applied for this person and number of references.
        score: calibrated probability that the signature is genuine, in [0, 1].
        genuine: ``distance <= threshold``.
        references: K, the number of references compared with.
        pair_logit: the second stage's mean logit over the references (None without a second stage).
        nearest: index of the reference closest to the signature by the Siamese distance (the one the minimum
            distance is measured to), for showing a reviewer what it was compared with.
        spread: the mean distance among the references, which raises the threshold (``DecisionRule.threshold``).
        siamese: the Siamese distance alone (``distance`` less the second stage's term).
    """

    distance: float
    threshold: float
    score: float
    genuine: bool
    references: int
    pair_logit: float | None = None
    nearest: int | None = None
    spread: float = 0.0
    siamese: float | None = None

    def to_dict(self) -> dict[str, float | bool | int | None]:
        return {"distance": self.distance, "threshold": self.threshold, "score": self.score,
                "genuine": self.genuine, "references": self.references, "pair_logit": self.pair_logit,
                "nearest": self.nearest, "spread": self.spread, "siamese_distance": self.siamese}


class Verifier:
    """Embeds signature images and compares them with references.

    Build with :meth:`from_manifest`; the weights' sha256 is checked and the state dict loaded strictly with
    ``weights_only=True``. Preprocessing and the decision rule come from the same manifest as the weights, and so
    does the optional second stage (``second_stage``: a pair network, :mod:`sigpipe.verifier.pairnet`), whose
    decisions need the preprocessed images beside the embeddings (:meth:`decide`).

    Args:
        manifest: the model's manifest.
        device: ``"cpu"`` or ``"cuda"`` (the ONNX backend runs on the CPU only).
        threads: CPU threads for inference (torch's setting is left alone when None; ONNX Runtime then uses
            :func:`~sigpipe._ultralytics.default_threads`).
        backend: ``"pt"`` (PyTorch) or ``"onnx"`` (ONNX Runtime, an export recorded in the manifest);
            ``None``: the manifest's ``default_backend`` on the CPU, else ``"pt"``.
        precision: ``"f32"``, or ``"bf16"`` with the ONNX backend: its networks then run on OpenVINO in bfloat16
            (:mod:`sigpipe._onnx`), and the ident gets ``" bf16"``; ``"auto"``: bf16 with the ONNX backend on a CPU
            that computes it natively, else f32.

    Raises:
        ModelError: an unusable manifest or model file, or an unknown backend.
        ValueError: bf16 without the ONNX backend.
    """

    def __init__(self, manifest: Manifest, device: str = "cpu", threads: int | None = None,
                 backend: str | None = None, precision: str = "f32") -> None:
        path = manifest.verify()
        if "preprocess" not in manifest.data and "imgsz" in manifest.data:  # given where a verifier's goes: say so
            raise ModelError(f"{manifest.path} is a detector's manifest ({manifest.ident}), not a verifier's")
        try:
            self.preprocess_cfg = PreprocessConfig.from_dict(manifest["preprocess"])
            self.rule = DecisionRule.from_dict(manifest["decision"])
            self._dim = int(manifest["embedding_dim"])
        except (KeyError, ValueError, TypeError) as e:
            raise ModelError(f"verifier manifest {manifest.path} is incomplete or inconsistent: {e}") from e
        self.device = device
        self.manifest = manifest
        if backend is None:
            backend = manifest.get("default_backend", "pt") if device == "cpu" else "pt"
        if backend not in BACKENDS:
            raise ModelError(f"unknown verifier backend {backend!r}; expected one of {list(BACKENDS)}")
        if backend == "onnx" and device != "cpu":
            raise ModelError("the ONNX verifier backend runs on the CPU only; use backend='pt' on a GPU")
        precision = resolve_precision(precision, exported=backend == "onnx")
        if precision not in PRECISIONS or precision == "bf16" and backend != "onnx":
            raise ValueError(f"precision must be f32, or bf16 with the ONNX backend; got {precision!r} with {backend}")
        self.backend = backend
        self.precision = precision
        # Only the PyTorch backend imports torch: the ONNX path (sigpipe run's default) starts ~1 s faster without it.
        self.net: Embedder | None = self._torch_net(path, threads) if backend == "pt" else None
        self._session = self._onnx_session(threads or default_threads(), precision) if backend == "onnx" else None
        self.pair: PairScorer | None = None
        if self.rule.pair_weight > 0 and not manifest.get("second_stage"):
            raise ModelError(f"verifier manifest {manifest.path} was calibrated with a second stage (decision."
                             "pair_weight) but names none: its thresholds do not hold without it")
        if manifest.get("second_stage"):
            if self.rule.pair_weight <= 0:
                raise ModelError(f"verifier manifest {manifest.path} has a second stage but no decision.pair_weight: "
                                 "calibrate it with 'sigpipe verifier calibrate --pair'")
            self.pair = PairScorer(manifest, backend, device, threads or default_threads(), precision)

    def _torch_net(self, path: Path, threads: int | None) -> Embedder:
        import torch

        from sigpipe.verifier.model import build_network

        if threads:
            torch.set_num_threads(threads)
        m = self.manifest
        try:
            net = build_network(m.data)
        except ValueError as e:
            raise ModelError(f"verifier manifest {m.path} is incomplete or inconsistent: {e}") from e
        if getattr(net, "dim", None) != self._dim:
            raise ModelError(f"verifier manifest {m.path} says embedding_dim {self._dim}, its network gives "
                             f"{getattr(net, 'dim', None)}")
        try:
            state = torch.load(path, map_location=self.device, weights_only=True)
            net.load_state_dict(state, strict=True)
        except Exception as e:  # noqa: BLE001 - any unpickling/shape error means the file is unusable
            raise ModelError(f"cannot load verifier weights {path}: {e}") from e
        return net.to(self.device).eval()

    def _onnx_session(self, threads: int, precision: str):  # noqa: ANN202 - onnxruntime is imported lazily
        path = self.manifest.export_path("onnx", "sigpipe verifier export", label="ONNX")
        from sigpipe._onnx import cpu_session

        try:
            return cpu_session(path, threads, precision)
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise model_load_error(f"cannot load ONNX verifier {path}", e) from e

    @classmethod
    def from_manifest(cls, path: str | Path | None = None, device: str = "cpu", threads: int | None = None,
                      backend: str | None = None, precision: str = "f32") -> Verifier:
        """Load the verifier described by the manifest at ``path`` (default: the bundled one)."""
        m = bundled_manifest("verifier") if path is None else Manifest.load(path)
        return cls(m, device=device, threads=threads, backend=backend, precision=precision)

    @property
    def ident(self) -> str:
        return self.manifest.ident + (BF16_SUFFIX if self.precision == "bf16" else "")

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def torch_net(self) -> Embedder:
        """The PyTorch network (for training, calibration and export).

        Raises:
            ModelError: this verifier runs ONNX Runtime (``backend="onnx"``).
        """
        if self.net is None:
            raise ModelError("this verifier runs ONNX Runtime; load it with backend='pt' for its PyTorch network")
        return self.net

    def prepare(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Preprocess raw crops: ``(N, 1, H, W)`` float32 in [0, 1]."""
        return preprocess_batch(list(images), self.preprocess_cfg)

    def prepare_marked(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Preprocess one questioned crop: ``(1, 1, H, W)`` as :meth:`prepare` gives, and where printed lines were
        taken out of its strokes (``(H, W)`` bool, or None: ``preprocess.preprocess_marked``) for :meth:`copy_of`."""
        x, gaps = preprocess_marked(image, self.preprocess_cfg)
        return x[None, None], gaps

    def embed_prepared(self, x: np.ndarray, batch: int = 128) -> np.ndarray:
        """Embed preprocessed inputs ``(N, 1, H, W)`` float32; returns ``(N, D)`` float32 unit vectors."""
        if self._session is not None:
            out = [self._session.run(None, {"image": np.ascontiguousarray(x[i : i + batch], np.float32)})[0]
                   for i in range(0, len(x), batch)]
        else:
            import torch

            with torch.no_grad():
                out = [self.torch_net(torch.from_numpy(x[i : i + batch]).to(self.device)).cpu().numpy()
                       for i in range(0, len(x), batch)]
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def embed(self, images: Sequence[np.ndarray], batch: int = 128) -> np.ndarray:
        """Embed raw signature crops (grayscale or BGR uint8, dark ink on light paper, any size); ``(N, D)``."""
        return self.embed_prepared(self.prepare(images), batch)

    def copy_of(self, query_image: np.ndarray, ref_images: np.ndarray | None, gaps: np.ndarray | None = None
                ) -> int | None:
        """The reference a signature judged genuine is a copy of (``sigpipe.verifier.copies``, at the manifest's
        ``decision.copy_similarity``; preprocessed images as :meth:`decide` takes them, and the query's ``gaps``
        from :meth:`prepare_marked`), or None."""
        return copied_specimen(query_image, ref_images, self.rule.copy_similarity, gaps)

    @property
    def needs_images(self) -> bool:
        """True when :meth:`decide` needs the preprocessed images (the model has a second stage)."""
        return self.pair is not None

    def decide(self, query: np.ndarray, refs: np.ndarray, query_image: np.ndarray | None = None,
               ref_images: np.ndarray | None = None, second_stage: bool = True) -> Decision:
        """Compare one embedding ``(D,)`` with a person's reference embeddings ``(K, D)``.

        Args:
            query_image, ref_images: the preprocessed query ``(1, H, W)`` and references ``(K, H, W)`` (float in
                [0, 1] as :meth:`prepare` gives, or uint8), aligned with the embeddings; required when the model
                has a second stage (:attr:`needs_images`), ignored otherwise.
            second_stage: False skips the second stage: the Siamese distance against thresholds calibrated for
                the fused one, only good for ranking people cheaply (``Gallery.best_match``).

        Raises:
            ValueError: no references, or a second stage without the images it needs.
        """
        refs = np.atleast_2d(refs)
        if refs.shape[0] == 0:
            raise ValueError("no reference embeddings to compare with")
        k = refs.shape[0]
        spread = reference_spread(refs)
        dists = distances(query, refs)
        d = siamese = aggregate(dists, self.rule.aggregation, spread)
        logit = None
        if self.pair is not None and second_stage:
            if query_image is None or ref_images is None or len(ref_images) != k:
                raise ValueError(f"{self.ident} has a second stage: decide() needs the query's and the {k} "
                                 "references' preprocessed images")
            logit = self.pair.mean_logit(ref_images, query_image)
            d = float(fuse(d, logit, self.rule.pair_weight))
        thr = self.rule.threshold(k, spread)
        return Decision(d, thr, self.rule.score(d, k, spread), bool(d <= thr), k, logit, int(np.argmin(dists)),
                        float(spread), float(siamese))
