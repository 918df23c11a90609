"""``sigpipe datasets ...``: corpus import and synthetic data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from sigpipe._cli import BadInput, out_folder
from sigpipe.datasets.importers import FORMATS, import_corpus
from sigpipe.errors import InputError


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
    out_folder(dst, "DST")
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
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Same seed, byte-identical files.")
def synth_signatures(writers: int, per_writer: int, forgeries: int, out: Path, seed: int) -> None:
    """Write a synthetic per-writer corpus: OUT/<writer>/genuine/NN.png and OUT/<writer>/forged/NN.png.

    Prints a JSON summary.
    """
    from sigpipe.datasets.synth_signatures import write_corpus

    out_folder(out, "--out")
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


# ---- synth-documents (sigpipe.datasets.synth_documents) -------------------------------------------------------


@datasets.command("synth-documents")
@click.option("--signatures", "corpus", type=click.Path(path_type=Path), required=True,
              help="Per-writer corpus the signatures come from (ROOT/<writer>/genuine/*.png, forged/*.png).")
@click.option("--pages", type=click.IntRange(min=1), required=True, help="Total number of pages to generate.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output folder.")
@click.option("--yolo", is_flag=True, help="Also write an Ultralytics dataset under OUT/yolo (data.yaml).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Same seed, same documents and truth.")
@click.option("--dpi", type=click.IntRange(50, 600), default=200, show_default=True,
              help="Rendering resolution; truth boxes are in pixels at this dpi.")
@click.option("--kinds", default=",".join(("cheque", "letter", "contract", "form")), show_default=True,
              help="Comma-separated document types to draw from.")
@click.option("--formats", default="pdf,tiff,png,jpeg", show_default=True,
              help="Comma-separated output formats to draw from (multi-page documents use pdf/tiff).")
@click.option("--two-signers", type=click.FloatRange(0, 1), default=None,
              help="Probability of a second signer on cheques, letters and contracts (on cheques the two "
                   "signatures are stacked; forms have their own: a second, witness box 40% of the time, signed in "
                   "80% of those); default: the generator's (SynthOptions).")
@click.option("--unsigned", type=click.FloatRange(0, 1), default=None,
              help="Probability that a document carries no signature; default: the generator's (SynthOptions).")
@click.option("--security", type=click.FloatRange(0, 1), default=None,
              help="Probability that a cheque has a strong security background (dense guilloche, pantograph, "
                   "microprint, tinted emblem); default: the generator's (SynthOptions: none).")
@click.option("--script-type", type=click.FloatRange(0, 1), default=None,
              help="Probability that a document's printed letterhead, bank name or company payer is set in a "
                   "script typeface (a hard negative that looks like handwriting); default: none.")
@click.option("--bitonal", type=click.FloatRange(0, 1), default=None,
              help="Probability that a document is scanned bitonal (1-bit), whatever its scanner profile drew; "
                   "default: the profile's own draw.")
def synth_documents(corpus: Path, pages: int, out: Path, yolo: bool, seed: int, dpi: int, kinds: str,
                    formats: str, two_signers: float | None, unsigned: float | None, security: float | None,
                    script_type: float | None, bitonal: float | None) -> None:
    """Render synthetic signed documents (cheques, letters, contracts, forms) as scanned PDF/TIFF/PNG/JPEG.

    Writes OUT/NNNN_<type>.<ext>, OUT/truth.json (every signature's page, box in pixels at --dpi, writer,
    genuine/forged, source image) and, with --yolo, OUT/yolo/{images,labels}/{train,val} + data.yaml.
    Prints a JSON summary.
    """
    from sigpipe.datasets.synth_documents import SynthOptions, generate_documents, load_truth

    kind_list = tuple(k.strip() for k in kinds.split(",") if k.strip())
    fmt_list = tuple(f.strip() for f in formats.split(",") if f.strip())
    out_folder(out, "--out")
    try:
        # None: the generator's default
        given: dict[str, Any] = {"two_signers": two_signers, "unsigned": unsigned, "security": security,
                                 "script_type": script_type, "bitonal": bitonal}
        options = SynthOptions(dpi=dpi, kinds=kind_list, formats=fmt_list,
                               **{k: v for k, v in given.items() if v is not None})
        truth_path = generate_documents(corpus, pages, out, seed, yolo=yolo, kinds=kind_list, options=options)
    except InputError as e:
        raise BadInput(str(e)) from e
    except ValueError as e:
        raise click.UsageError(str(e)) from e
    truth = load_truth(truth_path)
    summary = {
        "out": str(out),
        "truth": str(truth_path),
        "documents": len(truth.documents),
        "pages": sum(d.pages for d in truth.documents),
        "signatures": sum(len(d.signatures) for d in truth.documents),
        "seed": seed,
        "dpi": dpi,
        "yolo": str(out / "yolo" / "data.yaml") if yolo else None,
    }
    click.echo(json.dumps(summary))


# ---- end synth-documents ----------------------------------------------------------------------------------------
