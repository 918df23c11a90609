"""Detector evaluation: the ``eval --json`` contract, and recall / false boxes per page on documents with truth."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from sigpipe.cli import cli
from sigpipe.detector import Detection, SignatureDetector
from sigpipe.detector.evaluate import (
    EVAL_KEYS,
    box_iou,
    compare_detections,
    evaluate,
    evaluate_documents,
    load_truth,
    match_boxes,
    page_detection_stats,
    yolo_split_pages,
)
from sigpipe.errors import InputError

from .conftest import document_page

# -- mAP on a labelled split --------------------------------------------------------------------------------------


def test_eval_cli_json(tiny_dataset: Path, manifest_path: Path) -> None:
    res = CliRunner().invoke(
        cli, ["detector", "eval", "--data", str(tiny_dataset), "--weights", str(manifest_path), "--split", "test",
              "--json", "--threads", "2"],
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert set(out) == set(EVAL_KEYS)
    assert out["images"] == 4
    n_labels = sum(len(p.read_text().splitlines()) for p in (tiny_dataset.parent / "labels" / "test").glob("*.txt"))
    assert out["instances"] == n_labels
    for k in ("map50", "map50_95", "precision", "recall"):
        assert 0.0 <= out[k] <= 1.0


def test_evaluate_function_val_split(tiny_dataset: Path, model_dir: Path) -> None:
    out = evaluate(tiny_dataset, model_dir / "detector.pt", split="val", imgsz=128, threads=2)
    assert list(out) == list(EVAL_KEYS)
    assert out["images"] == 4 and out["instances"] > 0


def test_eval_cli_errors(tmp_path: Path, manifest_path: Path, tiny_dataset: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(cli, ["detector", "eval", "--data", str(tmp_path / "none.yaml"), "--json"])
    assert res.exit_code == 2  # click: path does not exist
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"path: {tmp_path / 'nothing'}\ntrain: images/train\nval: images/val\nnames:\n  0: signature\n")
    res = runner.invoke(cli, ["detector", "eval", "--data", str(bad), "--weights", str(manifest_path), "--json"])
    assert res.exit_code == 2, res.output
    assert "Error" in res.output
    with pytest.raises(InputError, match="split"):
        evaluate(tiny_dataset, manifest_path.with_suffix(""), split="train")


def test_train_cli_refuses_download_names(tiny_dataset: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(
        cli, ["detector", "train", "--data", str(tiny_dataset), "--model", "yolov8n.pt", "--out", str(tmp_path)]
    )
    assert res.exit_code == 2
    assert "download" in res.output


# -- matching and per-page statistics ----------------------------------------------------------------------------


def test_box_iou_brute_force() -> None:
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 50, (7, 2))
    a = np.concatenate([xy, xy + rng.uniform(1, 30, (7, 2))], axis=1)
    b = a[::-1] + rng.uniform(-5, 5, a.shape)
    b[:, 2:] = np.maximum(b[:, 2:], b[:, :2] + 1)
    got = box_iou(a, b)
    for i, j in itertools.product(range(len(a)), range(len(b))):
        ix = max(0.0, min(a[i, 2], b[j, 2]) - max(a[i, 0], b[j, 0]))
        iy = max(0.0, min(a[i, 3], b[j, 3]) - max(a[i, 1], b[j, 1]))
        inter = ix * iy
        union = (a[i, 2] - a[i, 0]) * (a[i, 3] - a[i, 1]) + (b[j, 2] - b[j, 0]) * (b[j, 3] - b[j, 1]) - inter
        assert got[i, j] == pytest.approx(inter / union)


def test_match_boxes() -> None:
    truth = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float)
    assert match_boxes(np.zeros((0, 4)), truth) == (0, 0, 2)
    assert match_boxes(truth, np.zeros((0, 4))) == (0, 2, 0)
    # a duplicate of a found box is a false box; IoU exactly 0.5 counts as a match
    pred = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 40]], float)
    assert match_boxes(pred, truth) == (2, 1, 0)
    assert match_boxes(np.array([[20, 20, 30, 40.5]]), truth[1:]) == (0, 1, 1)


def test_page_detection_stats() -> None:
    def d(*b: float, c: float = 0.9) -> Detection:
        return Detection((b[0], b[1], b[2], b[3]), c)

    preds = [[d(0, 0, 10, 10), d(50, 50, 60, 60, c=0.3)], [], [d(5, 5, 6, 6)]]
    truths = [[(0, 0, 10, 10), (20, 20, 30, 30)], [], []]
    s = page_detection_stats(preds, truths)
    assert s["pages"] == 3 and s["signatures"] == 2 and s["true_positives"] == 1 and s["detections"] == 3
    assert s["recall"] == 0.5 and s["precision"] == pytest.approx(1 / 3)
    assert s["false_boxes_per_page"] == pytest.approx(2 / 3)
    assert s["pages_with_false_boxes"] == 2 and s["blank_pages"] == 2 and s["blank_pages_with_boxes"] == 1
    with pytest.raises(ValueError):
        page_detection_stats(preds, truths[:2])
    assert "recall_ci95" not in s  # intervals only when asked for


def _found(n_found: int, n_missed: int, false_boxes: int = 0) -> tuple[list[Detection], list[tuple[float, ...]]]:
    """One page: ``n_found + n_missed`` true boxes, the first ``n_found`` detected, plus ``false_boxes``."""
    truth = [(100.0 * i, 0.0, 100.0 * i + 50, 20.0) for i in range(n_found + n_missed)]
    dets = [Detection(truth[i], 0.9) for i in range(n_found)]
    dets += [Detection((100.0 * i + 10, 500.0, 100.0 * i + 60, 520.0), 0.5) for i in range(false_boxes)]
    return dets, truth


def test_page_detection_stats_bootstrap_intervals() -> None:
    # 20 pages: 18 with their one signature found, 2 with it missed and a false box -> recall 0.9, 0.1 false/page
    pages = [_found(1, 0)] * 18 + [_found(0, 1, 1)] * 2
    preds, truths = [p[0] for p in pages], [p[1] for p in pages]
    s = page_detection_stats(preds, truths, bootstrap=500)
    assert s["recall"] == pytest.approx(0.9) and s["false_boxes_per_page"] == pytest.approx(0.1)
    lo, hi = s["recall_ci95"]
    assert 0.7 <= lo < 0.9 < hi <= 1.0  # ~ binomial: 0.9 +- 1.96 * sqrt(0.09 / 20) = 0.77 .. 1.0
    lo, hi = s["false_boxes_per_page_ci95"]
    assert 0.0 <= lo < 0.1 < hi <= 0.3
    # the same pages ten times over: a narrower interval around the same figures
    s10 = page_detection_stats(preds * 10, truths * 10, bootstrap=500)
    assert s10["recall"] == s["recall"]
    assert s10["recall_ci95"][1] - s10["recall_ci95"][0] < 0.5 * (hi - lo + s["recall_ci95"][1] - s["recall_ci95"][0])
    # every page alike: nothing varies between resamples
    same = page_detection_stats([_found(2, 1)[0]] * 5, [_found(2, 1)[1]] * 5, bootstrap=100)
    assert same["recall_ci95"] == [pytest.approx(2 / 3, abs=1e-4)] * 2 and same["false_boxes_per_page_ci95"] == [0, 0]
    # no true boxes at all: no recall interval, a false-box interval still
    blank = page_detection_stats([[Detection((0, 0, 5, 5), 0.9)], []], [[], []], bootstrap=100)
    assert "recall_ci95" not in blank and blank["false_boxes_per_page_ci95"][1] == pytest.approx(1.0)


def test_compare_detections_pairs_the_pages() -> None:
    truths = [_found(1, 0)[1]] * 30
    base = [_found(1, 0)[0]] * 27 + [_found(0, 1)[0]] * 3  # misses 3 of 30
    better = [_found(1, 0)[0]] * 29 + [_found(0, 1)[0]]  # misses 1 of them (two of the same pages found)
    c = compare_detections(better, base, truths, bootstrap=500)
    assert c["recall_difference"] == pytest.approx(2 / 30, abs=1e-4)
    lo, hi = c["recall_difference_ci95"]
    assert lo == pytest.approx(0.0) and 0.0 < hi <= 0.2  # paired: never worse on a resample, not always better
    assert c["false_boxes_per_page_difference"] == 0 and c["false_boxes_per_page_difference_ci95"] == [0, 0]
    same = compare_detections(base, base, truths, bootstrap=100)
    assert same["recall_difference"] == 0 and same["recall_difference_ci95"] == [0, 0]
    assert "recall_difference_ci95" not in compare_detections(better, base, truths, bootstrap=0)
    with pytest.raises(ValueError):
        compare_detections(better, base[:5], truths)
    with pytest.raises(ValueError):
        compare_detections([], [], [])


def test_load_truth_layouts(tmp_path: Path) -> None:
    pages = [{"image": "a.png", "boxes": [[1, 2, 3, 4]]}, {"image": "b.png", "signatures": [{"bbox": [5, 6, 7, 8]}]}]
    layouts = [{"pages": pages}, pages, {"a.png": [[1, 2, 3, 4]], "b.png": [[5, 6, 7, 8]]}]
    for i, layout in enumerate(layouts):
        f = tmp_path / f"t{i}.json"
        f.write_text(json.dumps(layout))
        got = load_truth(f)
        assert [p.image for p in got] == [tmp_path / "a.png", tmp_path / "b.png"]
        assert got[0].boxes == ((1.0, 2.0, 3.0, 4.0),) and got[1].boxes == ((5.0, 6.0, 7.0, 8.0),)
    bad = tmp_path / "bad.json"
    bad.write_text('{"pages": [{"boxes": []}]}')
    with pytest.raises(InputError):
        load_truth(bad)
    with pytest.raises(InputError):
        load_truth(tmp_path / "missing.json")


def test_evaluate_documents(det: SignatureDetector, tmp_path: Path) -> None:
    for name, seed in (("p1.png", 1), ("p2.png", 2)):
        cv2.imwrite(str(tmp_path / name), document_page(400, 300, seed=seed))
    (tmp_path / "truth.json").write_text(
        json.dumps({"pages": [{"image": "p1.png", "boxes": [[10, 10, 60, 30]]}, {"image": "p2.png", "boxes": []}]})
    )
    s = evaluate_documents(det, tmp_path / "truth.json")
    assert s["pages"] == 2 and s["signatures"] == 1 and s["blank_pages"] == 1
    assert 0.0 <= s["recall"] <= 1.0 and s["false_boxes_per_page"] >= 0


def test_evaluate_documents_renders_a_synthetic_truth_file():
    """A synth-documents truth.json (documents, not page images) is rendered through ingest and scored."""
    import json
    from pathlib import Path

    from sigpipe.detector.evaluate import evaluate_documents

    truth = Path(__file__).resolve().parents[2] / "examples" / "truth.json"
    docs = json.loads(truth.read_text())["documents"]

    class Nothing:
        def detect(self, page):
            return []

    res = evaluate_documents(Nothing(), truth)  # type: ignore[arg-type]
    assert res["pages"] == sum(d["pages"] for d in docs)
    assert res["signatures"] == sum(len(d["signatures"]) for d in docs)
    assert res["recall"] == 0.0 and res["detections"] == 0


def test_yolo_split_pages_gives_pixel_boxes(tmp_path: Path) -> None:
    for split in ("val",):
        (tmp_path / "images" / split).mkdir(parents=True)
        (tmp_path / "labels" / split).mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "images/val/a.png"), np.full((100, 200), 255, np.uint8))
    cv2.imwrite(str(tmp_path / "images/val/b.jpg"), np.full((50, 40, 3), 255, np.uint8))
    (tmp_path / "labels/val/a.txt").write_text("0 0.5 0.25 0.2 0.1\n0 0.1 0.9 0.1 0.2\n")
    (tmp_path / "images/val/notes.txt").write_text("not a page")
    pages = yolo_split_pages(tmp_path, "val")
    assert [p.name for p, _ in pages] == ["a.png", "b.jpg"]
    np.testing.assert_allclose(pages[0][1], [[80, 20, 120, 30], [10, 80, 30, 100]])
    assert pages[1][1].shape == (0, 4)  # no label file: a page without signatures
    with pytest.raises(InputError, match="no images"):
        yolo_split_pages(tmp_path, "test")
