"""Walking the folders sigpipe reads (SCANS, a person's folder in REFS): one rule for both."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path


def visible_files(root: Path, unreadable: Callable[[OSError], None]) -> Iterator[Path]:
    """Every file under ``root`` whose name and folders are not hidden (``.`` first), broken links included (the
    caller tells them apart); linked folders are followed, each real folder once (a link back up the tree is not
    walked again). A folder that cannot be listed goes to ``unreadable`` (its ``filename`` names it) instead of being
    skipped without a word."""
    seen: set[str] = set()
    for folder, dirs, names in os.walk(root, followlinks=True, onerror=unreadable):
        real = os.path.realpath(folder)
        if real in seen:
            dirs.clear()
            continue
        seen.add(real)
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        yield from (Path(folder, name) for name in names if not name.startswith("."))
