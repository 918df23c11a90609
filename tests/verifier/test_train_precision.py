"""bfloat16 training (``--precision bf16``): each trainer runs its training steps in bf16, its validation in f32."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sigpipe._training import check_precision, training_autocast


def test_autocast_context_computes_in_bf16_only_when_asked() -> None:
    conv, x = torch.nn.Conv2d(1, 4, 3), torch.rand(2, 1, 8, 8)
    with training_autocast("cpu", "bf16"):
        assert conv(x).dtype == torch.bfloat16
    with training_autocast("cpu", "f32"):
        assert conv(x).dtype == torch.float32
    assert check_precision("bf16") == "bf16"
    with pytest.raises(ValueError, match="precision"):
        training_autocast("cpu", "fp16")


def test_verifier_training_steps_run_in_bf16(six_writers: Path, tmp_path: Path,
                                                       conv_dtypes: list[torch.dtype]) -> None:
    from sigpipe.verifier.train import VerifierTrainConfig, train_verifier

    base = dict(data=(six_writers,), width=8, dim=16, epochs=1, steps_per_epoch=2, batch=8, m_per_writer=4,
                split=(0.5, 0.5, 0.0), threads=1)
    w = train_verifier(VerifierTrainConfig(out=tmp_path / "bf16", precision="bf16", **base))
    assert conv_dtypes and set(conv_dtypes) == {torch.bfloat16}  # every training step (validation: no gradients)
    m = json.loads(w.with_name(w.name + ".json").read_text())
    assert m["training"]["config"]["precision"] == "bf16"
    assert all(v.dtype == torch.float32 and bool(torch.isfinite(v).all())
               for v in torch.load(w, weights_only=True).values() if v.is_floating_point())
    conv_dtypes.clear()
    train_verifier(VerifierTrainConfig(out=tmp_path / "f32", **base))
    assert set(conv_dtypes) == {torch.float32}
    with pytest.raises(ValueError, match="precision"):
        train_verifier(VerifierTrainConfig(out=tmp_path / "x", precision="fp16", **base))


def test_pair_network_trains_in_bf16(six_writers: Path, tmp_path: Path, conv_dtypes: list[torch.dtype]) -> None:
    from sigpipe.verifier.pairtrain import PairTrainConfig, train_pairnet
    from sigpipe.verifier.train import VerifierTrainConfig, train_verifier

    siamese = train_verifier(VerifierTrainConfig(
        data=(six_writers,), out=tmp_path / "m", width=8, dim=16, epochs=1, steps_per_epoch=1, batch=8,
        m_per_writer=4, split=(0.5, 0.5, 0.0), threads=1)).with_suffix(".pt.json")
    conv_dtypes.clear()
    pair = train_pairnet(PairTrainConfig(like=siamese, data=(six_writers,), out=tmp_path / "pair", width=8,
                                         epochs=1, steps=2, batch=8, threads=1, precision="bf16"))
    assert conv_dtypes and set(conv_dtypes) == {torch.bfloat16}
    m = json.loads(pair.with_suffix(".pt.json").read_text())
    assert m["training"]["config"]["precision"] == "bf16" and m["training"]["history"][0]["loss"] > 0
