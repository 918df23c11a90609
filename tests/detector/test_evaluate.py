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
