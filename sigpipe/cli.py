"""The ``sigpipe`` command: a thin click group. Each subpackage owns its commands; this file only wires them.

Exit codes: 0 success, 1 some documents/items failed, 2 usage or input errors (a missing model, or one that does not
match its manifest, included; :func:`sigpipe._cli.fail`), 130 / 143 for ``sigpipe run`` stopped by SIGINT / SIGTERM.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import TextIO

import click

from sigpipe import __version__
from sigpipe.datasets.cli import datasets
from sigpipe.detector.cli import detector
from sigpipe.errors import SigpipeError
from sigpipe.pipeline.cli import cache, check_refs, orientation, review, run, x9
from sigpipe.pipeline.progress import StderrHandler, printable, silence
from sigpipe.verifier.cli import verifier, verify


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sigpipe")
@click.option("-v", "--verbose", count=True, help="More logging on stderr: sigpipe's debug lines.")
@click.option("-q", "--quiet", count=True, help="Less logging on stderr: -q warnings and errors, -qq errors only.")
def cli(verbose: int, quiet: int) -> None:
    """Find handwritten signatures on scanned documents and verify them."""
    level = (logging.WARNING if quiet == 1 else logging.ERROR) if quiet else logging.INFO
    logging.basicConfig(level=level, handlers=[StderrHandler()])
    if verbose and not quiet:  # sigpipe's own debug lines; libraries (PIL dumps every image tag) stay at INFO
        logging.getLogger("sigpipe").setLevel(logging.DEBUG)


cli.add_command(run)
cli.add_command(verify)
cli.add_command(check_refs)
cli.add_command(review)
cli.add_command(cache)
cli.add_command(verifier)
cli.add_command(detector)
cli.add_command(datasets)
cli.add_command(orientation)
cli.add_command(x9)


def _settle(stream: TextIO | None) -> None:
    """Flush ``stream``, silencing it if it cannot be written: lines left in its buffer by a write that failed (a full
    disk, a reader gone) would otherwise fail the interpreter's flush at exit and turn the command's exit code, which
    cron reads, into 120."""
    if stream is None:  # no such stream at all (a daemon started with its descriptors closed)
        return
    try:
        stream.flush()
    except OSError:
        silence(stream)


def main() -> None:
    try:
        cli.main(standalone_mode=True)
    except SigpipeError as e:  # library errors that escaped a command: a clear message, no traceback
        with contextlib.suppress(OSError):
            click.echo(printable(f"Error: {e}"), err=True)
        sys.exit(2)
    finally:
        _settle(sys.stdout)
        _settle(sys.stderr)
