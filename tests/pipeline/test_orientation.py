"""Pages scanned upside down or sideways: the orientation model's input, box mapping, the flow with a turning
detector, training wiring, and the shipped model on real example pages."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import jsonschema
import numpy as np
import pytest
from click.testing import CliRunner
from pipeline_doubles import SIG_A, InkBlobDetector, page_with, save_image, scribble

from sigpipe.cli import cli
from sigpipe.errors import ModelError
from sigpipe.pipeline.flow import FlowConfig, SignaturePredictor
from sigpipe.pipeline.ingest import IngestConfig, iter_pages
from sigpipe.pipeline.orientation import (
    OrientingDetector,
    PageOrienter,
    box_to_scanned,
    orientation_input,
    turn_upright,
)
from sigpipe.pipeline.report import load_schema, summary_csv
from sigpipe.verifier.gallery import Gallery
from sigpipe.verifier.verifier import Verifier
from sigpipe.weights import bundled_manifest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("k", [0, 1, 2, 3])
@pytest.mark.parametrize("size", [(300, 200), (120, 333)])
def test_box_to_scanned_matches_numpy_rot90(k: int, size: tuple[int, int]):
    w, h = size
    upright = np.zeros((h, w), np.uint8)
    x1, y1, x2, y2 = 17, 40, 95, 61
    upright[y1:y2, x1:x2] = 1
    scanned = np.rot90(upright, k)  # the page as scanned: upright turned k x 90 degrees counter-clockwise
    ys, xs = np.nonzero(scanned)
    expected = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    assert box_to_scanned((x1, y1, x2, y2), k, (w, h)) == pytest.approx(expected)
    assert np.array_equal(turn_upright(scanned, k), upright)
    assert turn_upright(scanned, k).flags.c_contiguous


def test_orientation_input_is_the_page_gray_inverted_centred_in_a_square():
    page = np.full((400, 200, 3), 255, np.uint8)
    page[100:120, 50:150] = 0  # a black bar
    x = orientation_input(page, 100)
    assert x.shape == (100, 100) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    # 200x400 -> 50x100, centred (25 px of canvas each side): the bar at x 50-150, y 100-120 lands at 37-62, 25-30
    rows, cols = (np.nonzero(x.any(axis=a))[0] for a in (1, 0))
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (25, 29, 37, 62)
    assert x[27, 50] == pytest.approx(1.0) and x[60, 50] == pytest.approx(0.0)  # ink 1, paper 0
    # a large page takes the cheap two-step reduction; its input is close to a straight area average
    big = cv2.resize(page, (2000, 4000), interpolation=cv2.INTER_NEAREST)
    assert np.abs(orientation_input(big, 100) - x).mean() < 0.01


@dataclass
class FixedOrienter:
    """Says every page is turned by ``k`` (a stand-in for PageOrienter)."""

    k: int
    ident: str = "fixed.test 000000000000"

    def turns(self, images: list[np.ndarray]) -> list[int]:
        return [self.k] * len(images)

    def is_page(self, image: np.ndarray) -> bool:
        return True


@pytest.mark.parametrize("k", [1, 2, 3])
def test_a_turned_page_is_verified_upright_and_boxed_as_scanned(verifier: Verifier, tmp_path: Path, k: int):
    sig = scribble(SIG_A)
    upright = page_with([(sig, 300, 400)])
    scanned = save_image(tmp_path / "turned.png", np.ascontiguousarray(np.rot90(upright, k)))
    gallery = Gallery(verifier, {"alice": verifier.embed([sig])})
    plain = SignaturePredictor(InkBlobDetector(), verifier, gallery, FlowConfig())
    turning = SignaturePredictor(OrientingDetector(InkBlobDetector(), FixedOrienter(k)),  # type: ignore[arg-type]
                                 verifier, gallery, FlowConfig())
    report = turning(scanned, relative="turned.png", claimed="alice")
    jsonschema.validate(report.to_dict(), load_schema())
    (s,) = report.signatures
    assert s.page_rotation == 90 * k and report.models["orientation"] == "fixed.test 000000000000"
    (box,) = InkBlobDetector().detect_batch([np.rot90(upright, k)])[0]
    assert np.allclose(s.bbox, box.bbox, atol=1)  # in pixels of the page as scanned
    assert s.page_size == (np.rot90(upright, k).shape[1], np.rot90(upright, k).shape[0])
    upright_report = plain(save_image(tmp_path / "upright.png", upright), relative="upright.png", claimed="alice")
    assert s.distance == pytest.approx(upright_report.signatures[0].distance, abs=1e-4)  # the same crop, upright
    assert s.verdict == "genuine"
    assert report.to_dict()["signatures"][0]["page_rotation"] == 90 * k
    header, row = summary_csv([report]).splitlines()
    assert dict(zip(header.split(","), row.split(","), strict=True))["page_rotation"] == str(90 * k)


def test_train_writes_a_loadable_model_and_eval_reports_turns(tmp_path: Path):
    from sigpipe.pipeline.orientation_train import OrientTrainConfig, train

    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("val", 2)):
        for i in range(n):  # "text": short dark bars in left-aligned lines at the top of the page
            page = np.full((300, 220), 250, np.uint8)
            for line in range(8):
                y = 20 + 18 * line
                page[y:y + 6, 20:20 + int(rng.integers(80, 180))] = 30
            save_image(tmp_path / split / f"{i}.png", page)
    for i in range(3):  # signature-like images: no cue to which way up they are
        save_image(tmp_path / "sigs" / f"{i}.png", scribble(i))
    manifest = train([tmp_path / "train"], [tmp_path / "val"], tmp_path / "out",
                     OrientTrainConfig(size=64, width=4, epochs=1, batch=8), [tmp_path / "sigs"], [tmp_path / "sigs"])
    data = json.loads(manifest.read_text())
    assert data["architecture"] == "orient-cnn" and data["preprocessing"]["size"] == 64
    assert 0.5 <= data["decision"]["min_confidence"] < 1.0
    assert data["validation"]["pages"] == 8 and data["validation"]["upright_pages"] == 2
    assert data["validation_no_cue"] == {"images": 12, "turned": 0}  # the confidence is chosen so that none is
    assert data["training"]["no_cue_images"] == 3
    orienter = PageOrienter(manifest, threads=1)
    p = orienter.probabilities([np.full((50, 40, 3), 255, np.uint8)] * 3)
    assert p.shape == (3, 4) and np.allclose(p.sum(axis=1), 1, atol=1e-5)
    result = CliRunner().invoke(cli, ["orientation", "eval", "--pages", str(tmp_path / "val"), "--weights",
                                      str(manifest)])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert figures["pages"] == 8 and figures["turned_pages"] == 6 and figures["model"] == orienter.ident
    (tmp_path / "no-pages").mkdir()
    result = CliRunner().invoke(cli, ["orientation", "eval", "--pages", str(tmp_path / "no-pages"), "--weights",
                                      str(manifest)])
    assert result.exit_code == 2 and "no pages found" in result.output
    (tmp_path / "a-file").write_text("")
    result = CliRunner().invoke(cli, ["orientation", "train", "--pages", str(tmp_path / "val"), "--val",
                                      str(tmp_path / "val"), "--out", str(tmp_path / "a-file" / "sub")])
    assert result.exit_code == 2 and "is a file, not a folder" in result.output
    result = CliRunner().invoke(cli, ["orientation", "train", "--pages", str(tmp_path / "train"), "--val",
                                      str(tmp_path / "val"), "--out", str(tmp_path / "tagged"), "--size", "128",
                                      "--width", "4", "--epochs", "1", "--tag", "bank1"])
    assert result.exit_code == 0, result.output
    assert PageOrienter(tmp_path / "tagged" / "orientation.pt.json", threads=1).ident.startswith("orient-cnn.bank1 ")
    result = CliRunner().invoke(cli, ["orientation", "train", "--pages", str(tmp_path / "train"), "--val",
                                      str(tmp_path / "val"), "--out", str(tmp_path / "tagged"), "--tag", "bank 1"])
    assert result.exit_code == 2 and "--tag must be a word" in result.output
    (tmp_path / "out" / "orientation.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="does not match its manifest"):
        PageOrienter(manifest)


# -- the shipped model ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def orienter() -> PageOrienter:
    return PageOrienter()


def example_pages() -> list[tuple[str, np.ndarray]]:
    pages = []
    for name in ("0001_cheque.png", "0002_cheque.pdf", "0006_letter.tif", "0007_letter.pdf", "0009_cheque.jpg"):
        pages += [(name, p.image) for p in iter_pages(EXAMPLES / "scans" / name, IngestConfig())]
    return pages


def test_shipped_model_finds_which_way_up_example_pages_are(orienter: PageOrienter):
    pages = example_pages()
    for k in range(4):
        turned = [np.rot90(p, k) for _, p in pages]
        assert orienter.turns(turned) == [k] * len(pages), k


def test_shipped_model_leaves_signature_images_alone(orienter: PageOrienter):
    """A signature on its own says nothing about which way up it is: it must never be turned (a bank may run
    clipped signatures as documents)."""
    images = [cv2.imread(str(p)) for p in sorted((EXAMPLES / "refs").rglob("*.png"))]
    assert len(images) >= 10
    for k in range(4):
        assert orienter.turns([np.ascontiguousarray(np.rot90(im, k)) for im in images]) == [0] * len(images), k


def test_shipped_model_is_hash_checked(tmp_path: Path):
    m = bundled_manifest("orientation")
    for f in (m.path, m.weights_path, m.path.parent / m["backends"]["onnx"]):
        shutil.copy(f, tmp_path / f.name)
    PageOrienter(tmp_path / m.path.name, threads=1)
    onnx = tmp_path / m["backends"]["onnx"]
    onnx.write_bytes(onnx.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ModelError, match="does not match its manifest"):
        PageOrienter(tmp_path / m.path.name)


def test_run_takes_an_orientation_model_of_one_s_own(tmp_path: Path):
    """``sigpipe orientation train`` wrote a model that ``run`` could not use: only the bundled one was loaded.
    ``--orientation-weights`` loads it (its ident goes into the reports, so a change of model redoes them), and a
    tampered one is refused by name."""
    import json

    from click.testing import CliRunner

    from sigpipe.cli import cli
    from sigpipe.pipeline.runner import ManifestModels
    from sigpipe.weights import manifest_text

    m = bundled_manifest("orientation")
    for f in (m.path, m.weights_path, m.path.parent / m["backends"]["onnx"]):
        shutil.copy(f, tmp_path / f.name)
    own = tmp_path / m.path.name
    own.write_text(manifest_text({**json.loads(own.read_text()), "tag": "mine"}))
    detector, _ = ManifestModels(orientation=own)(1)
    assert detector.orientation_ident.startswith("orient-cnn.mine ")  # type: ignore[attr-defined]
    assert ManifestModels()(1)[0].orientation_ident.startswith(f"orient-cnn.{m['tag']} ")  # type: ignore[attr-defined]
    onnx = tmp_path / m["backends"]["onnx"]
    onnx.write_bytes(onnx.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ModelError, match="orientation: .*does not match its manifest"):
        ManifestModels(orientation=own)(1)
    scans = tmp_path / "scans"
    shutil.copytree(EXAMPLES / "scans", scans, ignore=lambda d, names: [n for n in names if "0001" not in n])
    r = CliRunner().invoke(cli, ["run", str(scans), "--refs", str(EXAMPLES / "refs"), "--out", str(tmp_path / "o"),
                                 "--orientation-weights", str(own), "--no-progress"])
    assert r.exit_code == 2 and "orientation" in r.output and "does not match its manifest" in r.output


def test_run_turns_an_upside_down_cheque_and_gives_the_upright_verdict(tmp_path: Path):
    (page,) = iter_pages(EXAMPLES / "scans" / "0002_cheque.pdf", IngestConfig())
    scans = tmp_path / "scans"
    save_image(scans / "upright.png", cv2.cvtColor(page.image, cv2.COLOR_BGR2RGB))
    save_image(scans / "turned.png", cv2.cvtColor(np.ascontiguousarray(np.rot90(page.image, 2)), cv2.COLOR_BGR2RGB))
    claims = tmp_path / "claims.csv"
    claims.write_text("document,identity\nupright.png,j-kowalski\nturned.png,j-kowalski\n")
    out = tmp_path / "out"
    args = ["run", str(scans), "--refs", str(EXAMPLES / "refs"), "--claims", str(claims), "--no-progress",
            "--out"]
    result = CliRunner().invoke(cli, [*args, str(out)])
    assert result.exit_code == 0, result.output
    upright, turned = (json.loads((out / f"{n}.png.json").read_text()) for n in ("upright", "turned"))
    assert "orientation" in turned["models"]
    (a,), (b,) = upright["signatures"], turned["signatures"]
    assert (a["page_rotation"], b["page_rotation"]) == (0, 180)
    assert b["verdict"] == a["verdict"] and b["distance"] == pytest.approx(a["distance"], abs=0.03)
    w, h = a["page_size"]
    assert b["bbox"] == pytest.approx([w - a["bbox"][2], h - a["bbox"][3], w - a["bbox"][0], h - a["bbox"][1]],
                                      abs=4)
    # without the orientation model the turned cheque is compared upside down
    result = CliRunner().invoke(cli, [*args, str(tmp_path / "plain"), "--no-orient"])
    assert result.exit_code == 0, result.output
    plain = json.loads((tmp_path / "plain" / "turned.png.json").read_text())
    assert "orientation" not in plain["models"]
    assert all(s["page_rotation"] == 0 for s in plain["signatures"])


def test_a_strip_of_cheques_scanned_sideways_is_turned_upright(orienter: PageOrienter):
    """Shrunk to 512 px, a sideways strip of three cheques is a sliver: the network is sure it is sideways (90 and
    270 together) but not which way, so it was left sideways and the detector found nothing ('unsigned'). A
    quarter turn and a second look decide."""
    cheques = [p.image for name in ("0009_cheque.jpg", "0001_cheque.png", "0008_cheque.tif")
               for p in iter_pages(EXAMPLES / "scans" / name, IngestConfig())]
    strip = np.full((600, sum(c.shape[1] for c in cheques), 3), 255, np.uint8)
    x = 0
    for c in cheques:
        strip[: c.shape[0], x : x + c.shape[1]] = c
        x += c.shape[1]
    turned = [np.ascontiguousarray(np.rot90(strip, k)) for k in range(4)]
    p = orienter.probabilities(turned[1:2])[0]
    assert max(p[1], p[3]) < orienter.min_confidence <= p[1] + p[3]  # the case: sideways, but which way?
    assert orienter.turns(turned) == [0, 1, 2, 3]


def test_a_sideways_page_is_left_alone_when_the_second_look_is_unsure(monkeypatch: pytest.MonkeyPatch):
    o = PageOrienter()
    answers = iter([np.array([[0.05, 0.5, 0.0, 0.45]], np.float32), np.array([[0.5, 0.0, 0.5, 0.0]], np.float32)])
    monkeypatch.setattr(o, "probabilities", lambda images: next(answers))
    assert o.turns([np.full((1000, 1400, 3), 255, np.uint8)]) == [0]
