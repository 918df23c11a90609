"""Synthetic signature writers, their samples and forgeries, the corpus writer, and writer-disjoint splits."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from sigpipe.cli import cli
from sigpipe.datasets.corpus import Corpus, read_gray, split_writers
from sigpipe.datasets.synth_signatures import (
    FONTS,
    SIMILAR_FONTS,
    WriterStyle,
    forger_style,
    render_signature,
    skeletonize,
    synth_name,
    synth_writer_style,
    write_corpus,
)
from sigpipe.errors import InputError


def _style(seed: int = 0, writer: int = 0) -> WriterStyle:
    return synth_writer_style(np.random.default_rng([seed, writer]))


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("synth") / "corpus", writers=3, per_writer=2, forgeries=2, seed=7)


# -------------------------------------------------------------------------------------------------- writer styles


def test_style_is_deterministic_and_writers_differ() -> None:
    assert _style(0, 0) == _style(0, 0)
    styles = [_style(0, w) for w in range(8)]
    assert len({s.name for s in styles}) >= 6  # names vary between writers
    assert len({s.font for s in styles}) >= 3
    assert len({round(s.slant, 6) for s in styles}) == 8


def test_style_values_are_in_range() -> None:
    for w in range(20):
        s = _style(1, w)
        assert s.font in FONTS
        assert s.name and s.text and s.name.startswith(s.text.rstrip())
        assert 40 <= s.size <= 140
        assert 1.0 <= s.pen <= 4.0
        assert 0 <= s.ink <= 90
        assert 0 <= s.contrast <= 0.5


def test_names_are_plausible() -> None:
    rng = np.random.default_rng(3)
    names = [synth_name(rng) for _ in range(50)]
    assert len(set(names)) >= 40
    for n in names:
        assert 1 <= len(n) <= 30 and n.replace(".", "").replace(" ", "").isalpha(), n


def test_forger_imitates_the_name_with_another_hand() -> None:
    style = _style(2, 5)
    forgers = [forger_style(style, np.random.default_rng(i)) for i in range(20)]
    for f in forgers:
        assert f.name == style.name and f.text == style.text
        assert f.font == style.font or f.font in SIMILAR_FONTS[style.font]
        assert f.shape_seed != style.shape_seed  # own letter-shape idiosyncrasies
        assert f.pen > style.pen  # heavier pen
        assert f.pressure < style.pressure  # more even strokes
        assert len(f.strokes) == len(style.strokes)
    assert sum(f.font == style.font for f in forgers) >= 10  # usually the same font


# ------------------------------------------------------------------------------------------------------- rendering


def test_render_is_deterministic_given_the_generator() -> None:
    style = _style(0, 3)
    a = render_signature(style, np.random.default_rng(11))
    b = render_signature(style, np.random.default_rng(11))
    c = render_signature(style, np.random.default_rng(12))
    np.testing.assert_array_equal(a, b)
    assert a.shape != c.shape or not np.array_equal(a, c)


@pytest.mark.parametrize("forged", [False, True])
def test_render_looks_like_a_scan(forged: bool) -> None:
    for w in range(4):
        img = render_signature(_style(5, w), np.random.default_rng(w), forged=forged)
        assert img.ndim == 2 and img.dtype == np.uint8
        h, wd = img.shape
        assert 200 <= wd <= 1200 and 60 <= h <= 700 and wd > h
        assert np.median(img) >= 190  # light paper dominates
        ink = img < 128
        assert 0.005 < ink.mean() < 0.25  # some dark ink, not a blot
        # the ink is cropped with a margin: border rows/columns are paper
        assert not ink[0].any() and not ink[-1].any() and not ink[:, 0].any() and not ink[:, -1].any()


def test_forgery_differs_from_genuine_under_the_same_generator() -> None:
    style = _style(0, 1)
    g = render_signature(style, np.random.default_rng(4), forged=False)
    f = render_signature(style, np.random.default_rng(4), forged=True)
    assert g.shape != f.shape or not np.array_equal(g, f)


def test_skeleton_is_thin_and_central() -> None:
    mask = np.zeros((30, 60), dtype=bool)
    mask[10:19, 5:55] = True  # a 9-pixel-thick bar
    sk = skeletonize(mask)
    assert sk.sum() > 30  # kept the length
    assert not (sk & ~mask).any()
    cols = sk[:, 10:50]
    assert (cols.sum(axis=0) == 1).all()  # one pixel thick
    assert set(np.nonzero(cols)[0]) <= {13, 14, 15}  # in the middle of the bar
    assert not skeletonize(np.zeros((5, 5), dtype=bool)).any()


# ---------------------------------------------------------------------------------------------------------- corpus


def test_corpus_layout_is_readable(corpus_dir: Path) -> None:
    corpus = Corpus(corpus_dir)
    assert corpus.writers == ["001", "002", "003"]
    for ws in corpus:
        assert [p.name for p in ws.genuine] == ["01.png", "02.png"]
        assert [p.name for p in ws.forged] == ["01.png", "02.png"]
        img = read_gray(ws.genuine[0])
        assert img.dtype == np.uint8 and img.ndim == 2


def test_corpus_is_byte_identical_for_a_seed(corpus_dir: Path, tmp_path: Path) -> None:
    again = write_corpus(tmp_path / "again", writers=3, per_writer=2, forgeries=2, seed=7)
    files = sorted(p.relative_to(corpus_dir) for p in corpus_dir.rglob("*.png"))
    assert files == sorted(p.relative_to(again) for p in again.rglob("*.png"))
    for rel in files:
        assert (corpus_dir / rel).read_bytes() == (again / rel).read_bytes(), rel


def test_other_seed_gives_other_signatures(corpus_dir: Path, tmp_path: Path) -> None:
    other = write_corpus(tmp_path / "other", writers=1, per_writer=1, forgeries=0, seed=8)
    rel = Path("001", "genuine", "01.png")
    assert (other / rel).read_bytes() != (corpus_dir / rel).read_bytes()


def test_samples_do_not_depend_on_how_many_are_written(corpus_dir: Path, tmp_path: Path) -> None:
    fewer = write_corpus(tmp_path / "fewer", writers=2, per_writer=1, forgeries=0, seed=7)
    assert not (fewer / "001" / "forged").exists()
    for w in ("001", "002"):
        rel = Path(w, "genuine", "01.png")
        assert (fewer / rel).read_bytes() == (corpus_dir / rel).read_bytes()


def test_write_corpus_refuses_bad_arguments(corpus_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not an empty folder"):
        write_corpus(corpus_dir, writers=1, per_writer=1, forgeries=0)
    with pytest.raises(InputError, match="writers >= 1"):
        write_corpus(tmp_path / "x", writers=0, per_writer=1, forgeries=0)
    assert not (tmp_path / "x").exists()


def test_cli_synth_signatures(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    args = ["datasets", "synth-signatures", "--writers", "2", "--per-writer", "1", "--forgeries", "1"]
    result = CliRunner().invoke(cli, [*args, "--out", str(out), "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"out": str(out), "writers": 2, "genuine": 2, "forged": 2, "seed": 3}
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == [
        "001/forged/01.png",
        "001/genuine/01.png",
        "002/forged/01.png",
        "002/genuine/01.png",
    ]
    again = CliRunner().invoke(cli, [*args, "--out", str(out)])
    assert again.exit_code == 2 and "not an empty folder" in again.output
    zero = CliRunner().invoke(cli, ["datasets", "synth-signatures", "--writers", "0", "--out", str(tmp_path / "z")])
    assert zero.exit_code == 2


# ------------------------------------------------------------------------------------------------ writer splits


def test_split_writers_is_disjoint_complete_and_seeded() -> None:
    writers = [f"{i:03d}" for i in range(1, 41)]
    a = split_writers(writers, [0.7, 0.15, 0.15], seed=1)
    assert [len(s) for s in a] == [28, 6, 6]
    flat = [w for s in a for w in s]
    assert sorted(flat) == writers and len(set(flat)) == len(flat)  # each writer in exactly one split
    assert split_writers(list(reversed(writers)), [0.7, 0.15, 0.15], seed=1) == a  # input order does not matter
    assert split_writers(writers, [0.7, 0.15, 0.15], seed=2) != a
    with pytest.raises(ValueError):
        split_writers(writers, [0.5, 0.2], seed=1)


def test_split_of_a_generated_corpus(corpus_dir: Path) -> None:
    corpus = Corpus(corpus_dir)
    train, val = split_writers(corpus.writers, [2 / 3, 1 / 3], seed=0)
    assert len(train) == 2 and len(val) == 1 and not set(train) & set(val)
    assert set(train) | set(val) == set(corpus.writers)


def test_style_fields_are_plain_values() -> None:
    """Styles are frozen, hashable, comparable values (they key caches and are compared in tests)."""
    s = _style(0, 0)
    hash(s)
    for f in fields(s):
        assert isinstance(getattr(s, f.name), (str, int, float, tuple)), f.name
