"""Walking the folders sigpipe reads (SCANS, a person's folder in REFS): one rule for both; opening regular files."""

from __future__ import annotations

import errno
import hashlib
import os
import shlex
import shutil
import stat
import tempfile
import time
import unicodedata
from collections.abc import Callable, Collection, Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any, BinaryIO

# Files a bank or a legal team may well drop into SCANS as documents (or REFS as specimens), which sigpipe does not
# read: each document gets a report saying so (error kind unsupported_format), each specimen a reference error, where
# they were passed over without a word, a cheque photographed on a phone (HEIC) or a scan saved as JPEG 2000 never
# checked. What each is, and what to do.
_PHONE = "convert it to JPEG or PDF"
_SAVE_AS = "save the scan as PDF, TIFF, PNG or JPEG"
_PRINT = "print or export it to PDF"
_ATTACHMENTS = "save its attachments into SCANS and move the e-mail out"
_EXTRACT = "extract it into SCANS and move the archive out"
UNREAD_DOCUMENTS = {
    ".heic": ("a HEIC photo (an iPhone's)", _PHONE), ".heif": ("a HEIF photo", _PHONE),
    ".avif": ("an AVIF image", _PHONE), ".webp": ("a WebP image", _SAVE_AS), ".gif": ("a GIF image", _SAVE_AS),
    ".jxl": ("a JPEG XL image", _SAVE_AS), ".jp2": ("a JPEG 2000 image", _SAVE_AS),
    ".j2k": ("a JPEG 2000 image", _SAVE_AS), ".jpx": ("a JPEG 2000 image", _SAVE_AS),
    ".jpf": ("a JPEG 2000 image", _SAVE_AS), ".doc": ("a Word document", _PRINT),
    ".docx": ("a Word document", _PRINT), ".odt": ("an OpenDocument text", _PRINT),
    ".rtf": ("an RTF document", _PRINT), ".xps": ("an XPS document", _PRINT), ".oxps": ("an XPS document", _PRINT),
    ".eml": ("an e-mail", _ATTACHMENTS), ".msg": ("an Outlook e-mail", _ATTACHMENTS),
    ".zip": ("a ZIP archive", _EXTRACT), ".7z": ("a 7-Zip archive", _EXTRACT), ".rar": ("a RAR archive", _EXTRACT),
    ".ps": ("a PostScript file", _PRINT), ".eps": ("an EPS file", _PRINT),
    # a contract signed digitally in an envelope (CAdES, Italy's and the EU's courts): the PDF is inside
    ".p7m": ("a signed envelope (CAdES .p7m)", "take the signed PDF out of it first (openssl cms -verify -noverify "
             "-inform DER -in FILE.p7m -out FILE.pdf) and put that in SCANS"),
    # its cheques unverified unsaid when it lay beside other scans (a README audit; alone, the run stops saying so)
    **dict.fromkeys((".x937", ".x9", ".icl"), (
        "an image cash letter (X9.37)", "split it into its cheques with 'sigpipe x9 split FILE --out FOLDER' and run "
        "on that folder with the claims.csv it writes")),
}


def holds_image(head: bytes) -> bool:
    """Whether a file's first bytes are those of a PNG, JPEG, TIFF or BMP image (what sigpipe reads of images,
    whatever the file's name says; a BMP's reserved bytes are checked too, "BM" alone is too common a start)."""
    return head.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*")) or (
        head[:2] == b"BM" and head[6:10] == bytes(4))


def visible_files(root: Path, unreadable: Callable[[OSError], None]) -> Iterator[Path]:
    """Every file under ``root`` whose name and folders are not hidden (``.`` first), broken links included (the
    caller tells them apart); linked folders are followed, each real folder once (a link back up the tree is not
    walked again). A folder that cannot be listed goes to ``unreadable`` (its ``filename`` names it) instead of being
    skipped without a word. A linked folder whose target is also reached under ``root`` without a link is walked
    under its own name, not the link's, whichever the folder listing gives first: the names are what claims and
    reports use (a link ``zlink -> real`` listed first took ``real/x.tif`` and its claim)."""
    seen: set[str] = set()
    top = os.path.realpath(root)
    for folder, dirs, names in os.walk(root, followlinks=True, onerror=unreadable):
        real = os.path.realpath(folder)
        if real in seen:
            dirs.clear()
            continue
        seen.add(real)
        dirs[:] = [d for d in dirs if not d.startswith(".") and not _reached_unlinked(os.path.join(folder, d), top)]
        yield from (Path(folder, name) for name in names if not name.startswith("."))


