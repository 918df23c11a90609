"""What a scheduler's environment gives ``sigpipe``: a locale whose encoding is not UTF-8, closed standard
descriptors, a full temporary folder, a malformed ``$SIGPIPE_THREADS``."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from sigpipe.cli import cli
from sigpipe.errors import InputError
from sigpipe.pipeline.errors import TemporaryFolderError
from sigpipe.pipeline.progress import Progress

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str, env: dict[str, str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=120, **kw)  # type: ignore[call-overload]


def test_file_names_are_read_as_utf8_whatever_the_locale(tmp_path: Path):
    """Under a locale whose encoding is not UTF-8 (here the C locale with Python's own UTF-8 fallbacks turned off,
    as a Latin-1 locale of a scheduler agent does), "José cheque.png" was read as another name than the claims CSV
    gives it: the claim matched nothing and a forgery came out genuine as someone else's signature."""
    (tmp_path / "José cheque.png").write_bytes(b"")
    code = ("import os, sys\nfrom sigpipe.cli import utf8_file_names\nutf8_file_names()\n"
            f"print(sys.flags.utf8_mode, sys.getfilesystemencoding(), "
            f"os.listdir({str(tmp_path)!r}) == ['Jos\\u00e9 cheque.png'])")  # the code itself ASCII
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "PYTHONCOERCECLOCALE": "0",
           "PYTHONUTF8": "0"}
    plain = _python("import sys; print(sys.getfilesystemencoding())", env)
    if plain.stdout.strip().lower().replace("-", "") == "utf8":
        pytest.skip("this Python reads file names as UTF-8 under any locale")
    r = _python(code, env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1", "utf-8", "True"]
    # a script read from stdin would be found consumed by a second run (exit 0, nothing done): refused instead
    r = subprocess.run([sys.executable, "-"], input="from sigpipe.cli import utf8_file_names\nutf8_file_names()\n"
                       "print('went on')\n", env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and "went on" not in r.stdout and "a script read from stdin" in r.stderr


def test_closed_standard_descriptors_are_opened_on_devnull():
    """Started with stderr closed (a daemon's descriptors), the next file opened took descriptor 2, where native
    libraries write their warnings, and Python's stderr was None, on which the progress line stopped the run."""
    code = ("import os, sys\nfrom sigpipe.cli import standard_streams\nstandard_streams()\n"
            "f = open(os.devnull)\nsys.stderr.write('x\\n')\nsys.stderr.flush()\n"
            "print(f.fileno() > 2, sys.stderr is not None, os.path.realpath('/proc/self/fd/2'))")
    r = _python(code, dict(os.environ), preexec_fn=lambda: os.close(2))
    assert r.returncode == 0
    assert r.stdout.split() == ["True", "True", os.devnull]


def test_progress_without_a_stderr_is_off(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(sys, "stderr", None)
    p = Progress(3)
    p.update(1)  # raised AttributeError: None has no write
    assert not p.enabled and p.done == 1


def test_a_malformed_sigpipe_threads_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    from sigpipe._ultralytics import threads_from_env
    from sigpipe.pipeline.runner import available_cores

    monkeypatch.setenv("SIGPIPE_THREADS", "3")
    assert threads_from_env() == 3 and available_cores() == 3
    # 0 is all cores, as --threads 0 is in every command (it was 1 thread here, all cores in training)
    monkeypatch.setenv("SIGPIPE_THREADS", "0")
    assert threads_from_env() is None and available_cores() == len(os.sched_getaffinity(0))
    for bad in ("abc", "-2"):
        monkeypatch.setenv("SIGPIPE_THREADS", bad)
        with pytest.raises(InputError, match=f"SIGPIPE_THREADS must be a whole number of CPU threads .0: all "
                                             f"cores., got '{bad}'"):
            available_cores()
    import cv2
    import numpy as np

    (tmp_path / "scans").mkdir()
    (tmp_path / "refs" / "alice").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "scans" / "a.png"), np.full((50, 50), 255, np.uint8))
    cv2.imwrite(str(tmp_path / "refs" / "alice" / "a.png"), np.full((50, 50), 255, np.uint8))
    r = CliRunner().invoke(cli, ["run", str(tmp_path / "scans"), "--refs", str(tmp_path / "refs"), "--out",
                                 str(tmp_path / "out")])
    assert r.exit_code == 2 and "SIGPIPE_THREADS" in r.output


def test_a_full_temporary_folder_stops_a_run_with_workers_in_one_line(monkeypatch: pytest.MonkeyPatch):
    """With --workers or --timeout the enrolled references go to the workers through a file in $TMPDIR: a full one
    gave a traceback and exit 1 with no report."""
    from sigpipe.pipeline.runner import _handover

    def full(*a: object, **k: object) -> str:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tempfile, "mkdtemp", full)
    with pytest.raises(TemporaryFolderError, match="No space left on device.*set TMPDIR"), _handover({}):
        pass


def test_the_processes_a_process_started_are_found():
    import time

    from sigpipe.pipeline.runner import _command, descendants

    child = subprocess.Popen(["sleep", "30"])
    try:
        deadline = time.monotonic() + 5
        while _command(child.pid) != "sleep" and time.monotonic() < deadline:  # named once it has exec'd
            time.sleep(0.05)
        assert child.pid in descendants(os.getpid()) and _command(child.pid) == "sleep"
    finally:
        child.kill()
        child.wait()


