import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from sigpipe.cli import cli
from sigpipe.errors import ModelError
from sigpipe.verifier.decide import DecisionRule, aggregate, distances, fit_logistic, reference_spread
from sigpipe.verifier.gallery import Gallery
from sigpipe.verifier.model import ARCHITECTURES, SiameseTriplet, build_model
from sigpipe.verifier.verifier import Verifier

DESIGN_KEYS = {"eer", "far_skilled", "far_random", "frr", "accuracy", "auc", "threshold", "writers", "queries"}


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_every_architecture_embeds_to_unit_vectors(arch):
    net = build_model(arch, dim=32, width=8).eval()
    with torch.no_grad():
        z = net(torch.rand(3, 1, 80, 160))
    assert z.shape == (3, 32)
    assert torch.allclose(z.norm(dim=1), torch.ones(3), atol=1e-5)
    a, p, n = SiameseTriplet(net)(torch.rand(2, 1, 80, 160), torch.rand(2, 1, 80, 160), torch.rand(2, 1, 80, 160))
    assert a.shape == p.shape == n.shape == (2, 32)


def test_distances_and_aggregation():
    refs = np.array([[1.0, 0.0], [0.0, 1.0]])
    q = np.array([1.0, 0.0])
    d = distances(q, refs)
    assert d == pytest.approx([0.0, np.sqrt(2)])
    assert aggregate(d, "mean") == pytest.approx(np.sqrt(2) / 2)
    assert aggregate(d, "min") == 0.0
    assert reference_spread(refs) == pytest.approx(np.sqrt(2))
    assert aggregate(d, "normalised", reference_spread(refs)) == pytest.approx(0.5)
    assert distances(np.stack([q, q]), refs).shape == (2, 2)


def test_decision_rule_round_trip_and_threshold_by_k():
    rule = DecisionRule("mean", {1: 0.5, 5: 0.4}, 8.0, 0.0)
    assert DecisionRule.from_dict(json.loads(json.dumps(rule.to_dict()))) == rule
    assert rule.threshold(1) == 0.5 and rule.threshold(3) == 0.5 and rule.threshold(12) == 0.4
    assert rule.score(0.4, 5) == pytest.approx(0.5)
    assert rule.score(0.1, 5) > 0.9 > 0.1 > rule.score(0.9, 5)


def test_logistic_fit_separates():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-0.1, 0.05, 200), rng.normal(0.1, 0.05, 200)])
    y = np.concatenate([np.ones(200), np.zeros(200)])
    a, b = fit_logistic(x, y)
    p = 1 / (1 + np.exp(a * x + b))
    assert a > 0
    assert p[:200].mean() > 0.8 and p[200:].mean() < 0.2


def test_tampered_weights_are_refused(tiny_verifier: Path):
    Verifier.from_manifest(tiny_verifier)  # loads
    weights = tiny_verifier.with_suffix("")
    weights.write_bytes(weights.read_bytes() + b"\0")
    with pytest.raises(ModelError, match="does not match its manifest"):
        Verifier.from_manifest(tiny_verifier)


@pytest.mark.parametrize("edit", [
    {"thresholds": {"1": float("nan")}}, {"thresholds": {"1": float("inf")}}, {"thresholds": {"1": -0.1}},
    {"thresholds": {}}, {"pair_weight": float("nan")}, {"score_a": float("nan")}, {"aggregation": "median"}])
def test_a_decision_rule_no_calibration_writes_is_refused_at_load(tiny_verifier: Path, edit: dict):
    import json

    m = json.loads(tiny_verifier.read_text())  # a manifest edited by hand: NaN would make every verdict the same
    m["decision"] = {**m["decision"], **edit}
    tiny_verifier.write_text(json.dumps(m))
    with pytest.raises(ModelError, match="incomplete or inconsistent"):
        Verifier.from_manifest(tiny_verifier)


