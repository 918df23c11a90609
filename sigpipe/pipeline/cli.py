"""``sigpipe run``: the batch job (a thin wrapper over :func:`sigpipe.pipeline.runner.run_batch`).

Exit codes: 0 every document was processed (whatever the verdicts), 1 some documents failed (their reports say why),
2 usage errors (no documents, bad claims CSV, missing model, missing poppler for ``--pdf-backend pdf2image``...),
130 / 143 / 129 interrupted (SIGINT / SIGTERM / SIGHUP: the reports written so far are complete, a re-run resumes).
"""

from __future__ import annotations

import signal
import sys
import threading
import warnings
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click

from sigpipe._names import json_text
from sigpipe.errors import SigpipeError
from sigpipe.pipeline.ingest import DEFAULT_DPI, MAX_DOCUMENT_PAGES, PDF_BACKENDS
from sigpipe.pipeline.progress import printable, silence

if TYPE_CHECKING:
    from sigpipe.verifier.gallery import SpecimenLoader


class UsageFailure(click.ClickException):
    """A one-line error on stderr and exit code 2 (no usage text: the problem is a file or model, not syntax)."""

    exit_code = 2


manifest_path = click.Path(exists=True, dir_okay=False, path_type=Path)
# options that sigpipe run and sigpipe check-refs share (a specimen is read as run reads it)
dpi_option = click.option("--dpi", type=click.IntRange(50, 600), default=DEFAULT_DPI, show_default=True,
                          help="Resolution PDFs are rendered at (images keep their pixels).")
pdf_backend_option = click.option("--pdf-backend", type=click.Choice(PDF_BACKENDS), default="pypdfium2",
                                  show_default=True, help="PDF rasteriser; pdf2image needs poppler-utils.")
detector_option = click.option("--detector-weights", type=manifest_path, default=None,
                               help="Detector manifest (<weights>.json). Default: the bundled detector.")
verifier_option = click.option("--verifier-weights", type=manifest_path, default=None,
                               help="Verifier manifest (<weights>.json). Default: the bundled verifier.")


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a scheduler's time limit) or SIGHUP (the session that started the run ended), raised in the
    main thread to stop the run as Ctrl-C does: the worker processes are stopped with it instead of living on, and
    the temporary files go with the run. ``signum``: which."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(signum)
        self.signum = signum


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated(signum)


STOPPING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)  # handled like Ctrl-C; exit 128 + the signal's number


def _say(message: str, err: bool = False) -> None:
    """``click.echo`` for a command's closing lines, which must not change its exit code: when they are written the
    work is done and its files are on disk, and cron reads the code (README), not the line. A stream that fails (a
    full disk, a reader gone: ``| head``) is silenced, so that the interpreter's flush at exit does not fail on it."""
    try:
        click.echo(message, err=err)
    except OSError:
        silence(sys.stderr if err else sys.stdout)


class WorkersType(click.ParamType):
    """``--workers``: a number of worker processes (at least 1), or ``auto`` (``RunConfig.workers`` 0)."""

    name = "N|auto"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        text = str(value).strip().lower()
        if text == "auto":
            return 0
        if text.isdecimal() and int(text) >= 1:
            return int(text)
        self.fail(f"{value!r} is not a number of workers (1 or more) or 'auto'", param, ctx)


WORKERS = WorkersType()


@click.command()
@click.argument("scans", type=click.Path(exists=True, path_type=Path))
@click.option("--refs", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="References: REFS/<person>/* genuine specimens (images, or PDFs / whole pages).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("sigpipe-reports"),
              show_default=True, help="Folder for OUT/<document>.json reports and OUT/summary.json|csv.")
@click.option("--claims", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="CSV with header 'document,identity' (document relative to SCANS; a row per signatory), and "
                   "optionally 'mandate' (all, any, or how many of a document's people must sign). Unclaimed "
                   "documents are matched one-to-many against every enrolled person. A cheque's row may name "
                   "the account it is drawn on (column 'account') instead of people: see --signatories.")
