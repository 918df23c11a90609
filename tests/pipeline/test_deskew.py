"""Pages a few degrees askew: the skew is measured, the page levelled for the detector, boxes mapped back to the
page as scanned, and the signature cropped levelled from a report's fields alone."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from pipeline_doubles import InkBlobDetector, scribble

from sigpipe.pipeline.deskew import box_from_level, estimate_skew, level, level_crop
from sigpipe.pipeline.flow import crop_detection, upright_crop
from sigpipe.pipeline.orientation import OrientingDetector, PageOrienter

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def letter(seed: int = 0) -> np.ndarray:
    """An A4 page at 100 dpi (827 x 1169): lines of 'text' (short dark dashes on baselines) and a signature."""
    rng = np.random.default_rng(seed)
    page = np.full((1169, 827), 250, np.uint8)
    for y in range(120, 700, 28):
        x = 90
        while x < 730:
            w = int(rng.integers(15, 60))
            page[y - 9 : y, x : x + w] = 30  # a word
            x += w + int(rng.integers(8, 16))
    sig = scribble(seed, 90, 260)
    page[800:890, 420:680] = np.minimum(page[800:890, 420:680], sig)
    return page


def lowest(detections: list) -> object:  # type: ignore[type-arg]
    """The signature among a test page's ink blobs: it lies below the text."""
    return max(detections, key=lambda d: d.bbox[3])


def turned(page: np.ndarray, degrees: float) -> np.ndarray:
    """The page scanned ``degrees`` counter-clockwise askew (same canvas, white corners)."""
    h, w = page.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(page, m, (w, h), borderValue=255)


@pytest.mark.parametrize("degrees", [-6.0, -2.0, 1.5, 3.5, 8.0])
def test_the_skew_of_a_page_is_measured(degrees: float):
    assert estimate_skew(turned(letter(), degrees)) == pytest.approx(-degrees, abs=0.3)


def test_a_cheque_photographed_on_a_dark_table_is_levelled():
    """A phone's photo: the page askew on a dark table that fills half the picture. The table was taken for ink
    (over 40% of the picture: given up), and none of 200 such captures was levelled."""
    page = turned(letter(1), 4.0)
    photo = np.full((2000, 1500), 90, np.uint8)  # the table
    photo[400 : 400 + page.shape[0], 330 : 330 + page.shape[1]] = page
    photo[400 : 400 + page.shape[0], 330 : 330 + page.shape[1]][page == 255] = 90  # the corners turned out of it
    assert estimate_skew(photo) == pytest.approx(-4.0, abs=0.3)


def test_level_pages_and_pages_without_lines_are_left_alone():
    assert estimate_skew(letter()) == 0.0
    assert estimate_skew(turned(letter(), 0.6)) == 0.0  # under a degree: not touched
    assert estimate_skew(np.full((1169, 827), 250, np.uint8)) == 0.0  # blank
    assert estimate_skew(turned(letter(), 25.0)) == 0.0  # far askew on purpose: left as it is


def test_a_page_holding_only_a_signature_is_not_levelled_at_the_signature_s_slant():
    """Signatures slant: measured on all ink, 4 of the 16 example specimens pasted on a blank page were 'levelled' by
    5 to 9 degrees, the signature turned away from how its writer wrote it. Only letter-sized marks are measured."""
    for path in sorted((EXAMPLES / "refs").rglob("*.png")):
        sig = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        page = np.full((1100, 850), 250, np.uint8)
        h, w = min(sig.shape[0], 1000), min(sig.shape[1], 800)
        page[50 : 50 + h, 20 : 20 + w] = np.minimum(page[50 : 50 + h, 20 : 20 + w], sig[:h, :w])
        assert estimate_skew(page) == 0.0, path
        assert estimate_skew(turned(page, 4.0)) == 0.0, path  # turned with the page: still no print to go by


def test_a_box_on_the_levelled_page_maps_back_and_crops_again_from_the_page_as_scanned():
    page = turned(letter(), 4.0)
    skew = estimate_skew(page)
    flat, m = level(page, skew)
    box = lowest(InkBlobDetector(min_area=10_000).detect_batch([flat])[0]).bbox
    hull = box_from_level(box, m, (page.shape[1], page.shape[0]))
    x1, y1, x2, y2 = hull
    assert 0 <= x1 < x2 <= page.shape[1] and 0 <= y1 < y2 <= page.shape[0]
    assert (x2 - x1) > (box[2] - box[0]) and (y2 - y1) > (box[3] - box[1])  # the hull of a turned box
    again = level_crop(page, hull, skew, 0.08)
    bx1, by1, bx2, by2 = box
    mx, my = (bx2 - bx1) * 0.08, (by2 - by1) * 0.08
    direct = flat[int(by1 - my) : int(by2 + my) + 1, int(bx1 - mx) : int(bx2 + mx) + 1]
    assert abs(again.shape[0] - direct.shape[0]) <= 3 and abs(again.shape[1] - direct.shape[1]) <= 3
    h, w = min(again.shape[0], direct.shape[0]), min(again.shape[1], direct.shape[1])
    assert np.abs(again[:h, :w].astype(int) - direct[:h, :w].astype(int)).mean() < 12  # the same pixels, levelled


def test_the_orienting_detector_levels_a_page_and_the_crop_is_the_levelled_signature():
    """A cheque fed in at 5 degrees: the detector sees the levelled page, the report's box is in pixels of the page
    as scanned, and the verifier gets the signature level (its ink rows as on the level page)."""
    level_page = letter(2)
    page = cv2.cvtColor(turned(level_page, 5.0), cv2.COLOR_GRAY2BGR)
    detector = OrientingDetector(InkBlobDetector(min_area=10_000), PageOrienter(threads=1))
    det = lowest(detector.detect_batch([page])[0])
    assert det.skew == pytest.approx(-5.0, abs=0.3) and det.rotation == 0
    x1, y1, x2, y2 = det.bbox
    assert 0 <= x1 < x2 <= page.shape[1] and 0 <= y1 < y2 <= page.shape[0]
    crop = crop_detection(page, det, 0.08)
    assert np.array_equal(crop, upright_crop(page, det.bbox, det.rotation, det.skew, 0.08))  # from a report's fields
    ink = lambda img: np.argwhere((img.min(axis=2) if img.ndim == 3 else img) < 128)  # noqa: E731
    (h0, w0), (h1, w1) = np.ptp(ink(level_page[790:900, 410:690]), 0), np.ptp(ink(crop), 0)
    assert abs(h1 - h0) <= 6 and abs(w1 - w0) <= 6  # level: a tilted crop's ink is 20+ px taller
    straight = lowest(detector.detect_batch([cv2.cvtColor(level_page, cv2.COLOR_GRAY2BGR)])[0])
    assert straight.skew == 0.0
