"""``qitcored://[PATH]``: random bytes from a running ``qitcore serve`` on its Unix socket, read like
any device's.

The daemon has already health-tested and extracted every byte it serves, so the stream here
conditions nothing: its Rust core is a raw 8-bit stream (samples in, the same bytes out, no tests,
no extraction) fed by a thread that asks the daemon for chunks. Everything a stream offers then
works unchanged: ``read``, ``readinto``, timeouts, Ctrl-C, :class:`~qitcore.QuantumBitGenerator`
and :class:`~qitcore.QuantumRandom`.

``PATH`` is the daemon's socket (``qitcored:///run/qitcore/qitcored.sock``); without one, the
client's default (``$QITCORE_SOCKET``, else the system daemon's, else this user's). The URL takes
``buffer_bytes`` (how much is held fetched ahead, 64 KiB by default, besides the two requests in
flight: bytes a client never reads are lost when it closes, never served to another) and
``timeout`` (seconds to connect, and to wait for a healthy device; 5 by default). The conditioning
options (``min_entropy``, ``epsilon``, ``alpha``, ...) are the daemon's, set in its configuration,
and are refused here rather than ignored.

When the daemon goes away, has no healthy device for ``timeout`` seconds, or breaks the protocol,
the stream fails: reads return what was fetched, then raise
:class:`~qitcore.errors.DeviceDisconnected` naming the socket and the reason (for a daemon without
a healthy device too, where :class:`~qitcore.service.client.DaemonClient` raises
:class:`~qitcore.errors.ServiceUnavailable`: a stream's core has one way to stop, the source's
disconnection, and numpy's draws meet it there; the message gives the daemon's reason). Open it again (or
call :func:`qitcore.randbytes` again) to reconnect once the daemon is back.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import sys
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

from .. import _core, _validate
from ..errors import InvalidArgumentError, QitError, ServiceUnavailable, StreamClosedError
from ..stream import QrngStream
from ._registry import Options, Url, register_backend

if TYPE_CHECKING:
    from ..service.client import DaemonClient

__all__ = ["DEFAULT_PREFETCH"]

log = logging.getLogger("qitcore.devices.daemon")

DEFAULT_PREFETCH = 1 << 16
"""Bytes a ``qitcored://`` stream holds fetched ahead when ``buffer_bytes`` is not given."""
# Request sizes (bytes): the first is small, so that a process wanting 32 bytes takes little
# from the daemon; sizes double while the reader keeps emptying the queue.
_FIRST_CHUNK = 4096
_SMALLEST_CHUNK = 512
_LARGEST_CHUNK = 1 << 16
# Reads of this many bytes or more (without a timeout) go straight from the daemon to the caller.
_DIRECT = 1 << 17


def _open_daemon(url: Url, options: Options, raw: bool) -> QrngStream:
    # Imported here: the service package is loaded only by those who use it.
    from ..service.client import DaemonClient

    if raw:
        raise InvalidArgumentError(
            f"{url.public}: the daemon serves only health-tested, extracted bytes; raw samples for an "
            "assessment come from the device itself (qitcore.open_raw on its URL, with the daemon stopped)"
        )
    options.passed_through(url, "daemon")
    path = (url.location + url.path) or None
    capacity = DEFAULT_PREFETCH if options.buffer_bytes == Options().buffer_bytes else options.buffer_bytes
    client = DaemonClient(path, timeout=options.timeout)
    client.read(0)  # connects: no daemon, or no permission, is an error of open() itself
    core = _core.Stream(8, "aligned", "big", 0, raw=True, capacity=capacity, frame_timeout=None)
    feeder = _Feeder(client, core, url.public, capacity)
    info = {"source": "qitcore daemon", "daemon": client.path, "prefetch_bytes": capacity}
    stream = _DaemonStream(core, description=url.public, info=info, min_entropy=None, on_close=feeder.close)
    stream.device = feeder
    feeder.start()
    return stream


class _DaemonStream(QrngStream):
    """A ``qitcored://`` stream. Small reads come from what the fetching thread holds ready (a
    32-byte read costs no round trip); a large read without a timeout, while the daemon answers
    the largest chunks at once, comes straight from the daemon into the caller's buffer, on a
    connection of its own: one copy of each byte in this process instead of three (socket, core
    queue, result), which is most of a client's cost at high rates. Each byte still comes out of
    the daemon's pool once, for this stream alone. When that connection fails, the read goes
    through the fetching path, whose failure the stream reports as always (bytes ready first,
    then the error)."""

    def read(self, n: int, timeout: float | None = None) -> bytes:
        n = _validate.byte_count("n", n)
        if timeout is not None or n < _DIRECT:
            return super().read(n, timeout)
        out = _validate.buffer_of("n", n)
        got = self.readinto(out)
        return bytes(out) if got == n else bytes(memoryview(out)[:got])

    def readinto(self, buffer: Any, timeout: float | None = None) -> int:
        self._check_open()
        try:
            view = memoryview(buffer).cast("B")
        except TypeError:
            return super().readinto(buffer, timeout)  # the core names what is wrong with it
        feeder = self.device
        if (
            timeout is not None
            or len(view) < _DIRECT
            or view.readonly
            or not isinstance(feeder, _Feeder)
            or not feeder.fast
            or self._core.error() is not None  # failed: what is left, then the error, as always
        ):
            return super().readinto(view, timeout)
        # What was fetched ahead stays for the small reads: taking it here would set the
        # fetching thread to work (and copy) again for bytes a large read does not need.
        try:
            feeder.direct().readinto(view)
            return len(view)
        except QitError as exc:
            feeder.slow()  # until the fetching path finds the daemon fast again
            log.debug("%s: a direct read failed (%s); reading through the stream", self.description, exc)
        return super().readinto(view, timeout)


