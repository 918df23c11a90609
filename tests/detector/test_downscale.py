"""Area downscaling: the resize itself, the shrunk training copy of a dataset, and a detector that shrinks pages
the way it was trained (``downscale`` in its manifest)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from sigpipe._ultralytics import configure
from sigpipe.detector import SignatureDetector
from sigpipe.detector.runtime import fit_long_side, letterbox, resize
from sigpipe.detector.train import downscaled_dataset
from sigpipe.errors import InputError, ModelError

from .conftest import IMGSZ, document_page
from .test_detector import as_array, reference_boxes


def thin_lines(h: int = 2048, w: int = 2048, every: int = 4) -> np.ndarray:
    """White page with a 1-pixel black vertical line every ``every`` columns (hairline strokes)."""
    page = np.full((h, w, 3), 255, np.uint8)
    page[:, every - 1 :: every] = 0
    return page


def test_shrinking_keeps_hairlines_that_one_bilinear_step_drops() -> None:
    """A capture audit lost signatures on pages several times the network size (a 400-dpi cheque, one on an A4
    scanner bed): one bilinear step reads two columns of every four and thin strokes break up."""
    page = thin_lines()
    one_step = cv2.resize(page, (512, 512), interpolation=cv2.INTER_LINEAR)[:, :, 0].astype(int)
    assert (one_step == 255).all()  # the lines vanish
    for downscale in ("area", "bilinear"):  # halved first: every output column covers one line in four columns
        shrunk = resize(page, (512, 512), downscale)[:, :, 0].astype(int)
        assert shrunk.min() == shrunk.max() and abs(shrunk[0, 0] - 255 * 3 / 4) <= 1, downscale


def test_area_by_halving_matches_one_area_resize() -> None:
    """Halving first (fast) gives OpenCV's area resize up to rounding: exactly below a ratio of 2, within a few
    grey levels on average beyond it."""
    page = document_page(2339, 1654, seed=5, bars=40, gray=False)
    exact = cv2.resize(page, (363, 512), interpolation=cv2.INTER_AREA).astype(int)
    assert np.abs(resize(page, (512, 363), "area").astype(int) - exact).mean() < 1.0
    page = page[:1000, :1000]
    assert np.array_equal(resize(page, (512, 512), "area"), cv2.resize(page, (512, 512), interpolation=cv2.INTER_AREA))


def test_enlarging_is_bilinear_whatever_the_downscale() -> None:
    page = document_page(60, 80, gray=False)
    want = cv2.resize(page, (160, 120), interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(resize(page, (120, 160), "area"), want)
    assert resize(page, (60, 80), "area") is page  # nothing to do


@pytest.mark.parametrize(("hw", "want"), [((2339, 1654), (512, 363)), ((1000, 333), (512, 171)),
                                          ((600, 1600), (192, 512)), ((512, 300), (512, 300))])
def test_fit_long_side_uses_the_loader_rounding(hw: tuple[int, int], want: tuple[int, int]) -> None:
    assert fit_long_side(hw, 512) == want


def test_letterbox_area_differs_only_in_the_shrink() -> None:
    page = thin_lines(700, 1400, every=3)  # 2.7x the input: halved once, then 1.37x by each method
    x_area, lb_area = letterbox(page, (512, 512), "area")
    x_bil, lb_bil = letterbox(page, (512, 512))
    assert lb_area == lb_bil  # same geometry: boxes map back the same way
    rows = slice(lb_area.pad_y, 512 - lb_area.pad_y)
    assert not np.allclose(x_area[:, rows], x_bil[:, rows], atol=2 / 255)
    assert abs(x_area[:, rows].mean() - x_bil[:, rows].mean()) < 0.02  # the same ink, spread otherwise


# -- the shrunk dataset copy ------------------------------------------------------------------------------------


@pytest.fixture()
def big_dataset(tmp_path: Path) -> Path:
    """Pages larger than 512 px (one smaller) in train/val/test, with labels; returns the yaml."""
    root = tmp_path / "big"
    shapes = {"train": [(1400, 1000), (300, 200)], "val": [(900, 1300)], "test": [(1000, 333)]}
    for split, hws in shapes.items():
        (root / "images" / split / "sub").mkdir(parents=True)
        (root / "labels" / split / "sub").mkdir(parents=True)
        for i, (h, w) in enumerate(hws):
            cv2.imwrite(str(root / "images" / split / "sub" / f"p{i}.jpg"), document_page(h, w, seed=i, gray=False))
            (root / "labels" / split / "sub" / f"p{i}.txt").write_text(f"0 0.5 0.5 0.{i + 2} 0.1\n")
    data = root / "data.yaml"
    data.write_text("path: .\ntrain: [images/train]\nval: images/val\ntest: images/test\nnames: {0: signature}\n")
    return data


def test_downscaled_dataset_copies_every_split_shrunk(big_dataset: Path, tmp_path: Path) -> None:
    out = downscaled_dataset(big_dataset, 512, tmp_path / "small")
    spec = yaml.safe_load(out.read_text())
    assert spec["names"] == {0: "signature"} and Path(spec["path"]) == (tmp_path / "small").resolve()
    got = {}
    for split in ("train", "val", "test"):
        images = sorted((tmp_path / "small" / spec[split]).glob("*.png"))
        got[split] = [cv2.imread(str(p)).shape[:2] for p in images]
        for img in images:  # each label travels with its image, unchanged
            label = img.parent.parent / "labels" / f"{img.stem}.txt"
            assert label.read_text() == f"0 0.5 0.5 0.{int(img.stem[-1]) + 2} 0.1\n"
    assert got == {"train": [(512, 366), (300, 200)], "val": [(355, 512)], "test": [(512, 171)]}
    # what the copy holds is the area-shrunk page, not the bilinear one
    src = cv2.imread(str(big_dataset.parent / "images/val/sub/p0.jpg"))
    copy = cv2.imread(str(next((tmp_path / "small/val/images").glob("*.png"))))
    assert np.array_equal(copy, resize(src, (355, 512), "area"))
    # copying again after a page left the dataset: the copy follows, no stale page trains on
    (big_dataset.parent / "images/train/sub/p1.jpg").unlink()
    downscaled_dataset(big_dataset, 512, tmp_path / "small")
    assert [p.name for p in (tmp_path / "small/train/images").glob("*.png")] == ["0_sub_p0.png"]


def test_ultralytics_loader_leaves_the_copy_as_it_is(big_dataset: Path, tmp_path: Path) -> None:
    configure(2)  # offline, settings under sigpipe's cache, before Ultralytics is imported
    from ultralytics.data.dataset import YOLODataset

    out = downscaled_dataset(big_dataset, 512, tmp_path / "small")
    ds = YOLODataset(img_path=str(out.parent / "train/images"), imgsz=512, augment=False, cache=False,
                     data={"names": {0: "signature"}, "nc": 1, "channels": 3})
    sizes = {}
    for i, f in enumerate(ds.im_files):
        im, hw0, hw = ds.load_image(i)
        assert hw == im.shape[:2]
        sizes[Path(f).stem] = (hw0, hw)
    assert sizes == {"0_sub_p0": ((512, 366), (512, 366)),  # shrunk by area: the loader has nothing left to do
                     "0_sub_p1": ((300, 200), (512, 342))}  # smaller than 512: enlarged by the loader, as before


def test_downscaled_dataset_one_split_and_errors(big_dataset: Path, tmp_path: Path) -> None:
    out = downscaled_dataset(big_dataset, 512, tmp_path / "test-only", splits=("test",))
    spec = yaml.safe_load(out.read_text())
    assert spec["test"] == spec["train"] == spec["val"] == "test/images"  # Ultralytics wants train and val keys
    assert not (tmp_path / "test-only" / "train").exists()
    with pytest.raises(InputError, match="unknown downscale"):
        downscaled_dataset(big_dataset, 512, tmp_path / "x", "cubic")
    bad = big_dataset.parent / "bad.yaml"
    bad.write_text("path: .\ntrain: images/nowhere\nval: images/val\n")
    with pytest.raises(InputError, match="not an image folder"):
        downscaled_dataset(bad, 512, tmp_path / "y")
    (big_dataset.parent / "images/val/sub/broken.png").write_bytes(b"not an image")
    with pytest.raises(InputError, match="unreadable image"):
        downscaled_dataset(big_dataset, 512, tmp_path / "z")


# -- a detector that shrinks by area ----------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(2339, 1654), (550, 1200), (1000, 333)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_area_detector_maps_boxes_back_to_the_page(model_dir: Path, shape: tuple[int, int]) -> None:
    """The .pt path shrinks the page by area first, then lets Ultralytics letterbox it: the boxes must be the
    reference boxes of the shrunk page, scaled back to the page."""
    det = SignatureDetector(model_dir / "detector.pt", imgsz=IMGSZ, conf=0.001, max_det=50, threads=2,
                            downscale="area")
    page = document_page(*shape, seed=sum(shape), gray=False)
    got = as_array(det.detect(page))
    small = resize(page, fit_long_side(shape, IMGSZ), "area")
    ref = reference_boxes(det.path, small, IMGSZ, 0.001, 0.7, 50)
    ref[:, [0, 2]] *= shape[1] / small.shape[1]
    ref[:, [1, 3]] *= shape[0] / small.shape[0]
    assert len(got) > 0 and (got[:, 2] <= shape[1]).all() and (got[:, 3] <= shape[0]).all()
    scale = max(shape) / IMGSZ
    for row in ref[ref[:, 4] >= np.quantile(ref[:, 4], 0.5)]:
        assert np.abs(got[:, :4] - row[:4]).max(axis=1).min() <= 0.01 * scale + 1e-3
    # and it is not what the bilinear detector sees on a page full of hairlines
    bil = SignatureDetector(model_dir / "detector.pt", imgsz=IMGSZ, conf=0.001, max_det=50, threads=2)
    lines = thin_lines(*shape)
    assert not np.array_equal(as_array(det.detect(lines)), as_array(bil.detect(lines)))


def test_manifest_downscale(model_dir: Path, tmp_path: Path) -> None:
    d = tmp_path / "m"
    shutil.copytree(model_dir, d)
    assert SignatureDetector.from_manifest(d / "detector.pt.json").downscale == "bilinear"  # older manifests
    data = json.loads((d / "detector.pt.json").read_text())
    (d / "detector.pt.json").write_text(json.dumps({**data, "downscale": "area"}))
    assert SignatureDetector.from_manifest(d / "detector.pt.json").downscale == "area"
    (d / "detector.pt.json").write_text(json.dumps({**data, "downscale": "lanczos"}))
    with pytest.raises(ModelError, match="downscale"):
        SignatureDetector.from_manifest(d / "detector.pt.json")
    with pytest.raises(ValueError, match="downscale"):
        SignatureDetector(d / "detector.pt", downscale="nearest")
