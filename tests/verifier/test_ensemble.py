import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from sigpipe.cli import cli
from sigpipe.errors import InputError
from sigpipe.verifier.ensemble import build_ensemble
from sigpipe.verifier.model import EnsembleNet, build_model, build_network
from sigpipe.verifier.train import VerifierTrainConfig, train_verifier
from sigpipe.verifier.verifier import Verifier


def test_ensemble_distance_is_the_mean_of_the_members_squared_distances():
    torch.manual_seed(0)
    a, b = build_model("resnet-s", 16, 8).eval(), build_model("signet-s", 8, 8).eval()
    net = EnsembleNet([a, b]).eval()
    x = torch.rand(5, 1, 80, 160)
    with torch.no_grad():
        z, za, zb = net(x).numpy(), a(x).numpy(), b(x).numpy()
    assert z.shape == (5, 24) and net.dim == 24
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-5)

    def sq(e: np.ndarray) -> np.ndarray:
        return ((e[:, None] - e[None]) ** 2).sum(-1)

    np.testing.assert_allclose(sq(z), (sq(za) + sq(zb)) / 2, atol=1e-5)


def test_build_network_reads_single_and_ensemble_specs():
    single = {"architecture": "signet-s", "embedding_dim": 16, "width": 8}
    assert build_network(single).dim == 16
    ens = build_network({"architecture": "ensemble", "members": [single, {**single, "architecture": "resnet-s"}]})
    assert isinstance(ens, EnsembleNet) and ens.dim == 32
    with pytest.raises(ValueError, match="unknown verifier architecture"):
        build_network({**single, "architecture": "vit"})
    with pytest.raises(ValueError, match="incomplete"):
        build_network({"architecture": "ensemble"})


@pytest.fixture
def members(six_writers: Path, tmp_path: Path) -> list[Path]:
    base = dict(data=(six_writers,), width=8, dim=16, epochs=1, steps_per_epoch=2, batch=8, m_per_writer=4,
                split=(0.5, 0.5, 0.0), threads=1)
    return [train_verifier(VerifierTrainConfig(out=tmp_path / f"m{i}", seed=i, architecture=arch, **base))
            .with_suffix(".pt.json") for i, arch in enumerate(("resnet-s", "signet-s"))]


def test_ensemble_of_trained_members_is_calibrated_loadable_and_exportable(members: list[Path], six_writers: Path,
                                                                             tmp_path: Path):
    from sigpipe.verifier.export import export_onnx

    weights = build_ensemble(members, [six_writers], tmp_path / "ens", "e1", threads=1)
    m = json.loads(weights.with_suffix(".pt.json").read_text())
    assert m["architecture"] == "ensemble" and m["embedding_dim"] == 32
    assert [s["architecture"] for s in m["members"]] == ["resnet-s", "signet-s"]
    assert set(m["decision"]["thresholds"]) >= {"1", "2", "3"}
    assert m["training"]["splits"] == json.loads(members[0].read_text())["training"]["splits"]
    ens = Verifier.from_manifest(weights.with_suffix(".pt.json"), backend="pt")
    parts = [Verifier.from_manifest(p, backend="pt") for p in members]
    imgs = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in sorted(six_writers.rglob("*.png"))[:3]]
    want = np.concatenate([v.embed(imgs) for v in parts], axis=1) / np.sqrt(2)
    np.testing.assert_allclose(ens.embed(imgs), want, atol=1e-5)
    export_onnx(weights.with_suffix(".pt.json"))
    onnx = Verifier.from_manifest(weights.with_suffix(".pt.json"))
    assert onnx.backend == "onnx"
    np.testing.assert_allclose(onnx.embed(imgs), want, atol=1e-4)


def test_ensemble_refuses_members_it_cannot_calibrate(members: list[Path], six_writers: Path, tmp_path: Path):
    with pytest.raises(InputError, match="at least two"):
        build_ensemble(members[:1], [six_writers], tmp_path / "one", "e1")
    with pytest.raises(InputError, match="given twice"):
        build_ensemble([members[0], members[0]], [six_writers], tmp_path / "twice", "e1")
    from sigpipe.weights import WEIGHTS_DIR  # the shipped verifier, an ensemble: not a member (KeyError 'config')

    with pytest.raises(InputError, match="is an ensemble itself \\(2 networks\\): give single networks"):
        build_ensemble([WEIGHTS_DIR / "verifier.pt.json", members[0]], [six_writers], tmp_path / "shipped", "e1")
    other = json.loads(members[1].read_text())
    other["training"]["splits"]["six"]["val"] = other["training"]["splits"]["six"]["train"]
    members[1].write_text(json.dumps(other))
    with pytest.raises(InputError, match="writer splits"):
        build_ensemble(members, [six_writers], tmp_path / "bad", "e1")
    res = CliRunner().invoke(cli, ["verifier", "ensemble", *map(str, members), "--data", str(six_writers),
                                   "--out", str(tmp_path / "cli"), "--tag", "e1"])
    assert res.exit_code == 2 and "writer splits" in res.output  # an input error: members that do not fit together


def test_ensemble_cli_writes_the_joined_model(members: list[Path], six_writers: Path, tmp_path: Path):
    res = CliRunner().invoke(cli, ["verifier", "ensemble", *map(str, members), "--data", str(six_writers),
                                   "--out", str(tmp_path / "cli"), "--tag", "e2", "--threads", "1"])
    assert res.exit_code == 0, res.output
    assert Path(res.stdout.strip().splitlines()[-1]) == tmp_path / "cli" / "verifier.pt"
    assert Verifier.from_manifest(tmp_path / "cli" / "verifier.pt.json", backend="pt").ident.startswith(
        "signet-triplet.e2 ")
