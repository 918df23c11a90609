"""``sigpipe verifier train|ensemble|calibrate|train-pair|export`` on bad input: one line on stderr and exit 2 (the
convention's "usage or input error"), before any image is read or model loaded; a model that does not match its
manifest stays exit 1."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from sigpipe.cli import cli
from sigpipe.verifier.train import VerifierTrainConfig, writer_splits

SMALL = ["--epochs", "1", "--steps", "1", "--batch", "8", "--threads", "1"]


def small(but: str = "") -> list[str]:
    """:data:`SMALL` without ``but`` (the option a test sets): a run stays tiny even where the check is missing."""
    i = SMALL.index(but) if but in SMALL else len(SMALL)
    return SMALL[:i] + SMALL[i + 2:]


def input_error(res: Result, message: str) -> None:
    """Exit 2 with ``message`` on one line of stderr, through click (not an escaped exception)."""
    assert res.exit_code == 2, res.output
    assert isinstance(res.exception, SystemExit)
    assert message in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr


def usage_error(res: Result, option: str) -> None:
    assert res.exit_code == 2, res.output
    assert isinstance(res.exception, SystemExit) and option in res.stderr, res.stderr


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, ["verifier", *args])


@pytest.fixture
def trained(tiny_verifier: Path, six_writers: Path) -> Path:
    """The tiny verifier's manifest with what training records: its split settings and the writer splits of
    ``six_writers`` (half train, half validation)."""
    m = json.loads(tiny_verifier.read_text())
    split = (0.5, 0.5, 0.0)
    m["training"] = {"config": {"split": list(split), "split_seed": 0},
                     "splits": writer_splits(VerifierTrainConfig(data=(six_writers,), split=split))}
    tiny_verifier.write_text(json.dumps(m))
    return tiny_verifier


@pytest.fixture
def afile(tmp_path: Path) -> Path:
    path = tmp_path / "afile"
    path.write_text("x")
    return path


# -- verifier train -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("option, value", [
    ("--epochs", "0"), ("--epochs", "-1"), ("--steps", "0"), ("--batch", "0"), ("--batch", "-8"), ("--lr", "0"),
    ("--lr", "-1"), ("--margin", "-0.1"), ("--ema", "1.5"), ("--ema", "-0.1"), ("--doc-views", "-1"),
    ("--writer-warp", "-1"), ("--aux-weight", "-1"), ("--threads", "-1"), ("--device", "bogus"), ("--width", "0"),
])
def test_train_refuses_out_of_range_options(six_writers: Path, tmp_path: Path, option: str, value: str):
    usage_error(invoke("train", "--data", str(six_writers), "--out", str(tmp_path / "o"), *small(option), option,
                       value), option)
    assert not (tmp_path / "o" / "verifier.pt").exists()


def test_train_builds_the_network_at_the_width_asked(six_writers: Path, tmp_path: Path):
    import torch

    res = invoke("train", "--data", str(six_writers), "--out", str(tmp_path / "o"), *SMALL, "--width", "12")
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "o" / "verifier.pt.json").read_text())
    assert m["width"] == 12
    state = torch.load(tmp_path / "o" / "verifier.pt", weights_only=True)
    first = next(v for k, v in state.items() if v.ndim == 4)  # the stem convolution
    assert first.shape[0] == 12
    # the shipped verifier's preprocessing, not the plain defaults: a bank's retrained model had lost red dropout,
    # tilted-line removal and the evening-out of uneven light
    from sigpipe.weights import bundled_manifest

    shipped = bundled_manifest("verifier")["preprocess"]
    assert m["preprocess"] == shipped
    assert (m["preprocess"]["colour"], m["preprocess"]["line_tilt"], m["preprocess"]["flatten"]) == ("red", 4.0, 0.1)


def test_train_refuses_folders_that_are_not_corpora(six_writers: Path, tmp_path: Path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "flat" / "a" / "b").mkdir(parents=True)
    out = ["--out", str(tmp_path / "o"), *SMALL]
    input_error(invoke("train", "--data", str(tmp_path / "empty"), *out), f"no writers in {tmp_path / 'empty'}")
    input_error(invoke("train", "--data", str(tmp_path / "flat"), *out), f"no writers in {tmp_path / 'flat'}")
    input_error(invoke("train", "--data", str(six_writers), "--extra", str(tmp_path / "empty"), *out),
                "no writers in")


def test_train_refuses_corpora_it_cannot_split_or_batch(tiny_corpus: Path, six_writers: Path, tmp_path: Path):
    out = ["--out", str(tmp_path / "o")]
    # 3 writers at the 0.7/0.1/0.2 split: none left to validate on (found after loading every image before)
    input_error(invoke("train", "--data", str(tiny_corpus), *out, *SMALL), "no validation writer")
    # the same folder twice: corpora are keyed by folder name
    input_error(invoke("train", "--data", str(six_writers), "--data", str(six_writers / "." / ".." / "six"), *out,
                       *SMALL), "are both named 'six'")
    input_error(invoke("train", "--data", str(six_writers), *out, *small("--batch"), "--batch", "12"),
                "--batch 12: must be")
    input_error(invoke("train", "--data", str(six_writers), *out, *small("--batch"), "--batch", "96"),
                "(4 training writers")
    assert not (tmp_path / "o" / "verifier.pt").exists()


def test_train_refuses_init_that_is_not_weights_of_the_network(tiny_verifier: Path, six_writers: Path,
                                                              tmp_path: Path, afile: Path):
    out = ["--data", str(six_writers), "--out", str(tmp_path / "o"), *SMALL]
    input_error(invoke("train", *out, "--init", str(afile)), "is not a PyTorch weights file")
    input_error(invoke("train", *out, "--init", str(tiny_verifier)), "(pass the .pt file, not its manifest)")
    # width 8 weights into the default width-32 network
    input_error(invoke("train", *out, "--init", str(tiny_verifier.with_suffix(""))),
                "does not fit a resnet-s network of width 32")
    # an ensemble, as the shipped verifier is (the help's example): the way out, not some 60 missing keys
    import torch

    state = torch.load(tiny_verifier.with_suffix(""), weights_only=True)
    ensemble = tmp_path / "ensemble.pt"
    torch.save({f"members.{i}.{k}": v for i in (0, 1) for k, v in state.items()}, ensemble)
    input_error(invoke("train", *out, "--init", str(ensemble)), "is an ensemble of 2 networks (the shipped verifier "
                "is one): train from one member, taken out with: python -c")


def test_training_commands_refuse_an_out_under_a_file(trained: Path, six_writers: Path, afile: Path):
    out = str(afile / "sub")
    message = f"cannot create --out {out}: {afile} is a file"
    input_error(invoke("train", "--data", str(six_writers), "--out", out, *SMALL), message)
    input_error(invoke("train-pair", "--like", str(trained), "--data", str(six_writers), "--out", out, *SMALL),
                message)
    input_error(invoke("calibrate", str(trained), "--data", str(six_writers), "--tag", "c2", "--out", out), message)
    input_error(invoke("ensemble", str(trained), str(trained), "--data", str(six_writers), "--tag", "e", "--out",
                       out), message)


# -- manifests given as arguments -----------------------------------------------------------------------------------


def test_manifest_arguments_that_are_not_manifests_exit_2(trained: Path, tiny_verifier: Path, six_writers: Path,
                                                         tmp_path: Path, afile: Path):
    other = tmp_path / "other.json"
    other.write_text('{"a": 1}')
    weights = tiny_verifier.with_suffix("")
    data = ["--data", str(six_writers)]
    o = ["--out", str(tmp_path / "o")]
    input_error(invoke("export", "--weights", str(afile)), f"--weights: invalid model manifest {afile}")
    input_error(invoke("export", "--weights", str(weights)), f"pass its manifest {weights}.json")
    input_error(invoke("export", "--weights", str(other)), "--weights: invalid model manifest")
    input_error(invoke("calibrate", str(other), *data, "--tag", "c", *o), "MANIFEST: invalid model manifest")
    input_error(invoke("ensemble", str(weights), str(trained), *data, "--tag", "e", *o), "MEMBERS:")
    input_error(invoke("train-pair", "--like", str(afile), *data, *o, *SMALL), "--like:")
    input_error(invoke("calibrate", str(trained), *data, "--tag", "c", *o, "--pair", str(other)),
                "--pair: invalid model manifest")


def test_a_model_that_does_not_match_its_manifest_exits_2_as_in_run(trained: Path, tmp_path: Path):
    m = json.loads(trained.read_text())
    m["sha256"] = "0" * 64
    trained.write_text(json.dumps(m))
    res = invoke("export", "--weights", str(trained))
    assert res.exit_code == 2 and "does not match its manifest" in res.stderr, res.output


def test_untrained_manifests_are_refused_where_writer_splits_are_needed(tiny_verifier: Path, six_writers: Path,
                                                                       tmp_path: Path):
    data, o = ["--data", str(six_writers)], ["--out", str(tmp_path / "o")]
    for res in (invoke("calibrate", str(tiny_verifier), *data, "--tag", "c", *o),  # a KeyError traceback before
                invoke("ensemble", str(tiny_verifier), str(tiny_verifier), *data, "--tag", "e", *o),
                invoke("train-pair", "--like", str(tiny_verifier), *data, *o, *SMALL)):
        input_error(res, "records no training writer splits")


# -- verifier ensemble ----------------------------------------------------------------------------------------------


def test_ensemble_input_errors_exit_2(trained: Path, tiny_corpus: Path, six_writers: Path, tmp_path: Path):
    o = ["--out", str(tmp_path / "o"), "--tag", "e"]
    input_error(invoke("ensemble", str(trained), "--data", str(six_writers), *o), "at least two member models")
    input_error(invoke("ensemble", str(trained), str(trained), "--data", str(six_writers), *o), "given twice")
    # --data that is not the corpus the members were trained on: other writer splits
    copy = tmp_path / "copy.pt.json"
    copy.write_text(json.dumps({**json.loads(trained.read_text()), "file": str(trained.with_suffix(""))}))
    input_error(invoke("ensemble", str(trained), str(copy), "--data", str(tiny_corpus), *o),
                "not trained with the writer splits of corpus")
    other = tmp_path / "other.pt.json"
    m = json.loads(trained.read_text())
    m["file"] = str(trained.with_suffix(""))
    m["training"]["splits"]["six"]["val"] = m["training"]["splits"]["six"]["train"]
    other.write_text(json.dumps(m))
    input_error(invoke("ensemble", str(trained), str(other), "--data", str(six_writers), *o), "writer splits")
    m = json.loads(trained.read_text())
    m["file"] = str(trained.with_suffix(""))
    m["preprocess"] = {**m["preprocess"], "height": 64}
    other.write_text(json.dumps(m))
    input_error(invoke("ensemble", str(trained), str(other), "--data", str(six_writers), *o),
                "preprocesses differently")


# -- verifier calibrate ---------------------------------------------------------------------------------------------


def test_calibrate_input_errors_exit_2(trained: Path, tiny_corpus: Path, six_writers: Path, tmp_path: Path):
    o = ["--out", str(tmp_path / "o")]
    input_error(invoke("calibrate", str(trained), "--data", str(six_writers), "--tag", "test", *o),
                "needs a tag other than 'test'")
    input_error(invoke("calibrate", str(trained), "--data", str(tiny_corpus), "--tag", "c", *o),
                "--data lacks the corpora ['six']")
    input_error(invoke("calibrate", str(trained), "--data", str(six_writers), "--tag", "c", *o, "--pair",
                       str(trained)), "not a pair network")
    other = tmp_path / "elsewhere" / "six"  # a corpus of that name without the validation writers
    shutil.copytree(six_writers / sorted(p.name for p in six_writers.iterdir())[0], other / "zzz")
    input_error(invoke("calibrate", str(trained), "--data", str(other), "--tag", "c", *o),
                "lacks the validation writers")
    pair = tmp_path / "pair.pt.json"
    pair.write_text(json.dumps({**json.loads(trained.read_text()), "architecture": "pairnet-2ch",
                                "training": {"splits": {}}}))
    input_error(invoke("calibrate", str(trained), "--data", str(six_writers), "--tag", "c", *o, "--pair",
                       str(pair)), "trained on other writer splits")
    assert not (tmp_path / "o").exists()


# -- verifier train-pair --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("option, value", [
    ("--epochs", "0"), ("--steps", "0"), ("--batch", "0"), ("--lr", "0"), ("--lr", "-1"), ("--warp", "-1"),
    ("--threads", "-2"), ("--device", "nope"), ("--view-prob", "1.5"), ("--view-prob", "-0.1"),
])
def test_train_pair_refuses_out_of_range_options(trained: Path, six_writers: Path, tmp_path: Path, option: str,
                                                 value: str):
    usage_error(invoke("train-pair", "--like", str(trained), "--data", str(six_writers), "--out",
                       str(tmp_path / "p"), *small(option), option, value), option)
    assert not (tmp_path / "p").exists()


def test_train_pair_input_errors_exit_2(trained: Path, tiny_corpus: Path, six_writers: Path, tmp_path: Path,
                                       afile: Path):
    o = ["--out", str(tmp_path / "p"), *SMALL]
    input_error(invoke("train-pair", "--like", str(trained), "--data", str(tiny_corpus), *o),
                "--data does not give the writer splits")
    input_error(invoke("train-pair", "--like", str(trained), "--data", str(six_writers), *o, "--init", str(afile)),
                "is not a PyTorch weights file")
    input_error(invoke("train-pair", "--like", str(trained), "--data", str(six_writers), *o, "--init",
                       str(trained.with_suffix(""))), "does not fit a pair network")
    assert not (tmp_path / "p").exists()


def test_train_pair_takes_the_share_of_document_view_queries(six_writers: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch):
    from sigpipe.verifier.train import train_verifier

    monkeypatch.setenv("SIGPIPE_CACHE", str(tmp_path / "cache"))
    siamese = train_verifier(VerifierTrainConfig(
        data=(six_writers,), out=tmp_path / "m", width=8, dim=16, epochs=1, steps_per_epoch=1, batch=8,
        m_per_writer=4, split=(0.5, 0.5, 0.0), threads=1)).with_suffix(".pt.json")
    res = invoke("train-pair", "--like", str(siamese), "--data", str(six_writers), "--out", str(tmp_path / "p"),
                 *SMALL, "--view-prob", "0.9")
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "p" / "pair.pt.json").read_text())["training"]["config"]["view_prob"] == 0.9


def test_eval_warns_of_writers_the_model_trained_or_calibrated_on(trained: Path, six_writers: Path,
                                                                  caplog: pytest.LogCaptureFixture):
    splits = json.loads(trained.read_text())["training"]["splits"]["six"]
    with caplog.at_level("WARNING", logger="sigpipe.verifier.cli"):
        res = invoke("eval", "--data", str(six_writers), "--weights", str(trained), "--references", "1", "--json")
    assert res.exit_code == 0, res.output
    (msg,) = [r.getMessage() for r in caplog.records if "flatter" in r.getMessage()]
    assert msg.startswith("6 of the 6 writers evaluated trained tiny.test") and "held-out writers here: none" in msg
    assert f"({len(splits['train'])}) or calibrated it ({len(splits['val'])})" in msg
    caplog.clear()
    with caplog.at_level("WARNING", logger="sigpipe.verifier.cli"):
        res = invoke("eval", "--data", str(six_writers), "--weights", str(trained), "--references", "1",
                     "--writers", ",".join(splits["val"][:2]), "--json")
    assert res.exit_code == 0 and "calibrated it (2)" in caplog.text
