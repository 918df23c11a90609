"""Per-person thresholds: ``DecisionRule.spread_weight`` and its calibration, and ``sigpipe verifier calibrate``."""

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from sigpipe.cli import cli
from sigpipe.verifier.data import SignatureArrays
from sigpipe.verifier.decide import DecisionRule, reference_spread
from sigpipe.verifier.metrics import eer
from sigpipe.verifier.protocol import protocol_distances
from sigpipe.verifier.train import calibrate
from sigpipe.verifier.verifier import Verifier


def test_threshold_grows_with_the_references_spread_from_two_references_on():
    rule = DecisionRule("min", {1: 0.6, 5: 0.4}, 10.0, 0.0, spread_weight=0.5)
    assert rule.threshold(1, spread=0.8) == 0.6  # one reference has no spread
    assert rule.threshold(5) == 0.4
    assert rule.threshold(5, spread=0.2) == pytest.approx(0.5)
    assert rule.score(0.5, 5, spread=0.2) == pytest.approx(0.5)
    back = DecisionRule.from_dict(json.loads(json.dumps(rule.to_dict())))
    assert back == rule and back.spread_weight == 0.5
    old = {k: v for k, v in rule.to_dict().items() if k != "spread_weight"}  # manifests written before the field
    assert DecisionRule.from_dict(old).spread_weight == 0.0


def test_a_person_between_calibrated_counts_gets_the_threshold_of_the_count_below():
    rule = DecisionRule("min", {1: 0.7, 2: 0.6, 3: 0.55, 5: 0.5, 8: 0.45}, 10.0, 0.0, spread_weight=0.2)
    assert [rule.calibrated_k(k) for k in (0, 1, 2, 3, 4, 5, 7, 8, 40)] == [1, 1, 2, 3, 3, 5, 5, 8, 8]
    assert rule.threshold(4, spread=0.5) == pytest.approx(0.55 + 0.1)  # t[3], not t[5]: the more lenient one
    assert DecisionRule("min", {2: 0.6, 5: 0.5}, 10.0, 0.0).calibrated_k(1) == 2  # none below: the smallest


def test_protocol_distances_move_by_the_spread_for_k_of_two_or_more():
    emb = np.array([[0, 0], [0.3, 0], [0.1, 0.1], [1, 1], [1, 1.5], [1.2, 1.1]], float)
    writer, forged = np.array(["a"] * 3 + ["b"] * 3), np.zeros(6, bool)
    name = np.array(["1", "2", "3"] * 2)
    plain = protocol_distances(emb, writer, forged, name, 2, "min")
    moved = protocol_distances(emb, writer, forged, name, 2, "min", spread_weight=1.0)
    spreads = [reference_spread(emb[[0, 1]]), reference_spread(emb[[3, 4]])]
    np.testing.assert_allclose(moved.genuine, plain.genuine - spreads)
    np.testing.assert_allclose(protocol_distances(emb, writer, forged, name, 1, "min", spread_weight=1.0).genuine,
                               protocol_distances(emb, writer, forged, name, 1, "min").genuine)


def writers_of_varied_spread(n: int, seed: int) -> SignatureArrays:
    """Embeddings of writers whose genuine signatures vary from little to a lot, queries (not references) with some
    noise of their own, and forgeries a fixed offset from their writer: one threshold for all confuses the variable
    writers' genuine signatures with forgeries, and dividing by the spread over-corrects for the steady writers."""
    rng = np.random.default_rng(seed)
    emb, writer, forged, name = [], [], [], []
    for w in range(n):
        centre, sigma = rng.normal(0, 3, 8), [0.02, 0.12][w % 2]
        g = centre + rng.normal(0, sigma, (10, 8))
        g[5:] += rng.normal(0, 0.05, (5, 8))
        f = centre + rng.normal(0, sigma, (6, 8)) + rng.normal(0, 0.05, (6, 8)) + 0.35 * np.eye(8)[w % 8]
        emb += [g, f]
        writer += [f"w{w:02d}"] * 16
        forged += [False] * 10 + [True] * 6
        name += [f"{i:02d}" for i in range(16)]
    x = np.concatenate(emb)
    return SignatureArrays(x.astype(np.float32), np.array(writer), np.array(forged), np.array(name))


