"""The gallery's embedding cache is an optimisation: an unusable cache folder, a failing write or a damaged entry never
costs a specimen or the run."""

import errno
import json
import logging
import unicodedata
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from sigpipe.errors import InputError
from sigpipe.verifier.gallery import Gallery
from sigpipe.verifier.verifier import Verifier
from sigpipe.weights import new_file_mode


def make_refs(tiny_corpus: Path, root: Path, people: dict[str, str]) -> Path:
    """``root/<folder>/`` with the first two genuine specimens of each corpus writer, for ``{folder: writer}``."""
    for folder, writer in people.items():
        (root / folder).mkdir(parents=True)
        for f in sorted((tiny_corpus / writer / "genuine").glob("*.png"))[:2]:
            (root / folder / f.name).write_bytes(f.read_bytes())
    return root


def test_an_unusable_cache_folder_is_warned_about_and_enrolment_goes_on(tiny_verifier: Path, tiny_corpus: Path,
                                                                        tmp_path: Path):
    refs = make_refs(tiny_corpus, tmp_path / "refs", {"alice": "001", "bob": "002"})
    v = Verifier.from_manifest(tiny_verifier)
    (tmp_path / "afile").write_text("")
    g = Gallery.enroll(refs, v, cache=tmp_path / "afile" / "cache")  # under a regular file: cannot be created
    assert g.people == ["alice", "bob"] and not g.errors
    assert len(g.warnings) == 1 and str(tmp_path / "afile" / "cache") in g.warnings[0]
    cached = Gallery.enroll(refs, v, cache=tmp_path / "cache")
    for p in g.people:
        np.testing.assert_array_equal(g.embeddings[p], cached.embeddings[p])


def test_a_failing_cache_write_is_warned_about_once(tiny_verifier: Path, tiny_corpus: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch):
    refs = make_refs(tiny_corpus, tmp_path / "refs", {"alice": "001", "bob": "002"})
    v = Verifier.from_manifest(tiny_verifier)
    cache = tmp_path / "cache"
    Gallery.enroll(refs, v, cache=cache)  # alice's and bob's entries written
    make_refs(tiny_corpus, refs, {"carol": "003"})

    def disk_full(file: Any, **arrays: np.ndarray) -> None:
        file.write(b"PK")  # a partial temporary file
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", disk_full)
    g = Gallery.enroll(refs, v, cache=cache)
    assert g.people == ["alice", "bob", "carol"] and len(g.embeddings["carol"]) == 2 and not g.errors
    assert len(g.warnings) == 1 and str(cache) in g.warnings[0] and "No space" in g.warnings[0]
    assert len(list(cache.iterdir())) == 4  # alice's and bob's entries: no temporary file left, nothing of carol's


@pytest.mark.parametrize("damage", [b"", b"garbage\n", b"PK\x03\x04truncated"])
def test_a_damaged_cache_entry_is_embedded_again_and_rewritten(damage: bytes, tiny_verifier: Path, tiny_corpus: Path,
                                                               tmp_path: Path, caplog: pytest.LogCaptureFixture):
    refs = make_refs(tiny_corpus, tmp_path / "refs", {"alice": "001", "bob": "002"})
    v = Verifier.from_manifest(tiny_verifier)
    cache = tmp_path / "cache"
    first = Gallery.enroll(refs, v, cache=cache)
    entries = sorted(cache.glob("*.npz"))
    entries[0].write_bytes(damage)  # what a crash or a bad disk leaves
    with caplog.at_level(logging.INFO, logger="sigpipe.verifier.gallery"):
        g = Gallery.enroll(refs, v, cache=cache)
    assert not g.errors and not g.warnings and not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("unreadable" in r.getMessage() for r in caplog.records)
    for p in first.people:
        np.testing.assert_allclose(g.embeddings[p], first.embeddings[p], atol=1e-6)
    with np.load(entries[0]) as z:  # rewritten
        assert z["embedding"].shape[1] == 16


