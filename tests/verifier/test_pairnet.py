"""The verifier's second stage: the pair network, its fusion with the Siamese distance, its training, calibration
and export, and what the gallery and one-to-many matching do with it."""

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from sigpipe.cli import cli
from sigpipe.errors import ModelError
from sigpipe.verifier.data import SignatureArrays
from sigpipe.verifier.decide import DecisionRule, fuse
from sigpipe.verifier.gallery import Gallery
from sigpipe.verifier.metrics import eer
from sigpipe.verifier.model import PairNet
from sigpipe.verifier.pairnet import ARCHITECTURE, PairScorer, protocol_pairs
from sigpipe.verifier.protocol import protocol_distances
from sigpipe.verifier.train import calibrate
from sigpipe.verifier.verifier import Verifier
from sigpipe.weights import Manifest, sha256_file


@pytest.fixture
def staged_verifier(tiny_verifier: Path) -> Path:
    """The tiny verifier with a random-init pair network (width 8) as its second stage, weight 0.1."""
    torch.manual_seed(1)
    net = PairNet(8)
    for mod in net.modules():  # random BatchNorm statistics, so that the two orders of a pair differ
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.2, 0.2)
            mod.running_var.uniform_(0.5, 1.5)
    pair = tiny_verifier.parent / "tiny-pair.pt"
    torch.save(net.state_dict(), pair)
    m = json.loads(tiny_verifier.read_text())
    m["second_stage"] = {"architecture": ARCHITECTURE, "width": 8, "file": pair.name, "sha256": sha256_file(pair),
                         "orders": 2}
    m["decision"] = DecisionRule("min", {1: 0.3, 5: 0.25}, 12.0, 0.0, pair_weight=0.1).to_dict()
    tiny_verifier.write_text(json.dumps(m))
    return tiny_verifier


def images(n: int, seed: int) -> np.ndarray:
    """``(n, 1, 80, 160)`` float32 in [0, 1]: sparse random strokes."""
    rng = np.random.default_rng(seed)
    return (rng.random((n, 1, 80, 160)) < 0.05).astype(np.float32) * rng.random((n, 1, 80, 160)).astype(np.float32)


def test_fuse_adds_the_pair_networks_negative_log_likelihood():
    assert fuse(0.3, 0.0, 0.1) == pytest.approx(0.3 + 0.1 * np.log(2))
    assert fuse(0.3, 40.0, 0.1) == pytest.approx(0.3, abs=1e-9)  # sure it is genuine: nothing added
    assert fuse(0.3, -40.0, 0.1) == pytest.approx(0.3 + 4.0)  # sure it is not: linear in the logit
    np.testing.assert_allclose(fuse(np.array([0.1, 0.2]), np.array([1.0, -1.0]), 0.0), [0.1, 0.2])
    assert np.all(fuse(np.zeros(50), np.linspace(-30, 30, 50), 0.2) >= 0)  # still a distance


def test_decision_adds_the_second_stage_to_the_siamese_distance(staged_verifier: Path):
    v = Verifier.from_manifest(staged_verifier, backend="pt")
    plain = Verifier.from_manifest(staged_verifier, backend="pt")
    plain.pair = None
    assert v.needs_images and not plain.needs_images
    x = images(4, 0)
    e = v.embed_prepared(x)
    with pytest.raises(ValueError, match="second stage"):
        v.decide(e[0], e[1:])
    d = v.decide(e[0], e[1:], x[0], x[1:, 0])
    net = PairNet(8)
    net.load_state_dict(torch.load(staged_verifier.parent / "tiny-pair.pt", weights_only=True))
    net.eval()
    refs, q = torch.from_numpy(x[1:]), torch.from_numpy(np.repeat(x[:1], 3, 0))
    with torch.no_grad():
        want = float(((net(refs, q) + net(q, refs)) / 2).mean())
    assert d.pair_logit == pytest.approx(want, abs=1e-5)
    siamese = plain.decide(e[0], e[1:]).distance
    assert d.distance == pytest.approx(siamese + 0.1 * np.log1p(np.exp(-want)), abs=1e-6)
    assert d.genuine == (d.distance <= d.threshold) and d.to_dict()["pair_logit"] == d.pair_logit
    assert v.decide(e[0], e[1:], second_stage=False).distance == pytest.approx(siamese)


def test_both_orders_give_a_symmetric_score_one_order_does_not(staged_verifier: Path):
    v = Verifier.from_manifest(staged_verifier, backend="pt")
    assert v.pair is not None
    a, b = images(3, 1), images(3, 2)
    np.testing.assert_allclose(v.pair.logits(a, b), v.pair.logits(b, a), atol=1e-5)
    v.pair.orders = 1
    assert not np.allclose(v.pair.logits(a, b), v.pair.logits(b, a), atol=1e-5)


