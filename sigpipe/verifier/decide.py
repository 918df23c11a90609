"""From embeddings to a decision: distances to references, aggregation, threshold and calibrated score.

Training uses the Euclidean distance between L2-normalised embeddings (in [0, 2]). Deciding may first apply a
whitening fitted on training writers (:class:`Whitening`): the same distance measured in units of how much one
person's genuine signatures vary along each direction, so directions along which genuine signatures of the same
person differ count less than those along which a forgery departs from them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sigpipe.errors import ModelError
from sigpipe.weights import sha256_file

AGGREGATIONS = ("mean", "min", "normalised", "centroid")
WHITENING_FILE = "verifier.whitening.npy"


def distances(query: np.ndarray, refs: np.ndarray) -> np.ndarray:
    """Euclidean distances of one or many queries to references.

    Args:
        query: ``(D,)`` or ``(Q, D)`` float embeddings.
        refs: ``(K, D)`` float embeddings.

    Returns:
        ``(K,)`` for one query, ``(Q, K)`` for many.
    """
    q = np.atleast_2d(np.asarray(query, np.float64))
    r = np.asarray(refs, np.float64)
    d2 = (q * q).sum(1)[:, None] + (r * r).sum(1)[None, :] - 2.0 * q @ r.T
    d = np.sqrt(np.clip(d2, 0.0, None))
    return d[0] if np.ndim(query) == 1 else d


def reference_spread(refs: np.ndarray) -> float:
    """Mean pairwise distance among a person's references (0 with fewer than two)."""
    if len(refs) < 2:
        return 0.0
    d = distances(refs, refs)
    iu = np.triu_indices(len(refs), 1)
    return float(d[iu].mean())


def aggregate(dists: np.ndarray, method: str, spread: float = 0.0) -> float:
    """Collapse the ``(K,)`` distances of a query to a person's references into one number.

    ``normalised`` divides the mean distance by the references' own spread (a writer whose genuine signatures vary a
    lot is judged more leniently); with fewer than two references it falls back to the mean. (``centroid`` is not a
    function of the K distances: see :func:`person_distances`.)
    """
    d = np.asarray(dists, float)
    if method == "mean":
        return float(d.mean())
    if method == "min":
        return float(d.min())
    if method == "normalised":
        return float(d.mean() / spread) if spread > 1e-6 else float(d.mean())
    raise ValueError(f"unknown aggregation {method!r}; known: {AGGREGATIONS}")


def person_distances(queries: np.ndarray, refs: np.ndarray, method: str,
                     whitening: np.ndarray | None = None) -> np.ndarray:
    """The aggregated distance of each query to one person's references: the one place deciding and evaluating
    compute it.

    Args:
        queries: ``(D,)`` or ``(Q, D)`` embeddings.
        refs: ``(K, D)`` embeddings of the person's references.
        method: one of :data:`AGGREGATIONS`; ``centroid`` is the distance to the mean of the references.
        whitening: ``(D, D)`` matrix applied to queries and references first (``x @ whitening``), or None.

    Returns:
        ``(Q,)`` float64 distances (``(1,)`` for one query).
    """
    q = np.atleast_2d(np.asarray(queries, np.float64))
    r = np.atleast_2d(np.asarray(refs, np.float64))
    if whitening is not None:
        q, r = q @ whitening, r @ whitening
    if method == "centroid":
        return np.linalg.norm(q - r.mean(0), axis=1)
    spread = reference_spread(r)
    return np.array([aggregate(row, method, spread) for row in distances(q, r)], np.float64)


def fit_whitening(emb: np.ndarray, writer: np.ndarray, shrinkage: float) -> np.ndarray:
    """The whitening of the within-person variation of genuine signatures.

    Args:
        emb: ``(N, D)`` embeddings of genuine signatures (no forgeries).
        writer: ``(N,)`` who wrote each; each person's signatures are centred on their own mean.
        shrinkage: in [0, 1]; the covariance is shrunk towards a multiple of the identity with the same trace
            (0: the sample covariance, 1: no whitening but a scale), which keeps it invertible with few writers.

    Returns:
        The symmetric ``(D, D)`` float32 matrix ``W = C^(-1/2)`` of the shrunk within-person covariance ``C``:
        ``(x - y) @ W`` has unit covariance for two genuine signatures' deviations from their person's mean.
    """
    if not 0.0 <= shrinkage <= 1.0:
        raise ValueError(f"shrinkage must be in [0, 1], got {shrinkage}")
    x = np.asarray(emb, np.float64)
    writer = np.asarray(writer)
    centred = [x[writer == w] - x[writer == w].mean(0) for w in np.unique(writer) if np.sum(writer == w) >= 2]
    if not centred:
        raise ValueError("need at least one person with two or more genuine signatures to fit a whitening")
    dev = np.concatenate(centred)
    d = x.shape[1]
    c = dev.T @ dev / len(dev)
    c = (1.0 - shrinkage) * c + shrinkage * (np.trace(c) / d) * np.eye(d)
    vals, vecs = np.linalg.eigh(c)
    if vals.min() <= 1e-12:
        raise ValueError("the within-person covariance is singular: use a larger shrinkage")
    return ((vecs * vals ** -0.5) @ vecs.T).astype(np.float32)


