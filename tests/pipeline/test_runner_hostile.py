"""The batch under hostile conditions: workers that die as their pool starts, files that change while they are read,
symlinks planted in OUT, reports edited by hand."""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import pytest

from sigpipe.pipeline import runner
from sigpipe.pipeline.report import DocumentInfo, DocumentReport


def _run_batch(batch: dict[str, Path], verifier_manifest: Path) -> Any:
    """``run_batch`` over the ``batch`` fixture with the test doubles."""
    from pipeline_doubles import DoubleModels

    from sigpipe.pipeline.runner import RunConfig, run_batch

    return run_batch(RunConfig(scans=batch["scans"], refs=batch["refs"], out=batch["out"], claims=batch["claims"],
                               cache=batch["cache"], progress=False), DoubleModels(verifier_manifest))


class _BreaksAtSubmit:
    """A pool whose ``submit`` raises BrokenProcessPool on chosen calls (a worker killed while the pool starts its
    second worker), and otherwise runs tasks in a thread."""

    calls = 0

    def __init__(self, break_on: set[int]) -> None:
        self.pool = ThreadPoolExecutor(1)
        self.break_on = break_on

    def submit(self, fn: Any, *args: Any) -> Future[Any]:
        type(self).calls += 1
        if type(self).calls in self.break_on:
            raise BrokenProcessPool("a worker died")
        return self.pool.submit(fn, *args)

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        self.pool.shutdown(wait=wait, cancel_futures=cancel_futures)


def _done(task: runner._Task) -> dict[str, Any]:
    return DocumentReport.success(DocumentInfo(task.name, task.sha256, 1), task.claimed, (), {}).to_dict()


def test_finished_documents_are_not_held_by_the_pool(monkeypatch: pytest.MonkeyPatch):
    """A finished future holds its document's report: the pool loop must let go of it once collected, or the run's
    memory grows with every document of a night (a soak test measured ~9 KB a document with --workers 2)."""
    import gc
    import weakref

    _BreaksAtSubmit.calls = 0
    made: list[weakref.ref[Future[Any]]] = []

    class Tracking(_BreaksAtSubmit):
        def submit(self, fn: Any, *args: Any) -> Future[Any]:
            fut = super().submit(fn, *args)
            made.append(weakref.ref(fut))
            return fut

    monkeypatch.setattr(runner, "_start_pool", lambda *a, **k: Tracking(set()))
    monkeypatch.setattr(runner, "_process", _done)
    tasks = [runner._Task(f"d{i}.png", f"/x/d{i}.png", None, "0" * 64) for i in range(12)]
    init = runner._WorkerInit(None, 1, "", None, None, {}, 20)  # type: ignore[arg-type]
    reports = runner._run_pool(tasks, 2, init)
    for _ in range(9):  # part way through the night, the pool still running
        next(reports)
    gc.collect()
    alive = sum(r() is not None for r in made)
    assert len(made) >= 9 and alive <= 3 + 1  # those in flight (workers + 1), and the one just collected
    assert len(list(reports)) == 3


@pytest.mark.parametrize("break_on", [{2}, {1}, {2, 3}, {3, 5}])
def test_a_pool_breaking_at_submit_loses_no_document(monkeypatch: pytest.MonkeyPatch, break_on: set[int]):
    """A document handed to a pool that broke as it was handed over was in neither queue: it got no report, the
    run exited 0, and the summary counted one document fewer."""
    _BreaksAtSubmit.calls = 0
    monkeypatch.setattr(runner, "_start_pool", lambda *a, **k: _BreaksAtSubmit(break_on))
    monkeypatch.setattr(runner, "_process", _done)
    tasks = [runner._Task(f"d{i}.png", f"/x/d{i}.png", None, "0" * 64) for i in range(5)]
    init = runner._WorkerInit(None, 1, "", None, None, {}, 20)  # type: ignore[arg-type]
    reports = list(runner._run_pool(tasks, 2, init))
    assert sorted(r.document.path for r in reports) == [t.name for t in tasks]
    assert all(r.ok for r in reports)


def test_pools_that_keep_breaking_before_any_document_stop_the_run(monkeypatch: pytest.MonkeyPatch):
    _BreaksAtSubmit.calls = 0
    monkeypatch.setattr(runner, "_start_pool", lambda *a, **k: _BreaksAtSubmit(set(range(1, 100))))
    tasks = [runner._Task("d.png", "/x/d.png", None, "0" * 64)]
    init = runner._WorkerInit(None, 1, "", None, None, {}, 20)  # type: ignore[arg-type]
    with pytest.raises(runner.ModelError, match="keep dying"):
        list(runner._run_pool(tasks, 2, init))


def test_links_planted_in_out_are_not_written_through(tmp_path: Path):
    """A shared or untrusted OUT: a link planted where sigpipe writes its lock or its write probe must not make the
    run overwrite the file it points to."""
    import os

    from sigpipe.pipeline.errors import OutputWriteError
    from sigpipe.pipeline.report import LOCK_FILE, out_lock

    out, decoy = tmp_path / "out", tmp_path / "decoy.txt"
    out.mkdir()
    decoy.write_text("precious")
    (out / LOCK_FILE).symlink_to(decoy)
    with pytest.raises(OutputWriteError, match="symbolic link"):
        with out_lock(out):
            pass
    (out / LOCK_FILE).unlink()
    for pid in range(os.getpid() - 2, os.getpid() + 3):  # where the probe used to go: its name was the pid
        (out / f".sigpipe-write-test-{pid}").symlink_to(decoy)
    runner._check_writable(out)
    with out_lock(out):
        assert (out / LOCK_FILE).read_text().startswith(f"pid {os.getpid()}")
    assert decoy.read_text() == "precious"


def test_the_lock_of_an_out_shared_by_a_group_is_writable_by_the_group(tmp_path: Path):
    """Reports follow the umask (0664 under umask 002, for a group's accounts); the lock was 0644 whatever the
    umask, so the second account of the group could not run into OUT at all (a container audit)."""
    import os
    import stat

    from sigpipe.pipeline.report import LOCK_FILE, out_lock

    old = os.umask(0o002)
    try:
        with out_lock(tmp_path):
            pass
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / LOCK_FILE).stat().st_mode) == 0o664


