"""The operating point for a target false-accept rate: labelled summary CSV -> offset -> shifted verifier."""

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from sigpipe.cli import cli
from sigpipe.errors import ModelError
from sigpipe.verifier.decide import DecisionRule
from sigpipe.verifier.operating import (
    LabelsError,
    check_same_verifier,
    choose_offset,
    read_labelled,
    shifted_manifest,
)
from sigpipe.verifier.verifier import Verifier
from sigpipe.weights import Manifest, bundled_manifest

HEADER = "document,page,x1,y1,x2,y2,identity,distance,threshold,score,verdict,document_verdict,truth\n"


def labelled_csv(tmp_path: Path, rows: list[tuple[float, float, str]], run_summary: bool = True) -> Path:
    """A summary.csv with a truth column: rows of (distance, threshold, truth); with ``run_summary``, the run's
    summary.json beside it naming the bundled verifier, as in the OUT of a `sigpipe run`."""
    lines = [f"d{i}.pdf,1,0,0,10,10,alice,{d!r},{t!r},0.5,genuine,genuine,{truth}\n"
             for i, (d, t, truth) in enumerate(rows)]
    path = tmp_path / "summary.csv"
    path.write_text(HEADER + "".join(lines))
    if run_summary:
        (tmp_path / "summary.json").write_text(json.dumps({"models": {"verifier": bundled_manifest("verifier").ident}}))
    return path


GENUINE = [-0.3, -0.2, -0.1, 0.05]
FORGED = [-0.15, 0.1, 0.2, 0.3]


def test_read_labelled_returns_margins_and_skips_unlabelled_rows(tmp_path: Path):
    rows = [(0.5 + m, 0.5, "genuine") for m in GENUINE] + [(0.6 + m, 0.6, " Forged ") for m in FORGED]
    path = labelled_csv(tmp_path, [*rows, (0.4, 0.5, "")])
    g, f = read_labelled(path)
    np.testing.assert_allclose(g, GENUINE, atol=1e-12)
    np.testing.assert_allclose(f, FORGED, atol=1e-12)
    # a document without signature: empty distance, no truth -> skipped
    path.write_text(path.read_text() + "e.pdf,,,,,,,,,,,unsigned,\n")
    assert read_labelled(path)[0].size == 4


@pytest.mark.parametrize("body, message", [
    ("document,distance,threshold\na.pdf,0.1,0.2\n", "no column truth"),
    (HEADER + "a.pdf,1,0,0,1,1,alice,0.1,0.2,0.5,genuine,genuine,maybe\n", "line 2: truth must be"),
    (HEADER + "a.pdf,1,0,0,1,1,alice,,,,no_reference,needs_review,forged\n", "has no distance"),
])
def test_read_labelled_refuses_unusable_labels(tmp_path: Path, body: str, message: str):
    path = tmp_path / "summary.csv"
    path.write_text(body)
    with pytest.raises(LabelsError, match=message):
        read_labelled(path)


def test_offset_allows_the_target_share_of_forgeries():
    op = choose_offset(np.array(GENUINE), np.array(FORGED), 0.25)
    # one forgery of 4 may stay accepted: the offset lies between the highest genuine margin (0.05) and the
    # second-lowest forgery (0.1)
    assert op.offset == pytest.approx(0.075)
    assert (op.far, op.frr) == (0.25, 0.0)
    assert (op.far_before, op.frr_before) == (0.25, 0.25)
    assert op.resolvable  # 4 forgeries can measure 25%
    op = choose_offset(np.array(GENUINE), np.array(FORGED), 0.1)
    # no forgery may be accepted: halfway between the genuine -0.2 and the lowest forgery -0.15
    assert op.offset == pytest.approx(-0.175)
    assert (op.far, op.frr) == (0.0, 0.5)
    assert not op.resolvable


def test_offset_without_genuine_margins_below_sits_just_under_the_first_rejected_forgery():
    op = choose_offset(np.array([0.5, 0.6]), np.array([0.1, 0.2]), 0.01)
    assert 0.099 < op.offset < 0.1
    assert (op.far, op.frr) == (0.0, 1.0)


@pytest.mark.parametrize("far", [0.0, 1.0, -0.1])
def test_offset_refuses_a_far_outside_0_1(far: float):
    with pytest.raises(LabelsError, match="between 0 and 1"):
        choose_offset(np.array(GENUINE), np.array(FORGED), far)


def test_offset_needs_both_kinds_of_labels():
    with pytest.raises(LabelsError, match="0 forged"):
        choose_offset(np.array(GENUINE), np.array([]), 0.01)