def test_a_tampered_or_uncalibrated_second_stage_is_refused(staged_verifier: Path):
    pair = staged_verifier.parent / "tiny-pair.pt"
    m = json.loads(staged_verifier.read_text())
    m["decision"]["pair_weight"] = 0.0
    staged_verifier.write_text(json.dumps(m))
    with pytest.raises(ModelError, match="pair_weight"):
        Verifier.from_manifest(staged_verifier, backend="pt")
    m["decision"]["pair_weight"] = 0.1
    staged_verifier.write_text(json.dumps(m))
    pair.write_bytes(pair.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ModelError, match="does not match its manifest sha256"):
        Verifier.from_manifest(staged_verifier, backend="pt")
    pair.unlink()
    with pytest.raises(ModelError, match="missing"):
        Verifier.from_manifest(staged_verifier, backend="pt")
    del m["second_stage"]  # the thresholds were calibrated on the fused distance: they do not hold without it
    staged_verifier.write_text(json.dumps(m))
    with pytest.raises(ModelError, match="calibrated with a second stage"):
        Verifier.from_manifest(staged_verifier, backend="pt")


def test_onnx_export_of_the_second_stage_matches_pytorch(staged_verifier: Path):
    from sigpipe.verifier.export import export_onnx

    export_onnx(staged_verifier)
    m = json.loads(staged_verifier.read_text())
    assert m["second_stage"]["onnx"] == "tiny-pair.onnx"
    assert m["second_stage"]["onnx_sha256"] == sha256_file(staged_verifier.parent / "tiny-pair.onnx")
    pt, ox = (Verifier.from_manifest(staged_verifier, backend=b) for b in ("pt", "onnx"))
    assert ox.pair is not None and ox.pair.net is None  # ONNX Runtime, not torch
    x = images(5, 3)
    e = pt.embed_prepared(x)
    a, b = pt.decide(e[0], e[1:], x[0], x[1:, 0]), ox.decide(e[0], e[1:], x[0], x[1:, 0])
    assert a.pair_logit == pytest.approx(b.pair_logit, abs=1e-4)
    assert a.distance == pytest.approx(b.distance, abs=1e-5)
    bf = Verifier.from_manifest(staged_verifier, precision="bf16")  # the same ONNX files on OpenVINO in bf16
    c = bf.decide(e[0], e[1:], x[0], x[1:, 0])
    assert c.pair_logit == pytest.approx(b.pair_logit, abs=0.1) and c.distance == pytest.approx(b.distance, abs=0.02)


def test_protocol_pairs_score_each_pair_once(staged_verifier: Path):
    scorer = PairScorer(Manifest.load(staged_verifier))
    imgs = np.round(images(6, 4)[:, 0] * 255).astype(np.uint8)
    calls = []
    logits = scorer.logits
    scorer.logits = lambda r, q: calls.append(len(r)) or logits(r, q)  # type: ignore[method-assign]
    term = protocol_pairs(scorer, imgs)
    one = term(np.array([0]), np.array([2, 3]))
    five = term(np.array([0, 1]), np.array([2, 3, 4]))
    assert calls == [2, 4]  # (0,2), (0,3); then only the 4 new pairs
    assert five.shape == (3,) and one.shape == (2,)
    direct = logits(imgs[[0, 1]], imgs[[4, 4]]).mean()
    assert five[2] == pytest.approx(direct, abs=1e-6)


def pair_informed_writers(n: int, seed: int) -> tuple[SignatureArrays, np.ndarray]:
    """Embeddings where skilled forgeries sit as close to their writer as genuine signatures do, and a pair logit
    per image that tells them apart (noisily): only the second stage can separate them."""
    rng = np.random.default_rng(seed)
    emb, writer, forged, name, logit = [], [], [], [], []
    for w in range(n):
        centre = rng.normal(0, 3, 8)
        emb.append(centre + rng.normal(0, 0.1, (16, 8)))
        writer += [f"w{w:02d}"] * 16
        forged += [False] * 10 + [True] * 6
        name += [f"{i:02d}" for i in range(16)]
        logit += list(rng.normal(2, 1.5, 10)) + list(rng.normal(-2, 1.5, 6))
    arr = SignatureArrays(np.concatenate(emb).astype(np.float32), np.array(writer), np.array(forged),
                          np.array(name))
    return arr, np.array(logit)