def _reached_unlinked(folder: str, top: str) -> bool:
    """Whether ``folder`` is a link to a folder that the walk from the real folder ``top`` reaches without links."""
    if not os.path.islink(folder):
        return False
    target = os.path.realpath(folder)
    if target == top or not target.startswith(top.rstrip(os.sep) + os.sep):
        return target == top  # a link back to the top is walked there already
    at = top
    for part in os.path.relpath(target, top).split(os.sep):
        at = os.path.join(at, part)
        if part.startswith(".") or os.path.islink(at):
            return False
    return os.path.isdir(target)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def name_folding(folder: Path) -> tuple[Callable[[str], str], str] | None:
    """How the file system holding ``folder`` tells file names apart, found by making (and removing) probe files in
    it; None where every name is its own file (Linux's own file systems). Else a function from a ``/``-separated
    relative name to the key two names share when they are one file there, and what it ignores in words: case
    (SMB shares, vfat and exFAT drives, macOS), trailing dots and spaces (vfat), Unicode forms (macOS). Two
    documents ``Cheque.pdf`` and ``cheque.pdf`` would otherwise share one report file there, the later one's
    overwriting the earlier one's without a word."""
    tag = f".sigpipe-probe-{os.getpid()}-{os.urandom(4).hex()}-"
    made: list[str] = []

    def make(name: str) -> bool:
        try:
            os.close(os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0),
                             0o600))
        except OSError:  # refused (SMB: a trailing dot), or OUT not writable: the run says so when it writes
            return False
        made.append(name)
        return True

    try:
        case = make(tag + "Aa") and os.path.lexists(folder / (tag + "aA"))
        wide = case and make(tag + "\u00c9") and os.path.lexists(folder / (tag + "\u00e9"))  # not ASCII only (vfat)
        strip = make(tag + "t. ") and os.path.lexists(folder / (tag + "t"))
        forms = make(tag + "\u00e8") and os.path.lexists(folder / (tag + "e\u0300"))
    finally:
        for name in made:
            with suppress(OSError):
                os.unlink(folder / name)
    if not (case or strip or forms):
        return None

    def key(name: str) -> str:
        parts = name.split("/")
        if forms:
            parts = [unicodedata.normalize("NFC", p) for p in parts]
        if strip:
            parts = [p.rstrip(". ") or p for p in parts]
        if case:
            parts = [p.lower() if wide else p.translate(_ASCII_LOWER) for p in parts]
        return "/".join(parts)

    ignored = [what for what, on in (("case", case), ("trailing dots and spaces", strip), ("Unicode forms", forms))
               if on]
    return key, " and ".join(ignored)


def open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    """``path`` opened for reading in binary, refusing anything but a regular file: opening a FIFO (a scan swapped
    for one in a drop folder, a link to one) blocks until a writer comes, for ever, where no timeout applies; a
    device (``/dev/zero``) never ends.

    Raises:
        OSError: the file cannot be opened, or is not a regular file (``errno.EINVAL``).
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise OSError(errno.EISDIR, "a folder, not a file", str(path))
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, "not a regular file (a FIFO, device or socket)", str(path))
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


# Bytes of one document (or reference specimen) at the most: a sparse file of 50 GB takes 4 KB on disk and a minute to
# hash and copy; a scan of 4 GiB would be 2,000 pages of 2 MB
MAX_DOCUMENT_BYTES = 4 << 30
COPY_PREFIX = "sigpipe-doc-"  # + the pid: a copy left by a killed process is found by its next run (owned_folder)
OWNER_FILE = ".owner"  # in each such folder: locked by its process while it lives
UNLOCKED_GRACE_S = 60.0  # a folder without its lock file yet, being made: not judged by its number before this


class CopyError(OSError):
    """The private copy could not be written (the temporary folder full or unwritable): the run's fault, not the
    document's."""


def temporary_folder() -> str:
    """The temporary folder (``tempfile.gettempdir()``: ``$TMPDIR``, ``/tmp``...), but never the working folder,
    Python's last resort, taken without a word where none of the others can be written (a container's read-only
    root): with SCANS (or REFS) as the working folder, a killed run's copies of scans were read as documents (or
    specimens as a person) the next night.

    Raises:
        OSError: no temporary folder (``errno.ENOENT``), the message says what to do.
    """
    why = ("no temporary folder to copy documents into: TMPDIR, TEMP and TMP are not set or not writable, and "
           "neither are /tmp, /var/tmp and /usr/tmp")
    try:
        folder = tempfile.gettempdir()
    except FileNotFoundError:
        raise OSError(errno.ENOENT, f"{why}; set TMPDIR to a folder of this account's with room for a few "
                                    "documents") from None
    named = {os.path.realpath(p) for p in (*(os.environ.get(v) for v in ("TMPDIR", "TEMP", "TMP")), "/tmp",
                                          "/var/tmp", "/usr/tmp") if p}
    real = os.path.realpath(folder)
    if real == os.path.realpath(os.getcwd()) and real not in named:
        raise OSError(errno.ENOENT, f"{why}, and Python's last resort, the working folder ({folder}), is not one; "
                                    "set TMPDIR to a folder of this account's with room for a few documents")
    return folder


