"""SignatureDetector: box mapping to page pixels, thresholds, batching, input checks, manifests."""

from __future__ import annotations

import functools
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from sigpipe._ultralytics import yolo_class
from sigpipe.detector import Detection, SignatureDetector
from sigpipe.detector.detector import as_bgr, backend_of
from sigpipe.detector.runtime import SecondLook, midtone_share, windows
from sigpipe.errors import InputError, ModelError
from sigpipe.weights import WEIGHTS_DIR, Manifest

from .conftest import CONF, IMGSZ, document_page

# (height, width): A4 portrait/landscape at 200 dpi, a cheque strip, square, small/odd, very tall.
PAGE_SHAPES = [(2339, 1654), (1654, 2339), (550, 1200), (320, 320), (97, 301), (1000, 333)]


@functools.lru_cache(maxsize=4)
def _torch_model(pt: str) -> torch.nn.Module:
    """The plain (unfused) torch module inside an Ultralytics checkpoint."""
    return yolo_class()(pt, task="detect").model.float().eval()


def reference_boxes(
    pt: Path, page: np.ndarray, imgsz: int, conf: float, iou: float, max_det: int, rect: bool = True
) -> np.ndarray:
    """Independent re-implementation of letterbox -> forward -> NMS -> inverse mapping -> clip to the page.

    Returns:
        ``(N, 5)`` float64 array of ``x1, y1, x2, y2, conf`` in page pixels, highest confidence first.
    """
    from ultralytics.utils.nms import non_max_suppression

    if page.ndim == 2:
        page = cv2.cvtColor(page, cv2.COLOR_GRAY2BGR)
    h, w = page.shape[:2]
    r = min(imgsz / h, imgsz / w)
    nw, nh = max(round(w * r), 1), max(round(h * r), 1)
    while page.shape[0] >= 4 * nh and page.shape[1] >= 4 * nw:  # halved first while 4x or more: one bilinear
        page = cv2.resize(page, (page.shape[1] // 2, page.shape[0] // 2), interpolation=cv2.INTER_LINEAR)  # step
    # drops most pixels there
    gain_w, gain_h = page.shape[1] / w, page.shape[0] / h
    h, w = page.shape[:2]
    r = min(imgsz / h, imgsz / w)
    nw, nh = max(round(w * r), 1), max(round(h * r), 1)
    dw, dh = imgsz - nw, imgsz - nh
    if rect:  # smallest stride-32 rectangle
        dw, dh = dw % 32, dh % 32
    left, top = round(dw / 2 - 0.1), round(dh / 2 - 0.1)
    img = cv2.resize(page, (nw, nh), interpolation=cv2.INTER_LINEAR) if (nw, nh) != (w, h) else page
    img = cv2.copyMakeBorder(img, top, dh - top, left, dw - left, cv2.BORDER_CONSTANT, value=(114, 114, 114))
    x = torch.from_numpy(np.ascontiguousarray(img[:, :, ::-1])).permute(2, 0, 1)[None].float() / 255
    model = _torch_model(str(pt))
    with torch.no_grad():
        out = model(x)
    pred = out[0] if isinstance(out, (list, tuple)) else out
    det = non_max_suppression(pred, conf, iou, max_det=max_det, nc=1)[0].double().numpy()
    boxes = det[:, :4].copy()
    boxes[:, [0, 2]] = (boxes[:, [0, 2]] - left) / (nw / w) / gain_w
    boxes[:, [1, 3]] = (boxes[:, [1, 3]] - top) / (nh / h) / gain_h
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w / gain_w)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h / gain_h)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])  # boxes wholly in the padding are dropped
    return np.concatenate([boxes, det[:, 4:5]], axis=1)[keep]


def as_array(dets: list[Detection]) -> np.ndarray:
    return np.array([[*d.bbox, d.confidence] for d in dets], dtype=np.float64).reshape(-1, 5)


