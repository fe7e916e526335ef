"""Writing output files so that a failed run leaves none behind.

One rule for every file a command writes: a regular file (or a path that does not exist yet) is
written as a temporary file beside it and renamed into place once complete, so an interrupted or
failed run never leaves a partial file; a symbolic link is followed (the file it names is
replaced, the link stays). A special file — a FIFO, a character device such as ``/dev/null``, a
process's pipe under ``/dev/fd`` or ``/proc``, any path under ``/dev`` but the ordinary files of
``/dev/shm`` — is written in place and never replaced: renaming over it would put a regular file
where the device or pipe was.

A temporary file is named ``.qitcore-HOST-PID-XXXXXXXX.tmp`` after the host and process that
write it. A process killed outright (SIGKILL, a crash, the power) cannot remove its own, so the
next writer into the same folder removes those of this host whose process has ended
(:func:`sweep_stale`); another host's files, on a shared file system, are never touched.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import stat
from collections.abc import Callable, Iterator
from typing import IO

from ..errors import InvalidArgumentError

log = logging.getLogger("qitcore.files")

_TEMP_NAME = re.compile(r"\.qitcore-(?P<host>.+)-(?P<pid>[0-9]+)-[A-Za-z0-9_]{8}\.tmp")


def _host() -> str:
    import socket  # here: only a command that writes a file needs it

    # A name that cannot be mistaken for the separators around it.
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "host"


def make_temp(folder: str) -> tuple[int, str]:
    """A new private temporary file in ``folder`` (its descriptor and path), named after this host
    and process so that :func:`sweep_stale` can tell when it has been abandoned. Stale files of
    this host are swept first."""
    import tempfile  # here, not at the top: it loads shutil and random, which `qitcore --help` need not

    sweep_stale(folder)
    return tempfile.mkstemp(dir=folder, prefix=f".qitcore-{_host()}-{os.getpid()}-", suffix=".tmp")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's process (or an odd number): not ours to judge
    return True


def sweep_stale(folder: str) -> list[str]:
    """Removes the temporary files in ``folder`` that a process of this host left when it was
    killed: those whose process no longer exists. Returns their paths. Best effort: a file that
    cannot be removed stays, and nothing is raised."""
    host = _host()
    removed: list[str] = []
    try:
        names = [e.name for e in os.scandir(folder) if e.name.startswith(".qitcore-")]
    except OSError:
        return removed
    for name in names:
        match = _TEMP_NAME.fullmatch(name)
        if match is None or match["host"] != host or _alive(int(match["pid"])):
            continue
        path = os.path.join(folder, name)
        with contextlib.suppress(OSError):
            os.unlink(path)
            removed.append(path)
            log.info("removed %s, left by process %s when it was killed", path, match["pid"])
    return removed


def is_special(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a special file to be written in place (see the module's rule).

    Raises:
        InvalidArgumentError: ``path`` is a folder.
    """
    try:
        mode: int | None = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and stat.S_ISDIR(mode):
        raise InvalidArgumentError(f"{os.fspath(path)}: is a folder")
    absolute = os.path.abspath(path)
    # /dev/shm is a file system of ordinary files (shared memory): those are written as anywhere.
    in_devices = absolute.startswith(("/dev/", "/proc/")) and not absolute.startswith("/dev/shm/")
    return in_devices or (mode is not None and not stat.S_ISREG(mode))


@contextlib.contextmanager
def atomic_output(
    path: str | os.PathLike[str],
    *,
    private: bool = False,
    durable: bool = False,
    on_replaced: Callable[[], None] | None = None,
) -> Iterator[tuple[IO[bytes], str | None]]:
    """The output at ``path`` under the module's rule: yields the open binary file and the
    temporary file's path (``None`` for a special file, written in place). ``private`` files
    (keys) stay readable by their owner only; ``durable`` ones are synced to disk, with the
    rename, before the block is left. ``on_replaced()`` is called as soon as the output is in
    place, with Ctrl-C and SIGTERM held from the rename until it returns, so that what it records
    (that the output exists) is recorded whenever an interrupt comes."""
    if is_special(path):
        mode = "ab" if os.path.abspath(path).startswith(("/dev/fd/", "/proc/")) else "wb"
        with open(path, mode) as out:
            yield out, None
        return
    target = os.path.realpath(path)
    folder = os.path.dirname(target)
    handle, temp = make_temp(folder)
    try:
        with os.fdopen(handle, "wb") as out:
            yield out, temp
            if durable:
                out.flush()
                os.fsync(out.fileno())
        # mkstemp creates the file private; give it the permissions a plain open() would.
        if not private:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(temp, 0o666 & ~umask)
        with _signals_held():
            os.replace(temp, target)
            if on_replaced is not None:
                on_replaced()
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    if durable:
        # The rename itself is durable once the folder is synced.
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def start_writeback(out: IO[bytes], offset: int, length: int) -> None:
    """Asks the kernel to start writing ``length`` bytes of ``out`` at ``offset`` to disk now,
    without waiting for it, and to drop what of them is already written: a durable output is
    synced before its rename anyway, and the kernel by itself starts only past its dirty
    threshold (a tenth of memory), so a long computation's output would wait for the final sync
    and the disk would idle while the computation ran. Linux's ``POSIX_FADV_DONTNEED`` does both
    (its writeback does not wait); elsewhere, and on anything but a regular file, nothing."""
    if not _WRITE_BEHIND or length <= 0:
        return
    out.flush()
    with contextlib.suppress(OSError):
        os.posix_fadvise(out.fileno(), offset, length, os.POSIX_FADV_DONTNEED)


# Other systems' POSIX_FADV_DONTNEED may drop dirty pages' data or do nothing; only Linux's is known
# to start their writeback.
_WRITE_BEHIND = hasattr(os, "posix_fadvise") and os.uname().sysname == "Linux"


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM held back (delivered on leaving) in the main thread, where Python runs
    their handlers; elsewhere, or where signals cannot be blocked, nothing is held."""
    import signal
    import threading

    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str], *, private: bool = False) -> Iterator[IO[bytes]]:
    """:func:`atomic_output`'s file alone: a binary file that appears at ``path`` only when the
    ``with`` block completes (a special file is written in place)."""
    with atomic_output(path, private=private) as (out, _):
        yield out


def write_atomically(path: str | os.PathLike[str], text: str) -> None:
    """Writes ``text`` (UTF-8) to ``path`` through :func:`atomic_file`."""
    with atomic_file(path) as out:
        out.write(text.encode("utf-8"))
