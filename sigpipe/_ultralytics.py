"""The one place that configures Ultralytics before it is first imported.

Ultralytics checks connectivity on import, tries to download fonts for plots, phones home with analytics when
``sync`` is on, auto-installs export dependencies, and sets torch to ``cpu_count - 1`` threads. Every sigpipe module
that needs Ultralytics gets it through :func:`yolo_class` so none of that happens.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path
from typing import Any

_configured = False


def cache_dir() -> Path:
    """sigpipe's cache folder: ``$SIGPIPE_CACHE`` or ``$XDG_CACHE_HOME/sigpipe`` (``~/.cache/sigpipe``).

    Raises:
        InputError: none of these can be named: no variable set and an account without a home folder (an
            arbitrary uid in a container, ``env -i``).
    """
    env = os.environ.get("SIGPIPE_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        try:
            base = str(Path.home() / ".cache")
        except RuntimeError as e:  # "Could not determine home directory."
            from sigpipe.errors import InputError

            raise InputError("no cache folder: this account has no home folder; set SIGPIPE_CACHE (or "
                             "XDG_CACHE_HOME) to a folder of its own") from e
    return Path(base) / "sigpipe"


def threads_from_env() -> int | None:
    """``$SIGPIPE_THREADS`` as a number of threads, or None (all cores) when it is not set or 0, as ``--threads 0``.

    Raises:
        InputError: it is set to something else than a whole number of at least 0 (named, with its value).
    """
    env = os.environ.get("SIGPIPE_THREADS", "").strip()
    if not env:
        return None
    try:
        n = int(env)
    except ValueError:
        n = -1
    if n < 0:
        from sigpipe.errors import InputError

        raise InputError(f"SIGPIPE_THREADS must be a whole number of CPU threads (0: all cores), got {env!r}")
    return n or None


def usable_cores() -> int:
    """The CPUs this process may use: its affinity mask (``taskset``, a container's ``--cpuset-cpus``), and no more
    than its CPU quota (a container's ``--cpus``, a Kubernetes pod's ``limits.cpu``, rounded up): a pod limited to 2
    CPUs on a 64-core node ran 64 threads, throttled."""
    try:
        cores = max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        cores = max(1, os.cpu_count() or 1)
    quota = cpu_quota()
    return min(cores, max(1, math.ceil(quota))) if quota is not None else cores


def cpu_quota(root: Path = Path("/sys/fs/cgroup"), own: Path = Path("/proc/self/cgroup")) -> float | None:
    """This process's CPU quota in CPUs, None without one: the smallest of its cgroup's and its parents' (a systemd
    slice's ``CPUQuota`` over an unlimited service, a retest), cgroup v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us`` over
    ``cpu.cfs_period_us``; with a cgroup namespace (a container's own view) the root of ``root`` is its cgroup."""
    try:
        lines = own.read_text().splitlines()
    except OSError:
        return None
    quotas: list[float] = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, where = parts
        if controllers == "":  # v2
            folders, read = [root], _v2_quota
        elif "cpu" in controllers.split(","):  # v1
            folders, read = [root / controllers, root / "cpu"], _v1_quota
        else:
            continue
        for base in folders:
            at = base.joinpath(*[p for p in where.split("/") if p])
            for folder in (at, *at.parents):
                if not folder.is_relative_to(base):
                    break
                if (q := read(folder)) is not None:
                    quotas.append(q)
    return min(quotas) if quotas else None


def _v2_quota(folder: Path) -> float | None:
    try:
        limit, period = (folder / "cpu.max").read_text().split()[:2]
        return None if limit == "max" else int(limit) / int(period)
    except (OSError, ValueError, ZeroDivisionError):
        return None


def _v1_quota(folder: Path) -> float | None:
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        period = int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def default_threads() -> int:
    """Torch threads for inference/training: all usable cores (Ultralytics' default of cores-1 is 1.7x slower on 2
    cores), or ``$SIGPIPE_THREADS``."""
    return threads_from_env() or usable_cores()


def _install_font(config_dir: Path) -> None:
    """Put a real TTF where Ultralytics looks for Arial, so plotting never downloads one.

    Arimo (from the ``fontpkg-arimo`` dependency, SIL OFL) is metric-compatible with Arial.
    """
    import fontpkg

    target = config_dir / "Ultralytics"
    target.mkdir(parents=True, exist_ok=True)
    src = fontpkg.path("arimo")
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        dst = target / name
        if not dst.exists():
            shutil.copyfile(src, dst)


def configure(threads: int | None = None) -> None:
    """Set the offline environment for Ultralytics (idempotent). Must run before ``import ultralytics``."""
    global _configured
    import torch  # here, not at module level: the exported-model inference path never imports torch

    n = usable_cores() if threads == 0 else threads or default_threads()  # 0: all cores, as --threads 0
    torch.set_num_threads(n)
    if _configured:
        return
    config_dir = cache_dir() / "ultralytics"
    config_dir.mkdir(parents=True, exist_ok=True)
    os.environ["YOLO_OFFLINE"] = "1"
    # A .pt checkpoint is a pickle, and Ultralytics unpickles it whole (weights_only=False) unless told otherwise: a
    # model manifest from elsewhere (--detector-weights, default_backend "pt") could run code. Ultralytics' safe load
    # (weights_only=True with its own classes allowed) reads every checkpoint sigpipe writes, training ones included.
    os.environ.setdefault("ULTRALYTICS_SAFE_LOAD", "1")
    os.environ["YOLO_AUTOINSTALL"] = "0"
    os.environ["YOLO_VERBOSE"] = os.environ.get("YOLO_VERBOSE", "False")
    os.environ["YOLO_CONFIG_DIR"] = str(config_dir)
    _install_font(config_dir)
    import ultralytics.utils as uu  # noqa: E402  (first import happens here, after the environment is set)

    uu.SETTINGS.update({"sync": False, "datasets_dir": str(cache_dir() / "datasets")})
    try:
        import ultralytics.utils.torch_utils as tu

        tu.NUM_THREADS = n
    except (ImportError, AttributeError):  # pragma: no cover - older layouts
        pass
    uu.NUM_THREADS = n
    _configured = True


def yolo_class() -> Any:
    """``ultralytics.YOLO``, imported after :func:`configure`."""
    configure()
    from ultralytics import YOLO

    return YOLO