def test_missing_weights_file_is_a_clear_error(tiny_verifier: Path):
    tiny_verifier.with_suffix("").unlink()
    with pytest.raises(ModelError, match="missing"):
        Verifier.from_manifest(tiny_verifier)


def test_verifier_decides_with_manifest_rule(tiny_verifier: Path, tiny_corpus: Path):
    v = Verifier.from_manifest(tiny_verifier)
    imgs = [np.full((50, 120), 230, np.uint8) for _ in range(3)]
    for i, im in enumerate(imgs):
        im[20:25, 10 + i * 5 : 100] = 10
    e = v.embed(imgs)
    assert e.shape == (3, 16)
    d = v.decide(e[0], e[1:])
    assert d.references == 2 and d.threshold == 0.3
    assert d.genuine == (d.distance <= 0.3)
    assert 0.0 <= d.score <= 1.0


def test_gallery_enrols_and_caches_by_content(tiny_verifier: Path, tiny_corpus: Path, tmp_path: Path):
    refs = tmp_path / "refs"
    (refs / "alice").mkdir(parents=True)
    (refs / "bob").mkdir()
    for i, f in enumerate(sorted((tiny_corpus / "001" / "genuine").glob("*.png"))[:2]):
        (refs / "alice" / f"{i}.png").write_bytes(f.read_bytes())
    (refs / "bob" / "0.png").write_bytes((tiny_corpus / "002" / "genuine" / "01.png").read_bytes())
    (refs / "bob" / "broken.png").write_bytes(b"not a png")
    v = Verifier.from_manifest(tiny_verifier)
    cache = tmp_path / "cache"
    g = Gallery.enroll(refs, v, cache=cache)
    assert g.people == ["alice", "bob"]
    assert g.embeddings["alice"].shape == (2, 16)
    assert any("broken.png" in k for k in g.errors)
    assert len(list(cache.glob("*.npz"))) == 3
    q = v.embed([np.full((10, 10), 255, np.uint8)])[0]
    best = g.best_match(g.embeddings["bob"][0])
    assert best is not None and best.identity == "bob" and best.decision.distance == pytest.approx(0, abs=1e-5)
    assert g.compare(q, "alice").identity == "alice"
    # an edited specimen is re-embedded (new cache entry), an unchanged one is not
    (refs / "bob" / "0.png").write_bytes((tiny_corpus / "003" / "genuine" / "01.png").read_bytes())
    Gallery.enroll(refs, v, cache=cache)
    assert len(list(cache.glob("*.npz"))) == 4


def test_gallery_reads_transparent_specimens_and_refuses_blank_ones(tiny_verifier: Path, tiny_corpus: Path,
                                                                     tmp_path: Path):
    from PIL import Image

    from sigpipe.errors import InputError

    src = sorted((tiny_corpus / "001" / "genuine").glob("*.png"))[:2]
    refs = tmp_path / "refs"
    for person in ("opaque", "clear"):
        (refs / person / "2019").mkdir(parents=True)
    for i, f in enumerate(src):  # the second specimen in a sub-folder: enrolled too
        where = "" if i == 0 else "2019"
        (refs / "opaque" / where / f.name).write_bytes(f.read_bytes())
        ink = 255 - np.asarray(Image.open(f).convert("L"))  # an exported e-signature: black, drawn in the alpha
        rgba = np.dstack([np.zeros_like(ink)] * 3 + [ink])
        Image.fromarray(rgba, "RGBA").save(refs / "clear" / where / f.name)
    Image.fromarray(np.full((60, 150), 255, np.uint8)).save(refs / "clear" / "blank.png")
    Image.fromarray(np.zeros((3, 3), np.uint8)).save(refs / "clear" / "dot.png")
    Image.fromarray(np.zeros((3, 3), np.uint8)).save(refs / "loose.png")  # not in a person's folder
    v = Verifier.from_manifest(tiny_verifier)
    g = Gallery.enroll(refs, v, cache=tmp_path / "cache")
    assert g.people == ["clear", "opaque"] and len(g.embeddings["opaque"]) == 2
    np.testing.assert_allclose(g.embeddings["clear"], g.embeddings["opaque"], atol=1e-5)
    assert sorted(Path(k).name for k in g.errors) == ["blank.png", "dot.png", "loose.png"]
    assert "no ink" in g.errors[str(refs / "clear" / "blank.png")]
    assert "person's folder" in g.errors[str(refs / "loose.png")]
    one = tmp_path / "one-person"  # --refs given one person's folder by mistake
    one.mkdir()
    (one / "a.png").write_bytes(src[0].read_bytes())
    with pytest.raises(InputError, match="one folder per person"):
        Gallery.enroll(one, v, cache=tmp_path / "cache")