@dataclass(frozen=True, eq=False)
class Whitening:
    """A whitening matrix as shipped beside the weights (``verifier.whitening.npy``, sha256 in the manifest)."""

    matrix: np.ndarray
    shrinkage: float
    fitted_on: str = ""

    def save(self, folder: Path) -> dict[str, Any]:
        """Write the matrix into ``folder``; returns the manifest entry (file, sha256, shrinkage, fitted_on)."""
        path = Path(folder) / WHITENING_FILE
        np.save(path, np.asarray(self.matrix, np.float32), allow_pickle=False)
        return {"file": WHITENING_FILE, "sha256": sha256_file(path), "shrinkage": self.shrinkage,
                "fitted_on": self.fitted_on}

    @classmethod
    def load(cls, folder: Path, entry: dict[str, Any]) -> Whitening:
        """Read the matrix a manifest entry names, relative to ``folder``, after checking its sha256.

        Raises:
            ModelError: the file is missing, does not match its sha256, or is not a square float matrix.
        """
        path = Path(folder) / entry["file"]
        if not path.is_file():
            raise ModelError(f"the verifier's whitening {path} is missing")
        if sha256_file(path) != entry["sha256"]:
            raise ModelError(f"the verifier's whitening {path} does not match its manifest sha256: refusing to "
                             "load a modified or corrupt file")
        try:
            m = np.load(path, allow_pickle=False)
        except ValueError as e:
            raise ModelError(f"cannot read the verifier's whitening {path}: {e}") from e
        if m.ndim != 2 or m.shape[0] != m.shape[1] or not np.issubdtype(m.dtype, np.floating):
            raise ModelError(f"the verifier's whitening {path} is not a square float matrix ({m.shape}, {m.dtype})")
        return cls(m, float(entry.get("shrinkage", 0.0)), str(entry.get("fitted_on", "")))


@dataclass(frozen=True)
class DecisionRule:
    """Threshold(s) and the logistic score calibration, as stored in the verifier manifest.

    Attributes:
        aggregation: one of :data:`AGGREGATIONS`.
        thresholds: decision threshold per number of references K (as strings in JSON); the largest K listed applies
            to larger galleries.
        score_a, score_b: ``score = 1 / (1 + exp(score_a * (distance - threshold) + score_b))`` — the probability
            that the signature is genuine, fitted on validation writers.
        whitening: applied to embeddings before distances are taken (see :func:`person_distances`), or None.
    """

    aggregation: str
    thresholds: dict[int, float]
    score_a: float
    score_b: float
    calibration: dict[str, Any] = field(default_factory=dict, compare=False)
    whitening: Whitening | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"unknown aggregation {self.aggregation!r}; known: {AGGREGATIONS}")
        if not self.thresholds:
            raise ValueError("a decision rule needs at least one threshold")

    def distances(self, queries: np.ndarray, refs: np.ndarray) -> np.ndarray:
        """``(Q,)`` aggregated distances of queries to one person's references under this rule."""
        return person_distances(queries, refs, self.aggregation,
                                None if self.whitening is None else self.whitening.matrix)

    def threshold(self, k: int) -> float:
        ks = sorted(self.thresholds)
        usable = [x for x in ks if x <= max(k, 1)]
        return self.thresholds[usable[-1] if usable else ks[0]]

    def score(self, distance: float, k: int) -> float:
        z = self.score_a * (distance - self.threshold(k)) + self.score_b
        return float(1.0 / (1.0 + math.exp(min(max(z, -60.0), 60.0))))

    def to_dict(self, folder: Path | None = None) -> dict[str, Any]:
        """The manifest's ``decision`` entry; a rule with a whitening writes its matrix into ``folder``."""
        d: dict[str, Any] = {
            "aggregation": self.aggregation,
            "thresholds": {str(k): v for k, v in sorted(self.thresholds.items())},
            "score_a": self.score_a,
            "score_b": self.score_b,
            "calibration": self.calibration,
        }
        if self.whitening is not None:
            if folder is None:
                raise ValueError("this rule has a whitening: give the folder to write it into")
            d["whitening"] = self.whitening.save(folder)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], folder: Path | None = None) -> DecisionRule:
        """Read a manifest's ``decision`` entry; a whitening file is read from ``folder`` (the manifest's)."""
        whitening = None
        if d.get("whitening"):
            if folder is None:
                raise ValueError("this rule has a whitening file: give the folder of its manifest")
            whitening = Whitening.load(folder, d["whitening"])
        return cls(
            aggregation=d["aggregation"],
            thresholds={int(k): float(v) for k, v in d["thresholds"].items()},
            score_a=float(d["score_a"]),
            score_b=float(d["score_b"]),
            calibration=d.get("calibration", {}),
            whitening=whitening,
        )


def fit_logistic(x: np.ndarray, y: np.ndarray, iters: int = 500, lr: float = 0.5) -> tuple[float, float]:
    """Fit ``P(y=1 | x) = 1 / (1 + exp(a * x + b))`` by gradient descent on the log-loss (x standardised inside).

    Args:
        x: ``(N,)`` float (distance minus threshold); y: ``(N,)`` in {0, 1} (1 = genuine).

    Returns:
        ``(a, b)`` in the original units of ``x``.
    """
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    s = x.std() or 1.0
    xs = x / s
    a, b = 1.0, 0.0
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(np.clip(a * xs + b, -60, 60)))
        # d(logloss)/dz where z = a*x+b and p = sigmoid(-z): dL/dz = y - p
        gz = y - p
        a -= lr * float(np.mean(gz * xs))
        b -= lr * float(np.mean(gz))
    return a / s, b
