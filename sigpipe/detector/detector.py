"""Signature detection on page images: a thin, typed wrapper over an Ultralytics YOLOv8 model.

One :class:`SignatureDetector` runs a PyTorch (``.pt``), ONNX (``.onnx``) or OpenVINO (``*_openvino_model/``) export
of the same detector. Its thresholds (input size, confidence, NMS IoU, max detections) come from the model's manifest
so the settings the figures were measured with are the settings used. Boxes are returned in pixels of the page image
that was passed in, whatever its size or aspect ratio; ``tests/detector`` checks that mapping independently.

A ``.pt`` model runs through Ultralytics ``predict`` (which letterboxes and maps the boxes back). The exports run
through :mod:`sigpipe.detector.runtime`: the same letterbox, NMS and mapping in numpy, without importing torch or
Ultralytics, which is the production path (``sigpipe run`` with the bundled OpenVINO model).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sigpipe._onnx import BF16_SUFFIX, PRECISIONS, resolve_precision
from sigpipe._ultralytics import default_threads
from sigpipe.detector import runtime
from sigpipe.errors import InputError, ModelError, model_load_error
from sigpipe.weights import Manifest, bundled_manifest, sha256_path

BACKENDS = ("pt", "onnx", "openvino")

# Defaults for a raw weights file without a manifest (Ultralytics' own predict defaults, except max_det).
DEFAULT_IMGSZ = 640
DEFAULT_CONF = 0.25
DEFAULT_IOU = 0.7
DEFAULT_MAX_DET = 100
# With test-time augmentation each view's boxes down to this confidence go into the fusion: a box fused from two
# views needs both views' confidences, even the one below the threshold.
TTA_CANDIDATE_CONF = 0.01
TTA_SUFFIX = " +flip"  # appended to the ident: reports of a run with and without TTA are told apart


@dataclass(frozen=True)
class Detection:
    """One detected signature.

    Attributes:
        bbox: ``(x1, y1, x2, y2)`` in pixels of the page image passed to the detector (float, ``0 <= x1 < x2 <= W``,
            ``0 <= y1 < y2 <= H``).
        confidence: detector score in ``[0, 1]``.
    """

    bbox: tuple[float, float, float, float]
    confidence: float

    @property
    def width(self) -> float:
        return self.bbox[2] - self.bbox[0]

    @property
    def height(self) -> float:
        return self.bbox[3] - self.bbox[1]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: ``{"bbox": [x1, y1, x2, y2], "confidence": c}``."""
        return {"bbox": [float(v) for v in self.bbox], "confidence": float(self.confidence)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Detection:
        """Inverse of :meth:`to_dict`."""
        x1, y1, x2, y2 = (float(v) for v in d["bbox"])
        return cls(bbox=(x1, y1, x2, y2), confidence=float(d["confidence"]))


def backend_of(path: str | Path) -> str:
    """The backend a model path runs on: ``"pt"``, ``"onnx"`` or ``"openvino"``.

    Raises:
        ModelError: for any other kind of file.
    """
    p = Path(path)
    if p.suffix == ".pt":
        return "pt"
    if p.suffix == ".onnx":
        return "onnx"
    if p.name.endswith("_openvino_model") or (p.is_dir() and any(p.glob("*.xml"))):
        return "openvino"
    raise ModelError(
        f"unsupported detector model {p}: expected a .pt file, an .onnx file or an *_openvino_model/ folder"
    )


def model_sha256(path: Path) -> str:
    """sha256 of a model file or folder (OpenVINO); see :func:`sigpipe.weights.sha256_path`."""
    if not path.exists():
        raise ModelError(f"detector model not found: {path}")
    return sha256_path(path)


def resolve_model(weights: str | Path | None) -> tuple[Path, Manifest | None]:
    """Find a detector model and its manifest.

    Args:
        weights: ``None`` (the bundled detector), a manifest ``.json``, or a model path (``.pt``/``.onnx``/OpenVINO
            folder); a model with a manifest beside it (``<model>.json``) gets that manifest.

    Returns:
        ``(model path, manifest or None)``; when there is a manifest, the model's sha256 has been checked.

    Raises:
        ModelError: missing model, invalid manifest, or a hash mismatch.
    """
    if weights is None:
        m = bundled_manifest("detector")
        return m.weights_path, m
    p = Path(weights)
    if p.suffix == ".json":
        m = Manifest.load(p)
        return m.verify(), m
    if not p.exists():
        raise ModelError(f"detector model not found: {p}")
    mp = p.with_name(p.name + ".json")
    if mp.is_file():
        m = Manifest.load(mp)
        if m.file == p.name:
            m.verify()
            return p, m
    return p, None


def as_bgr(page: np.ndarray) -> np.ndarray:
    """Validate a page image and return it as a contiguous HxWx3 BGR uint8 array.

    Args:
        page: ``(H, W)`` grayscale, ``(H, W, 1)``, ``(H, W, 3)`` BGR or ``(H, W, 4)`` BGRA; uint8 in ``[0, 255]``
            (bool is taken as black/white).

    Returns:
        ``(H, W, 3)`` uint8 array (the input itself when it is already that).

    Raises:
        InputError: for anything else (wrong type, dtype, rank, channel count, or an empty image).
    """
    if not isinstance(page, np.ndarray):
        raise InputError(f"page must be a numpy array, got {type(page).__name__}")
    if page.dtype == np.bool_:
        page = np.where(page, 255, 0).astype(np.uint8)
    if page.dtype != np.uint8:
        raise InputError(f"page must be uint8 (0-255), got dtype {page.dtype}")
    if page.ndim == 3 and page.shape[2] == 1:
        page = page[:, :, 0]
    if page.ndim == 2:
        if page.size == 0:
            raise InputError(f"page is empty (shape {page.shape})")
        return np.ascontiguousarray(np.repeat(page[:, :, None], 3, axis=2))
    if page.ndim != 3 or page.shape[2] not in (3, 4):
        raise InputError(f"page must be HxW grayscale or HxWx3 BGR, got shape {page.shape}")
    if page.shape[0] == 0 or page.shape[1] == 0:
        raise InputError(f"page is empty (shape {page.shape})")
    if page.shape[2] == 4:
        page = page[:, :, :3]
    return np.ascontiguousarray(page)


class SignatureDetector:
    """Finds signatures on page images with a YOLOv8 model (PyTorch, ONNX or OpenVINO).

    Build it from a manifest with :meth:`from_manifest` (the bundled model by default; hash-checked), or directly
    from a model path and explicit thresholds (tests, evaluating a training run). Construction loads the model and
    runs one tiny warm-up prediction, so a broken model fails here rather than on the first page.

    Args:
        weights: a ``.pt`` file, an ``.onnx`` file or an ``*_openvino_model/`` folder.
        imgsz: network input size in pixels (square, a multiple of 32); pages are letterboxed to it.
        conf: confidence threshold in ``[0, 1]``; detections below it are dropped.
        iou: NMS IoU threshold in ``(0, 1]``.
        max_det: most detections kept per page.
        threads: torch / ONNX Runtime threads (``None``: :func:`sigpipe._ultralytics.default_threads`).
        device: ``"cpu"``, ``"0"`` (first GPU) ...; ``None``: the GPU for ``.pt`` models when there is one, else CPU.
        batch: pages per forward pass in :meth:`detect_batch`.
        ident: the ``name.tag sha256-prefix`` written into reports; ``None``: ``<file stem> <sha256-prefix>``.
        manifest: the manifest the model came from, if any (kept for reference).
        downscale: how pages are shrunk to ``imgsz``, as the model was trained (``"bilinear"``, Ultralytics' own,
            or ``"area"``; :data:`sigpipe.detector.runtime.DOWNSCALE`).
        tta: test-time augmentation: each page is also run mirrored left-right and the two views' boxes are fused
            (:func:`sigpipe.detector.runtime.fuse_views`). Twice the forward passes; the manifest's ``tta_conf`` is
            the threshold calibrated for it. The ident gets :data:`TTA_SUFFIX`.
        precision: ``"f32"``, or ``"bf16"`` for the OpenVINO backend: about twice as fast on CPUs that compute in
            bfloat16 (AVX512_BF16, AMX), slower where it is emulated; confidences move by up to ~0.025 (README,
            "The whole pipeline"). The ident gets :data:`~sigpipe._onnx.BF16_SUFFIX`. ``"auto"``: bf16 with the
            OpenVINO backend on a CPU that computes it natively, else f32.
        second_look: a page on which nothing is found and whose paper is patterned (a cheque's security background)
            is looked at once more with its levels stretched, a strongly patterned one stretched first, a bitonal
            cheque through median filters (:class:`sigpipe.detector.runtime.SecondLook`); ``None``: never.

    Raises:
        ModelError: the model is missing, of an unknown kind, or cannot be loaded.
        ValueError: a threshold is out of range.
    """

    def __init__(
        self,
        weights: str | Path,
        *,
        imgsz: int = DEFAULT_IMGSZ,
        conf: float = DEFAULT_CONF,
        iou: float = DEFAULT_IOU,
        max_det: int = DEFAULT_MAX_DET,
        threads: int | None = None,
        device: str | None = None,
        batch: int = 8,
        ident: str | None = None,
        manifest: Manifest | None = None,
        downscale: str = "bilinear",
        tta: bool = False,
        precision: str = "f32",
        second_look: runtime.SecondLook | None = None,
    ) -> None:
        path = Path(weights)
        if not path.exists():
            raise ModelError(f"detector model not found: {path}")
        if int(imgsz) <= 0 or int(imgsz) % 32:
            raise ValueError(f"imgsz must be a positive multiple of 32, got {imgsz}")
        if not 0.0 <= conf <= 1.0:
            raise ValueError(f"conf must be in [0, 1], got {conf}")
        if not 0.0 < iou <= 1.0:
            raise ValueError(f"iou must be in (0, 1], got {iou}")
        if max_det < 1 or batch < 1:
            raise ValueError(f"max_det and batch must be >= 1, got {max_det}, {batch}")
        if downscale not in runtime.DOWNSCALE:
            raise ValueError(f"downscale must be one of {sorted(runtime.DOWNSCALE)}, got {downscale!r}")
        self.path = path
        self.backend = backend_of(path)
        precision = resolve_precision(precision, exported=self.backend == "openvino")
        if precision not in PRECISIONS or precision == "bf16" and self.backend != "openvino":
            raise ValueError(f"precision must be f32, or bf16 with the OpenVINO backend; got {precision!r} with "
                             f"{self.backend}")
        self.precision = precision
        self.imgsz = int(imgsz)
        self.conf = float(conf)
        self.iou = float(iou)
        self.max_det = int(max_det)
        self.batch = int(batch)
        self.downscale = downscale
        self.tta = bool(tta)
        self.second_look = second_look
        self.threads = int(threads or default_threads())
        self.manifest = manifest
        self._ident = ((ident or f"{path.stem} {model_sha256(path)[:12]}") + (TTA_SUFFIX if self.tta else "")
                       + (BF16_SUFFIX if precision == "bf16" else ""))
        self._model: Any = None  # Ultralytics YOLO (.pt)
        self._net: runtime.Network | None = None  # exported network (ONNX / OpenVINO)
        try:
            if self.backend == "pt":
                import torch

                from sigpipe._ultralytics import configure, yolo_class

                self.device = device or ("0" if torch.cuda.is_available() else "cpu")
                configure(self.threads)
                self._model = yolo_class()(str(path), task="detect")
            else:
                self.device = "cpu"
                self._net = runtime.load_network(path, self.backend, self.threads, precision)
                if self._net.fixed_size is not None:
                    self.imgsz = self._net.fixed_size  # a static export only takes its own size
            # Fails here, not on page 1, if the model is broken.
            self._predict([np.full((32, 32, 3), 255, np.uint8)], self.conf)
        except ModelError:
            raise
        except Exception as e:  # Ultralytics / ONNX Runtime / OpenVINO raise many kinds for unusable models
            raise model_load_error(f"cannot load detector model {path}: {type(e).__name__}", e) from e

    # -- construction from a manifest ------------------------------------------------------------------------
    @classmethod
    def from_manifest(
        cls,
        path: str | Path | None = None,
        backend: str | None = None,
        threads: int | None = None,
        device: str | None = None,
        conf: float | None = None,
        tta: bool = False,
        precision: str = "f32",
    ) -> SignatureDetector:
        """Build the detector described by a manifest (``None``: the bundled detector).

        The manifest holds ``imgsz``, ``conf``, ``iou``, ``max_det`` and optionally ``downscale`` (how pages were
        shrunk in training; default bilinear), ``backends: {"onnx": "<file>", "openvino": "<folder>"}`` (paths
        relative to the manifest), ``backend_sha256: {<backend>: <sha256>}``, ``default_backend`` and optionally
        ``second_look: {"white_quantile": q, "min_midtone_share": s[, "stretched_first_share": f,
        "bitonal_medians": [k, ...], "bitonal_min_aspect": a]}`` (:class:`sigpipe.detector.runtime.SecondLook`).

        Args:
            path: the manifest JSON (``<weights>.json``), or ``None`` for the bundled model.
            backend: ``"pt"``, ``"onnx"`` or ``"openvino"``; ``None``: the manifest's ``default_backend`` (else pt).
            threads: inference threads (``None``: all cores).
            device: see :class:`SignatureDetector`.
            conf: confidence threshold instead of the manifest's (e.g. to sweep it in a benchmark).
            tta: run each page and its mirror image and fuse their boxes (see :class:`SignatureDetector`), at the
                manifest's ``tta_conf``.
            precision: see :class:`SignatureDetector`.

        Raises:
            ModelError: missing/invalid manifest, weights not matching their sha256, unknown or missing backend,
                or ``tta`` with a manifest that has no ``tta_conf``.
        """
        if path is None:
            m = bundled_manifest("detector")
        else:
            m = Manifest.load(path)
            m.verify()
        if "imgsz" not in m.data and "preprocess" in m.data:  # given where a detector's goes: say so
            raise ModelError(f"{m.path} is a verifier's manifest ({m.ident}), not a detector's")
        backend = backend or m.get("default_backend") or "pt"
        if backend not in BACKENDS:
            raise ModelError(f"unknown detector backend {backend!r}; expected one of {list(BACKENDS)}")
        if backend == "pt":
            model_path = m.weights_path
        else:
            model_path = m.export_path(backend, f"sigpipe detector export --format {backend}")
        try:
            imgsz = int((m.get("export_imgsz") or {}).get(backend, m["imgsz"]))  # static exports: their own size
            if conf is None:
                if tta and m.get("tta_conf") is None:
                    raise ModelError(f"detector manifest {m.path} has no tta_conf: calibrate one with "
                                     f"scripts/ship_detector.py --tta-only {m.path}")
                conf = m["tta_conf"] if tta else m["conf"]
            conf, iou = float(conf), float(m["iou"])
            max_det = int(m.get("max_det", DEFAULT_MAX_DET))
            downscale = str(m.get("downscale", "bilinear"))
            if downscale not in runtime.DOWNSCALE:
                raise ValueError(f"unknown downscale {downscale!r}")
            look = m.get("second_look")
            second_look = None if look is None else runtime.SecondLook.from_manifest(look)
            if not (0 <= conf <= 1 and 0 < iou <= 1 and max_det >= 1 and imgsz > 0 and imgsz % 32 == 0):
                raise ValueError(f"out of range: conf {conf}, iou {iou}, max_det {max_det}, imgsz {imgsz} (a "
                                 "multiple of 32)")
        except (KeyError, TypeError, ValueError) as e:
            raise ModelError(f"detector manifest {m.path} lacks a valid imgsz/conf/iou/downscale/second_look: "
                             f"{e}") from e
        return cls(
            model_path, imgsz=imgsz, conf=conf, iou=iou, max_det=max_det, threads=threads, device=device,
            ident=m.ident, manifest=m, downscale=downscale, tta=tta, precision=precision, second_look=second_look,
        )

    @property
    def ident(self) -> str:
        """``name.tag sha256-prefix`` of the model (for reports)."""
        return self._ident

    def __repr__(self) -> str:
        return (
            f"SignatureDetector({self.ident!r}, backend={self.backend!r}, imgsz={self.imgsz}, conf={self.conf}, "
            f"iou={self.iou}, max_det={self.max_det})"
        )

    # -- inference -------------------------------------------------------------------------------------------
    def detect(self, page: np.ndarray) -> list[Detection]:
        """Detect signatures on one page.

        Args:
            page: ``(H, W)`` grayscale or ``(H, W, 3)`` BGR uint8 image of any size.

        Returns:
            Detections with boxes in pixels of ``page``, highest confidence first; all with ``confidence >= conf``.
        """
        return self.detect_batch([page])[0]

    def detect_batch(self, pages: Sequence[np.ndarray]) -> list[list[Detection]]:
        """Detect signatures on several pages, ``batch`` pages per forward pass.

        Args:
            pages: page images as in :meth:`detect`; sizes may differ (pages of equal shape share a forward pass).

        Returns:
            One list of detections per page, in input order.
        """
        pages = [as_bgr(p) for p in pages]
        look = self.second_look
        if look is None:
            return self._detect_pages(pages)
        # Patterned paper: a strongly patterned page is looked at stretched first, as scanned second; any other page
        # as scanned first and, when nothing is found on it and its paper is patterned, stretched second.
        shares = [runtime.midtone_share(p) for p in pages]
        first = [look.stretched_first(s) for s in shares]
        out = self._detect_pages([runtime.stretch_levels(p, look.white_quantile) if f else p
                                  for p, f in zip(pages, first, strict=True)])
        again = [i for i, ds in enumerate(out) if not ds and (first[i] or shares[i] > look.min_midtone_share)]
        if again:
            views = [pages[i] if first[i] else runtime.stretch_levels(pages[i], look.white_quantile) for i in again]
            for i, ds in zip(again, self._detect_pages(views), strict=True):
                out[i] = ds
        # Bitonal cheques with nothing found: through each median filter in turn, until something is.
        again = [i for i, ds in enumerate(out) if not ds and look.despeckles(pages[i])]
        for size in look.bitonal_medians:
            if not again:
                break
            for i, ds in zip(again, self._detect_pages([runtime.despeckled(pages[i], size) for i in again]),
                             strict=True):
                out[i] = ds
            again = [i for i in again if not out[i]]
        return out

    def _detect_pages(self, pages: list[np.ndarray]) -> list[list[Detection]]:
        """:meth:`detect_batch` for BGR pages, each looked at once."""
        # Very long pages are seen through overlapping windows (runtime.windows); every other page is one view.
        views: list[np.ndarray] = []
        spans: list[list[tuple[int, int, int, int]]] = []
        for img in pages:
            spans.append(runtime.windows(img.shape[:2]))
            views.extend(img[y0:y1, x0:x1] for y0, x0, y1, x1 in spans[-1])
        # Batch views of the same shape together: Ultralytics letterboxes a batch of equal shapes to the smallest
        # stride-aligned rectangle (fast for A4), a mixed batch to the full square. Grouping keeps every page's
        # result independent of what it was batched with.
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, img in enumerate(views):
            groups.setdefault(img.shape, []).append(i)
        found: list[list[Detection]] = [[] for _ in views]
        predict = self._predict_tta if self.tta else self._predict
        for idx in groups.values():
            for start in range(0, len(idx), self.batch):
                chunk = idx[start : start + self.batch]
                for i, dets in zip(chunk, predict([views[i] for i in chunk], self.conf), strict=True):
                    found[i] = dets
        out, at = [], 0
        for span in spans:
            if len(span) == 1:
                out.append(found[at])
            else:
                per_window = [(np.array([d.bbox for d in ds]).reshape(-1, 4), np.array([d.confidence for d in ds]))
                              for ds in found[at : at + len(span)]]
                hw = (span[-1][2], span[-1][3])  # the last window reaches the page's far corner
                xyxy, confs = runtime.merge_windows(per_window, span, hw, self.iou)
                out.append(self._detections(xyxy[: self.max_det], confs[: self.max_det], self.conf))
            at += len(span)
        return out

    def _predict_tta(self, images: list[np.ndarray], conf: float) -> list[list[Detection]]:
        """Detections fused from each page and its left-right mirror image."""
        low = min(conf, TTA_CANDIDATE_CONF)
        plain = self._predict(images, low)
        mirrored = self._predict([np.ascontiguousarray(img[:, ::-1]) for img in images], low)
        out = []
        for img, a, b in zip(images, plain, mirrored, strict=True):
            w = img.shape[1]
            unflipped = np.array([(w - d.bbox[2], d.bbox[1], w - d.bbox[0], d.bbox[3]) for d in b]).reshape(-1, 4)
            views = [(np.array([d.bbox for d in a]).reshape(-1, 4), np.array([d.confidence for d in a])),
                     (unflipped, np.array([d.confidence for d in b]))]
            xyxy, confs = runtime.fuse_views(views)
            out.append(self._detections(xyxy[: self.max_det], confs[: self.max_det], conf))
        return out

    def _predict(self, images: list[np.ndarray], conf: float) -> list[list[Detection]]:
        """Detections at or above ``conf`` for pages of one shape (one forward pass, or one per page for batch-1
        exports)."""
        if self._net is None:
            return self._predict_ultralytics(images, conf)
        shape = runtime.input_shape(images[0].shape[:2], self.imgsz, rect=self._net.dynamic)
        xs, boxes = zip(*(runtime.letterbox(img, shape, self.downscale) for img in images), strict=True)
        preds = self._net(np.stack(xs))
        out = []
        for img, lb, pred in zip(images, boxes, preds, strict=True):
            xyxy, confs = runtime.decode(pred, lb, img.shape[:2], conf, self.iou, self.max_det)
            out.append(self._detections(xyxy, confs, conf))
        return out

    def _predict_ultralytics(self, images: list[np.ndarray], conf: float) -> list[list[Detection]]:
        if self.downscale == "bilinear":  # halved first, as the exported models' letterbox does (runtime.resize);
            # Ultralytics' own letterbox does the bilinear rest
            inputs = [runtime.halved(img, runtime.letterbox_size(img.shape[:2], (self.imgsz,) * 2)) for img in images]
        else:  # shrunk as in training: Ultralytics' own letterbox only interpolates
            inputs = [runtime.shrink_long_side(img, self.imgsz, self.downscale) for img in images]
        results = self._model.predict(
            inputs, imgsz=self.imgsz, conf=conf, iou=self.iou, max_det=self.max_det, device=self.device,
            batch=len(inputs), verbose=False, save=False,
        )
        out = []
        for img, inp, r in zip(images, inputs, results, strict=True):
            h, w = img.shape[:2]
            xyxy = r.boxes.xyxy.cpu().numpy().astype(np.float64)
            xyxy[:, [0, 2]] *= w / inp.shape[1]  # back from the shrunk input to page pixels (1 when not shrunk)
            xyxy[:, [1, 3]] *= h / inp.shape[0]
            # scale_boxes already clips to the page; clip again so rounding can never leave it.
            xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], 0, w)
            xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], 0, h)
            out.append(self._detections(xyxy, r.boxes.conf.cpu().numpy().astype(np.float64), conf))
        return out

    def _detections(self, xyxy: np.ndarray, confs: np.ndarray, conf: float) -> list[Detection]:
        """Non-empty boxes at or above ``conf``, highest confidence first."""
        dets = [
            Detection((float(x1), float(y1), float(x2), float(y2)), float(c))
            for (x1, y1, x2, y2), c in zip(xyxy, confs, strict=True)
            if x2 > x1 and y2 > y1 and c >= conf
        ]
        dets.sort(key=lambda d: -d.confidence)
        return dets
