"""Walking the folders sigpipe reads (SCANS, a person's folder in REFS): one rule for both; opening regular files."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


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


def open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    """``path`` opened for reading in binary, refusing anything but a regular file: opening a FIFO (a scan swapped
    for one in a drop folder, a link to one) blocks until a writer comes, for ever, where no timeout applies; a
    device (``/dev/zero``) never ends.

    Raises:
        OSError: the file cannot be opened, or is not a regular file (``errno.EINVAL``).
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file (a FIFO, device or socket)", str(path))
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


@contextmanager
def private_copy(path: str | os.PathLike[str]) -> Iterator[tuple[Path, str]]:
    """A copy of the regular file ``path``, under its own name in a new folder of this process's (mode 0700, removed
    after), and the sha256 of exactly the bytes copied. Read by path, a document could be one file when hashed and
    another when decoded (a link re-pointed, a file rewritten and put back between the reads), and its verdict
    would be recorded under the other's sha256; the copy is read once, and is what every reader then opens.

    Raises:
        OSError: the file cannot be read or copied, or is not a regular file.
    """
    with open_regular(path) as src, tempfile.TemporaryDirectory(prefix="sigpipe-doc-") as folder:
        copy = Path(folder) / Path(path).name
        h = hashlib.sha256()
        with open(copy, "xb") as out:
            while block := src.read(1 << 20):
                h.update(block)
                out.write(block)
        yield copy, h.hexdigest()