def test_person_folders_differing_only_in_unicode_form_are_one_person_with_a_warning(tiny_verifier: Path,
                                                                                     tiny_corpus: Path,
                                                                                     tmp_path: Path):
    nfc, nfd = unicodedata.normalize("NFC", "Zoë"), unicodedata.normalize("NFD", "Zoë")
    refs = make_refs(tiny_corpus, tmp_path / "refs", {nfc: "001", nfd: "002", "laura": "003", "Laura": "003"})
    if len({p.name for p in refs.iterdir()}) < 4:
        pytest.skip("this file system normalises names")
    g = Gallery.enroll(refs, Verifier.from_manifest(tiny_verifier), cache=tmp_path / "cache")
    assert g.people == sorted(["Laura", "laura", nfc]) and len(g.embeddings[nfc]) == 4
    # laura and Laura hold the same files (two people, told apart by case): that is warned about too
    assert len(g.warnings) == 2
    assert ascii(nfc) in g.warnings[0] and ascii(nfd) in g.warnings[0] and "one person" in g.warnings[0]
    assert g.warnings[1].startswith("2 specimen(s) enrolled for 2 people, 'Laura', 'laura', are the same files")


def test_cached_specimens_follow_the_manifest_preprocessing(tiny_verifier: Path, tiny_corpus: Path, tmp_path: Path):
    import json

    refs = make_refs(tiny_corpus, tmp_path / "refs", {"alice": "001"})
    cache = tmp_path / "cache"
    before = Gallery.enroll(refs, Verifier.from_manifest(tiny_verifier), cache=cache)
    m = json.loads(tiny_verifier.read_text())  # edited by hand, same name, tag and weights
    m["preprocess"]["margin"] = 20
    tiny_verifier.write_text(json.dumps(m))
    assert Verifier.from_manifest(tiny_verifier).ident.startswith(before.verifier.ident + " edited-")  # its stamp
    del m["settings_sha256"]  # a manifest written before manifests were stamped: the same ident
    tiny_verifier.write_text(json.dumps(m))
    v = Verifier.from_manifest(tiny_verifier)
    after = Gallery.enroll(refs, v, cache=cache)
    fresh = Gallery.enroll(refs, v, cache=tmp_path / "fresh")
    assert v.ident == before.verifier.ident  # the ident cannot tell; the cache key can
    assert not np.array_equal(after.images["alice"], before.images["alice"])
    np.testing.assert_array_equal(after.images["alice"], fresh.images["alice"])


def test_enrolment_limited_to_some_people_reads_no_other_folder(tiny_verifier: Path, tiny_corpus: Path,
                                                               tmp_path: Path):
    refs = make_refs(tiny_corpus, tmp_path / "refs", {"alice": "001", "bob": "002", "Zoë": "003"})
    (refs / "alice" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")  # would be an error if read
    v = Verifier.from_manifest(tiny_verifier)
    nfd = unicodedata.normalize("NFD", "Zoë")
    g = Gallery.enroll(refs, v, cache=tmp_path / "cache", people=["bob", nfd, "nobody"])
    assert g.people == ["Zoë", "bob"] and not g.errors
    assert g.folders == ("Zoë", "alice", "bob")  # every person folder, enrolled or not
    everybody = Gallery.enroll(refs, v, cache=tmp_path / "cache")
    assert everybody.people == ["Zoë", "alice", "bob"] and list(everybody.errors) == [str(refs / "alice" /
                                                                                          "corrupt.png")]
    np.testing.assert_array_equal(g.embeddings["bob"], everybody.embeddings["bob"])
    assert g.fingerprint(["bob"]) == everybody.fingerprint(["bob"])  # reports stay up to date either way
    # nobody wanted has a folder: loose files in REFS are still the mistake of giving one person's folder
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "a.png").write_bytes((refs / "bob" / next(iter(sorted(p.name for p in (refs / "bob").iterdir())))
                                   ).read_bytes())
    with pytest.raises(InputError, match="no person folders"):
        Gallery.enroll(loose, v, cache=tmp_path / "cache", people=["bob"])
    assert Gallery.enroll(refs, v, cache=tmp_path / "cache", people=[]).people == []


def test_a_person_folder_without_usable_specimens_is_no_usage_error(tiny_verifier: Path, tmp_path: Path):
    refs = tmp_path / "refs"
    (refs / "alice").mkdir(parents=True)
    (refs / "alice" / "blank.png").write_bytes(cv2.imencode(".png", np.full((60, 200), 250, np.uint8))[1].tobytes())
    (refs / "stray.png").write_bytes((refs / "alice" / "blank.png").read_bytes())
    g = Gallery.enroll(refs, Verifier.from_manifest(tiny_verifier), cache=tmp_path / "cache")
    assert g.people == [] and set(g.errors) == {str(refs / "alice" / "blank.png"), str(refs / "stray.png")}


