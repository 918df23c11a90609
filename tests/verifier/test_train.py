import json
from pathlib import Path

import numpy as np
import pytest

from sigpipe.errors import InputError
from sigpipe.verifier.train import VerifierTrainConfig, train_verifier, writer_splits
from sigpipe.verifier.verifier import Verifier


def test_tiny_training_run_writes_a_loadable_calibrated_model(six_writers: Path, tiny_corpus: Path, tmp_path: Path):
    corpus, extra = six_writers, tiny_corpus
    cfg = VerifierTrainConfig(
        data=(corpus,), extra=(extra,), out=tmp_path / "run", width=8, dim=16, epochs=2, steps_per_epoch=2,
        batch=8, m_per_writer=4, split=(0.5, 0.5, 0.0), threads=1, patience=5,
    )
    splits = writer_splits(cfg)
    assert set(splits["six"]["train"]).isdisjoint(splits["six"]["val"])
    assert splits["corpus"] == {"train": ["001", "002", "003"], "val": [], "test": []}
    weights = train_verifier(cfg)
    manifest = json.loads(weights.with_name(weights.name + ".json").read_text())
    assert manifest["training"]["epochs_run"] == 2 and len(manifest["training"]["history"]) == 2
    assert manifest["decision"]["aggregation"] in ("mean", "min", "normalised")
    assert set(manifest["decision"]["thresholds"]) >= {"1", "2", "3"}
    assert manifest["training"]["splits"] == splits
    v = Verifier.from_manifest(weights.with_name(weights.name + ".json"))
    e = v.embed([np.full((40, 90), 230, np.uint8)])
    assert e.shape == (1, 16)
    # resuming a finished run trains no more epochs and gives the same best state
    cfg2 = VerifierTrainConfig(**{**cfg.__dict__, "resume": True})
    assert train_verifier(cfg2) == weights
    # ... but not with other settings than it was trained with, nor from a folder with nothing to resume
    with pytest.raises(InputError, match="other settings than it was trained with: width 8 -> 4"):
        train_verifier(VerifierTrainConfig(**{**cfg.__dict__, "resume": True, "width": 4}))
    with pytest.raises(InputError, match="nothing to resume"):
        train_verifier(VerifierTrainConfig(**{**cfg.__dict__, "resume": True, "out": tmp_path / "empty"}))
    with pytest.raises(InputError, match="corpus folder not found"):
        train_verifier(VerifierTrainConfig(data=(tmp_path / "missing",), out=tmp_path / "x"))


def test_a_run_interrupted_and_resumed_trains_as_one_that_was_not(six_writers: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch):
    """Dropout draws from torch's global generator, which the checkpoint did not keep: a resumed run trained other
    weights than the same run uninterrupted (a bank's helper measured weights differing by up to 0.19)."""
    import torch

    from sigpipe.verifier import train as train_mod

    base = dict(data=(six_writers,), width=8, dim=16, epochs=3, steps_per_epoch=2, batch=8, m_per_writer=4,
                split=(0.5, 0.5, 0.0), threads=1, patience=1)
    whole = VerifierTrainConfig(out=tmp_path / "whole", **base)
    train_verifier(whole)
    real = train_mod._checkpoint

    def killed(path: Path, **state: object) -> None:  # the run stops for the night after its first epoch
        real(path, **state)
        raise KeyboardInterrupt

    monkeypatch.setattr(train_mod, "_checkpoint", killed)
    broken = VerifierTrainConfig(out=tmp_path / "broken", **base)
    with pytest.raises(KeyboardInterrupt):
        train_verifier(broken)
    monkeypatch.undo()
    torch.manual_seed(12345)  # another process: the global generator is not where the first run left it
    train_verifier(VerifierTrainConfig(**{**broken.__dict__, "resume": True}))
    a = torch.load(tmp_path / "whole" / "last.ckpt", weights_only=False)
    b = torch.load(tmp_path / "broken" / "last.ckpt", weights_only=False)
    assert a["epoch"] == b["epoch"] and a["history"][-1]["loss"] == b["history"][-1]["loss"]
    assert a["stale"] == b["stale"]  # early stopping (patience 1) counts the same across the break
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k