def test_a_full_disk_when_the_lock_is_written_is_an_output_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A night's own empty OUT on a full disk: the lock's write failed as a traceback at exit and exit 1 (documents
    failed) instead of the one-line output error (exit 2)."""
    import errno
    import os

    from sigpipe.pipeline.errors import OutputWriteError
    from sigpipe.pipeline.report import out_lock

    def full(fd: int, data: bytes, offset: int) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "pwrite", full)
    with pytest.raises(OutputWriteError, match="No space left on device"):
        with out_lock(tmp_path):
            pass
    monkeypatch.undo()
    with out_lock(tmp_path):  # the failed run held nothing
        pass


def test_a_file_replaced_while_it_is_processed_gets_no_verdict(verifier: Any, tmp_path: Path):
    """The sha256 in a report is what its verdict was judged on: a scan swapped while it was read (a forged cheque
    for a genuine one, swapped back after the run) must not leave a verdict under the first file's hash, which
    re-runs would keep."""
    from pipeline_doubles import InkBlobDetector, page_with, save_image, scribble

    from sigpipe.pipeline.flow import SignaturePredictor
    from sigpipe.verifier.gallery import Gallery
    from sigpipe.weights import sha256_file

    doc = save_image(tmp_path / "cheque.png", page_with([(scribble(1), 100, 100)]))
    first = sha256_file(doc)

    class Swapping(InkBlobDetector):
        def detect_batch(self, pages):  # type: ignore[no-untyped-def]
            save_image(doc, page_with([(scribble(2), 100, 100)]))  # replaced while the pages are looked at
            return super().detect_batch(pages)

    predictor = SignaturePredictor(Swapping(), verifier, Gallery(verifier, {}))
    report = predictor(doc, sha256=first)
    assert report.error is not None and report.error.kind == "file_changed" and report.document.sha256 == first
    unchanged = SignaturePredictor(InkBlobDetector(), verifier, Gallery(verifier, {}))(doc)
    assert unchanged.ok and unchanged.document.sha256 == sha256_file(doc)


def test_a_scan_still_being_written_is_a_changed_file_not_a_corrupt_one(verifier: Any, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch):
    """A scanner still writing a PDF when the run reaches it: what was read is half a file, and 'corrupt' would send
    someone to rescan a good cheque. The file moved under the run, so it is file_changed (run again)."""
    from pipeline_doubles import InkBlobDetector, page_with, save_pdf

    from sigpipe.pipeline.flow import SignaturePredictor
    from sigpipe.verifier.gallery import Gallery
    from sigpipe.weights import sha256_file

    whole = save_pdf(tmp_path / "whole.pdf", [page_with([])]).read_bytes()
    doc = tmp_path / "incoming.pdf"
    doc.write_bytes(whole[: len(whole) // 3])
    first = sha256_file(doc)
    from sigpipe.pipeline import flow

    real = flow.iter_pages

    def writing(path, config):  # type: ignore[no-untyped-def]  # the scanner writes on as the run reads
        try:
            yield from real(path, config)
        finally:
            doc.write_bytes(whole)

    monkeypatch.setattr(flow, "iter_pages", writing)
    predictor = SignaturePredictor(InkBlobDetector(), verifier, Gallery(verifier, {}))
    report = predictor(doc, sha256=first)
    assert report.error is not None and report.error.kind == "file_changed" and report.document.sha256 == first
    monkeypatch.undo()
    doc.write_bytes(whole[: len(whole) // 3])  # a file cut short that stays so is corrupt
    report = predictor(doc)
    assert report.error is not None and report.error.kind == "corrupt_pdf"


def test_the_bytes_judged_are_the_bytes_hashed_whatever_happens_to_the_path(verifier: Any, tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch):
    """A security test re-pointed a scan's link between the hash and the decoder, and back before the re-hash: the
    forged file's sha256 was recorded with the genuine one's verdict, kept by every later run. The document is now
    read once, into a private copy hashed as it is made, and that copy is what the decoders open."""
    from pipeline_doubles import InkBlobDetector, page_with, save_image, scribble

    from sigpipe.pipeline import flow
    from sigpipe.pipeline.flow import SignaturePredictor
    from sigpipe.verifier.gallery import Gallery
    from sigpipe.weights import sha256_file

    hashed = save_image(tmp_path / "f.png", page_with([]))  # what is hashed: no signature on it
    other = save_image(tmp_path / "g.png", page_with([(scribble(1), 100, 100)]))  # what a decoder by path saw
    doc = tmp_path / "drop" / "cheque.png"
    doc.parent.mkdir()
    doc.symlink_to(hashed)
    real = flow.iter_pages
    opened: list[Path] = []

    def swapped(path, config):  # type: ignore[no-untyped-def]  # the link re-pointed while the pages are read
        opened.append(Path(path))
        doc.unlink()
        doc.symlink_to(other)
        try:
            yield from real(path, config)
        finally:
            doc.unlink()
            doc.symlink_to(hashed)

    monkeypatch.setattr(flow, "iter_pages", swapped)
    report = SignaturePredictor(InkBlobDetector(), verifier, Gallery(verifier, {}))(doc)
    assert report.ok and report.document.sha256 == sha256_file(hashed)
    assert report.verdict == "unsigned"  # the bytes hashed, not the signed page the link pointed at meanwhile
    assert opened and opened[0] != doc and opened[0].name == doc.name and not opened[0].exists()  # a copy, removed


def test_a_huge_or_sparse_file_and_a_full_temporary_folder_fail_their_document_only(
        verifier: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A sparse file of 50 GB takes 4 KB on disk and was hashed, then copied, for a minute before any --timeout,
    filling $TMPDIR; a full $TMPDIR then read as the scan being unreadable. Over the size limit a document fails
    before it is read (file_too_large); a copy that cannot be written is the temporary folder's fault."""
    import tempfile

    from pipeline_doubles import InkBlobDetector, page_with, save_image

    from sigpipe.pipeline.flow import SignaturePredictor
    from sigpipe.pipeline.ingest import IngestConfig
    from sigpipe.verifier.gallery import Gallery

    sparse = tmp_path / "huge.pdf"
    with sparse.open("wb") as f:
        f.write(b"%PDF-1.4\n")
        f.truncate(3 << 30)  # 3 GiB apparent, nothing on disk
    small = save_image(tmp_path / "small.png", page_with([]))
    predictor = SignaturePredictor(InkBlobDetector(), verifier, Gallery(verifier, {}))
    report = predictor(sparse, ingest=IngestConfig(max_bytes=1 << 30))
    assert report.error is not None and report.error.kind == "file_too_large" and "over the limit" in \
        report.error.message
    assert predictor(small, ingest=IngestConfig(max_bytes=1 << 30)).ok
    monkeypatch.setattr(tempfile, "tempdir", str(small))  # a temporary folder that cannot hold a copy
    report = predictor(small)
    assert report.error is not None and report.error.kind == "temporary_copy"
    assert "cannot copy it into the temporary folder" in report.error.message