def assert_same_boxes(a: np.ndarray, b: np.ndarray, px: float, conf_tol: float = 1e-3) -> None:
    """Every box of ``a`` has a box in ``b`` within ``px`` pixels per coordinate and ``conf_tol`` in confidence."""
    assert len(a) == len(b), (len(a), len(b))
    for row in a:
        d = np.abs(b[:, :4] - row[:4]).max(axis=1)
        j = int(np.argmin(d))
        assert d[j] <= px, f"box {row[:4]} has no match within {px}px (nearest {b[j, :4]})"
        assert abs(b[j, 4] - row[4]) <= conf_tol


# -- Detection -------------------------------------------------------------------------------------------------


def test_detection_dict_round_trip() -> None:
    d = Detection((1.5, 2.0, 30.25, 40.0), 0.875)
    assert d.to_dict() == {"bbox": [1.5, 2.0, 30.25, 40.0], "confidence": 0.875}
    assert Detection.from_dict(json.loads(json.dumps(d.to_dict()))) == d
    assert d.width == pytest.approx(28.75) and d.height == pytest.approx(38.0)


# -- box mapping ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", PAGE_SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_boxes_match_independent_letterbox_mapping(low_conf_det: SignatureDetector, shape: tuple[int, int]) -> None:
    page = document_page(*shape, seed=sum(shape), gray=False)
    got = as_array(low_conf_det.detect(page))
    assert len(got) > 0
    h, w = shape
    assert (got[:, 0] >= 0).all() and (got[:, 2] <= w).all() and (got[:, 1] >= 0).all() and (got[:, 3] <= h).all()
    assert (got[:, 2] > got[:, 0]).all() and (got[:, 3] > got[:, 1]).all()
    ref = reference_boxes(low_conf_det.path, page, IMGSZ, 0.001, 0.7, 50)
    # Only confident, well-separated boxes: fused vs unfused conv+BN differ in the last float bits, which may flip
    # near-ties in NMS. Tolerance in page pixels: a hundredth of a letterbox pixel, scaled to the page.
    scale = max(h, w) / IMGSZ
    top = ref[ref[:, 4] >= np.quantile(ref[:, 4], 0.5)]
    for row in top:
        d = np.abs(got[:, :4] - row[:4]).max(axis=1)
        assert d.min() <= 0.01 * scale + 1e-3, f"{shape}: reference box {row} not found (nearest off by {d.min()})"


@pytest.mark.parametrize("shape", [(240, 320), (320, 160), (320, 320)], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("k", [2, 4])
def test_upscaled_page_gives_scaled_boxes(low_conf_det: SignatureDetector, shape: tuple[int, int], k: int) -> None:
    """A page enlarged k times (nearest; k a power of 2, halved back exactly) letterboxes to the very same network
    input, so boxes must scale by k."""
    page = document_page(*shape, seed=k)
    big = np.repeat(np.repeat(page, k, axis=0), k, axis=1)
    small = as_array(low_conf_det.detect(page))
    large = as_array(low_conf_det.detect(big))
    assert len(small) > 0
    np.testing.assert_allclose(large[:, :4], small[:, :4] * k, atol=1e-3 * k)
    np.testing.assert_allclose(large[:, 4], small[:, 4], atol=1e-6)


def test_grayscale_and_bgr_give_the_same_boxes(det: SignatureDetector) -> None:
    gray = document_page(550, 1200, seed=3)
    a = as_array(det.detect(gray))
    b = as_array(det.detect(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)))
    c = as_array(det.detect(gray[:, :, None]))
    np.testing.assert_allclose(a, b)
    np.testing.assert_allclose(a, c)


def test_detect_batch_equals_detect(det: SignatureDetector) -> None:
    pages = [document_page(400, 300, seed=1), document_page(550, 1200, seed=2), document_page(400, 300, seed=3)]
    batched = det.detect_batch(pages)
    assert len(batched) == 3
    for page, dets in zip(pages, batched, strict=True):
        np.testing.assert_allclose(as_array(dets), as_array(det.detect(page)), atol=1e-3)
    assert det.detect_batch([]) == []


# -- thresholds -------------------------------------------------------------------------------------------------


