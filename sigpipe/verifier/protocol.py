"""The evaluation protocol of DESIGN.md, shared by training (validation), calibration and ``verifier eval``.

Per writer: the first K genuine signatures (sorted by name) are the references; the other genuine ones are positive
queries; the writer's skilled forgeries are negative queries; one genuine signature of each other writer is a
random-forgery query.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from sigpipe.verifier.decide import aggregate, distances, fuse, reference_spread

# (reference indices (K,), query indices (Q,)) -> (Q,) second-stage mean logits (``pairnet.protocol_pairs``)
PairTerm = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class QueryDistances:
    """Aggregated distances of every query kind, pooled over writers (1-D float arrays)."""

    genuine: np.ndarray
    skilled: np.ndarray
    random: np.ndarray
    writers: int

    @property
    def queries(self) -> int:
        return int(self.genuine.size + self.skilled.size + self.random.size)


def writer_distances(
    emb: np.ndarray, writer: np.ndarray, forged: np.ndarray, name: np.ndarray, k: int, aggregation: str,
    query_emb: np.ndarray | None = None, spread_weight: float = 0.0, pair: PairTerm | None = None,
    pair_weight: float = 0.0,
) -> dict[str, QueryDistances]:
    """Distances of the protocol queries of each writer (``writers`` = 1 in each); see :func:`protocol_distances`.

    Per writer, so that figures can be resampled by writer (``sigpipe.stats.bootstrap_interval``): a corpus'
    writers, not its images, are what varies from one population to the next.
    """
    qemb = emb if query_emb is None else query_emb
    ws = sorted(set(writer.tolist()))
    first_genuine: dict[str, int] = {}
    per_writer: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for w in ws:
        gi = np.flatnonzero((writer == w) & ~forged)
        gi = gi[np.argsort(name[gi], kind="stable")]
        fi = np.flatnonzero((writer == w) & forged)
        per_writer[w] = (gi, fi)
        if gi.size:
            first_genuine[w] = int(gi[-1])  # the last genuine by name: never a reference
    out: dict[str, QueryDistances] = {}
    for w in ws:
        gi, fi = per_writer[w]
        if gi.size < k + 1:
            continue
        refs = emb[gi[:k]]
        spread = reference_spread(refs)

        shift = spread_weight * spread if k >= 2 else 0.0  # a per-person threshold moves the distances instead

        def agg(idx: np.ndarray, refs: np.ndarray = refs, spread: float = spread, shift: float = shift,
                ref_idx: np.ndarray = gi[:k]) -> np.ndarray:
            if idx.size == 0:
                return np.zeros(0)
            d = np.array([aggregate(d, aggregation, spread) for d in distances(qemb[idx], refs)])
            if pair is not None:
                d = np.asarray(fuse(d, pair(ref_idx, idx), pair_weight))
            return d - shift

        others = np.array([first_genuine[o] for o in ws if o != w and o in first_genuine], int)
        out[w] = QueryDistances(agg(gi[k:]), agg(fi), agg(others), 1)
    return out


def pool(per_writer: Iterable[QueryDistances]) -> QueryDistances:
    """All writers' query distances together."""
    qs = list(per_writer)
    if not qs:
        return QueryDistances(np.zeros(0), np.zeros(0), np.zeros(0), 0)
    return QueryDistances(np.concatenate([q.genuine for q in qs]), np.concatenate([q.skilled for q in qs]),
                          np.concatenate([q.random for q in qs]), sum(q.writers for q in qs))


def protocol_distances(
    emb: np.ndarray, writer: np.ndarray, forged: np.ndarray, name: np.ndarray, k: int, aggregation: str,
    query_emb: np.ndarray | None = None, spread_weight: float = 0.0, pair: PairTerm | None = None,
    pair_weight: float = 0.0,
) -> QueryDistances:
    """Distances of all protocol queries, pooled over writers.

    Args:
        emb: ``(N, D)`` embeddings; writer, forged, name: ``(N,)`` per-image metadata (see ``SignatureArrays``).
        k: references per writer. Writers with fewer than ``k + 1`` genuine signatures are skipped.
        aggregation: how the K distances are combined (``decide.AGGREGATIONS``).
        query_emb: ``(N, D)`` embeddings the queries are taken from instead of ``emb`` (aligned with it), e.g. of
            the same signatures cropped from documents, while the references stay ``emb`` (clean specimens).
        spread_weight: ``DecisionRule.spread_weight``; each distance is returned minus ``spread_weight`` times its
            person's reference spread (K >= 2), so that one threshold per K applies to all writers.
        pair, pair_weight: the second stage: the mean pair logits of queries against references (indices into the
            arrays ``emb`` came from; the queries' images are those ``query_emb`` came from), added to the
            distances as ``decide.fuse`` does.
    """
    return pool(writer_distances(emb, writer, forged, name, k, aggregation, query_emb, spread_weight, pair,
                                 pair_weight).values())