def test_gallery_batched_enrolment_matches_one_by_one(tiny_verifier: Path, tiny_corpus: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch):
    from sigpipe.datasets.corpus import read_gray
    from sigpipe.verifier import gallery

    refs = tmp_path / "refs"
    files: dict[str, list[Path]] = {}
    for w in ("001", "002", "003"):
        (refs / w).mkdir(parents=True)
        for f in sorted((tiny_corpus / w / "genuine").glob("*.png")):
            (refs / w / f.name).write_bytes(f.read_bytes())
            files.setdefault(w, []).append(refs / w / f.name)
    monkeypatch.setattr(gallery, "ENROLL_BATCH", 5)  # 12 specimens: three forward passes
    v = Verifier.from_manifest(tiny_verifier)
    calls = []
    embed_prepared = v.embed_prepared
    monkeypatch.setattr(v, "embed_prepared", lambda x, batch=128: calls.append(len(x)) or embed_prepared(x, batch))
    g = Gallery.enroll(refs, v, cache=tmp_path / "cache")
    assert calls == [5, 5, 2]
    for w, fs in files.items():
        one_by_one = np.concatenate([v.embed([read_gray(f)]) for f in fs])
        np.testing.assert_allclose(g.embeddings[w], one_by_one, atol=1e-5)
        prepared = v.prepare([read_gray(f) for f in fs])[:, 0]
        np.testing.assert_array_equal(g.images[w], np.round(prepared * 255).astype(np.uint8))


def test_eval_cli_prints_design_keys(tiny_verifier: Path, tiny_corpus: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("SIGPIPE_CACHE", str(tmp_path / "cache"))
    roc = tmp_path / "roc.png"
    r = CliRunner().invoke(cli, ["verifier", "eval", "--data", str(tiny_corpus), "--weights", str(tiny_verifier),
                                 "--references", "2", "--json", "--plot", str(roc)])
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)
    assert set(res) == DESIGN_KEYS
    assert res["writers"] == 3
    assert res["queries"] == 3 * (2 + 2 + 2)  # per writer: 2 genuine, 2 skilled, 2 random-forgery queries
    assert res["threshold"] == 0.25 or res["threshold"] == 0.3
    assert roc.stat().st_size > 0


def test_verify_cli(tiny_verifier: Path, tiny_corpus: Path):
    g = sorted((tiny_corpus / "001" / "genuine").glob("*.png"))
    r = CliRunner().invoke(cli, ["verify", str(g[0]), str(g[1]), str(g[2]), "--weights", str(tiny_verifier), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["verdict"] in ("genuine", "forged") and out["references"] == [str(g[1]), str(g[2])]
    # no second stage: the distance is the Siamese one, and the threshold t[2] + spread_weight * spread
    assert out["references_compared"] == 2 and out["pair_weight"] == 0.0 and out["pair_logit"] is None
    assert out["distance"] == out["siamese_distance"] and out["spread"] > 0
    assert out["threshold"] == pytest.approx(out["base_threshold"] + out["spread_weight"] * out["spread"], abs=1e-9)
    bad = CliRunner().invoke(cli, ["verify", str(tiny_corpus / "001"), str(g[1])])
    assert bad.exit_code == 2
