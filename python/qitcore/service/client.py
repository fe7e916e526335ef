"""A client of a running ``qitcore serve`` on its Unix socket: random bytes and the daemon's status.

:class:`DaemonClient` speaks the protocol of :mod:`qitcore.service.protocol` over one connection,
opened at the first request and again after the daemon went away, and maps every way a request
can fail to a :class:`~qitcore.errors.QitError` that names the socket: no daemon listening
(:class:`~qitcore.errors.DeviceNotFound`, saying how to start one), refused by the socket's
permissions or served by another user (:class:`ServiceAccessDenied`), gone mid-request
(:class:`~qitcore.errors.DeviceDisconnected`), no healthy device
(:class:`~qitcore.errors.ServiceUnavailable`). It needs nothing beyond the standard library, so
``qitcore.open("qitcored://")`` works with the library's own dependencies.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import socket
import struct
import sys
import threading
from collections import deque
from typing import Any

from .. import _validate
from ..errors import (
    DeviceBusy,
    DeviceDisconnected,
    DeviceError,
    DeviceNotFound,
    DeviceTimeout,
    InvalidArgumentError,
    ProtocolError,
    ServiceAccessDenied,
    ServiceUnavailable,
    StreamClosedError,
    UnsupportedOperationError,
    os_reason,
)
from .protocol import (
    MAX_READ,
    MAX_WAIT_MS,
    REPLY_SIZE,
    Op,
    Reply,
    Request,
    Status,
    client_socket_paths,
    decode_reply,
    encode_request,
)

__all__ = ["DaemonClient", "how_to_start"]


# Grace beyond the wait a request allows the daemon: its UNAVAILABLE reply comes at that wait, and
# must not race the client's own timeout.
_GRACE = 2.0
# How long close() waits for a request in progress in another thread to let go of the connection.
_CLOSE_WAIT = 5.0
# Requests of one large read in flight at once (each at most 1 MiB).
_WINDOW = 8


def how_to_start(paths: list[str]) -> str:
    """The advice a DeviceNotFound gives when no daemon listens at ``paths``."""
    where = " or ".join(paths)
    return (
        f"no qitcore daemon listens on {where}: start one with `qitcore serve --device URL` "
        "(for instance --device serial:///dev/ttyACM0), or enable its systemd unit "
        "(`qitcore serve --print-systemd-unit`, then `systemctl enable --now qitcored`); "
        "or set QITCORE_SOCKET to the daemon's socket, or QITCORE_DEVICE to a device URL "
        "(QITCORE_DEVICE=sim:// for the simulator, not a physical entropy source)"
    )


class DaemonClient:
    """Random bytes from a local ``qitcore serve``.

    Args:
        path: the daemon's socket; default: ``$QITCORE_SOCKET``, else the system daemon's
            (``/run/qitcore/qitcored.sock``), else this user's default (see
            :func:`~qitcore.service.protocol.client_socket_paths`).
        timeout: seconds to connect, and to wait for each reply beyond the daemon's own wait for
            a healthy device (which is this too, at most 60 s); ``None`` waits for ever.

    Thread-safe (requests are sent one at a time). Use as a context manager, or :meth:`close`.
    """

    def __init__(self, path: str | None = None, timeout: float | None = 10.0) -> None:
        if path is not None and (not isinstance(path, str) or not path or "\0" in path):
            raise InvalidArgumentError(f"path: expected the daemon's socket path, got {path!r}")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout < math.inf
        ):
            raise InvalidArgumentError(f"timeout: expected a positive number of seconds or None, got {timeout!r}")
        self._paths = [path] if path is not None else client_socket_paths()
        self.path = self._paths[0]
        """The socket connected to (before the first request: the first one to try)."""
        self.timeout = None if timeout is None else float(timeout)
        self._sock: socket.socket | None = None
        self._pending: deque[Request] = deque()
        self._lock = threading.Lock()
        self._closed = False

    # -- requests ------------------------------------------------------------------------------

    def read(self, n: int) -> bytes:
        """Exactly ``n`` random bytes, each served by the daemon to this client only. Requests
        above the daemon's largest (1 MiB) are split and pipelined on the connection.

        Raises:
            InvalidArgumentError: ``n`` is not a byte count from 0 to 4 GiB.
            DeviceNotFound: no daemon listens (the message says how to start one).
            ServiceAccessDenied: the socket's permissions refuse this user, or another user serves
                it (not root, not this user: a socket anyone could have put there).
            ServiceUnavailable: the daemon has no healthy device for ``timeout`` seconds.
            DeviceDisconnected: the daemon went away mid-request (the bytes of that request are
                lost; the next request reconnects).
            DeviceTimeout: no reply within ``timeout`` (plus the daemon's own wait).
        """
        out = _validate.buffer_of("n", _validate.byte_count("n", n))
        self.readinto(out)
        return bytes(out)

    def readinto(self, buffer: bytearray | memoryview) -> int:
        """Fills a writable buffer with random bytes, as :meth:`read` would; returns its length."""
        view = _writable(buffer)
        n = len(view)
        with self._lock:
            self._no_pending("readinto")
            sock = self._connected()
            try:
                requests = [Request(Op.READ, min(MAX_READ, n - at)) for at in range(0, n, MAX_READ)] or [
                    Request(Op.READ, 0)
                ]
                # At most _WINDOW requests in flight: the daemon prepares the next while one is
                # read, and the headers of a huge read never fill the socket's buffers while
                # this side is not reading (which would stall both ends until a timeout).
                sent = min(_WINDOW, len(requests))
                self._send(sock, b"".join(self._header(r) for r in requests[:sent]), requests[0])
                at = 0
                for i, request in enumerate(requests):
                    self._payload(sock, request, view[at : at + request.length])
                    at += request.length
                    if sent < len(requests):
                        self._send(sock, self._header(requests[sent]), requests[i + 1])
                        sent += 1
            except BaseException:
                self._drop()  # the connection is mid-reply: its state is unknown
                raise
        return n

    def send_read(self, n: int) -> None:
        """Sends a READ for ``n`` bytes (0 to 1 MiB) without waiting for its reply: the daemon
        prepares it while the caller does other work. :meth:`receive_into` takes the replies, in
        the order of these requests. A failure of either closes the connection; the requests
        still pending are then abandoned (their bytes go to nobody).

        Raises:
            InvalidArgumentError: ``n`` out of range. As :meth:`read` otherwise.
        """
        if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= MAX_READ:
            raise InvalidArgumentError(f"n: expected a byte count from 0 to {MAX_READ}, got {n!r}")
        with self._lock:
            sock = self._connected()
            request = Request(Op.READ, n)
            try:
                self._send(
                    sock, encode_request(Op.READ, n, self._wait_ms()), self._pending[0] if self._pending else request
                )
            except BaseException:
                self._drop()
                raise
            self._pending.append(request)

    def receive_into(self, buffer: bytearray | memoryview) -> int:
        """The reply to the oldest request of :meth:`send_read`, into ``buffer`` (at least that
        request's size); returns its length.

        Raises:
            UnsupportedOperationError: no request is pending. As :meth:`read` otherwise.
        """
        view = _writable(buffer)
        with self._lock:
            if not self._pending:
                raise UnsupportedOperationError("DaemonClient.receive_into: no request sent by send_read() is pending")
            request = self._pending[0]
            if len(view) < request.length:
                raise InvalidArgumentError(f"buffer: {len(view)} bytes, too small for the {request.length} pending")
            sock = self._connected()
            try:
                self._payload(sock, request, view[: request.length])
            except BaseException:
                self._drop()
                raise
            self._pending.popleft()
        return request.length

    @property
    def pending(self) -> int:
        """Requests sent by :meth:`send_read` whose replies are not taken yet."""
        return len(self._pending)

    def status(self) -> dict[str, Any]:
        """The daemon's status: its devices, pool, clients and counters (``qitcore status``).

        Raises:
            As :meth:`read`; ProtocolError when the document is not a JSON object.
        """
        with self._lock:
            self._no_pending("status")
            sock = self._connected()
            request = Request(Op.STATUS, 0)
            try:
                self._send(sock, encode_request(Op.STATUS, 0, self._wait_ms()), request)
                reply = self._reply(sock, request)
                data = bytearray(reply.length)
                self._recv_into(sock, memoryview(data))
            except BaseException:
                self._drop()
                raise
        try:
            document = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ProtocolError(f"{self.path}: the daemon's status is not valid JSON ({exc})") from None
        if not isinstance(document, dict):
            raise ProtocolError(f"{self.path}: the daemon's status is not a JSON object")
        return document

    # -- connection ----------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Closes the connection; a request in progress in another thread ends at once with
        :class:`~qitcore.errors.DeviceDisconnected`. Safe to call more than once."""
        self._closed = True
        sock = self._sock
        if sock is not None:
            # Wakes a thread blocked in recv on it (closing alone would not, on Linux).
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        # The thread woken above drops the connection itself and lets go of the lock. At
        # interpreter exit it may never do so (Python freezes daemon threads that wake up then):
        # the process ends, and the connection with it, without waiting for it.
        if self._lock.acquire(timeout=0.0 if sys.is_finalizing() else _CLOSE_WAIT):
            try:
                self._drop()
            finally:
                self._lock.release()

    def __enter__(self) -> DaemonClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("connected" if self._sock is not None else "not connected")
        return f"<DaemonClient {self.path} ({state})>"

    def _header(self, request: Request) -> bytes:
        return encode_request(request.op, request.length, self._wait_ms())

    def _wait_ms(self) -> int:
        return MAX_WAIT_MS if self.timeout is None else min(MAX_WAIT_MS, max(1, round(self.timeout * 1000)))

    def _connected(self) -> socket.socket:
        if self._closed:
            raise StreamClosedError(f"{self.path}: the client is closed")
        if self._sock is None:
            self._sock = self._connect()
        return self._sock

    def _connect(self) -> socket.socket:
        refused: list[str] = []
        for path in self._paths:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            try:
                sock.connect(path)
            except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
                sock.close()
                continue
            except PermissionError as exc:
                sock.close()
                refused.append(f"{path} ({exc.strerror})")
                continue
            except TimeoutError:
                sock.close()
                raise DeviceTimeout(f"{path}: the daemon did not accept the connection in {self.timeout} s") from None
            except OSError as exc:
                sock.close()
                if exc.errno == errno.EAGAIN:  # the listen backlog is full
                    raise DeviceBusy(f"{path}: the daemon's listen backlog is full; try again") from None
                raise DeviceError(f"{path}: cannot connect to the daemon ({exc.strerror or exc})") from None
            try:
                _check_server(sock, path)
            except BaseException:
                sock.close()
                raise
            self.path = path
            return sock
        if refused:
            raise ServiceAccessDenied(
                f"{', '.join(refused)}: permission denied on the daemon's socket; its owner, group and "
                "mode decide who may read (ask to be added to its group, for instance `qitcore`)"
            )
        raise DeviceNotFound(how_to_start(self._paths))

    def _drop(self) -> None:
        self._pending.clear()
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _no_pending(self, what: str) -> None:
        if self._pending:
            raise UnsupportedOperationError(
                f"DaemonClient.{what}: {len(self._pending)} replies to send_read() are pending; "
                "take them with receive_into() first"
            )

    def _send(self, sock: socket.socket, data: bytes, first: Request) -> None:
        try:
            sock.sendall(data)
        except TimeoutError:
            raise DeviceTimeout(f"{self.path}: the daemon took no request in time") from None
        except OSError as exc:
            # A daemon that refuses a client (BUSY) answers and closes at once: its reason may
            # be waiting to be read even though the send failed.
            self._reply(sock, first)
            raise DeviceDisconnected(f"{self.path}: the daemon went away ({exc.strerror or exc})") from None

    def _reply_timeout(self) -> float | None:
        return None if self.timeout is None else self._wait_ms() / 1000 + self.timeout + _GRACE

    def _reply(self, sock: socket.socket, request: Request) -> Reply:
        header = bytearray(REPLY_SIZE)
        sock.settimeout(self._reply_timeout())
        self._recv_into(sock, memoryview(header))
        sock.settimeout(self.timeout)
        reply = decode_reply(bytes(header), request)
        if reply.status is Status.OK:
            return reply
        raw = bytearray(reply.length)
        self._recv_into(sock, memoryview(raw))
        reason = raw.decode("utf-8", "replace") or reply.status.name
        message = f"{self.path}: {reason}"
        if reply.status is Status.UNAVAILABLE:
            raise ServiceUnavailable(message)
        if reply.status is Status.BUSY:
            raise DeviceBusy(message)
        if reply.status is Status.TOO_LARGE:
            raise InvalidArgumentError(message)
        if reply.status is Status.BAD_REQUEST:
            raise ProtocolError(message)
        raise DeviceError(message)

    def _payload(self, sock: socket.socket, request: Request, into: memoryview) -> None:
        self._reply(sock, request)  # an OK reply announces exactly len(into) bytes
        self._recv_into(sock, into)

    def _recv_into(self, sock: socket.socket, view: memoryview) -> None:
        at = 0
        while at < len(view):
            try:
                got = sock.recv_into(view[at:])
            except TimeoutError:
                raise DeviceTimeout(f"{self.path}: no reply from the daemon in time") from None
            except OSError as exc:
                raise DeviceDisconnected(f"{self.path}: the daemon went away ({exc.strerror or exc})") from None
            if got == 0:
                raise DeviceDisconnected(
                    f"{self.path}: the daemon closed the connection mid-reply (it stopped or was killed)"
                )
            at += got


def _check_server(sock: socket.socket, path: str) -> None:
    """Refuses a server that is not the daemon this user may trust: the peer (SO_PEERCRED: who
    listens on the socket) must be root, this user, or the owner of the socket's folder when
    nobody else may write to that folder. Anyone else could have put the socket there first
    (a shared folder such as /tmp) and would serve bytes of their choosing.

    Raises:
        ServiceAccessDenied: another user serves it (the message names the uid).
        DeviceError: the peer cannot be told (a system without SO_PEERCRED).
    """
    option = getattr(socket, "SO_PEERCRED", None)
    try:
        if option is None:
            raise OSError("SO_PEERCRED is not available on this system")
        _pid, uid, _gid = _PEERCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, option, _PEERCRED.size))
    except (OSError, struct.error) as exc:
        raise DeviceError(f"{path}: cannot tell who serves this socket ({os_reason(exc)}); refusing it") from None
    me = os.getuid()
    if uid in (0, me):
        return
    folder = os.path.dirname(os.path.realpath(path))
    try:
        info = os.stat(folder)
    except OSError:
        info = None
    if info is not None and info.st_uid == uid and not info.st_mode & 0o022:
        return  # the folder is that user's alone: only its owner's daemon can listen there
    raise ServiceAccessDenied(
        f"{path}: is served by uid {uid}, not by root or you (uid {me}), and its folder {folder} is "
        "not that user's alone; refusing its bytes (any user may have put this socket there). "
        "Run the daemon as root or as yourself, or in a folder only its user may write to"
    )


_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def _writable(buffer: bytearray | memoryview) -> memoryview:
    try:
        view = memoryview(buffer).cast("B")
    except TypeError:
        raise InvalidArgumentError(
            f"buffer: expected a writable bytes-like object, got {type(buffer).__name__}"
        ) from None
    if view.readonly:
        raise InvalidArgumentError("buffer: expected a writable buffer, got a read-only one")
    return view
