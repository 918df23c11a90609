"""What the subpackages' click commands share: the input-error exception (exit 2) and the check of an output folder."""

from __future__ import annotations

import os
from pathlib import Path

import click

from sigpipe.errors import SigpipeError


class BadInput(click.ClickException):
    """A missing or malformed input: one line on stderr, exit code 2 (as usage errors; 1 is for failed items)."""

    exit_code = 2


def out_folder(path: Path, option: str = "--out") -> None:
    """Refuse an output folder that cannot be created or written (a regular file on its path, no permission), before
    any data is read or model loaded; it is not created here.

    Raises:
        BadInput: ``path`` or a folder above it is a file, or the nearest existing folder is not writable.
    """
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                raise BadInput(f"cannot create {option} {path}: {p} is a file, not a folder")
            if not os.access(p, os.W_OK | os.X_OK):
                raise BadInput(f"cannot create {option} {path}: no permission to write in {p}")
            return


def fail(e: Exception) -> click.ClickException:
    """The click exception for an error a command caught: sigpipe's own errors (bad input, a model missing or not
    matching its manifest) and bad values (``ValueError``) exit 2 as ``sigpipe run`` does for them; anything else 1."""
    return BadInput(str(e)) if isinstance(e, SigpipeError | ValueError) else click.ClickException(str(e))