@contextmanager
def owned_folder(prefix: str) -> Iterator[Path]:
    """A new folder ``<prefix><pid>-*`` of this process in the temporary folder (mode 0700), removed after, that
    holds :data:`OWNER_FILE` locked (``flock``) while it lives: the kernel lets the lock go when the process ends,
    however it ends, so :func:`remove_stale_folders` tells a dead process's folder by its free lock. By the process
    number alone a container's run, always pid 1, took the folders of the same container killed the night before
    for its own and kept customers' scans for ever, and took another container's live folders (pid 7 there, none
    here) for a dead process's and removed them.

    Raises:
        OSError: the folder or its lock cannot be made (the temporary folder full or unwritable).
    """
    folder = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=temporary_folder()))
    fd = -1
    try:
        fd = _lock_owner(folder)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # before the lock goes: never a live folder with a free lock
        if fd >= 0:
            os.close(fd)


def _lock_owner(folder: Path) -> int:
    """Make ``folder``'s :data:`OWNER_FILE`, locked, and return its descriptor; locked under another name first, so
    that no other process ever finds it unlocked. No lock where the system has no ``flock`` (-1)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: folders are judged by their process number
        return -1
    making = folder / f"{OWNER_FILE}.new"
    fd = os.open(making, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(making, folder / OWNER_FILE)
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextmanager
def private_copy(path: str | os.PathLike[str], max_bytes: int | None = None) -> Iterator[tuple[Path, str]]:
    """A copy of the regular file ``path``, under its own name in a new folder of this process's in the temporary
    folder (``$TMPDIR``; :func:`owned_folder`), and the sha256 of exactly the bytes copied. Read by path, a
    document could be one file when hashed and another when decoded (a link re-pointed, a file rewritten and put
    back between the reads), and its verdict would be recorded under the other's sha256; the copy is read once, and
    is what every reader then opens.

    Raises:
        OSError: the file cannot be read, is not a regular file, or (``errno.EFBIG``) holds more than ``max_bytes``
            (a sparse file of 50 GB takes 4 KB on disk and a minute to read); :class:`CopyError`: the copy cannot
            be written.
    """
    with open_regular(path) as src:
        size = os.fstat(src.fileno()).st_size
        if max_bytes is not None and size > max_bytes:
            raise OSError(errno.EFBIG, f"{size} bytes, over the limit of {max_bytes} a document", str(path))
        with ExitStack() as stack:
            try:
                folder = stack.enter_context(owned_folder(COPY_PREFIX))
            except OSError as e:
                raise CopyError(e.errno, e.strerror, e.filename) from e
            copy = folder / Path(path).name
            h = hashlib.sha256()
            copied = 0
            with open(copy, "xb") as out:
                while block := src.read(1 << 20):
                    copied += len(block)
                    if max_bytes is not None and copied > max_bytes:  # it grew after it was measured
                        raise OSError(errno.EFBIG, f"over {max_bytes} bytes, the limit a document", str(path))
                    h.update(block)
                    try:
                        out.write(block)
                    except OSError as e:
                        raise CopyError(e.errno, e.strerror, str(folder)) from e
            yield copy, h.hexdigest()


def remove_stale_folders(prefix: str) -> int:
    """Remove the temporary folders ``<prefix><pid>-*`` (in ``tempfile.gettempdir()``, :func:`owned_folder`) of
    this account's processes that are gone: a worker killed by --timeout or for memory, a run killed outright. Gone
    is told by the folder's lock, free once its process has ended (in any container sharing the folder); a folder
    without one (an older release's) by its process number. A link and another account's folder are left alone.
    Returns how many were removed."""
    removed = 0
    try:
        where = temporary_folder()
    except OSError:  # none: nothing was left in one either
        return 0
    for folder in Path(where).glob(f"{prefix}*"):
        pid = folder.name[len(prefix):].split("-", 1)[0]
        try:
            if not pid.isdigit() or folder.is_symlink() or not folder.is_dir() or folder.stat().st_uid != os.getuid():
                continue
        except OSError:
            continue
        with _free_lock(folder) as free:
            if free is False or free is None and not _dead(int(pid), folder):
                continue
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


@contextmanager
def _free_lock(folder: Path) -> Iterator[bool | None]:
    """Whether ``folder``'s :data:`OWNER_FILE` lock is free (held by this process until the block ends: one remover
    at a time), False when its process holds it, None when it has none."""
    try:
        import fcntl

        fd = os.open(folder / OWNER_FILE, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except (ImportError, OSError):
        yield None
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: its process lives
            yield False
            return
        yield True
    finally:
        os.close(fd)


def _dead(pid: int, folder: Path) -> bool:
    """Whether the process that made a folder without a lock (an older release's, or one whose lock is being made)
    is gone: no process ``pid``, or a zombie; a folder younger than :data:`UNLOCKED_GRACE_S` is not judged."""
    try:
        if time.time() - folder.stat().st_mtime < UNLOCKED_GRACE_S:
            return False
        if pid == os.getpid():  # this process makes its folders with a lock: a former process of this number's
            return True  # (a container's run is pid 1 every night)
        os.kill(pid, 0)  # raises when no such process
    except ProcessLookupError:
        return True
    except OSError:  # another account's process (still running), or the folder gone meanwhile
        return False
    return _gone(pid)


def _gone(pid: int) -> bool:
    """Whether process ``pid``, which exists, is a zombie (killed, not yet reaped): its folders are stale. (A number
    used again by a later process is not told apart: start times read against the wall clock, which may be set
    forward during a run, could take a live run's folder for a dead one's.) Linux's ``/proc``."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return False


def remove_stale_copies() -> int:
    """Remove the private copies (:func:`private_copy`) of processes that are gone: each holds a customer's scan, and
    the next night would add another. Returns how many were removed."""
    return remove_stale_folders(COPY_PREFIX)


def untrusted_folder(folder: Path, owners: Collection[int]) -> str | None:
    """Why a cache ``folder`` (its real path, links resolved) cannot be trusted, or None. Whoever can write it, or
    replace it, decides what is read from it. Trusted: the folder owned by one of ``owners`` (this account, root,
    and whoever owns the data it caches: its group may write it) and not writable by every account; every folder
    above it owned by one of them too and, if every account may write it, sticky (as ``/tmp`` is, where others
    cannot rename what is not theirs). Not checked where the system has no accounts."""
    if not hasattr(os, "getuid"):
        return None
    for where in (folder, *folder.parents):
        st = where.stat()
        open_to_all = st.st_mode & stat.S_IWOTH
        if open_to_all and (where == folder or not st.st_mode & stat.S_ISVTX):
            return f"{where} is writable by every account"
        if st.st_uid not in owners:
            return f"{where} belongs to another account (uid {st.st_uid}) than this one, root or the data's owner"
    return None


def trusted_cache(folder: Path, data: Path) -> tuple[Path | None, str | None]:
    """``folder`` created if need be (mode 0700: what it holds is biometric data), and its real path when it can be
    trusted (:func:`untrusted_folder`, ``data``'s owner trusted as this account is), else None and why. The real
    path is what the caller then uses: a link re-pointed after the check cannot send it elsewhere.

    Raises:
        OSError: the folder cannot be created or examined.
    """
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    real = folder.resolve(strict=True)
    owners = {os.getuid(), 0, data.stat().st_uid} if hasattr(os, "getuid") else set()
    why = untrusted_folder(real, owners)
    return (real, None) if why is None else (None, why)


def readable_by_all(folder: Path) -> str | None:
    """A warning when every account may read ``folder`` (a cache of signature images and embeddings, biometric data,
    created before sigpipe made such folders 0700, or by hand), else None. Group access is left as it is: a team
    may share a cache on purpose."""
    try:
        mode = folder.stat().st_mode
    except OSError:
        return None
    if not mode & (stat.S_IROTH | stat.S_IXOTH):
        return None
    return (f"{folder} can be read by every account on this machine (mode {stat.S_IMODE(mode):o}); it holds "
            f"signature images and embeddings, biometric data: chmod o-rwx {shlex.quote(str(folder))}")


def save_npz(path: Path, compressed: bool = False, **arrays: Any) -> None:
    """Write arrays to ``path`` through a new file of its own beside it (``mkstemp``: no planted link followed, no
    name another writer shares), renamed over ``path`` when whole."""
    import numpy as np

    fd, name = tempfile.mkstemp(prefix=f"{path.stem}.", suffix=".tmp.npz", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            (np.savez_compressed if compressed else np.savez)(f, **arrays)
        os.replace(name, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(name)
        raise
