"""sha256 of a model folder (an OpenVINO export): what a copy may add without the model being refused."""

from pathlib import Path

from sigpipe.weights import sha256_path


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
