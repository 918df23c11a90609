"""Statistics shared by the benchmarks of both models: how far a figure measured on a small set can be trusted."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np

T = TypeVar("T")


def bootstrap_interval(strata: Sequence[Sequence[T]], statistic: Callable[[list[list[T]]], float], n: int = 1000,
                       level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` when the groups of each stratum are resampled.

    Resample the unit that varies between populations: for a verifier, writers (each stratum a corpus' writers,
    each group one writer's query distances), not single queries, which are correlated within a writer; for a
    detector, pages (the signatures and false boxes of one page come together).

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
