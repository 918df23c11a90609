"""Synthetic documents: layouts, truth boxes, file formats, the YOLO export and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pypdfium2 as pdfium
import pytest
from click.testing import CliRunner
from PIL import Image

from sigpipe.cli import cli
from sigpipe.datasets.corpus import Corpus
from sigpipe.datasets.synth_documents import (
    CHEQUE_SIZES,
    PAGE_SIZES,
    DocumentTruth,
    ScanProfile,
    SignatureTruth,
    SynthOptions,
    SynthTruth,
    generate_documents,
    ink_alpha,
    load_truth,
    render_document,
    scan_page,
    yolo_label_lines,
)
from sigpipe.datasets.synth_documents import _truth_box as _truth_box  # the geometry is worth a direct test
from sigpipe.errors import InputError

DPI = 100  # small pages keep the tests fast; the 200-dpi default is covered by the format test


def _scribble(rng: np.random.Generator, h: int = 70, w: int = 200) -> np.ndarray:
    """A grey-paper scan of a pen stroke, with a scanner speck far from the ink."""
    img = np.clip(rng.normal(232, 4, (h, w)), 0, 255).astype(np.uint8)
    pts = np.stack([np.linspace(12, w - 12, 9), h / 2 + rng.normal(0, h / 6, 9)], 1).astype(np.int32)
    cv2.polylines(img, [pts], False, 40, 3, cv2.LINE_AA)
    img[2, w - 3] = 60  # speck
    return img


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 writers x (3 genuine + 2 forged) drawn strokes."""
    root = tmp_path_factory.mktemp("docs") / "corpus"
    rng = np.random.default_rng(0)
    for w in ("alice", "bob", "carol"):
        for sub, n in (("genuine", 3), ("forged", 2)):
            (root / w / sub).mkdir(parents=True)
            for i in range(n):
                cv2.imwrite(str(root / w / sub / f"{i:02d}.png"), _scribble(rng))
    return root


