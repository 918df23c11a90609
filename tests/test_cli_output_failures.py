"""stderr and stdout that cannot be written (a full disk, ``| head``) or that untrusted names would drive (escape
sequences): the batch goes on, keeps its exit code, and the operator's terminal shows the names as text.

The runs are subprocesses with real file descriptors: /dev/full and pipes whose reader is gone."""

import errno
import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

import pytest

from sigpipe.pipeline.progress import PrintableFormatter, Progress, printable

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples"
HOSTILE = "b\r\x1b[2K\x1b[1AINFO all genuine\x1b[8m.pdf"  # erases the line above and forges one, then hides text
needs_dev_full = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")


class FailingStream(io.StringIO):
    """A stream whose writes fail as a full disk or a closed pipe makes them fail."""

    def __init__(self, error: OSError) -> None:
        super().__init__()
        self.error, self.writes = error, 0

    def write(self, s: str) -> int:
        self.writes += 1
        raise self.error


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device"), BrokenPipeError(errno.EPIPE, "")])
def test_progress_that_cannot_be_written_is_turned_off_once(error: OSError):
    stream = FailingStream(error)
    progress = Progress(3, stream=stream, interval=0.0)
    for _ in range(3):
        progress.update(1)  # no exception: the documents go on
    assert stream.writes == 1 and not progress.enabled
    assert (progress.done, progress.pages) == (3, 3)  # still counted


@needs_dev_full
def test_a_stream_that_failed_is_silenced_so_that_later_flushes_succeed():
    with open("/dev/full", "w") as stream:  # buffered, as stderr is under cron
        progress = Progress(1, stream=stream)
        progress.update(1)
        assert not progress.enabled
        stream.write("what the failed line left in the buffer, and more\n")
        stream.flush()  # into os.devnull now: no OSError (multiprocessing and the interpreter's exit flush alike)


def test_printable_escapes_control_characters_as_ascii_does():
    assert printable(HOSTILE) == "b\\r\\x1b[2K\\x1b[1AINFO all genuine\\x1b[8m.pdf"
    assert printable("\x00\x7f\x85\x9b\u2028\u2029") == "\\x00\\x7f\\x85\\x9b\\u2028\\u2029"
    assert printable("line 1\n\tline 2 caf\u00e9 \u00a0") == "line 1\n\tline 2 caf\u00e9 \u00a0"  # text is kept


def test_log_formatter_escapes_names_and_keeps_a_traceback_on_its_lines():
    try:
        raise ValueError(f"cannot read {HOSTILE}")
    except ValueError:
        record = logging.LogRecord("sigpipe.x", logging.ERROR, __file__, 1, "%s: failed", (HOSTILE,), sys.exc_info())
    text = PrintableFormatter("%(levelname)s %(name)s: %(message)s").format(record)
    assert text.startswith("ERROR sigpipe.x: b\\r\\x1b[2K\\x1b[1AINFO all genuine\\x1b[8m.pdf: failed\n")
    assert "\nTraceback (most recent call last):\n" in text and "ValueError: cannot read b\\r\\x1b" in text
    assert not any(c in text for c in "\r\x1b")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """HOME and SIGPIPE_CACHE of the runs: one cache, so that the references are embedded once."""
    return tmp_path_factory.mktemp("home")


def sigpipe_run(home: Path, scans: dict[str, bytes], out: Path, stdout: Any, stderr: Any, *extra: str) -> int:
    """``sigpipe run`` over SCANS (name: content) with the example references; its exit code."""
    docs = out.with_name(out.name + "-scans")
    docs.mkdir(parents=True)
    for name, content in scans.items():
        (docs / name).write_bytes(content)
    code = "from sigpipe.cli import main; main()"
    args = ["run", str(docs), "--refs", str(EXAMPLE / "refs"), "--out", str(out), "--progress", *extra]
    return subprocess.run([sys.executable, "-c", code, *args], stdout=stdout, stderr=stderr, timeout=300,
                          env={"SIGPIPE_CACHE": str(home / "cache"), "PATH": "/usr/bin:/bin", "HOME": str(home)}
                          ).returncode