def test_a_cache_folder_enrolment_creates_is_its_user_s_alone(tiny_verifier: Path, tiny_corpus: Path,
                                                             tmp_path: Path):
    """The cache holds biometric data (embeddings, preprocessed specimens): on a shared server other accounts must
    not read it. A folder that exists keeps the permissions its owner gave it."""
    import os
    import stat

    refs = make_refs(tiny_corpus, tmp_path / "refs", {"alice": "001"})
    v = Verifier.from_manifest(tiny_verifier)
    old = os.umask(0o022)
    try:
        Gallery.enroll(refs, v, cache=tmp_path / "new" / "gallery")
        shared = tmp_path / "shared"
        shared.mkdir(mode=0o750)
        Gallery.enroll(refs, v, cache=shared)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new" / "gallery").stat().st_mode) == 0o700
    assert stat.S_IMODE(shared.stat().st_mode) == 0o750 and any(shared.iterdir())


def test_a_cache_another_account_could_write_is_not_used(tiny_verifier: Path, tiny_corpus: Path, tmp_path: Path):
    """An entry is trusted as the embedding of the specimen whose sha256 names it: a security review pre-created a
    world-writable cache, swapped the victim's entries for the forger's own signature, and a forged cheque came out
    genuine without a word. Such a cache is not used (a warning); a team's cache, owned by REFS' owner, is."""
    import os
    import stat

    refs = make_refs(tiny_corpus, tmp_path / "refs", {"alice": "001"})
    v = Verifier.from_manifest(tiny_verifier)
    planted = tmp_path / "planted"
    planted.mkdir()
    planted.chmod(0o777)
    g = Gallery.enroll(refs, v, cache=planted)
    assert g.people == ["alice"] and not any(planted.iterdir())  # embedded, nothing cached there
    assert len(g.warnings) == 1 and f"not using the embedding cache {planted}: {planted} is writable by every " \
        "account" in g.warnings[0]
    held = tmp_path / "held"  # a folder of ours inside one every account may write (not sticky): replaceable
    held.mkdir()
    held.chmod(0o777)
    g = Gallery.enroll(refs, v, cache=held / "gallery")
    assert "is writable by every account" in g.warnings[0] and not any((held / "gallery").iterdir())
    held.chmod(0o777 | stat.S_ISVTX)  # sticky, as /tmp is: others cannot replace our folder in it
    g = Gallery.enroll(refs, v, cache=held / "gallery")
    assert not g.warnings and any((held / "gallery").iterdir())
    if os.getuid() == 0:  # the tests run as root here: another account's folder, as an attacker would create it
        theirs = tmp_path / "theirs"
        theirs.mkdir(mode=0o755)
        os.chown(theirs, 65534, 65534)
        g = Gallery.enroll(refs, v, cache=theirs)
        assert "belongs to another account (uid 65534)" in g.warnings[0] and not any(theirs.iterdir())
        os.chown(refs, 65534, 65534)  # ... unless that account owns REFS too: a team's shared cache
        theirs.chmod(0o750)  # (its group's, not every account's: that would be warned about)
        g = Gallery.enroll(refs, v, cache=theirs)
        assert not g.warnings
        os.chown(refs, 0, 0)


