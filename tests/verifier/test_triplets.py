"""The loss/miner wiring of training against a brute-force triplet computation on a tiny batch."""

import itertools

import numpy as np
import pytest
import torch
from pytorch_metric_learning import losses, miners

MARGIN = 0.25


def labels_for_loss(writer: np.ndarray, forged: np.ndarray) -> torch.Tensor:
    # the scheme used by sigpipe.verifier.train: genuine -> writer id, each forgery a label of its own
    n_writers = int(writer.max()) + 1
    return torch.as_tensor(np.where(forged, n_writers + np.arange(len(writer)), writer))


def brute_force(emb: torch.Tensor, writer: np.ndarray, forged: np.ndarray) -> tuple[set, float]:
    d = torch.cdist(emb, emb)
    trips, vals = set(), []
    n = len(writer)
    for a, p, q in itertools.product(range(n), repeat=3):
        if a == p or forged[a] or forged[p] or writer[a] != writer[p]:
            continue
        neg_ok = forged[q] or writer[q] != writer[a]
        if not neg_ok:
            continue
        if d[a, q] - d[a, p] < MARGIN:  # violates the margin: hard or semi-hard
            trips.add((a, p, q))
            vals.append(float(torch.relu(d[a, p] - d[a, q] + MARGIN)))
    return trips, float(np.mean([v for v in vals if v > 0])) if any(v > 0 for v in vals) else 0.0


def test_miner_and_loss_match_brute_force():
    torch.manual_seed(0)
    writer = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2])
    forged = np.array([0, 0, 1, 1, 0, 0, 1, 0, 0], bool)
    emb = torch.nn.functional.normalize(torch.randn(len(writer), 8), dim=1)
    lab = labels_for_loss(writer, forged)
    trip = miners.TripletMarginMiner(margin=MARGIN, type_of_triplets="all")(emb, lab)
    mined = set(zip(*(t.tolist() for t in trip), strict=True))
    expected, expected_loss = brute_force(emb, writer, forged)
    assert mined == expected
    # a forgery is never an anchor or a positive, and the writer's own forgeries are used as negatives
    assert all(not forged[a] and not forged[p] for a, p, _ in mined)
    assert any(forged[q] and writer[q] == writer[a] for a, _, q in mined)
    loss = losses.TripletMarginLoss(margin=MARGIN)(emb, lab, trip)
    assert float(loss) == pytest.approx(expected_loss, rel=1e-5)
