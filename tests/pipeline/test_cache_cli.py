"""``sigpipe cache``: what is cached of the references (biometric data) can be seen, pruned and cleared."""

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from pipeline_doubles import SIG_A, SIG_B, save_image, scribble

from sigpipe.cli import cli
from sigpipe.verifier.gallery import Gallery
from sigpipe.verifier.verifier import Verifier


@pytest.fixture
def cached(tmp_path: Path, verifier_manifest: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """REFS of alice (2 specimens) and bob (1), enrolled into a cache under $SIGPIPE_CACHE."""
    monkeypatch.setenv("SIGPIPE_CACHE", str(tmp_path / "cache"))
    refs = tmp_path / "refs"
    save_image(refs / "alice" / "a1.png", scribble(SIG_A))
    save_image(refs / "alice" / "2019" / "a2.png", scribble(SIG_A + 100))
    save_image(refs / "bob" / "b1.png", scribble(SIG_B))
    Gallery.enroll(refs, Verifier.from_manifest(verifier_manifest))
    gallery = tmp_path / "cache" / "gallery"
    assert len(list(gallery.glob("*.npz"))) == 3
    return {"refs": refs, "gallery": gallery, "cache": tmp_path / "cache"}


def invoke(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(cli, list(args))
    return r.exit_code, r.output


def test_prune_removes_what_is_cached_of_specimens_no_longer_in_refs(cached: dict[str, Path],
                                                                     verifier_manifest: Path):
    refs, gallery = cached["refs"], cached["gallery"]
    shutil.rmtree(refs / "bob")  # bob has left: his specimen's embedding and image must go too
    old_tmp = gallery / f"{'0' * 12}-{'a' * 64}.123.tmp.npz"  # left by a killed enrolment
    fresh_tmp = gallery / f"{'0' * 12}-{'b' * 64}.124.tmp.npz"  # being written right now
    for f in (old_tmp, fresh_tmp):
        f.write_bytes(b"PK")
    os.utime(old_tmp, (time.time() - 7200, time.time() - 7200))
    (gallery / "notes.txt").write_text("not a cache entry\n")
    code, out = invoke("cache", "prune", "--refs", str(refs), "--dry-run", "--json")
    assert code == 0 and json.loads(out) | {"folder": ""} == {
        "kept": 2, "removed": 1, "unused": 0, "removed_bytes": json.loads(out)["removed_bytes"], "temporaries": 1,
        "unreadable": [], "dry_run": True, "folder": ""}
    assert len(list(gallery.glob("*.npz"))) == 5  # a dry run removes nothing
    code, out = invoke("cache", "prune", "--refs", str(refs))
    assert code == 0 and out.startswith("removed 1 entries") and "kept 2" in out
    assert sorted(f.name for f in gallery.iterdir() if not f.name.endswith(".npz") or "tmp" in f.name) == [
        fresh_tmp.name, "notes.txt"]
    # alice is enrolled from the cache as before; nothing of bob's is left to load
    g = Gallery.enroll(refs, Verifier.from_manifest(verifier_manifest))
    assert g.people == ["alice"] and len(list(gallery.glob("*-*[0-9a-f].npz"))) == 2
    # an entry is kept while its file is in any of the folders given
    other = cached["refs"].parent / "other-refs"
    save_image(other / "bob" / "b1.png", scribble(SIG_B))
    Gallery.enroll(other, Verifier.from_manifest(verifier_manifest))
    code, out = invoke("cache", "prune", "--refs", str(refs), "--refs", str(other), "--json")
    assert code == 0 and (json.loads(out)["kept"], json.loads(out)["removed"]) == (3, 0)


def test_prune_removes_entries_no_run_has_used_for_so_many_days(cached: dict[str, Path], verifier_manifest: Path):
    """After an upgrade that changed the models, the old release's entries (biometric data) are never read again,
    but their specimens are still in REFS, so a plain prune keeps them."""
    refs, gallery = cached["refs"], cached["gallery"]
    month_ago = time.time() - 40 * 86400
    entries = sorted(gallery.glob("*.npz"))
    old_release = [gallery / f"{'f' * 12}{e.name[12:]}" for e in entries]  # the same specimens, another model
    for e, old in zip(entries, old_release, strict=True):
        shutil.copy(e, old)
        os.utime(e, (month_ago, month_ago))
        os.utime(old, (month_ago, month_ago))
    Gallery.enroll(refs, Verifier.from_manifest(verifier_manifest))  # tonight's run reads the current entries
    assert all(time.time() - e.stat().st_mtime < 3600 for e in entries)
    code, out = invoke("cache", "prune", "--refs", str(refs), "--json")
    assert code == 0 and (json.loads(out)["kept"], json.loads(out)["removed"]) == (6, 0)
    code, out = invoke("cache", "prune", "--refs", str(refs), "--unused-days", "30")
    assert code == 0 and out.startswith("removed 3 entries") and "3 of them unused for 30 days" in out
    assert sorted(gallery.glob("*.npz")) == entries


def test_prune_names_specimens_it_cannot_read_and_exits_1(cached: dict[str, Path],
                                                          monkeypatch: pytest.MonkeyPatch):
    import sigpipe.verifier.gallery as gallery_module

    real = gallery_module.sha256_file

    def failing(path: Path) -> str:
        if path.name == "b1.png":
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(gallery_module, "sha256_file", failing)
    code, out = invoke("cache", "prune", "--refs", str(cached["refs"]), "--json")
    result = json.loads(out)
    assert code == 1 and result["unreadable"] == [str(cached["refs"] / "bob" / "b1.png")] and result["removed"] == 1


def test_info_and_clear(cached: dict[str, Path]):
    cache = cached["cache"]
    (cache / "verifier").mkdir()
    (cache / "verifier" / "cedar-0123.npz").write_bytes(b"x" * 100)
    (cache / "ultralytics").mkdir()
    (cache / "ultralytics" / "settings.json").write_text("{}")
    (cached["gallery"] / f"{'0' * 12}-{'a' * 64}.77.tmp.npz").write_bytes(b"PK")  # neither is an entry
    (cached["gallery"] / "mine.npz").write_bytes(b"PK")
    code, out = invoke("cache", "info", "--json")
    info = json.loads(out)
    assert code == 0 and info["folder"] == str(cache)
    assert (info["references"]["entries"], info["references"]["model_keys"]) == (3, 1)
    assert (info["training"]["files"], info["training"]["bytes"]) == (1, 100)
    code, out = invoke("cache", "clear")  # asks first: no answer, nothing removed
    assert code == 1 and len(list(cached["gallery"].glob("*.npz"))) == 5
    code, out = invoke("cache", "clear", "--yes")
    assert code == 0 and out.startswith("removed 6 file(s)")
    assert not cached["gallery"].exists() and not (cache / "verifier").exists()
    assert (cache / "ultralytics" / "settings.json").is_file()  # Ultralytics' settings and fonts stay


def test_prune_refuses_a_folder_without_person_folders(cached: dict[str, Path], tmp_path: Path):
    one_person = cached["refs"] / "alice"  # a mistake that would remove every entry
    for folder in (one_person / "2019", tmp_path / "typo"):
        shutil.rmtree(folder, ignore_errors=True)
    (tmp_path / "typo").mkdir()
    for refs in (one_person, tmp_path / "typo"):
        code, out = invoke("cache", "prune", "--refs", str(refs))
        assert code == 2 and "holds no person folder" in out
    assert len(list(cached["gallery"].glob("*.npz"))) == 3


def test_an_account_without_a_home_gets_no_cache_and_a_clear_message(tmp_path: Path, verifier_manifest: Path,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     caplog: pytest.LogCaptureFixture):
    """An arbitrary uid in a container (no passwd entry, no HOME): Path.home() raises RuntimeError."""
    for key in ("SIGPIPE_CACHE", "XDG_CACHE_HOME", "HOME"):
        monkeypatch.delenv(key, raising=False)

    def no_home() -> Path:
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(Path, "home", staticmethod(no_home))
    refs = tmp_path / "refs"
    save_image(refs / "alice" / "a1.png", scribble(SIG_A))
    with caplog.at_level("WARNING"):
        g = Gallery.enroll(refs, Verifier.from_manifest(verifier_manifest))
    assert set(g.embeddings) == {"alice"}  # enrolled all the same, without a cache
    assert any("set SIGPIPE_CACHE" in w and "without caching" in w for w in g.warnings)
    r = CliRunner().invoke(cli, ["cache", "info"])
    assert r.exit_code == 2 and "no home folder; set SIGPIPE_CACHE" in r.output
    assert not isinstance(r.exception, RuntimeError)