def test_a_tmpdir_python_cannot_use_is_warned_about(batch: dict[str, Path], verifier_manifest: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture):
    """Python's tempfile falls back to /tmp, unsaid, from a $TMPDIR that is missing or not writable: the documents'
    copies then went elsewhere than the folder chosen for them."""
    import tempfile

    monkeypatch.setenv("TMPDIR", str(tmp_path / "missing"))
    monkeypatch.setattr(tempfile, "tempdir", None)  # chosen again, from the environment
    with caplog.at_level("WARNING"):
        _run_batch(batch, verifier_manifest)
    assert f"TMPDIR={tmp_path / 'missing'} cannot be used" in caplog.text


def test_copies_left_by_killed_processes_are_removed_by_the_next_run(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch):
    """A worker killed by --timeout (or a run killed outright) left its copy of a customer's scan in $TMPDIR, one
    more every night the document was retried. Each copy's folder holds a lock its process keeps while it lives:
    the next run removes those whose lock is free, whatever their number says."""
    import os
    import subprocess
    import sys
    import tempfile
    import time

    from sigpipe._files import COPY_PREFIX, OWNER_FILE, owned_folder, private_copy, remove_stale_copies

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    script = ("import sys, time; from sigpipe._files import owned_folder\n"
              "with owned_folder(sys.argv[1]) as f:\n"
              "    (f / 'cheque.tif').write_bytes(b'scan'); print(f.name, flush=True); time.sleep(float(sys.argv[2]))")

    def made_by_another_process(hold: float) -> tuple[subprocess.Popen[str], Path]:
        proc = subprocess.Popen([sys.executable, "-c", script, COPY_PREFIX, str(hold)], stdout=subprocess.PIPE,
                                text=True, env={**os.environ, "TMPDIR": str(tmp_path)})
        assert proc.stdout is not None
        return proc, tmp_path / proc.stdout.readline().strip()

    live, held = made_by_another_process(30)  # a live run (in this container or another sharing $TMPDIR)
    killed, left = made_by_another_process(30)
    killed.kill()  # SIGKILL: its folder stays, its lock goes with it
    killed.wait()
    try:
        assert left.is_dir() and (left / OWNER_FILE).is_file()
        # a container's run is pid 1 every night: the folder of the one killed last night bears a number alive now
        pid_one = tmp_path / f"{COPY_PREFIX}1-night"
        left.rename(pid_one)
        with owned_folder(COPY_PREFIX) as mine:
            assert remove_stale_copies() == 1
            assert not pid_one.exists() and (held / "cheque.tif").is_file() and mine.is_dir()
        assert not mine.exists()
        with private_copy(held / "cheque.tif") as (copy, _):
            assert copy.parent.name.startswith(f"{COPY_PREFIX}{os.getpid()}-") and remove_stale_copies() == 0
            assert copy.is_file()
    finally:
        live.kill()
        live.wait()
    assert remove_stale_copies() == 1 and not held.exists()  # its process gone: its lock free
    # an older release's folder, without a lock: judged by its number, a dead process's or a zombie's, once it is
    # not being made (a minute old)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True).stdout.strip()
    zombie = subprocess.Popen(["sleep", "30"])
    zombie.kill()
    time.sleep(0.2)  # killed, not waited for: a zombie
    try:
        old = [tmp_path / f"{COPY_PREFIX}{p}-old" for p in (gone, zombie.pid, os.getpid())]
        young = tmp_path / f"{COPY_PREFIX}{gone}-young"
        for folder in (*old, young):
            folder.mkdir()
        hour_ago = time.time() - 3600
        for folder in old:
            os.utime(folder, (hour_ago, hour_ago))
        (tmp_path / f"{COPY_PREFIX}{gone}-link").symlink_to(young)  # a link is never followed into
        # old[2] bears this process's number, which makes its folders with a lock: a former process's (a container's
        # run is pid 1 every night, and an older release's run killed there left its copies so)
        assert remove_stale_copies() == 3
        assert not any(f.exists() for f in old) and young.is_dir()
    finally:
        zombie.wait()


def test_a_file_locked_or_removed_after_it_was_read_keeps_its_verdict(verifier: Any, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch):
    """Its permissions taken away while it was processed, a file was reported as changed ("still being written, or
    replaced"): the look back at it failed and was taken for a change. What was judged is the copy read whole, under
    its own sha256; a file that cannot be looked at again has not been seen to change."""
    from pipeline_doubles import InkBlobDetector, page_with, save_image, scribble

    from sigpipe.pipeline import flow
    from sigpipe.pipeline.flow import SignaturePredictor
    from sigpipe.verifier.gallery import Gallery
    from sigpipe.weights import sha256_file

    doc = save_image(tmp_path / "cheque.png", page_with([(scribble(1), 100, 100)]))
    digest = sha256_file(doc)

    def locked(path: Any) -> str:  # the look back after processing: permission denied
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(flow, "sha256_file", locked)
    report = SignaturePredictor(InkBlobDetector(), verifier, Gallery(verifier, {}))(doc)
    assert report.ok and report.document.sha256 == digest and report.signatures