def test_confidence_threshold(model_dir: Path) -> None:
    page = document_page(1100, 850, seed=7)
    previous: np.ndarray | None = None
    counts = []
    for conf in (0.001, 0.1, 0.5):
        d = SignatureDetector(model_dir / "detector.pt", imgsz=IMGSZ, conf=conf, max_det=300, threads=2)
        got = as_array(d.detect(page))
        counts.append(len(got))
        assert (got[:, 4] >= conf).all()
        assert (np.diff(got[:, 4]) <= 0).all(), "sorted by confidence, highest first"
        if previous is not None:  # raising the threshold never adds a box: every box was already there
            for row in got:
                assert np.abs(previous - row).max(axis=1).min() < 1e-4
        previous = got
    assert counts == sorted(counts, reverse=True) and counts[0] > counts[-1]


def test_max_det(model_dir: Path) -> None:
    d = SignatureDetector(model_dir / "detector.pt", imgsz=IMGSZ, conf=0.001, max_det=3, threads=2)
    assert len(d.detect(document_page(600, 800))) == 3


def test_manifest_settings_are_used(det: SignatureDetector, manifest_path: Path) -> None:
    m = Manifest.load(manifest_path)
    assert (det.imgsz, det.conf, det.iou, det.max_det) == (IMGSZ, CONF, 0.7, 100)
    assert det.ident == m.ident == f"sigdet-test.v0 {m.sha256[:12]}"
    assert det.backend == "pt"
    assert SignatureDetector.from_manifest(manifest_path, conf=0.9).conf == 0.9  # an explicit threshold wins


# -- test-time augmentation ------------------------------------------------------------------------------------


def mirrored(boxes: np.ndarray, width: int) -> np.ndarray:
    out = boxes.copy()
    out[:, [0, 2]] = width - boxes[:, [2, 0]]
    return out


@pytest.mark.parametrize("shape", [(1100, 850), (550, 1200)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_tta_is_mirror_symmetric_and_maps_to_page_pixels(model_dir: Path, shape: tuple[int, int]) -> None:
    """Fused from a page and its mirror image, the boxes of a mirrored page are the mirrored boxes of the page: a
    wrong mapping of the mirror view's boxes back onto the page breaks this."""
    tta = SignatureDetector(model_dir / "detector.pt", imgsz=IMGSZ, conf=0.02, max_det=50, threads=2, tta=True)
    page = document_page(*shape, seed=3, gray=False)
    got = as_array(tta.detect(page))
    flipped = as_array(tta.detect(np.ascontiguousarray(page[:, ::-1])))
    assert len(got) > 0 and (got[:, 4] >= 0.02).all() and (np.diff(got[:, 4]) <= 0).all()
    assert_same_boxes(np.column_stack([mirrored(got[:, :4], shape[1]), got[:, 4]]), flipped, px=0.5, conf_tol=1e-4)
    assert (got[:, [0, 1]] >= 0).all() and (got[:, 2] <= shape[1]).all() and (got[:, 3] <= shape[0]).all()


@pytest.mark.parametrize("edit", [{"conf": 2.0}, {"iou": 0.0}, {"max_det": 0}, {"imgsz": 100}])
def test_a_manifest_value_out_of_range_is_a_model_error_naming_the_manifest(model_dir: Path, tmp_path: Path,
                                                                          edit: dict) -> None:
    d = tmp_path / "m"
    shutil.copytree(model_dir, d)
    data = json.loads((d / "detector.pt.json").read_text())
    (d / "detector.pt.json").write_text(json.dumps({**data, **edit}))
    with pytest.raises(ModelError, match=r"detector manifest .*detector\.pt\.json lacks a valid"):
        SignatureDetector.from_manifest(d / "detector.pt.json")


def test_tta_agrees_with_fusing_two_plain_passes(model_dir: Path) -> None:
    from sigpipe.detector.runtime import fuse_views

    plain = SignatureDetector(model_dir / "detector.pt", imgsz=IMGSZ, conf=0.01, max_det=50, threads=2)
    tta = SignatureDetector(model_dir / "detector.pt", imgsz=IMGSZ, conf=0.1, max_det=50, threads=2, tta=True)
    page = document_page(900, 700, seed=5)
    a, b = as_array(plain.detect(page)), as_array(plain.detect(np.ascontiguousarray(page[:, ::-1])))
    boxes, conf = fuse_views([(a[:, :4], a[:, 4]), (mirrored(b[:, :4], 700), b[:, 4])])
    want = np.column_stack([boxes, conf])[:50]  # max_det applies to the fused boxes
    want = want[want[:, 4] >= 0.1]
    assert len(want) > 0
    assert_same_boxes(as_array(tta.detect(page)), want, px=1e-3, conf_tol=1e-6)


def test_tta_from_manifest_uses_tta_conf_and_marks_the_ident(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="tta_conf"):
        SignatureDetector.from_manifest(model_dir / "detector.pt.json", tta=True)
    d = tmp_path / "m"
    shutil.copytree(model_dir, d)
    data = json.loads((d / "detector.pt.json").read_text())
    (d / "detector.pt.json").write_text(json.dumps({**data, "tta_conf": 0.3}))
    tta = SignatureDetector.from_manifest(d / "detector.pt.json", tta=True)
    plain = SignatureDetector.from_manifest(d / "detector.pt.json")
    assert (tta.conf, plain.conf) == (0.3, CONF)
    assert tta.ident == plain.ident + " +flip" and tta.tta and not plain.tta
    assert SignatureDetector.from_manifest(model_dir / "detector.pt.json", tta=True, conf=0.2).conf == 0.2


# -- input checks -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((10, 10), np.float32),
        np.zeros((3, 10, 10), np.uint8),
        np.zeros((0, 10), np.uint8),
        np.zeros((10, 0, 3), np.uint8),
        np.zeros((2, 10, 10, 3), np.uint8),
        [[0, 1], [1, 0]],
    ],
    ids=["float", "chw", "empty", "empty-bgr", "4d", "list"],
)
def test_bad_pages_are_refused(det: SignatureDetector, bad: object) -> None:
    with pytest.raises(InputError):
        det.detect(bad)  # type: ignore[arg-type]


