"""The ``sigpipe`` command: a thin click group. Each subpackage owns its commands; this file only wires them.

Exit codes: 0 success, 1 some documents/items failed, 2 usage or input errors (a missing model, or one that does not
match its manifest, included; :func:`sigpipe._cli.fail`), 130 / 143 / 129 for ``sigpipe run`` stopped by SIGINT /
SIGTERM / SIGHUP.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from typing import TextIO

import click

from sigpipe import __version__
from sigpipe.datasets.cli import datasets
from sigpipe.detector.cli import detector
from sigpipe.errors import SigpipeError
from sigpipe.pipeline.cli import cache, check_refs, find_person, orientation, review, run, x9
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
cli.add_command(find_person)
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


UTF8_REEXEC = "SIGPIPE_UTF8_REEXEC"  # set in the environment of the re-executed process: never a second time


def utf8_file_names() -> None:
    """Run in Python's UTF-8 mode when the locale's encoding is another (a scheduler agent under ``LANG=en_US`` or
    ``en_US.ISO-8859-1``), by executing the same command again in UTF-8 mode (``-X utf8``), the same process id; not
    a script read from stdin, which the second run would find consumed (exit 2, saying what to do).

    File and folder names are otherwise decoded with the locale's encoding while claims CSVs, signatory tables and
    reports are UTF-8: "José cheque.png" on disk read as "JosÃ© cheque.png" matched no claim, the cheque was judged
    one-to-many, and a forgery claimed by one customer came out ``genuine`` as another's signature. Names on disk
    that are not UTF-8 (an old Latin-1 share) are then read as README says (``\\xNN`` escapes)."""
    if sys.flags.utf8_mode or sys.getfilesystemencoding().lower().replace("-", "") == "utf8":
        return
    why = None
    if os.environ.get(UTF8_REEXEC):  # the second time: never a loop
        why = "restarting in UTF-8 mode did not take"
    elif not _repeatable(sys.orig_argv[1:]):
        why = "a script read from stdin cannot be run again"
    else:
        argv = [sys.executable, "-X", "utf8", *sys.orig_argv[1:]]  # -X: also under -E and -I, which ignore the
        env = {**os.environ, "PYTHONUTF8": "1", UTF8_REEXEC: "1"}  # environment; PYTHONUTF8 for the workers
        try:
            _settle(sys.stdout)
            _settle(sys.stderr)
            os.execve(sys.executable, argv, env)
        except OSError as e:  # pragma: no cover - an interpreter that cannot be executed again
            why = f"it could not be restarted ({e})"
    click.echo(f"Error: file names would be read as {sys.getfilesystemencoding()}, not UTF-8 as claims files and "
               f"reports are, and {why}: run Python with -X utf8 (or PYTHONUTF8=1), or under a UTF-8 locale "
               "(LANG=C.UTF-8)", err=True)
    sys.exit(2)


def _repeatable(args: list[str]) -> bool:
    """Whether the interpreter's arguments (after its name) run a script, ``-c`` code or ``-m`` module that a second
    run would find again: not a script read from stdin (``python -``, ``python < job.py``)."""
    with_value = {"-W", "-X", "--check-hash-based-pycs"}
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in ("-c", "-m") or (arg.startswith(("-c", "-m")) and not arg.startswith("--")):
            return True
        elif arg in with_value:
            skip = True
        elif arg == "-":
            return False
        elif not arg.startswith("-"):
            return True  # the script
    return False  # no script: read from stdin


def standard_streams() -> None:
    """Open os.devnull on whichever of the descriptors 0, 1 and 2 the process was started without (a daemon's closed
    descriptors, ``2>&-``), and give Python a stream for each.

    A closed descriptor is otherwise the number the next file opened gets: a native library's message for stderr
    (libpng's warnings, OpenVINO's) would be written into a report, a document's private copy or the lock file, and
    Python's ``sys.stderr`` is None, on which the progress line stopped the run after its first document."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)  # the lowest free number: this one, as 0, 1, 2 go in order
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    if sys.stdin is None:
        sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115 - the process's own, for its lifetime
    if sys.stdout is None:
        sys.stdout = open(1, "w", encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115
    if sys.stderr is None:
        sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", buffering=1,  # noqa: SIM115
                          closefd=False)


def _stopped_early(signum: int, _frame: object) -> None:
    """SIGTERM before a command has set its own handler, where sigpipe is pid 1 (``docker stop`` of a container
    without ``--init``): the kernel drops a signal pid 1 does not handle, and a run went on until SIGKILL."""
    sys.exit(128 + signum)


def main() -> None:
    if os.getpid() == 1:  # a container's init: a signal with no handler is dropped, not the end of the process
        signal.signal(signal.SIGTERM, _stopped_early)  # (`sigpipe run` sets its own once it starts)
    utf8_file_names()
    standard_streams()
    try:
        cli.main(standalone_mode=True)
    except SigpipeError as e:  # library errors that escaped a command: a clear message, no traceback
        with contextlib.suppress(OSError):
            click.echo(printable(f"Error: {e}"), err=True)
        sys.exit(2)
    finally:
        _settle(sys.stdout)
        _settle(sys.stderr)