def test_calibration_weighs_the_second_stage_when_it_separates_forgeries():
    val, logit = pair_informed_writers(20, 0)

    def term(ref_idx: np.ndarray, query_idx: np.ndarray) -> np.ndarray:
        return logit[query_idx]

    rule, report = calibrate(val.images, val, pairs=(term, None))
    assert rule.pair_weight > 0
    assert report[f"val_eer_k1,5_pair_weight_{rule.pair_weight}"] < report["val_eer_k1,5_pair_weight_0.0"]
    args = (val.images, val.writer, val.forged, val.name, 5, rule.aggregation)
    fused = protocol_distances(*args, spread_weight=rule.spread_weight, pair=term, pair_weight=rule.pair_weight)
    alone = protocol_distances(*args)
    assert eer(fused.genuine, fused.skilled).eer < eer(alone.genuine, alone.skilled).eer - 0.1
    assert rule.thresholds[5] == pytest.approx(eer(fused.genuine, fused.skilled).threshold)
    no_pairs, _ = calibrate(val.images, val)
    assert no_pairs.pair_weight == 0.0 and "pair_weight" not in str(sorted(_))


def test_one_to_many_rescores_only_a_shortlist(staged_verifier: Path):
    v = Verifier.from_manifest(staged_verifier, backend="pt")
    x = images(12, 5)
    e = v.embed_prepared(x)
    people = {f"p{i}": (e[2 * i : 2 * i + 2], np.round(x[2 * i : 2 * i + 2, 0] * 255).astype(np.uint8))
              for i in range(6)}
    g = Gallery(v, {p: a for p, (a, _) in people.items()}, images={p: b for p, (_, b) in people.items()})
    assert v.pair is not None
    calls = []
    logits = v.pair.logits
    v.pair.logits = lambda r, q: calls.append(len(r)) or logits(r, q)  # type: ignore[method-assign]
    best = g.best_match(e[4], x[4], shortlist=2)
    assert len(calls) == 2 and best is not None and best.decision.pair_logit is not None
    full = [g.compare(e[4], p, x[4]) for p in g.people]
    ranked = sorted(g.people, key=lambda p: g.compare(e[4], p, second_stage=False).decision.distance
                    - g.compare(e[4], p, second_stage=False).decision.threshold)[:2]
    assert best.identity in ranked
    assert best.decision == min((m for m in full if m.identity in ranked),
                                key=lambda m: m.decision.distance - m.decision.threshold).decision


def test_train_pair_then_calibrate_attaches_a_working_second_stage(six_writers: Path, tiny_corpus: Path,
                                                                  tmp_path: Path):
    from sigpipe.verifier.pairtrain import PairTrainConfig, train_pairnet
    from sigpipe.verifier.train import VerifierTrainConfig, train_verifier

    siamese = train_verifier(VerifierTrainConfig(
        data=(six_writers,), out=tmp_path / "m", width=8, dim=16, epochs=1, steps_per_epoch=1, batch=8,
        m_per_writer=4, split=(0.5, 0.5, 0.0), threads=1)).with_suffix(".pt.json")
    with pytest.raises(ModelError, match="writer splits"):
        train_pairnet(PairTrainConfig(like=siamese, data=(tiny_corpus,), out=tmp_path / "bad", threads=1))
    pair = train_pairnet(PairTrainConfig(like=siamese, data=(six_writers,), out=tmp_path / "pair", width=8,
                                         epochs=2, steps=2, batch=8, threads=1)).with_suffix(".pt.json")
    pm = json.loads(pair.read_text())
    assert pm["architecture"] == ARCHITECTURE and len(pm["training"]["history"]) == 2
    with pytest.raises(ModelError, match="writer splits of a Siamese verifier"):  # --like a pair network's manifest
        train_pairnet(PairTrainConfig(like=pair, data=(six_writers,), out=tmp_path / "like-pair", threads=1))
    assert pm["training"]["splits"] == json.loads(siamese.read_text())["training"]["splits"]
    runner = CliRunner()
    base = ["verifier", "calibrate", str(siamese), "--data", str(six_writers), "--threads", "1"]
    other = json.loads(pair.read_text())
    other["training"]["splits"] = {"six": {"train": [], "val": [], "test": []}}
    shutil.copyfile(pair.with_suffix(""), tmp_path / "other.pt")
    (tmp_path / "other.pt.json").write_text(json.dumps({**other, "file": "other.pt"}))
    res = runner.invoke(cli, [*base, "--tag", "p3", "--out", str(tmp_path / "cal3"), "--pair",
                              str(tmp_path / "other.pt.json")])
    assert res.exit_code != 0 and "other writer splits" in res.output, res.output
    res = runner.invoke(cli, [*base, "--tag", "p1", "--out", str(tmp_path / "cal"), "--pair", str(pair),
                              "--orders", "1"])
    assert res.exit_code == 0, res.output
    out = tmp_path / "cal" / "verifier.pt.json"
    m = json.loads(out.read_text())
    assert "val_eer_k1,5_pair_weight_0.0" in m["decision"]["calibration"]
    if m["decision"]["pair_weight"] == 0:  # a 2-step network may not help at any weight: then it is left out
        assert "second_stage" not in m and not (tmp_path / "cal" / "verifier-pair.pt").exists()
        return
    assert m["second_stage"]["file"] == "verifier-pair.pt" and m["second_stage"]["orders"] == 1
    assert m["second_stage"]["model"] == Manifest.load(pair).ident
    v = Verifier.from_manifest(out, backend="pt")
    assert v.needs_images and v.pair is not None and v.pair.orders == 1
    # recalibrating the result keeps its second stage
    res = runner.invoke(cli, ["verifier", "calibrate", str(out), "--data", str(six_writers), "--threads", "1",
                              "--tag", "p2", "--out", str(tmp_path / "cal2")])
    assert res.exit_code == 0, res.output
    again = json.loads((tmp_path / "cal2" / "verifier.pt.json").read_text())
    assert again["second_stage"]["sha256"] == m["second_stage"]["sha256"]
    assert again["second_stage"]["orders"] == 1  # kept, not reset to the default