def test_calibration_gives_variable_writers_more_lenient_thresholds_when_that_helps():
    val = writers_of_varied_spread(20, 0)
    emb = val.images  # the test's "embeddings" travel in the images slot
    rule, report = calibrate(emb, val)
    assert rule.spread_weight > 0
    assert report[f"val_eer_k2+_spread_weight_{rule.spread_weight}"] < report["val_eer_k2+_spread_weight_0.0"]
    held_out = writers_of_varied_spread(20, 1)
    args = (held_out.images, held_out.writer, held_out.forged, held_out.name, 5, rule.aggregation)
    plain, adaptive = protocol_distances(*args), protocol_distances(*args, spread_weight=rule.spread_weight)
    assert eer(adaptive.genuine, adaptive.skilled).eer < eer(plain.genuine, plain.skilled).eer


def test_verifier_applies_the_person_threshold(tiny_verifier: Path):
    m = json.loads(tiny_verifier.read_text())
    m["decision"] = DecisionRule("min", {1: 0.3, 2: 0.3}, 12.0, 0.0, spread_weight=0.5).to_dict()
    tiny_verifier.write_text(json.dumps(m))
    v = Verifier.from_manifest(tiny_verifier, backend="pt")
    refs = np.zeros((2, 16), np.float32)
    refs[1, 0] = 0.4  # spread 0.4: threshold 0.3 + 0.5 * 0.4
    q = np.zeros(16, np.float32)
    q[1] = 0.45
    d = v.decide(q, refs)
    assert d.threshold == pytest.approx(0.5) and d.distance == pytest.approx(0.45) and d.genuine
    assert not v.decide(q, refs[:1]).genuine  # one reference: the plain 0.3


