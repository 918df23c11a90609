"""Bundled model files and their manifests: one place for each model's facts.

Every model ``<file>`` ships with ``<file>.json`` (its manifest): name and tag, sha256 of the file, architecture,
preprocessing, thresholds, training data and measured figures. Loading checks the hash before anything reads the
file, so a tampered or truncated weights file is refused with a clear error.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from sigpipe.errors import ModelError

log = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).resolve().parent

# Registry of the bundled models: role -> manifest file name in this folder.
BUNDLED = {
    "verifier": "verifier.pt.json",
    "detector": "detector.pt.json",
    "orientation": "orientation.pt.json",
}


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    from sigpipe._files import open_regular

    h = hashlib.sha256()
    with open_regular(path) as f:  # a FIFO planted in place of a scan would block the run for ever
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@functools.cache
def new_file_mode() -> int:
    """The mode ``open()`` gives a new file: 0666 less the process's umask (for files written through ``mkstemp``,
    whose 0600 would hide them from the accounts the umask lets read them)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def sha256_path(path: Path) -> str:
    """sha256 of a model file, or of a model folder (e.g. OpenVINO): over the sorted ``name  sha256`` lines of its
    files, hidden ones (``.DS_Store`` left by a copy on a Mac) left out."""
    if path.is_dir():
        h = hashlib.sha256()
        for f in sorted(p for p in path.rglob("*")
                        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)):
            h.update(f"{f.relative_to(path).as_posix()}  {sha256_file(f)}\n".encode())
        return h.hexdigest()
    return sha256_file(path)


# Manifest keys that record how a model was made and what was measured, at any depth: they change nothing the model
# computes, so they are left out of :func:`settings_digest` (and ``settings_sha256`` is the digest itself).
RECORD_KEYS = frozenset({"training", "benchmarks", "calibration", "tta_calibration", "validation", "measured",
                         "settings_sha256"})


def settings_digest(data: dict[str, Any]) -> str:
    """sha256 of what in a manifest decides a model's results: every field but :data:`RECORD_KEYS`, canonical JSON."""
    def settings(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: settings(x) for k, x in v.items() if k not in RECORD_KEYS}
        return [settings(x) for x in v] if isinstance(v, list) else v

    return hashlib.sha256(json.dumps(settings(data), sort_keys=True).encode()).hexdigest()


def manifest_text(data: dict[str, Any], keep_mark: bool = False) -> str:
    """A manifest's file content, stamped with its :func:`settings_digest` (``settings_sha256``), so that a manifest
    edited afterwards (a threshold, a confidence, the preprocessing) is known for one (:attr:`Manifest.edited`).
    Every writer of manifests goes through here.

    Args:
        keep_mark: ``data`` is an edited manifest's (:attr:`Manifest.edited`) that a tool rewrites (an export adding
            a backend): its stamp is kept, so it stays an edited one instead of passing for the model it was copied
            from (a re-run would keep every report of that model).
    """
    if keep_mark and "settings_sha256" in data:
        return json.dumps(data, indent=2) + "\n"
    return json.dumps({**data, "settings_sha256": settings_digest(data)}, indent=2) + "\n"