def closed_pipe() -> IO[bytes]:
    """The writing end of a pipe whose reader is gone, as ``| head`` leaves it once head has exited."""
    r, w = os.pipe()
    os.close(r)
    return os.fdopen(w, "wb")


def cheque() -> dict[str, bytes]:
    return {"0001_cheque.png": (EXAMPLE / "scans" / "0001_cheque.png").read_bytes()}


def assert_done(out: Path) -> None:
    assert (out / "0001_cheque.png.json").is_file() and (out / "summary.csv").is_file()
    assert json.loads((out / "summary.json").read_text())["documents"] == 1


@needs_dev_full
@pytest.mark.parametrize("extra", [(), ("--workers", "2", "--no-progress")])  # logging alone; a pool to start
def test_a_full_stderr_does_not_stop_the_run(home: Path, tmp_path: Path, extra: tuple[str, ...]):
    with open("/dev/full", "wb") as full:
        assert sigpipe_run(home, cheque(), tmp_path / "out", subprocess.PIPE, full, *extra) == 0
    assert_done(tmp_path / "out")


def test_a_reader_gone_from_stdout_and_stderr_does_not_stop_the_run(home: Path, tmp_path: Path):
    with closed_pipe() as pipe:  # sigpipe run ... 2>&1 | head -1
        assert sigpipe_run(home, cheque(), tmp_path / "out", pipe, pipe) == 0
    assert_done(tmp_path / "out")


@needs_dev_full
@pytest.mark.parametrize("target", ["full", "closed pipe"])
def test_an_unwritable_stdout_keeps_the_exit_code_and_says_nothing_of_it(home: Path, tmp_path: Path, target: str):
    stderr = tmp_path / "stderr"
    with open("/dev/full", "wb") if target == "full" else closed_pipe() as stdout, stderr.open("wb") as err:
        assert sigpipe_run(home, cheque(), tmp_path / "out", stdout, err) == 0
    assert_done(tmp_path / "out")
    text = stderr.read_text()
    assert "1/1 documents" in text  # the progress lines, on a stderr that works
    assert "Traceback" not in text and "Exception ignored" not in text and "Error" not in text


@pytest.mark.parametrize("extra", [(), ("--workers", "2")])  # the workers log the failure themselves
def test_names_reach_stderr_escaped(home: Path, tmp_path: Path, extra: tuple[str, ...]):
    err = tmp_path / "stderr"
    with err.open("wb") as stderr:  # the hostile document is no PDF: it fails, and the log says so, naming it
        assert sigpipe_run(home, {**cheque(), HOSTILE: b"not a pdf"}, tmp_path / "out", subprocess.DEVNULL,
                           stderr, *extra) == 1
    text = err.read_text()
    assert "ERROR sigpipe.pipeline.flow: b\\r\\x1b[2K\\x1b[1AINFO all genuine\\x1b[8m.pdf: not a PDF" in text
    assert not any(c in text for c in "\r\x1b")
    report = json.loads((tmp_path / "out" / (HOSTILE + ".json")).read_text())
    assert report["document"]["path"] == HOSTILE  # the reports keep the name as it is


def test_a_name_holding_a_newline_cannot_forge_a_log_line():
    record = logging.LogRecord("sigpipe.x", logging.WARNING, __file__, 1, "%s: corrupt", (
        "x.png\nINFO sigpipe.pipeline.cli: 0 document(s) forged or needing review.png",), None)
    text = PrintableFormatter("%(levelname)s %(name)s: %(message)s").format(record)
    assert "\n" not in text and text.startswith("WARNING sigpipe.x: x.png\\nINFO sigpipe.pipeline.cli: 0 document")
