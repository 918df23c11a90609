"""The ``sigpipe`` command: a thin click group. Each subpackage owns its commands; this file only wires them.

Exit codes: 0 success, 1 some documents/items failed, 2 usage or input errors.
"""

from __future__ import annotations

import logging
import sys

import click

from sigpipe import __version__
from sigpipe.datasets.cli import datasets
from sigpipe.detector.cli import detector
from sigpipe.errors import SigpipeError
from sigpipe.pipeline.cli import run
from sigpipe.verifier.cli import verifier, verify


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sigpipe")
@click.option("-v", "--verbose", count=True, help="More logging on stderr (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """Find handwritten signatures on scanned documents and verify them."""
    level = logging.WARNING - 10 * min(verbose, 2) if verbose else logging.INFO
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")


cli.add_command(run)
cli.add_command(verify)
cli.add_command(verifier)
cli.add_command(detector)
cli.add_command(datasets)


def main() -> None:
    try:
        cli.main(standalone_mode=True)
    except SigpipeError as e:  # library errors that escaped a command: a clear message, no traceback
        click.echo(f"Error: {e}", err=True)
        sys.exit(2)