@click.option("--signatories", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Signatory table for claims by account (a bank's signature cards): CSV with header "
                   "'account,identity', a row per person who may sign for the account, and optionally 'mandate' "
                   "(all, any, how many must sign, or of which classes: A+B) and 'class' (each person's signing "
                   "class). A document drawn on an account it does not hold fails (error kind unknown_account); "
                   "one whose card it gets wrong, too (bad_signatory_card).")
@click.option("--workers", type=WORKERS, default="auto", show_default=True,
              help="Documents processed in parallel, each worker process loading the models once; auto: one per "
                   "core for a large batch (README, 'Re-runs, parallelism, exit codes'), else 1 (in this process).")
@dpi_option
@click.option("--pages", "page_spec", metavar="PAGES", default=None,
              help="Read only these pages of each document: 1 (a cheque's front, not the endorsement on its back), "
                   "-1 (the last: a contract's signature page), 1,-1, 2-4, 3- (to the end). A document with none "
                   "of them fails (error kind no_selected_page). Default: every page.")
@click.option("--max-pages", type=click.IntRange(min=1), default=MAX_DOCUMENT_PAGES, show_default=True,
              help="A document with more pages to read (after --pages) fails at once (error kind too_many_pages): "
                   "a small PDF can hold tens of thousands of pages, hours of a night's work.")
@click.option("--accept-score", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=None,
              metavar="P", help="A document whose signatures are all judged genuine is 'genuine' only when each has a "
                                "score of at least P, else 'needs_review': close calls go to a person (README, "
                                "Close calls). Default: no such bar.")
@click.option("--other-signers", is_flag=True,
              help="Documents may bear other people's signatures besides the claimed people's (contracts: a "
                   "counterparty, a witness): once every claimed person has a genuine signature on a document, its "
                   "signatures that match none of them are 'other_signer' instead of 'forged'. Default: every "
                   "signature must be a claimed person's (cheques).")
@pdf_backend_option
@detector_option
@click.option("--detector-tta", is_flag=True,
              help="Also run the detector on each page's mirror image and fuse the boxes: fewer false boxes and "
                   "a few more faint signatures found, for about 2.3x the detector's time (README, Detector).")
@click.option("--orient/--no-orient", default=True, show_default=True,
              help="Turn pages scanned upside down or sideways upright before looking for signatures (the bundled "
                   "orientation model; README, Pages turned).")
@click.option("--orientation-weights", type=manifest_path, default=None,
              help="Orientation manifest (<weights>.json, from 'sigpipe orientation train'). Default: the bundled "
                   "model.")
@click.option("--precision", type=click.Choice(["f32", "bf16", "auto"]), default="f32", show_default=True,
              help="bf16: run both models on OpenVINO in bfloat16, about twice as fast on CPUs that compute in it "
                   "(AVX512_BF16, AMX), slower where it is emulated; results move slightly (README, The whole "
                   "pipeline). auto: bf16 where this CPU computes it natively, else f32.")
@verifier_option
@click.option("--threads", type=click.IntRange(min=0), default=None,
              help="CPU threads shared by the workers (default: $SIGPIPE_THREADS, else all cores; 0: all cores). "
                   "On a machine "
                   "busy with other work, fewer threads than cores can be much faster.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
              help="Stop a document that takes longer than this and fail it (error kind 'timeout'), so one file "
                   "that hangs a library cannot stall the batch. Documents then run in worker processes.")
@click.option("--force", is_flag=True, help="Reprocess every document, even those with an up-to-date report.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress lines on stderr.")
def run(scans: Path, refs: Path, out: Path, claims: Path | None, signatories: Path | None, workers: int, dpi: int,
        page_spec: str | None, max_pages: int,
        accept_score: float | None, other_signers: bool, pdf_backend: str, detector_weights: Path | None,
        detector_tta: bool, orient: bool, orientation_weights: Path | None, precision: str,
        verifier_weights: Path | None, threads: int | None, timeout: float | None, force: bool,
        progress: bool) -> None:
    """Find and verify the signatures in every document under SCANS.

    Writes OUT/<path relative to SCANS>.json per document, OUT/summary.json and OUT/summary.csv. A re-run skips
    documents whose report is up to date. Exit 0 when every document was processed, 1 when some failed, 2 on
    usage errors.
    """
    from sigpipe._ultralytics import usable_cores
    from sigpipe.pipeline.runner import RunConfig, run_batch

    # every document's library warnings are logged under its name (sigpipe._warnings), not only the first one's
    warnings.simplefilter("always")
    # but not Python's own notes on files and processes left to the collector: after a SIGTERM they followed the
    # one-line message in several lines each, in a log collector's stream
    warnings.simplefilter("ignore", ResourceWarning)
    try:
        config = RunConfig(
            scans=scans, refs=refs, out=out, claims=claims, signatories=signatories, workers=workers, dpi=dpi,
            pdf_backend=pdf_backend,
            detector_weights=detector_weights, detector_tta=detector_tta, orient=orient,
            orientation_weights=orientation_weights, precision=precision,
            verifier_weights=verifier_weights, threads=usable_cores() if threads == 0 else threads, timeout=timeout,
            force=force, progress=progress,
            pages=page_spec, accept_score=accept_score, other_signers=other_signers, max_pages=max_pages,
        )
        main = threading.current_thread() is threading.main_thread()  # only there can a handler be set
        # SIGHUP ignored when the run started stays so: nohup's
        previous = {s: signal.signal(s, _terminate) for s in STOPPING_SIGNALS
                    if main and (s != signal.SIGHUP or signal.getsignal(s) is not signal.SIG_IGN)}
        try:
            summary = run_batch(config)
        finally:
            for s, handler in previous.items():
                signal.signal(s, signal.SIG_DFL if handler is None else handler)
    except KeyboardInterrupt as e:  # Ctrl-C, SIGTERM or SIGHUP: one line, the shell's exit code for the signal
        signum = int(e.signum if isinstance(e, Terminated) else signal.SIGINT)
        name = {int(signal.SIGTERM): "terminated", int(signal.SIGHUP): "hung up"}.get(signum, "interrupted")
        _say(f"sigpipe: {name}; the reports written so far are complete: run again to resume", err=True)
        sys.exit(128 + signum)
    except ValueError as e:
        raise click.UsageError(str(e)) from e
    except SigpipeError as e:
        raise UsageFailure(str(e)) from e
    counts = ", ".join(f"{k} {v}" for k, v in summary.verdicts.items() if v)
    skipped = f" ({summary.skipped} already done)" if summary.skipped else ""
    _say(f"{summary.documents} documents{skipped}, {summary.pages} pages, {summary.signatures} signatures: "
         f"{counts or 'nothing'} -> {out / 'summary.json'}")
    to_review = summary.verdicts.get("forged", 0) + summary.verdicts.get("needs_review", 0)
    unsigned = len(summary.claimed_unsigned)  # presented as signed: a reviewer looks at them too
    if to_review or unsigned:
        import logging
        import shlex

        what = ", ".join(part for part in (f"{to_review} document(s) forged or needing review" if to_review else "",
                                           f"{unsigned} claimed but with no signature found" if unsigned else "")
                         if part)
        logging.getLogger(__name__).info(
            "%s; to see them beside the references: sigpipe review %s --scans %s --refs %s", what,
            shlex.quote(str(out)), shlex.quote(str(scans)), shlex.quote(str(refs)))
    if summary.failed:
        _say(f"{summary.failed} document(s) failed; see 'failures' in {out / 'summary.json'}", err=True)
        click.get_current_context().exit(1)


@click.group()
def orientation() -> None:
    """The page-orientation model: which way up a page is (sigpipe run turns pages upright with it)."""


@orientation.command("train")
@click.option("--pages", "train_dirs", multiple=True, required=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of upright documents or page images to train on (repeatable; searched recursively).")
@click.option("--val", "val_dirs", multiple=True, required=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of upright pages that chooses the epoch and the confidence a page is turned at.")
@click.option("--no-cue", "no_cue_dirs", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of images that carry no orientation cue (signature images), taught as 'leave as it is' "
                   "in any turn (repeatable).")
@click.option("--no-cue-val", "no_cue_val_dirs", multiple=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Likewise for validation: none of them may be turned at the chosen confidence (repeatable).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for orientation.pt, orientation.onnx and the manifest orientation.pt.json.")
@click.option("--size", type=click.IntRange(128, 1024), default=512, show_default=True, help="Input side, pixels.")
@click.option("--width", type=click.IntRange(4, 128), default=8, show_default=True, help="Channels of stage 1.")
@click.option("--epochs", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=2e-3, show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--precision", type=click.Choice(["f32", "bf16"]), default="f32", show_default=True,
              help="bf16: forward passes in bfloat16 (about half the time on CPUs with AMX).")
@click.option("--tag", default=None, help="The model's tag: reports name it orient-cnn.TAG <sha256 prefix> "
                                          "(default: s<seed>).")
def orientation_train(train_dirs: tuple[Path, ...], val_dirs: tuple[Path, ...], no_cue_dirs: tuple[Path, ...],
                      no_cue_val_dirs: tuple[Path, ...], out: Path, size: int, width: int, epochs: int, lr: float,
                      seed: int, precision: str, tag: str | None) -> None:
    """Train the orientation network on upright pages, each shown turned by 0, 90, 180 and 270 degrees."""
    from sigpipe._cli import out_folder
    from sigpipe.pipeline.orientation_train import OrientTrainConfig, train

    if tag is not None and (not tag.strip() or any(c.isspace() for c in tag)):
        raise UsageFailure(f"--tag must be a word (it goes into the model's name in every report), got {tag!r}")
    out_folder(out)  # a folder under a regular file, or not writable: a usage error before any work
    try:
        manifest = train(train_dirs, val_dirs, out, OrientTrainConfig(size=size, width=width, epochs=epochs, lr=lr,
                                                                      seed=seed, precision=precision, tag=tag),
                         no_cue_dirs, no_cue_val_dirs)
    except (SigpipeError, ValueError) as e:
        raise UsageFailure(str(e)) from e
    click.echo(str(manifest))


@orientation.command("eval")
@click.option("--pages", "dirs", multiple=True, required=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of upright documents or page images (repeatable; searched recursively).")
@click.option("--weights", type=manifest_path, default=None,
              help="Orientation manifest (<weights>.json). Default: the bundled model.")
def orientation_eval(dirs: tuple[Path, ...], weights: Path | None) -> None:
    """Turn every page by 0, 90, 180 and 270 degrees and print, as JSON, what the model makes of them: upright pages
    it would turn (upright_turned), turned pages it puts upright (turned_fixed of turned_pages), pages it would turn
    the wrong way (wrong_turn), and its accuracy."""
    import json

    from sigpipe.pipeline.orientation_train import evaluate
    from sigpipe.weights import bundled_manifest

    try:
        result = evaluate(weights or bundled_manifest("orientation").path, dirs)
    except SigpipeError as e:
        raise UsageFailure(str(e)) from e
    if not result.get("pages"):
        raise UsageFailure(f"no pages found in {', '.join(map(str, dirs))}: nothing to evaluate")
    click.echo(json.dumps(json_text(result)))


@click.command("check-refs")
@click.argument("refs", type=click.Path(exists=True, file_okay=False, path_type=Path))
@dpi_option
@pdf_backend_option
@detector_option
@verifier_option
@click.option("--orient/--no-orient", default=True, show_default=True,
              help="Turn page specimens scanned upside down or sideways upright first, as 'sigpipe run' does.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def check_refs(refs: Path, dpi: int, pdf_backend: str, detector_weights: Path | None, verifier_weights: Path | None,
               orient: bool, as_json: bool) -> None:
    """Check a references folder REFS/<person>/* before a run.

    Enrols the specimens as 'sigpipe run' does (filling the same embedding cache) and lists the files it cannot use
    and the suspect specimens: those unlike the rest of their person's specimens, perhaps someone else's signature
    filed under that person (README, References check). Exit 0 when every specimen is usable and none is suspect,
    1 otherwise (or when nobody could be enrolled), 2 on usage errors.
    """
    import json

    from sigpipe.pipeline.flow import model_idents, specimen_loader
    from sigpipe.pipeline.ingest import IngestConfig, check_backend
    from sigpipe.pipeline.runner import ManifestModels, available_cores, single_reference_warning
    from sigpipe.verifier.gallery import Gallery
    from sigpipe.verifier.refcheck import suspect_specimens

    try:
        check_backend(pdf_backend)
        detector, verifier = ManifestModels(detector_weights, verifier_weights, orient=orient)(available_cores())
        gallery = Gallery.enroll(refs, verifier, loader=specimen_loader(detector, IngestConfig(dpi=dpi,
                                                                                               pdf_backend=pdf_backend)))
        suspects = suspect_specimens(gallery)
    except ValueError as e:
        raise click.UsageError(str(e)) from e
    except SigpipeError as e:
        raise UsageFailure(str(e)) from e
    # a folder with no specimen file at all (a new customer's, not yet filled): their documents get no_reference
    empty = [p for p in gallery.folders if p not in gallery.embeddings
             and not any(Path(f).is_relative_to(refs / p) for f in gallery.errors)]
    single = single_reference_warning(gallery.embeddings, getattr(verifier.manifest, "data", None))
    if as_json:
        click.echo(json.dumps(json_text({
            "people": len(gallery.people),
            "specimens": {p: len(gallery.embeddings[p]) for p in gallery.people},
            "reference_errors": [{"file": k, "message": v} for k, v in sorted(gallery.errors.items())],
            "suspect_references": [s.to_dict() for s in suspects],
            "empty_folders": empty,
            "duplicates": gallery.duplicates,
            "odd_specimens": gallery.odd,
            "warnings": gallery.warnings + ([single] if single else []),
            "outlier_margin": verifier.rule.outlier_margin,
            "models": model_idents(detector, verifier),
        }), indent=2))
    else:
        for f, why in sorted(gallery.errors.items()):
            click.echo(f"unusable  {f}: {why}")
        for s in suspects:
            also = f"; within the threshold of {s.resembles}" if s.resembles else ""
            click.echo(f"suspect   {s.file}: unlike {s.person}'s other specimens (distance {s.margin:+.3f} beyond "
                       f"their threshold){also}: if it is someone else's, move or delete it")
        for p in empty:
            click.echo(f"empty     {refs / p}: no specimen file (documents claimed by {p!r} get no_reference)")
        for d in gallery.duplicates:
            click.echo(f"duplicate {d}")
        for o in gallery.odd:
            click.echo(f"odd       {o}")
        if single:  # said as `run` says it; no error: a bank may keep one signature card a customer
            click.echo(f"single    {single}")
        specimens = sum(len(e) for e in gallery.embeddings.values())
        check = ("" if verifier.rule.outlier_margin is not None
                 else f" (not checked for suspects: {verifier.ident} has no decision.outlier_margin)")
        click.echo(f"{len(gallery.people)} people, {specimens} specimens: {len(gallery.errors)} unusable file(s), "
                   f"{len(suspects)} suspect(s), {len(empty)} empty folder(s), {len(gallery.duplicates)} "
                   f"duplicate(s), {len(gallery.odd)} odd specimen(s){check}")
    if not gallery.people and not as_json:
        click.echo(f"nobody to check: {refs} holds no person folder with a usable specimen", err=True)
    if gallery.errors or suspects or empty or gallery.duplicates or gallery.odd or not gallery.people:
        click.get_current_context().exit(1)


@click.command("review")
@click.argument("out", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--scans", required=True, type=click.Path(exists=True, path_type=Path),
              help="The SCANS the run read (the documents are rendered again from there).")
@click.option("--refs", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="The REFS the run compared with (the nearest references are shown from there).")
@click.option("--to", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the sheets and index.html.  [default: OUT/review]")
@click.option("--all", "everything", is_flag=True,
              help="A sheet for every signature, those judged genuine included.")
@click.option("--dpi", type=click.IntRange(50, 600), default=DEFAULT_DPI, show_default=True,
              help="For references that are PDFs: the run's --dpi (documents are rendered as their reports say).")
@click.option("--pdf-backend", type=click.Choice(PDF_BACKENDS), default="pypdfium2", show_default=True,
              help="For references that are PDFs: the run's --pdf-backend.")
@click.option("--detector-weights", type=manifest_path, default=None,
              help="For references that are PDFs or whole pages, whose signature the detector finds again: the "
                   "run's --detector-weights. Default: the bundled detector.")
@click.option("--orient/--no-orient", default=True, show_default=True,
              help="For references that are PDFs or whole pages: as the run.")
@click.option("--verifier-weights", type=manifest_path, default=None,
              help="For reference files holding several signatures (a PDF or TIFF of several pages), which one was "
                   "nearest is found again with the verifier: the run's --verifier-weights. Default: the bundled "
                   "verifier.")
def review(out: Path, scans: Path, refs: Path, to: Path | None, everything: bool, dpi: int, pdf_backend: str,
           detector_weights: Path | None, orient: bool, verifier_weights: Path | None) -> None:
    """Write review sheets for the signatures of a run's reports in OUT that a person should look at.

    Each sheet (TO/<document>.sig<N>.png) shows the page with the signature's box, the signature as the verifier
    saw it, and the reference specimen it was closest to, under its verdict and figures; TO/index.html lists them,
    forged first, then the unsigned and failed documents. By default the signatures not judged genuine, and every
    signature of a document whose verdict is not genuine. A document changed since its report is not reviewed.
    Exit 0 when every document could be reviewed, 1 otherwise, 2 on usage errors.
    """
    from contextlib import nullcontext

    from sigpipe.pipeline.flow import specimen_loader
    from sigpipe.pipeline.ingest import IngestConfig, check_backend
    from sigpipe.pipeline.report import out_lock
    from sigpipe.pipeline.review import LazyLoader, nearest_crop, specimen_reader, write_review
    from sigpipe.pipeline.runner import ManifestModels, available_cores
    from sigpipe.verifier.verifier import Verifier

    target = to or out / "review"
    if to is None and target.is_symlink():  # planted in OUT: the sheets would go, and old ones be removed, elsewhere
        raise UsageFailure(f"{target} is a symbolic link: remove it, or give the folder with --to")

    def make_loader() -> SpecimenLoader:
        detector, _ = ManifestModels(detector_weights, None, orient=orient)(available_cores())
        return specimen_loader(detector, IngestConfig(dpi=dpi, pdf_backend=pdf_backend))

    try:
        check_backend(pdf_backend)
        inside = target.resolve().is_relative_to(out.resolve())
        with out_lock(out) if inside else nullcontext():  # a run into OUT would take the sheets' temporaries
            result = write_review(out, scans, refs, target, specimen_reader(LazyLoader(make_loader)), everything,
                                  nearest_crop(lambda: Verifier.from_manifest(verifier_weights,
                                                                              threads=available_cores())))
    except ValueError as e:
        raise click.UsageError(str(e)) from e
    except SigpipeError as e:
        raise UsageFailure(str(e)) from e
    except OSError as e:  # the sheets or the index cannot be written: no use going on
        raise UsageFailure(f"cannot write the review to {target}: {e}") from e
    claimed = f" ({len(result.claimed_unsigned)} of them claimed)" if result.claimed_unsigned else ""
    _say(f"{result.reports} reports: {len(result.sheets)} signature(s) to review, {len(result.unsigned)} "
         f"unsigned{claimed}, {len(result.failed)} failed"
         + (f", {len({d for d, _ in result.problems})} not (wholly) reviewed" if result.problems else "")
         + f" -> {target / 'index.html'}")
    for doc, why in result.problems:  # a document's name, and a reason that may quote it: untrusted text
        # one signature's problem ("signature 2: ..."; its sheet may be written, without its closest reference)
        # or the whole document's
        said = "review incomplete" if why.startswith("signature ") else "not reviewed"
        _say(printable(f"{said}: {doc}: {why}".replace("\n", "\\n")), err=True)  # one line each
    if result.problems:
        click.get_current_context().exit(1)


def _tree_size(folder: Path) -> tuple[int, int]:
    """(files, bytes) under ``folder`` (0, 0 when it does not exist)."""
    files = size = 0
    for f in folder.rglob("*") if folder.is_dir() else []:
        if f.is_file():
            files, size = files + 1, size + f.stat().st_size
    return files, size


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


@click.command("find-person")
@click.argument("person")
@click.argument("outs", metavar="OUT [OUT ...]", nargs=-1, required=True,
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--review", "review_folders", multiple=True, type=click.Path(file_okay=False, path_type=Path),
              help="A review folder given to 'sigpipe review --to' outside OUT (repeatable; OUT/review is looked in "
                   "anyway).")
def find_person(person: str, outs: tuple[Path, ...], review_folders: tuple[Path, ...]) -> None:
    """List the files in run folders (OUT) that name PERSON: their reports (claimed, judged as the signer, or one of
    their specimens the closest reference), the review sheets of those documents (and those a --review folder's
    index.html lists beside the name), those index.html files, and summary.json / summary.csv when they name them.

    For erasing a customer's data (README, "Erasing a person's data"): what to delete is your retention policy's
    call; this says where it is. Exit 0 when something names them, 1 when nothing does, 2 when a report could not
    be read (listed on stderr: look at it by hand). A name that starts with '-' goes after '--':
    'sigpipe find-person -- -lee OUT'.
    """
    from sigpipe.pipeline.review import files_naming, iter_reports

    if not person.strip():
        raise UsageFailure("give a person's name (as their REFS folder is named)")
    for out in outs:  # all of them before any answer: a mistyped one would otherwise read as 'nothing names them'
        if not (out / "summary.json").is_file() and next(iter_reports(out), None) is None:
            raise UsageFailure(f"{out} holds no sigpipe report: give the --out folder of a 'sigpipe run'")
    found_any = unreadable_any = False
    for out in outs:
        found, unreadable = files_naming(person, out, review_folders)
        for f in found:
            _say(str(f))
        for f in unreadable:
            _say(f"cannot read {f}: look at it by hand", err=True)
        found_any |= bool(found)
        unreadable_any |= bool(unreadable)
    if unreadable_any:
        click.get_current_context().exit(2)
    if not found_any:
        _say(f"nothing in {', '.join(map(str, outs))} names {person!r}", err=True)
        click.get_current_context().exit(1)


@click.group("cache")
def cache() -> None:
    """sigpipe's cache: the references' embeddings and preprocessed specimen images (biometric data, README,
    The cache), and the verifier's training arrays. Its folder is $SIGPIPE_CACHE, else $XDG_CACHE_HOME/sigpipe,
    else ~/.cache/sigpipe."""
    from sigpipe._ultralytics import cache_dir

    try:
        cache_dir()  # a folder to name at all (an account without a home has none): every subcommand needs one
    except SigpipeError as e:
        raise UsageFailure(str(e)) from e


@cache.command("info")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def cache_info(as_json: bool) -> None:
    """Where the cache is and what it holds."""
    import json

    from sigpipe._ultralytics import cache_dir
    from sigpipe.verifier.gallery import cache_entries, gallery_cache

    gallery = gallery_cache()
    entries = cache_entries(gallery)
    g_files, g_bytes = _tree_size(gallery)
    t_files, t_bytes = _tree_size(cache_dir() / "verifier")
    keys = len({f.name.split("-", 1)[0] for f in entries})
    if as_json:
        click.echo(json.dumps(json_text({"folder": str(cache_dir()),
                               "references": {"folder": str(gallery), "entries": len(entries), "files": g_files,
                                              "bytes": g_bytes, "model_keys": keys},
                               "training": {"folder": str(cache_dir() / "verifier"), "files": t_files,
                                            "bytes": t_bytes}}), indent=2))
        return
    click.echo(f"cache folder: {cache_dir()}")
    click.echo(f"references:   {len(entries)} specimen entries, {_mb(g_bytes)}, of {keys} model/rendering "
               f"combination(s) ({gallery})")
    click.echo(f"training:     {t_files} file(s), {_mb(t_bytes)} ({cache_dir() / 'verifier'})")


@cache.command("prune")
@click.option("--refs", "refs", multiple=True, required=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A references folder the cache serves; repeat for each (entries of specimens in none are removed).")
@click.option("--dry-run", is_flag=True, help="Count what would be removed; remove nothing.")
@click.option("--unused-days", type=click.IntRange(min=1), default=None,
              help="Also remove entries no run has used for this many days, of specimens still in REFS too (after "
                   "an upgrade that changed the models, the old release's entries are never used again).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def cache_prune(refs: tuple[Path, ...], dry_run: bool, unused_days: int | None, as_json: bool) -> None:
    """Remove the cached embeddings and specimen images of specimens no longer in any REFS folder given.

    Deleting a person's folder (or a specimen) from REFS leaves what was cached of it behind; this removes it.
    Give every references folder the cache serves: the entries of specimens in none of them are removed. Safe
    beside a run (a run that misses an entry embeds the specimen again). Exit 0, or 1 when a specimen file could
    not be read (its entry is removed too).
    """
    import json

    from sigpipe.verifier.gallery import gallery_cache, prune_cache

    try:
        result = prune_cache(refs, dry_run=dry_run, unused_days=unused_days)
    except SigpipeError as e:
        raise UsageFailure(str(e)) from e
    if as_json:
        click.echo(json.dumps(json_text({**result.to_dict(), "dry_run": dry_run, "folder": str(gallery_cache())}),
                              indent=2))
    else:
        for f in result.unreadable:
            click.echo(f"unreadable {f}: its cache entry, if any, is removed", err=True)
        verb = "would remove" if dry_run else "removed"
        days = f"{unused_days} day{'s' if unused_days != 1 else ''}"
        unused = f", {result.unused} of them unused for {days}" if unused_days is not None else ""
        click.echo(f"{verb} {result.removed} entries ({_mb(result.removed_bytes)}{unused}) and {result.temporaries} "
                   f"leftover temporaries; kept {result.kept} ({gallery_cache()})")
    if result.unreadable:
        click.get_current_context().exit(1)


@cache.command("clear")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def cache_clear(yes: bool) -> None:
    """Remove the whole cache of references and training arrays (everything is computed again when needed)."""
    import shutil

    from sigpipe._ultralytics import cache_dir
    from sigpipe.verifier.gallery import gallery_cache

    folders = [gallery_cache(), cache_dir() / "verifier"]
    files, size = (sum(x) for x in zip(*(_tree_size(f) for f in folders), strict=True))
    if not yes:
        click.confirm(f"remove {files} file(s), {_mb(size)}, under {cache_dir()}?", abort=True)
    for f in folders:
        shutil.rmtree(f, ignore_errors=True)
    left = sum(_tree_size(f)[0] for f in folders)
    click.echo(f"removed {files - left} file(s), {_mb(size)}" + (f"; {left} could not be removed" if left else ""))
    if left:
        click.get_current_context().exit(1)


@click.group("x9")
def x9() -> None:
    """Image cash letters (X9.37 files of cheque images): split them into documents for 'sigpipe run'."""


@x9.command("split")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for OUT/<file>-<sha256 prefix>/<item sequence number>.tif (.png, .jpg: each cheque's "
                   "front, as the file holds it) and OUT/claims.csv (document, account, amount, serial, ...; a later "
                   "split into OUT adds its rows).")
def x9_split(files: tuple[Path, ...], out: Path) -> None:
    """Write the front image of each cheque in FILES (X9.37 / X9.100-187 image cash letters, EBCDIC or ASCII) as
    a document, and a claims CSV naming the account each is drawn on: then 'sigpipe run OUT --refs REFS --claims
    OUT/claims.csv --signatories CARDS.csv'. Exit 1 when a file or an item could not be read (the others are
    written)."""
    from sigpipe._cli import fail
    from sigpipe.pipeline.x9 import split_files

    try:
        result = split_files(files, out)
    except SigpipeError as e:
        raise fail(e) from e
    for why in result.failed + result.skipped:
        _say(printable(f"not written: {why}"), err=True)
    for note in result.notes:
        _say(printable(f"note: {note}"), err=True)
    _say(f"{len(result.documents)} cheque image(s) from {len(files)} file(s) "
         f"-> {out}" + (f"; claims by account: {result.claims}" if result.claims else ""))
    if result.failed or result.skipped:
        sys.exit(1)
