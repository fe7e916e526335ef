"""The daemon's Unix socket: local clients ask for random bytes (and the status) in the protocol of
:mod:`qitcore.service.protocol`.

Who may connect is decided by the socket file's owner, group and mode, set before anyone can
reach it (it is bound under a temporary name, given its mode and group, and only then renamed to
its path). One asyncio loop in a thread of its own serves every connection; each request is
answered whole, in order, before the next is read, so clients may pipeline. Its bytes come from
the pool without a thread hop when the pool has them ready, else from a worker thread that waits
for them (for as long as the request allows, at most 60 s).

Bounds: at most ``max_clients`` connections (one more is told BUSY and closed); a connection that
sends no complete request header for ``idle_timeout`` seconds, or does not take its reply within
that time, is closed; a malformed header is answered BAD_REQUEST and closed; a READ above 1 MiB
is refused (TOO_LARGE) and the connection kept. A client that goes away while its request is being
served loses those bytes: they were taken out of the pool and are dropped (counted as
discarded), never given to anyone else.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import grp
import json
import logging
import math
import os
import secrets
import socket
import stat
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .._validate import integer
from ..errors import (
    DeviceBusy,
    DeviceError,
    InvalidArgumentError,
    InvalidTypeError,
    ProtocolError,
    ServiceUnavailable,
)
from .pool import MAX_REQUEST, Pool
from .protocol import (
    MAX_WAIT_MS,
    REQUEST_SIZE,
    SYSTEM_SOCKET,
    Op,
    Request,
    Status,
    decode_request,
    default_socket_path,
    encode_reply,
    reason_bytes,
)
from .stats import ServiceStats

__all__ = ["DEFAULT_WAIT", "RESERVED", "LocalServer", "LocalSettings"]

log = logging.getLogger("qitcore.service.local")

DEFAULT_WAIT = 10.0
"""Seconds a request that names no wait may wait for a healthy device."""
_CLASS = "local"
# How long start() waits for the loop's thread to bind, and stop() for it to finish (seconds).
_START = 10.0
_STOP = 10.0
# Threads that wait on the pool for requests it cannot answer at once; more requests queue for them.
_WORKERS = 64
RESERVED = 8
# Lines about refused or malformed clients, of each kind, logged per window (seconds).
_LOG_LINES = 1
_LOG_WINDOW = 1.0
_BACKLOG = min(1024, socket.SOMAXCONN)
"""Connections beyond ``max_clients`` kept for root and the daemon's own user."""
# Kernel send buffer of a connection (bytes): a largest reply and its header (the kernel may cap it).
_SEND_BUFFER = MAX_REQUEST + (64 << 10)