@pytest.fixture(scope="module")
def batch(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 pages of every kind with a YOLO export; returns the output folder."""
    out = tmp_path_factory.mktemp("batch")
    generate_documents(corpus, 8, out, seed=5, yolo=True, options=SynthOptions(dpi=DPI))
    return out


def _read_pages(path: Path, fmt: str, dpi: int) -> list[np.ndarray]:
    """Pages of a generated file as (H, W) uint8 arrays; PDFs rasterised at ``dpi``."""
    if fmt == "pdf":
        pdf = pdfium.PdfDocument(str(path))
        try:
            return [np.asarray(pdf[i].render(scale=dpi / 72).to_pil().convert("L")) for i in range(len(pdf))]
        finally:
            pdf.close()
    im = Image.open(path)
    pages = []
    for i in range(getattr(im, "n_frames", 1)):
        im.seek(i)
        pages.append(np.asarray(im.convert("L")))
    return pages


# ------------------------------------------------------------------------------------------------- signature ink


def test_ink_alpha_removes_paper_and_specks() -> None:
    img = _scribble(np.random.default_rng(1))
    a = ink_alpha(img)
    assert a.dtype == np.float32 and a.min() >= 0.0 and a.max() <= 1.0
    assert a.max() > 0.9  # the stroke is full ink
    # cropped to the stroke: the speck in the top-right corner and most of the paper are gone
    assert a.shape[0] < img.shape[0] - 10
    assert (a == 0).mean() > 0.5  # grey paper became transparent, not faint ink


def test_ink_alpha_accepts_binary_images_and_rejects_blank_ones() -> None:
    img = np.full((50, 120), 255, np.uint8)
    with pytest.raises(InputError, match="no ink"):
        ink_alpha(img)
    img[20:24, 10:110] = 0
    a = ink_alpha(img)
    assert a.shape == (4 + 4, 100 + 4) and a.max() == pytest.approx(1.0)


@pytest.mark.parametrize("seed", [3, 4])
def test_truth_box_follows_the_scan_skew(seed: int) -> None:
    """The box computed from the ink hull and scan_page's affine matrix is where the scanned page has the ink."""
    page = np.full((400, 300, 3), 255, np.uint8)
    pts = np.array([[60, 120], [140, 100], [220, 135], [150, 150]], np.int32)
    cv2.fillPoly(page, [pts], (0, 0, 0))
    img, mat = scan_page(page, ScanProfile(mode="gray", skew=1.5), np.random.default_rng(seed))
    assert not np.allclose(mat, [[1, 0, 0], [0, 1, 0]])  # the page did move
    ys, xs = np.nonzero(np.asarray(img) < 128)
    box = _truth_box(cv2.convexHull(pts).reshape(-1, 2).astype(np.float64), mat, (300, 400))
    assert box is not None
    assert np.abs(np.array(box) - [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).max() <= 2
    untransformed = (60, 100, 221, 151)
    assert np.abs(np.array(box) - untransformed).max() > 2  # the test would catch a missing transform


@pytest.mark.parametrize("kind", ["cheque", "letter", "contract", "form"])
def test_render_document_places_signatures_as_ink(corpus: Path, kind: str) -> None:
    c = Corpus(corpus)
    opts = SynthOptions(dpi=DPI, clean=True, unsigned=0.0)
    pages, sigs, size = render_document(c, kind, 2, np.random.default_rng(11), opts)
    assert sigs, "a signed document must carry a signature"
    assert len(pages) == (1 if kind == "cheque" else 2)
    assert all(p.size == size for p in pages)
    if kind == "cheque":
        assert any(abs(size[0] - round(w * DPI)) <= 1 and abs(size[1] - round(h * DPI)) <= 1 for w, h in CHEQUE_SIZES)
    else:
        assert size in {(round(w * DPI), round(h * DPI)) for w, h in PAGE_SIZES.values()}
        assert all(s.page == 2 for s in sigs)  # signed on the last page
    for s in sigs:
        x1, y1, x2, y2 = s.bbox
        crop = np.asarray(pages[s.page - 1].convert("L"))[y1:y2, x1:x2]
        # pen ink (dark blue or black) on light paper: the box holds plenty of it, up to its edges
        dark = crop < 150
        assert dark.mean() > 0.02
        assert dark[:, :3].any() and dark[:, -3:].any() and dark[:3].any() and dark[-3:].any()
        width_in = (x2 - x1) / DPI
        assert 0.3 < width_in < 3.3
        assert s.writer in c.writers and s.source.startswith(f"{s.writer}/")
        assert ("/genuine/" in s.source) == s.genuine


def test_unsigned_documents_have_no_signatures(corpus: Path) -> None:
    pages, sigs, _ = render_document(Corpus(corpus), "letter", 1, np.random.default_rng(0), SynthOptions(dpi=DPI),
                                     signed=False)
    assert sigs == [] and len(pages) == 1


# ---------------------------------------------------------------------------------------------------- generation


def test_generation_is_deterministic(corpus: Path, tmp_path: Path) -> None:
    """The same seed gives byte-identical files (PDF dates included) and truth; another seed does not."""
    opts = SynthOptions(dpi=DPI)
    a = load_truth(generate_documents(corpus, 5, tmp_path / "a", seed=10, options=opts))
    b = load_truth(generate_documents(corpus, 5, tmp_path / "b", seed=10, options=opts))
    c = load_truth(generate_documents(corpus, 5, tmp_path / "c", seed=11, options=opts))
    assert a.documents == b.documents
    assert a.documents != c.documents
    assert {d.format for d in a.documents} == {"pdf", "tiff", "jpeg"}
    assert (tmp_path / "a" / "truth.json").read_bytes() == (tmp_path / "b" / "truth.json").read_bytes()
    for doc in a.documents:
        assert (tmp_path / "a" / doc.path).read_bytes() == (tmp_path / "b" / doc.path).read_bytes(), doc.path


def test_truth_manifest_describes_the_files(batch: Path) -> None:
    truth = load_truth(batch / "truth.json")
    assert sum(d.pages for d in truth.documents) == 8
    assert {d.kind for d in truth.documents} <= {"cheque", "letter", "contract", "form"}
    assert any(d.signatures for d in truth.documents)
    for doc in truth.documents:
        assert (batch / doc.path).is_file()
        w, h = doc.page_size
        assert doc.dpi == DPI
        for s in doc.signatures:
            x1, y1, x2, y2 = s.bbox
            assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
            assert 1 <= s.page <= doc.pages
    raw = json.loads((batch / "truth.json").read_text())
    assert raw["documents"][0]["type"] == truth.documents[0].kind
    assert SynthTruth.from_dict(truth.to_dict()) == truth


def test_every_format_reads_back_with_its_pages(corpus: Path, tmp_path: Path) -> None:
    """PDF (via pypdfium2 at the dpi), multi-page TIFF, PNG and JPEG all give pages of the truth's size."""
    seen = set()
    for fmt in ("pdf", "tiff", "png", "jpeg"):
        out = tmp_path / fmt
        opts = SynthOptions(formats=(fmt,), kinds=("letter", "cheque"))  # default 200 dpi
        truth = load_truth(generate_documents(corpus, 3, out, seed=2, kinds=("letter", "cheque"), options=opts))
        for doc in truth.documents:
            assert doc.format == fmt and doc.path.endswith({"pdf": ".pdf", "tiff": ".tif", "png": ".png",
                                                            "jpeg": ".jpg"}[fmt])
            pages = _read_pages(out / doc.path, fmt, doc.dpi)
            assert len(pages) == doc.pages
            for p in pages:
                assert (p.shape[1], p.shape[0]) == doc.page_size
            seen.add((fmt, doc.pages > 1))
    assert ("pdf", True) in seen or ("tiff", True) in seen  # multi-page documents were written
    assert ("png", True) not in seen and ("jpeg", True) not in seen


def test_single_page_formats_force_single_page_documents(corpus: Path, tmp_path: Path) -> None:
    truth = load_truth(generate_documents(corpus, 4, tmp_path, seed=1, kinds=("letter", "contract"),
                                          options=SynthOptions(dpi=DPI, formats=("png",))))
    assert len(truth.documents) == 4 and all(d.pages == 1 for d in truth.documents)


def test_bad_arguments_raise(corpus: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="n_pages"):
        generate_documents(corpus, 0, tmp_path)
    with pytest.raises(ValueError, match="kinds"):
        generate_documents(corpus, 1, tmp_path, kinds=("postcard",))
    with pytest.raises(InputError, match="not found"):
        generate_documents(tmp_path / "missing", 1, tmp_path / "out")
    with pytest.raises(InputError, match="manifest"):
        load_truth(tmp_path / "nope.json")


# ---------------------------------------------------------------------------------------------------------- YOLO


def _labels(path: Path) -> list[list[float]]:
    rows = [ln.split() for ln in path.read_text().splitlines() if ln.strip()]
    return [[float(v) for v in r] for r in rows]


def test_yolo_dataset_matches_truth(batch: Path) -> None:
    truth = load_truth(batch / "truth.json")
    y = batch / "yolo"
    images = sorted((y / "images").glob("*/*.jpg"))
    assert len(images) == sum(d.pages for d in truth.documents)
    assert list((y / "images" / "val").glob("*.jpg")), "validation split must not be empty"
    by_stem = {}
    for img in images:
        label = y / "labels" / img.parent.name / f"{img.stem}.txt"
        assert label.is_file(), f"no label for {img}"
        with Image.open(img) as im:
            assert max(im.size) == 1024 and im.format == "JPEG"
        by_stem[img.stem] = _labels(label)
    n_empty = 0
    for doc in truth.documents:
        w, h = doc.page_size
        for page in range(1, doc.pages + 1):
            rows = by_stem[f"{Path(doc.path).stem}_p{page}"]
            expect = [s for s in doc.signatures if s.page == page]
            assert len(rows) == len(expect)
            n_empty += not rows
            for r, s in zip(rows, expect, strict=True):
                assert r[0] == 0 and all(0.0 <= v <= 1.0 for v in r[1:])
                x1, y1, x2, y2 = s.bbox
                want = [(x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h]
                assert r[1:] == pytest.approx(want, abs=1e-5)
    assert n_empty > 0  # unsigned pages (first pages of letters, blank documents) are hard negatives
    yaml = (y / "data.yaml").read_text()
    assert f"path: {json.dumps(str(y.resolve()))}" in yaml and "0: signature" in yaml


def test_yolo_label_lines_normalise_boxes() -> None:
    doc = DocumentTruth("x.pdf", "pdf", "letter", 2, (200, 100), 200,
                        (SignatureTruth(2, (20, 10, 60, 30), "w", True, "w/genuine/01.png"),))
    assert yolo_label_lines(doc, 1) == []
    assert yolo_label_lines(doc, 2) == ["0 0.200000 0.200000 0.200000 0.200000"]


def test_ultralytics_accepts_the_dataset(batch: Path) -> None:
    from sigpipe._ultralytics import configure

    configure()
    from ultralytics.data.utils import check_det_dataset

    data = check_det_dataset(str(batch / "yolo" / "data.yaml"))
    assert data["nc"] == 1 and data["names"] == {0: "signature"}
    assert Path(data["val"]).is_dir() and Path(data["train"]).is_dir()


# ----------------------------------------------------------------------------------------------------------- CLI


def test_cli_generates_documents(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["datasets", "synth-documents", "--signatures", str(corpus), "--pages", "2",
                                   "--out", str(out), "--yolo", "--seed", "3", "--dpi", str(DPI),
                                   "--kinds", "cheque"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["pages"] == 2 and summary["documents"] == 2 and summary["dpi"] == DPI
    assert (out / "yolo" / "data.yaml").is_file()
    assert all(d.kind == "cheque" for d in load_truth(out / "truth.json").documents)


@pytest.mark.parametrize("make", ["missing", "empty", "no_genuine"])
def test_cli_rejects_bad_corpus(tmp_path: Path, make: str) -> None:
    src = tmp_path / "corpus"
    if make != "missing":
        src.mkdir()
    if make == "no_genuine":
        (src / "w1" / "forged").mkdir(parents=True)
    res = CliRunner().invoke(cli, ["datasets", "synth-documents", "--signatures", str(src), "--pages", "1",
                                   "--out", str(tmp_path / "out")])
    assert res.exit_code == 2
    assert str(src) in res.output and ("not found" in res.output or "no writers" in res.output)
    assert not (tmp_path / "out" / "truth.json").exists()


def test_cli_rejects_unknown_kind(corpus: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["datasets", "synth-documents", "--signatures", str(corpus), "--pages", "1",
                                   "--out", str(tmp_path / "o"), "--kinds", "postcard"])
    assert res.exit_code == 2 and "kinds" in res.output


def test_yolo_export_of_a_lone_document_replaces_stale_pages(corpus: Path, tmp_path: Path) -> None:
    opts = SynthOptions(dpi=DPI)
    generate_documents(corpus, 4, tmp_path, seed=1, yolo=True, kinds=("cheque",), options=opts)
    assert len(list((tmp_path / "yolo" / "images").glob("*/*.jpg"))) == 4
    generate_documents(corpus, 1, tmp_path, seed=1, yolo=True, kinds=("cheque",), options=opts)
    images = list((tmp_path / "yolo" / "images").glob("*/*.jpg"))
    assert [p.parent.name for p in images] == ["train"]  # one document: it trains, and validates
    assert "val: images/train" in (tmp_path / "yolo" / "data.yaml").read_text()
    assert len(list((tmp_path / "yolo" / "labels").glob("*/*.txt"))) == 1


def test_cli_two_signers_and_unsigned_probabilities(corpus: Path, tmp_path: Path) -> None:
    def signatures_per_document(*extra: str) -> list[int]:
        out = tmp_path / "_".join(extra)
        res = CliRunner().invoke(cli, ["datasets", "synth-documents", "--signatures", str(corpus), "--pages", "3",
                                       "--out", str(out), "--seed", "5", "--dpi", str(DPI), "--kinds", "cheque",
                                       *extra])
        assert res.exit_code == 0, res.output
        return [len(d.signatures) for d in load_truth(out / "truth.json").documents]

    assert signatures_per_document("--two-signers", "1", "--unsigned", "0") == [2, 2, 2]  # joint-account cheques
    assert signatures_per_document("--two-signers", "0", "--unsigned", "0") == [1, 1, 1]
    assert signatures_per_document("--unsigned", "1") == [0, 0, 0]
    res = CliRunner().invoke(cli, ["datasets", "synth-documents", "--signatures", str(corpus), "--pages", "1",
                                   "--out", str(tmp_path / "bad"), "--two-signers", "1.5"])
    assert res.exit_code == 2 and "--two-signers" in res.output


def test_security_background_changes_only_the_paper(corpus: Path, tmp_path: Path) -> None:
    """--security draws the background from a generator of its own: the same cheques, signatures and truth, with
    the paper around the signatures darkened by a pattern; 0 leaves every file as it was."""
    def generate(name: str, *extra: str) -> Path:
        out = tmp_path / name
        res = CliRunner().invoke(cli, ["datasets", "synth-documents", "--signatures", str(corpus), "--pages", "4",
                                       "--out", str(out), "--seed", "9", "--dpi", str(DPI), "--kinds", "cheque",
                                       "--formats", "png", "--unsigned", "0", *extra])
        assert res.exit_code == 0, res.output
        return out

    plain, none, strong = generate("plain"), generate("none", "--security", "0"), generate("strong", "--security", "1")
    assert (plain / "truth.json").read_bytes() == (none / "truth.json").read_bytes()
    assert (plain / "truth.json").read_text() == (strong / "truth.json").read_text().replace(str(strong), str(plain))
    truth = load_truth(plain / "truth.json")
    assert sum(len(d.signatures) for d in truth.documents) >= 4
    for doc in truth.documents:
        a = cv2.imread(str(plain / doc.path), cv2.IMREAD_GRAYSCALE)
        assert np.array_equal(a, cv2.imread(str(none / doc.path), cv2.IMREAD_GRAYSCALE))
        b = cv2.imread(str(strong / doc.path), cv2.IMREAD_GRAYSCALE)
        assert a.shape == b.shape
        paper = np.ones(a.shape, bool)  # outside the signatures' boxes
        for s in doc.signatures:
            x1, y1, x2, y2 = s.bbox
            paper[y1:y2, x1:x2] = False
        # the pattern darkens a good part of the paper, and lightens none of it on the whole
        assert (b[paper].astype(int) < a[paper].astype(int) - 10).mean() > 0.1
        assert np.median(b[paper].astype(int) - a[paper].astype(int)) < 0


def test_bitonal_scans_every_document_in_1_bit_from_a_generator_of_its_own(corpus: Path, tmp_path: Path) -> None:
    """--bitonal P scans a share P of documents bitonal (the pattern of a security cheque thresholded to black dots,
    as in an image cash letter): 0 leaves every file as it was, 1 makes every page 1-bit, the truth unchanged."""
    def generate(name: str, *extra: str) -> Path:
        out = tmp_path / name
        res = CliRunner().invoke(cli, ["datasets", "synth-documents", "--signatures", str(corpus), "--pages", "4",
                                       "--out", str(out), "--seed", "5", "--dpi", str(DPI), "--kinds",
                                       "cheque,letter", "--formats", "png", "--security", "1", *extra])
        assert res.exit_code == 0, res.output
        return out

    plain, none, bitonal = (generate(n, *x) for n, x in (("plain", ()), ("none", ("--bitonal", "0")),
                                                           ("bitonal", ("--bitonal", "1"))))
    assert (plain / "truth.json").read_bytes() == (none / "truth.json").read_bytes()
    assert (plain / "truth.json").read_text() == (bitonal / "truth.json").read_text().replace(str(bitonal),
                                                                                            str(plain))
    grey = 0
    for doc in load_truth(plain / "truth.json").documents:
        assert (plain / doc.path).read_bytes() == (none / doc.path).read_bytes()
        a = cv2.imread(str(plain / doc.path), cv2.IMREAD_GRAYSCALE)
        b = cv2.imread(str(bitonal / doc.path), cv2.IMREAD_GRAYSCALE)
        assert set(np.unique(b).tolist()) <= {0, 255}
        grey += len(np.unique(a)) > 2
    assert grey >= 2  # without the option most pages are scanned in greys


def test_script_type_sets_printed_names_in_script_only(corpus: Path, tmp_path: Path) -> None:
    """--script-type sets letterheads and bank names in a script typeface (a hard negative that looks like
    handwriting) from a generator of its own: 0 leaves every file as it was; on cheques, whose layout does not move,
    the signatures, their boxes and the paper under them stay the same, and only printed names change."""
    def generate(name: str, kinds: str, *extra: str) -> Path:
        out = tmp_path / name
        res = CliRunner().invoke(cli, ["datasets", "synth-documents", "--signatures", str(corpus), "--pages", "3",
                                       "--out", str(out), "--seed", "4", "--dpi", str(DPI), "--kinds", kinds,
                                       "--formats", "png", "--unsigned", "0", *extra])
        assert res.exit_code == 0, res.output
        return out

    plain, none, script = (generate(n, "cheque", *x) for n, x in
                           (("plain", ()), ("none", ("--script-type", "0")), ("script", ("--script-type", "1"))))
    assert (plain / "truth.json").read_bytes() == (none / "truth.json").read_bytes()
    assert (plain / "truth.json").read_text() == (script / "truth.json").read_text().replace(str(script), str(plain))
    for doc in load_truth(plain / "truth.json").documents:
        a = cv2.imread(str(plain / doc.path), cv2.IMREAD_GRAYSCALE).astype(int)
        assert np.array_equal(a, cv2.imread(str(none / doc.path), cv2.IMREAD_GRAYSCALE))
        b = cv2.imread(str(script / doc.path), cv2.IMREAD_GRAYSCALE).astype(int)
        changed = np.abs(a - b) > 40
        assert changed.sum() > 200  # the bank's name at least
        for s in doc.signatures:
            x1, y1, x2, y2 = s.bbox
            assert not changed[y1:y2, x1:x2].any()
    letters, script_letters = generate("letters", "letter"), generate("script_letters", "letter", "--script-type", "1")
    for doc in load_truth(letters / "truth.json").documents:
        a = cv2.imread(str(letters / doc.path), cv2.IMREAD_GRAYSCALE).astype(int)
        b = cv2.imread(str(script_letters / doc.path), cv2.IMREAD_GRAYSCALE).astype(int)
        top = slice(0, a.shape[0] // 6)  # the letterhead
        assert (np.abs(a[top] - b[top]) > 40).sum() > 500
