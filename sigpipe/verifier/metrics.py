"""Verification metrics over distances (lower distance = more likely genuine).

All functions take 1-D float arrays: ``genuine`` distances of genuine queries and ``forged`` distances of forgery
queries. A query is accepted as genuine when ``distance <= threshold``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

T = TypeVar("T")


def far_frr(genuine: np.ndarray, forged: np.ndarray, threshold: float) -> tuple[float, float]:
    """False-accept rate (forgeries accepted) and false-reject rate (genuine rejected) at ``threshold``."""
    g, f = np.asarray(genuine, float), np.asarray(forged, float)
    far = float(np.mean(f <= threshold)) if f.size else 0.0
    frr = float(np.mean(g > threshold)) if g.size else 0.0
    return far, frr


@dataclass(frozen=True)
class EER:
    """Equal error rate and the threshold where FAR and FRR cross."""

    eer: float
    threshold: float


def eer(genuine: np.ndarray, forged: np.ndarray) -> EER:
    """Equal error rate over all candidate thresholds (the distinct distances).

    Where FAR and FRR never meet exactly, the EER is the mean of the two at the threshold minimising their gap.
    """
    g, f = np.asarray(genuine, float), np.asarray(forged, float)
    if g.size == 0 or f.size == 0:
        raise ValueError("EER needs at least one genuine and one forged distance")
    cands = np.unique(np.concatenate([g, f]))
    cands = np.concatenate([[cands[0] - 1e-9], cands])
    g_sorted, f_sorted = np.sort(g), np.sort(f)
    far = np.searchsorted(f_sorted, cands, side="right") / f.size
    frr = 1.0 - np.searchsorted(g_sorted, cands, side="right") / g.size
    i = int(np.argmin(np.abs(far - frr)))
    return EER(float((far[i] + frr[i]) / 2), float(cands[i]))


def auc(genuine: np.ndarray, forged: np.ndarray) -> float:
    """Area under the ROC curve: P(a forged distance > a genuine distance), ties counting one half."""
    g, f = np.asarray(genuine, float), np.asarray(forged, float)
    if g.size == 0 or f.size == 0:
        raise ValueError("AUC needs at least one genuine and one forged distance")
    allv = np.concatenate([g, f])
    order = allv.argsort(kind="mergesort")
    ranks = np.empty(allv.size, float)
    sorted_v = allv[order]
    # average ranks for ties
    _, first, counts = np.unique(sorted_v, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    rf = ranks[g.size :].sum()
    return float((rf - f.size * (f.size + 1) / 2) / (g.size * f.size))


def roc_curve(genuine: np.ndarray, forged: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(far, tpr, thresholds)`` over the distinct distances, for plotting."""
    g, f = np.asarray(genuine, float), np.asarray(forged, float)
    th = np.unique(np.concatenate([g, f]))
    far = np.searchsorted(np.sort(f), th, side="right") / max(f.size, 1)
    tpr = np.searchsorted(np.sort(g), th, side="right") / max(g.size, 1)
    return far, tpr, th


def bootstrap_interval(strata: Sequence[Sequence[T]], statistic: Callable[[list[list[T]]], float], n: int = 1000,
                       level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` when the groups of each stratum are resampled.

    Resample the unit that varies between populations: for a verifier, writers (each stratum a corpus' writers,
    each group one writer's query distances), not single queries, which are correlated within a writer.

    Args:
        strata: one sequence of groups per stratum; every stratum is resampled with replacement to its own size.
        statistic: maps the resampled strata (a list of lists of groups, in the order of ``strata``) to a number;
            NaN where it is undefined for a resample (such resamples are left out).
        n: resamples.
        level: coverage of the interval, e.g. 0.95.
        seed: seed of the resampling.

    Returns:
        ``(low, high)``.

    Raises:
        ValueError: no strata, an empty stratum, ``n < 1`` or ``level`` outside (0, 1).
    """
    if not strata or any(len(s) == 0 for s in strata):
        raise ValueError("every stratum needs at least one group")
    if n < 1 or not 0.0 < level < 1.0:
        raise ValueError(f"need n >= 1 and 0 < level < 1, got n={n}, level={level}")
    rng = np.random.default_rng(seed)
    stats = np.array([statistic([[s[i] for i in rng.integers(0, len(s), len(s))] for s in strata])
                      for _ in range(n)], float)
    stats = stats[np.isfinite(stats)]
    if stats.size == 0:
        raise ValueError("the statistic was undefined (NaN) on every resample")
    lo, hi = np.percentile(stats, [50.0 * (1.0 - level), 50.0 * (1.0 + level)])
    return float(lo), float(hi)
