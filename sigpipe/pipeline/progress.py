"""Progress on stderr: one updating line on a terminal, plain lines (at most one per ``interval``) otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO


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
        self.enabled = enabled and total > 0
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
        if self.tty:
            end = "\n" if self.done >= self.total else ""
            self.stream.write(f"\r\x1b[2K{text}{end}")
        else:
            self.stream.write(f"sigpipe: {text}\n")
        self.stream.flush()