@dataclass(frozen=True)
class LocalSettings:
    """The ``[socket]`` table of the configuration.

    Attributes:
        path: the socket file (default: :func:`~qitcore.service.protocol.default_socket_path`).
        mode: its permission bits; connecting needs write permission. An octal string
            (``"0660"``) is accepted too. Default: ``0o660`` (owner and group) when ``group`` is
            set, else ``0o600`` (the daemon's user alone: its own primary group may be shared by
            every user, such as ``users``).
        group: the group it is given, by name (``None``: the daemon's own).
        max_clients: connections served at once. Root and the daemon's own user get
            :data:`RESERVED` more, so that one of them (``qitcore status``) is never locked out.
        max_clients_per_uid: connections of one other user at once (default: a quarter of
            ``max_clients``), so that one user cannot take every slot.
        idle_timeout: seconds a connection may wait between requests, or take to read a reply.
    """

    path: str = field(default_factory=default_socket_path)
    mode: int | None = None
    group: str | None = None
    max_clients: int = 256
    idle_timeout: float = 60.0
    max_clients_per_uid: int | None = None

    @property
    def permissions(self) -> int:
        """The socket file's permission bits (``mode`` as resolved)."""
        assert self.mode is not None  # resolved by __post_init__
        return self.mode

    def __post_init__(self) -> None:
        if not isinstance(self.path, str) or not self.path or "\0" in self.path:
            raise InvalidArgumentError(f"path: expected a socket path, got {self.path!r}")
        # The kernel's sun_path holds 108 bytes, with its terminating NUL.
        if len(os.fsencode(self.path)) > 107:
            raise InvalidArgumentError(f"path: a Unix socket path holds at most 107 bytes, got {self.path!r}")
        mode = self.mode
        if mode is None:
            mode = 0o660 if self.group is not None else 0o600
            object.__setattr__(self, "mode", mode)
        if isinstance(mode, str):
            try:
                mode = int(mode, 8)
            except ValueError:
                raise InvalidArgumentError(
                    f"mode: expected octal permission bits such as 0o660, got {mode!r}"
                ) from None
            object.__setattr__(self, "mode", mode)
        integer("mode", mode, minimum=0, maximum=0o777)
        if self.group is not None and (not isinstance(self.group, str) or not self.group):
            raise InvalidTypeError(f"group: expected a group name or None, got {self.group!r}")
        integer("max_clients", self.max_clients, minimum=1, maximum=1 << 16)
        if self.max_clients_per_uid is None:
            object.__setattr__(self, "max_clients_per_uid", max(1, self.max_clients // 4))
        integer("max_clients_per_uid", self.max_clients_per_uid, minimum=1, maximum=self.max_clients)
        timeout = self.idle_timeout
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout < math.inf:
            raise InvalidArgumentError(f"idle_timeout: expected a positive number of seconds, got {timeout!r}")


def _trusted(uid: int | None) -> bool:
    """Root and the daemon's own user: served past the per-user bounds (RESERVED connections)."""
    return uid in (0, os.getuid())


def _retrieved(future: asyncio.Future[bytes]) -> None:
    """Marks a worker's outcome as seen, whoever awaited it (a shielded wait may have gone)."""
    if not future.cancelled():
        future.exception()


def _loop_time(deadline: float) -> float:
    """A ``time.monotonic()`` deadline on the running loop's clock."""
    return asyncio.get_running_loop().time() + (deadline - time.monotonic())


class _Shares:
    """Worker threads each uid holds, at most ``share`` at once. Loop thread only."""

    def __init__(self, share: int) -> None:
        self.share = share
        self._held: dict[int | None, int] = {}
        self._freed: dict[int | None, asyncio.Event] = {}

    async def acquire(self, uid: int | None, deadline: float) -> bool:
        """Takes one of ``uid``'s share, waiting until ``deadline`` (monotonic) at most; whether it did."""
        try:
            async with asyncio.timeout_at(_loop_time(deadline)):
                while self._held.get(uid, 0) >= self.share:
                    await self._freed.setdefault(uid, asyncio.Event()).wait()
        except TimeoutError:
            return False
        self._held[uid] = self._held.get(uid, 0) + 1
        return True

    def release(self, uid: int | None) -> None:
        held = self._held.get(uid, 1) - 1
        if held > 0:
            self._held[uid] = held
        else:
            self._held.pop(uid, None)
        freed = self._freed.pop(uid, None)
        if freed is not None:
            freed.set()  # the waiters look again; one takes the place


class LocalServer:
    """Serves ``pool``'s bytes on a Unix socket.

    Args:
        pool: where the bytes come from (:meth:`Pool.try_read`, else :meth:`Pool.read`).
        stats: counts clients (front end ``"local"``), requests and bytes (client class
            ``"local"``), and bytes lost to clients that left mid-request.
        settings: the socket's path, permissions and bounds.
        status: the daemon's whole status, answered to STATUS requests.
    """

    def __init__(
        self, pool: Pool, stats: ServiceStats, settings: LocalSettings, status: Callable[[], dict[str, Any]]
    ) -> None:
        if not isinstance(settings, LocalSettings):
            raise InvalidTypeError(f"settings: expected LocalSettings, got {type(settings).__name__}")
        if not isinstance(stats, ServiceStats):
            raise InvalidTypeError(f"stats: expected a ServiceStats, got {type(stats).__name__}")
        if not callable(status):
            raise InvalidTypeError(f"status: expected a callable, got {type(status).__name__}")
        self.pool = pool
        self.stats = stats
        self.settings = settings
        self._status = status
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._tasks: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._uids: dict[int | None, int] = {}  # connections open per client uid
        # Readers one untrusted uid may hold at once: a quarter of them, so that one user's slow
        # reads (as many as its connections allow) cannot leave other users none.
        self._shares = _Shares(max(1, min(settings.max_clients, _WORKERS) // 4))
        self._log_state: dict[str, tuple[float, int, int]] = {}  # kind: (window start, lines, suppressed)
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the socket we made
        self._stopping = False
        self._lock = threading.Lock()

    @property
    def path(self) -> str:
        return self.settings.path

    @property
    def clients(self) -> int:
        """Connections open now (served or being refused)."""
        return len(self._tasks)

    # -- life --------------------------------------------------------------------------------

    def start(self) -> None:
        """Creates the socket (mode and group set before it is reachable) and starts serving.

        Raises:
            DeviceBusy: another daemon listens on the path.
            DeviceError: the path exists and is not a socket (never replaced), or the socket cannot
                be created, given its mode or group (the message names the privilege missing).
            InvalidArgumentError: the group does not exist.
        """
        with self._lock:
            if self._thread is not None:
                return
            sock = self._bind()
            ready = threading.Event()
            failure: list[BaseException] = []
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=min(self.settings.max_clients, _WORKERS), thread_name_prefix="qitcore-local-read"
            )
            self._thread = threading.Thread(
                target=self._run, args=(sock, ready, failure), name="qitcore-local", daemon=True
            )
            self._thread.start()
        if not ready.wait(_START) or failure:
            self.stop()
            if failure:
                raise DeviceError(f"{self.path}: the socket server failed to start ({failure[0]})") from failure[0]
            raise DeviceError(f"{self.path}: the socket server did not start within {_START:g} s")
        settings = self.settings
        log.info("listening on %s (mode %04o, group %s)", self.path, settings.permissions, settings.group or "-")

    def stop(self) -> None:
        """Closes every connection and the socket, and removes the socket file (if it is still the
        one this server made). Requests in progress end; their bytes are dropped. Safe to call
        more than once."""
        with self._lock:
            thread, loop = self._thread, self._loop
            if thread is None:
                return
            self._stopping = True
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop ended on its own
                loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self._shutdown()))
        thread.join(_STOP)
        if thread.is_alive():
            log.warning("%s: the socket server's thread did not stop within %g s", self.path, _STOP)
        if self._executor is not None:
            # Workers waiting on the pool return within their request's wait (or when the pool
            # closes); their bytes are dropped.
            self._executor.shutdown(wait=False, cancel_futures=True)
        self._remove_socket_file()
        with self._lock:
            self._thread = None
            self._loop = None
            self._executor = None
            self._stopping = False
        log.info("stopped listening on %s", self.path)

    def __enter__(self) -> LocalServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the socket file -----------------------------------------------------------------------

    def check(self) -> None:
        """What :meth:`start` would refuse, checked without creating anything (a stale socket is
        removed): the group, what is at the path (another daemon: :class:`DeviceBusy`), its folder.
        A daemon calls it before opening its devices.

        Raises:
            As :meth:`start`.
        """
        self._gid()
        self._clear_stale(self.settings.path)
        self._missing_folder()

    def _missing_folder(self) -> bool:
        """Whether the socket's folder is to be made (only the system daemon's is)."""
        path = self.settings.path
        parent = os.path.dirname(os.path.abspath(path))
        if os.path.isdir(parent):
            return False
        # Only the system daemon's folder is made here (systemd's RuntimeDirectory= makes it
        # under the shipped unit): elsewhere a missing folder is more likely a mistyped path,
        # and one made here would not get the care the daemon's user gives its own folders.
        if os.path.abspath(path) != SYSTEM_SOCKET:
            raise DeviceError(
                f"{path}: its folder {parent} does not exist; create it (writable by the daemon's user "
                "alone), or pick another --socket"
            )
        return True

    def _bind(self) -> socket.socket:
        path = self.settings.path
        gid = self._gid()
        self._clear_stale(path)
        parent = os.path.dirname(os.path.abspath(path))
        if self._missing_folder():
            try:
                os.makedirs(parent, mode=0o755, exist_ok=True)
                os.chmod(parent, 0o755)  # whatever the umask
            except OSError as exc:
                raise DeviceError(f"{path}: cannot create its folder {parent} ({exc.strerror or exc})") from None
        # Bound under a name nobody knows, given its mode and group, listening, and only then
        # renamed into place: no client ever sees it with the umask's permissions.
        temporary = os.path.join(parent, f".{os.path.basename(path)}.{os.getpid()}.{secrets.token_hex(4)}")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            try:
                sock.bind(temporary)
            except OSError as exc:
                raise DeviceError(f"{path}: cannot create the socket in {parent} ({exc.strerror or exc})") from None
            try:
                os.chmod(temporary, self.settings.permissions)
                if gid is not None:
                    os.chown(temporary, -1, gid)
            except PermissionError as exc:
                raise DeviceError(
                    f"{path}: cannot give the socket group {self.settings.group!r} ({exc.strerror}): the daemon "
                    "must run as root or as a member of that group"
                ) from None
            sock.listen(_BACKLOG)
            sock.setblocking(False)
            try:
                os.rename(temporary, path)
            except OSError as exc:
                raise DeviceError(f"{path}: cannot move the socket into place ({exc.strerror or exc})") from None
            info = os.stat(path)
            self._identity = (info.st_dev, info.st_ino)
        except BaseException:
            sock.close()
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        return sock

    def _gid(self) -> int | None:
        if self.settings.group is None:
            return None
        try:
            return grp.getgrnam(self.settings.group).gr_gid
        except KeyError:
            raise InvalidArgumentError(f"group: no group named {self.settings.group!r} on this system") from None

    @staticmethod
    def _clear_stale(path: str) -> None:
        """Removes a socket at ``path`` that nobody listens on (a daemon that died); refuses
        anything else there."""
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise DeviceError(f"{path}: cannot look at the socket path ({exc.strerror or exc})") from None
        if not stat.S_ISSOCK(info.st_mode):
            raise DeviceError(
                f"{path}: exists and is not a socket; refusing to replace it (remove it, or pick --socket)"
            )
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(1.0)
        try:
            probe.connect(path)
        except ConnectionRefusedError:
            log.info("%s: replacing a stale socket (nobody listens on it)", path)
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError as exc:  # another user's, in a sticky folder such as /tmp
                raise DeviceError(
                    f"{path}: a stale socket is there and cannot be removed ({exc.strerror or exc}; "
                    f"it belongs to uid {info.st_uid}); remove it, or pick another --socket"
                ) from None
            return
        except OSError as exc:
            raise DeviceError(f"{path}: a socket is there and cannot be probed ({exc.strerror or exc})") from None
        finally:
            probe.close()
        raise DeviceBusy(f"{path}: another daemon listens on this socket; stop it first, or pick another --socket")

    def _remove_socket_file(self) -> None:
        identity, self._identity = self._identity, None
        if identity is None:
            return
        try:
            info = os.lstat(self.settings.path)
        except OSError:
            return
        # Another daemon may have replaced it since (after this one stopped answering): leave its.
        if stat.S_ISSOCK(info.st_mode) and (info.st_dev, info.st_ino) == identity:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.settings.path)

    # -- the loop ----------------------------------------------------------------------------

    def _run(self, sock: socket.socket, ready: threading.Event, failure: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            # asyncio listens again with its own backlog (100) unless told: keep the socket's.
            self._server = loop.run_until_complete(asyncio.start_unix_server(self._accept, sock=sock, backlog=_BACKLOG))
        except BaseException as exc:
            failure.append(exc)
            sock.close()
            loop.close()
            ready.set()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = dict(self._tasks)
        for task, writer in tasks.items():
            task.cancel()
            # Aborting the connection as well ends a wait that a cancellation could miss.
            writer.transport.abort()
        if tasks:
            await asyncio.wait(tasks, timeout=_STOP / 2)
        asyncio.get_running_loop().stop()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if self._stopping:
            writer.close()
            return
        self._tasks[task] = writer
        uid, pid = _credentials(writer)
        self._uids[uid] = self._uids.get(uid, 0) + 1
        self.stats.client(_CLASS, 1)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            # A whole 1 MiB reply fits the kernel's buffer: asyncio hands it over in one send
            # instead of copying it into its own buffer and moving that along after each send.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SEND_BUFFER)
        try:
            await self._serve(reader, writer, uid, pid)
        except asyncio.CancelledError:
            pass  # stopping
        except Exception:  # a bug here must not take the server down: logged, connection closed
            log.exception("%s: serving a client failed", self.path)
        finally:
            self._tasks.pop(task, None)
            left = self._uids.get(uid, 1) - 1
            if left:
                self._uids[uid] = left
            else:
                self._uids.pop(uid, None)
            self.stats.client(_CLASS, -1)
            transport = writer.transport
            if transport.get_write_buffer_size():
                # A reply the client never took (its send timed out): close() would keep the
                # connection and its bytes until they go, which they never do.
                transport.abort()
            else:
                writer.close()
                try:
                    async with asyncio.timeout(1.0):
                        await writer.wait_closed()
                except Exception:
                    transport.abort()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, uid: int | None, pid: int | None
    ) -> None:
        peer = "uid unknown" if uid is None else f"uid {uid} pid {pid}"
        settings = self.settings
        trusted = _trusted(uid)
        busy = None
        if len(self._tasks) > settings.max_clients + (RESERVED if trusted else 0):
            busy = f"too many clients (the daemon serves {settings.max_clients} at once)"
        elif not trusted and self._uids.get(uid, 0) > (settings.max_clients_per_uid or 1):
            busy = (
                f"too many clients of uid {uid} (the daemon serves {settings.max_clients_per_uid} of one user at once)"
            )
        if busy is not None:
            self._log(logging.WARNING, "refused", "%s: refusing a client (%s): %s", self.path, peer, busy)
            self.stats.request(_CLASS, False, "busy")
            await self._send(writer, Status.BUSY, busy)
            return
        log.debug("%s: client connected (%s)", self.path, peer)
        idle = self.settings.idle_timeout
        while True:
            try:
                async with asyncio.timeout(idle):
                    header = await reader.readexactly(REQUEST_SIZE)
            except asyncio.IncompleteReadError as exc:
                if exc.partial:
                    log.debug("%s: client (%s) left mid-header", self.path, peer)
                return
            except TimeoutError:
                log.debug("%s: client (%s) idle for %g s, closed", self.path, peer, idle)
                return
            except (ConnectionError, OSError):
                return
            try:
                request = decode_request(header)
            except ProtocolError as exc:
                self._log(logging.INFO, "malformed", "%s: malformed request from %s: %s", self.path, peer, exc)
                self.stats.request(_CLASS, False, "bad-request")
                await self._send(writer, Status.BAD_REQUEST, str(exc))
                return
            # Untrusted clients share readers by uid (an unknown uid is one more user).
            if not await self._answer(request, writer, peer, None if trusted else (-1 if uid is None else uid)):
                return

    async def _answer(self, request: Request, writer: asyncio.StreamWriter, peer: str, share: int | None) -> bool:
        """Answers one request; whether the connection goes on. ``share``: the uid whose share of
        the readers a read the pool cannot answer at once takes (None: a trusted user's, unshared)."""
        if request.op is Op.STATUS:
            try:
                document = self._status()
                payload = json.dumps(document).encode()
            except Exception as exc:
                log.exception("%s: the status could not be made", self.path)
                self.stats.request(_CLASS, False, "internal")
                await self._send(writer, Status.INTERNAL, f"status: {type(exc).__name__}: {exc}")
                return False
            self.stats.request(_CLASS, True)
            return await self._send(writer, Status.OK, payload)
        n = request.length
        if n > MAX_REQUEST:
            self.stats.request(_CLASS, False, "too-large")
            return await self._send(
                writer, Status.TOO_LARGE, f"read: at most {MAX_REQUEST} bytes a request, got {n}; split it"
            )
        wait = min(request.wait_ms, MAX_WAIT_MS) / 1000 if request.wait_ms else DEFAULT_WAIT
        # The request's wait counts from its arrival: time spent queued for a worker (all busy
        # waiting on a slow pool) is part of it, so no answer comes later than the client allowed.
        deadline = time.monotonic() + wait
        try:
            data = self.pool.try_read(n)
            if data is None:
                data = await self._read_in_worker(n, deadline, wait, share)
        except ServiceUnavailable as exc:
            self.stats.request(_CLASS, False, "unavailable")
            return await self._send(writer, Status.UNAVAILABLE, str(exc))
        if not await self._send(writer, Status.OK, data):
            log.debug("%s: client (%s) left before taking %d bytes; they are dropped", self.path, peer, n)
            self.stats.discarded(n)
            return False
        self.stats.request(_CLASS, True)
        self.stats.served(_CLASS, n)
        return True

    async def _read_in_worker(self, n: int, deadline: float, wait: float, share: int | None) -> bytes:
        """``n`` bytes read by a worker thread by ``deadline``: the wait for the uid's share of
        the workers and for a free worker both count against it, and a request still queued at
        its deadline is answered then (it was answered only once a worker took it up)."""
        spent = f"no bytes within the request's wait of {wait:g} s (it was spent waiting for"
        if share is not None and not await self._shares.acquire(share, deadline):
            raise ServiceUnavailable(
                f"{spent} this user's share of the daemon's readers, {self._shares.share}, all busy with its "
                "requests the pool could not answer at once)"
            )
        try:
            executor = self._executor
            try:
                if executor is None:
                    raise RuntimeError("stopped")
                waiting = executor.submit(self._read_until, n, deadline, wait)
            except RuntimeError:  # shut down: stopping
                raise ServiceUnavailable("the daemon is stopping") from None
            wrapped = asyncio.wrap_future(waiting)
            wrapped.add_done_callback(_retrieved)
            try:
                async with asyncio.timeout_at(_loop_time(deadline)):
                    return await asyncio.shield(wrapped)
            except TimeoutError:
                if waiting.cancel():  # still queued: no worker took it up in time
                    raise ServiceUnavailable(
                        f"{spent} one of the daemon's {_WORKERS} readers, all busy with requests the pool could "
                        "not answer at once)"
                    ) from None
                return await wrapped  # a worker has it: its read ends by the same deadline
            except asyncio.CancelledError:
                # Stopping: the worker's read may still succeed; those bytes go to nobody.
                waiting.add_done_callback(self._dropped)
                raise
        finally:
            if share is not None:
                self._shares.release(share)

    def _read_until(self, n: int, deadline: float, wait: float) -> bytes:
        """In a worker: ``n`` bytes from the pool by ``deadline`` (fixed when the request
        arrived), or :class:`ServiceUnavailable` at once when it passed while queued."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise ServiceUnavailable(
                f"no bytes within the request's wait of {wait:g} s (it was spent waiting for the daemon's "
                f"{_WORKERS} readers, all busy with requests the pool could not answer at once)"
            )
        return self.pool.read(n, wait, deadline=deadline)

    def _log(self, level: int, kind: str, message: str, *args: object) -> None:
        """Logs a line about a client, at most :data:`_LOG_LINES` of one kind per
        :data:`_LOG_WINDOW` seconds: a flood of refused or malformed connections becomes a count
        ("N more ... suppressed") instead of thousands of lines a second. Loop thread only."""
        now = time.monotonic()
        started, lines, suppressed = self._log_state.get(kind, (now, 0, 0))
        if now - started >= _LOG_WINDOW:
            if suppressed:
                log.log(
                    level, "%s: %d more %s-client lines suppressed in %g s", self.path, suppressed, kind, _LOG_WINDOW
                )
            started, lines, suppressed = now, 0, 0
        if lines < _LOG_LINES:
            log.log(level, message, *args)
            lines += 1
        else:
            suppressed += 1
        self._log_state[kind] = (started, lines, suppressed)

    def _dropped(self, future: concurrent.futures.Future[bytes]) -> None:
        if not future.cancelled() and future.exception() is None:
            self.stats.discarded(len(future.result()))

    async def _send(self, writer: asyncio.StreamWriter, status: Status, payload: bytes | str) -> bool:
        """Writes a whole reply, within the idle timeout; whether it was taken."""
        data = reason_bytes(payload) if isinstance(payload, str) else payload
        try:
            writer.write(encode_reply(status, data))
            if data:
                writer.write(data)
            async with asyncio.timeout(self.settings.idle_timeout):
                await writer.drain()
        except (TimeoutError, ConnectionError, OSError):
            return False
        return status is Status.OK or status in (Status.UNAVAILABLE, Status.TOO_LARGE)


def _credentials(writer: asyncio.StreamWriter) -> tuple[int | None, int | None]:
    """``(uid, pid)`` of the client (SO_PEERCRED); ``(None, None)`` when the system cannot tell."""
    sock = writer.get_extra_info("socket")
    try:
        pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
    except (AttributeError, OSError, struct.error):
        return None, None
    return uid, pid
