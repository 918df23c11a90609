"""``sigpipe verifier train|eval`` and ``sigpipe verify``: thin wrappers over the verifier library."""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from sigpipe.errors import SigpipeError

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., object])

weights_option = click.option(
    "--weights", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
    help="Verifier manifest (<weights>.json). Default: the bundled model.",
)
threads_option = click.option("--threads", type=int, default=None, help="Torch CPU threads (default: all cores).")


def corpora_option(help_text: str) -> Callable[[F], F]:
    """``--data`` (repeatable): per-writer corpora."""
    return click.option("--data", "data", multiple=True, required=True,
                        type=click.Path(exists=True, file_okay=False, path_type=Path), help=help_text)


@click.group()
def verifier() -> None:
    """Train and evaluate the signature verifier."""


@verifier.command()
@corpora_option("Per-writer corpus (ROOT/<writer>/genuine|forged/*.png); repeat for several.")
@click.option("--extra", "extra", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Corpus used for training only, all its writers (e.g. synthetic writers); repeatable.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/verifier"),
              show_default=True)
@click.option("--epochs", type=int, default=40, show_default=True)
@click.option("--steps", "steps_per_epoch", type=int, default=100, show_default=True, help="Batches per epoch.")
@click.option("--batch", type=int, default=96, show_default=True)
@click.option("--architecture", type=click.Choice(["resnet-s", "signet-s"]), default="resnet-s", show_default=True)
@click.option("--lr", type=float, default=2e-3, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@threads_option
@click.option("--device", default=None, help="cpu or cuda (default: cuda when available).")
@click.option("--init", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Start from these weights (e.g. the shipped verifier.pt) instead of random.")
@click.option("--resume", is_flag=True, help="Resume the interrupted run in --out from its last checkpoint.")
@click.option("--tag", default="v1", show_default=True)
@click.option("--input-size", default="80x160", show_default=True,
              help="Network input HEIGHTxWIDTH (the preprocessing canvas; recorded in the manifest).")
@click.option("--margin", type=float, default=0.25, show_default=True, help="Triplet loss margin.")
@click.option("--aux-loss", type=click.Choice(["none", "arcface"]), default="none", show_default=True,
              help="Add an ArcFace loss over (writer, genuine|forged) classes to the triplet loss.")
@click.option("--aux-weight", type=float, default=1.0, show_default=True, help="Weight of --aux-loss.")
@click.option("--doc-views", type=int, default=0, show_default=True,
              help="Also train on N crops per image of the image placed in synthetic scanned documents "
                   "(what `sigpipe run` verifies); validation then scores those crops too.")
@click.option("--ema", type=float, default=0.0, show_default=True,
              help="Validate and keep an exponential moving average of the weights with this decay per step "
                   "(e.g. 0.998; 0 = off).")
@click.option("--mirror-writers", type=click.Choice(["1", "2", "4"]), default="1", show_default=True,
              callback=lambda _c, _p, v: int(v),
              help="Count mirror images of each training writer as new writers: 2 = left-right, 4 = also upside-down.")
@click.option("--writer-warp", type=float, default=0.0, show_default=True,
              help="Warp each writer's images in a batch by one random affine + elastic field of its own "
                   "(genuine and forged alike; 1 = rotation 6 deg, shear 0.3, one axis squeezed x1.28; 0 = off).")
def train(data: tuple[Path, ...], extra: tuple[Path, ...], input_size: str, **kw: object) -> None:
    """Train the triplet verifier; writes OUT/verifier.pt and its manifest."""
    from sigpipe.verifier.preprocess import PreprocessConfig
    from sigpipe.verifier.train import VerifierTrainConfig, train_verifier

    try:
        h, w = (int(v) for v in input_size.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"expected HEIGHTxWIDTH, got {input_size!r}", param_hint="--input-size") from None
    if min(h, w) < 32:
        raise click.BadParameter("height and width must be at least 32 pixels", param_hint="--input-size")
    try:
        cfg = VerifierTrainConfig(data=data, extra=extra, preprocess=PreprocessConfig(height=h, width=w),
                                  **kw)  # type: ignore[arg-type]
        path = train_verifier(cfg)
    except SigpipeError as e:
        raise click.ClickException(str(e)) from e
    click.echo(str(path))


@verifier.command()
@click.argument("members", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@corpora_option("The corpora the members were trained on (their validation writers calibrate the ensemble).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/verifier-ensemble"),
              show_default=True)
@click.option("--tag", required=True, help="Tag of the joined model, e.g. v3.")
@threads_option
def ensemble(members: tuple[Path, ...], data: tuple[Path, ...], out: Path, tag: str, threads: int | None) -> None:
    """Join trained verifiers (their manifests, MEMBERS) into one model; writes OUT/verifier.pt and its manifest."""
    from sigpipe.verifier.ensemble import build_ensemble

    try:
        path = build_ensemble(members, data, out, tag, threads=threads)
    except SigpipeError as e:
        raise click.ClickException(str(e)) from e
    click.echo(str(path))


@verifier.command("train-pair")
@click.option("--like", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="The Siamese verifier's manifest: the pair network trains on its training writers, with its "
                   "preprocessing.")
@corpora_option("The corpora that verifier was trained on.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/verifier-pair"),
              show_default=True)
@click.option("--epochs", type=int, default=14, show_default=True)
@click.option("--steps", type=int, default=300, show_default=True, help="Batches per epoch.")
@click.option("--batch", type=int, default=64, show_default=True, help="Pairs per batch.")
@click.option("--lr", type=float, default=2e-3, show_default=True)
@click.option("--warp", type=float, default=0.5, show_default=True, help="Writer-warp strength (0 = off).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--init", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Continue from these pair-network weights.")
@click.option("--tag", default="v1", show_default=True)
@threads_option
@click.option("--device", default=None, help="cpu or cuda (default: cuda when available).")
def train_pair(data: tuple[Path, ...], **kw: object) -> None:
    """Train the pair network (the verifier's second stage); writes OUT/pair.pt and its manifest. Attach it with
    `verifier calibrate --pair`."""
    from sigpipe.verifier.pairtrain import PairTrainConfig, train_pairnet

    try:
        path = train_pairnet(PairTrainConfig(data=data, **kw))  # type: ignore[arg-type]
    except SigpipeError as e:
        raise click.ClickException(str(e)) from e
    click.echo(str(path))


@verifier.command()
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@corpora_option("The corpora the model was trained on (its validation writers calibrate it).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/verifier-calibrated"),
              show_default=True)
@click.option("--tag", required=True, help="Tag of the recalibrated model (not the old one's), e.g. v4.")
@click.option("--pair", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Manifest of a pair network (`verifier train-pair`) to attach as the second stage.")
@click.option("--orders", type=click.Choice(["1", "2"]), default=None,
              callback=lambda _c, _p, v: None if v is None else int(v),
              help="Second stage: score each (reference, query) pair in one order or in both (twice the cost). "
                   "Default: as the kept second stage does; 2 for a new one.")
@threads_option
def calibrate(manifest: Path, data: tuple[Path, ...], out: Path, tag: str, pair: Path | None, orders: int | None,
              threads: int | None) -> None:
    """Choose a trained verifier's decision rule again (aggregation, spread weight, second-stage weight,
    thresholds, score) on its validation writers; writes OUT/verifier.pt (the same weights) and a manifest with the
    new rule. Run `verifier export` on the result for the ONNX backend."""
    from sigpipe.verifier.recalibrate import recalibrate

    try:
        path = recalibrate(manifest, data, out, tag, threads=threads, pair=pair, orders=orders)
    except SigpipeError as e:
        raise click.ClickException(str(e)) from e
    click.echo(str(path))


@verifier.command("eval")
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@weights_option
@click.option("--references", "k", type=int, default=5, show_default=True, help="K references per writer.")
@click.option("--writers", default=None, help="Comma-separated writer ids to evaluate (default: all).")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write a ROC PNG.")
def eval_cmd(data: Path, weights: Path | None, k: int, writers: str | None, as_json: bool, plot: Path | None) -> None:
    """Evaluate on a per-writer corpus (first K genuine by name = references)."""
    from sigpipe.verifier.evaluate import evaluate_corpus, plot_roc
    from sigpipe.verifier.verifier import Verifier

    if k < 1:
        raise click.UsageError("--references must be at least 1")
    try:
        v = Verifier.from_manifest(weights)
        res, q = evaluate_corpus(v, data, k, writers.split(",") if writers else None)
    except (SigpipeError, ValueError) as e:
        raise click.ClickException(str(e)) from e
    if plot:
        plot_roc(q, plot)
    if as_json:
        click.echo(json.dumps(res))
    else:
        for key, val in res.items():
            click.echo(f"{key:12s} {val:.4f}" if isinstance(val, float) else f"{key:12s} {val}")


@click.command()
@click.argument("questioned", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("refs", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@weights_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def verify(questioned: Path, refs: tuple[Path, ...], weights: Path | None, as_json: bool) -> None:
    """Verify one QUESTIONED signature image against REF specimen images of the claimed person.

    Exit code 0 whatever the verdict; the verdict is in the output.
    """
    from sigpipe.datasets.corpus import read_gray
    from sigpipe.verifier.verifier import Verifier

    try:
        v = Verifier.from_manifest(weights)
        x = v.prepare([read_gray(p) for p in (questioned, *refs)])
        embs = v.embed_prepared(x)
    except SigpipeError as e:
        raise click.ClickException(str(e)) from e
    d = v.decide(embs[0], embs[1:], x[0], x[1:, 0])
    out = {**d.to_dict(), "questioned": str(questioned), "references": [str(r) for r in refs],
           "verdict": "genuine" if d.genuine else "forged", "model": v.ident}
    if as_json:
        click.echo(json.dumps(out))
    else:
        click.echo(f"{out['verdict']}  distance {d.distance:.3f} (threshold {d.threshold:.3f})  score {d.score:.2f}",
                   file=sys.stdout)


@verifier.command()
@click.option("--weights", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Manifest of the verifier to export (<weights>.json); it is updated in place.")
@click.option("--keep-default", is_flag=True, help="Record the export without making it the default backend.")
def export(weights: Path, keep_default: bool) -> None:
    """Export a verifier to ONNX (run by ONNX Runtime, the default CPU backend); prints the file's path."""
    from sigpipe.verifier.export import export_onnx

    try:
        click.echo(str(export_onnx(weights, make_default=not keep_default)))
    except SigpipeError as e:
        raise click.ClickException(str(e)) from e


@verifier.command("operating-point")
@click.argument("labelled", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--far", "target_far", type=float, required=True,
              help="Target false-accept rate of forgeries, e.g. 0.01.")
@click.option("--weights", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Manifest of the verifier the runs used. Default: the bundled model.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write the verifier with the shifted thresholds here (OUT/verifier.pt.json and its files).")
@click.option("--tag", default=None, help="With --out: the new model's tag (default: <tag>-far<FAR>).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def operating_point(labelled: tuple[Path, ...], target_far: float, weights: Path | None, out: Path | None,
                    tag: str | None, as_json: bool) -> None:
    """Choose the threshold offset for a target false-accept rate from LABELLED: a run's OUT/summary.csv with a
    column 'truth' (genuine or forged; empty = unknown) added; several such files (runs with the same verifier) are
    pooled. Prints the offset and the FAR/FRR it gives on the labelled signatures; with --out, writes a verifier
    whose thresholds include it (pass it to `sigpipe run --verifier-weights`)."""
    import numpy as np

    from sigpipe.verifier.operating import check_same_verifier, choose_offset, read_labelled, shifted_manifest
    from sigpipe.weights import Manifest, bundled_manifest

    try:
        m = Manifest.load(weights) if weights else bundled_manifest("verifier")
        margins = []
        for path in labelled:
            check_same_verifier(path, m)
            margins.append(read_labelled(path))
        op = choose_offset(np.concatenate([g for g, _ in margins]), np.concatenate([f for _, f in margins]),
                           target_far)
        written = shifted_manifest(m, op.offset, tag or f"{m.tag}-far{target_far:g}", out) if out else None
    except SigpipeError as e:
        raise click.ClickException(str(e)) from e
    if not op.resolvable:
        log.warning("%d labelled forgeries cannot measure a FAR of %g (need at least %d): the offset only keeps "
                    "every labelled forgery out", op.forged, target_far, math.ceil(1 / target_far))
    if as_json:
        click.echo(json.dumps({**op.to_dict(), "manifest": str(written) if written else None}))
        return
    click.echo(f"offset {op.offset:+.4f}: FAR {op.far:.1%} (now {op.far_before:.1%}), FRR {op.frr:.1%} (now "
               f"{op.frr_before:.1%}) on {op.genuine} genuine and {op.forged} forged labelled signatures")
    if written:
        click.echo(f"wrote {written}; use it with: sigpipe run SCANS --refs REFS --verifier-weights {written}")
