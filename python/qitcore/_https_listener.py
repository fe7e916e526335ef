"""A bounded HTTP(S) server for aiohttp, shared by the KME and the randomness service: aiohttp's
HTTP/1.1 on an event loop in a thread of its own, behind a listener that bounds connections in
number and in time (:class:`~qitcore.kme.limits.ConnectionLimits`) and, given an SSL context,
completes each TLS handshake (mutual TLS when the context asks for client certificates) within
its deadline before aiohttp sees the connection.

aiohttp bounds only a connection's idle time; this adds a deadline for a request's headers and
one for sending a response (a client that does not read its replies), a cap on open connections
(the rest wait in the kernel's backlog) and on connections from one address (the rest are
closed). Imported only where something serves: clients need no aiohttp.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import json
import logging
import math
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from ._net import listen_socket
from ._validate import host_port
from .errors import InvalidArgumentError, os_reason
from .kme.limits import ConnectionLimits

__all__ = ["BoundedServer", "Refuse", "Respond", "json_response", "peer_common_name", "refuser"]

Refuse = Callable[[int, str], web.StreamResponse]
"""Makes the answer to a request refused before any handler saw it (status, reason); the
connection is closed after it."""
Respond = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
"""Answers one request (on the event loop)."""
HANDSHAKE_LOG_EVERY = 10.0
"""Seconds between log lines about failed TLS handshakes (each line counts the ones in between)."""


class _Connection(web.RequestHandler):
    """One client connection: aiohttp's HTTP/1.1 handling, plus deadlines for a request's headers
    and for writing a response, and a place in the listener's count."""

    def setup(self, release: Callable[[], None], limits: ConnectionLimits, refuse: Refuse, log: logging.Logger) -> None:
        self._release = release
        self._header_timeout = limits.header_timeout
        self._write_timeout = limits.write_timeout
        self._refuse = refuse
        self._log = log
        self._header_timer: asyncio.TimerHandle | None = None
        self._busy = False

    async def finish_response(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        # aiohttp writes the response here, waiting for room in the socket's buffers: a client
        # that never reads would hold the connection (and its place) for ever. Past the deadline
        # the connection is aborted: its unsent bytes are dropped and the writer's wait ends.
        timer = self._loop.call_later(self._write_timeout, self._write_late)
        try:
            return await super().finish_response(request, resp, start_time)
        finally:
            timer.cancel()

    def _write_late(self) -> None:
        self._log.debug("aborting a connection whose response took over %s s to send", self._write_timeout)
        transport = self.transport
        self.force_close()
        if transport is not None:
            transport.abort()  # close() would wait for the unsent bytes to go, which they never do

    def data_received(self, data: bytes) -> None:
        # Bytes while no request is being answered start a request's headers: they get a deadline.
        if data and not self._busy and self._header_timer is None:
            self._header_timer = self._loop.call_later(self._header_timeout, self._headers_late)
        super().data_received(data)

    def _headers_late(self) -> None:
        self._header_timer = None
        if not self._busy:
            self._log.debug("closing a connection whose request headers took over %s s", self._header_timeout)
            self.force_close()

    def request_started(self) -> None:
        self._busy = True
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def request_ended(self) -> None:
        self._busy = False

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().connection_lost(exc)
        self._release()

    def handle_error(
        self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        # Requests aiohttp cannot parse (a bad request line, headers too long, broken chunks): a
        # refusal in the server's own format, and the connection is closed after it.
        self._log.debug("unparsable request: %s", message or exc)
        if request.writer.output_size > 0:
            raise ConnectionError("a response was already under way")
        if status >= 500:
            return self._refuse(503, "internal error")
        return self._refuse(status, f"malformed HTTP request: {str(message or exc or '')[:200]}")


class _WebServer(web.Server):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        make = self.request_factory

        def factory(message: Any, payload: Any, protocol: Any, writer: Any, task: Any) -> web.BaseRequest:
            # Called as soon as a request's headers are parsed and its turn comes, before the
            # handler's task starts: a loaded loop cannot let the header deadline close a
            # connection whose request is complete.
            if isinstance(protocol, _Connection):
                protocol.request_started()
            return make(message, payload, protocol, writer, task)

        self.request_factory = factory

    def __call__(self) -> web.RequestHandler:
        return _Connection(self, loop=self._loop, **self._kwargs)


class _Listener:
    """Accepts connections while fewer than ``max_connections`` are open (the rest wait in the
    kernel's backlog), at most ``max_per_address`` from one address, and hands each one that
    completes its TLS handshake in time (when there is TLS) to aiohttp."""

    def __init__(self, owner: BoundedServer, server: web.Server) -> None:
        self.owner, self.sock, self.server, self.limits = owner, owner.sock, server, owner.limits
        self.log = owner.log
        self.open = 0
        self.per_address: collections.Counter[str] = collections.Counter()
        self.handshakes: set[asyncio.Task[None]] = set()
        self.slot_free = asyncio.Event()
        self.failed_since_log = 0  # handshakes failed since the last line about them
        self.last_log = -math.inf

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while self.open >= self.limits.max_connections:
                self.slot_free.clear()
                await self.slot_free.wait()
            try:
                conn, addr = await loop.sock_accept(self.sock)
            except OSError as exc:  # out of file descriptors, or a connection reset while queued
                self.log.warning("accepting a connection failed: %s", exc)
                await asyncio.sleep(0.1)
                continue
            host = str(addr[0])
            if self.per_address[host] >= self.limits.max_per_address:
                self.log.debug("closing a connection from %s: it holds %d already", host, self.per_address[host])
                conn.close()
                continue
            self.open += 1
            self.per_address[host] += 1
            self.owner.connections(+1)
            if conn.family in (socket.AF_INET, socket.AF_INET6):
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            task = loop.create_task(self._handshake(conn, host))
            self.handshakes.add(task)
            task.add_done_callback(self.handshakes.discard)

    def _releaser(self, host: str) -> Callable[[], None]:
        done = False

        def release() -> None:
            nonlocal done
            if not done:
                done = True
                self.open -= 1
                self.per_address[host] -= 1
                if not self.per_address[host]:
                    del self.per_address[host]
                self.owner.connections(-1)
                self.slot_free.set()

        return release

    async def _handshake(self, conn: socket.socket, host: str) -> None:
        release = self._releaser(host)
        protocol = self.server()
        assert isinstance(protocol, _Connection)
        protocol.setup(release, self.limits, self.owner.refuse, self.log)
        context = self.owner.context
        try:
            await asyncio.get_running_loop().connect_accepted_socket(
                lambda: protocol,
                conn,
                ssl=context,
                ssl_handshake_timeout=self.limits.handshake_timeout if context is not None else None,
            )
        except Exception as exc:  # another CA, too slow, not TLS: end the connection
            self._handshake_failed(host, exc)
            conn.close()
            release()

    def _handshake_failed(self, host: str, exc: BaseException) -> None:
        # One line at most every HANDSHAKE_LOG_EVERY seconds, counting the others: a flood of
        # failing handshakes must not flood the journal.
        self.failed_since_log += 1
        now = asyncio.get_running_loop().time()
        if now - self.last_log >= HANDSHAKE_LOG_EVERY:
            more = self.failed_since_log - 1
            also = f" ({more} more since the last such line)" if more else ""
            self.log.info("TLS handshake with %s failed: %s%s", host, str(exc)[:200] or type(exc).__name__, also)
            self.failed_since_log, self.last_log = 0, now


def json_response(
    status: int,
    payload: Any,
    *,
    headers: Mapping[str, str] | None = None,
    close: bool = False,
    retry_after: float | None = None,
) -> web.Response:
    """A JSON response with ``headers``; ``retry_after`` (seconds, rounded up, at least 1) becomes
    ``Retry-After``; ``close`` ends the connection after it."""
    response = web.Response(status=status, body=json.dumps(payload).encode(), content_type="application/json")
    response.headers.update(headers or {})
    if retry_after is not None:
        response.headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    if close:
        response.force_close()
    return response


def refuser(
    headers: Mapping[str, str] | None = None, body: Callable[[str], Any] = lambda reason: {"error": reason}
) -> Refuse:
    """A :data:`Refuse`: the reason as JSON (``body(reason)``, ``{"error": reason}`` by default)
    with ``headers``; the connection is closed after it."""

    def refuse(status: int, reason: str) -> web.StreamResponse:
        return json_response(status, body(reason), headers=headers, close=True)

    return refuse


def peer_common_name(request: web.BaseRequest) -> str | None:
    """The subject common name of the client's verified certificate, or None (no TLS, no
    certificate, or a certificate without one). A subject with several CNs is known by its first."""
    transport = request.transport
    cert = transport.get_extra_info("peercert") if transport is not None else None
    for rdn in (cert or {}).get("subject", ()):
        for name, value in rdn:
            if name == "commonName":
                return str(value)
    return None


class BoundedServer:
    """Serves HTTP (HTTPS with ``context``) on the listening socket ``sock`` from :meth:`start`
    until :meth:`stop` (:meth:`listening` binds the socket too, and closes it at :meth:`stop`).

    Args:
        sock: a listening socket (made non-blocking here); closed by the caller.
        limits: bounds on connections in number and in time.
        context: TLS (server side); None serves plain HTTP.
        respond: answers each request, on the event loop; blocking work goes to :attr:`executor`.
        refuse: the answer to a request refused before ``respond`` saw it.
        name: names the threads and the log (``logging.getLogger(name)``).
        threads: threads of :attr:`executor`, for ``respond``'s blocking work.
        on_connection: told +1 / -1 as connections open and close (counters); called on the loop.
    """

    def __init__(
        self,
        sock: socket.socket,
        limits: ConnectionLimits,
        context: ssl.SSLContext | None,
        respond: Respond,
        refuse: Refuse,
        *,
        name: str,
        threads: int = 8,
        on_connection: Callable[[int], None] | None = None,
    ) -> None:
        self.sock, self.limits, self.context = sock, limits, context
        self.sock.setblocking(False)
        self.respond, self.refuse = respond, refuse
        self.log = logging.getLogger(name)
        self._on_connection = on_connection
        self.executor = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix=f"{name}-worker")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._what = name
        self._owns_socket = False
        self._state = "new"
        self._state_lock = threading.Lock()

    @classmethod
    def listening(
        cls,
        what: str,
        address: str,
        limits: ConnectionLimits,
        context: ssl.SSLContext | None,
        respond: Respond,
        refuse: Refuse,
        **kwargs: Any,
    ) -> BoundedServer:
        """A server on a socket bound here to ``address`` (``HOST:PORT``; port 0: any free one,
        see :attr:`port`) and closed at :meth:`stop`. ``what`` names the front end in errors
        (``"https"``); ``kwargs`` are the constructor's.

        Raises:
            InvalidArgumentError: the address is malformed or cannot be listened on.
        """
        host, port = host_port(f"{what} listen", address)
        try:
            sock = listen_socket(host, port, backlog=limits.backlog)
        except (OSError, OverflowError) as exc:
            raise InvalidArgumentError(f"{what} listen: cannot listen on {address}: {os_reason(exc)}") from None
        try:
            server = cls(sock, limits, context, respond, refuse, **kwargs)
        except BaseException:
            sock.close()
            raise
        server._what, server._owns_socket = what, True
        return server

    @property
    def port(self) -> int:
        """The port listened on."""
        return int(self.sock.getsockname()[1])

    def connections(self, delta: int) -> None:
        if self._on_connection is not None:
            try:
                self._on_connection(delta)
            except Exception:  # a counter must never take a connection down
                self.log.exception("counting a connection failed")

    def start(self) -> None:
        """Starts serving in a thread of its own; returns once it accepts connections.

        Raises:
            InvalidArgumentError: started before, or stopped.
        """
        with self._state_lock:
            if self._state != "new":
                raise InvalidArgumentError(f"{self._what}: cannot start a server that is {self._state}")
            self._state = "running"
            self._thread.start()
        self._ready.wait()

    def stop(self) -> None:
        """Stops accepting, closes every connection (a request being answered gets up to a second
        to finish) and returns once the server's threads have ended (a blocking job of
        :attr:`executor` under way is waited for). Safe to call twice, and before :meth:`start`."""
        with self._state_lock:
            if self._state == "stopped":
                return
            self._state = "stopped"
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread.is_alive():
            self._thread.join()
        self.executor.shutdown(wait=True)
        if self._owns_socket:
            self.sock.close()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            self._ready.set()  # a start() waiting on a loop that failed returns

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        lim = self.limits
        server = _WebServer(
            self._respond, access_log=None, keepalive_timeout=lim.idle_timeout,
            lingering_time=min(2.0, lim.body_timeout), max_line_size=8190, max_field_size=8190, max_headers=64,
            auto_decompress=False,
        )  # fmt: skip
        listener = _Listener(self, server)
        accepting = asyncio.get_running_loop().create_task(listener.run())
        self._ready.set()
        await self._stopping.wait()
        accepting.cancel()
        for task in list(listener.handshakes):
            task.cancel()
        await asyncio.gather(accepting, *listener.handshakes, return_exceptions=True)
        await server.shutdown(1.0)

    async def _respond(self, request: web.BaseRequest) -> web.StreamResponse:
        connection = request.protocol
        try:
            if request.version < (1, 0):
                # HTTP/0.9 has no status line and no headers: a refusal could not be told from
                # data. The connection ends unanswered (writing to it fails, which aiohttp expects).
                request.protocol.force_close()
                return web.Response(status=400)
            return await self.respond(request)
        finally:
            if isinstance(connection, _Connection):
                connection.request_ended()
