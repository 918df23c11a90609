"""From embeddings to a decision: distances to references, aggregation, threshold and calibrated score.

Training and deciding use the same distance: Euclidean between L2-normalised embeddings (in [0, 2]).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

AGGREGATIONS = ("mean", "min", "normalised")


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
    lot is judged more leniently); with fewer than two references it falls back to the mean.
    """
    d = np.asarray(dists, float)
    if method == "mean":
        return float(d.mean())
    if method == "min":
        return float(d.min())
    if method == "normalised":
        return float(d.mean() / spread) if spread > 1e-6 else float(d.mean())
    raise ValueError(f"unknown aggregation {method!r}; known: {AGGREGATIONS}")


def aggregate_groups(dists: np.ndarray, starts: np.ndarray, counts: np.ndarray, method: str,
                     spreads: np.ndarray) -> np.ndarray:
    """:func:`aggregate` for many people at once: ``dists`` holds one query's distances to everybody's references,
    person after person (person ``i`` from ``starts[i]``, ``counts[i]`` of them, spread ``spreads[i]``), or
    ``(Q, N)`` for Q queries.

    Returns:
        ``(P,)`` aggregated distances (equal to :func:`aggregate` per person up to float rounding), ``(Q, P)`` for
        Q queries.
    """
    d = np.asarray(dists, float)
    if method == "min":
        return np.minimum.reduceat(d, starts, axis=-1)
    if method not in ("mean", "normalised"):
        raise ValueError(f"unknown aggregation {method!r}; known: {AGGREGATIONS}")
    mean = np.add.reduceat(d, starts, axis=-1) / counts
    if method == "normalised":
        return np.where(spreads > 1e-6, mean / np.maximum(spreads, 1e-6), mean)
    return mean


def fuse(distance: np.ndarray | float, pair_logit: np.ndarray | float, weight: float) -> np.ndarray | float:
    """The Siamese distance with the second stage's evidence added: ``distance + weight * softplus(-pair_logit)``.

    ``softplus(-logit) = -log P(genuine)`` under the pair network: near 0 for a query it is sure is genuine, growing
    linearly with its certainty that it is not. The sum stays >= 0 and lower = more similar, like a distance.
    """
    out = np.asarray(distance, float) + weight * np.logaddexp(0.0, -np.asarray(pair_logit, float))
    return float(out) if out.ndim == 0 else out


