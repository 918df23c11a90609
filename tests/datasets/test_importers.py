"""Importers of public corpora (CEDAR, BHSig260, Kaggle sign_data) into the per-writer layout."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from sigpipe.cli import cli
from sigpipe.datasets.corpus import Corpus
from sigpipe.datasets.importers import FORMATS, import_corpus
from sigpipe.errors import InputError


def _img(value: int, shape: tuple[int, int] = (12, 20)) -> np.ndarray:
    """A small grayscale image whose pixels are unique to ``value``."""
    rng = np.random.default_rng(value)
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


def _write(path: Path, img: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img)
    return path


def _read(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None, path
    return img


def _tree(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


# --------------------------------------------------------------------------------------------------------- CEDAR


@pytest.fixture
def cedar(tmp_path: Path) -> Path:
    src = tmp_path / "CEDAR"
    for w in (1, 2):
        for i in (1, 2, 10):  # 10 must sort after 2 (numeric order, not text order)
            _write(src / "full_org" / f"original_{w}_{i}.png", _img(100 * w + i))
            _write(src / "full_forg" / f"forgeries_{w}_{i}.png", _img(1000 + 100 * w + i))
    return src


def test_cedar_layout_numbering_and_content(cedar: Path, tmp_path: Path) -> None:
    dst = tmp_path / "out"
    summary = import_corpus("cedar", cedar, dst)
    assert (summary.writers, summary.genuine, summary.forged, summary.duplicates) == (2, 6, 6, 0)
    expected = [f"{w}/{k}/{n:02d}.png" for w in ("001", "002") for k in ("forged", "genuine") for n in (1, 2, 3)]
    assert _tree(dst) == expected
    # files are numbered in the order of the original sample index: 1, 2, 10
    for n, i in (("01", 1), ("02", 2), ("03", 10)):
        np.testing.assert_array_equal(_read(dst / "002" / "genuine" / f"{n}.png"), _img(200 + i))
        np.testing.assert_array_equal(_read(dst / "002" / "forged" / f"{n}.png"), _img(1200 + i))
    corpus = Corpus(dst)
    assert corpus.writers == ["001", "002"]
    assert len(corpus["001"].genuine) == 3 and len(corpus["001"].forged) == 3


def test_colour_source_becomes_8bit_grayscale(tmp_path: Path) -> None:
    src = tmp_path / "src"
    colour = np.zeros((10, 16, 3), dtype=np.uint8)
    colour[..., 2] = 200  # red in BGR
    _write(src / "full_org" / "original_1_1.png", colour)
    _write(src / "full_forg" / "forgeries_1_1.png", _img(1))
    import_corpus("cedar", src, tmp_path / "out")
    out = _read(tmp_path / "out" / "001" / "genuine" / "01.png")
    assert out.ndim == 2 and out.dtype == np.uint8 and out.shape == (10, 16)
    assert 40 < int(out.mean()) < 80  # luminance of pure red 200 is ~60, not 200 or 0


# -------------------------------------------------------------------------------------------------------- BHSig


def test_bhsig_zero_padded_writer_folders_are_normalised(tmp_path: Path) -> None:
    src = tmp_path / "Bengali"
    _write(src / "001" / "B-S-1-G-02.tif", _img(12))
    _write(src / "001" / "B-S-1-G-01.tif", _img(11))
    _write(src / "001" / "B-S-1-F-01.tif", _img(91))
    _write(src / "2" / "B-S-2-G-01.tif", _img(21))
    _write(src / "2" / "B-S-2-F-01.tif", _img(92))
    _write(src / "2" / "B-S-2-F-02.tif", _img(93))
    (src / "2" / "notes.txt").write_text("not an image")  # ignored
    dst = tmp_path / "out"
    summary = import_corpus("bhsig", src, dst)
    assert (summary.writers, summary.genuine, summary.forged) == (2, 3, 3)
    assert sorted(p.name for p in dst.iterdir()) == ["001", "002"]
    np.testing.assert_array_equal(_read(dst / "001" / "genuine" / "01.png"), _img(11))
    np.testing.assert_array_equal(_read(dst / "001" / "genuine" / "02.png"), _img(12))
    np.testing.assert_array_equal(_read(dst / "002" / "forged" / "02.png"), _img(93))


def test_bhsig_hindi_variant(tmp_path: Path) -> None:
    src = tmp_path / "Hindi"
    _write(src / "7" / "H-S-7-G-01.tif", _img(1))
    _write(src / "7" / "H-S-7-F-01.tif", _img(2))
    summary = import_corpus("bhsig", src, tmp_path / "out")
    assert (summary.writers, summary.genuine, summary.forged) == (1, 1, 1)
    assert (tmp_path / "out" / "007" / "forged" / "01.png").is_file()


def test_bhsig_mixed_scripts_are_refused(tmp_path: Path) -> None:
    src = tmp_path / "BHSig260"
    _write(src / "Bengali" / "1" / "B-S-1-G-01.tif", _img(1))
    _write(src / "Hindi" / "1" / "H-S-1-G-01.tif", _img(2))
    with pytest.raises(InputError, match="Bengali and Hindi"):
        import_corpus("bhsig", src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------------- sign_data


def test_sign_data_dedupes_test_copies_of_train_images(tmp_path: Path) -> None:
    src = tmp_path / "sign_data"
    _write(src / "train" / "001" / "001_01.PNG", _img(1))
    _write(src / "train" / "001" / "001_02.png", _img(2))
    _write(src / "train" / "001_forg" / "0119001_01.PNG", _img(3))
    _write(src / "train" / "002" / "002_01.png", _img(4))
    # test/ repeats train images (same bytes, and the same pixels in another format) and adds new ones
    _write(src / "test" / "001" / "001_01.PNG", _img(1))
    _write(src / "test" / "001" / "001_02.tif", _img(2))
    _write(src / "test" / "001" / "001_03.png", _img(5))
    _write(src / "test" / "001_forg" / "0119001_01.PNG", _img(3))
    dst = tmp_path / "out"
    summary = import_corpus("sign_data", src, dst)
    assert (summary.writers, summary.genuine, summary.forged, summary.duplicates) == (2, 4, 1, 3)
    genuine = [_read(p) for p in sorted((dst / "001" / "genuine").glob("*.png"))]
    assert len(genuine) == 3
    for got, want in zip(genuine, (_img(1), _img(2), _img(5)), strict=True):  # train first, then test's new image
        np.testing.assert_array_equal(got, want)
    hashes = {_read(p).tobytes() for p in dst.rglob("*.png")}
    assert len(hashes) == 5  # every image once


def test_sign_data_without_train_test_folders(tmp_path: Path) -> None:
    src = tmp_path / "flat"
    _write(src / "049" / "049_01.png", _img(1))
    _write(src / "049_forg" / "0201049_01.png", _img(2))
    summary = import_corpus("sign_data", src, tmp_path / "out")
    assert (summary.writers, summary.genuine, summary.forged) == (1, 1, 1)
    assert (tmp_path / "out" / "049" / "genuine" / "01.png").is_file()


def test_sign_data_refuses_writer_folders_it_would_merge_or_drop(tmp_path: Path) -> None:
    """A bank's export in this layout: 0123 and 123 were merged into one writer (two people's signatures under one
    name) and A4567 dropped, both unsaid."""
    src = tmp_path / "bank"
    _write(src / "0123" / "a.png", _img(1))
    _write(src / "123" / "b.png", _img(2))
    _write(src / "0123_forg" / "c.png", _img(3))
    with pytest.raises(InputError, match=r"folders 0123, 123 are one writer number \(123\) spelled 2 ways"):
        import_corpus("sign_data", src, tmp_path / "out")
    (src / "123" / "b.png").rename(src / "0123" / "b.png")
    (src / "123").rmdir()
    _write(src / "A4567" / "d.png", _img(4))
    with pytest.raises(InputError, match="A4567 holds images but is not named W or W_forg with W a number"):
        import_corpus("sign_data", src, tmp_path / "out")
    (src / "A4567" / "d.png").unlink()  # a folder without images (notes, a spreadsheet's folder) is no writer
    summary = import_corpus("sign_data", src, tmp_path / "out")
    assert (summary.writers, summary.genuine, summary.forged) == (1, 2, 1)


# ------------------------------------------------------------------------------------------------------- errors


def test_missing_source(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        import_corpus("cedar", tmp_path / "nope", tmp_path / "out")


def test_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown corpus format 'gpds'"):
        import_corpus("gpds", tmp_path, tmp_path / "out")
    assert set(FORMATS) == {"cedar", "bhsig", "sign_data"}


def test_empty_result_explains_the_expected_layout(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _write(src / "full_org" / "scan_1.png", _img(1))  # not a CEDAR name
    with pytest.raises(InputError, match="no cedar images found .*original_W_I"):
        import_corpus("cedar", src, tmp_path / "out")


def test_undecodable_image_is_named_and_nothing_is_left_behind(cedar: Path, tmp_path: Path) -> None:
    bad = cedar / "full_org" / "original_2_2.png"
    bad.write_bytes(b"not a png at all")
    dst = tmp_path / "out"
    with pytest.raises(InputError, match="original_2_2.png"):
        import_corpus("cedar", cedar, dst)
    assert not dst.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # partial folder removed


def test_non_empty_destination_is_refused(cedar: Path, tmp_path: Path) -> None:
    dst = tmp_path / "out"
    (dst / "keep").mkdir(parents=True)
    with pytest.raises(InputError, match="not an empty folder"):
        import_corpus("cedar", cedar, dst)
    assert _tree(dst) == []  # untouched: only the empty sub-folder


def test_empty_destination_folder_is_accepted(cedar: Path, tmp_path: Path) -> None:
    dst = tmp_path / "out"
    dst.mkdir()
    assert import_corpus("cedar", cedar, dst).genuine == 6


# ---------------------------------------------------------------------------------------------------------- CLI


def test_cli_import_prints_summary(cedar: Path, tmp_path: Path) -> None:
    dst = tmp_path / "out"
    result = CliRunner().invoke(cli, ["datasets", "import", "cedar", str(cedar), str(dst)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["writers"] == 2 and summary["genuine"] == 6 and summary["forged"] == 6
    assert len(Corpus(dst)) == 2


def test_cli_bad_inputs_exit_2_with_clear_message(cedar: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(cli, ["datasets", "import", "cedar", str(tmp_path / "nope"), str(tmp_path / "o1")])
    assert missing.exit_code == 2
    assert "source folder not found" in missing.output and "nope" in missing.output
    assert "Traceback" not in missing.output

    unknown = runner.invoke(cli, ["datasets", "import", "gpds", str(cedar), str(tmp_path / "o2")])
    assert unknown.exit_code == 2
    assert "gpds" in unknown.output

    (cedar / "full_forg" / "forgeries_1_2.png").write_bytes(b"\x89PNG broken")
    broken = runner.invoke(cli, ["datasets", "import", "cedar", str(cedar), str(tmp_path / "o3")])
    assert broken.exit_code == 2
    assert "forgeries_1_2.png" in broken.output
    assert not (tmp_path / "o3").exists()


@pytest.mark.parametrize("layout", ["per-writer", "bhsig", "cedar"])
def test_sign_data_refuses_other_layouts_rather_than_call_forgeries_genuine(tmp_path: Path, layout: str) -> None:
    src = tmp_path / layout
    if layout == "per-writer":  # sigpipe's own layout: its forged/ folder would have been read as genuine
        _write(src / "001" / "genuine" / "01.png", _img(1))
        _write(src / "001" / "forged" / "01.png", _img(2))
    elif layout == "bhsig":  # genuine and forged side by side, told apart by their names
        _write(src / "001" / "B-S-1-G-01.png", _img(1))
        _write(src / "001" / "B-S-1-F-01.png", _img(2))
    else:
        _write(src / "001" / "original_1_1.png", _img(1))
        _write(src / "001" / "forgeries_1_1.png", _img(2))
    with pytest.raises(InputError, match="not in the sign_data layout"):
        import_corpus("sign_data", src, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
