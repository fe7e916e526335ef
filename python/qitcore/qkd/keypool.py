"""A persistent pool of pre-shared key for Wegman–Carter authentication (:mod:`qitcore.qkd.auth`).

Each end keeps its own pool file; both start with identical content (the pre-shared key, written
by :meth:`KeyPool.create` at each end) and are consumed in lockstep by the sessions between them.

The file is ``header | key bytes``. The 32-byte header holds a magic number, ``used`` (the
high-water mark: bytes handed out or reserved, never to be handed out again), ``size`` (bytes of
key in the file) and a CRC-32 of the first 24 bytes, so a torn or altered header is refused.

The rules that keep every key bit used at most once:

- **Recorded before use.** Bytes are reserved in steps of :data:`RESERVE` bytes (on a grid both
  ends share, offset 0 being the first key byte): the new ``used`` is written and fsynced before
  any reserved byte is handed out, then the reserved bytes are overwritten with zeros on disk
  (and fsynced) once read into memory. A process killed at any point loses at most the rest of
  its reservation; it never hands out a byte twice, even across restarts. Opening a pool zeroes
  any used byte still in clear on disk (a process that died, or a disk that failed, before the
  zeroing), and writes are checked to the last byte.
- **Never backwards.** :meth:`take` refuses an offset below what this pool object already handed
  out, and a fresh session starts at ``used`` (:meth:`begin`), so bytes reserved by a session
  that died are skipped, not reused.
- **Wiped.** Bytes handed out are zeroed in the pool's memory as they leave it; the caller wipes
  its copy (a ``bytearray``) once the tag is made. :meth:`close` wipes what remains.
- **One user.** The file is locked (``flock``, exclusive, non-blocking) while open: a second
  process (or a second :class:`KeyPool` on the same file) gets :class:`~qitcore.errors.KeyPoolBusy`.
- **Private.** Created with mode 0600; a file readable or writable by group or others is refused.

:meth:`replenish` appends key (the bits a session consumed, taken from its distilled key): the
bytes are written and fsynced, then ``size`` in the header. Both ends must append the same bytes
in the same order for the pools to stay equal; a session that ends at one end and not the other
(the last message lost) leaves the pools different past that point, and the next session that
reaches those bytes fails authentication: re-create both pools from new pre-shared key then.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import struct
import zlib

from .. import _validate
from ..errors import InvalidArgumentError, InvalidTypeError, KeyPoolBusy, KeyPoolError, KeyPoolExhausted

__all__ = ["RESERVE", "KeyPool"]

MAGIC = b"QITPOOL1"
HEADER = struct.Struct("<8sQQI4x")
RESERVE = 256
"""Bytes reserved (recorded durably) at a time: 16 round trips of Wegman–Carter tags, so a
Cascade session of ~450 round trips costs ~30 pairs of fsyncs per end, and a session loses at most
this many bytes when it starts or dies."""


def _header(used: int, size: int) -> bytes:
    head = struct.pack("<8sQQ", MAGIC, used, size)
    return HEADER.pack(MAGIC, used, size, zlib.crc32(head))


class KeyPool:
    """An open key pool file, locked for this object until :meth:`close`.

    Raises:
        KeyPoolError: the file is missing, unreadable, readable by others, has a corrupt header,
            or is shorter than its header says.
        KeyPoolBusy: another process (or pool object) has the file open.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        # Set first: close() (and __del__) must work whatever fails below.
        self._fd = -1
        # Reserved bytes not handed out yet: those of [self._handed, self._used).
        self._window = bytearray()
        self.path = _validate.path("path", path)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            raise KeyPoolError(f"key pool {self.path}: {exc.strerror or exc}") from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise KeyPoolBusy(f"key pool {self.path}: in use by another process") from None
                raise KeyPoolError(f"key pool {self.path}: cannot lock: {exc.strerror}") from None
            st = os.fstat(fd)
            if st.st_mode & 0o077:
                raise KeyPoolError(
                    f"key pool {self.path}: mode {st.st_mode & 0o777:o} lets others read or write it (chmod 600)"
                )
            head = os.pread(fd, HEADER.size, 0)
            if len(head) < HEADER.size:
                raise KeyPoolError(f"key pool {self.path}: {len(head)} bytes, shorter than its header")
            fields: tuple[bytes, int, int, int] = HEADER.unpack(head)
            magic, used, size, crc = fields
            if magic != MAGIC:
                raise KeyPoolError(f"key pool {self.path}: not a key pool file (bad magic)")
            if crc != zlib.crc32(head[:24]) or used > size:
                raise KeyPoolError(f"key pool {self.path}: corrupt header")
            if st.st_size < HEADER.size + size:
                raise KeyPoolError(
                    f"key pool {self.path}: holds {st.st_size - HEADER.size} key bytes, its header says {size}"
                )
            if st.st_size > HEADER.size + size:
                # Bytes appended by a replenish that died before its header was written: not key,
                # but key material all the same: overwritten before the file lets go of them.
                _zero(fd, HEADER.size + size, st.st_size - HEADER.size - size)
                os.ftruncate(fd, HEADER.size + size)
                os.fsync(fd)
            # A process that died between recording the mark and zeroing what it reserved left
            # those bytes in clear: every used byte is zeroed on disk before the pool is used.
            _zero_used(fd, used)
        except KeyPoolError:
            os.close(fd)
            raise
        except OSError as exc:
            os.close(fd)
            raise KeyPoolError(f"key pool {self.path}: {exc.strerror or exc}") from None
        except BaseException:
            os.close(fd)
            raise
        self._fd, self._used, self._size = fd, used, size
        self._handed = used

    @classmethod
    def create(cls, path: str | os.PathLike[str], key: bytes | bytearray | memoryview) -> KeyPool:
        """Writes a new pool file holding ``key`` (mode 0600; an existing file is not replaced)
        and opens it.

        Raises:
            KeyPoolError: the file exists or cannot be written.
            InvalidArgumentError: ``key`` is empty.
        """
        if not isinstance(key, (bytes, bytearray, memoryview)):
            raise InvalidTypeError(f"key: expected bytes, got {type(key).__name__}")
        data = bytes(key)
        if not data:
            raise InvalidArgumentError("key: a key pool needs at least one byte of key")
        path = _validate.path("path", path)
        # The name is taken first, empty and exclusively (an existing file is never replaced);
        # the key is written whole to a file of its own beside it, synced, and renamed over the
        # empty one: a write that fails (a full disk, a file size limit, Ctrl-C) leaves no partial
        # pool of key bytes behind (the partial file is zeroed, then both are removed).
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
        except OSError as exc:
            raise KeyPoolError(f"key pool {path}: {exc.strerror or exc}") from None
        temp = os.path.join(os.path.dirname(path) or ".", f".{os.path.basename(path)}.{os.urandom(6).hex()}.partial")
        written = False
        try:
            try:
                fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            except OSError as exc:
                raise KeyPoolError(f"key pool {path}: {exc.strerror or exc}") from None
            try:
                os.fchmod(fd, 0o600)  # whatever the umask
                _write_all(fd, _header(0, len(data)) + data, 0)
                os.fsync(fd)
                os.replace(temp, path)
                written = True
            except OSError as exc:
                raise KeyPoolError(f"key pool {path}: {exc.strerror or exc}") from None
            finally:
                if not written:
                    _wipe_file(fd)
                os.close(fd)
        finally:
            if not written:
                for leftover in (temp, path):
                    with contextlib.suppress(OSError):
                        os.unlink(leftover)
        _fsync_dir(path)
        return cls(path)

    def __repr__(self) -> str:
        state = "closed" if self._fd < 0 else f"used={self._used}, size={self._size}"
        return f"KeyPool({self.path!r}, {state}, key=<hidden>)"

    @property
    def used(self) -> int:
        """Bytes recorded as used (the high-water mark on disk)."""
        return self._used

    @property
    def size(self) -> int:
        """Bytes of key the pool file holds, used or not."""
        return self._size

    @property
    def available(self) -> int:
        """Bytes never handed out nor reserved."""
        return self._size - self._used

    @property
    def handed_out(self) -> int:
        """The first byte this object has not handed out: :meth:`take` refuses offsets below it."""
        return self._handed

    def _check_open(self) -> None:
        if self._fd < 0:
            raise KeyPoolError(f"key pool {self.path}: closed")

    def begin(self) -> int:
        """Starts a session: drops (wipes) what is reserved and not handed out, and returns the
        offset the session's first byte must have, ``used``. Both ends starting at the mark
        keeps the lockstep whichever end restarted."""
        self._check_open()
        self._wipe_window()
        self._handed = self._used
        return self._used

    def reserve(self, end: int) -> None:
        """Records durably that every byte below ``end`` is used (rounded up to the grid of
        :data:`RESERVE` bytes, at most the pool's size), reading the new bytes into memory and
        zeroing them on disk.

        Raises:
            KeyPoolExhausted: ``end`` is past the pool's size.
        """
        self._check_open()
        end = _validate.integer("end", end, minimum=0)
        if end > self._size:
            raise KeyPoolExhausted(
                f"key pool {self.path}: exhausted ({self._size - self._handed} bytes left, "
                f"{end - self._handed} needed): create both ends' pools again from new pre-shared key "
                "(qitcore qkd pool-create)"
            )
        if end <= self._used:
            return
        new = min(self._size, -(-end // RESERVE) * RESERVE)
        start, held = self._used, len(self._window)
        # The window grows into a new buffer (the old one wiped) and the fresh bytes are read
        # straight into it: no immutable copy of key is left behind.
        window = bytearray(held + new - start)
        window[:held] = self._window
        try:
            if os.preadv(self._fd, [memoryview(window)[held:]], HEADER.size + start) != new - start:
                raise KeyPoolError(f"key pool {self.path}: shorter than its header says")
            # The mark first, durably: from here these bytes are never handed out again.
            _write_all(self._fd, _header(new, self._size), 0)
            os.fsync(self._fd)
        except OSError as exc:
            window[:] = bytes(len(window))
            raise KeyPoolError(f"key pool {self.path}: {exc.strerror or exc}") from None
        except BaseException:
            window[:] = bytes(len(window))
            raise
        # The mark is on disk: the window moves to it before anything else can fail, so that the
        # pool's state stays whole (a failed zeroing below is repaired when the file is next opened).
        self._used = new
        self._wipe_window()
        self._window = window
        try:
            _zero(self._fd, HEADER.size + start, new - start)
            os.fsync(self._fd)
        except OSError as exc:
            raise KeyPoolError(f"key pool {self.path}: cannot zero used key: {exc.strerror or exc}") from None

    def take(self, offset: int, nbytes: int) -> bytearray:
        """Hands out the ``nbytes`` bytes at ``offset`` (reserving them first if needed); every
        byte below ``offset + nbytes`` counts as handed out afterwards. The caller wipes the
        returned ``bytearray`` when done with it.

        Raises:
            KeyPoolError: ``offset`` is below what was already handed out (a reuse refused).
            KeyPoolExhausted: the pool holds no bytes that far.
        """
        self._check_open()
        offset, nbytes = _span(offset, nbytes)
        if offset < self._handed:
            raise KeyPoolError(
                f"key pool {self.path}: bytes at {offset} were already handed out (up to {self._handed}): not reused"
            )
        self.reserve(offset + nbytes)
        lo = offset - self._handed
        out = self._window[lo : lo + nbytes]  # a new bytearray
        # Everything up to the end of these bytes leaves the window, wiped.
        self._window[: lo + nbytes] = bytes(lo + nbytes)
        del self._window[: lo + nbytes]
        self._handed = offset + nbytes
        return out

    def peek(self, offset: int, nbytes: int) -> bytearray:
        """The ``nbytes`` bytes at ``offset`` without handing them out (to check a stray peer's
        first frame); the caller wipes the copy.

        Raises:
            KeyPoolError: ``offset`` is below what was handed out.
            KeyPoolExhausted: the pool holds no bytes that far.
        """
        self._check_open()
        offset, nbytes = _span(offset, nbytes)
        if offset < self._handed:
            raise KeyPoolError(f"key pool {self.path}: bytes at {offset} were already handed out")
        if offset + nbytes > self._size:
            raise KeyPoolExhausted(f"key pool {self.path}: no key at {offset}")
        # The window holds [handed, used); the file the bytes from the mark on.
        lo = offset - self._handed
        out = bytearray(nbytes)
        held = max(0, min(nbytes, len(self._window) - lo))
        out[:held] = memoryview(self._window)[lo : lo + held]
        if held < nbytes:
            start = offset + held
            try:
                os.preadv(self._fd, [memoryview(out)[held:]], HEADER.size + start)
            except OSError as exc:
                raise KeyPoolError(f"key pool {self.path}: {exc.strerror or exc}") from None
        return out

    def replenish(self, key: bytes | bytearray | memoryview) -> None:
        """Appends ``key`` durably (the bytes, then the header's size, each fsynced)."""
        self._check_open()
        if not isinstance(key, (bytes, bytearray, memoryview)):
            raise InvalidTypeError(f"key: expected bytes, got {type(key).__name__}")
        if not len(key):
            return
        try:
            _write_all(self._fd, key, HEADER.size + self._size)
            os.fsync(self._fd)
            size = self._size + len(key)
            _write_all(self._fd, _header(self._used, size), 0)
            os.fsync(self._fd)
        except OSError as exc:
            raise KeyPoolError(f"key pool {self.path}: {exc.strerror or exc}") from None
        self._size = size

    def _wipe_window(self) -> None:
        self._window[:] = bytes(len(self._window))
        self._window = bytearray()

    def close(self) -> None:
        """Wipes the reserved bytes held in memory and releases the file and its lock (closing
        twice is harmless)."""
        self._wipe_window()
        if self._fd >= 0:
            os.close(self._fd)  # releases the flock
            self._fd = -1

    def __enter__(self) -> KeyPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


def _span(offset: object, nbytes: object) -> tuple[int, int]:
    # Offsets come from a frame's 64-bit field: any of them is a valid question (past the end: exhausted).
    largest = (1 << 64) - 1
    return (
        _validate.integer("offset", offset, minimum=0, maximum=largest),
        _validate.integer("nbytes", nbytes, minimum=0, maximum=largest),
    )


def _write_all(fd: int, data: bytes | bytearray | memoryview, offset: int) -> None:
    """``pwrite`` until every byte is written: a short write (a full disk) is retried, and one
    that writes nothing is an error, never a silently shorter file."""
    view = memoryview(data).cast("B")
    while view:
        written = os.pwrite(fd, view, offset)
        if written <= 0:
            raise OSError(errno.ENOSPC, "no space left to write the key pool")
        view, offset = view[written:], offset + written


_ZERO_CHUNK = 1 << 20


def _zero(fd: int, offset: int, length: int) -> None:
    """Overwrites ``length`` bytes at ``offset`` with zeros (the caller fsyncs)."""
    while length > 0:
        n = min(length, _ZERO_CHUNK)
        _write_all(fd, bytes(n), offset)
        offset, length = offset + n, length - n


def _zero_used(fd: int, used: int) -> None:
    """Zeroes, and fsyncs, any byte below the mark that is not zero on disk (a read pass of at most
    the pool's used bytes; a write only where a process died before zeroing its reservation). The
    bytes read pass through one buffer, wiped afterwards."""
    buf = bytearray(min(used, _ZERO_CHUNK))
    dirty = False
    try:
        offset = 0
        while offset < used:
            view = memoryview(buf)[: min(used - offset, _ZERO_CHUNK)]
            n = os.preadv(fd, [view], HEADER.size + offset)
            if n <= 0:
                break  # the file's size was checked against the header: nothing more to read
            if buf.count(0, 0, n) != n:
                _zero(fd, HEADER.size + offset, n)
                dirty = True
            offset += n
    finally:
        buf[:] = bytes(len(buf))
    if dirty:
        os.fsync(fd)


def _wipe_file(fd: int) -> None:
    """Overwrites what a file holds with zeros (no block beyond its size is needed) and empties it."""
    with contextlib.suppress(OSError):
        _zero(fd, 0, os.fstat(fd).st_size)
        os.fsync(fd)
        os.ftruncate(fd, 0)


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
