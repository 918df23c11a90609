import numpy as np
import pytest

from sigpipe.stats import bootstrap_interval
from sigpipe.verifier.metrics import auc, eer, far_frr
from sigpipe.verifier.protocol import pool, protocol_distances, writer_distances


def test_far_frr_hand_computed():
    g = np.array([0.1, 0.2, 0.3, 0.8])
    f = np.array([0.25, 0.7, 0.9, 1.0])
    far, frr = far_frr(g, f, 0.3)
    assert far == pytest.approx(1 / 4)  # 0.25 accepted
    assert frr == pytest.approx(1 / 4)  # 0.8 rejected


def test_eer_perfect_separation_is_zero():
    r = eer(np.array([0.1, 0.2]), np.array([0.5, 0.6]))
    assert r.eer == 0.0
    assert 0.2 <= r.threshold < 0.5


def test_eer_hand_computed_overlap():
    # threshold 0.3: FAR = 1/4 (0.25), FRR = 1/4 (0.8) -> EER 0.25
    r = eer(np.array([0.1, 0.2, 0.3, 0.8]), np.array([0.25, 0.7, 0.9, 1.0]))
    assert r.eer == pytest.approx(0.25)
    far, frr = far_frr(np.array([0.1, 0.2, 0.3, 0.8]), np.array([0.25, 0.7, 0.9, 1.0]), r.threshold)
    assert far == pytest.approx(frr)


def test_eer_fully_inverted_is_one():
    assert eer(np.array([0.9, 1.0]), np.array([0.1, 0.2])).eer == pytest.approx(1.0)


def test_auc_hand_computed_and_brute_force():
    g = np.array([0.1, 0.4, 0.35])
    f = np.array([0.3, 0.4, 0.9])
    # pairs (g, f) with f > g: (0.1: 3), (0.4: 1 + tie 0.5), (0.35: 2) -> 6.5 / 9
    assert auc(g, f) == pytest.approx(6.5 / 9)
    rng = np.random.default_rng(0)
    g, f = rng.random(30).round(2), rng.random(25).round(2) + 0.2
    brute = np.mean([(fj > gi) + 0.5 * (fj == gi) for gi in g for fj in f])
    assert auc(g, f) == pytest.approx(brute)


def test_empty_inputs_raise():
    with pytest.raises(ValueError):
        eer(np.array([]), np.array([0.1]))
    with pytest.raises(ValueError):
        auc(np.array([0.1]), np.array([]))


def test_bootstrap_interval_covers_the_mean_and_narrows_with_more_groups():
    rng = np.random.default_rng(1)

    def width(n_groups: int) -> tuple[float, float, float]:
        groups = list(rng.normal(10.0, 2.0, n_groups))
        lo, hi = bootstrap_interval([groups], lambda s: float(np.mean(s[0])), n=400)
        return lo, hi, hi - lo

    lo, hi, small = width(20)
    assert lo < 10.0 < hi
    assert width(2000)[2] < small / 3  # ~10x narrower expected (1 / sqrt of 100x the groups)
    same = bootstrap_interval([[3.0] * 5, [4.0] * 2], lambda s: float(np.mean(s[0]) + np.mean(s[1])), n=50)
    assert same == (7.0, 7.0)  # nothing varies: a zero-width interval
    # each stratum keeps its own size: a statistic that sees the stratum sizes sees them unchanged
    assert bootstrap_interval([[1, 2, 3], [1]], lambda s: float(len(s[0]) * 10 + len(s[1])), n=20) == (31.0, 31.0)
    stat = lambda s: float(np.mean(s[0]))  # noqa: E731
    assert bootstrap_interval([[1.0, 5.0]], stat, seed=3) == bootstrap_interval([[1.0, 5.0]], stat, seed=3)
    with pytest.raises(ValueError, match="at least one group"):
        bootstrap_interval([[1.0], []], stat)
    with pytest.raises(ValueError, match="level"):
        bootstrap_interval([[1.0]], stat, level=1.5)
    with pytest.raises(ValueError, match="undefined"):
        bootstrap_interval([[1.0]], lambda s: float("nan"))


def test_writer_distances_pool_to_the_protocol_distances():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(18, 4))
    writer = np.repeat(["a", "b", "c"], 6)
    forged = np.tile([False, False, False, False, True, True], 3)
    name = np.array([f"{i % 6:02d}" for i in range(18)])
    per = writer_distances(emb, writer, forged, name, 2, "min")
    assert sorted(per) == ["a", "b", "c"] and all(q.writers == 1 for q in per.values())
    assert all(q.genuine.size == 2 and q.skilled.size == 2 and q.random.size == 2 for q in per.values())
    whole = protocol_distances(emb, writer, forged, name, 2, "min")
    pooled = pool(per.values())
    assert pooled.writers == whole.writers == 3
    for f in ("genuine", "skilled", "random"):
        np.testing.assert_allclose(getattr(pooled, f), getattr(whole, f))
    assert writer_distances(emb, writer, forged, name, 4, "min") == {}  # nobody has 5 genuine signatures
    assert pool([]).writers == 0