class _Feeder:
    """The thread that fetches chunks from the daemon into a stream's core, as long as the stream
    wants them (feeding waits while the core's queue is full)."""

    def __init__(self, client: DaemonClient, core: _core.Stream, description: str, capacity: int) -> None:
        self.client = client
        self.core = core
        self.description = description
        self.capacity = capacity
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"qitcore {description}", daemon=True)
        self._direct: DaemonClient | None = None
        self._direct_lock = threading.Lock()
        self.fast = False
        """Whether the daemon answers the largest chunks (within a second, the reader keeping up):
        large reads may then ask it directly (a slow pool would let a large request time out and
        its bytes be dropped)."""
        self._demote = False

    def slow(self) -> None:
        """A direct read failed: large reads go through the fetching path, which asks for less,
        until the daemon answers the largest chunks again."""
        self.fast = False
        self._demote = True

    def direct(self) -> DaemonClient:
        """The connection for large reads straight into a caller's buffer (opened at the first)."""
        with self._direct_lock:
            if self._stop.is_set():
                raise StreamClosedError(f"{self.description}: the stream is closed")
            if self._direct is None:
                from ..service.client import DaemonClient

                self._direct = DaemonClient(self.client.path, timeout=self.client.timeout)
            return self._direct

    @property
    def path(self) -> str:
        """The daemon's socket."""
        return self.client.path

    def start(self) -> None:
        _open.add(self)
        self._thread.start()

    def close(self) -> None:
        """Stops fetching: the connection is closed (a request in flight is abandoned, its bytes
        lost), the core closed. Safe to call twice."""
        if self._stop.is_set():
            return
        self._stop.set()
        _open.discard(self)
        with self._direct_lock:
            direct = self._direct
        if direct is not None:
            direct.close()
        self.client.close()
        self.core.close()  # a feed waiting for room ends
        # At interpreter exit (a stream dropped unclosed) the thread may be frozen: not joined.
        if self._thread is not threading.current_thread() and not sys.is_finalizing():
            self._thread.join(5.0)

    def _run(self) -> None:
        largest = max(_SMALLEST_CHUNK, min(_LARGEST_CHUNK, self.capacity))
        chunk = min(_FIRST_CHUNK, largest)
        buffer = bytearray(largest)
        view = memoryview(buffer)
        try:
            while not self._stop.is_set():
                # Two requests in flight: the daemon prepares the next chunk while this one is fed.
                while self.client.pending < 2:
                    self.client.send_read(chunk)
                started = time.monotonic()
                try:
                    got = self.client.receive_into(view)
                except ServiceUnavailable as exc:
                    # The request waited the whole timeout for a healthy device: the stream fails
                    # now, not after more requests as long (slow answers halve the chunk below).
                    self.fast = False
                    self._fail(str(exc))
                    return
                took = time.monotonic() - started
                queued = self.core.stats().bytes_queued
                try:
                    self.core.feed_samples(view[:got])
                except QitError:
                    return  # the stream was closed (or failed): nothing more to fetch for it
                # The reader kept up (little was waiting) and the daemon answered fast: fetch more
                # at once. A slow answer: less, so that a request fits the daemon's wait.
                if took > 1.0:
                    chunk = max(_SMALLEST_CHUNK, chunk // 2)
                elif queued < chunk and took < 0.25:
                    chunk = min(largest, chunk * 2)
                if self._demote:  # a large direct read was not answered in time: less, as above
                    self._demote = False
                    chunk = max(_SMALLEST_CHUNK, chunk // 2)
                self.fast = chunk == largest
        except QitError as exc:
            if not self._stop.is_set():
                self._fail(str(exc))
        except Exception as exc:  # a bug: the stream fails with it rather than hanging
            log.exception("%s: fetching from the daemon failed", self.description)
            self._fail(f"{self.description}: {type(exc).__name__}: {exc}")

    def _fail(self, message: str) -> None:
        log.info("%s: %s", self.description, message)  # the reader gets it as an exception
        with contextlib.suppress(QitError):  # closed meanwhile
            self.core.disconnect(message)


# Streams still fetching. A process that ends without closing one must not hang: at exit, while
# threads still run, each is closed (later, in the interpreter's finalization, the fetching thread
# would be frozen holding its connection's lock, and a close from a finalizer would wait for ever).
_open: weakref.WeakSet[_Feeder] = weakref.WeakSet()


@atexit.register
def _close_at_exit() -> None:
    for feeder in list(_open):
        with contextlib.suppress(Exception):
            feeder.close()


register_backend("qitcored", _open_daemon, ())
