"""``sigpipe verifier eval``: the DESIGN.md protocol on a per-writer corpus, at the shipped threshold."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sigpipe.datasets.corpus import Corpus
from sigpipe.verifier.data import SignatureArrays, load_arrays
from sigpipe.verifier.metrics import auc, eer, far_frr, roc_curve
from sigpipe.verifier.pairnet import protocol_pairs
from sigpipe.verifier.protocol import QueryDistances, protocol_distances
from sigpipe.verifier.verifier import Verifier


def evaluate_arrays(verifier: Verifier, arrays: SignatureArrays, k: int, views: np.ndarray | None = None
                    ) -> tuple[dict[str, Any], QueryDistances]:
    """Protocol metrics for preprocessed signatures.

    With ``views`` (``(N, H, W)`` uint8 document views aligned with ``arrays``, see ``docviews``) the queries are
    those crops, the references stay the clean specimens: the situation of ``sigpipe run``.

    Returns:
        The DESIGN.md keys ``eer, far_skilled, far_random, frr, accuracy, auc, threshold, writers, queries`` and the
        raw query distances. EER and AUC are over genuine vs skilled forgeries; FAR/FRR/accuracy at the shipped
        threshold for K references; accuracy = correct decisions over genuine and skilled-forgery queries.
    """
    emb = verifier.embed_prepared(arrays.as_float())
    qemb = None if views is None else verifier.embed_prepared(views.astype(np.float32)[:, None] / 255.0)
    pair = None
    if verifier.pair is not None:  # the second stage compares images: clean references, queries as given
        pair = protocol_pairs(verifier.pair, arrays.images, views)
    q = protocol_distances(emb, arrays.writer, arrays.forged, arrays.name, k, verifier.rule.aggregation, qemb,
                           verifier.rule.spread_weight, pair, verifier.rule.pair_weight)
    if q.genuine.size == 0 or q.skilled.size == 0 and q.random.size == 0:
        raise ValueError(f"need writers with more than {k} genuine signatures, and skilled forgeries or at least "
                         "two writers (another writer's genuine signature is a random forgery)")
    return protocol_metrics(q, verifier.rule.threshold(k)), q


def protocol_metrics(q: QueryDistances, threshold: float) -> dict[str, Any]:
    """The DESIGN.md keys for pooled protocol distances at ``threshold`` (see :func:`evaluate_arrays`). Without
    skilled forgeries (a bank rarely holds any) ``eer``, ``far_skilled``, ``accuracy`` and ``auc``, which DESIGN
    defines against them, are None; ``frr`` and ``far_random`` are measured all the same.

    Raises:
        ValueError: no genuine queries, or no negative ones at all.
    """
    if q.genuine.size == 0 or q.skilled.size == 0 and q.random.size == 0:
        raise ValueError("need writers with more genuine signatures than references, and skilled forgeries or "
                         "other writers")
    far_s, frr = far_frr(q.genuine, q.skilled, threshold)
    far_r, _ = far_frr(q.genuine, q.random, threshold)
    skilled = q.skilled.size > 0
    correct = np.sum(q.genuine <= threshold) + np.sum(q.skilled > threshold)
    return {
        "eer": eer(q.genuine, q.skilled).eer if skilled else None,
        "far_skilled": far_s if skilled else None,
        "far_random": far_r,
        "frr": frr,
        "accuracy": float(correct / (q.genuine.size + q.skilled.size)) if skilled else None,
        "auc": auc(q.genuine, q.skilled) if skilled else None,
        "threshold": threshold,
        "writers": q.writers,
        "queries": q.queries,
    }


def evaluate_corpus(
    verifier: Verifier, root: str | Path, k: int, writers: list[str] | None = None
) -> tuple[dict[str, Any], QueryDistances]:
    """:func:`evaluate_arrays` on ``writers`` (default: all) of the corpus at ``root``."""
    arrays = load_arrays(Corpus(root), verifier.preprocess_cfg, writers)
    return evaluate_arrays(verifier, arrays, k)


def plot_roc(q: QueryDistances, path: str | Path) -> None:
    """Write the ROC (genuine vs skilled, and vs random forgeries) to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for neg, label in ((q.skilled, "skilled forgeries"), (q.random, "random forgeries")):
        if neg.size:
            far, tpr, _ = roc_curve(q.genuine, neg)
            ax.plot(far, tpr, label=f"{label} (AUC {auc(q.genuine, neg):.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set_xlabel("false accept rate")
    ax.set_ylabel("true accept rate")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
