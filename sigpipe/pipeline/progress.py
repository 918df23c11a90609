"""Progress on stderr: one updating line on a terminal, plain lines (at most one per ``interval``) otherwise; and what
keeps any output on stderr harmless: :func:`printable` text, :func:`silence` for a stream that cannot be written."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import time
from typing import IO, TextIO

# what a terminal or a log viewer acts on instead of showing: C0 controls but newline and tab, DEL, C1 controls, and
# the Unicode line and paragraph separators
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def printable(text: str) -> str:
    """``text`` with its control characters written as ``ascii()`` writes them (``\\x1b``, ``\\r``), newlines and
    tabs kept: file and person names come from untrusted folders and CSVs, and one holding a carriage return or an
    ANSI escape sequence could otherwise erase lines of stderr or forge log lines in front of the operator.

    >>> printable("b\\r\\x1b[2Kok\\n")
    'b\\\\r\\\\x1b[2Kok\\n'
    """
    return _CONTROLS.sub(lambda m: ascii(m.group())[1:-1], text)


def silence(stream: IO[str]) -> None:
    """Point ``stream``'s file descriptor at os.devnull after a write to it failed (a full disk, a reader gone:
    ``| head``), as the Python docs on SIGPIPE advise. What the stream still buffers would otherwise fail every later
    flush: the one multiprocessing makes before it starts a worker (the batch would die), and the interpreter's at
    exit (exit code 120 instead of the run's). A stream with no file descriptor is left as it is."""
    with contextlib.suppress(OSError, ValueError):  # ValueError: no descriptor (io.UnsupportedOperation), or closed
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, stream.fileno())
        finally:
            os.close(devnull)


class PrintableFormatter(logging.Formatter):
    """Log lines with their control characters escaped (:func:`printable`): the one place every record bound for
    stderr goes through, whichever logger (sigpipe's or a library's) carries a file or person name from SCANS, REFS
    or the claims CSV. A record's message is one line (its newlines written ``\\n``: a file named
    ``"x.png\\nINFO sigpipe...: 0 document(s) forged"`` would otherwise print a forged log line); the traceback
    after it keeps its lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        return super().formatMessage(record).replace("\n", "\\n")

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record))


class StderrHandler(logging.StreamHandler[TextIO]):
    """The log handler on stderr: :class:`PrintableFormatter` lines, and a stderr that cannot be written (a full disk,
    a reader gone: ``2>&1 | head``) silenced at its first failure: logging's default would print its own traceback to
    that same stderr on every line, and leave there what later flushes (multiprocessing's before it starts a worker,
    the interpreter's at exit) fail on."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self.setFormatter(PrintableFormatter("%(levelname)s %(name)s: %(message)s"))

    def handleError(self, record: logging.LogRecord) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            silence(self.stream)
        else:
            super().handleError(record)


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


class Progress:
    """Documents done, pages, pages/s and ETA of a batch.

    Args:
        total: documents to process in this run (skipped ones excluded).
        stream: where to write (default ``sys.stderr``).
        enabled: False writes nothing.
        interval: on a non-terminal stream, the least seconds between two lines (the last line always comes).
    """

    def __init__(self, total: int, stream: TextIO | None = None, enabled: bool = True,
                 interval: float = 2.0) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.enabled = enabled and total > 0 and self.stream is not None  # None: started with stderr closed
        self.interval = interval
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.done = 0
        self.failed = 0
        self.pages = 0
        self.t0 = time.monotonic()
        self._last = -1e9

    def update(self, pages: int, failed: bool = False) -> None:
        """One more document finished (``pages`` rendered; ``failed`` if its report is an error)."""
        self.done += 1
        self.pages += pages
        self.failed += int(failed)
        now = time.monotonic()
        if not self.enabled:
            return
        if self.tty or now - self._last >= self.interval or self.done >= self.total:
            self._last = now
            self._write(self.line(now))

    def line(self, now: float | None = None) -> str:
        """The progress text, e.g. ``12/200 documents (1 failed), 30 pages, 2.4 pages/s, ETA 1m20s``."""
        elapsed = (now if now is not None else time.monotonic()) - self.t0
        rate = self.pages / elapsed if elapsed > 0 else 0.0
        failed = f" ({self.failed} failed)" if self.failed else ""
        text = f"{self.done}/{self.total} documents{failed}, {self.pages} pages, {rate:.1f} pages/s"
        if 0 < self.done < self.total and elapsed > 0:
            text += f", ETA {_duration(elapsed / self.done * (self.total - self.done))}"
        elif self.done >= self.total:
            text += f", {_duration(elapsed)}"
        return text

    def _write(self, text: str) -> None:
        """Write one progress line; a stream that fails (a full disk, a reader gone: ``2>&1 | head``) turns progress
        off for the rest of the run, and is silenced, instead of stopping it: progress is a display, the reports are
        the work."""
        text = printable(text)  # counts only today: escaped all the same, should a document name join them
        try:
            if self.tty:
                end = "\n" if self.done >= self.total else ""
                self.stream.write(f"\r\x1b[2K{text}{end}")
            else:
                self.stream.write(f"sigpipe: {text}\n")
            self.stream.flush()
        except OSError:
            self.enabled = False
            silence(self.stream)
