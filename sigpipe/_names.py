"""File names as text for reports, claims and CSV files."""

from __future__ import annotations

import os
import re
from typing import Any


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
        try:
            return os.fsencode(name).decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:  # a surrogate no file name's byte gives (\ud800): written as its escape
            return name.encode("utf-8", "backslashreplace").decode("ascii")


def json_text(value: Any) -> Any:
    """``value`` (what a report or summary is written from: dicts, lists, strings, numbers) with every string, key
    or value, :func:`readable`. A path typed on the command line or found in a folder name that is not UTF-8 (a
    Latin-1 share) reaches messages as lone surrogates, which ``json.dumps`` writes as ``\\udce9``: strict
    consumers refuse such a file (PostgreSQL's ``jsonb``: "Unicode low surrogate must follow a high surrogate"), and
    the name was already written as ``\\xe9`` in the same file's other fields."""
    if isinstance(value, str):  # an OSError's message quotes the path as repr() does: "\\udce9" in plain ASCII
        return _REPR_BYTE.sub(r"\\x\1", readable(value))
    if isinstance(value, dict):
        return {json_text(k): json_text(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_text(v) for v in value]
    return value


_ESCAPED_BYTE = re.compile(rb"\\x([0-9a-f]{2})")
_REPR_BYTE = re.compile(r"\\udc([89a-f][0-9a-f])")  # a byte of a file name not UTF-8, as repr() writes it


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