def test_a_file_made_unreadable_under_the_run_is_unreadable_not_internal(verifier: Any, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch,
                                                                        caplog: pytest.LogCaptureFixture):
    """Its folder's permissions taken away mid-run (os.stat raises EACCES, which Path.is_file does not swallow):
    one line and kind unreadable_file, as for a file of its own that cannot be read, not a traceback per document
    and kind internal."""
    from pipeline_doubles import InkBlobDetector, page_with, save_image

    from sigpipe.pipeline import ingest
    from sigpipe.pipeline.flow import SignaturePredictor
    from sigpipe.verifier.gallery import Gallery
    from sigpipe.weights import sha256_file

    doc = save_image(tmp_path / "b" / "cheque.png", page_with([]))
    digest = sha256_file(doc)

    def denied(path: Any) -> str:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(ingest, "_sniff", denied)
    predictor = SignaturePredictor(InkBlobDetector(), verifier, Gallery(verifier, {}))
    with caplog.at_level("ERROR"):
        report = predictor(doc, sha256=digest)
    assert report.error is not None and report.error.kind == "unreadable_file"
    assert "Permission denied" in report.error.message and "Traceback" not in caplog.text
    assert report.document.sha256 == digest


def test_a_fifo_or_device_named_as_a_scan_fails_alone_and_never_blocks_the_run(batch: dict[str, Path],
                                                                                verifier_manifest: Path):
    """A scan swapped for a FIFO in a drop folder blocked the run's process for ever in open() (no --timeout
    applies there), and a FIFO or a link to /dev/zero named as a scan was left out without a word. Each now gets a
    report saying it is not a regular file."""
    import json
    import os
    import threading

    os.mkfifo(batch["scans"] / "z.png")
    (batch["scans"] / "zero.tif").symlink_to("/dev/zero")
    done: list[Any] = []
    t = threading.Thread(target=lambda: done.append(_run_batch(batch, verifier_manifest)), daemon=True)
    t.start()
    t.join(60)
    assert not t.is_alive(), "the run blocked on a FIFO"
    failures = {f.document: f for f in done[0].failures}
    for name in ("z.png", "zero.tif"):
        assert failures[name].kind == "unreadable_file" and "not a regular file" in failures[name].message
        assert json.loads((batch["out"] / f"{name}.json").read_text())["error"]["kind"] == "unreadable_file"
    assert set(failures) == {"z.png", "zero.tif", "broken.pdf"}  # the other documents were processed


def _locked(monkeypatch: pytest.MonkeyPatch, *folders: Path) -> None:
    """Folders that cannot be listed, as chmod 000 makes them for an account other than root (tests run as root)."""
    import os

    real = os.scandir
    locked = {str(f) for f in folders}

    def scandir(path: Any = ".") -> Any:
        if str(path) in locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)


def test_a_folder_of_scans_that_cannot_be_read_is_a_failure_not_silence(batch: dict[str, Path],
                                                                      verifier_manifest: Path,
                                                                      monkeypatch: pytest.MonkeyPatch):
    """Its documents cannot even be counted: the run must say so and exit 1, not report a smaller batch as done."""
    from pipeline_doubles import page_with, save_image

    from sigpipe.pipeline.ingest import discover_scans

    locked = batch["scans"] / "locked"
    save_image(locked / "cheque.png", page_with([]))
    _locked(monkeypatch, locked)
    unread: list[tuple[Path, str]] = []
    assert locked / "cheque.png" not in discover_scans(batch["scans"], unread)
    assert unread == [(locked, "Permission denied")]
    monkeypatch.undo()  # an earlier night, the folder readable: its document got a report
    _run_batch(batch, verifier_manifest)
    assert (batch["out"] / "locked" / "cheque.png.json").is_file()
    _locked(monkeypatch, locked)
    s = _run_batch(batch, verifier_manifest)
    assert [(f.document, f.kind) for f in s.failures if f.kind == "unreadable_folder"] == [("locked/",
                                                                                           "unreadable_folder")]
    assert not any("no longer in SCANS" in w for w in s.warnings)  # its document is there, only unreadable
    assert s.failed == 2 and s.documents == 5  # broken.pdf, and the folder (the CLI exits 1); 5 documents read
    assert "locked/" in (batch["out"] / "summary.json").read_text()


def test_reference_folders_that_cannot_be_read_and_broken_links_are_listed(batch: dict[str, Path],
                                                                           verifier: Any,
                                                                           monkeypatch: pytest.MonkeyPatch):
    from pipeline_doubles import SIG_A, save_image, scribble

    from sigpipe.verifier.gallery import Gallery, specimen_digests

    old = batch["refs"] / "alice" / "2019"
    save_image(old / "a9.png", scribble(SIG_A + 9))
    (batch["refs"] / "alice" / "gone.png").symlink_to(batch["refs"] / "alice" / "no-such.png")
    (batch["refs"] / "alice" / "card.heic").write_bytes(b"\x00\x00\x00\x18ftypheic")  # a phone's photo: not read
    _locked(monkeypatch, old)
    g = Gallery.enroll(batch["refs"], verifier, cache=batch["cache"])
    assert "cannot read this folder" in g.errors[str(old)] and "broken link" in g.errors[
        str(batch["refs"] / "alice" / "gone.png")]
    assert "a HEIC photo (an iPhone's), not read as a specimen" in g.errors[str(batch["refs"] / "alice" / "card.heic")]
    unreadable = set(specimen_digests(batch["refs"])[1])  # what `cache prune` calls unreadable
    assert {str(old), str(batch["refs"] / "alice" / "gone.png")} <= unreadable
    assert str(batch["refs"] / "alice" / "card.heic") not in unreadable  # readable, only never a specimen (a retest)
    # a FIFO among the specimens and a person's folder linked into a share not mounted: said, not passed over (a retest)
    os.mkfifo(batch["refs"] / "alice" / "pipe.png")
    (batch["refs"] / "carol").symlink_to(batch["refs"] / "no-such-share" / "carol")
    g = Gallery.enroll(batch["refs"], verifier, cache=batch["cache"])
    assert "not a regular file" in g.errors[str(batch["refs"] / "alice" / "pipe.png")]
    assert "person's folder it pointed to is gone" in g.errors[str(batch["refs"] / "carol")]
    assert str(batch["refs"] / "alice" / "pipe.png") not in specimen_digests(batch["refs"])[1]  # no entry to keep