def test_a_program_of_one_s_own_is_warned_when_names_are_not_read_as_utf8():
    code = ("import logging\nlogging.basicConfig()\nfrom sigpipe.pipeline.runner import warn_non_utf8_names\n"
            "warn_non_utf8_names()")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "PYTHONCOERCECLOCALE": "0",
           "PYTHONUTF8": "0"}
    r = _python(code, env)
    if "utf" in _python("import sys; print(sys.getfilesystemencoding())", env).stdout.lower():
        pytest.skip("this Python reads file names as UTF-8 under any locale")
    assert r.returncode == 0 and "file names are read as ascii, not UTF-8" in r.stderr
    assert "not UTF-8" not in _python(code, {**env, "PYTHONUTF8": "1"}).stderr


def test_as_a_containers_init_a_sigterm_before_the_command_starts_ends_the_process():
    """pid 1 (a container without --init) drops a signal it has no handler for: a `docker stop` in the first moments
    of a run, before `sigpipe run` set its own handler, was lost and the run went on until SIGKILL."""
    script = (
        "import os, signal, sys\n"
        "real = os.getpid()\n"
        "os.getpid = lambda: 1\n"
        "from sigpipe import cli\n"
        "sys.argv = ['sigpipe', '--version']\n"
        "try:\n"
        "    cli.main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(signal.getsignal(signal.SIGTERM) is cli._stopped_early, flush=True)\n"
        "os.kill(real, signal.SIGTERM)\n"
        "import time; time.sleep(30)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip().endswith("True") and done.returncode == 143, (done.stdout, done.stderr)


def test_the_cores_used_follow_a_containers_cpu_quota(tmp_path: Path):
    """A pod limited to 2 CPUs on a 64-core node ran 64 threads, throttled (a container audit): the CPU quota, cgroup
    v2 or v1, rounded up, caps the cores."""
    from sigpipe._ultralytics import cpu_quota

    v2, v1 = tmp_path / "v2", tmp_path / "v1"
    (v2 / "kubepods" / "pod1").mkdir(parents=True)
    (v2 / "kubepods" / "pod1" / "cpu.max").write_text("150000 100000\n")
    (tmp_path / "v2.cgroup").write_text("0::/kubepods/pod1\n")
    assert cpu_quota(v2, tmp_path / "v2.cgroup") == 1.5
    (v2 / "cpu.max").write_text("max 100000\n")  # the container's own view: its cgroup is the root
    (tmp_path / "ns.cgroup").write_text("0::/\n")
    assert cpu_quota(v2, tmp_path / "ns.cgroup") is None
    (v1 / "cpu,cpuacct" / "docker" / "abc").mkdir(parents=True)
    (v1 / "cpu,cpuacct" / "docker" / "abc" / "cpu.cfs_quota_us").write_text("200000\n")
    (v1 / "cpu,cpuacct" / "docker" / "abc" / "cpu.cfs_period_us").write_text("100000\n")
    (tmp_path / "v1.cgroup").write_text("4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n0::/\n")
    assert cpu_quota(v1, tmp_path / "v1.cgroup") == 2.0
    (v1 / "cpu,cpuacct" / "docker" / "abc" / "cpu.cfs_quota_us").write_text("-1\n")
    assert cpu_quota(v1, tmp_path / "v1.cgroup") is None
    assert cpu_quota(v1, tmp_path / "missing") is None
    # a systemd slice's CPUQuota above an unlimited service (a retest), and files no kernel writes
    (v2 / "system.slice" / "batch.service").mkdir(parents=True)
    (v2 / "system.slice" / "cpu.max").write_text("200000 100000\n")
    (v2 / "system.slice" / "batch.service" / "cpu.max").write_text("max 100000\n")
    (tmp_path / "svc.cgroup").write_text("0::/system.slice/batch.service\n")
    assert cpu_quota(v2, tmp_path / "svc.cgroup") == 2.0
    (v2 / "system.slice" / "cpu.max").write_text("100000 0\n")
    assert cpu_quota(v2, tmp_path / "svc.cgroup") is None
    (v2 / "system.slice" / "cpu.max").write_text("1.5e5 100000\n")
    assert cpu_quota(v2, tmp_path / "svc.cgroup") is None


def test_a_run_stopped_while_a_library_loads_is_stopped_not_a_broken_model():
    """SIGTERM during onnxruntime's import: onnxruntime turned the run's own stop into ImportError("initialization
    failed"), reported as a model that could not load, exit 2 instead of 143 (a retest)."""
    from sigpipe.errors import ModelError, model_load_error
    from sigpipe.pipeline.cli import Terminated

    try:
        try:
            raise Terminated()
        except Terminated:
            raise ImportError("initialization failed")  # noqa: B904 - as the library does
    except ImportError as e:
        assert isinstance(model_load_error("cannot load ONNX verifier v.onnx", e), Terminated)
    broken = model_load_error("cannot load ONNX verifier v.onnx", ValueError("not a model"))
    assert isinstance(broken, ModelError) and str(broken) == "cannot load ONNX verifier v.onnx: not a model"
