"""A TCP proxy with the latency of a real link, for running both ends of a session over TCP as
if they were far apart (``qitcore qkd proxy``, and the tests).

Each connection accepted on the listening address is forwarded to the target (Alice); the bytes
of each direction are held for the one-way delay before they are passed on. Every chunk is
stamped when it arrives and released at its arrival time plus its delay, so that a burst of
chunks takes one delay, not one delay per chunk (the bytes in flight, at most ``buffer_bytes`` a
direction, are what bounds the throughput: ``buffer_bytes / one_way``).
With jitter a chunk is never released before the one ahead of it (a TCP stream keeps its order;
the jitter only makes some chunks later).

Bounds: at most ``max_connections`` connections at once (one more is closed at once); at most
``buffer_bytes`` held per direction (the proxy then stops reading that side, and TCP's flow
control makes its sender wait); ``connect_timeout`` seconds to reach the target; a connection
with no bytes moving either way for ``idle_timeout`` seconds is closed, and one of whose sides has
closed after ``half_closed_idle`` seconds (a silent client must not hold a slot for minutes after
its peer hung up). A connection's memory is
thus at most about 4 x ``buffer_bytes`` (each direction's queue, and its bytes in one write on
their way out) plus asyncio's own read buffers (128 KiB a side). An end of stream is
passed on, delayed like the bytes before it (a half-close stays a half-close); the connection is
closed on both sides once both directions have ended, or as soon as either side fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import random
import socket
import threading
from collections import deque
from collections.abc import Callable

from .. import _validate
from ..errors import ChannelError, InvalidArgumentError
from .delay import check_delay

__all__ = ["DelayProxy"]

log = logging.getLogger("qitcore.qkd.proxy")

CHUNK = 64 << 10
"""Bytes read from a socket at a time."""
_START = 10.0
_STOP = 10.0
# How often (at most, seconds) a connection checks whether it has been idle too long.
_IDLE_CHECK = 1.0
HALF_CLOSED_IDLE = 10.0
"""Seconds a connection one side of which has closed may stay idle (``idle_timeout`` at most):
a client that says nothing after its peer hung up must not hold a connection slot for minutes."""


def _address(name: str, value: object, *, any_port: bool) -> tuple[str, int]:
    if not (isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str) and value[0]):
        raise InvalidArgumentError(f"{name}: expected (host, port), got {value!r}")
    port = _validate.integer(f"{name} port", value[1], minimum=0 if any_port else 1, maximum=65535)
    return value[0], port


def _positive(name: str, value: object) -> float:
    number = _validate.real(name, value)
    if number <= 0:
        raise InvalidArgumentError(f"{name}: expected a positive number of seconds, got {number:g}")
    return number


class _Direction:
    """One direction of a connection: chunks stamped with their release time, in order."""

    def __init__(self, name: str, draw: Callable[[], float], limit: int, touch: Callable[[], None]) -> None:
        self.name = name
        self._draw = draw
        self._limit = limit
        self._touch = touch
        self._queue: deque[tuple[float, bytes]] = deque()  # b"": the end of the stream
        self._held = 0
        self._changed = asyncio.Condition()

    async def receive(self, reader: asyncio.StreamReader) -> None:
        loop = asyncio.get_running_loop()
        last = 0.0
        while True:
            async with self._changed:
                # Room for a whole chunk before reading one: at most ``limit`` bytes held.
                await self._changed.wait_for(lambda: self._held + CHUNK <= self._limit)
            chunk = await reader.read(CHUNK)
            self._touch()
            last = max(loop.time() + self._draw(), last)
            async with self._changed:
                self._queue.append((last, chunk))
                self._held += len(chunk)
                self._changed.notify_all()
            if not chunk:
                return

    async def send(self, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        while True:
            async with self._changed:
                await self._changed.wait_for(lambda: bool(self._queue))
                release, _ = self._queue[0]
            while (wait := release - loop.time()) > 0:
                await asyncio.sleep(wait)
            # Everything due goes out in one write (the chunks behind the first may be due too).
            due: list[bytes] = []
            ended = False
            async with self._changed:
                now = loop.time()
                while self._queue and self._queue[0][0] <= now and not ended:
                    _, chunk = self._queue.popleft()
                    self._held -= len(chunk)
                    due.append(chunk)
                    ended = not chunk
                self._changed.notify_all()
            if any(due):
                writer.write(b"".join(due))
                await writer.drain()
                self._touch()
            if ended:
                if writer.can_write_eof():
                    writer.write_eof()
                return


class _Server:
    """The proxy's asyncio half: its listening socket and its connections, on one loop."""

    def __init__(
        self,
        target: tuple[str, int],
        one_way: float,
        jitter: float,
        rng: random.Random,
        max_connections: int,
        buffer_bytes: int,
        connect_timeout: float,
        idle_timeout: float,
    ) -> None:
        self.target = target
        self.one_way, self.jitter = one_way, jitter
        self._rng = rng
        self.max_connections = max_connections
        self.buffer_bytes = buffer_bytes
        self.connect_timeout, self.idle_timeout = connect_timeout, idle_timeout
        self.half_closed_idle = HALF_CLOSED_IDLE
        self.tasks: set[asyncio.Task[None]] = set()
        self.accepted = 0
        self.forwarded = 0
        self.refused = 0
        self.looped = 0
        # The proxy's own connections to the target, by local port: one that arrives back at the
        # listening socket is a loop, however the target was written (a name, a wildcard, NAT).
        self._outgoing: dict[int, socket.socket] = {}

    def draw(self) -> float:
        return self.one_way + (self._rng.uniform(0.0, self.jitter) if self.jitter else 0.0)

    async def handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        peername = client_writer.get_extra_info("peername")
        peer = _validate.show_host_port(*peername[:2]) if peername else "?"
        if peername and self._is_own(peername[:2]):
            self.looped += 1
            where = _validate.show_host_port(*self.target)
            log.error("the target %s is this proxy itself: its connection from %s not forwarded", where, peer)
            client_writer.close()
            return
        if len(self.tasks) >= self.max_connections:
            self.refused += 1
            log.info("refused %s: %d connections open already", peer, len(self.tasks))
            client_writer.close()
            return
        self.tasks.add(task)
        self.accepted += 1
        try:
            await self._relay(client_reader, client_writer, peer)
        except asyncio.CancelledError:
            # The proxy is closing: the connection's end is the expected one. Ending normally
            # keeps asyncio's stream callback from printing the cancellation as an error.
            pass
        finally:
            self.tasks.discard(task)

    async def _relay(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter, peer: object
    ) -> None:
        host, port = self.target
        writers = [client_writer]
        try:
            try:
                target_reader, target_writer = await asyncio.wait_for(self._connect(), self.connect_timeout)
            except (TimeoutError, OSError) as exc:
                where = _validate.show_host_port(host, port)
                log.warning("%s: cannot reach %s: %s", peer, where, str(exc) or "timed out")
                return
            writers.append(target_writer)
            self.forwarded += 1
            for w in writers:
                sock = w.get_extra_info("socket")
                if sock is not None:
                    # The proxy holds bytes only as long as it is told to: no Nagle wait on top.
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            loop = asyncio.get_running_loop()
            last = [loop.time()]

            def touch() -> None:
                last[0] = loop.time()

            up = _Direction("to target", self.draw, self.buffer_bytes, touch)
            down = _Direction("to client", self.draw, self.buffer_bytes, touch)
            pumps = [
                asyncio.ensure_future(up.receive(client_reader)),
                asyncio.ensure_future(up.send(target_writer)),
                asyncio.ensure_future(down.receive(target_reader)),
                asyncio.ensure_future(down.send(client_writer)),
            ]
            try:
                pending = set(pumps)
                while pending:
                    done, pending = await asyncio.wait(pending, timeout=min(self.idle_timeout, _IDLE_CHECK))
                    failed = [t for t in done if t.exception() is not None]
                    if failed:
                        log.info("%s: connection ended: %s", peer, failed[0].exception())
                        return
                    # One direction over (its reader and writer both done): the other may idle less.
                    half_closed = (pumps[0].done() and pumps[1].done()) or (pumps[2].done() and pumps[3].done())
                    allowed = min(self.idle_timeout, self.half_closed_idle) if half_closed else self.idle_timeout
                    if pending and loop.time() - last[0] > allowed:
                        log.info("%s: idle for %g s%s, closed", peer, allowed, " after a side closed" * half_closed)
                        return
            finally:
                for t in pumps:
                    t.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
        finally:
            for w in writers:
                w.close()
            for w in writers:
                with contextlib.suppress(OSError, asyncio.CancelledError):
                    await w.wait_closed()
            if len(writers) > 1:
                self._outgoing.pop(writers[1].get_extra_info("sockname")[1], None)

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A connection to the target, each of its addresses tried in turn, from a socket whose
        local port is recorded before it connects (see :meth:`_is_own`)."""
        host, port = self.target
        loop = asyncio.get_running_loop()
        found = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        failure: OSError = OSError(f"{host} has no address")
        for family, kind, proto, _, address in found:
            sock = socket.socket(family, kind, proto)
            local = 0
            try:
                sock.setblocking(False)
                # Started here, not by the event loop: the kernel gives the connection its local
                # port as it sends the first packet, before the listener can accept it.
                started = sock.connect_ex(address)
                if started not in (0, errno.EINPROGRESS):
                    raise OSError(started, os.strerror(started))
                local = sock.getsockname()[1]
                self._outgoing[local] = sock
                if started:
                    await _writable(loop, sock)
                    failed = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if failed:
                        raise OSError(failed, os.strerror(failed))
                return await asyncio.open_connection(sock=sock)
            except BaseException as exc:  # an OSError, or cancelled (the timeout, the proxy closing)
                self._outgoing.pop(local, None)
                sock.close()
                if not isinstance(exc, OSError):
                    raise
                failure = exc
        raise failure

    def _is_own(self, peer: tuple[str, int]) -> bool:
        """Whether ``peer`` is one of the proxy's own connections to the target. Its local address
        is known once it has begun to connect, which is before this side can accept it."""
        own = self._outgoing.get(peer[1])
        if own is None:
            return False
        try:
            local = own.getsockname()[0]
        except OSError:
            return False
        return _unmapped(local) == _unmapped(peer[0])


async def _writable(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    """Waits until ``sock``'s connection attempt has ended (it becomes writable either way)."""
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_writer(sock.fileno(), wake)
    try:
        await ready
    finally:
        loop.remove_writer(sock.fileno())


