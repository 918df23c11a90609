"""``sigpipe verifier train|eval`` and ``sigpipe verify``: thin wrappers over the verifier library."""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

from sigpipe._cli import BadInput, fail, out_folder
from sigpipe._names import json_text
from sigpipe._training import TRAINING_PRECISIONS
from sigpipe._warnings import ignoring
from sigpipe.errors import InputError, ModelError, SigpipeError

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

    from sigpipe.pipeline.flow import Detector
    from sigpipe.verifier.preprocess import PreprocessConfig
    from sigpipe.verifier.verifier import Verifier
    from sigpipe.weights import Manifest

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., object])

weights_option = click.option(
    "--weights", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
    help="Verifier manifest (<weights>.json). Default: the bundled model.",
)
precision_option = click.option(
    "--precision", type=click.Choice(TRAINING_PRECISIONS), default="f32", show_default=True,
    help="bf16: forward passes in bfloat16 (autocast), for CPUs that compute it natively (about twice as fast "
         "on an Intel Xeon with AMX).")
threads_option = click.option("--threads", type=click.IntRange(min=0), default=None,
                              help="Torch CPU threads (default or 0: all cores).")
POSITIVE_INT = click.IntRange(min=1)
POSITIVE_FLOAT = click.FloatRange(min=0, min_open=True)
NON_NEGATIVE_FLOAT = click.FloatRange(min=0)


def _manifest_arg(path: Path, what: str) -> Manifest:
    """Read a model manifest named on the command line, naming the option in the error: a file that is not one is
    refused here, a model whose weights do not match it later, when it loads (both exit 2).

    Raises:
        BadInput: the file is not a manifest (:meth:`Manifest.load`).
    """
    from sigpipe.weights import Manifest

    try:
        return Manifest.load(path)
    except ModelError as e:
        raise BadInput(f"{what}: {e}") from e


def _trained_manifest(path: Path, what: str) -> Manifest:
    """:func:`_manifest_arg` of a verifier trained by ``sigpipe verifier train`` (or joined by ``verifier ensemble``):
    its manifest records the writer splits it was trained on.

    Raises:
        BadInput: not a manifest, or one without ``training.splits`` and ``preprocess``.
    """
    m = _manifest_arg(path, what)
    training = m.get("training")
    if not isinstance(training, dict) or not isinstance(training.get("splits"), dict) or "preprocess" not in m.data:
        raise BadInput(f"{what}: {path} records no training writer splits: pass the manifest of a verifier trained "
                       "by 'sigpipe verifier train'")
    return m


def _check_init(path: Path | None, net: Callable[[], nn.Module], what: str) -> None:
    """Refuse ``--init`` weights that are not a PyTorch state dict of ``net()``'s shape, before any data is read.

    Raises:
        BadInput: the file does not load with ``torch.load(weights_only=True)``, or does not fit the network.
    """
    if path is None:
        return
    import torch

    hint = " (pass the .pt file, not its manifest)" if path.suffix == ".json" else ""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch.load raises assorted errors (pickle, zip, EOF) for non-weights
        raise BadInput(f"--init {path} is not a PyTorch weights file{hint}: {type(e).__name__}") from e
    if not isinstance(state, dict):
        raise BadInput(f"--init {path} holds a {type(state).__name__}, not a network's weights (state dict){hint}")
    from sigpipe.verifier.train import ensemble_init_message

    if (message := ensemble_init_message(path, state)) is not None:  # before its 60 missing keys
        raise BadInput(message)
    try:
        net().load_state_dict(state)
    except (RuntimeError, KeyError, TypeError) as e:
        first = str(e).strip().splitlines()
        detail = (first[1] if len(first) > 1 else first[0]).strip() if first else type(e).__name__
        raise BadInput(f"--init {path} does not fit {what}: {detail}") from e


def _device(value: str | None) -> str | None:
    """``--device``: a device string torch knows, and CUDA only where it is available."""
    if value is None:
        return None
    import torch

    try:
        kind = torch.device(value).type
    except (RuntimeError, ValueError) as e:
        raise click.BadParameter(f"unknown device {value!r}; expected cpu, cuda or cuda:N", param_hint="--device") \
            from e
    if kind == "cuda" and not torch.cuda.is_available():
        raise click.BadParameter(f"{value!r}: CUDA is not available on this machine", param_hint="--device")
    return value


def corpora_option(help_text: str, packs: bool = False) -> Callable[[F], F]:
    """``--data`` (repeatable): per-writer corpora, or with ``packs`` also packed corpora (``verifier pack``)."""
    return click.option("--data", "data", multiple=True, required=True,
                        type=click.Path(exists=True, file_okay=packs, path_type=Path), help=help_text)