def test_the_cache_is_checked_and_used_by_its_real_path(tiny_verifier: Path, tiny_corpus: Path, tmp_path: Path):
    """A security test pointed a link in /tmp at a folder of root's, let the run check it, and re-pointed the link
    at its own folder: the entries went there, and a second night read the forger's. The cache is now checked, and
    used, by its real path, every folder above it included."""
    import os
    import stat

    refs = make_refs(tiny_corpus, tmp_path / "refs", {"alice": "001"})
    v = Verifier.from_manifest(tiny_verifier)
    pub = tmp_path / "pub"  # as /tmp: every account may write it, sticky
    pub.mkdir()
    pub.chmod(0o777 | stat.S_ISVTX)
    real, elsewhere = tmp_path / "real", tmp_path / "elsewhere"
    real.mkdir()
    elsewhere.mkdir()
    link = pub / "sigpipe-cache"
    link.symlink_to(real)
    g = Gallery.enroll(refs, v, cache=link / "gallery")
    assert not g.warnings and any((real / "gallery").iterdir())
    from sigpipe import _files

    checked = _files.untrusted_folder

    def flipped(folder: Path, owners: Any) -> str | None:  # the link re-pointed right after the check
        why = checked(folder, owners)
        link.unlink()
        link.symlink_to(elsewhere)
        return why

    for f in (real / "gallery").iterdir():
        f.unlink()
    _files.untrusted_folder = flipped  # type: ignore[assignment]
    try:
        g = Gallery.enroll(refs, v, cache=link / "gallery")
    finally:
        _files.untrusted_folder = checked
    assert not g.warnings and any((real / "gallery").iterdir()) and not (elsewhere / "gallery").exists()
    link.unlink()  # re-pointed for good: the next enrolment checks, and uses, where it leads now
    link.symlink_to(elsewhere)
    g = Gallery.enroll(refs, v, cache=link / "gallery")
    assert not g.warnings and any((elsewhere / "gallery").iterdir())
    if os.getuid() == 0:  # a folder above the cache that another account owns can replace it: not trusted
        os.chown(elsewhere, 65534, 65534)
        g = Gallery.enroll(refs, v, cache=link / "gallery")
        assert f"{elsewhere} belongs to another account (uid 65534)" in g.warnings[0]
        os.chown(pub, 65534, 65534)  # a sticky folder's owner may rename what is in it: not trusted either
        g = Gallery.enroll(refs, v, cache=pub / "mine")
        assert f"{pub} belongs to another account (uid 65534)" in g.warnings[0]


def test_cache_entries_are_written_through_new_private_files(tiny_verifier: Path, tiny_corpus: Path,
                                                            tmp_path: Path):
    """The temporary an entry is written to was named after the pid, so a link planted under that name (a shared
    cache) made enrolment write the embeddings and specimen image wherever it pointed."""
    import os
    import stat

    refs = make_refs(tiny_corpus, tmp_path / "refs", {"alice": "001"})
    cache, decoy = tmp_path / "cache", tmp_path / "decoy"
    v = Verifier.from_manifest(tiny_verifier)
    Gallery.enroll(refs, v, cache=tmp_path / "scratch")  # the entries' names, to plant links beside them
    cache.mkdir()
    decoy.write_text("precious")
    for entry in (tmp_path / "scratch").iterdir():
        for pid in range(os.getpid() - 2, os.getpid() + 3):  # where the temporary went: its name held the pid
            (cache / f"{entry.stem}.{pid}.tmp.npz").symlink_to(decoy)
    old = os.umask(0o002)  # a team's cache: entries as readable as a plain write under the umask makes them
    try:
        new_file_mode.cache_clear()
        g = Gallery.enroll(refs, v, cache=cache)
    finally:
        os.umask(old)
        new_file_mode.cache_clear()
    assert decoy.read_text() == "precious" and g.embeddings["alice"].shape[0] > 0
    entries = [f for f in cache.iterdir() if not f.is_symlink()]
    assert entries and all(f.name.endswith(".npz") and ".tmp." not in f.name for f in entries)
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o664 for f in entries)


def test_entries_another_account_cannot_read_are_embedded_again_with_one_warning(
        tiny_verifier: Path, tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    refs = make_refs(tiny_corpus, tmp_path / "refs", {"alice": "001", "bob": "002"})
    v = Verifier.from_manifest(tiny_verifier)
    first = Gallery.enroll(refs, v, cache=tmp_path / "cache")

    def denied(*a: object, **k: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(np, "load", denied)
    g = Gallery.enroll(refs, v, cache=tmp_path / "cache")
    assert len(g.warnings) == 1 and "cannot be read (Permission denied)" in g.warnings[0] and not g.errors
    np.testing.assert_allclose(g.embeddings["bob"], first.embeddings["bob"], atol=1e-5)


def test_a_red_dropout_verifier_reads_colour_specimens_by_their_red_channel(tiny_verifier: Path, tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch):
    from sigpipe.verifier.verifier import Verifier
    from sigpipe.weights import manifest_text

    monkeypatch.setenv("SIGPIPE_CACHE", str(tmp_path / "cache"))
    data = json.loads(tiny_verifier.read_text())
    data["preprocess"]["colour"] = "red"
    tiny_verifier.write_text(manifest_text({k: v for k, v in data.items() if k != "settings_sha256"}))
    v = Verifier.from_manifest(tiny_verifier)
    specimen = np.full((120, 320, 3), 245, np.uint8)
    cv2.polylines(specimen, [np.array([[20, 60], [120, 30], [200, 90], [300, 40]], np.int32)], False,
                  (150, 40, 20), 3)
    cv2.circle(specimen, (160, 60), 45, (40, 30, 200), 7)  # a red stamp
    (tmp_path / "refs" / "alice").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "refs" / "alice" / "a.png"), specimen)
    g = Gallery.enroll(tmp_path / "refs", v)
    np.testing.assert_allclose(g.embeddings["alice"], v.embed([specimen[..., 2]]), atol=1e-6)
    assert not np.allclose(g.embeddings["alice"], v.embed([cv2.cvtColor(specimen, cv2.COLOR_BGR2GRAY)]), atol=1e-4)


