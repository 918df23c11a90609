"""The references check: specimens unlike the rest of their person's references (sigpipe.verifier.refcheck)."""

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from sigpipe.cli import cli
from sigpipe.verifier.decide import DecisionRule
from sigpipe.verifier.gallery import Gallery
from sigpipe.verifier.refcheck import calibrate_outlier_check, loo_margins, loo_margins_many, suspect_specimens
from sigpipe.verifier.verifier import Verifier

EXAMPLE_REFS = Path(__file__).resolve().parents[2] / "examples" / "refs"


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.mark.parametrize("aggregation", ["min", "mean", "normalised"])
@pytest.mark.parametrize("n", [2, 3, 5])
def test_loo_margins_are_the_verifiers_decision_on_each_specimen_against_the_others(tiny_verifier: Path,
                                                                                   aggregation: str, n: int):
    v = Verifier.from_manifest(tiny_verifier, backend="pt")
    rule = DecisionRule(aggregation, {1: 0.6, 3: 0.5}, 10.0, 0.0, spread_weight=0.3)
    object.__setattr__(v, "rule", rule)
    people = unit(np.random.default_rng(n).normal(size=(3, n, 16)))
    got = loo_margins_many(people, rule)
    for p in range(3):
        assert loo_margins(people[p], rule) == pytest.approx(got[p], abs=1e-12)
        for i in range(n):
            d = v.decide(people[p, i], np.delete(people[p], i, axis=0))
            assert got[p, i] == pytest.approx(d.distance - d.threshold, abs=1e-9)
    assert loo_margins(people[0, :1], rule).size == 0


class SiameseOnly:
    """A verifier double without a second stage: its full decision is the Siamese one."""

    needs_images = False

    def __init__(self, rule: DecisionRule) -> None:
        self.rule = rule

    def decide(self, query, refs, query_image=None, ref_images=None, second_stage=True):  # noqa: ANN001, ANN201
        from sigpipe.verifier.decide import aggregate, distances, reference_spread
        from sigpipe.verifier.verifier import Decision

        spread = reference_spread(refs)
        d = aggregate(distances(query, refs), self.rule.aggregation, spread)
        thr = self.rule.threshold(len(refs), spread)
        return Decision(d, thr, 0.5, d <= thr, len(refs))


