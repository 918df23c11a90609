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


def model_load_error(what: str, e: Exception) -> BaseException:
    """The error to raise for a model that failed to load with ``e``: a :class:`ModelError` naming ``what``, or the
    Ctrl-C / SIGTERM (``KeyboardInterrupt``, ``SystemExit``) that ``e`` was raised from: a library turns one raised
    inside it into an error of its own (onnxruntime's import: "initialization failed"), and a run stopped while it
    loaded its models said that the model could not be loaded, exit 2 instead of 143."""
    seen: set[int] = set()
    cause: BaseException | None = e
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, (KeyboardInterrupt, SystemExit)):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return ModelError(f"{what}: {e}")