def test_a_run_of_ten_steps_trains(six_writers: Path, tmp_path: Path):
    """2 epochs of 5 steps, a first smoke test: PyTorch's one-cycle schedule divided by zero (a warm-up of 0.1 x 10
    steps lasts one step, and it divides by that less one)."""
    import torch

    from sigpipe._training import one_cycle

    w = train_verifier(VerifierTrainConfig(data=(six_writers,), out=tmp_path / "ten", width=8, dim=16, epochs=2,
                                           steps_per_epoch=5, batch=8, m_per_writer=4, split=(0.5, 0.5, 0.0),
                                           threads=1))
    assert w.is_file()
    for total in (10, 11, 20, 100):  # steps through without an error, warming up to max_lr and annealing
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
        sched, rates = one_cycle(opt, 0.1, total, pct_start=0.1), []
        for _ in range(total):
            rates.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        assert 0.09 < max(rates) <= 0.1 and rates[-1] < rates[0], total


def test_fine_tuning_at_a_different_input_starts_from_given_weights(six_writers: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch):
    from sigpipe.verifier.preprocess import PreprocessConfig

    base = dict(data=(six_writers,), width=8, dim=16, epochs=1, steps_per_epoch=1, batch=8, m_per_writer=4,
                split=(0.5, 0.5, 0.0), threads=1)
    import torch

    first = train_verifier(VerifierTrainConfig(out=tmp_path / "a", **base))
    state = torch.load(first, weights_only=True)
    state["fc.weight"] += 0.5  # a mark that a random initialisation would not have
    torch.save(state, first)
    # the network is fully convolutional up to its pooling: weights trained at 80x160 load at 48x96
    second = train_verifier(VerifierTrainConfig(out=tmp_path / "b", init=first, lr=1e-9,
                                                preprocess=PreprocessConfig(height=48, width=96), **base))
    m = json.loads(second.with_name(second.name + ".json").read_text())
    assert (m["input"]["height"], m["input"]["width"]) == (48, 96)
    assert m["preprocess"]["height"] == 48 and m["training"]["config"]["init"] == str(first)
    # trained on a folder of one's own, the manifest said "CEDAR and BHSig260: research-use signature corpora"
    assert m["training"]["provenance"] == f"{six_writers.name}: the trainer's own data (its provenance and licence " \
        "are the trainer's to record)"
    v = Verifier.from_manifest(second.with_name(second.name + ".json"))
    assert v.prepare([np.full((40, 90), 230, np.uint8)]).shape == (1, 1, 48, 96)
    b = torch.load(second, weights_only=True)
    assert torch.allclose(state["fc.weight"], b["fc.weight"], atol=1e-3)  # started from `first` (lr ~ 0)
    # an ensemble (the shipped verifier is one) failed with some 60 missing keys; it now says how to take a member
    ensemble = tmp_path / "ensemble.pt"
    torch.save({**{f"members.0.{k}": v for k, v in state.items()}, **{f"members.1.{k}": v for k, v in state.items()}},
               ensemble)
    with pytest.raises(InputError, match="is an ensemble of 2 networks") as err:
        train_verifier(VerifierTrainConfig(out=tmp_path / "c", init=ensemble, **base))
    command = str(err.value).split('python -c "')[1].split('" (members.1.')[0]
    monkeypatch.chdir(tmp_path)
    exec(command, {}, {})  # the command it gives works: a member alone, loadable as --init
    assert torch.load("member0.pt", weights_only=True).keys() == state.keys()


def test_arcface_auxiliary_loss_is_trained_and_resumable(six_writers: Path, tmp_path: Path):
    base = dict(data=(six_writers,), width=8, dim=16, epochs=2, steps_per_epoch=2, batch=8, m_per_writer=4,
                split=(0.5, 0.5, 0.0), threads=1)
    plain = train_verifier(VerifierTrainConfig(out=tmp_path / "plain", **base))
    cfg = VerifierTrainConfig(out=tmp_path / "arc", aux_loss="arcface", aux_weight=0.5, **base)
    arc = train_verifier(cfg)

    def history(w: Path) -> list[dict]:
        return json.loads(w.with_name(w.name + ".json").read_text())["training"]["history"]

    # ArcFace at scale 64 is a softmax cross-entropy over 6 classes: far above the triplet loss (< margin + 2)
    assert history(arc)[0]["loss"] > history(plain)[0]["loss"] + 1.0
    assert json.loads(arc.with_name(arc.name + ".json").read_text())["training"]["config"]["aux_loss"] == "arcface"
    import torch

    ck = torch.load(tmp_path / "arc" / "last.ckpt", weights_only=False)
    assert ck["aux"]["W"].shape == (16, 6)  # (embedding, 2 classes per training writer)
    assert train_verifier(VerifierTrainConfig(**{**cfg.__dict__, "resume": True})) == arc
    with pytest.raises(ValueError, match="auxiliary loss"):
        train_verifier(VerifierTrainConfig(out=tmp_path / "bad", aux_loss="cosface", **base))