def test_as_bgr_conversions() -> None:
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    out = as_bgr(gray)
    assert out.shape == (3, 4, 3) and out.dtype == np.uint8 and (out[:, :, 1] == gray).all()
    bgra = np.zeros((3, 4, 4), np.uint8)
    assert as_bgr(bgra).shape == (3, 4, 3)
    assert as_bgr(np.ones((2, 2), bool)).max() == 255


def test_constructor_checks(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        SignatureDetector(tmp_path / "nope.pt")
    with pytest.raises(ValueError, match="multiple of 32"):
        SignatureDetector(model_dir / "detector.pt", imgsz=300)
    with pytest.raises(ValueError, match="conf"):
        SignatureDetector(model_dir / "detector.pt", conf=1.5)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="cannot load"):
        SignatureDetector(junk)
    other = tmp_path / "model.bin"
    other.write_bytes(b"x")
    with pytest.raises(ModelError, match="unsupported"):
        backend_of(other)


# -- manifests --------------------------------------------------------------------------------------------------


def test_tampered_weights_are_refused(model_dir: Path, tmp_path: Path) -> None:
    d = tmp_path / "m"
    shutil.copytree(model_dir, d)
    with open(d / "detector.pt", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ModelError, match="does not match its manifest"):
        SignatureDetector.from_manifest(d / "detector.pt.json")


def test_missing_weights_and_backends(model_dir: Path, tmp_path: Path) -> None:
    d = tmp_path / "m"
    shutil.copytree(model_dir, d)
    with pytest.raises(ModelError, match="has no openvino export"):
        SignatureDetector.from_manifest(d / "detector.pt.json", backend="openvino")
    with pytest.raises(ModelError, match="unknown detector backend"):
        SignatureDetector.from_manifest(d / "detector.pt.json", backend="tflite")
    (d / "detector.pt").unlink()
    with pytest.raises(ModelError, match="missing"):
        SignatureDetector.from_manifest(d / "detector.pt.json")
    with pytest.raises(ModelError, match="not found"):
        SignatureDetector.from_manifest(tmp_path / "absent.json")


def test_manifest_without_thresholds(model_dir: Path, tmp_path: Path) -> None:
    d = tmp_path / "m"
    shutil.copytree(model_dir, d)
    data = json.loads((d / "detector.pt.json").read_text())
    del data["conf"]
    (d / "detector.pt.json").write_text(json.dumps(data))
    with pytest.raises(ModelError, match="imgsz/conf/iou"):
        SignatureDetector.from_manifest(d / "detector.pt.json")


