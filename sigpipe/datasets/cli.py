"""``sigpipe datasets ...``: corpus import and synthetic data."""

from __future__ import annotations

import json
from pathlib import Path

import click

from sigpipe.datasets.importers import FORMATS, import_corpus
from sigpipe.errors import InputError


class BadInput(click.ClickException):
    """A missing or malformed input: message on stderr, exit code 2 (as usage errors)."""

    exit_code = 2


@click.group()
def datasets() -> None:
    """Signature corpora and synthetic data tools."""


@datasets.command("import")
@click.argument("fmt", metavar="FORMAT", type=click.Choice(FORMATS))
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("dst", type=click.Path(path_type=Path))
def import_cmd(fmt: str, src: Path, dst: Path) -> None:
    """Convert a public corpus at SRC into the per-writer layout at DST.

    FORMAT is cedar (full_org/original_W_I.png, full_forg/forgeries_W_I.png), bhsig (W/B-S-W-G-NN.tif,
    W/B-S-W-F-NN.tif; Hindi H-S-...) or sign_data (W/, W_forg/, optionally under train/ and test/; duplicate images
    are kept once). DST must not exist or be empty. Prints a JSON summary.
    """
    try:
        summary = import_corpus(fmt, src, dst)
    except InputError as e:
        raise BadInput(str(e)) from e
    click.echo(json.dumps(summary.to_dict()))


@datasets.command("synth-signatures")
@click.option("--writers", type=click.IntRange(min=1), required=True, help="Number of synthetic writers.")
@click.option("--per-writer", type=click.IntRange(min=1), default=24, show_default=True, help="Genuine per writer.")
@click.option("--forgeries", type=click.IntRange(min=0), default=24, show_default=True, help="Forgeries per writer.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Corpus folder to create (empty).")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, byte-identical files.")
def synth_signatures(writers: int, per_writer: int, forgeries: int, out: Path, seed: int) -> None:
    """Write a synthetic per-writer corpus: OUT/<writer>/genuine/NN.png and OUT/<writer>/forged/NN.png.

    Prints a JSON summary.
    """
    from sigpipe.datasets.synth_signatures import write_corpus

    try:
        write_corpus(out, writers, per_writer, forgeries, seed=seed)
    except InputError as e:
        raise BadInput(str(e)) from e
    summary = {
        "out": str(out),
        "writers": writers,
        "genuine": writers * per_writer,
        "forged": writers * forgeries,
        "seed": seed,
    }
    click.echo(json.dumps(summary))
