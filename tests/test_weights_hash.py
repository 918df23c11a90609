"""Model files and manifests: the sha256 of a model folder (an OpenVINO export), and the settings stamp that tells an
edited manifest from the one a tool wrote."""

import json
import logging
from pathlib import Path

import pytest

from sigpipe.weights import (
    BUNDLED,
    WEIGHTS_DIR,
    Manifest,
    bundled_manifest,
    settings_digest,
    sha256_path,
    write_manifest,
)


def test_a_folder_hash_ignores_hidden_files_and_nothing_else(tmp_path: Path):
    model = tmp_path / "model_openvino"
    model.mkdir()
    (model / "model.xml").write_text("<net/>")
    (model / "model.bin").write_bytes(b"\0\1\2")
    digest = sha256_path(model)
    (model / ".DS_Store").write_bytes(b"mac")  # left by a copy on a Mac
    (model / ".meta").mkdir()
    (model / ".meta" / "x").write_text("x")
    assert sha256_path(model) == digest
    (model / "notes.txt").write_text("a file the export did not write")
    assert sha256_path(model) != digest
    (model / "notes.txt").unlink()
    (model / "model.bin").write_bytes(b"\0\1\3")
    assert sha256_path(model) != digest


def _copy_manifest(tmp_path: Path, role: str, **changes: object) -> Manifest:
    data = json.loads((WEIGHTS_DIR / BUNDLED[role]).read_text())
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            data[section] = {**data[section], field: value}
        else:
            data[section] = value
    path = tmp_path / f"{role}-{len(list(tmp_path.iterdir()))}.json"
    path.write_text(json.dumps(data, indent=2))
    return Manifest.load(path)


@pytest.mark.parametrize("role", sorted(BUNDLED))
def test_the_bundled_manifests_are_stamped_with_their_settings(role: str):
    m = bundled_manifest(role)
    assert m.get("settings_sha256") == settings_digest(m.data)
    assert not m.edited and m.ident == f"{m.name}.{m.tag} {m.sha256[:12]}"


def test_a_hand_edited_setting_gives_the_model_another_ident(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    """A copy of the bundled detector's manifest with another confidence finds other signatures: reports, re-runs and
    the references' cache must not take it for the bundled model (they know models by their ident)."""
    bundled = bundled_manifest("detector")
    with caplog.at_level(logging.WARNING, logger="sigpipe.weights"):
        edited = _copy_manifest(tmp_path, "detector", conf=0.6)
    assert edited.edited and edited.ident.startswith(bundled.ident + " edited-") and edited.ident != bundled.ident
    assert "was edited after it was written" in caplog.text
    # another edit, another ident; the verifier's thresholds and preprocessing alike
    assert _copy_manifest(tmp_path, "detector", conf=0.5).ident not in (edited.ident, bundled.ident)
    verifier = bundled_manifest("verifier")
    assert _copy_manifest(tmp_path, "verifier", preprocess__blur=5).ident != verifier.ident
    thresholds = {k: v + 0.1 for k, v in verifier["decision"]["thresholds"].items()}
    assert _copy_manifest(tmp_path, "verifier", decision__thresholds=thresholds).ident != verifier.ident
    # what was measured and how it was trained change nothing the model computes
    same = _copy_manifest(tmp_path, "detector", benchmarks={}, training={"notes": "x"}, calibration__conf=0.9)
    assert not same.edited and same.ident == bundled.ident


def test_write_manifest_stamps_what_it_writes(tmp_path: Path):
    weights = tmp_path / "model.pt"
    weights.write_bytes(b"weights")
    m = Manifest.load(write_manifest(weights, {"name": "m", "tag": "t", "architecture": "a", "conf": 0.3}))
    assert not m.edited and m.ident == f"m.t {m.sha256[:12]}"
    raw = json.loads(m.path.read_text())
    m.path.write_text(json.dumps({**raw, "conf": 0.4}))
    assert Manifest.load(m.path).edited
    # a manifest written before the stamp (none recorded) is never taken for edited
    m.path.write_text(json.dumps({k: v for k, v in raw.items() if k != "settings_sha256"} | {"conf": 0.4}))
    assert not Manifest.load(m.path).edited


def test_a_manifest_given_for_the_other_model_says_which_it_is():
    """A data scientist's swapped flags (--weights <detector manifest>, --detector-weights <verifier manifest>)."""
    from sigpipe.detector import SignatureDetector
    from sigpipe.errors import ModelError
    from sigpipe.verifier.verifier import Verifier

    with pytest.raises(ModelError, match=r"detector.pt.json is a detector's manifest \(yolov8n-signature"):
        Verifier.from_manifest(WEIGHTS_DIR / "detector.pt.json")
    with pytest.raises(ModelError, match=r"verifier.pt.json is a verifier's manifest \(signet-triplet"):
        SignatureDetector.from_manifest(WEIGHTS_DIR / "verifier.pt.json")


# The settings each shipped model was released with, by ident. Reports name models by ident and a re-run keeps a
# report whose models' idents are unchanged, so a shipped manifest whose settings change (a threshold, max_det, an
# export) needs a new tag: detector v6 once went from max_det 50 to 300 under the same ident, and reports of pages
# with more than 50 signatures would have been kept. A new shipped model adds its line here.
RELEASED_SETTINGS = {
    "yolov8n-signature.v7 d64d2f471367": "6a67cb09b5e7e79b",
    "yolov8n-signature.v8 d64d2f471367": "5fd2223141e4a6e4",  # v7 + the second look on patterned paper
    "yolov8n-signature.v9 d64d2f471367": "fb8985c7173ed895",  # v8, strongly patterned pages looked at stretched first
    "yolov8n-signature.v10 d64d2f471367": "a78a7e47068fd09b",  # v9 + bitonal cheques through median filters
    "signet-triplet.v10 e3339d618842": "44ac4933f95ebe58",  # v9 + the copy check
    "signet-triplet.v11 e3339d618842": "257ad8dae6dd4f5b",  # v10 + signatures through a printed line
    "signet-triplet.v12 677797966155": "e3160e7a4a517a1a",  # member 1 on 3 document views, recalibrated
    "orient-cnn.v2 50db121d3e14": "61cee818011a2f7b",
}


@pytest.mark.parametrize("role", sorted(BUNDLED))
def test_a_shipped_model_s_settings_change_only_with_its_ident(role: str):
    m = bundled_manifest(role)
    assert m.ident in RELEASED_SETTINGS, f"a new shipped model, {m.ident}: add it to RELEASED_SETTINGS"
    assert settings_digest(m.data).startswith(RELEASED_SETTINGS[m.ident]), (
        f"the settings of {m.ident} changed since it was released: give it a new tag (reports of the old settings "
        "would be kept under the same ident)")