def test_a_report_edited_to_disagree_with_itself_is_redone(batch: dict[str, Path], verifier_manifest: Path):
    """A re-run keeps up-to-date reports; one whose verdict was edited ('forged' made 'genuine' at the top, or a
    signature's verdict against its own distance) must not be kept, nor counted in the summary as it reads."""
    import json

    def run() -> Any:
        return _run_batch(batch, verifier_manifest)

    first = run()
    signed = sorted(p for p in batch["out"].rglob("*.json") if p.name != "summary.json"
                    and json.loads(p.read_text())["signatures"])
    a, b = signed[0], signed[1]
    ra, rb = json.loads(a.read_text()), json.loads(b.read_text())
    ra["verdict"] = "forged" if ra["verdict"] != "forged" else "genuine"
    sig = rb["signatures"][0]
    sig["verdict"] = "forged" if sig["verdict"] == "genuine" else "genuine"
    a.write_text(json.dumps(ra))
    b.write_text(json.dumps(rb))
    again = run()
    assert again.processed == 2 + first.failed  # the two edited, and the failed one retried as always
    assert again.verdicts == first.verdicts
    assert run().processed == first.failed  # redone once, then kept


def test_no_summary_json_without_its_csv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """summary.json is how tools tell a finished run: a failed CSV write must not leave the JSON alone."""
    from sigpipe.pipeline import report

    real = report.write_text_atomic

    def csv_fails(path: Path, text: str) -> None:
        if path.name == report.SUMMARY_CSV:
            raise OSError(27, "File too large")
        real(path, text)

    monkeypatch.setattr(report, "write_text_atomic", csv_fails)
    summary = report.RunSummary.from_reports([], processed=0, pages_processed=0, elapsed_s=1.0,
                                             reference_errors={}, warnings=[], people=0, workers=1, models={})
    with pytest.raises(OSError):
        report.write_summary(tmp_path, summary, [])
    assert not (tmp_path / report.SUMMARY_JSON).exists()

    def json_fails(path: Path, text: str) -> None:  # the disk full by then: neither is left (a filesystem audit)
        if path.name == report.SUMMARY_JSON:
            raise OSError(28, "No space left on device")
        real(path, text)

    monkeypatch.setattr(report, "write_text_atomic", json_fails)
    with pytest.raises(OSError):
        report.write_summary(tmp_path, summary, [])
    assert not (tmp_path / report.SUMMARY_JSON).exists() and not (tmp_path / report.SUMMARY_CSV).exists()


def test_a_linked_folder_in_out_gets_no_report_written_through_it(tmp_path: Path):
    from sigpipe.pipeline.report import write_report
    from sigpipe.pipeline.runner import _save

    out, victim = tmp_path / "out", tmp_path / "victim"
    out.mkdir()
    victim.mkdir()
    (victim / "x.jpg.json").write_text("precious")
    (out / "sub").symlink_to(victim)
    report = DocumentReport.success(DocumentInfo("sub/x.jpg", "0" * 64, 1), None, (), {})
    with pytest.raises(OSError):
        write_report(out, report)
    kept = _save(out, report)  # the run: this document fails alone, the batch goes on
    assert kept.error is not None and kept.error.kind == "output_write" and "symbolic link" in kept.error.message
    assert (victim / "x.jpg.json").read_text() == "precious" and [p.name for p in victim.iterdir()] == ["x.jpg.json"]
    assert write_report(out, DocumentReport.success(DocumentInfo("a/b.jpg", "0" * 64, 1), None, (), {})).is_file()



def test_names_refused_by_outs_file_system_fail_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A Windows share or vfat drive as OUT refuses CON.pdf.json, a:b.png.json or 'dir.' (EINVAL): the batch stopped
    there with exit 2, every night again. Now that document fails alone. A report path too long for the file system
    says so, not that a 13-byte name is too long."""
    import errno

    from sigpipe.pipeline import report as report_module
    from sigpipe.pipeline.runner import _save

    out = tmp_path / "out"
    out.mkdir()
    real = report_module.write_text_atomic

    def share(path: Path, text: str) -> None:
        if ":" in path.name:
            raise OSError(errno.EINVAL, "Invalid argument", str(path))
        if len(str(path)) > 200:
            raise OSError(errno.ENAMETOOLONG, "File name too long", str(path))
        real(path, text)

    monkeypatch.setattr(report_module, "write_text_atomic", share)
    refused = _save(out, DocumentReport.success(DocumentInfo("a:b.png", "0" * 64, 1), None, (), {}))
    assert refused.error is not None and refused.error.kind == "output_write"
    assert "refuses the name 'a:b.png.json'" in refused.error.message and "rename the document" in refused.error.message
    deep = "/".join(["folder"] * 30) + "/deep.png"
    long_path = _save(out, DocumentReport.success(DocumentInfo(deep, "0" * 64, 1), None, (), {}))
    assert long_path.error is not None and "report's path in OUT" in long_path.error.message
    assert _save(out, DocumentReport.success(DocumentInfo("ok.png", "0" * 64, 1), None, (), {})).ok



def test_name_folding_probes_the_file_system_and_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Where OUT tells every name apart (this test's file system), no key; the probe files go again. A file system
    that ignores case and trailing dots is imitated by answering the probe's look-up as one would."""
    import os

    from sigpipe import _files

    assert _files.name_folding(tmp_path) is None and list(tmp_path.iterdir()) == []
    real = os.path.lexists
    # vfat: ASCII letters' case and trailing dots ignored, not accented letters' case nor Unicode forms
    monkeypatch.setattr(os.path, "lexists", lambda p: real(p) or not str(p).endswith(("\u00e9", "\u0300")))
    folding = _files.name_folding(tmp_path)
    assert folding is not None and list(tmp_path.iterdir()) == []
    key, ignored = folding
    assert ignored == "case and trailing dots and spaces"
    assert key("A/Cheque.PDF") == key("a/cheque.pdf") != key("a/cheque2.pdf") and key("dir./x.") == key("dir/x")
    assert key("\u00c9t\u00e9.pdf") != key("\u00e9t\u00e9.pdf")  # not one file there: both get their report
    monkeypatch.setattr(os.path, "lexists", lambda p: real(p) or True)  # an SMB share folds every letter
    key, _ = _files.name_folding(tmp_path) or (None, None)
    assert key is not None and key("\u00c9t\u00e9.pdf") == key("\u00e9t\u00e9.pdf")


