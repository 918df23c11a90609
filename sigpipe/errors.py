"""Exceptions with a stable ``kind`` used in reports and CLI exit codes."""

from __future__ import annotations


class SigpipeError(Exception):
    """Base class. ``kind`` is a short machine-readable tag written into reports."""

    kind = "error"


class InputError(SigpipeError):
    """A user-supplied file or folder is missing, unreadable or malformed."""

    kind = "bad_input"


class ModelError(SigpipeError):
    """A bundled or user-supplied model is missing, tampered with or inconsistent with its manifest."""

    kind = "model"
