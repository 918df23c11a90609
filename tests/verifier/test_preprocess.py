import cv2
import numpy as np
import pytest

from sigpipe.verifier.preprocess import (
    PreprocessConfig,
    flatten_paper,
    ink_mask,
    preprocess,
    preprocess_batch,
    preprocess_marked,
)

CFG = PreprocessConfig()


def draw_signature(h: int = 120, w: int = 320, ink: int = 30, paper: int = 235, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full((h, w), paper, np.uint8)
    pts = np.stack([np.linspace(20, w - 20, 12), h / 2 + rng.normal(0, h / 6, 12)], 1).astype(np.int32)
    cv2.polylines(img, [pts], False, ink, 3, cv2.LINE_AA)
    cv2.circle(img, (w // 3, h // 2), h // 5, ink, 2, cv2.LINE_AA)
    return img


def test_shape_dtype_range():
    out = preprocess(draw_signature())
    assert out.shape == (CFG.height, CFG.width)
    assert out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert out.max() > 0.9  # ink is bright after inversion and normalisation
    assert out[0].sum() == 0 and out[:, 0].sum() == 0  # margin stays empty


def test_blank_gives_zeros():
    assert preprocess(np.full((100, 200), 240, np.uint8)).sum() == 0


def test_invariant_to_extra_margin():
    sig = draw_signature()
    padded = cv2.copyMakeBorder(sig, 80, 40, 150, 60, cv2.BORDER_CONSTANT, value=235)
    a, b = preprocess(sig), preprocess(padded)
    assert np.abs(a - b).mean() < 0.01


def test_invariant_to_contrast_and_colour():
    dark = preprocess(draw_signature(ink=20, paper=240))
    faint = preprocess(draw_signature(ink=150, paper=200))
    bgr = preprocess(cv2.cvtColor(draw_signature(), cv2.COLOR_GRAY2BGR))
    assert np.abs(dark - faint).mean() < 0.03
    assert np.abs(dark - preprocess(draw_signature())).mean() < 0.03
    assert np.allclose(bgr, preprocess(draw_signature()), atol=1e-6)


def test_transparent_pixels_are_paper():
    sig = draw_signature(ink=20, paper=255)
    e_signature = np.zeros((*sig.shape, 4), np.uint8)  # black everywhere, the ink only in the alpha channel
    e_signature[..., 3] = 255 - sig
    opaque = cv2.cvtColor(sig, cv2.COLOR_GRAY2BGRA)
    assert np.abs(preprocess(e_signature) - preprocess(sig)).mean() < 0.01 and preprocess(e_signature).max() > 0.9
    assert np.allclose(preprocess(opaque), preprocess(sig), atol=1e-6)  # opaque: as before


def test_ruling_line_is_removed():
    sig = draw_signature(h=160, w=400)
    lined = sig.copy()
    lined[150:153, :] = 30  # a ruling line under the signature, crossing the whole crop
    m_line = ink_mask(lined, CFG)
    assert not m_line[151, 5:40].any() and not m_line[151, -40:-5].any()
    assert np.abs(preprocess(lined) - preprocess(sig)).mean() < 0.02


def test_marked_preprocessing_says_where_a_line_was_taken_out_of_the_strokes():
    sig = draw_signature(h=160, w=400)
    through = sig.copy()
    through[78:81, :] = 30  # a signature line through the middle of the strokes
    canvas, gaps = preprocess_marked(through)
    assert np.array_equal(canvas, preprocess(through))  # the canvas is preprocess()'s
    assert gaps is not None and gaps.shape == canvas.shape and gaps.dtype == bool
    rows = np.flatnonzero(gaps.any(axis=1))
    assert 0 < rows.size <= 6 and abs(rows.mean() - canvas.shape[0] / 2) < 6  # a thin band where the line ran
    assert (canvas[gaps] < 0.5).mean() > 0.9  # the strokes have their gap there
    assert preprocess_marked(sig)[1] is None  # no line, nothing marked
    assert preprocess_marked(np.full((100, 200), 240, np.uint8))[1] is None  # nor on a blank crop
    beside = sig.copy()
    beside = cv2.copyMakeBorder(beside, 0, 60, 0, 0, cv2.BORDER_CONSTANT, value=235)
    beside[200:203, :] = 30  # a line below the ink's box, not crossing it: removed, but no gap in the strokes
    assert preprocess_marked(beside)[1] is None


@pytest.mark.parametrize("degrees", [0.7, 1.5, -3.0])
def test_a_tilted_line_through_the_signature_is_removed_with_line_tilt(degrees: float):
    """A page scanned a little askew: its signature line climbs across the crop, so no horizontal run is long
    enough for the untilted test, and the line was taken for strokes of the signature."""
    sig = draw_signature(h=200, w=600, seed=3)
    lined = sig.copy()
    rise = 300 * np.tan(np.radians(degrees))
    cv2.line(lined, (0, round(100 - rise)), (599, round(100 + rise)), 40, 3)  # through the middle of the ink
    tilt = PreprocessConfig(line_tilt=4.0)
    clean = preprocess(sig, tilt)
    assert np.abs(preprocess(lined, tilt) - clean).mean() < 0.5 * np.abs(preprocess(lined, CFG) - clean).mean()
    assert np.abs(preprocess(lined, tilt) - clean).mean() < 0.03
    line_left = ink_mask(lined, tilt) & ~ink_mask(sig, tilt)  # ink that is not the signature's
    assert line_left.sum() < 20 and (ink_mask(lined, CFG) & ~ink_mask(sig, CFG)).sum() > 50


def test_line_tilt_changes_nothing_without_a_line_and_reads_as_earlier_settings_when_off():
    for seed in range(5):
        sig = draw_signature(h=150, w=420, seed=seed)
        assert np.array_equal(ink_mask(sig, PreprocessConfig(line_tilt=4.0)), ink_mask(sig, CFG))
    edge = draw_signature(h=150, w=420)
    cv2.line(edge, (0, 0), (419, 12), 30, 2)  # along the top border: no index out of the crop
    assert not ink_mask(edge, PreprocessConfig(line_tilt=4.0))[0:6, 0:60].any()
    assert "line_tilt" not in CFG.to_dict()  # caches keyed on earlier models' settings stay valid
    assert PreprocessConfig.from_dict({**CFG.to_dict(), "line_tilt": 4.0}).line_tilt == 4.0


def test_specks_do_not_move_the_crop():
    sig = draw_signature()
    noisy = cv2.copyMakeBorder(sig, 0, 0, 0, 200, cv2.BORDER_CONSTANT, value=235)
    noisy[5, -3] = 0  # an isolated dust speck far from the ink
    assert np.abs(preprocess(noisy) - preprocess(sig)).mean() < 0.01


def test_jpeg_noise_is_tolerated():
    sig = draw_signature()
    ok, buf = cv2.imencode(".jpg", sig, [cv2.IMWRITE_JPEG_QUALITY, 40])
    jpg = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    assert np.abs(preprocess(jpg) - preprocess(sig)).mean() < 0.03


def test_batch_and_config_round_trip():
    batch = preprocess_batch([draw_signature(seed=i) for i in range(3)])
    assert batch.shape == (3, 1, CFG.height, CFG.width)
    assert PreprocessConfig.from_dict(CFG.to_dict()) == CFG
    with pytest.raises(ValueError, match="unknown"):
        PreprocessConfig.from_dict({**CFG.to_dict(), "bogus": 1})


def test_rejects_non_uint8():
    with pytest.raises(ValueError, match="uint8"):
        preprocess(np.zeros((10, 10), np.float32))


@pytest.mark.parametrize("img", [np.zeros((10, 10, 3), np.float64), np.zeros((10, 10, 4), np.uint16)])
def test_rejects_non_uint8_colour_before_opencv(img: np.ndarray):
    with pytest.raises(ValueError, match="expected uint8 pixels"):  # not OpenCV's own assertion
        preprocess(img)


@pytest.mark.parametrize("shape", [(0, 0), (0, 12), (0, 5, 3)])
def test_rejects_images_without_pixels(shape: tuple[int, ...]):
    with pytest.raises(ValueError, match="with pixels"):
        preprocess(np.zeros(shape, np.uint8))


def test_red_dropout_fades_a_red_stamp_and_keeps_blue_and_black_pens(tmp_path):
    """colour "red": a colour crop is read by its red channel, as cheque scanners drop red print; a specimen file is
    read the same way (read_gray with the channel), so references and crops agree."""
    from sigpipe.datasets.corpus import read_gray

    sig = draw_signature(h=160, w=420, seed=5)
    for pen in ((150, 40, 20), (20, 20, 20)):  # blue ballpoint, black (BGR)
        colour = np.full((*sig.shape, 3), 245, np.uint8)
        colour[sig < 128] = pen
        stamped = colour.copy()
        cv2.circle(stamped, (210, 80), 60, (40, 30, 200), 9)  # a red stamp's ring over the signature
        red = PreprocessConfig(colour="red")
        clean = preprocess(colour, red)
        assert np.abs(preprocess(stamped, red) - clean).mean() < 0.01  # the stamp is gone
        assert np.abs(preprocess(stamped, CFG) - preprocess(colour, CFG)).mean() > 0.03  # luminance keeps it
        assert np.abs(clean - preprocess(sig, red)).mean() < 0.03  # the pen is what a gray scan shows
        cv2.imwrite(str(tmp_path / "s.png"), stamped)
        assert np.array_equal(read_gray(tmp_path / "s.png", "red"), stamped[..., 2])
    assert "colour" not in CFG.to_dict() and PreprocessConfig.from_dict({**CFG.to_dict(), "colour": "red"}) == red
    with pytest.raises(ValueError, match="colour must be one of"):
        PreprocessConfig(colour="green")


def shade(img: np.ndarray, kind: str) -> np.ndarray:
    """``img`` photographed under uneven light: a phone's shadow over its lower right, or light falling off."""
    h, w = img.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == "shadow":  # a soft-edged diagonal shadow at 45% of the light
        field = 1 - 0.55 / (1 + np.exp(-((xx - w / 2) + (yy - h / 2) - 10) / 6))
    else:  # a gradient from full light to 40%
        field = 1 - 0.6 * xx / (w - 1)
    return np.round(img * field).astype(np.uint8)


@pytest.mark.parametrize("kind", ["shadow", "gradient"])
def test_flatten_keeps_a_signature_under_a_shadow_as_it_is_in_the_light(kind: str):
    """One global Otsu threshold took the shadowed paper for ink (a genuine signature photographed by a phone
    came out forged); dividing by the paper's estimate gives back the evenly lit signature."""
    sig = draw_signature(h=160, w=420, seed=4)
    shaded = shade(sig, kind)
    flat = PreprocessConfig(flatten=0.1)
    clean = preprocess(sig, flat)
    assert np.array_equal(clean, preprocess(sig, CFG))  # evenly lit: left as it is
    assert np.abs(preprocess(shaded, flat) - clean).mean() < 0.02
    assert np.abs(preprocess(shaded, CFG) - clean).mean() > 0.05  # without it: the shadow is ink
    lit_mask, shaded_mask = ink_mask(sig, flat), ink_mask(flatten_paper(shaded, 0.1), flat)
    assert (lit_mask ^ shaded_mask).sum() < 0.1 * lit_mask.sum()


def test_flatten_leaves_evenly_lit_and_blank_crops_and_reads_as_earlier_settings_when_off():
    for seed in range(5):
        sig = draw_signature(h=150, w=420, seed=seed, paper=200 + 10 * seed)
        assert flatten_paper(sig, 0.1) is sig
    speckled = np.random.default_rng(0).normal(225, 6, (120, 300)).clip(0, 255).astype(np.uint8)  # paper grain
    assert flatten_paper(speckled, 0.1) is speckled
    assert preprocess(shade(np.full((100, 300), 240, np.uint8), "shadow"), PreprocessConfig(flatten=0.1)).sum() == 0
    assert "flatten" not in CFG.to_dict()
    assert PreprocessConfig.from_dict({**CFG.to_dict(), "flatten": 0.1}).flatten == 0.1


def test_line_otsu_keeps_faint_strokes_beside_a_dark_printed_line():
    """A ballpoint's faint strokes over a black signature line: one Otsu threshold over the crop falls between the
    line and everything else, so the strokes went with the paper and only the line, removed, was left."""
    relevel = PreprocessConfig(line_tilt=4.0, line_otsu=24.0)
    for ink in (170, 200):
        sig = draw_signature(h=160, w=400, ink=ink, paper=235)
        lined = sig.copy()
        lined[110:113, :] = 30  # through the lower strokes
        strokes = ink_mask(sig, relevel)
        assert (ink_mask(lined, CFG) & strokes).sum() < 0.05 * strokes.sum()  # without it: the strokes are gone
        kept = ink_mask(lined, relevel)
        assert (kept & strokes).sum() > 0.85 * strokes.sum() and (kept & ~strokes).sum() < 20
        assert np.abs(preprocess(lined, relevel) - preprocess(sig, relevel)).mean() < 0.01
        assert np.array_equal(ink_mask(sig, relevel), ink_mask(sig, CFG))  # no line: nothing changes


def test_line_otsu_leaves_a_blank_crop_with_a_line_blank():
    """A box around a bare signature line (paper grain, JPEG): what is left once the line is out is paper, and a
    second threshold over it must not make ink of the grain."""
    relevel = PreprocessConfig(line_tilt=4.0, line_otsu=24.0)
    rng = np.random.default_rng(0)
    for _ in range(40):
        h, w = int(rng.integers(60, 160)), int(rng.integers(200, 600))
        img = rng.normal(int(rng.integers(200, 250)), rng.uniform(1, 6), (h, w)).clip(0, 255).astype(np.uint8)
        row = int(rng.integers(h // 3, h - 5))
        img[row : row + int(rng.integers(1, 4)), 5:-5] = int(rng.integers(10, 90))
        img = cv2.imdecode(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(40, 90))])[1], 0)
        assert preprocess(img, relevel).sum() == 0


def handwriting(h: int = 160, w: int = 400, seed: int = 0) -> np.ndarray:
    """Up- and downstrokes, as a hand writes them: a zigzag whose strokes climb steeply."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w), 235, np.uint8)
    xs = np.arange(20, w - 20, 14) + rng.integers(-3, 4, len(range(20, w - 20, 14)))
    ys = np.where(np.arange(len(xs)) % 2 == 0, 0.3 * h, 0.75 * h) + rng.normal(0, h / 20, len(xs))
    cv2.polylines(img, [np.stack([xs, ys], 1).astype(np.int32)], False, 30, 3, cv2.LINE_AA)
    return img


def test_line_mend_bridges_the_strokes_a_removed_line_cut():
    mend = PreprocessConfig(line_tilt=4.0, line_mend=True)
    for seed in range(4):
        sig = handwriting(seed=seed)
        through = sig.copy()
        through[88:91, :] = 30  # a signature line through the strokes
        strokes, cut, mended = ink_mask(sig, CFG), ink_mask(through, CFG), ink_mask(through, mend)
        band = np.zeros_like(strokes)
        band[87:92] = True  # the line as removed, grown by a pixel
        assert (strokes & ~cut & band).sum() > 200  # removing the line cut every stroke
        assert (strokes & ~mended & band).sum() < 0.3 * (strokes & ~cut & band).sum()  # mending gives most back
        assert not (mended & ~cut & ~band).any()  # and adds nothing outside the line
        assert (mended & ~strokes).sum() < 0.02 * strokes.sum()
        clean = preprocess(sig, mend)
        assert np.abs(preprocess(through, mend) - clean).mean() < 0.5 * np.abs(preprocess(through, CFG) - clean).mean()
        assert np.array_equal(ink_mask(sig, mend), strokes)  # no line: nothing changes
        assert preprocess_marked(through, mend)[1] is not None  # the copy check still leaves the band out


def test_line_settings_read_as_earlier_settings_when_off():
    assert "line_otsu" not in CFG.to_dict() and "line_mend" not in CFG.to_dict()
    both = PreprocessConfig.from_dict({**CFG.to_dict(), "line_otsu": 24.0, "line_mend": True})
    assert both.line_otsu == 24.0 and both.line_mend and PreprocessConfig.from_dict(both.to_dict()) == both