def test_names_one_file_in_an_out_that_ignores_case_get_one_report_each_or_fail(
        batch: dict[str, Path], verifier_manifest: Path, monkeypatch: pytest.MonkeyPatch):
    """On an OUT that ignores case (an SMB share, a vfat drive), Cheque.png and cheque.png shared one report file:
    the later one's report replaced the other's, a forged cheque's verdict was lost, exit 0, every night again.
    Now the later one fails without a report (exit 1) and the first keeps the file; its claim is not called
    missing. A report found under another name (the file renamed in case) is redone, and not called an orphan."""
    import shutil

    from pipeline_doubles import DoubleModels

    from sigpipe.pipeline.report import read_report
    from sigpipe.pipeline.runner import RunConfig, run_batch

    shutil.copy(batch["scans"] / "unsigned.jpg", batch["scans"] / "Unsigned.jpg")
    monkeypatch.setattr(runner, "name_folding", lambda out: (str.lower, "case"))
    batch["claims"].write_text("document,identity\nalice_letter.pdf,alice\nunsigned.jpg,bob\nUnsigned.jpg,bob\n")

    def run() -> Any:
        return run_batch(RunConfig(scans=batch["scans"], refs=batch["refs"], out=batch["out"], claims=batch["claims"],
                                   cache=batch["cache"], progress=False), DoubleModels(verifier_manifest))

    s = run()
    clash = [f for f in s.failures if f.document == "unsigned.jpg"]
    assert len(clash) == 1 and clash[0].kind == "output_write" and "Unsigned.jpg's report" in clash[0].message
    assert "ignores case" in clash[0].message and "unsigned.jpg" not in s.claims_not_in_scans
    assert not any("not in SCANS" in w for w in s.warnings), s.warnings
    assert not (batch["out"] / "unsigned.jpg.json").exists()
    first = read_report(batch["out"] / "Unsigned.jpg.json")
    assert first is not None and first.document.path == "Unsigned.jpg"
    # Unsigned.jpg renamed unsigned.jpg: on such a share the report file is found under the new name, and holds the
    # old name's report (the same contents and claim): redone, not kept as the new name's
    (batch["scans"] / "Unsigned.jpg").unlink()
    (batch["out"] / "Unsigned.jpg.json").rename(batch["out"] / "unsigned.jpg.json")
    run()
    again = read_report(batch["out"] / "unsigned.jpg.json")
    assert again is not None and again.document.path == "unsigned.jpg"
    # and where its file keeps the old name, the report it holds is the current document's: no orphan
    (batch["out"] / "unsigned.jpg.json").rename(batch["out"] / "Unsigned.jpg.json")
    s = run()
    assert not any("no longer in SCANS" in w for w in s.warnings), s.warnings


@pytest.mark.parametrize("edit", [
    lambda r: r["signatures"][0].update(bbox=None),
    lambda r: r["signatures"][0].update(page_size=[1e400, 1]),
    lambda r: r.update(signatures={"a": 1}),
    lambda r: r.update(document=[1, 2]),
])
def test_a_report_edited_out_of_shape_reads_as_no_report(tmp_path: Path, edit: Any):
    """Re-runs and review read every report in OUT: one edited out of shape is no report (redone, or listed), not a
    traceback that stops them."""
    import json

    from sigpipe.pipeline.report import SignatureResult, read_report, write_report

    sig = SignatureResult(page=1, bbox=(1.0, 2.0, 3.0, 4.0), page_size=(10, 10), dpi=200, detection_confidence=0.9,
                          identity="a", distance=0.1, threshold=0.5, score=0.9, verdict="genuine")
    path = write_report(tmp_path, DocumentReport.success(DocumentInfo("d.png", "0" * 64, 1), "a", [sig], {}))
    assert read_report(path) is not None
    r = json.loads(path.read_text())
    edit(r)
    path.write_text(json.dumps(r).replace("Infinity", "1e400"))
    assert read_report(path) is None


def test_reports_of_a_release_that_read_documents_otherwise_are_redone(batch: dict[str, Path],
                                                                      verifier_manifest: Path,
                                                                      caplog: pytest.LogCaptureFixture):
    """A release that fixes how documents are read (a CropBox, a transparent PNG's paper) must not keep the verdicts
    the older one got wrong: reports without this release's reader revision are redone, once."""
    import json
    import logging

    from sigpipe.pipeline.report import READER_REVISION

    def run() -> Any:
        return _run_batch(batch, verifier_manifest)

    first = run()
    ok = sorted(p for p in batch["out"].rglob("*.json") if p.name != "summary.json"
                and json.loads(p.read_text())["status"] == "ok")
    assert json.loads(ok[0].read_text())["settings"]["reader"] == READER_REVISION
    for path in ok[:2]:  # as an older release wrote them
        r = json.loads(path.read_text())
        del r["settings"]["reader"]
        path.write_text(json.dumps(r))
    with caplog.at_level(logging.INFO, logger="sigpipe"):
        again = run()
    assert again.processed == 2 + first.failed and "2 because this release reads documents otherwise" in caplog.text
    assert run().processed == first.failed


def test_a_signature_the_verifier_sees_no_ink_in_is_not_judged(verifier: Any, tmp_path: Path):
    """Strokes much fainter than a printed line beside them vanish in the preprocessing: the network then embeds an
    empty image, which came out a confident 'forged' (one-to-many: 'genuine' for whoever's specimen is plainest)."""
    import jsonschema
    from pipeline_doubles import SIG_A, Box, InkBlobDetector, page_with, save_image, scribble

    from sigpipe.pipeline.flow import SignaturePredictor
    from sigpipe.pipeline.report import load_schema
    from sigpipe.verifier.gallery import Gallery

    doc = save_image(tmp_path / "faint.png", page_with([(scribble(SIG_A), 100, 100)]))

    class AlsoBlank(InkBlobDetector):  # one box on the signature, one on blank paper
        def detect_batch(self, pages):  # type: ignore[no-untyped-def]
            return [boxes + [Box((400.0, 400.0, 640.0, 490.0), 0.8)] for boxes in super().detect_batch(pages)]

    gallery = Gallery(verifier, {"alice": verifier.embed([scribble(SIG_A)])})
    for claimed in ("alice", None):
        report = SignaturePredictor(AlsoBlank(), verifier, gallery)(doc, claimed=claimed)
        jsonschema.validate(report.to_dict(), load_schema())
        inked, blank = report.signatures
        assert inked.verdict != "no_ink" and inked.distance is not None
        assert blank.verdict == "no_ink" and blank.distance is None and blank.score is None
        assert blank.identity == claimed and report.verdict in ("needs_review", "forged")