def shipped_preprocess(input_size: str) -> PreprocessConfig:
    """The shipped verifier's preprocessing at ``--input-size`` HEIGHTxWIDTH: what a model trained here reads."""
    from sigpipe.verifier.preprocess import PreprocessConfig
    from sigpipe.weights import bundled_manifest

    try:
        h, w = (int(v) for v in input_size.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"expected HEIGHTxWIDTH, got {input_size!r}", param_hint="--input-size") from None
    if min(h, w) < 32:
        raise click.BadParameter("height and width must be at least 32 pixels", param_hint="--input-size")
    # the shipped verifier's preprocessing (ruled lines tilted by a skewed scan, red dropout, uneven light evened out)
    # at the input size asked: a bank's retrained model read colour crops by luminance and kept shadows as ink
    try:
        shipped = PreprocessConfig.from_dict(bundled_manifest("verifier")["preprocess"])
    except ModelError:  # an installation without the bundled verifier: the plain steps
        shipped = PreprocessConfig()
    return replace(shipped, height=h, width=w)


@click.group()
def verifier() -> None:
    """Train and evaluate the signature verifier."""


@verifier.command()
@corpora_option("Per-writer corpus (ROOT/<writer>/genuine|forged/*.png), or a corpus packed by 'verifier pack' "
                "(CORPUS.npz); repeat for several.", packs=True)
@click.option("--extra", "extra", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Corpus used for training only, all its writers (e.g. synthetic writers); repeatable.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/verifier"),
              show_default=True)
@click.option("--epochs", type=POSITIVE_INT, default=40, show_default=True)
@click.option("--steps", "steps_per_epoch", type=POSITIVE_INT, default=100, show_default=True,
              help="Batches per epoch.")
@click.option("--batch", type=POSITIVE_INT, default=96, show_default=True,
              help="Images per batch: a multiple of 8 (images per writer).")
@click.option("--architecture", type=click.Choice(["resnet-s", "signet-s"]), default="resnet-s", show_default=True)
@click.option("--width", type=click.IntRange(min=4), default=32, show_default=True,
              help="Channels of the network's first stage; the later stages scale with it (cost grows as its square).")