def test_document_views_are_trained_on_and_validated(six_writers: Path, tmp_path: Path):
    base = dict(data=(six_writers,), width=8, dim=16, epochs=1, steps_per_epoch=2, batch=8, m_per_writer=4,
                split=(0.5, 0.5, 0.0), threads=1)
    w = train_verifier(VerifierTrainConfig(out=tmp_path / "doc", doc_views=1, **base))
    m = json.loads(w.with_name(w.name + ".json").read_text())
    rec = m["training"]["history"][0]
    assert {"eer_k1", "doc_eer_k1", "score"} <= set(rec)
    assert "document views" in m["decision"]["calibration"]["method"]
    scores = [rec[k] for k in rec if k.startswith(("eer_", "doc_eer_"))]
    assert rec["score"] == pytest.approx(np.mean(scores), abs=1e-3)  # the doc crops count in model selection
    assert m["training"]["config"]["doc_views"] == 1
    assert len(list((tmp_path / "cache" / "verifier").glob("*-views-*.npz"))) == 2  # train and val writers


def test_weight_average_is_what_is_validated_and_shipped(six_writers: Path, tmp_path: Path):
    import torch

    base = dict(data=(six_writers,), width=8, dim=16, epochs=2, steps_per_epoch=2, batch=8, m_per_writer=4,
                split=(0.5, 0.5, 0.0), threads=1, lr=0.05)
    init = train_verifier(VerifierTrainConfig(out=tmp_path / "init", **{**base, "epochs": 1}))
    w0 = torch.load(init, weights_only=True)
    # a decay of ~1 keeps the average at the initial weights while the trained weights move away
    cfg = VerifierTrainConfig(out=tmp_path / "ema", init=init, ema=0.999999, **base)
    shipped = torch.load(train_verifier(cfg), weights_only=True)
    raw = torch.load(tmp_path / "ema" / "last.ckpt", weights_only=False)["model"]
    for k, v in w0.items():
        if v.is_floating_point():
            assert torch.allclose(shipped[k], v, atol=1e-4), k
    assert max(float((raw[k] - w0[k]).abs().max()) for k in w0 if w0[k].is_floating_point()) > 1e-2
    m = json.loads((tmp_path / "ema" / "verifier.pt.json").read_text())
    assert m["training"]["config"]["ema"] == 0.999999
    assert train_verifier(VerifierTrainConfig(**{**cfg.__dict__, "resume": True})).is_file()


def test_mirror_codes_flip_left_right_and_upside_down():
    import torch

    from sigpipe.verifier.train import mirror

    x = torch.arange(4 * 6, dtype=torch.float32).reshape(1, 1, 4, 6).repeat(4, 1, 1, 1)
    y = mirror(x, torch.tensor([0, 1, 2, 3])).numpy()[:, 0]
    a = x[0, 0].numpy()
    for got, want in zip(y, (a, a[:, ::-1], a[::-1], a[::-1, ::-1]), strict=True):
        np.testing.assert_array_equal(got, want)


def test_writer_warp_moves_a_writers_genuine_and_forged_images_together():
    import torch

    from sigpipe.verifier.train import writer_warp

    rng = np.random.default_rng(0)
    img = torch.as_tensor((rng.random((1, 1, 40, 80)) < 0.1).astype(np.float32))
    img = torch.nn.functional.avg_pool2d(img, 3, 1, 1)  # smooth strokes, so bilinear resampling is meaningful
    x = img.repeat(4, 1, 1, 1)  # the same picture as 4 images of writers 7, 7, 9, 9
    writers = torch.tensor([7, 7, 9, 9])
    y = writer_warp(x, writers, torch.Generator().manual_seed(1), 1.0)
    assert torch.equal(y[0], y[1]) and torch.equal(y[2], y[3])  # one warp per writer
    assert (y[0] - y[2]).abs().max() > 0.1  # another writer, another warp
    assert (y[0] - img[0]).abs().max() > 0.1  # it does move the ink
    same = writer_warp(x, writers, torch.Generator().manual_seed(1), 0.0)
    assert torch.allclose(same, x, atol=1e-5)  # strength 0 is the identity


