"""Verification metrics over distances (lower distance = more likely genuine).

All functions take 1-D float arrays: ``genuine`` distances of genuine queries and ``forged`` distances of forgery
queries. A query is accepted as genuine when ``distance <= threshold``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