def test_shifted_manifest_moves_every_threshold_and_keeps_the_scores(tmp_path: Path):
    m = bundled_manifest("verifier")
    path = shifted_manifest(m, -0.05, "test-far", tmp_path / "far")
    new = Manifest.load(path)
    old_rule, new_rule = DecisionRule.from_dict(m["decision"]), DecisionRule.from_dict(new["decision"])
    assert new.tag == "test-far" and new.sha256 == m.sha256 and new.ident != m.ident
    assert not new.edited  # written by a tool, so stamped with its new settings
    for k in (1, 2, 5, 9):
        assert new_rule.threshold(k, 0.3) == pytest.approx(old_rule.threshold(k, 0.3) - 0.05)
        assert new_rule.score(0.5, k, 0.3) == pytest.approx(old_rule.score(0.5, k, 0.3))
    assert new["operating_point"] == {"from": m.ident, "offset": -0.05}
    # every file it names was copied and passes its hash check, the second stage's included
    v = Verifier(new, backend="onnx")
    assert v.pair is not None


def test_shifted_manifest_refuses_the_same_tag_and_a_tampered_file(tmp_path: Path):
    m = bundled_manifest("verifier")
    with pytest.raises(ModelError, match="tag other than"):
        shifted_manifest(m, 0.1, m.tag, tmp_path / "a")
    copy = tmp_path / "b"
    shifted_manifest(m, 0.1, "x", copy)
    moved = Manifest.load(copy / "verifier.pt.json")
    (copy / moved["second_stage"]["file"]).write_bytes(b"tampered")
    with pytest.raises(ModelError, match="does not match"):
        shifted_manifest(moved, 0.1, "y", tmp_path / "c")


def test_labels_from_another_verifier_are_refused(tmp_path: Path):
    path = labelled_csv(tmp_path, [(0.1, 0.2, "genuine")], run_summary=False)
    m = bundled_manifest("verifier")
    # no summary.json (a CSV copied out of its OUT): which verifier measured it cannot be told. A helper's copy,
    # from a fine-tuned verifier, gave the bundled one a promised FAR of 4.5% and a measured 25%
    with pytest.raises(LabelsError, match="cannot be told"):
        check_same_verifier(path, m)
    check_same_verifier(path, m, chosen=True)  # the user named the run's verifier (--weights)
    res = CliRunner().invoke(cli, ["verifier", "operating-point", str(path), "--far", "0.25"])
    assert res.exit_code == 2 and "--weights" in res.output
    (tmp_path / "summary.json").write_text(json.dumps({"models": {"verifier": m.ident}}))
    check_same_verifier(path, m)
    (tmp_path / "summary.json").write_text(json.dumps({"models": {"verifier": m.ident + " bf16"}}))
    check_same_verifier(path, m)  # the same networks run in bf16 (sigpipe run --precision bf16)
    (tmp_path / "summary.json").write_text(json.dumps({"models": {"verifier": "other.v1 0123456789ab"}}))
    with pytest.raises(LabelsError, match="other.v1"):
        check_same_verifier(path, m)


def test_cli_prints_the_offset_and_writes_a_usable_verifier(tmp_path: Path):
    rows = [(0.5 + m, 0.5, "genuine") for m in GENUINE] + [(0.5 + m, 0.5, "forged") for m in FORGED]
    path = labelled_csv(tmp_path, rows)
    out = tmp_path / "far"
    res = CliRunner().invoke(cli, ["verifier", "operating-point", str(path), "--far", "0.25", "--out", str(out),
                                   "--json"])
    assert res.exit_code == 0, res.output
    got = json.loads(res.output.strip().splitlines()[-1])
    assert got["offset"] == pytest.approx(0.075) and got["far"] == 0.25 and got["frr"] == 0.0
    assert Manifest.load(got["manifest"]).tag == bundled_manifest("verifier").tag + "-far0.25-offset+0.075"
    bad = labelled_csv(tmp_path, [(0.1, 0.2, "yes")])
    res = CliRunner().invoke(cli, ["verifier", "operating-point", str(bad), "--far", "0.01"])
    assert res.exit_code == 2 and "truth must be genuine or forged" in res.output  # an input error


def test_cli_pools_several_labelled_runs(tmp_path: Path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = labelled_csv(tmp_path / "a", [(0.5 + m, 0.5, "genuine") for m in GENUINE[:2]]
                     + [(0.5 + FORGED[0], 0.5, "forged")])
    b = labelled_csv(tmp_path / "b", [(0.5 + m, 0.5, "genuine") for m in GENUINE[2:]]
                     + [(0.5 + m, 0.5, "forged") for m in FORGED[1:]])
    res = CliRunner().invoke(cli, ["verifier", "operating-point", str(a), str(b), "--far", "0.25", "--json"])
    assert res.exit_code == 0, res.output
    got = json.loads(res.output.strip().splitlines()[-1])
    assert (got["genuine"], got["forged"]) == (4, 4)
    assert got["offset"] == pytest.approx(0.075) and got["manifest"] is None
