"""The exported-model runtime's own pieces: input shapes, letterbox geometry, NMS against torchvision, and the
fusion of test-time augmentation views."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torchvision

from sigpipe.detector.runtime import (
    MAX_ASPECT,
    MAX_WINDOWS,
    WINDOW_ASPECT,
    Letterbox,
    SecondLook,
    bitonal,
    decode,
    despeckled,
    fuse_views,
    input_shape,
    letterbox,
    merge_windows,
    midtone_share,
    nms,
    stretch_levels,
    windows,
)


@pytest.mark.parametrize(
    ("page", "rect", "want"),
    [
        ((2200, 1700), True, (512, 416)),  # A4 portrait at 200 dpi: 396 px wide -> next multiple of 32
        ((600, 1600), True, (192, 512)),  # cheque strip
        ((512, 512), True, (512, 512)),
        ((10, 3000), True, (32, 512)),  # very thin: at least one stride
        ((600, 1600), False, (512, 512)),
    ],
)
def test_input_shape(page: tuple[int, int], rect: bool, want: tuple[int, int]) -> None:
    assert input_shape(page, 512, rect) == want


def test_letterbox_places_the_page_centred_and_maps_back() -> None:
    page = np.full((600, 1600, 3), 255, np.uint8)
    page[100:200, 400:800] = 0  # a black block
    x, lb = letterbox(page, (192, 512))
    assert x.shape == (3, 192, 512) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert lb == Letterbox(512 / 1600, 192 / 600, 0, 0)
    x, lb = letterbox(page, (512, 512))  # square: 192 px of height, padded 160 above and below
    assert (lb.pad_x, lb.pad_y) == (0, 160)
    assert np.allclose(x[:, :160], 114 / 255) and np.allclose(x[:, -160:], 114 / 255)
    ys, xs = np.nonzero(x[0] < 0.1)  # the block, in input pixels, maps back to where it was on the page
    assert abs((xs.min() - lb.pad_x) / lb.gain_x - 400) < 4 and abs((ys.max() - lb.pad_y) / lb.gain_y - 200) < 4


def test_nms_matches_torchvision() -> None:
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 200, (300, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 60, (300, 2))], axis=1)
    scores = rng.uniform(0, 1, 300)
    for iou in (0.3, 0.5, 0.7):
        want = torchvision.ops.nms(torch.from_numpy(boxes), torch.from_numpy(scores), iou).numpy()
        np.testing.assert_array_equal(nms(boxes, scores, iou), want)


def test_decode_filters_suppresses_and_maps() -> None:
    # Raw output for 4 anchors: (cx, cy, w, h, score) in input pixels of a 192x512 input of a 600x1600 page.
    pred = np.array([
        [100, 102, 300, 50],  # cx
        [50, 50, 100, 20],  # cy
        [40, 40, 20, 10],  # w
        [20, 20, 10, 10],  # h
        [0.9, 0.8, 0.2, 0.6],  # score
    ], dtype=np.float32)
    lb = Letterbox(0.32, 0.32, 0, 0)
    boxes, conf = decode(pred, lb, (600, 1600), conf=0.25, iou=0.5, max_det=10)
    np.testing.assert_allclose(conf, [0.9, 0.6], atol=1e-6)  # anchor 1 suppressed by 0, anchor 2 below conf
    np.testing.assert_allclose(boxes[0], np.array([80, 40, 120, 60]) / 0.32, atol=1e-3)
    np.testing.assert_allclose(boxes[1], [(50 - 5) / 0.32, 15 / 0.32, 55 / 0.32, 25 / 0.32], atol=1e-3)
    boxes, conf = decode(pred, lb, (600, 1600), conf=0.25, iou=0.5, max_det=1)
    assert len(boxes) == 1


def test_fuse_views_by_hand() -> None:
    a = (np.array([[0, 0, 10, 10], [100, 100, 120, 110], [0, 0, 10, 9]], float), np.array([0.8, 0.3, 0.5]))
    b = (np.array([[2, 0, 12, 10], [200, 0, 210, 5]], float), np.array([0.4, 0.6]))
    boxes, conf = fuse_views([a, b])
    # Cluster 1: a[0] (0.8) with b[0] (0.4, IoU 0.67); a[2] overlaps too but is a second box of view a: dropped.
    # Cluster 2: b[1] alone (0.6 / 2 views); cluster 3: a[1] alone (0.3 / 2).
    np.testing.assert_allclose(conf, [0.6, 0.3, 0.15])
    np.testing.assert_allclose(boxes[0], [(0 * 0.8 + 2 * 0.4) / 1.2, 0, (10 * 0.8 + 12 * 0.4) / 1.2, 10])
    np.testing.assert_allclose(boxes[1:], [[200, 0, 210, 5], [100, 100, 120, 110]])


def test_fuse_views_keeps_apart_what_overlaps_too_little_and_handles_empty_views() -> None:
    a = (np.array([[0, 0, 10, 10]], float), np.array([0.9]))
    b = (np.array([[6, 0, 16, 10]], float), np.array([0.9]))  # IoU 4/16 = 0.25 < 0.55
    boxes, conf = fuse_views([a, b])
    assert len(boxes) == 2 and np.allclose(conf, 0.45)
    boxes, conf = fuse_views([a, (np.zeros((0, 4)), np.zeros(0))])
    np.testing.assert_allclose(conf, [0.45])
    np.testing.assert_allclose(boxes, [[0, 0, 10, 10]])
    boxes, conf = fuse_views([(np.zeros((0, 4)), np.zeros(0))] * 2)
    assert boxes.shape == (0, 4) and conf.shape == (0,)


@pytest.mark.parametrize("hw", [(2339, 1654), (550, 1200), (100, 400), (550, 6000), (11695, 1654), (300, 12000),
                                (1, 5000), (5000, 1), (10, 100000)])
def test_windows_cover_long_pages_with_overlaps_a_signature_fits_in(hw: tuple[int, int]) -> None:
    h, w = hw
    spans = windows(hw)
    if max(h, w) <= MAX_ASPECT * min(h, w):
        assert spans == [(0, 0, h, w)]
        return
    short = min(h, w)
    along = [(x0, x1) if w > h else (y0, y1) for y0, x0, y1, x1 in spans]
    assert along[0][0] == 0 and along[-1][1] == max(h, w)
    for (_, a1), (b0, _) in zip(along[:-1], along[1:], strict=True):
        assert a1 - b0 >= short  # consecutive windows overlap by at least the short side
    assert len(spans) <= MAX_WINDOWS  # a thin strip costs at most MAX_WINDOWS forward passes, not thousands
    for y0, x0, y1, x1 in spans:
        assert min(y1 - y0, x1 - x0) == short
        assert max(y1 - y0, x1 - x0) <= WINDOW_ASPECT * short + 1 or len(spans) == MAX_WINDOWS


def test_merge_windows_drops_cut_boxes_and_duplicates() -> None:
    spans = [(0, 0, 100, 250), (0, 150, 100, 400)]  # a 100x400 page, windows overlapping over x 150..250
    found = [
        (np.array([[10, 10, 60, 40], [200, 20, 250, 50], [160, 5, 240, 45]]), np.array([0.9, 0.8, 0.7])),
        # in the second window: the cut box's signature whole (x 200..290), the shared one again, one more
        (np.array([[50, 20, 140, 50], [10, 5, 90, 45], [200, 10, 240, 30]]), np.array([0.6, 0.75, 0.5])),
    ]
    boxes, confs = merge_windows(found, spans, (100, 400), iou=0.5)
    got = sorted(zip(map(tuple, boxes.tolist()), confs.tolist(), strict=True))
    assert got == [((10, 10, 60, 40), 0.9), ((160, 5, 240, 45), 0.75), ((200, 20, 290, 50), 0.6),
                   ((350, 10, 390, 30), 0.5)]


def _security_page(h: int = 600, w: int = 1600, tint: tuple[int, int, int] = (150, 200, 120)) -> np.ndarray:
    """A cheque-like BGR page: pale paper crossed by dense coloured guilloche waves, with a black scrawl of ink."""
    page = np.full((h, w, 3), (232, 242, 236), np.uint8)
    xs = np.arange(w)
    for k in range(0, h, 6):  # one wave every 6 rows, 2 px thick
        ys = (k + 4 * np.sin(xs / 23.0 + k)).astype(int)
        for dy in (0, 1):
            ok = (ys + dy >= 0) & (ys + dy < h)
            page[ys[ok] + dy, xs[ok]] = tint
    page[400:440, 1000:1300] = (30, 25, 20)  # the signature's ink
    return page


def test_midtone_share_tells_patterned_paper_from_plain() -> None:
    plain = np.full((600, 1600, 3), 240, np.uint8)
    plain[100:110, 100:900] = 20  # a line of print
    plain[400:440, 1000:1300] = 30
    patterned = _security_page()
    assert midtone_share(plain) < 0.05
    assert midtone_share(patterned) > 0.3
    assert midtone_share(cv2.cvtColor(patterned, cv2.COLOR_BGR2GRAY)) > 0.3  # a gray scan of it too
    assert midtone_share(np.full((3, 3, 3), 200, np.uint8)) == 0.0  # tiny and uniform: all paper


def test_stretched_levels_fade_the_pattern_to_paper_and_keeps_the_ink() -> None:
    page = _security_page()
    out = stretch_levels(page, 0.10)
    assert out.shape == page.shape and out.dtype == np.uint8
    ink = out[400:440, 1000:1300]
    assert ink.max() < 60  # the ink stays dark
    background = out[:380]
    assert np.percentile(background, 15) >= 250  # the pattern and the paper are white
    assert (page[:380] < 215).mean() > 0.15  # which they were not
    gray = np.repeat(cv2.cvtColor(page, cv2.COLOR_BGR2GRAY)[:, :, None], 3, axis=2)
    g = stretch_levels(gray, 0.10)
    assert np.array_equal(g[..., 0], g[..., 1]) and np.array_equal(g[..., 0], g[..., 2])  # a gray page stays gray
    dark = np.full((100, 100, 3), 20, np.uint8)  # a dark photo is brightened at most 4x (LEVELS_FLOOR)
    assert stretch_levels(dark, 0.10).max() == 80


def _bitonal_security_page() -> np.ndarray:
    """The security page as a bitonal scanner's fixed threshold leaves it: the waves black lines 2 px thick, a dot
    screen of single black pixels, and the signature a stroke 6 px wide."""
    gray = cv2.cvtColor(_security_page(), cv2.COLOR_BGR2GRAY)
    page = np.where(gray < 200, 0, 255).astype(np.uint8)
    page[::5, ::5] = 0  # the pantograph's dots
    page[300:306, 100:700] = 0  # a stroke of the pen, far from the scrawl
    return cv2.cvtColor(page, cv2.COLOR_GRAY2BGR)


def test_bitonal_tells_a_1_bit_scan_even_saved_as_jpeg() -> None:
    page = _bitonal_security_page()
    assert bitonal(page) and bitonal(page[..., 0])
    ok, jpeg = cv2.imencode(".jpg", page, [cv2.IMWRITE_JPEG_QUALITY, 75])
    assert ok and bitonal(cv2.imdecode(jpeg, cv2.IMREAD_COLOR))  # JPEG's ringing leaves a few greys
    assert not bitonal(_security_page())  # the colour scan: mid-tones
    ramp = np.tile(np.linspace(0, 255, 400).astype(np.uint8), (100, 1))
    assert not bitonal(cv2.cvtColor(ramp, cv2.COLOR_GRAY2BGR))


def test_despeckled_takes_out_thin_pattern_and_keeps_strokes() -> None:
    page = np.full((400, 800), 255, np.uint8)
    page[0:100:5, 0:800:5] = 0  # a dot screen of single pixels
    for y in range(100, 200, 6):  # lines 2 px thick
        page[y : y + 2] = 0
    page[250:256, 100:700] = 0  # a stroke of the pen, 6 px wide
    page[300:340, 200:500] = 0  # a blot of ink
    bgr = cv2.cvtColor(page, cv2.COLOR_GRAY2BGR)
    for size, gone in ((3, [slice(0, 100)]), (5, [slice(0, 100), slice(100, 200)])):
        out = despeckled(bgr, size)
        assert out.shape == bgr.shape and out.dtype == np.uint8
        for rows in gone:
            assert (out[rows, :, 0] == 0).mean() < 0.01
        assert (out[251:255, 110:690, 0] == 0).all() and (out[305:335, 205:495, 0] == 0).all()  # ink stays
    assert (despeckled(bgr, 3)[100:200, :, 0] == 0).mean() > 0.25  # lines 2 px thick outlast a 3 px median


def test_second_look_settings_are_checked() -> None:
    assert not SecondLook(0.1, 0.1).stretched_first(0.9)
    look = SecondLook(0.1, 0.1, 0.2)
    assert look.stretched_first(0.21) and not look.stretched_first(0.2)
    bad: tuple[float, ...]
    for bad in ((0.0, 0.1), (1.0, 0.1), (0.1, -0.1), (0.1, 1.0), (0.1, 0.2, 0.1), (0.1, 0.1, 1.0)):
        with pytest.raises(ValueError, match="second look"):
            SecondLook(*bad)
    assert SecondLook(0.1, 0.1, 0.2, (3, 5)).bitonal_medians == (3, 5)
    for sizes in ((4,), (1,), (3, 2)):
        with pytest.raises(ValueError, match="second look"):
            SecondLook(0.1, 0.1, 0.2, sizes)
    with pytest.raises(ValueError, match="second look"):
        SecondLook(0.1, 0.1, 0.2, (3,), -1.0)


def test_only_bitonal_cheque_shaped_pages_are_despeckled() -> None:
    look = SecondLook(0.1, 0.1, 0.2, (3, 5), 1.8)
    cheque = np.full((550, 1200, 3), 255, np.uint8)
    cheque[::5, ::5] = 0
    letter = np.full((2339, 1654, 3), 255, np.uint8)
    letter[::5, ::5] = 0
    assert look.despeckles(cheque) and not look.despeckles(letter)  # a letter's unsigned pages pay nothing
    assert SecondLook(0.1, 0.1, 0.2, (3, 5)).despeckles(letter)  # no aspect asked: any page
    assert not look.despeckles(_security_page())  # a colour scan: stretched, not despeckled
    assert not SecondLook(0.1, 0.1, 0.2).despeckles(cheque)  # no medians