# -- the shipped model ------------------------------------------------------------------------------------------

SHIPPED = WEIGHTS_DIR / "detector.pt.json"


@pytest.mark.skipif(not SHIPPED.is_file(), reason="no shipped detector yet (sigpipe/weights/detector.pt.json)")
def test_shipped_model_finds_nothing_on_blank_pages() -> None:
    d = SignatureDetector.from_manifest(None, threads=2)
    assert d.ident.startswith(Manifest.load(SHIPPED).name)
    rng = np.random.default_rng(0)
    white = np.full((2339, 1654), 255, np.uint8)
    noisy = np.clip(white.astype(np.int16) - rng.integers(0, 25, white.shape), 0, 255).astype(np.uint8)
    strip = np.full((550, 1200, 3), 245, np.uint8)
    patterned = np.full((550, 1200, 3), (232, 242, 236), np.uint8)  # security paper: the second look's stretched
    xs = np.arange(1200)  # view of it must be blank too
    for k in range(0, 550, 6):
        ys = np.clip((k + 4 * np.sin(xs / 23.0 + k)).astype(int), 0, 549)
        patterned[ys, xs] = (150, 200, 120)
    assert d.second_look is not None and midtone_share(patterned) > d.second_look.min_midtone_share
    assert d.detect_batch([white, noisy, strip, patterned]) == [[], [], [], []]


def test_long_pages_are_seen_through_windows(det: SignatureDetector, monkeypatch: pytest.MonkeyPatch) -> None:
    """A strip of cheques side by side: each signature found once, whole, in page pixels, wherever the windows'
    edges fall (the network replaced by a blob finder, so only the windowing is tested)."""
    def blobs(images: list[np.ndarray], conf: float) -> list[list[Detection]]:
        out = []
        for img in images:
            _, _, stats, _ = cv2.connectedComponentsWithStats((img[..., 0] < 128).astype(np.uint8))
            out.append([Detection((float(x), float(y), float(x + w), float(y + h)), 0.9)
                        for x, y, w, h, _ in stats[1:]])
        return out

    monkeypatch.setattr(det, "_predict", blobs)
    page = np.full((300, 4000), 255, np.uint8)
    want = [(x, 100 + x % 7, x + 230, 160 + x % 7) for x in range(150, 3700, 520)]
    for x1, y1, x2, y2 in want:
        page[y1:y2, x1:x2] = 0
    edges = {e for _, x0, _, x1 in windows(page.shape) for e in (x0, x1)} - {0, 4000}
    assert sum(any(x1 < e < x2 for e in edges) for x1, _, x2, _ in want) >= 3  # windows cut through signatures
    got = sorted(tuple(round(v) for v in d.bbox) for d in det.detect(page))
    assert got == sorted(want)
    assert [tuple(round(v) for v in d.bbox) for d in det.detect(page[:, :900])] == sorted(want)[:2]  # one window


def _ink_unless_cluttered(seen: list[np.ndarray]) -> Callable[[list[np.ndarray], float], list[list[Detection]]]:
    """A stand-in for the network that finds ink (darker than 100) unless a dense mid-tone pattern fills more than a
    tenth of the view, as the real one misses signatures on security paper; each view it is shown goes to ``seen``."""
    def predict(images: list[np.ndarray], conf: float) -> list[list[Detection]]:
        out = []
        for img in images:
            seen.append(img)
            light = img.max(axis=2)
            if ((light > 100) & (light < 225)).mean() > 0.1:  # the pattern hides the ink
                out.append([])
                continue
            _, _, stats, _ = cv2.connectedComponentsWithStats((light < 100).astype(np.uint8))
            out.append([Detection((float(x), float(y), float(x + w), float(y + h)), 0.9)
                        for x, y, w, h, _ in stats[1:]])
        return out

    return predict


