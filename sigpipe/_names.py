"""File names as text for reports, claims and CSV files."""

from __future__ import annotations

import os


def readable(name: str) -> str:
    """``name`` as valid Unicode: bytes of a file name that are not UTF-8 (a Latin-1 name from an old share), which
    Python holds as lone surrogates, are written as ``\\xNN`` escapes. Valid names are returned unchanged.

    >>> readable(os.fsdecode(b"caf\\xe9.png"))
    'caf\\\\xe9.png'
    """
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return os.fsencode(name).decode("utf-8", "backslashreplace")