def test_mirrored_and_warped_writers_train(six_writers: Path, tmp_path: Path):
    # width 16: the CPU trains in channels-last memory format from this width on
    base = dict(data=(six_writers,), width=16, dim=16, epochs=1, steps_per_epoch=2, batch=8, m_per_writer=4,
                split=(0.5, 0.5, 0.0), threads=1)
    w = train_verifier(VerifierTrainConfig(out=tmp_path / "m", mirror_writers=4, writer_warp=1.0, **base))
    m = json.loads(w.with_name(w.name + ".json").read_text())
    assert (m["training"]["config"]["mirror_writers"], m["training"]["config"]["writer_warp"]) == (4, 1.0)
    with pytest.raises(ValueError, match="mirror_writers"):
        train_verifier(VerifierTrainConfig(out=tmp_path / "bad", mirror_writers=3, **base))


def test_two_runs_with_one_seed_train_the_same_weights(six_writers: Path, tmp_path: Path):
    """pytorch-metric-learning's sampler draws from numpy's global generator: another draw before the run (any
    library's) must not change the batches."""
    import hashlib

    base = dict(data=(six_writers,), width=8, dim=16, epochs=1, steps_per_epoch=2, batch=8, m_per_writer=4,
                split=(0.5, 0.5, 0.0), threads=1, seed=3)
    digests = []
    for run in range(2):
        np.random.seed(100 + run)  # the global generator left in different states
        weights = train_verifier(VerifierTrainConfig(**base, out=tmp_path / f"run{run}"))  # type: ignore[arg-type]
        digests.append(hashlib.sha256(weights.read_bytes()).hexdigest())
    assert digests[0] == digests[1]


def test_cached_arrays_follow_an_image_replaced_under_its_name(tiny_corpus: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch):
    """Train, eval and calibrate read preprocessed arrays from the cache: an image replaced under the same name
    must be preprocessed again, not read stale."""
    import shutil

    from sigpipe.datasets.corpus import Corpus
    from sigpipe.verifier.data import load_arrays
    from sigpipe.verifier.preprocess import PreprocessConfig

    monkeypatch.setenv("SIGPIPE_CACHE", str(tmp_path / "cache"))
    before = load_arrays(Corpus(tiny_corpus), PreprocessConfig())
    assert np.array_equal(load_arrays(Corpus(tiny_corpus), PreprocessConfig()).images, before.images)  # cached
    target = tiny_corpus / "001" / "genuine" / "01.png"
    shutil.copyfile(tiny_corpus / "003" / "genuine" / "04.png", target)
    after = load_arrays(Corpus(tiny_corpus), PreprocessConfig())
    i = [n for n in range(len(before.name))
         if before.writer[n].endswith("/001") and before.name[n] == "01.png" and not before.forged[n]]
    assert len(i) == 1 and not np.array_equal(after.images[i[0]], before.images[i[0]])
    assert np.array_equal(after.images[i[0]], after.images[-1 - 2])  # 003's 04.png (its forgeries are last)


def test_cached_arrays_survive_a_corpus_copied_again(tiny_corpus: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch):
    """A corpus copied again has new modification times and the same bytes: its cached arrays are still used (the
    document views of the training writers take an hour to render on two cores)."""
    import os

    import sigpipe.verifier.data as data
    from sigpipe.datasets.corpus import Corpus
    from sigpipe.verifier.preprocess import PreprocessConfig

    monkeypatch.setenv("SIGPIPE_CACHE", str(tmp_path / "cache"))
    before = data.load_arrays(Corpus(tiny_corpus), PreprocessConfig())
    for p in tiny_corpus.rglob("*.png"):
        st = p.stat()
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))

    def no_preprocessing(*args: object, **kwargs: object) -> None:
        raise AssertionError("preprocessed again")

    monkeypatch.setattr(data, "preprocess", no_preprocessing)
    assert np.array_equal(data.load_arrays(Corpus(tiny_corpus), PreprocessConfig()).images, before.images)