def test_second_look_stretches_patterned_pages_on_which_nothing_was_found(
        model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A page with nothing found on patterned paper is looked at once more with its levels stretched; a page with a
    box, or with nothing found on plain paper, is looked at once (the network replaced by a finder of ink that a dense
    mid-tone pattern hides, so only the wiring is tested)."""
    seen: list[np.ndarray] = []
    patterned = np.full((300, 800, 3), (232, 242, 236), np.uint8)
    patterned[::3] = (150, 200, 120)  # a tinted line every third row
    patterned[200:230, 500:700] = 20  # ink
    plain_blank = np.full((300, 800, 3), 240, np.uint8)
    patterned_blank = patterned.copy()
    patterned_blank[200:230, 500:700] = patterned[100:130, 500:700]
    plain_signed = plain_blank.copy()
    plain_signed[50:80, 100:300] = 20
    pages = [patterned, plain_blank, patterned_blank, plain_signed]

    d = SignatureDetector(model_dir / "detector.pt", imgsz=IMGSZ, conf=CONF, threads=2,
                          second_look=SecondLook(0.10, 0.10))
    monkeypatch.setattr(d, "_predict", _ink_unless_cluttered(seen))
    got = d.detect_batch(pages)
    assert [[tuple(round(v) for v in x.bbox) for x in ds] for ds in got] == [
        [(500, 200, 700, 230)], [], [], [(100, 50, 300, 80)]]
    assert len(seen) == 6  # four pages, and the two patterned ones once more
    assert all(np.percentile(img, 50) >= 250 for img in seen[4:])  # stretched: the pattern faded to paper
    seen.clear()
    monkeypatch.setattr(d, "second_look", None)
    assert d.detect_batch(pages) == [[], [], [], got[3]] and len(seen) == 4


def test_strongly_patterned_pages_are_looked_at_stretched_first(
        model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Above ``stretched_first_share`` a page is looked at stretched first and as scanned only when that finds
    nothing; a page patterned less keeps the as-scanned look first (the network replaced by a finder of ink that a
    dense mid-tone pattern hides, so only the order of the looks is tested)."""
    seen: list[np.ndarray] = []
    def patterned(every: int, signed: bool) -> np.ndarray:
        page = np.full((300, 800, 3), (232, 242, 236), np.uint8)
        page[::every] = (150, 200, 120)  # a tinted line every few rows
        if signed:
            page[200:230, 500:700] = 20
        return page

    strong, strong_blank, light = patterned(3, True), patterned(3, False), patterned(5, True)
    plain_signed = np.full((300, 800, 3), 240, np.uint8)
    plain_signed[50:80, 100:300] = 20
    assert midtone_share(strong) > 0.25 > midtone_share(light) > 0.1
    d = SignatureDetector(model_dir / "detector.pt", imgsz=IMGSZ, conf=CONF, threads=2,
                          second_look=SecondLook(0.10, 0.10, 0.25))
    monkeypatch.setattr(d, "_predict", _ink_unless_cluttered(seen))
    got = d.detect_batch([strong, strong_blank, light, plain_signed])
    assert [[tuple(round(v) for v in x.bbox) for x in ds] for ds in got] == [
        [(500, 200, 700, 230)], [], [(500, 200, 700, 230)], [(100, 50, 300, 80)]]
    # first looks: strong and strong_blank stretched, light and plain as scanned; then strong_blank as scanned
    # and light stretched
    assert [bool(np.percentile(img, 50) >= 250) for img in seen] == [True, True, False, False, False, True]


def test_bitonal_pages_with_nothing_found_are_looked_at_through_median_filters(
        model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bitonal page on which nothing is found is looked at through each median filter in turn until something is;
    a page in greys is not (the network replaced by a finder of ink blots that a page of specks hides, so only the
    wiring is tested)."""
    seen: list[np.ndarray] = []

    def blots_unless_speckled(images: list[np.ndarray], conf: float) -> list[list[Detection]]:
        out = []
        for img in images:
            seen.append(img)
            _, _, stats, _ = cv2.connectedComponentsWithStats((img[..., 0] < 64).astype(np.uint8))
            specks = int((stats[1:, 4] < 30).sum())
            out.append([] if specks > 50 else [Detection((float(x), float(y), float(x + w), float(y + h)), 0.9)
                                               for x, y, w, h, a in stats[1:] if a >= 200])
        return out

    def page(pattern: str, signed: bool, paper: int = 255) -> np.ndarray:
        img = np.full((300, 800), paper, np.uint8)
        if pattern == "dots":  # single pixels: gone through a 3 px median
            img[::6, ::6] = 0
        else:  # dashes 2 px thick: they outlast a 3 px median, not a 5 px one
            for y in range(20, 180, 8):  # clear of the edges (replicated) and of the signature
                for x in range(20, 780, 12):
                    img[y : y + 2, x : x + 6] = 0
        if signed:
            img[200:230, 500:700] = 0
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)

    portrait = np.ascontiguousarray(np.rot90(page("dots", True)))
    pages = [page("dots", True), page("dashes", True), page("dots", False), page("dots", True, paper=150), portrait]
    d = SignatureDetector(model_dir / "detector.pt", imgsz=IMGSZ, conf=CONF, threads=2,
                          second_look=SecondLook(0.10, 0.10, 0.2, (3, 5), 1.8))
    monkeypatch.setattr(d, "_predict", blots_unless_speckled)
    got = d.detect_batch(pages)
    assert [[tuple(round(v) for v in x.bbox) for x in ds] for ds in got] == [
        [(500, 200, 700, 230)], [(500, 200, 700, 230)], [], [], []]
    # as scanned: all five; through 3 px: the three bitonal cheque-shaped ones; through 5 px: the two still
    # without a box (not the page in greys, nor the bitonal page taller than wide)
    assert len(seen) == 5 + 3 + 2
    seen.clear()
    monkeypatch.setattr(d, "second_look", SecondLook(0.10, 0.10, 0.2))
    assert d.detect_batch(pages) == [[], [], [], [], []] and len(seen) == 5


def test_second_look_comes_from_the_manifest(model_dir: Path, tmp_path: Path) -> None:
    m = json.loads((model_dir / "detector.pt.json").read_text())
    shutil.copy(model_dir / "detector.pt", tmp_path / "detector.pt")
    for look, want in (({"white_quantile": 0.2, "min_midtone_share": 0.15}, SecondLook(0.2, 0.15)),
                       ({"white_quantile": 0.1, "min_midtone_share": 0.1, "stretched_first_share": 0.2},
                        SecondLook(0.1, 0.1, 0.2)),
                       ({"white_quantile": 0.1, "min_midtone_share": 0.1, "stretched_first_share": 0.2,
                         "bitonal_medians": [3, 5], "bitonal_min_aspect": 1.8},
                        SecondLook(0.1, 0.1, 0.2, (3, 5), 1.8)), (None, None)):
        (tmp_path / "detector.pt.json").write_text(json.dumps({**m, "second_look": look} if look else m))
        assert SignatureDetector.from_manifest(tmp_path / "detector.pt.json").second_look == want
    (tmp_path / "detector.pt.json").write_text(json.dumps({**m, "second_look": {"white_quantile": 2,
                                                                                  "min_midtone_share": 0.1}}))
    with pytest.raises(ModelError, match="second_look"):
        SignatureDetector.from_manifest(tmp_path / "detector.pt.json")


class _Payload:
    """Unpickling this runs a shell command: what a hostile .pt checkpoint would carry."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        import os

        return os.system, (f"touch {self.marker}",)


def test_a_checkpoint_is_never_unpickled_whole(tmp_path: Path) -> None:
    """A model manifest from elsewhere (--detector-weights) choosing the .pt backend: its checkpoint must be read as
    weights (Ultralytics' safe load), not unpickled, or it could run code on the batch host."""
    from sigpipe.weights import write_manifest

    marker = tmp_path / "ran"
    weights = tmp_path / "detector.pt"
    torch.save({"model": _Payload(marker)}, weights)
    data = json.loads((WEIGHTS_DIR / "detector.pt.json").read_text())
    data.update(default_backend="pt", backends={}, backend_sha256={})
    manifest = write_manifest(weights, data)  # stamped and hash-matched: only the pickle is hostile
    with pytest.raises(ModelError, match="cannot load"):
        SignatureDetector.from_manifest(manifest)
    assert not marker.exists()
    # the shipped checkpoint and the ones sigpipe trains load so
    assert SignatureDetector.from_manifest(WEIGHTS_DIR / "detector.pt.json", backend="pt").backend == "pt"
