import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from sigpipe.cli import cli
from sigpipe.errors import ModelError
from sigpipe.verifier.data import SignatureArrays
from sigpipe.verifier.decide import WHITENING_FILE, DecisionRule, Whitening, fit_whitening, person_distances
from sigpipe.verifier.metrics import eer
from sigpipe.verifier.protocol import protocol_distances
from sigpipe.verifier.train import WhiteningData, calibrate
from sigpipe.verifier.verifier import Verifier


def test_centroid_distance_and_whitening_by_hand():
    refs = np.array([[0.0, 0.0], [2.0, 0.0]])
    q = np.array([[1.0, 3.0], [4.0, 0.0]])
    np.testing.assert_allclose(person_distances(q, refs, "centroid"), [3.0, 3.0])
    np.testing.assert_allclose(person_distances(q, refs, "min"), [np.sqrt(10), 2.0])
    w = np.diag([1.0, 0.5])  # the second axis counts half
    np.testing.assert_allclose(person_distances(q, refs, "centroid", w), [1.5, 3.0])
    np.testing.assert_allclose(person_distances(q, refs, "min", w), [np.sqrt(1 + 2.25), 2.0])
    assert person_distances(q[0], refs, "mean").shape == (1,)


def writers_with_anisotropic_noise(n_writers: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Embeddings where a person's genuine signatures vary a lot along axis 0 and little along axis 1, and a
    forgery departs from the person along axis 1 by less than the genuine spread along axis 0."""
    rng = np.random.default_rng(seed)
    emb, writer, forged = [], [], []
    for w in range(n_writers):
        centre = rng.normal(0, 5, 4)
        g = centre + rng.normal(0, 1, (10, 4)) * [1.0, 0.1, 0.3, 0.3]
        f = centre + rng.normal(0, 1, (6, 4)) * [1.0, 0.1, 0.3, 0.3] + [0, 0.8, 0, 0]
        emb += [g, f]
        writer += [f"w{w}"] * 16
        forged += [False] * 10 + [True] * 6
    return np.concatenate(emb), np.array(writer), np.array(forged)


def test_fit_whitening_makes_the_within_person_covariance_the_identity():
    emb, writer, forged = writers_with_anisotropic_noise(40, 0)
    w = fit_whitening(emb[~forged], writer[~forged], shrinkage=0.0)
    assert w.shape == (4, 4) and w.dtype == np.float32
    np.testing.assert_allclose(w, w.T, atol=1e-6)
    dev = np.concatenate([(emb[(writer == p) & ~forged] - emb[(writer == p) & ~forged].mean(0)) @ w
                          for p in np.unique(writer)])
    np.testing.assert_allclose(dev.T @ dev / len(dev), np.eye(4), atol=1e-4)
    full = fit_whitening(emb[~forged], writer[~forged], shrinkage=1.0)  # all shrinkage: a multiple of I
    np.testing.assert_allclose(full, full[0, 0] * np.eye(4), atol=1e-6)
    with pytest.raises(ValueError, match="shrinkage"):
        fit_whitening(emb, writer, 1.5)
    with pytest.raises(ValueError, match="two or more"):
        fit_whitening(emb[:1], writer[:1], 0.1)


def test_whitening_separates_forgeries_the_plain_distance_confuses():
    emb, writer, forged = writers_with_anisotropic_noise(30, 1)
    names = np.array([f"{i:03d}" for i in range(len(emb))])
    train, held_out = np.isin(writer, [f"w{i}" for i in range(20)]), np.isin(writer, [f"w{i}" for i in range(20, 30)])
    w = fit_whitening(emb[train & ~forged], writer[train & ~forged], 0.1)
    args = (emb[held_out], writer[held_out], forged[held_out], names[held_out], 5, "centroid")
    plain, white = protocol_distances(*args), protocol_distances(*args, whitening=w)
    assert eer(white.genuine, white.skilled).eer < 0.5 * eer(plain.genuine, plain.skilled).eer


def test_calibrate_chooses_a_whitening_on_validation_when_it_helps():
    emb, writer, forged = writers_with_anisotropic_noise(30, 2)
    names = np.array([f"{i:03d}" for i in range(len(emb))])
    val_mask = np.isin(writer, [f"w{i}" for i in range(20, 30)])
    val = SignatureArrays(np.zeros((int(val_mask.sum()), 2, 2), np.uint8), writer[val_mask], forged[val_mask],
                          names[val_mask])
    plain, report = calibrate(emb[val_mask], val)
    assert plain.whitening is None and not any("whitened" in k for k in report)
    tr = ~val_mask & ~forged
    rule, report = calibrate(emb[val_mask], val, whiten_on=WhiteningData(emb[tr], writer[tr], "synthetic"))
    assert rule.whitening is not None and rule.whitening.fitted_on == "synthetic"
    best_plain = min(v for k, v in report.items() if "whitened" not in k)
    best_white = min(v for k, v in report.items() if "whitened" in k)
    assert best_white < best_plain
    # the thresholds are on the whitened scale: genuine validation queries mostly pass, forgeries mostly fail
    q = protocol_distances(emb[val_mask], val.writer, val.forged, val.name, 5, rule.aggregation,
                           whitening=rule.whitening.matrix)
    assert np.mean(q.genuine <= rule.threshold(5)) > 0.8 and np.mean(q.skilled > rule.threshold(5)) > 0.8


def test_rule_with_whitening_round_trips_and_refuses_a_tampered_file(tmp_path: Path):
    w = Whitening(np.diag([1.0, 2.0, 3.0]).astype(np.float32), 0.2, "test")
    rule = DecisionRule("centroid", {1: 2.0, 5: 1.5}, 3.0, 0.0, whitening=w)
    with pytest.raises(ValueError, match="folder"):
        rule.to_dict()
    d = json.loads(json.dumps(rule.to_dict(tmp_path)))
    assert d["whitening"]["file"] == WHITENING_FILE and d["whitening"]["shrinkage"] == 0.2
    back = DecisionRule.from_dict(d, tmp_path)
    assert back == rule
    np.testing.assert_array_equal(back.whitening.matrix, w.matrix)
    np.testing.assert_allclose(back.distances([[1.0, 1.0, 1.0]], [[0.0, 0.0, 0.0]]), [np.sqrt(14)], rtol=1e-6)
    np.save(tmp_path / WHITENING_FILE, np.eye(3, dtype=np.float32))
    with pytest.raises(ModelError, match="does not match"):
        DecisionRule.from_dict(d, tmp_path)
    (tmp_path / WHITENING_FILE).unlink()
    with pytest.raises(ModelError, match="missing"):
        DecisionRule.from_dict(d, tmp_path)
    with pytest.raises(ValueError, match="unknown aggregation"):
        DecisionRule("median", {1: 1.0}, 1.0, 0.0)


def test_verifier_decides_with_the_whitening_of_its_manifest(tiny_verifier: Path):
    m = json.loads(tiny_verifier.read_text())
    scale = np.full(16, 0.5, np.float32)
    scale[0] = 4.0  # the first dimension counts 8 times as much as the others
    m["decision"] = DecisionRule("centroid", {1: 1.0}, 5.0, 0.0,
                                 whitening=Whitening(np.diag(scale), 0.0)).to_dict(tiny_verifier.parent)
    tiny_verifier.write_text(json.dumps(m))
    v = Verifier.from_manifest(tiny_verifier, backend="pt")
    ref = np.zeros((1, 16), np.float32)
    along_first, along_second = np.eye(16, dtype=np.float32)[0] * 0.3, np.eye(16, dtype=np.float32)[1] * 0.3
    assert v.decide(along_first, ref).distance == pytest.approx(1.2)
    assert not v.decide(along_first, ref).genuine
    assert v.decide(along_second, ref).distance == pytest.approx(0.15) and v.decide(along_second, ref).genuine
    with pytest.raises(ValueError, match="dimension"):
        v.decide(np.zeros(8, np.float32), np.zeros((1, 8), np.float32))


def test_calibrate_cli_gives_the_same_weights_a_new_rule_and_tag(six_writers: Path, tiny_corpus: Path,
                                                                 tmp_path: Path):
    from sigpipe.verifier.train import VerifierTrainConfig, train_verifier

    trained = train_verifier(VerifierTrainConfig(
        data=(six_writers,), out=tmp_path / "m", width=8, dim=16, epochs=1, steps_per_epoch=2, batch=8,
        m_per_writer=4, split=(0.5, 0.5, 0.0), threads=1)).with_suffix(".pt.json")
    runner = CliRunner()
    res = runner.invoke(cli, ["verifier", "calibrate", str(trained), "--data", str(six_writers), "--tag", "v1",
                              "--out", str(tmp_path / "same")])
    assert res.exit_code != 0 and "tag other than" in res.output
    res = runner.invoke(cli, ["verifier", "calibrate", str(trained), "--data", str(six_writers), "--tag", "r1",
                              "--out", str(tmp_path / "r"), "--threads", "1"])
    assert res.exit_code == 0, res.output
    old, new = json.loads(trained.read_text()), json.loads((tmp_path / "r" / "verifier.pt.json").read_text())
    assert new["sha256"] == old["sha256"] and new["tag"] == "r1"
    assert new["training"]["recalibrated"]["from"] == Verifier.from_manifest(trained, backend="pt").ident
    assert any("whitened" in k for k in new["decision"]["calibration"])
    v = Verifier.from_manifest(tmp_path / "r" / "verifier.pt.json", backend="pt")
    assert v.ident.startswith("signet-triplet.r1 ")
    assert (v.rule.whitening is not None) == ("whitening" in new["decision"])
    res = runner.invoke(cli, ["verifier", "calibrate", str(trained), "--data", str(tiny_corpus), "--tag", "r2",
                              "--out", str(tmp_path / "r2")])
    assert res.exit_code != 0 and "lacks the corpora" in res.output