def test_a_training_cache_another_account_could_write_is_not_used(tiny_corpus: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch,
                                                                    caplog: pytest.LogCaptureFixture):
    """A security test rewrote the cached arrays' forgery labels in a world-writable training cache, and planted a
    link at the fixed name of the temporary file, through which a root-owned file was overwritten."""
    from sigpipe.datasets.corpus import Corpus
    from sigpipe.verifier.data import load_arrays
    from sigpipe.verifier.preprocess import PreprocessConfig

    monkeypatch.setenv("SIGPIPE_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "cache" / "verifier"
    folder.mkdir(parents=True)
    folder.chmod(0o777)
    with caplog.at_level("WARNING"):
        arrays = load_arrays(Corpus(tiny_corpus), PreprocessConfig())
    assert len(arrays.images) and not any(folder.iterdir())
    assert f"not using the training cache {folder}: {folder} is writable by every account" in caplog.text
    folder.chmod(0o700)
    precious = tmp_path / "precious"
    precious.write_text("root's")
    load_arrays(Corpus(tiny_corpus), PreprocessConfig())  # cached now: its name, to plant the old temporary's link
    (key_file,) = folder.iterdir()
    key_file.unlink()
    key_file.with_suffix(".tmp.npz").symlink_to(precious)
    again = load_arrays(Corpus(tiny_corpus), PreprocessConfig())
    assert precious.read_text() == "root's" and key_file.is_file()
    assert np.array_equal(again.forged, arrays.forged)


def test_a_corpus_says_which_images_its_layout_leaves_out(tiny_corpus: Path, caplog: pytest.LogCaptureFixture):
    import shutil

    from sigpipe.datasets.corpus import Corpus

    (tiny_corpus / "002" / "genuine").rename(tiny_corpus / "002" / "Genuine")  # case: not read
    shutil.copyfile(tiny_corpus / "003" / "genuine" / "01.png", tiny_corpus / "003" / "loose.png")
    with caplog.at_level("WARNING", logger="sigpipe.datasets.corpus"):
        c = Corpus(tiny_corpus)
    assert c.writers == ["001", "003"]
    (msg,) = [r.getMessage() for r in caplog.records]
    assert "002/ (forgeries but no genuine/ images)" in msg and "002/Genuine/" in msg and "003/loose.png" in msg


def test_a_packed_corpus_gives_training_what_its_folder_gives(six_writers: Path, tmp_path: Path):
    """`verifier pack` for a machine the corpora do not reach (a GPU machine gets the working tree alone): the same
    arrays and document views, so the same run; views or preprocessing the pack does not hold are refused."""
    from sigpipe.verifier.pack import pack_corpus
    from sigpipe.verifier.preprocess import PreprocessConfig
    from sigpipe.verifier.train import load_split, load_views

    base = dict(width=8, dim=16, epochs=1, steps_per_epoch=2, batch=8, m_per_writer=4, split=(0.5, 0.5, 0.0),
                threads=1, doc_views=1, seed=3)
    folder = VerifierTrainConfig(data=(six_writers,), out=tmp_path / "folder", **base)
    pack = pack_corpus(six_writers, tmp_path / "packs", PreprocessConfig(), (0.5, 0.5, 0.0), 0, 1, 3)
    assert pack.name == "six.npz"
    packed = VerifierTrainConfig(data=(pack,), out=tmp_path / "packed", **base)
    for part in ("train", "val"):
        a, b = load_split(folder, part), load_split(packed, part)
        for field in ("images", "writer", "forged", "name"):
            assert np.array_equal(getattr(a, field), getattr(b, field)), (part, field)
    assert np.array_equal(load_views(folder, "train", 1, 3), load_views(packed, "train", 1, 3))
    assert np.array_equal(load_views(folder, "val", 1, 4), load_views(packed, "val", 1, 4))
    w = train_verifier(packed)
    m = json.loads(w.with_name(w.name + ".json").read_text())
    assert m["training"]["splits"] == writer_splits(folder) and m["training"]["data"] == [str(pack)]
    assert "six: the trainer's own data" in m["training"]["provenance"]
    with pytest.raises(InputError, match=r"no document views for 2 view\(s\) of seed 3 \(it holds 1 of seed 3, "
                                         r"1 of seed 4\)"):
        load_views(packed, "train", 2, 3)
    with pytest.raises(InputError, match="other preprocessing"):
        load_split(VerifierTrainConfig(data=(pack,), preprocess=PreprocessConfig(height=64, width=128), **base),
                   "train")
    with pytest.raises(InputError, match="not a packed corpus"):
        (tmp_path / "bad.npz").write_bytes(b"not a zip")
        load_split(VerifierTrainConfig(data=(tmp_path / "bad.npz",), **base), "train")


def test_max_minutes_stops_after_an_epoch_ships_the_best_and_resume_goes_on(six_writers: Path, tmp_path: Path):
    base = dict(data=(six_writers,), width=8, dim=16, epochs=3, steps_per_epoch=1, batch=8, m_per_writer=4,
                split=(0.5, 0.5, 0.0), threads=1, out=tmp_path / "run")
    w = train_verifier(VerifierTrainConfig(max_minutes=1e-6, **base))  # past it after the first epoch
    m = json.loads(w.with_name(w.name + ".json").read_text())
    assert m["training"]["epochs_run"] == 1 and w.is_file()
    w = train_verifier(VerifierTrainConfig(resume=True, **base))
    assert json.loads(w.with_name(w.name + ".json").read_text())["training"]["epochs_run"] == 3