@click.option("--lr", type=POSITIVE_FLOAT, default=2e-3, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@threads_option
@precision_option
@click.option("--device", default=None, callback=lambda _c, _p, v: _device(v),
              help="cpu or cuda (default: cuda when available).")
@click.option("--init", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Start from these weights (one network's state dict, e.g. a member of the shipped verifier.pt "
                   "ensemble: given the ensemble, the error says how to take one out) instead of random.")
@click.option("--resume", is_flag=True, help="Resume the interrupted run in --out from its last checkpoint.")
@click.option("--max-minutes", type=POSITIVE_FLOAT, default=None,
              help="Stop after the epoch that ends past this many minutes of training, and ship the best epoch so "
                   "far as usual (a lent GPU's or a session's time; --resume continues the run).")
@click.option("--tag", default="v1", show_default=True)
@click.option("--input-size", default="80x160", show_default=True,
              help="Network input HEIGHTxWIDTH (the preprocessing canvas; recorded in the manifest).")
@click.option("--margin", type=POSITIVE_FLOAT, default=0.25, show_default=True, help="Triplet loss margin.")
@click.option("--aux-loss", type=click.Choice(["none", "arcface"]), default="none", show_default=True,
              help="Add an ArcFace loss over (writer, genuine|forged) classes to the triplet loss.")
@click.option("--aux-weight", type=NON_NEGATIVE_FLOAT, default=1.0, show_default=True, help="Weight of --aux-loss.")
@click.option("--doc-views", type=click.IntRange(min=0), default=0, show_default=True,
              help="Also train on N crops per image of the image placed in synthetic scanned documents "
                   "(what `sigpipe run` verifies); validation then scores those crops too.")
@click.option("--ema", type=click.FloatRange(0, 1, max_open=True), default=0.0, show_default=True,
              help="Validate and keep an exponential moving average of the weights with this decay per step "
                   "(e.g. 0.998; 0 = off).")
@click.option("--mirror-writers", type=click.Choice(["1", "2", "4"]), default="1", show_default=True,
              callback=lambda _c, _p, v: int(v),
              help="Count mirror images of each training writer as new writers: 2 = left-right, 4 = also upside-down.")
@click.option("--writer-warp", type=NON_NEGATIVE_FLOAT, default=0.0, show_default=True,
              help="Warp each writer's images in a batch by one random affine + elastic field of its own "
                   "(genuine and forged alike; 1 = rotation 6 deg, shear 0.3, one axis squeezed x1.28; 0 = off).")
def train(data: tuple[Path, ...], extra: tuple[Path, ...], input_size: str, **kw: object) -> None:
    """Train the triplet verifier; writes OUT/verifier.pt and its manifest.

    Signatures are preprocessed as the shipped verifier's manifest says (at --input-size), and the manifest written
    records it."""
    from sigpipe.verifier.model import build_model
    from sigpipe.verifier.train import VerifierTrainConfig, train_verifier

    cfg = VerifierTrainConfig(data=data, extra=extra, preprocess=shipped_preprocess(input_size),
                              **kw)  # type: ignore[arg-type]
    out_folder(cfg.out)
    _check_init(cfg.init, lambda: build_model(cfg.architecture, cfg.dim, cfg.width),
                f"a {cfg.architecture} network of width {cfg.width} and {cfg.dim} dimensions")
    try:
        path = train_verifier(cfg)
    except (SigpipeError, ValueError) as e:
        raise fail(e) from e
    click.echo(str(path))


@verifier.command()
@corpora_option("Per-writer corpus to pack; repeat for several.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for the packs: OUT/<corpus>.npz, one per corpus.")
@click.option("--doc-views", type=click.IntRange(min=0), default=0, show_default=True,
              help="Document views of each training image, as the training run's --doc-views (0: none).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="The training run's --seed, which its document views are drawn with.")
@click.option("--input-size", default="80x160", show_default=True, help="As the training run's --input-size.")
@threads_option
def pack(data: tuple[Path, ...], out: Path, doc_views: int, seed: int, input_size: str, threads: int | None) -> None:
    """Pack corpora as the preprocessed arrays and document views that `verifier train` reads, one file per corpus,
    for training where the corpora are not (a GPU machine reached only by the working tree):
    `verifier train --data OUT/<corpus>.npz ...` then trains as on the folders. Images are read through the
    training cache, and views missing from it rendered (minutes per thousand images)."""
    import os

    from sigpipe.verifier.pack import pack_corpus
    from sigpipe.verifier.train import VerifierTrainConfig

    cfg = VerifierTrainConfig(data=data)
    pre = shipped_preprocess(input_size)
    for folder in data:
        try:
            path = pack_corpus(folder, out, pre, cfg.split, cfg.split_seed, doc_views, seed,
                               workers=threads or os.cpu_count() or 1)
        except (SigpipeError, OSError) as e:
            raise fail(e) from e
        click.echo(f"{path}\t{path.stat().st_size / 2**20:.1f} MB")


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

    for path in members:
        _trained_manifest(path, "MEMBERS")
    out_folder(out)
    try:
        path = build_ensemble(members, data, out, tag, threads=threads)
    except SigpipeError as e:
        raise fail(e) from e
    click.echo(str(path))


@verifier.command("train-pair")
@click.option("--like", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="The Siamese verifier's manifest: the pair network trains on its training writers, with its "
                   "preprocessing.")
@corpora_option("The corpora that verifier was trained on (folders, or packed by 'verifier pack').", packs=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/verifier-pair"),
              show_default=True)
@click.option("--epochs", type=POSITIVE_INT, default=14, show_default=True)
@click.option("--steps", type=POSITIVE_INT, default=300, show_default=True, help="Batches per epoch.")
@click.option("--batch", type=POSITIVE_INT, default=64, show_default=True, help="Pairs per batch.")
@click.option("--lr", type=POSITIVE_FLOAT, default=2e-3, show_default=True)
@click.option("--warp", type=NON_NEGATIVE_FLOAT, default=0.5, show_default=True, help="Writer-warp strength (0 = off).")
@click.option("--view-prob", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Share of queries that are document views (crops of the signature in a synthetic scanned page, "
                   "what `sigpipe run` verifies) rather than the clean image.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--init", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Continue from these pair-network weights.")
@click.option("--tag", default="v1", show_default=True)
@threads_option
@precision_option
@click.option("--device", default=None, callback=lambda _c, _p, v: _device(v),
              help="cpu or cuda (default: cuda when available).")
def train_pair(data: tuple[Path, ...], **kw: object) -> None:
    """Train the pair network (the verifier's second stage); writes OUT/pair.pt and its manifest. Attach it with
    `verifier calibrate --pair`."""
    from sigpipe.verifier.model import PairNet
    from sigpipe.verifier.pairtrain import PairTrainConfig, splits_config, train_pairnet

    cfg = PairTrainConfig(data=data, **kw)  # type: ignore[arg-type]
    out_folder(cfg.out)
    _trained_manifest(cfg.like, "--like")
    try:  # the manifest's writer splits, and --data giving them: checked on folder listings only
        splits_config(cfg)
    except SigpipeError as e:
        raise BadInput(str(e)) from e
    _check_init(cfg.init, lambda: PairNet(cfg.width), f"a pair network of width {cfg.width}")
    try:
        path = train_pairnet(cfg)
    except (SigpipeError, ValueError) as e:
        raise fail(e) from e
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
    from sigpipe.datasets.corpus import Corpus
    from sigpipe.verifier.pairnet import ARCHITECTURE
    from sigpipe.verifier.recalibrate import recalibrate

    m = _trained_manifest(manifest, "MANIFEST")
    if tag == m.tag:
        raise BadInput(f"the recalibrated model needs a tag other than {m.tag!r}: its decisions differ")
    splits = m["training"]["splits"]
    try:
        names = {Corpus(p).name for p in data}
    except InputError as e:
        raise BadInput(str(e)) from e
    missing = sorted(c for c, parts in splits.items() if isinstance(parts, dict) and parts.get("val")
                     and c not in names)
    if missing:
        raise BadInput(f"--data lacks the corpora {missing}, whose validation writers calibrate the model")
    if pair is not None:
        pm = _manifest_arg(pair, "--pair")
        if pm.architecture != ARCHITECTURE:
            raise BadInput(f"--pair {pair} is a {pm.architecture!r} model, not a pair network ({ARCHITECTURE})")
        if (pm.get("training") or {}).get("splits") != splits:
            raise BadInput(f"--pair: {pm.ident} was trained on other writer splits than {m.ident}: its training "
                           "writers could be the validation writers that calibrate, or the test writers")
    out_folder(out)
    try:
        path = recalibrate(manifest, data, out, tag, threads=threads, pair=pair, orders=orders)
    except (SigpipeError, ValueError) as e:
        raise fail(e) from e
    click.echo(str(path))


@verifier.command("eval")
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@weights_option
@click.option("--references", "k", type=click.IntRange(min=1), default=5, show_default=True,
              help="K references per writer.")
@click.option("--writers", default=None, help="Comma-separated writer ids to evaluate (default: all).")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write a ROC PNG.")
def eval_cmd(data: Path, weights: Path | None, k: int, writers: str | None, as_json: bool, plot: Path | None) -> None:
    """Evaluate on a per-writer corpus (first K genuine by name = references)."""
    from sigpipe.datasets.corpus import Corpus
    from sigpipe.verifier.evaluate import evaluate_corpus, plot_roc
    from sigpipe.verifier.verifier import Verifier

    try:
        chosen = [w.strip() for w in writers.split(",") if w.strip()] if writers else None
        if chosen == []:
            raise BadInput(f"--writers {writers!r} names no writer (leave it out for every writer)")
        unknown = sorted(set(chosen or ()) - set(Corpus(data).writers))
        if unknown:
            raise InputError(f"no writer {', '.join(unknown)} in {data} (writers are its sub-folders)")
        if plot:
            try:
                plot.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:  # a regular file on the path, no permission
                raise InputError(f"cannot create the folder of --plot {plot}: {e.strerror or e}") from e
        v = Verifier.from_manifest(weights)
        _warn_seen_writers(v, data, chosen)
        res, q = evaluate_corpus(v, data, k, chosen)
    except (SigpipeError, ValueError) as e:
        raise fail(e) from e
    if plot:
        try:
            plot_roc(q, plot)
        except (OSError, ValueError) as e:  # no permission, a full disk, a suffix matplotlib cannot write
            raise BadInput(f"cannot write the ROC plot {plot}: {e}") from e
    if res["eer"] is None:  # a corpus of genuine signatures only: half the protocol cannot be measured
        log.warning("%s holds no skilled forgeries: eer, far_skilled, accuracy and auc (measured against them) are "
                    "null; frr and far_random (other writers' genuine signatures) are measured", data)
    if as_json:
        click.echo(json.dumps(res))
    else:
        for key, val in res.items():
            click.echo(f"{key:12s} {val:.4f}" if isinstance(val, float) else
                       f"{key:12s} {'n/a (no skilled forgeries)' if val is None else val}")


def _warn_seen_writers(v: Verifier, data: Path, chosen: list[str] | None) -> None:
    """Warn when writers to evaluate are among those the model was trained or calibrated on (its manifest's
    ``training.splits`` for a corpus of ``data``'s folder name): DESIGN's protocol evaluates unseen writers only."""
    from sigpipe.datasets.corpus import Corpus

    parts = ((v.manifest.data.get("training") or {}).get("splits") or {}).get(data.name)
    if not isinstance(parts, dict):
        return
    evaluated = set(chosen) if chosen is not None else set(Corpus(data).writers)
    seen = {part: sorted(evaluated & set(parts.get(part) or ())) for part in ("train", "val")}
    if seen["train"] or seen["val"]:
        held_out = sorted(evaluated - set(seen["train"]) - set(seen["val"]))
        log.warning("%d of the %d writers evaluated trained %s (%d) or calibrated it (%d): figures on them flatter "
                    "it; its held-out writers here: %s", len(seen["train"]) + len(seen["val"]), len(evaluated),
                    v.ident, len(seen["train"]), len(seen["val"]),
                    f"--writers {','.join(held_out)}" if held_out else "none")


def _specimens_given(refs: tuple[Path, ...]) -> tuple[Path, ...]:
    """The REF files, a folder given as a REF (``REFS/alice``) read as the run enrols a person's folder."""
    from sigpipe.verifier.gallery import SPECIMEN_SUFFIXES, specimen_files

    files: list[Path] = []
    for r in refs:
        if not r.is_dir():
            files.append(r)
            continue
        found = specimen_files(r)
        if not found:
            raise BadInput(f"{r} holds no specimen file (looked for {', '.join(sorted(SPECIMEN_SUFFIXES))})")
        files += found
    return tuple(files)


def _warn_repeated_refs(refs: tuple[Path, ...]) -> None:
    """Warn about REFs of the same content given more than once: each copy counts in the threshold (the spread of
    the references), as a specimen filed twice does in a run (which warns the same)."""
    from sigpipe.weights import sha256_file

    seen: dict[str, list[str]] = {}
    for r in refs:
        try:
            seen.setdefault(sha256_file(r), []).append(str(r))
        except OSError:
            continue  # reading it fails below, with its own error
    for same in (files for files in seen.values() if len(files) > 1):
        log.warning("the same reference is given %d times (%s): each copy counts in the threshold; give it once",
                    len(same), " = ".join(same))


@click.command()
@click.argument("questioned", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("refs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--weights", "--verifier-weights", "weights",
              type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Verifier manifest (<weights>.json; --verifier-weights as 'sigpipe run' names it). Default: the "
                   "bundled model.")
@click.option("--detector-weights", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Detector manifest for PDFs and whole pages (<weights>.json). Default: the bundled detector.")
@click.option("--orient/--no-orient", default=True, show_default=True,
              help="Turn PDF and page files scanned upside down or sideways upright first, as 'sigpipe run' does.")
@click.option("--signature", "which", type=click.IntRange(min=1), default=None, metavar="N",
              help="QUESTIONED holds several signatures (a contract signed by two parties): verify the N-th, counted "
                   "page by page, top to bottom, then left to right, as the error listing them numbers them.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def verify(questioned: Path, refs: tuple[Path, ...], weights: Path | None, detector_weights: Path | None,
           orient: bool, which: int | None, as_json: bool) -> None:
    """Verify one QUESTIONED signature against REF specimens of the claimed person (files, or a person's folder
    of them as REFS holds it: its specimen files, sub-folders included).

    Each file is a signature image, or a PDF or scanned page (a cheque, a letter) in which the detector finds the
    signature, as `sigpipe run` does: QUESTIONED must then hold exactly one signature, or `--signature N` picks one;
    each REF gives its most confident signature per page. Exit code 0 whatever the verdict; the verdict is in the
    output; 2 for a file that cannot be read, is over `sigpipe run`'s pixel limit, holds no ink or no signature (or,
    for QUESTIONED, several without `--signature`, or fewer than N).
    """
    import numpy as np

    from sigpipe.verifier.gallery import specimen_images
    from sigpipe.verifier.preprocess import has_ink
    from sigpipe.verifier.verifier import Verifier

    refs = _specimens_given(refs)
    if questioned.resolve() in {r.resolve() for r in refs}:
        log.warning("%s is also given as a reference: it matches itself, so the verdict says nothing", questioned)
    _warn_repeated_refs(refs)
    pages = _PageCropper(detector_weights, orient)
    try:
        v = Verifier.from_manifest(weights)
        pages.channel = v.preprocess_cfg.colour
        found = pages.questioned(questioned, which)
        ref_images: list[np.ndarray] = []
        files = [questioned]  # the file each image came from: a PDF or page reference may give several
        for r in refs:
            crops = pages.reference(r)
            ref_images += crops
            files += [r] * len(crops)
        xq, gaps = v.prepare_marked(found.image)  # and where lines were cut out of its strokes: the copy check's
        x = np.concatenate([xq, v.prepare(ref_images)])
        # the check `sigpipe run` applies to specimens (Gallery.enroll): no ink left after preprocessing
        inked = has_ink(x)
        if not inked.all():
            blank = files[int(np.argmin(inked))]
            raise InputError(f"no ink found in {blank}: the image is blank or too small to hold a signature")
        embs = v.embed_prepared(x)
    except SigpipeError as e:
        raise fail(e) from e
    ref_stored = specimen_images(x[1:])  # as `sigpipe run`'s gallery keeps references: the same distance
    d = v.decide(embs[0], embs[1:], x[0], ref_stored)
    decision = d.to_dict()
    nearest = decision.pop("nearest")
    # how the figures were made, for an auditor rebuilding a report's: threshold = t[K'] + spread_weight * spread,
    # distance = the Siamese distance + pair_weight * softplus(-pair_logit) (README, Verifier: Decision)
    kk = v.rule.calibrated_k(d.references)
    decision |= {"references_compared": decision.pop("references"), "calibrated_k": kk,
                 "base_threshold": v.rule.thresholds[kk], "spread_weight": v.rule.spread_weight if d.references >= 2
                 else 0.0, "pair_weight": v.rule.pair_weight if d.pair_logit is not None else 0.0}
    verdict = "electronic" if found.placed else "genuine" if d.genuine else "forged"
    if verdict == "genuine" and (copy := v.copy_of(x[0], ref_stored, gaps)) is not None:  # a specimen pasted
        verdict, nearest = "copied", copy
    if found.placed == "conformed":  # "/s/" and a typed name: compared with nobody, as `sigpipe run` reports it
        decision, nearest = dict.fromkeys(decision), None
    out: dict[str, object] = {**decision, "questioned": str(questioned), "references": [str(r) for r in refs],
                              "verdict": verdict,
                              "model": v.ident,
                              "nearest_reference": None if nearest is None else str(files[1 + int(nearest)])}
    suspects = _suspect_references(v, embs[1:], ref_stored, [str(f) for f in files[1:]])
    if suspects is not None:
        out["suspect_references"] = suspects
    if found.detection is not None:
        out["questioned_detection"] = found.detection
        out["placed"] = found.placed  # typed, drawn or pasted on a PDF page: compared, not judged (README)
        if found.typed_name is not None:
            out["typed_name"] = found.typed_name
    if pages.detector is not None:
        out["reference_crops"] = len(ref_images)
        out["detector"] = pages.detector.ident
        orientation = getattr(pages.detector, "orientation_ident", None)
        if orientation:
            out["orientation"] = orientation
    if as_json:
        click.echo(json.dumps(json_text(out)))
    else:
        where = ""
        if found.bbox is not None:
            x1, y1, x2, y2 = (round(c) for c in found.bbox)
            turned = f", the page turned {found.rotation} degrees" if found.rotation else ""
            where = f"  (found on page {found.page} at x {x1}-{x2}, y {y1}-{y2}{turned})"
        figures = (f"conformed signature of {found.typed_name!r}, compared with nobody" if found.placed == "conformed"
                   else f"distance {d.distance:.3f} (threshold {d.threshold:.3f})  score {d.score:.2f}")
        click.echo(f"{out['verdict']}  {figures}{where}", file=sys.stdout)
        if found.placed:
            from sigpipe.pipeline.placed import not_judged

            click.echo(f"  {not_judged(found.placed)}", file=sys.stdout)


def _suspect_references(v: Verifier, embs: np.ndarray, images: np.ndarray, files: list[str]) -> list[str] | None:
    """The REF files unlike the other references (``sigpipe.verifier.refcheck``, as ``sigpipe run`` checks REFS),
    each also logged as a warning; None when the verifier's manifest has no such check. ``images``: the
    references as the gallery keeps them (:func:`~sigpipe.verifier.gallery.specimen_images`)."""
    from sigpipe.verifier.gallery import Gallery
    from sigpipe.verifier.refcheck import suspect_specimens

    if v.rule.outlier_margin is None:
        return None
    g = Gallery(v, embeddings={"claimed": embs}, images={"claimed": images}, sources={"claimed": tuple(files)})
    suspects = suspect_specimens(g)
    for s in suspects:
        log.warning("reference %s does not match the other references (distance %+.3f beyond their threshold): is "
                    "it another person's signature? The verdict rests on it all the same", s.file, s.margin)
    return sorted({s.file for s in suspects})


@dataclass(frozen=True)
class _Questioned:
    """The questioned signature: its image, and where the detector found it when the file was a PDF or a page
    (1-based ``page``, ``bbox`` (x1, y1, x2, y2) in page pixels, ``confidence``, and the page's ``rotation``:
    degrees counter-clockwise from upright, the crop turned back upright, and ``skew``: degrees it was then turned to
    level it, as ``sigpipe run`` reports them; ``placed``: how it came onto a PDF page placed digitally, as
    :class:`~sigpipe.pipeline.placed.PlacedMarks` says, None for scanned ink)."""

    image: np.ndarray
    page: int | None = None
    bbox: tuple[float, float, float, float] | None = None
    confidence: float = 0.0
    rotation: int = 0
    skew: float = 0.0
    placed: str | None = None
    typed_name: str | None = None

    @property
    def detection(self) -> dict[str, object] | None:
        """The detection for the JSON output; None when the file was taken whole."""
        if self.page is None or self.bbox is None:
            return None
        return {"page": self.page, "bbox": [round(float(c), 1) for c in self.bbox],
                "confidence": round(self.confidence, 4), "page_rotation": self.rotation, "page_skew": self.skew}


class _PageCropper:
    """Signature images for ``sigpipe verify``: an image file that is a signature is read as it is; a PDF, or an
    image that looks like a whole page (:func:`~sigpipe.verifier.gallery.looks_like_page`), goes through the
    detector (loaded on first need) and is cropped as ``sigpipe run`` crops (its page rendering and box margin)."""

    def __init__(self, manifest: Path | None, orient: bool = True, channel: str = "luma") -> None:
        self.manifest = manifest
        self.orient = orient
        self.channel = channel  # how a colour signature image becomes gray: the verifier's preprocess.colour
        self.detector: Detector | None = None

    def _detector(self) -> Detector:
        if self.detector is None:
            from sigpipe.detector.detector import SignatureDetector

            detector: Detector = SignatureDetector.from_manifest(self.manifest)
            if self.orient:
                from sigpipe.pipeline.orientation import OrientingDetector, PageOrienter

                detector = OrientingDetector(detector, PageOrienter())
            self.detector = detector
        return self.detector

    def _signature(self, path: Path) -> np.ndarray | None:
        """The image itself when ``path`` is a signature image; None for a PDF or a page."""
        from sigpipe.pipeline.ingest import reads_as_pdf
        from sigpipe.verifier.gallery import signature_image

        if reads_as_pdf(path):  # by its content, as `sigpipe run` reads documents
            return None
        return signature_image(path, self.channel, _read_signature)  # as enrolment reads specimens

    def questioned(self, path: Path, which: int | None = None) -> _Questioned:
        """The questioned signature of ``path``: the image itself, or the one signature the detector finds in a PDF or
        page, or with several the ``which``-th (1-based; page by page, top to bottom, then left to right)."""
        img = self._signature(path)
        if img is not None:
            if which not in (None, 1):
                raise InputError(f"{path} is a signature image, not a page: --signature {which} does not apply")
            return _Questioned(img)
        from sigpipe.pipeline.flow import (
            FlowConfig,
            conformed_unboxed,
            crop_detection,
            placed_on,
            reading_order,
            rotation_of,
            skew_of,
        )
        from sigpipe.pipeline.ingest import IngestConfig, iter_pages

        detector = self._detector()
        found = []  # (page number, detection, crop, placed): pages are streamed, only their crops are kept
        with _naming(path):
            for page in iter_pages(path, IngestConfig()):
                dets = detector.detect_batch([page.image])[0]
                typed = conformed_unboxed(page, dets)
                for det in reading_order([*dets, *typed]):  # page by page, in reading order, as `sigpipe run` has them
                    found.append((page.number, det, crop_detection(page.image, det, FlowConfig().crop_margin),
                                  placed_on(page, det)))
        if not found:
            raise InputError(f"no signature found in {path}")
        if len(found) > 1 and which is None or which is not None and which > len(found):
            where = "; ".join(f"{i}: page {number} at x {round(float(det.bbox[0]))}-{round(float(det.bbox[2]))}, "
                              f"y {round(float(det.bbox[1]))}-{round(float(det.bbox[3]))} ({det.confidence:.2f})"
                              for i, (number, det, _, _) in enumerate(found, 1))
            pick = ("choose one with --signature N, or use 'sigpipe run', which verifies each" if which is None
                    else f"there is no signature {which}")
            raise InputError(f"{path} holds {len(found)} signature(s) ({where}): {pick}")
        number, det, crop, (placed, typed_name) = found[(which or 1) - 1]
        x1, y1, x2, y2 = (float(c) for c in det.bbox)
        return _Questioned(crop, number, (x1, y1, x2, y2), float(det.confidence), rotation_of(det), skew_of(det),
                           placed, typed_name)

    def reference(self, path: Path) -> list[np.ndarray]:
        img = self._signature(path)
        if img is not None:
            crops = [img]
        else:
            from sigpipe.pipeline.flow import FlowConfig, specimen_loader

            loader = specimen_loader(self._detector(), margin=FlowConfig().crop_margin)
            with _naming(path):
                crops = loader(path)
            if not crops:
                raise InputError(f"no signature found in {path}")
        return crops


@contextmanager
def _naming(path: Path) -> Iterator[None]:
    """Re-raise an input error of reading ``path`` (whose message, written for a per-document report, does not name
    it) with the file's name in front, on one line."""
    try:
        yield
    except InputError as e:
        raise type(e)(f"{path}: {' '.join(str(e).split())}") from e


def _read_signature(path: Path, channel: str = "luma") -> np.ndarray:
    """:func:`read_gray` (by ``channel``), refusing an image over `sigpipe run`'s pixel limit before it is decoded.

    Raises:
        InputError: the file cannot be decoded (:func:`read_gray`), or is over
            :data:`~sigpipe.pipeline.ingest.MAX_PAGE_PIXELS` (:class:`ImageTooLargeError`).
    """
    from PIL import Image

    from sigpipe.datasets.corpus import read_gray
    from sigpipe.pipeline.errors import ImageTooLargeError
    from sigpipe.pipeline.ingest import MAX_PAGE_PIXELS, IngestConfig, count_pixels_guard

    try:
        with ignoring(Image.DecompressionBombWarning):
            with Image.open(path) as im:  # reads the header only
                size = im.size
    except Image.DecompressionBombError as e:  # PIL's own refusal, at twice its limit, which is over ours
        raise ImageTooLargeError(f"{path} is over the {MAX_PAGE_PIXELS / 1e6:.0f} Mpx limit per image") from e
    except Exception:  # noqa: BLE001 - not an image PIL knows (where Ultralytics is imported, its patched
        size = None  # Image.open raises ModuleNotFoundError for pi_heif then): read_gray decodes it or says it cannot
    if size is not None:
        count_pixels_guard(*size, IngestConfig(), str(path))
    return read_gray(path, channel)


@verifier.command()
@click.option("--weights", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Manifest of the verifier to export (<weights>.json); it is updated in place.")
@click.option("--keep-default", is_flag=True, help="Record the export without making it the default backend.")
def export(weights: Path, keep_default: bool) -> None:
    """Export a verifier to ONNX (run by ONNX Runtime, the default CPU backend); prints the file's path."""
    from sigpipe.verifier.export import export_onnx

    _manifest_arg(weights, "--weights")
    try:
        click.echo(str(export_onnx(weights, make_default=not keep_default)))
    except SigpipeError as e:
        raise fail(e) from e


@verifier.command("operating-point")
@click.argument("labelled", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--far", "target_far", type=click.FloatRange(0, 1, min_open=True, max_open=True), required=True,
              help="Target false-accept rate of forgeries, e.g. 0.01.")
@click.option("--weights", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Manifest of the verifier the runs used. Default: the bundled model.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write the verifier with the shifted thresholds here (OUT/verifier.pt.json and its files).")
@click.option("--tag", default=None,
              help="With --out: the new model's tag (default: <tag>-far<FAR>-offset<+d>: v10-far0.01-offset-0.162).")
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

    seen: dict[Path, Path] = {}
    for path in labelled:
        if path.resolve() in seen:
            raise click.BadParameter(f"{path} is given twice (as {seen[path.resolve()]}): its labels would count "
                                     "twice", param_hint="LABELLED")
        seen[path.resolve()] = path
    try:
        m = Manifest.load(weights) if weights else bundled_manifest("verifier")
        margins = []
        for path in labelled:
            check_same_verifier(path, m, chosen=weights is not None)
            margins.append(read_labelled(path))
        op = choose_offset(np.concatenate([g for g, _ in margins]), np.concatenate([f for _, f in margins]),
                           target_far)
        # the default tag names the offset too: two calibrations at one FAR (other labels) are two models
        default_tag = f"{m.tag}-far{target_far:g}-offset{op.offset:+.3f}"
        written = shifted_manifest(m, op.offset, tag or default_tag, out) if out else None
    except SigpipeError as e:
        raise fail(e) from e
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
