"""Warnings raised while sigpipe reads a document, kept per thread: collected for that document's log line, or
ignored where sigpipe's own check applies (PIL's decompression-bomb warning, under sigpipe's pixel limit).

``warnings.catch_warnings`` cannot do this where a predictor serves several threads: it swaps the process's filters
and ``showwarning`` in and out, so two threads' overlapping blocks left the other's list in place for the life of
the process (a service's own warnings vanished into it, and its memory grew) and left an ``ignore`` filter behind.
Here the filters are left alone and ``warnings.showwarning`` is extended once, while it is Python's default, to hand a
warning raised inside a scope to that thread's scope; anything else is shown as before. A host that installed its
own ``showwarning`` (``logging.captureWarnings``) keeps it, and gets the warnings as it would without sigpipe.

What is shown at all is the filters' choice: by default Python shows a warning once per place in the code, so a
batch that wants each document's warnings (``sigpipe run``) sets the action ``always`` for its own process.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_local = threading.local()
_install = threading.Lock()


def _scopes() -> list[tuple[list[warnings.WarningMessage] | None, tuple[type[Warning], ...]]]:
    stack = getattr(_local, "scopes", None)
    if stack is None:
        stack = _local.scopes = []
    return stack


def _show(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None,
          line: str | None = None) -> None:
    if file is None:  # raised, not printed to a file by hand
        for said, ignore in reversed(_scopes()):
            if issubclass(category, ignore):
                return
            if said is not None:
                said.append(warnings.WarningMessage(message, category, filename, lineno, file, line))
                return
    _default(message, category, filename, lineno, file, line)


_default = warnings.showwarning  # what _show stands in for: Python's own (it replaces nothing else)


@contextmanager
def _scope(said: list[warnings.WarningMessage] | None, ignore: tuple[type[Warning], ...]) -> Iterator[None]:
    global _default
    with _install:
        current = warnings.showwarning
        if current is not _show and current is getattr(warnings, "_showwarning_orig", None):
            _default, warnings.showwarning = current, _show
    stack = _scopes()
    stack.append((said, ignore))
    try:
        yield
    finally:
        stack.pop()


@contextmanager
def collected() -> Iterator[list[warnings.WarningMessage]]:
    """The warnings this thread raises inside the block, in a list, instead of shown."""
    said: list[warnings.WarningMessage] = []
    with _scope(said, ()):
        yield said


@contextmanager
def ignoring(*categories: type[Warning]) -> Iterator[None]:
    """Drop the warnings of ``categories`` this thread raises inside the block (others go on as before)."""
    with _scope(None, categories):
        yield