@dataclass(frozen=True)
class Manifest:
    """A model's manifest. ``data`` keeps every field; the typed ones are those code relies on."""

    name: str
    tag: str
    file: str
    sha256: str
    architecture: str
    path: Path
    data: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def weights_path(self) -> Path:
        return self.path.parent / self.file

    @cached_property
    def edited(self) -> bool:
        """The manifest's settings differ from those it was written with (``settings_sha256``; a manifest written
        before that stamp, or built in code, has none and is never taken for edited)."""
        recorded = self.data.get("settings_sha256")
        return recorded is not None and recorded != settings_digest(self.data)

    @cached_property
    def ident(self) -> str:
        """``name.tag sha256-prefix`` as written into reports; an :attr:`edited` manifest's gets `` edited-<digest
        prefix>``, so that reports, re-runs and caches do not take it for the model it was copied from."""
        base = f"{self.name}.{self.tag} {self.sha256[:12]}"
        return f"{base} edited-{settings_digest(self.data)[:8]}" if self.edited else base

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    @classmethod
    def load(cls, path: str | Path) -> Manifest:
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"model manifest not found: {path}")
        try:
            data = json.loads(path.read_text())
            m = cls(
                name=data["name"], tag=data["tag"], file=data["file"], sha256=data["sha256"],
                architecture=data["architecture"], path=path, data=data,
            )
        except (OSError, UnicodeDecodeError) as e:  # unreadable, or binary (e.g. the .pt itself)
            hint = f"; pass its manifest {path}.json" if path.suffix == ".pt" else ""
            raise ModelError(f"{path} is not a model manifest (<weights>.json){hint}") from e
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ModelError(f"invalid model manifest {path}: {e}") from e
        if m.edited:
            log.warning("%s was edited after it was written (its settings differ from those stamped in it): reports "
                        "name the model %r, and reports of the model it was copied from are redone", path, m.ident)
        return m

    def verify(self) -> Path:
        """Check the weights file exists and matches the recorded sha256; return its path."""
        wp = self.weights_path
        if not wp.is_file():
            raise ModelError(
                f"weights file for {self.name}.{self.tag} is missing: {wp} "
                "(reinstall sigpipe, or train a model and pass its manifest)"
            )
        digest = sha256_file(wp)
        if digest != self.sha256:
            raise ModelError(
                f"weights file {wp} does not match its manifest (sha256 {digest[:12]}..., expected "
                f"{self.sha256[:12]}...): refusing to load a modified or corrupt model"
            )
        return wp

    def export_path(self, backend: str, create_with: str, label: str | None = None) -> Path:
        """The export recorded as ``backends[backend]`` (relative to the manifest), checked against
        ``backend_sha256[backend]``.

        Args:
            backend: key in ``backends``, e.g. ``"onnx"``.
            create_with: the command that makes such an export (named in the error when there is none).
            label: how errors name the backend (default: ``backend``).

        Raises:
            ModelError: no such export recorded, its file is missing, or it does not match its recorded sha256.
        """
        label = label or backend
        backends = self.get("backends") or {}
        if backend not in backends:
            raise ModelError(f"{self.name}.{self.tag} has no {label} export (available: {['pt', *sorted(backends)]}); "
                             f"create one with '{create_with}'")
        path = self.path.parent / backends[backend]
        if not path.exists():
            raise ModelError(f"{label} export of {self.name}.{self.tag} is missing: {path}")
        expected = (self.get("backend_sha256") or {}).get(backend)
        if expected is None or sha256_path(path) != expected:
            raise ModelError(f"{label} export {path} does not match its manifest sha256: refusing to load a modified "
                             "or corrupt model")
        return path


def write_manifest(weights: Path, data: dict[str, Any]) -> Path:
    """Write ``weights.json`` beside ``weights`` with the file name and sha256 filled in."""
    data = dict(data)
    data["file"] = weights.name
    data["sha256"] = sha256_file(weights)
    out = weights.with_name(weights.name + ".json")
    out.write_text(manifest_text(data))
    return out


def bundled_manifest(role: str) -> Manifest:
    """The manifest of a bundled model (a role of :data:`BUNDLED`), hash-checked."""
    if role not in BUNDLED:
        raise ModelError(f"unknown bundled model role {role!r}; known: {sorted(BUNDLED)}")
    path = WEIGHTS_DIR / BUNDLED[role]
    if not path.is_file():
        raise ModelError(
            f"no bundled {role} model in this installation ({path} is missing). "
            f"Train one with 'sigpipe {role} train' and pass it with --{role}-weights, or install a sigpipe "
            f"release that ships {role} weights."
        )
    m = Manifest.load(path)
    m.verify()
    return m