def _unmapped(host: str) -> str:
    """An IPv4-mapped IPv6 address (``::ffff:127.0.0.1``) as the IPv4 address it is."""
    return host.removeprefix("::ffff:")


class DelayProxy:
    """A delaying TCP proxy on a thread of its own (an asyncio loop), forwarding every connection
    on ``listen`` to ``target`` with ``one_way`` seconds (plus a jitter uniform in ``[0, jitter]``)
    of delay in each direction. Use it as a context manager::

        with DelayProxy(target=("127.0.0.1", alice_port), one_way=0.005) as proxy:
            channel = TcpChannel(key, *proxy.address)

    Args:
        target: ``(host, port)`` to forward to.
        one_way: seconds each direction's bytes are held, 0 to
            :data:`~qitcore.qkd.delay.MAX_DELAY`.
        jitter: the widest extra delay of a chunk in seconds, 0 to
            :data:`~qitcore.qkd.delay.MAX_DELAY`.
        listen: ``(host, port)`` to listen on (port 0: any free port; see :attr:`address`).
        max_connections: connections forwarded at once, 1 to 1024.
        buffer_bytes: the most bytes held per direction of a connection, 128 KiB to 1 GiB.
        connect_timeout: seconds to wait for the target to accept.
        idle_timeout: seconds a connection may carry nothing, either way, before it is closed.
        half_closed_idle: the same once one side has closed (at most ``idle_timeout``).
        seed: seeds the jitter, for repeatable runs (default: from the OS).

    Raises:
        InvalidArgumentError, InvalidTypeError: an argument out of range (the message names it).
    """

    def __init__(
        self,
        target: tuple[str, int],
        one_way: float,
        jitter: float = 0.0,
        *,
        listen: tuple[str, int] = ("127.0.0.1", 0),
        max_connections: int = 16,
        buffer_bytes: int = 4 << 20,
        connect_timeout: float = 10.0,
        idle_timeout: float = 300.0,
        half_closed_idle: float = HALF_CLOSED_IDLE,
        seed: int | None = None,
    ) -> None:
        target = _address("target", target, any_port=False)
        self._listen = _address("listen", listen, any_port=True)
        if self._listen == target:
            # Every connection would be forwarded to the proxy itself, until max_connections.
            raise InvalidArgumentError(
                f"listen: the same address as the target ({_validate.show_host_port(*target)}): "
                "the proxy would forward to itself"
            )
        one_way, jitter = check_delay(one_way, jitter)
        max_connections = _validate.integer("max_connections", max_connections, minimum=1, maximum=1024)
        buffer_bytes = _validate.integer("buffer_bytes", buffer_bytes, minimum=2 * CHUNK, maximum=1 << 30)
        connect_timeout = _positive("connect_timeout", connect_timeout)
        idle_timeout = _positive("idle_timeout", idle_timeout)
        half_closed_idle = _positive("half_closed_idle", half_closed_idle)
        if seed is not None:
            seed = _validate.integer("seed", seed, minimum=0)
        self._server = _Server(
            target, one_way, jitter, random.Random(seed), max_connections, buffer_bytes, connect_timeout, idle_timeout
        )
        self._server.half_closed_idle = half_closed_idle
        self._address: tuple[str, int] | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        s = self._server
        where = "not started" if self._address is None else _validate.show_host_port(*self._address)
        return (
            f"DelayProxy({where} -> {_validate.show_host_port(*s.target)}, one_way={s.one_way:g}, jitter={s.jitter:g}, "
            f"connections={len(s.tasks)})"
        )

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` the proxy listens on (the port chosen, when 0 was asked for).

        Raises:
            ChannelError: the proxy is not running.
        """
        if self._address is None:
            raise ChannelError("the proxy is not running")
        return self._address

    @property
    def one_way(self) -> float:
        """The one-way delay in seconds."""
        return self._server.one_way

    @property
    def jitter(self) -> float:
        """The widest extra delay of a chunk in seconds."""
        return self._server.jitter

    @property
    def accepted(self) -> int:
        """Connections accepted so far (those refused at once not counted)."""
        return self._server.accepted

    @property
    def forwarded(self) -> int:
        """Connections accepted whose target accepted them too."""
        return self._server.forwarded

    @property
    def looped(self) -> int:
        """Connections that came from the proxy itself (its target leads back to it): closed at
        once, each logged as an error."""
        return self._server.looped

    @property
    def refused(self) -> int:
        """Connections closed at once because ``max_connections`` were open."""
        return self._server.refused

    def start(self) -> DelayProxy:
        """Binds the listening address and starts forwarding (starting twice is harmless).

        Raises:
            ChannelError: the address cannot be listened on.
        """
        with self._lock:
            if self._thread is not None:
                return self
            ready = threading.Event()
            failure: list[BaseException] = []
            self._thread = threading.Thread(target=self._run, args=(ready, failure), name="qitcore-proxy", daemon=True)
            self._thread.start()
        if not ready.wait(_START) or failure:
            self.close()
            host, port = self._listen
            why = failure[0] if failure else f"not listening within {_START:g} s"
            raise ChannelError(f"proxy: cannot listen on {_validate.show_host_port(host, port)}: {why}")
        return self

    def close(self) -> None:
        """Stops listening and closes every connection, both sides (closing twice is harmless)."""
        with self._lock:
            thread, loop, stop = self._thread, self._loop, self._stop
            self._thread = None
        if thread is None:
            return
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has ended already
                loop.call_soon_threadsafe(stop.set)
        thread.join(_STOP)
        if thread.is_alive():
            log.warning("the proxy's thread did not stop within %g s", _STOP)
        self._address = None

    def __enter__(self) -> DelayProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, ready: threading.Event, failure: list[BaseException]) -> None:
        try:
            asyncio.run(self._serve(ready))
        except BaseException as exc:
            failure.append(exc)
            ready.set()

    async def _serve(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        host, port = self._listen
        server = await asyncio.start_server(self._server.handle, host, port)
        try:
            bound = server.sockets[0].getsockname()
            self._address = (bound[0], bound[1])
            ready.set()
            await self._stop.wait()
        finally:
            server.close()
            for task in list(self._server.tasks):
                task.cancel()
            await asyncio.gather(*self._server.tasks, return_exceptions=True)
            await server.wait_closed()