def test_calibrate_cli_keeps_the_weights_and_changes_the_tag(six_writers: Path, tiny_corpus: Path, tmp_path: Path):
    from sigpipe.verifier.train import VerifierTrainConfig, train_verifier

    trained = train_verifier(VerifierTrainConfig(
        data=(six_writers,), out=tmp_path / "m", width=8, dim=16, epochs=1, steps_per_epoch=2, batch=8,
        m_per_writer=4, split=(0.5, 0.5, 0.0), threads=1)).with_suffix(".pt.json")
    runner = CliRunner()
    base = ["verifier", "calibrate", str(trained), "--threads", "1"]
    res = runner.invoke(cli, [*base, "--data", str(six_writers), "--tag", "v1", "--out", str(tmp_path / "same")])
    assert res.exit_code != 0 and "tag other than" in res.output
    res = runner.invoke(cli, [*base, "--data", str(tiny_corpus), "--tag", "r2", "--out", str(tmp_path / "r2")])
    assert res.exit_code != 0 and "lacks the corpora" in res.output
    res = runner.invoke(cli, [*base, "--data", str(six_writers), "--tag", "r1", "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    old, new = json.loads(trained.read_text()), json.loads((tmp_path / "r" / "verifier.pt.json").read_text())
    assert new["sha256"] == old["sha256"] and new["tag"] == "r1" and "backends" not in new
    assert new["training"]["recalibrated"]["from"] == Verifier.from_manifest(trained, backend="pt").ident
    assert "spread_weight" in new["decision"] and "val_eer_k2+_spread_weight_0.0" in new["decision"]["calibration"]
    # the references check is calibrated too: margin and screen on the same validation writers
    assert new["decision"]["outlier_screen"] <= new["decision"]["outlier_margin"]
    assert new["decision"]["calibration"]["outlier"]["writers"] == 3
    assert Verifier.from_manifest(tmp_path / "r" / "verifier.pt.json", backend="pt").ident.startswith(
        "signet-triplet.r1 ")


def test_one_to_many_picks_the_person_the_query_is_most_clearly_genuine_for(tiny_verifier: Path):
    from sigpipe.verifier.gallery import Gallery

    m = json.loads(tiny_verifier.read_text())
    m["decision"] = DecisionRule("min", {1: 0.3, 2: 0.3}, 12.0, 0.0, spread_weight=1.0).to_dict()
    tiny_verifier.write_text(json.dumps(m))
    v = Verifier.from_manifest(tiny_verifier, backend="pt")
    e = np.eye(16, dtype=np.float32)
    steady = np.stack([e[0], e[0] + 0.01 * e[1]])  # spread 0.01: threshold 0.31
    loose = np.stack([e[0] + 0.6 * e[6], e[0] + 0.6 * e[6] + 0.5 * e[3]])  # spread 0.5: threshold 0.8
    g = Gallery(v, {"steady": steady, "loose": loose})
    q = e[0] + 0.25 * e[6]  # 0.25 from steady (margin -0.06), 0.35 from loose (margin -0.45)
    to_steady, to_loose = g.compare(q, "steady").decision, g.compare(q, "loose").decision
    assert to_steady.distance == pytest.approx(0.25, abs=1e-3) and to_loose.distance == pytest.approx(0.35)
    assert to_steady.genuine and to_loose.genuine
    best = g.best_match(q)  # nearer to steady, but far more clearly within loose's own variation
    assert best is not None and best.identity == "loose"


def test_calibration_without_writers_for_two_references_keeps_one_threshold(caplog: pytest.LogCaptureFixture):
    val = writers_of_varied_spread(6, 2)
    keep = np.isin(val.name, ["00", "01", "10", "11"])  # 2 genuine signatures and 2 forgeries a writer
    small = val.select(keep)
    with caplog.at_level("WARNING"):
        rule, report = calibrate(small.images, small)
    assert "calibrating on" not in caplog.text  # six writers: enough to say nothing
    with caplog.at_level("WARNING"):  # a bank's 10 writers split 70/10/20 calibrated on one, unsaid
        calibrate(small.images[small.writer == small.writer[0]], small.select(small.writer == small.writer[0]))
    assert "calibrating on 1 validation writer(s): the thresholds and the score follow that person" in caplog.text
    assert rule.spread_weight == 0.0 and not any("spread_weight" in k for k in report)
    assert all(np.isfinite(v) for v in report.values())
    assert json.loads(json.dumps(rule.to_dict(), allow_nan=False))["spread_weight"] == 0.0


@pytest.mark.parametrize("aggregation", ["mean", "min", "normalised"])
def test_one_to_many_ranks_everybody_at_once_as_one_comparison_each_would(tiny_verifier: Path, aggregation: str):
    from sigpipe.verifier.gallery import Gallery

    m = json.loads(tiny_verifier.read_text())
    m["decision"] = DecisionRule(aggregation, {1: 0.9, 2: 0.8, 5: 0.7}, 12.0, 0.0, spread_weight=0.5).to_dict()
    tiny_verifier.write_text(json.dumps(m))
    v = Verifier.from_manifest(tiny_verifier, backend="pt")
    rng = np.random.default_rng(3)

    def unit(n: int) -> np.ndarray:
        x = rng.normal(size=(n, 16)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    g = Gallery(v, {f"p{i:02d}": unit(int(rng.integers(1, 7))) for i in range(30)})
    for q in unit(8):
        people, margins = g.margins(q)
        one_by_one = [g.compare(q, p).decision for p in people]
        assert list(people) == g.people
        assert margins == pytest.approx([d.distance - d.threshold for d in one_by_one], abs=1e-9)
        best = g.best_match(q)
        assert best is not None and best.identity == people[int(np.argmin(margins))]
        assert best.decision == g.compare(q, best.identity).decision
    g.embeddings["zz"] = unit(3)  # a person enrolled later is ranked too
    q = g.embeddings["zz"][0]
    assert g.margins(q)[0][-1] == "zz" and g.best_match(q).identity == "zz"  # type: ignore[union-attr]
    g.embeddings["zz"] = unit(3)  # replaced references are not served from the old index
    assert g.margins(q)[1][-1] == pytest.approx(g.compare(q, "zz").decision.distance
                                                - g.compare(q, "zz").decision.threshold)
    nobody, none = Gallery(v).margins(q)
    assert nobody == () and none.size == 0 and Gallery(v).best_match(q) is None