def test_a_page_with_as_many_signatures_as_the_detector_keeps_is_warned_about(verifier: Any, tmp_path: Path,
                                                                             caplog: pytest.LogCaptureFixture):
    """The boxes beyond the detector's max_det are dropped before anyone sees them (a forged cheque among 60 on one
    strip came out 'genuine'): the shipped limit is Ultralytics' 300, and a page that reaches it is named."""
    import json
    import logging

    from pipeline_doubles import SIG_A, InkBlobDetector, page_with, save_image, scribble

    from sigpipe.pipeline.flow import SignaturePredictor
    from sigpipe.verifier.gallery import Gallery
    from sigpipe.weights import WEIGHTS_DIR

    assert json.loads((WEIGHTS_DIR / "detector.pt.json").read_text())["max_det"] == 300
    doc = save_image(tmp_path / "strip.png", page_with([(scribble(SIG_A), 50, 50), (scribble(SIG_A), 50, 300)]))

    class KeepsTwo(InkBlobDetector):
        max_det = 2

    with caplog.at_level(logging.WARNING, logger="sigpipe"):
        SignaturePredictor(KeepsTwo(), verifier, Gallery(verifier, {}))(doc, relative="strip.png")
    assert "strip.png: page 1 holds as many signatures as the detector keeps (max_det 2)" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sigpipe"):
        SignaturePredictor(InkBlobDetector(), verifier, Gallery(verifier, {}))(doc, relative="strip.png")
    assert "max_det" not in caplog.text


