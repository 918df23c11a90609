"""The library entry points re-exported by ``sigpipe`` (DESIGN.md: ``__init__.py`` public API)."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

import sigpipe

EXAMPLE = Path(__file__).resolve().parents[1] / "examples"


def test_import_sigpipe_loads_no_runtime():
    code = ("import sys, sigpipe; heavy = [m for m in ('numpy', 'cv2', 'torch', 'onnxruntime', 'openvino') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_public_name_resolves():
    for name in sigpipe.__all__:
        assert getattr(sigpipe, name) is not None, name
    assert sigpipe.run_batch.__module__ == "sigpipe.pipeline.runner"
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        sigpipe.nothing  # noqa: B018


def test_load_predictor_judges_the_example_documents_as_run_does(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SIGPIPE_CACHE", str(tmp_path / "cache"))
    predictor = sigpipe.load_predictor(EXAMPLE / "refs", threads=2)
    assert isinstance(predictor, sigpipe.SignaturePredictor)
    assert predictor.gallery.people == ["i-wright", "j-kowalski", "laura-wogrons", "peter-harris"]
    claims = {r["document"]: r["identity"] for r in csv.DictReader((EXAMPLE / "claims.csv").open())}
    truth = {d["path"]: d for d in json.loads((EXAMPLE / "truth.json").read_text())["documents"]}
    for doc in ("0008_cheque.tif", "0001_cheque.png", "0005_letter.png"):
        report = predictor(EXAMPLE / "scans" / doc, claimed=claims.get(doc))
        assert isinstance(report, sigpipe.DocumentReport) and report.ok
        expected = [s["genuine"] for s in truth[doc]["signatures"]]
        assert [s.verdict == "genuine" for s in report.signatures] == expected, doc
    assert report.verdict == "unsigned"  # 0005 holds no signature
    # enrolling only some people: the others' documents have nobody to be compared with
    some = sigpipe.load_predictor(EXAMPLE / "refs", threads=2, people=["peter-harris"])
    assert some.gallery.people == ["peter-harris"] and len(some.gallery.folders) == 4
    report = some(EXAMPLE / "scans" / "0001_cheque.png", claimed=claims["0001_cheque.png"])
    assert claims["0001_cheque.png"] != "peter-harris" and report.signatures[0].verdict == "no_reference"


def test_load_predictor_options_claims_and_reports_as_a_caller_gives_them(tmp_path: Path,
                                                                          caplog: pytest.LogCaptureFixture):
    import jsonschema

    from sigpipe.pipeline.report import load_schema

    with pytest.raises(ValueError, match="threads must be at least 1"):
        sigpipe.load_predictor(EXAMPLE / "refs", threads=0)
    with caplog.at_level("WARNING"):
        one = sigpipe.load_predictor(str(EXAMPLE / "refs"), threads=2, cache=str(tmp_path / "cache"),
                                     people="peter-harris", ingest=sigpipe.IngestConfig(dpi=100))
        sigpipe.load_predictor(EXAMPLE / "refs", threads=2, cache=tmp_path / "cache", people=["nobody"])
    assert one.gallery.people == ["peter-harris"]  # a str is one name, not its letters
    assert any(f.name.endswith(".npz") for f in (tmp_path / "cache").iterdir())  # the str cache folder was used
    assert "'nobody' has no usable references" in caplog.text
    schema = load_schema()
    cheque = EXAMPLE / "scans" / "0008_cheque.tif"
    for given, kept in ((("peter-harris",), "peter-harris"), (["peter-harris", "peter-harris"], "peter-harris"),
                        (("peter-harris", "x", "peter-harris"), ["peter-harris", "x"])):
        report = one(cheque, claimed=given)  # type: ignore[arg-type]
        jsonschema.validate(report.to_dict(), schema)
        assert report.to_dict()["claimed_identity"] == kept
    for bad in ((), "", ("peter-harris", "")):
        with pytest.raises(ValueError, match="claimed must be"):
            one(cheque, claimed=bad)  # type: ignore[arg-type]
    pdf = next(p for p in sorted((EXAMPLE / "scans").iterdir()) if p.suffix == ".pdf")
    assert one(pdf).settings.dpi == 100  # load_predictor's ingest is the documents' too
    assert one(pdf, ingest=sigpipe.IngestConfig(dpi=150)).settings.dpi == 150
    empty = one("")  # a directory: an error report, valid like any other
    assert empty.error is not None and empty.document.path == "."
    jsonschema.validate(empty.to_dict(), schema)


def test_load_predictor_warns_of_a_bad_reference_once(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    """Enrolment logs what it skips; load_predictor logged each of them a second time."""
    import shutil

    refs = tmp_path / "refs"
    shutil.copytree(EXAMPLE / "refs" / "peter-harris", refs / "peter-harris")
    (refs / "peter-harris" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with caplog.at_level("WARNING"):
        p = sigpipe.load_predictor(refs, threads=1, cache=tmp_path / "cache")
    assert p.gallery.people == ["peter-harris"] and len(p.gallery.errors) == 1
    assert sum("broken.png" in r.getMessage() for r in caplog.records) == 1


def test_a_predictor_hints_at_the_folder_a_claimed_name_likely_means(tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture):
    """`sigpipe run` warns once of a claim without references and names the folder it likely means; a service's
    predictor gave no_reference silently (a claimed 'J-Kowalski' for the folder 'j-kowalski')."""
    p = sigpipe.load_predictor(EXAMPLE / "refs", threads=1, cache=tmp_path / "cache")
    cheque = EXAMPLE / "scans" / "0002_cheque.pdf"
    with caplog.at_level("WARNING"):
        plain = p(cheque, claimed="j-kowalski")
        odd = p(cheque, claimed="J-Kowalski", relative="upload-7.pdf")
    assert [s.verdict for s in odd.signatures] == ["no_reference"] and plain.signatures[0].verdict != "no_reference"
    said = [r.getMessage() for r in caplog.records if "no usable references" in r.getMessage()]
    assert said == ["upload-7.pdf: claimed 'J-Kowalski' has no usable references: its signatures get no_reference; "
                    "REFS has 'j-kowalski': the same person? Claims must name the folder exactly"]
    caplog.clear()  # a person left out of `people=`: warned of, without offering their own folder as a likeness
    some = sigpipe.load_predictor(EXAMPLE / "refs", threads=1, cache=tmp_path / "cache", people=["peter-harris"])
    with caplog.at_level("WARNING"):
        some(cheque, claimed="j-kowalski")
    said = [r.getMessage() for r in caplog.records if "no usable references" in r.getMessage()]
    assert said == ["0002_cheque.pdf: claimed 'j-kowalski' has no usable references: its signatures get no_reference"]


def test_a_predictor_shared_by_threads_gives_each_document_its_own_report(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch):
    """A service's thread pool calling one predictor: OpenVINO's compiled model reuses one infer request, so two
    threads at once swapped inputs and outputs, and pages got each other's boxes and verdicts, all 'ok'."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from sigpipe._onnx import OpenVinoSession
    from sigpipe.weights import WEIGHTS_DIR

    monkeypatch.setenv("SIGPIPE_CACHE", str(tmp_path / "cache"))
    p = sigpipe.load_predictor(EXAMPLE / "refs", threads=1)
    scans = sorted((EXAMPLE / "scans").iterdir())

    def brief(path: Path) -> object:
        r = p(path)
        return r.verdict, [(s.verdict, s.bbox, s.distance) for s in r.signatures]

    alone = {s: brief(s) for s in scans}
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda s: (s, brief(s)), scans * 2))
    assert [s.name for s, got in together if got != alone[s]] == []
    # the sessions of the bf16 path (verifier, pair network, orientation) take turns the same way
    session = OpenVinoSession(WEIGHTS_DIR / "orientation.onnx", 1, "f32")
    name = "page"
    pages = [np.random.default_rng(i).random((1, 1, 512, 512), dtype=np.float32) for i in range(6)]
    want = [session.run(None, {name: x})[0] for x in pages]
    with ThreadPoolExecutor(3) as pool:
        got = list(pool.map(lambda x: session.run(None, {name: x})[0], pages * 3))
    for i, g in enumerate(got):
        np.testing.assert_array_equal(g, want[i % len(pages)])
