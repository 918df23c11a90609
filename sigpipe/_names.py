"""File names as text for reports, claims and CSV files."""

from __future__ import annotations

import os
import re


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


_ESCAPED_BYTE = re.compile(rb"\\x([0-9a-f]{2})")


def from_readable(name: str) -> str:
    """The file name that :func:`readable` wrote as ``name``: its ``\\xNN`` escapes back to the bytes they stand for
    (a name without escapes is returned unchanged). A name that really holds the text ``\\xe9`` reads the same, so
    look for the name as it is first.

    >>> from_readable(readable(os.fsdecode(b"caf\\xe9.png"))) == os.fsdecode(b"caf\\xe9.png")
    True
    """
    if "\\x" not in name:
        return name
    return os.fsdecode(_ESCAPED_BYTE.sub(lambda m: bytes([int(m.group(1), 16)]), name.encode("utf-8")))
