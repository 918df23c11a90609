"""Move the verifier's operating point to a target false-accept rate, measured on the user's own labelled batch.

The shipped thresholds sit at the equal-error point of the validation writers (README, "Verifier"). A bank that wants
at most 1% of forgeries accepted labels a batch it has run (``sigpipe run ... --claims``): it adds a ``truth`` column
(``genuine`` / ``forged``) to ``OUT/summary.csv``. :func:`choose_offset` then picks the offset ``d`` to add to every
threshold so that at most that share of the labelled forgeries stays within its threshold, and
:func:`shifted_manifest` writes a verifier with those thresholds under a new tag (so earlier reports are recomputed
on a re-run). Each row's ``distance - threshold`` is what the decision compares with 0, so the offset applies to
every person and every K alike; the score keeps its values (the logistic is shifted with the thresholds).
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sigpipe._onnx import BF16_SUFFIX
from sigpipe.errors import InputError, ModelError
from sigpipe.pipeline.claims import header_delimiter
from sigpipe.weights import Manifest, manifest_text, sha256_path

TRUTH_VALUES = {"genuine": True, "forged": False}


class LabelsError(InputError):
    """A labelled summary CSV that cannot be used (missing columns, unknown truth values, too few labels)."""


@dataclass(frozen=True)
class OperatingPoint:
    """The offset for a target FAR and what it gives on the labelled batch.

    Attributes:
        offset: add to every threshold (``genuine`` iff ``distance <= threshold + offset``).
        target_far: the false-accept rate asked for.
        far, frr: measured on the labelled signatures at ``offset`` (``frr``: genuine ones rejected).
        far_before, frr_before: the same at the current thresholds (offset 0).
        genuine, forged: labelled signatures of each kind.
        resolvable: whether ``forged`` is large enough to measure ``target_far`` (at least ``1 / target_far``
            forgeries); when not, the offset only guarantees that no labelled forgery is accepted.
    """

    offset: float
    target_far: float
    far: float
    frr: float
    far_before: float
    frr_before: float
    genuine: int
    forged: int
    resolvable: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_labelled(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Margins ``distance - threshold`` of the labelled rows of a ``summary.csv`` with a ``truth`` column.

    Rows with an empty ``truth`` (or without a distance: no signature, ``no_reference``) are skipped. The file may
    be separated by ``;`` or tabs and have decimal commas, as spreadsheets save CSV in some locales.

    Returns:
        ``(genuine_margins, forged_margins)``.

    Raises:
        LabelsError: unreadable file, no ``truth``/``distance``/``threshold`` column, a truth other than
            ``genuine`` or ``forged``, or a labelled row without a finite distance and threshold.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise LabelsError(f"cannot read labelled summary {path}: {e}") from e
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), "")
    rows = csv.DictReader(lines, delimiter=header_delimiter(first))
    cols = {c.strip().lower(): c for c in rows.fieldnames or []}
    missing = [c for c in ("truth", "distance", "threshold") if c not in cols]
    if missing:
        raise LabelsError(f"{path}: no column {', '.join(missing)}; label a run's summary.csv by adding a column "
                          "'truth' with genuine or forged for each signature whose truth you know")
    margins: dict[bool, list[float]] = {True: [], False: []}
    for row in rows:
        lineno = rows.line_num
        truth = (row.get(cols["truth"]) or "").strip().lower()
        if not truth:
            continue
        if truth not in TRUTH_VALUES:
            raise LabelsError(f"{path}, line {lineno}: truth must be genuine or forged, got {truth!r}")
        cells = [(row[cols[c]] or "").strip() for c in ("distance", "threshold")]
        try:  # a decimal comma (0,41) as some locales' spreadsheets write numbers
            d, t = (float(c.replace(",", ".")) for c in cells)
        except ValueError:
            d = t = math.nan
        if not (math.isfinite(d) and math.isfinite(t)):
            raise LabelsError(f"{path}, line {lineno}: labelled {truth} but has no distance (no signature, or no "
                              f"references for its identity): distance {cells[0]!r}, threshold {cells[1]!r}")
        margins[TRUTH_VALUES[truth]].append(d - t)
    return np.array(margins[True]), np.array(margins[False])


def choose_offset(genuine: np.ndarray, forged: np.ndarray, target_far: float) -> OperatingPoint:
    """An offset at which at most ``target_far`` of the forgeries are accepted (``margin <= offset``): halfway
    between the first forgery it must reject and the highest labelled margin below that one (just below that
    forgery if there is none), so that it does not sit on a measured value.

    Raises:
        LabelsError: no labelled forgeries or genuine signatures, or ``target_far`` outside (0, 1).
    """
    if not 0 < target_far < 1:
        raise LabelsError(f"the target false-accept rate must be between 0 and 1, got {target_far}")
    if not forged.size or not genuine.size:
        raise LabelsError(f"need labelled genuine and forged signatures, got {genuine.size} genuine and "
                          f"{forged.size} forged")
    f = np.sort(forged)
    allowed = min(math.floor(target_far * f.size + 1e-9), f.size - 1)  # forgeries that may stay accepted
    upper = float(f[allowed])  # the first forgery that must be rejected: offset < upper
    below = [float(x) for x in (*genuine, *f[:allowed]) if x < upper]
    offset = (max(below) + upper) / 2 if below else upper - 1e-6

    def rates(d: float) -> tuple[float, float]:
        return float(np.mean(forged <= d)), float(np.mean(genuine > d))

    far, frr = rates(offset)
    far0, frr0 = rates(0.0)
    return OperatingPoint(offset, target_far, far, frr, far0, frr0, int(genuine.size), int(forged.size),
                          forged.size >= 1 / target_far)


def shifted_manifest(manifest: Manifest, offset: float, tag: str, out: Path) -> Path:
    """Write ``out/<weights file>.json``: ``manifest`` with ``offset`` added to every threshold, the score's
    logistic shifted with them, and ``tag``; the files it names are copied beside it (hash-checked).

    Raises:
        ModelError: the tag is unchanged, ``out`` is the manifest's own folder, or a file fails its hash check.
        InputError: ``out`` cannot be created or written (a regular file on its path, no permission, a full disk).
    """
    if tag == manifest.tag:
        raise ModelError(f"the shifted model needs a tag other than {manifest.tag!r}: its decisions differ")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # a regular file on the path, no permission
        raise InputError(f"cannot create the folder {out}: {e.strerror or e}") from e
    if out.resolve() == manifest.path.parent.resolve():
        raise ModelError(f"write the shifted model to another folder than {out}: it would overwrite its source")
    data = json.loads(json.dumps(manifest.data))
    # the weights and their exports through the manifest's own checks; the second stage's files alike
    backends = data.get("backends") or {}
    sources = [manifest.verify(), *(manifest.export_path(b, "sigpipe verifier export") for b in backends)]
    stage = data.get("second_stage") or {}
    for key, digest in (("file", "sha256"), ("onnx", "onnx_sha256")):
        if key in stage:
            src = manifest.path.parent / stage[key]
            if not src.is_file() or sha256_path(src) != stage.get(digest):
                raise ModelError(f"second-stage file {src} is missing or does not match its manifest sha256")
            sources.append(src)
    dec = data["decision"]
    dec["thresholds"] = {k: float(v) + offset for k, v in dec["thresholds"].items()}
    # score = 1 / (1 + exp(a (distance - threshold) + b)): keep it unchanged when the thresholds move by offset
    dec["score_b"] = float(dec["score_b"]) + float(dec["score_a"]) * offset
    data["tag"] = tag
    data["operating_point"] = {"from": manifest.ident, "offset": offset}
    data["benchmarks"] = {}
    path = out / f"{manifest.file}.json"
    try:
        for src in sources:
            dst = out / src.relative_to(manifest.path.parent)  # the names the manifest gives, relative to it
            if src.is_dir():
                shutil.copytree(src, dst, dirs_exist_ok=True)
            else:
                shutil.copyfile(src, dst)
        path.write_text(manifest_text(data))
    except OSError as e:  # a full disk
        raise InputError(f"cannot write the shifted model to {out}: {e}") from e
    return path


def check_same_verifier(labelled: str | Path, manifest: Manifest, chosen: bool = False) -> None:
    """Refuse margins measured with another verifier: ``summary.json`` beside the labelled CSV names the run's
    models. Without it (a CSV copied out of its run's OUT) nothing says which verifier measured the margins: refused
    unless the caller ``chosen`` the manifest (``--weights``), since thresholds shifted on another verifier's margins
    miss the target (a helper's copied CSV, from a fine-tuned verifier, gave the bundled one a promised FAR of 4.5%
    and a measured 25%).

    Raises:
        LabelsError: the run's verifier is not ``manifest``'s, or it cannot be told and ``chosen`` is False.
    """
    summary = Path(labelled).with_name("summary.json")
    try:
        used = json.loads(summary.read_text())["models"]["verifier"]
    except (OSError, ValueError, KeyError, TypeError):
        if chosen:
            return
        raise LabelsError(f"no readable summary.json beside {labelled}: which verifier measured its distances cannot "
                          "be told. Keep the labelled CSV in its run's OUT, or pass that run's verifier manifest "
                          "with --weights (the bundled one if the run used it)") from None
    if used.removesuffix(BF16_SUFFIX) != manifest.ident:  # margins measured in bf16 hold for f32 within ~0.005
        raise LabelsError(f"{labelled} was produced by the verifier {used!r} ({summary}), not {manifest.ident!r}: "
                          "pass that verifier's manifest with --weights")