def test_a_specimen_swapped_while_it_is_enrolled_cannot_poison_the_cache(
        tiny_verifier: Path, tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A specimen hashed by path and then decoded by path again could be another file at the second read (swapped
    in by someone who can write REFS, and put back after): its embedding was cached under the genuine file's
    sha256, and every later run judged the person's signatures against the forger's while REFS looked untouched.
    The bytes decoded are now the bytes hashed, and the entry is filed under theirs."""
    import sigpipe.verifier.gallery as gallery_module

    refs = make_refs(tiny_corpus, tmp_path / "refs", {"alice": "001"})
    genuine = sorted((refs / "alice").iterdir())[0]
    forger = sorted((tiny_corpus / "002" / "genuine").glob("*.png"))[0].read_bytes()
    kept = genuine.read_bytes()
    v = Verifier.from_manifest(tiny_verifier)
    clean = Gallery.enroll(refs, v, cache=tmp_path / "clean")
    real_sha = gallery_module.sha256_file

    def swapped_after_hashing(path: Any) -> str:
        digest = real_sha(path)
        if Path(path) == genuine:
            genuine.write_bytes(forger)  # between the hash and the decoder
        return digest

    monkeypatch.setattr(gallery_module, "sha256_file", swapped_after_hashing)
    Gallery.enroll(refs, v, cache=tmp_path / "cache")
    monkeypatch.undo()
    genuine.write_bytes(kept)  # put back: REFS as it should be
    later = Gallery.enroll(refs, v, cache=tmp_path / "cache")
    np.testing.assert_allclose(later.embeddings["alice"], clean.embeddings["alice"], atol=1e-6)
    assert later.digests["alice"] == clean.digests["alice"]


def test_a_cache_every_account_can_read_is_warned_about(tiny_verifier: Path, tiny_corpus: Path, tmp_path: Path):
    """A gallery folder made before sigpipe created them 0700 (or by hand) kept its 0755: every account could load
    the embeddings and specimen images, unsaid."""
    refs = make_refs(tiny_corpus, tmp_path / "refs", {"alice": "001"})
    v = Verifier.from_manifest(tiny_verifier)
    g = Gallery.enroll(refs, v, cache=tmp_path / "private")
    assert not g.warnings and (tmp_path / "private").stat().st_mode & 0o777 == 0o700
    (tmp_path / "shared").mkdir(mode=0o755)
    (tmp_path / "shared").chmod(0o755)
    g = Gallery.enroll(refs, v, cache=tmp_path / "shared")
    assert len(g.warnings) == 1 and "can be read by every account" in g.warnings[0] and "chmod o-rwx" in g.warnings[0]
    assert g.embeddings["alice"].shape[0] == 2  # used all the same: the warning is for whoever runs it
    (tmp_path / "shared").chmod(0o750)  # a team's group: as its owner chose
    assert not Gallery.enroll(refs, v, cache=tmp_path / "shared").warnings


def test_a_temporary_folder_too_full_for_a_specimen_stops_enrolment(tiny_verifier: Path, tiny_corpus: Path,
                                                                    tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Skipping that specimen with a warning judged the person on the others: a verdict changed, exit 0."""
    import errno as errno_module
    from contextlib import contextmanager

    import sigpipe.verifier.gallery as gallery_module
    from sigpipe._files import CopyError

    @contextmanager
    def full(path: Any, max_bytes: Any = None) -> Any:
        raise CopyError(errno_module.ENOSPC, "No space left on device", "/tmp/x")
        yield

    refs = make_refs(tiny_corpus, tmp_path / "refs", {"alice": "001"})
    monkeypatch.setattr(gallery_module, "private_copy", full)
    with pytest.raises(InputError, match="into the temporary folder .*No space left on device.*set TMPDIR"):
        Gallery.enroll(refs, Verifier.from_manifest(tiny_verifier), cache=tmp_path / "cache")