def test_eval_and_verify_commands_use_the_second_stage(staged_verifier: Path, tiny_corpus: Path,
                                                       monkeypatch: pytest.MonkeyPatch):
    seen = []

    def logits(self: PairScorer, refs: np.ndarray, queries: np.ndarray) -> np.ndarray:
        # a random network's logits hardly vary: stand in a pair score that does (ink overlap)
        seen.append(len(refs))
        r, q = (np.asarray(a, np.float32).reshape(len(a), -1) for a in (refs, queries))
        r, q = r / max(float(r.max()), 1.0), q / max(float(q.max()), 1.0)
        return 40 * (r * q).sum(1) / np.maximum((r + q).sum(1), 1e-6) - 5

    monkeypatch.setattr(PairScorer, "logits", logits)
    runner = CliRunner()
    args = ["verifier", "eval", "--data", str(tiny_corpus), "--weights", str(staged_verifier), "--references", "2",
            "--json"]
    res = runner.invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert sum(seen) == 3 * 2 * 6  # 3 writers x 2 references x 6 queries, each pair scored once
    staged = json.loads(res.output)
    m = json.loads(staged_verifier.read_text())
    m["decision"]["pair_weight"] = 1e-6  # the pair term no longer matters: the Siamese ranking
    staged_verifier.write_text(json.dumps(m))
    res = runner.invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["auc"] != staged["auc"]
    imgs = sorted((tiny_corpus / "001" / "genuine").glob("*.png"))
    res = runner.invoke(cli, ["verify", str(imgs[0]), str(imgs[1]), str(imgs[2]), "--weights", str(staged_verifier),
                              "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert isinstance(out["pair_logit"], float) and out["distance"] > 0
    # the figures rebuild from the breakdown and the manifest, as an auditor would (README, Verifier: Decision)
    rule = json.loads(staged_verifier.read_text())["decision"]
    assert out["references_compared"] == 2 and out["calibrated_k"] == max(
        int(k) for k in rule["thresholds"] if int(k) <= 2)
    assert out["base_threshold"] == rule["thresholds"][str(out["calibrated_k"])]
    assert out["pair_weight"] == rule["pair_weight"] > 0 and out["spread_weight"] == rule["spread_weight"]
    assert out["threshold"] == pytest.approx(out["base_threshold"] + out["spread_weight"] * out["spread"], abs=1e-9)
    assert out["distance"] == pytest.approx(
        out["siamese_distance"] + out["pair_weight"] * math.log1p(math.exp(-out["pair_logit"])), abs=1e-9)


def test_recalibrating_keeps_the_second_stage_and_its_orders_unless_told(staged_verifier: Path, tmp_path: Path):
    from sigpipe.verifier.recalibrate import _second_stage

    m = json.loads(staged_verifier.read_text())
    m["second_stage"]["orders"] = 1
    staged_verifier.write_text(json.dumps(m))
    kept = _second_stage(Manifest.load(staged_verifier), None, None, tmp_path, {})
    assert kept is not None and kept["orders"] == 1 and kept["file"] == "verifier-pair.pt"
    assert kept["sha256"] == m["second_stage"]["sha256"] == sha256_file(tmp_path / "verifier-pair.pt")
    assert _second_stage(Manifest.load(staged_verifier), None, 2, tmp_path, {})["orders"] == 2
    (staged_verifier.parent / "tiny-pair.pt").write_bytes(b"tampered")
    with pytest.raises(ModelError, match="sha256"):
        _second_stage(Manifest.load(staged_verifier), None, None, tmp_path, {})