def test_workers_get_the_gallery_through_a_private_file_removed_after(batch: dict[str, Path], verifier_manifest: Path,
                                                                    tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Through the pool's start-up pipe, a gallery over 64 KiB could hang the run for ever when a worker died before
    reading it. The file is the account's own and goes with the run; one left by a run killed outright goes with
    the next."""
    import os
    import stat
    import tempfile

    from sigpipe._files import OWNER_FILE
    from sigpipe.pipeline.runner import HANDOVER_PREFIX, RunConfig, _handover, run_batch

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    dead = tmp_path / "tmp" / f"{HANDOVER_PREFIX}999999999-x"  # a killed run's: its lock free
    dead.mkdir()
    (dead / OWNER_FILE).touch()
    alive = tmp_path / "tmp" / f"{HANDOVER_PREFIX}{os.getppid()}-x"
    alive.mkdir()
    with _handover({"embeddings": {"a": 1}}) as (path, _):
        assert stat.S_IMODE(Path(path).parent.stat().st_mode) == 0o700
    assert not Path(path).parent.exists()
    from pipeline_doubles import DoubleModels

    s = run_batch(RunConfig(scans=batch["scans"], refs=batch["refs"], out=batch["out"], claims=batch["claims"],
                            cache=batch["cache"], progress=False, workers=2), DoubleModels(verifier_manifest))
    assert s.verdicts["genuine"] >= 1 and [p.name for p in (tmp_path / "tmp").iterdir()] == [alive.name]
    # the next run of a killed one need not use workers: it removes the leftover all the same
    dead.mkdir()
    (dead / OWNER_FILE).touch()
    (dead / "gallery.pickle").write_bytes(b"embeddings and images")
    run_batch(RunConfig(scans=batch["scans"], refs=batch["refs"], out=batch["out"], claims=batch["claims"],
                        cache=batch["cache"], progress=False), DoubleModels(verifier_manifest))
    assert [p.name for p in (tmp_path / "tmp").iterdir()] == [alive.name]


def test_workers_refuse_a_references_file_replaced_in_the_temporary_folder(verifier_manifest: Path,
                                                                          monkeypatch: pytest.MonkeyPatch,
                                                                          capfd: pytest.CaptureFixture[str]):
    """The workers unpickle the enrolled references from a file in $TMPDIR, and a pickle runs code: in a temporary
    folder others may write (not sticky), one could rename the run's folder and put a file of their own in its
    place. A worker reads only the bytes the run wrote (their sha256 comes with its start-up arguments)."""
    import pickle

    from pipeline_doubles import DoubleModels

    from sigpipe.pipeline.errors import TemporaryFolderError
    from sigpipe.pipeline.flow import FlowConfig
    from sigpipe.pipeline.ingest import IngestConfig
    from sigpipe.pipeline.runner import _handover, _ping, _start_pool, _WorkerInit

    det, ver = DoubleModels(verifier_manifest)(1)
    idents = {"detector": det.ident, "verifier": ver.ident}
    with _handover({}) as (path, digest):
        init = _WorkerInit(DoubleModels(verifier_manifest), 1, (path, digest), FlowConfig(), IngestConfig(),
                           idents, 30)
        ex = _start_pool(1, init)  # the file as written: read
        try:
            assert ex.submit(_ping).result() > 0
        finally:
            ex.shutdown()
        Path(path).write_bytes(pickle.dumps({"embeddings": {}}))  # another file put in its place
        with pytest.raises(TemporaryFolderError, match="is not what the run wrote: something else replaced it"):
            _start_pool(1, init)  # said so at once, not after 3 tries as models that could not load (a retest)
    assert "is not what the run wrote" in capfd.readouterr().err


def test_documents_a_claims_file_leaves_unclaimed_are_counted_in_a_warning(batch: dict[str, Path],
                                                                          verifier_manifest: Path):
    """An empty export from the core system, or rows lost, sends documents one-to-many, which accepts a forgery
    that resembles anybody enrolled: with --claims, that is said."""
    s = _run_batch(batch, verifier_manifest)
    (w,) = [w for w in s.warnings if "have no claim in" in w]
    assert w.startswith("3 of 5 document(s) have no claim in") and "sub/deeper/multi.TIF" in w
    batch["claims"].write_text("document,identity\n")
    s = _run_batch(batch, verifier_manifest)
    assert any(w.startswith("5 of 5 document(s) have no claim in") for w in s.warnings)


def test_a_worker_that_starts_after_the_run_ended_leaves_quietly(tmp_path: Path):
    """A run with two workers and a few documents: the first worker did them all while the second was still loading
    its models, the run removed the gallery's file and ended, and the second worker's failed start was logged as
    CRITICAL with a traceback after a successful run. It now exits quietly, and ignores the terminal's Ctrl-C
    (the run stops its workers)."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(f"""
        import os, signal, types
        from sigpipe.pipeline import runner
        model = types.SimpleNamespace(ident="m")
        def load(threads):
            print("SIGINT ignored while loading:", signal.getsignal(signal.SIGINT) == signal.SIG_IGN, flush=True)
            return model, model
        init = runner._WorkerInit(load, 1, ({str(tmp_path / "gone.pickle")!r}, "0" * 64), None, None,
                                  {{"detector": "m", "verifier": "m"}}, 20, parent=os.getppid())
        runner._init_worker(init)
        print("not reached")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and done.stdout == "SIGINT ignored while loading: True\n"


def test_a_killed_workers_children_handed_to_the_run_are_reaped():
    """Where the run is its namespace's init (pid 1 in a container without --init), a killed worker's poppler
    processes become its children: never waited for, they piled up as zombies, one a timed-out document, until a
    pids limit stopped new workers and the night's last documents got no report (a container audit). Imitated
    with a subreaper, which orphans are handed to as to init."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent("""
        import ctypes, subprocess, time
        from pathlib import Path
        from sigpipe.pipeline.runner import kill_all
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
        worker = subprocess.run(["sh", "-c", "sleep 60 >/dev/null 2>&1 & echo $!"], capture_output=True, text=True)
        orphan = int(worker.stdout)  # its parent is gone: handed to this process
        time.sleep(0.1)
        kill_all([orphan])
        print(Path(f"/proc/{orphan}").exists())
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"  # no zombie left


def test_no_usable_temporary_folder_stops_the_run_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A container's read-only root with TMPDIR unset: a traceback and exit 1; or Python's last resort, the working
    folder, unsaid: SCANS as the working folder got a killed run's copies of scans read as documents the next night
    (a container audit). The working folder is fine when it is the temporary folder asked for, or /tmp itself."""
    import os
    import tempfile

    from sigpipe.pipeline.errors import TemporaryFolderError
    from sigpipe.pipeline.runner import _check_temporary_folder

    for var in ("TMPDIR", "TEMP", "TMP"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)

    def none_left() -> str:
        raise FileNotFoundError(2, "No usable temporary directory found in ['/tmp', '/var/tmp', '/usr/tmp', '/']")

    monkeypatch.setattr(tempfile, "gettempdir", none_left)
    with pytest.raises(TemporaryFolderError, match="set TMPDIR to a folder"):
        _check_temporary_folder()
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path))  # the last resort
    with pytest.raises(TemporaryFolderError, match="the working folder"):
        _check_temporary_folder()
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # asked for
    _check_temporary_folder()
    monkeypatch.delenv("TMPDIR")
    monkeypatch.chdir("/tmp")
    monkeypatch.setattr(tempfile, "gettempdir", lambda: "/tmp")
    _check_temporary_folder()
    assert os.getcwd() == "/tmp"


def test_worker_processes_without_a_usable_dev_shm_stop_the_run_in_one_line(verifier_manifest: Path,
                                                                            monkeypatch: pytest.MonkeyPatch):
    """A container with a read-only /dev/shm (or --ipc=none): the pool's queues cannot make their semaphores, and
    --workers 2 or --timeout gave a traceback, exit 1, no report (a container audit)."""
    from pipeline_doubles import DoubleModels

    from sigpipe.errors import ModelError
    from sigpipe.pipeline.flow import FlowConfig
    from sigpipe.pipeline.ingest import IngestConfig
    from sigpipe.pipeline.runner import _handover, _start_pool, _WorkerInit

    def no_shm(*_: Any, **__: Any) -> None:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(runner, "ProcessPoolExecutor", no_shm)
    det, ver = DoubleModels(verifier_manifest)(1)
    with _handover({}) as gallery:
        init = _WorkerInit(DoubleModels(verifier_manifest), 1, gallery, FlowConfig(), IngestConfig(),
                           {"detector": det.ident, "verifier": ver.ident}, 30)
        with pytest.raises(ModelError, match="Read-only file system; their queues need a writable /dev/shm"):
            _start_pool(2, init)


def test_the_document_that_has_its_report_keeps_it_and_a_new_out_is_probed_where_it_goes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A retest: a dated OUT made each night was never probed (the probe ran before OUT existed: no key, reports
    overwritten); and cheque.tif's forged report was replaced by a newcomer Cheque.tif's, which sorts first."""
    from sigpipe.pipeline.report import write_report
    from sigpipe.pipeline.runner import _one_report_file

    probed: list[Path] = []

    def fold(folder: Path) -> tuple[Any, str]:
        probed.append(folder)
        return str.lower, "case"

    monkeypatch.setattr(runner, "name_folding", fold)
    names = {"Cheque.tif": tmp_path / "a", "cheque.tif": tmp_path / "b", "other.tif": tmp_path / "c"}
    new_out = tmp_path / "2026-12-06" / "out"
    failed = _one_report_file(names, new_out)
    assert probed == [tmp_path] and [f.document for f in failed] == ["cheque.tif"]  # none has a report: name order
    out = tmp_path / "out"
    out.mkdir()
    write_report(out, DocumentReport.success(DocumentInfo("cheque.tif", "0" * 64, 1), None, (), {}))
    failed = _one_report_file(names, out)
    assert [f.document for f in failed] == ["Cheque.tif"] and "cheque.tif's report" in failed[0].message


def test_the_api_without_a_temporary_folder_says_so_and_copies_nothing_into_the_working_folder(
        tmp_path: Path, verifier_manifest: Path, monkeypatch: pytest.MonkeyPatch):
    """The Python API (and check-refs) copied documents and specimens into the working folder, Python's last resort,
    where there was no temporary folder, and then told the caller to free space in it (a retest)."""
    import tempfile

    from pipeline_doubles import SIG_A, DoubleModels, page_with, save_image, scribble

    from sigpipe.pipeline.flow import SignaturePredictor
    from sigpipe.verifier.gallery import Gallery

    doc = save_image(tmp_path / "d.png", page_with([(scribble(SIG_A), 50, 50)]))
    detector, verifier = DoubleModels(verifier_manifest)(1)
    predict = SignaturePredictor(detector, verifier, Gallery(verifier, {}))
    for var in ("TMPDIR", "TEMP", "TMP"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path))  # the last resort: the working folder
    report = predict(doc)
    assert report.error is not None and report.error.kind == "temporary_copy"
    assert "the working folder" in report.error.message and "free space" not in report.error.message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.png"]