@dataclass(frozen=True)
class DecisionRule:
    """Threshold(s) and the logistic score calibration, as stored in the verifier manifest.

    Attributes:
        aggregation: one of :data:`AGGREGATIONS`.
        thresholds: decision threshold per number of references K (as strings in JSON); the largest K listed applies
            to larger galleries.
        score_a, score_b: ``score = 1 / (1 + exp(score_a * (distance - threshold) + score_b))`` — the probability
            that the signature is genuine, fitted on validation writers.
        spread_weight: with two or more references, the threshold a person gets is ``thresholds[K] + spread_weight
            * spread``, ``spread`` being the mean distance among that person's references: someone whose genuine
            signatures vary more is judged more leniently. 0 = one threshold for everybody.
        pair_weight: weight of the second stage (``sigpipe.verifier.pairnet``) in the distance, see :func:`fuse`;
            0 = the Siamese distance alone (a verifier without a second stage).
        outlier_margin: a reference specimen whose distance to its person's other specimens exceeds their
            threshold by more than this is reported as a suspect (``sigpipe.verifier.refcheck``); None = no check.
        outlier_screen: only specimens whose Siamese distance (without the second stage) exceeds that threshold
            by more than this are compared in full for that check; None = ``outlier_margin``.
        copy_similarity: a signature judged genuine whose preprocessed image is this similar to one of the person's
            specimens is a copy of it (``sigpipe.verifier.copies``: pasted or stamped, not signed anew); None = no
            check.
    """

    aggregation: str
    thresholds: dict[int, float]
    score_a: float
    score_b: float
    calibration: dict[str, Any] = field(default_factory=dict, compare=False)
    spread_weight: float = 0.0
    pair_weight: float = 0.0
    outlier_margin: float | None = None
    outlier_screen: float | None = None
    copy_similarity: float | None = None

    def __post_init__(self) -> None:
        """Refuse a rule no calibration writes (a manifest edited by hand): NaN or infinite numbers would make every
        verdict the same and the reports invalid JSON; a threshold of 0 or less would make nothing genuine."""
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {self.aggregation!r}")
        if not self.thresholds or any(k < 1 for k in self.thresholds):
            raise ValueError(f"thresholds must be given for K >= 1, got {self.thresholds}")
        numbers = {f"thresholds[{k}]": t for k, t in self.thresholds.items()} | {
            "score_a": self.score_a, "score_b": self.score_b, "spread_weight": self.spread_weight,
            "pair_weight": self.pair_weight}
        numbers |= {k: v for k, v in (("outlier_margin", self.outlier_margin),
                                      ("outlier_screen", self.outlier_screen),
                                      ("copy_similarity", self.copy_similarity)) if v is not None}
        bad = {k: v for k, v in numbers.items() if not math.isfinite(v)}
        if bad:
            raise ValueError(f"decision values must be finite numbers, got {bad}")
        if min(self.thresholds.values()) <= 0 or self.spread_weight < 0 or self.pair_weight < 0:
            raise ValueError("thresholds must be positive and spread_weight, pair_weight at least 0, got "
                             f"{self.thresholds}, {self.spread_weight}, {self.pair_weight}")

    def calibrated_k(self, k: int) -> int:
        """The K whose calibrated threshold ``t[K]`` a person with ``k`` references gets: the largest calibrated K
        not above ``k`` (a person of 4 references under thresholds for 1, 2, 3, 5 and 8 gets ``t[3]``)."""
        ks = sorted(self.thresholds)
        usable = [x for x in ks if x <= max(k, 1)]
        return usable[-1] if usable else ks[0]

    def threshold(self, k: int, spread: float = 0.0) -> float:
        """The threshold for a person with ``k`` references whose mutual mean distance is ``spread``:
        ``t[calibrated_k(k)] + spread_weight * spread``, the spread counting from two references on."""
        base = self.thresholds[self.calibrated_k(k)]
        return base + self.spread_weight * spread if k >= 2 else base

    def score(self, distance: float, k: int, spread: float = 0.0) -> float:
        z = self.score_a * (distance - self.threshold(k, spread)) + self.score_b
        return float(1.0 / (1.0 + math.exp(min(max(z, -60.0), 60.0))))

    def to_dict(self) -> dict[str, Any]:
        return {
            "aggregation": self.aggregation,
            "thresholds": {str(k): v for k, v in sorted(self.thresholds.items())},
            "spread_weight": self.spread_weight,
            "pair_weight": self.pair_weight,
            "score_a": self.score_a,
            "score_b": self.score_b,
            **({} if self.outlier_margin is None else {"outlier_margin": self.outlier_margin}),
            **({} if self.outlier_screen is None else {"outlier_screen": self.outlier_screen}),
            **({} if self.copy_similarity is None else {"copy_similarity": self.copy_similarity}),
            "calibration": self.calibration,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DecisionRule:
        return cls(
            aggregation=d["aggregation"],
            thresholds={int(k): float(v) for k, v in d["thresholds"].items()},
            score_a=float(d["score_a"]),
            score_b=float(d["score_b"]),
            calibration=d.get("calibration", {}),
            spread_weight=float(d.get("spread_weight", 0.0)),
            pair_weight=float(d.get("pair_weight", 0.0)),
            outlier_margin=None if d.get("outlier_margin") is None else float(d["outlier_margin"]),
            outlier_screen=None if d.get("outlier_screen") is None else float(d["outlier_screen"]),
            copy_similarity=None if d.get("copy_similarity") is None else float(d["copy_similarity"]),
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
