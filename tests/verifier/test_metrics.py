import numpy as np
import pytest

from sigpipe.verifier.metrics import auc, eer, far_frr


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