def clustered(writers: int, per_writer: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = 4 * unit(rng.normal(size=(writers, 32)))  # writers alike in how much their signatures vary
    emb = unit(np.repeat(centres, per_writer, 0) + rng.normal(scale=noise, size=(writers * per_writer, 32)))
    return emb, np.repeat([f"w{i}" for i in range(writers)], per_writer)


def test_calibrated_margin_flags_the_chosen_share_of_genuine_specimens_and_catches_other_writers():
    rule = DecisionRule("min", {1: 0.5}, 10.0, 0.0)
    emb, writer = clustered(12, 16, 0.2, seed=0)
    v = SiameseOnly(rule)
    margin, screen, record = calibrate_outlier_check(v, emb, np.zeros((len(emb), 2, 2), np.uint8), writer,
                                                     np.zeros(len(emb), bool), rate=0.02)
    assert screen <= margin and record["writers"] == 12
    assert 0 < record["flag_rate"] <= 0.02 and record["specimens"] == 12 * (8 * 2 + 5 * 3 + 3 * 5 + 2 * 8)
    # on new writers: about the same share of genuine specimens flagged, and every intruder
    new, w2 = clustered(10, 6, 0.2, seed=1)
    rule = DecisionRule("min", {1: 0.5}, 10.0, 0.0, outlier_margin=margin, outlier_screen=screen)
    g = Gallery(SiameseOnly(rule))  # type: ignore[arg-type]
    for i in range(10):
        rows = new[w2 == f"w{i}"]
        g.embeddings[f"p{i}"] = np.vstack([rows[:5], new[w2 == f"w{(i + 1) % 10}"][5:]]) if i < 5 else rows[:5]
        g.sources[f"p{i}"] = tuple(f"p{i}/{j}.png" for j in range(len(g.embeddings[f"p{i}"])))
    found = suspect_specimens(g)
    intruders = {f"p{i}/5.png" for i in range(5)}
    assert intruders <= {s.file for s in found}
    assert len(found) - len(intruders) <= 2  # of 50 genuine specimens
    by_file = {s.file: s for s in found}
    # each intruder is the next writer's signature, enrolled as that person (p5's for p4, etc.)
    assert [by_file[f"p{i}/5.png"].resembles for i in range(5)] == [f"p{i + 1}" for i in range(5)]
    assert all(s.margin > margin for s in found)


def test_no_margin_in_the_manifest_means_no_check():
    emb, _ = clustered(1, 4, 2.0, seed=0)
    g = Gallery(SiameseOnly(DecisionRule("min", {1: 0.5}, 10.0, 0.0)))  # type: ignore[arg-type]
    g.embeddings["p"] = emb
    assert suspect_specimens(g) == []


def test_outlier_fields_round_trip_and_bad_values_are_refused():
    rule = DecisionRule("min", {1: 0.5}, 10.0, 0.0, outlier_margin=0.25, outlier_screen=-0.1)
    assert DecisionRule.from_dict(json.loads(json.dumps(rule.to_dict()))) == rule
    assert "outlier_margin" not in DecisionRule("min", {1: 0.5}, 10.0, 0.0).to_dict()
    with pytest.raises(ValueError, match="finite"):
        DecisionRule("min", {1: 0.5}, 10.0, 0.0, outlier_margin=float("nan"))


@pytest.fixture
def mixed_refs(tmp_path: Path) -> Path:
    """The example references with one of peter-harris's specimens also filed under j-kowalski."""
    refs = tmp_path / "refs"
    shutil.copytree(EXAMPLE_REFS, refs)
    shutil.copyfile(EXAMPLE_REFS / "peter-harris" / "02.png", refs / "j-kowalski" / "05.png")
    return refs


def test_shipped_verifier_flags_a_specimen_filed_under_the_wrong_person_and_nothing_else(mixed_refs: Path,
                                                                                        tmp_path: Path):
    v = Verifier.from_manifest()
    assert v.rule.outlier_margin is not None and v.rule.outlier_screen is not None
    clean = Gallery.enroll(EXAMPLE_REFS, v, cache=tmp_path / "cache")
    assert suspect_specimens(clean) == []
    g = Gallery.enroll(mixed_refs, v, cache=tmp_path / "cache")
    assert g.sources["j-kowalski"][-1] == "j-kowalski/05.png" and g.root == mixed_refs
    [s] = suspect_specimens(g)
    assert (s.person, s.file, s.resembles) == ("j-kowalski", str(mixed_refs / "j-kowalski" / "05.png"),
                                                "peter-harris")
    assert s.margin > v.rule.outlier_margin and "j-kowalski" in s.message()


def test_check_refs_cli_exit_codes_and_json(mixed_refs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SIGPIPE_CACHE", str(tmp_path / "cache"))
    runner = CliRunner()
    res = runner.invoke(cli, ["check-refs", str(EXAMPLE_REFS)])
    assert res.exit_code == 0, res.output
    assert "4 people, 16 specimens: 0 unusable file(s), 0 suspect(s), 0 empty folder(s), 0 duplicate(s)" in res.output
    (mixed_refs / "i-wright" / "broken.png").write_bytes(b"not an image")
    res = runner.invoke(cli, ["check-refs", str(mixed_refs), "--json"])
    assert res.exit_code == 1, res.output
    d = json.loads(res.stdout)
    assert d["people"] == 4 and d["specimens"]["j-kowalski"] == 5
    assert [e["file"] for e in d["reference_errors"]] == [str(mixed_refs / "i-wright" / "broken.png")]
    assert [(s["person"], s["resembles"]) for s in d["suspect_references"]] == [("j-kowalski", "peter-harris")]
    assert set(d["models"]) == {"detector", "verifier", "orientation"}
    assert d["empty_folders"] == [] and len(d["duplicates"]) == 1  # the stray is a copy of peter-harris's 02.png
    assert "'j-kowalski', 'peter-harris', are the same files" in d["duplicates"][0]
    # a new customer's folder not yet filled, and one person's specimen filed under another too (an operator's
    # check-refs said "0 unusable file(s), 0 suspect(s)" for both, exit 0)
    (mixed_refs / "new-customer").mkdir()
    (mixed_refs / "i-wright" / "copy.png").write_bytes((mixed_refs / "peter-harris" / "01.png").read_bytes())
    res = runner.invoke(cli, ["check-refs", str(mixed_refs)])
    assert res.exit_code == 1
    assert f"empty     {mixed_refs / 'new-customer'}: no specimen file" in res.output
    assert "duplicate 1 specimen(s) enrolled for 2 people, 'i-wright', 'peter-harris', are the same files" in res.output
    assert "1 empty folder(s), 2 duplicate(s)" in res.output and "move or delete it" in res.output
    # a person left with a single specimen: said as `run` says it (a specimen audit found check-refs silent), no error
    lone = tmp_path / "lone"
    shutil.copytree(EXAMPLE_REFS, lone)
    for f in sorted((lone / "i-wright").glob("*.png"))[1:]:
        f.unlink()
    res = runner.invoke(cli, ["check-refs", str(lone), "--json"])
    assert res.exit_code == 0, res.output
    (w,) = json.loads(res.stdout)["warnings"]
    assert w.startswith("1 of 4 enrolled people have a single usable reference (i-wright)")
    assert "single    1 of 4 enrolled people" in runner.invoke(cli, ["check-refs", str(lone)]).output
    # a bank's export that turned every specimen a quarter: unlike one signature the right way up, though alike
    # among themselves (the check against the person's other specimens saw nothing); said of REFS as a whole
    turned = tmp_path / "turned"
    shutil.copytree(EXAMPLE_REFS, turned)
    for f in turned.glob("*/*.png"):
        cv2.imwrite(str(f), cv2.rotate(cv2.imread(str(f), cv2.IMREAD_GRAYSCALE), cv2.ROTATE_90_CLOCKWISE))
    res = runner.invoke(cli, ["check-refs", str(turned), "--json"])
    assert res.exit_code == 1, res.output
    (odd,) = json.loads(res.stdout)["odd_specimens"]
    assert odd.startswith("16 of the 16 specimens enrolled have ink at least 1.5 times taller than wide")
    # one person's tall hand, or one turned specimen, is not it (the latter is the suspects' check's)
    for f in sorted(turned.glob("*/*.png"))[4:]:
        shutil.copyfile(EXAMPLE_REFS / f.relative_to(turned), f)
    assert json.loads(runner.invoke(cli, ["check-refs", str(turned), "--json"]).stdout)["odd_specimens"] == []
    res = runner.invoke(cli, ["check-refs", str(tmp_path / "missing")])
    assert res.exit_code == 2
    (tmp_path / "empty").mkdir()
    res = runner.invoke(cli, ["check-refs", str(tmp_path / "empty")])
    assert res.exit_code == 1 and "nobody to check" in res.stderr


def test_verify_names_a_reference_unlike_the_others():
    jk = sorted(str(p) for p in (EXAMPLE_REFS / "j-kowalski").glob("*.png"))
    stray = str(EXAMPLE_REFS / "peter-harris" / "02.png")
    res = CliRunner().invoke(cli, ["verify", jk[0], *jk[1:], stray, "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["suspect_references"] == [stray]
    assert json.loads(res.stdout)["nearest_reference"] in jk[1:] + [stray]
    res = CliRunner().invoke(cli, ["verify", jk[0], *jk[1:], "--json"])
    assert json.loads(res.stdout)["suspect_references"] == []


def test_the_same_specimen_enrolled_twice_is_a_warning(mixed_refs: Path, tmp_path: Path):
    shutil.copyfile(mixed_refs / "i-wright" / "01.png", mixed_refs / "i-wright" / "01-copy.png")
    g = Gallery.enroll(mixed_refs, Verifier.from_manifest(), cache=tmp_path / "cache")
    assert sorted(g.warnings) == [
        "'i-wright' has 1 specimen(s) more than once (i-wright/01-copy.png = i-wright/01.png): each copy counts in "
        "their threshold; keep one",
        "1 specimen(s) enrolled for 2 people, 'j-kowalski', 'peter-harris', are the same files (j-kowalski/05.png = "
        "peter-harris/02.png): each belongs to one of them"]
    assert Gallery.enroll(EXAMPLE_REFS, Verifier.from_manifest(), cache=tmp_path / "cache").warnings == []
    # the same signature saved again as JPEG: not the same file, but one signature counted twice all the same
    (mixed_refs / "i-wright" / "01-copy.png").unlink()
    img = cv2.imread(str(mixed_refs / "i-wright" / "01.png"), cv2.IMREAD_GRAYSCALE)
    cv2.imwrite(str(mixed_refs / "i-wright" / "01-scan.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 75])
    g = Gallery.enroll(mixed_refs, Verifier.from_manifest(), cache=tmp_path / "cache")
    (near,) = [w for w in g.warnings if "saved twice" in w]
    assert near.startswith("'i-wright' has 1 pair(s) of specimens that are one signature saved twice (i-wright/01")
    assert "01-scan.jpg" in near and near in g.duplicates


def test_verify_takes_a_person_s_folder_as_the_references(tmp_path: Path):
    """A newcomer gave REFS/<person> as the REF (as REFS holds it) and got click's "is a directory"."""
    folder = EXAMPLE_REFS / "j-kowalski"
    files = sorted(str(p) for p in folder.glob("*.png"))
    questioned = str(EXAMPLE_REFS / "peter-harris" / "02.png")
    by_files = CliRunner().invoke(cli, ["verify", questioned, *files, "--json"])
    by_folder = CliRunner().invoke(cli, ["verify", questioned, str(folder), "--json"])
    assert by_files.exit_code == by_folder.exit_code == 0, by_folder.output
    assert json.loads(by_folder.stdout) == json.loads(by_files.stdout)
    (tmp_path / "nobody").mkdir()
    res = CliRunner().invoke(cli, ["verify", questioned, str(tmp_path / "nobody")])
    assert res.exit_code == 2 and "holds no specimen file" in res.output


def test_odd_layouts_of_a_preprocessed_specimen():
    from sigpipe.verifier.gallery import odd_layout
    from sigpipe.verifier.preprocess import preprocess

    sigs = [cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for f in sorted((EXAMPLE_REFS / "j-kowalski").glob("*.png"))]
    assert [odd_layout(preprocess(s)) for s in sigs] == [None] * 4
    assert odd_layout(preprocess(cv2.rotate(sigs[0], cv2.ROTATE_90_CLOCKWISE))) == "turned"
    width = max(x.shape[1] for x in sigs[:3])
    card = np.vstack([np.pad(x, ((30, 30), (0, width - x.shape[1])), constant_values=255) for x in sigs[:3]])
    assert odd_layout(preprocess(card)) == "stacked"
