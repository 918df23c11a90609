"""``sigpipe run`` through click: exit codes and outputs, with tiny fixture models passed as manifests."""

import json
import shutil
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner
from pipeline_doubles import page_with, save_image, save_pdf, scribble

from sigpipe.cli import cli
from sigpipe.pipeline.ingest import poppler_available
from sigpipe.pipeline.report import load_schema


@pytest.fixture(scope="session")
def detector_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained YOLOv8n (seconds to build, offline) with a manifest; it finds nothing meaningful."""
    from sigpipe.detector.testing import make_untrained_detector

    path = tmp_path_factory.mktemp("detector") / "tiny-detector.pt"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SIGPIPE_THREADS", "1")
        make_untrained_detector(path, seed=0, manifest={
            "name": "tiny-detector", "tag": "test", "architecture": "yolov8n", "imgsz": 320, "conf": 0.5,
            "iou": 0.7, "max_det": 5,
        })
    return path.with_name(path.name + ".json")


@pytest.fixture
def folders(tmp_path: Path) -> dict[str, Path]:
    scans, refs = tmp_path / "scans", tmp_path / "refs"
    save_image(scans / "a.png", page_with([(scribble(1), 100, 100)], (400, 300)))
    save_pdf(scans / "b" / "c.pdf", [page_with([], (400, 300))] * 2)
    save_image(refs / "alice" / "1.png", scribble(1))
    return {"scans": scans, "refs": refs, "out": tmp_path / "out"}


def invoke(f: dict[str, Path], *extra: str, models: tuple[Path, Path] | None = None):  # type: ignore[no-untyped-def]
    args = ["run", str(f["scans"]), "--refs", str(f["refs"]), "--out", str(f["out"]), *extra]
    if models:
        args += ["--detector-weights", str(models[0]), "--verifier-weights", str(models[1])]
    return CliRunner().invoke(cli, args)


def test_run_exit_0_then_1_when_a_document_fails(folders: dict[str, Path], detector_manifest: Path,
                                                 verifier_manifest: Path):
    models = (detector_manifest, verifier_manifest)
    r = invoke(folders, "--workers", "1", "--dpi", "100", "--threads", "0", models=models)  # 0: all cores
    assert r.exit_code == 0, r.output
    assert "2 documents, 3 pages" in r.stdout and "summary.json" in r.stdout
    assert "2/2 documents" in r.stderr  # line-based progress (stderr is not a terminal here)
    out = folders["out"]
    for name in ("a.png.json", "b/c.pdf.json"):
        report = json.loads((out / name).read_text())
        jsonschema.validate(report, load_schema())
        assert report["models"]["detector"].startswith("tiny-detector.test ")
        assert report["signatures"] == [] or report["signatures"][0]["dpi"] in (100, 200)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["documents"] == 2 and summary["failed"] == 0 and (out / "summary.csv").is_file()

    (folders["scans"] / "bad.pdf").write_text("not a pdf")
    r = invoke(folders, "--dpi", "100", models=models)
    assert r.exit_code == 1, r.output
    assert "(2 already done)" in r.stdout and "1 document(s) failed" in r.stderr
    assert json.loads((out / "bad.pdf.json").read_text())["error"]["kind"] == "corrupt_pdf"
    # a document over --max-pages fails alone: the 2-page PDF at a limit of 1 (--force: the same settings)
    r = invoke(folders, "--dpi", "100", "--max-pages", "1", "--force", "--workers", "Auto", models=models)
    assert r.exit_code == 1, r.output
    assert json.loads((out / "b" / "c.pdf.json").read_text())["error"]["kind"] == "too_many_pages"
    assert json.loads((out / "a.png.json").read_text())["status"] == "ok"
    assert json.loads((out / "summary.json").read_text())["workers"] == 1  # auto: 2 documents, in this process


def test_usage_errors_exit_2(folders: dict[str, Path], tmp_path: Path, verifier_manifest: Path,
                             detector_manifest: Path):
    models = (detector_manifest, verifier_manifest)
    empty = tmp_path / "empty"
    empty.mkdir()
    r = CliRunner().invoke(cli, ["run", str(empty), "--refs", str(folders["refs"]), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "no documents found" in r.stderr

    claims = tmp_path / "claims.csv"
    claims.write_text("file,person\na.png,alice\n")
    r = invoke(folders, "--claims", str(claims), models=models)
    assert r.exit_code == 2 and "document,identity" in r.stderr

    r = invoke(folders, "--workers", "0", models=models)
    assert r.exit_code == 2 and "or 'auto'" in r.stderr
    r = invoke(folders, "--workers", "two", models=models)
    assert r.exit_code == 2 and "'two' is not a number of workers" in r.stderr
    r = invoke(folders, "--threads", "-1", models=models)
    assert r.exit_code == 2 and "--threads" in r.stderr
    r = invoke(folders, "--dpi", "5000", models=models)
    assert r.exit_code == 2 and "--dpi" in r.stderr
    r = invoke(folders, "--timeout", "0", models=models)
    assert r.exit_code == 2 and "--timeout" in r.stderr
    r = invoke(folders, "--max-pages", "0", models=models)
    assert r.exit_code == 2 and "--max-pages" in r.stderr
    r = invoke(folders, "--accept-score", "1", models=models)
    assert r.exit_code == 2 and "--accept-score" in r.stderr
    r = invoke(folders, "--pages", "first", models=models)
    assert r.exit_code == 2 and "cannot read page selection 'first'" in r.stderr
    r = invoke(folders, "--pages", "0", models=models)  # a newcomer counting from 0
    assert r.exit_code == 2 and "(pages count from 1)" in r.stderr
    r = invoke(folders, "--pages", "1,,2", models=models)
    assert r.exit_code == 2 and "an empty item (two commas?)" in r.stderr
    r = CliRunner().invoke(cli, ["run", str(folders["scans"])])
    assert r.exit_code == 2 and "--refs" in r.stderr
    if not poppler_available():
        r = invoke(folders, "--pdf-backend", "pdf2image", models=models)
        assert r.exit_code == 2 and "poppler-utils" in r.stderr
    assert not folders["out"].exists()


def test_missing_bundled_models_is_one_clear_line(folders: dict[str, Path], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch):
    import sigpipe.weights

    monkeypatch.setattr(sigpipe.weights, "WEIGHTS_DIR", tmp_path / "no-weights")
    r = invoke(folders)
    assert r.exit_code == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in r.output
    assert "verifier" in lines[0] and "detector" in lines[0] and "--verifier-weights" in lines[0]
    assert not folders["out"].exists()


def test_detector_tta_needs_its_threshold_and_marks_the_reports(folders: dict[str, Path], tmp_path: Path,
                                                                detector_manifest: Path, verifier_manifest: Path):
    models = (detector_manifest, verifier_manifest)
    r = invoke(folders, "--detector-tta", models=models)
    assert r.exit_code == 2 and "tta_conf" in r.stderr and not folders["out"].exists()

    tta_dir = tmp_path / "tta-detector"
    tta_dir.mkdir()
    weights = detector_manifest.with_name(detector_manifest.name.removesuffix(".json"))
    shutil.copy(weights, tta_dir / weights.name)
    data = json.loads(detector_manifest.read_text())
    (tta_dir / detector_manifest.name).write_text(json.dumps({**data, "tta_conf": 0.5}))
    tta_models = (tta_dir / detector_manifest.name, verifier_manifest)
    r = invoke(folders, "--detector-tta", "--dpi", "100", models=tta_models)
    assert r.exit_code == 0, r.output
    report = json.loads((folders["out"] / "a.png.json").read_text())
    jsonschema.validate(report, load_schema())
    assert report["models"]["detector"].startswith("tiny-detector.test ") and report["models"]["detector"].endswith(
        " +flip")
    r = invoke(folders, "--dpi", "100", models=tta_models)  # without TTA the reports are stale: redone
    assert r.exit_code == 0 and "already done" not in r.stdout
    assert not json.loads((folders["out"] / "a.png.json").read_text())["models"]["detector"].endswith("+flip")


def test_precision_bf16_needs_exported_models(folders: dict[str, Path], detector_manifest: Path,
                                              verifier_manifest: Path):
    r = invoke(folders, "--precision", "bf16", models=(detector_manifest, verifier_manifest))  # PyTorch models
    assert r.exit_code == 2 and "bf16 with the" in r.stderr and "Traceback" not in r.output
    assert invoke(folders, "--precision", "f16").exit_code == 2  # not a choice
    r = invoke(folders, "--precision", "auto", models=(detector_manifest, verifier_manifest))
    assert r.exit_code == 0, r.output  # auto never asks PyTorch models for bf16
    report = json.loads((folders["out"] / "a.png.json").read_text())
    assert not any(report["models"][role].endswith(" bf16") for role in ("detector", "verifier"))
