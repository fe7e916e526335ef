"""The KME's HTTPS side: aiohttp's HTTP/1.1 on an event loop in a thread of its own, behind a
listener that bounds connections in number and in time (:class:`ConnectionLimits`). Requests are
answered by :meth:`KMEServer.handle`, which runs in a small pool of threads (the store is SQLite,
and blocking). Imported only when a KME serves: the client needs no aiohttp."""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import json
import logging
import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..errors import KMEBadRequest, KMEError, KMEUnauthorized
from .models import error_body

if TYPE_CHECKING:
    from .server import KMEServer

__all__ = ["Service"]

log = logging.getLogger("qitcore.kme.https")

METHODS = ("GET", "POST")
STORE_THREADS = 8


def _json(status: int, payload: dict[str, Any], *, close: bool = False) -> web.Response:
    response = web.Response(status=status, body=json.dumps(payload).encode(), content_type="application/json")
    response.headers["Server"] = "qitcore-kme"
    if status == 405:
        response.headers["Allow"] = ", ".join(METHODS)
    if close or status == 405:
        response.force_close()
    return response


class _Connection(web.RequestHandler):
    """One client connection: aiohttp's HTTP/1.1 handling, plus a deadline for a request's headers
    (aiohttp bounds only the idle time) and a place in the listener's count."""

    def setup(self, release: Callable[[], None], header_timeout: float) -> None:
        self._release = release
        self._header_timeout = header_timeout
        self._header_timer: asyncio.TimerHandle | None = None
        self._busy = False

    def data_received(self, data: bytes) -> None:
        # Bytes while no request is being answered start a request's headers: they get a deadline.
        if data and not self._busy and self._header_timer is None:
            self._header_timer = self._loop.call_later(self._header_timeout, self._headers_late)
        super().data_received(data)

    def _headers_late(self) -> None:
        self._header_timer = None
        if not self._busy:
            log.debug("closing a connection whose request headers took over %s s", self._header_timeout)
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
        # Requests aiohttp cannot parse (a bad request line, headers too long, broken chunks): an
        # Error object like every other refusal, and the connection is closed after it.
        log.debug("unparsable request: %s", message or exc)
        if request.writer.output_size > 0:
            raise ConnectionError("a response was already under way")
        if status >= 500:
            return _json(503, error_body("internal error"), close=True)
        return _json(status, error_body(f"malformed HTTP request: {str(message or exc or '')[:200]}"), close=True)


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
    completes its TLS handshake in time to aiohttp."""

    def __init__(self, kme: KMEServer, sock: socket.socket, server: web.Server) -> None:
        self.kme, self.sock, self.server, self.limits = kme, sock, server, kme.limits
        self.open = 0
        self.per_address: collections.Counter[str] = collections.Counter()
        self.handshakes: set[asyncio.Task[None]] = set()
        self.slot_free = asyncio.Event()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while self.open >= self.limits.max_connections:
                self.slot_free.clear()
                await self.slot_free.wait()
            try:
                conn, addr = await loop.sock_accept(self.sock)
            except OSError as exc:  # out of file descriptors, or a connection reset while queued
                log.warning("accepting a connection failed: %s", exc)
                await asyncio.sleep(0.1)
                continue
            host = str(addr[0])
            if self.per_address[host] >= self.limits.max_per_address:
                log.debug("closing a connection from %s: it holds %d already", host, self.per_address[host])
                conn.close()
                continue
            self.open += 1
            self.per_address[host] += 1
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
                self.slot_free.set()

        return release

    async def _handshake(self, conn: socket.socket, host: str) -> None:
        release = self._releaser(host)
        protocol = self.server()
        assert isinstance(protocol, _Connection)
        protocol.setup(release, self.limits.header_timeout)
        try:
            await asyncio.get_running_loop().connect_accepted_socket(
                lambda: protocol, conn, ssl=self.kme.context, ssl_handshake_timeout=self.limits.handshake_timeout
            )
        except Exception as exc:  # no certificate, another CA, too slow, not TLS: end the connection quietly
            log.debug("TLS handshake with %s failed: %s", host, exc)
            conn.close()
            release()


def _sae(request: web.BaseRequest) -> str:
    transport = request.transport
    cert = transport.get_extra_info("peercert") if transport is not None else None
    for rdn in (cert or {}).get("subject", ()):
        for name, value in rdn:
            if name == "commonName":
                return str(value)
    raise KMEUnauthorized("the client certificate names no SAE (no subject common name)")


class Service:
    """Serves ``kme`` on the listening socket ``sock`` until :meth:`stop`."""

    def __init__(self, kme: KMEServer, sock: socket.socket) -> None:
        self.kme, self.sock, self.limits = kme, sock, kme.limits
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._executor = concurrent.futures.ThreadPoolExecutor(STORE_THREADS, thread_name_prefix="kme-store")
        self._thread = threading.Thread(target=self._run, name="kme", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()

    def stop(self) -> None:
        """Stops accepting, closes every connection (a request being answered gets up to a second
        to finish) and returns once the server's threads have ended."""
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join()
        self._executor.shutdown(wait=True)

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
        listener = _Listener(self.kme, self.sock, server)
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
            return await self._answer(request)
        finally:
            if isinstance(connection, _Connection):
                connection.request_ended()

    async def _answer(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.version < (1, 0):
            # HTTP/0.9 has no status line and no headers: a refusal could not be told from data.
            # The connection ends unanswered (writing to it fails, which aiohttp expects).
            request.protocol.force_close()
            return web.Response(status=400)
        try:
            caller = _sae(request)
            self.kme.check(request.method, caller)
            body = await self._body(request)
            loop = asyncio.get_running_loop()
            payload = await loop.run_in_executor(
                self._executor, self.kme.handle, request.method, request.raw_path, body, caller
            )
            return _json(200, payload)
        except KMEError as exc:
            # A refusal that leaves part of the request unread ends the connection after the answer.
            return _json(exc.status, error_body(exc.message, exc.details), close=not request.content.is_eof())
        except (ValueError, UnicodeError) as exc:
            return _json(400, error_body(f"malformed request: {exc}"[:300]), close=not request.content.is_eof())
        except ConnectionError as exc:  # the client went away mid-request: nobody to answer, nothing to log
            log.debug("a client left during its request: %s", exc)
            return _json(400, error_body("the connection ended during the request"), close=True)
        except Exception:
            log.exception("internal error while answering a request")
            return _json(503, error_body("internal error"), close=True)

    async def _body(self, request: web.BaseRequest) -> bytes:
        """The request's body, read within ``body_timeout`` and refused past ``max_body``."""
        lim = self.limits
        if request.headers.get("Content-Encoding", "identity").strip().lower() != "identity":
            raise KMEError("Content-Encoding: only uncompressed (identity) bodies are accepted", status=415)
        length = request.content_length
        if length is not None and length > lim.max_body:
            raise KMEError(f"request body of {length} bytes is larger than {lim.max_body}", status=413)
        expect = request.headers.get("Expect")
        if expect is not None:
            if expect.strip().lower() != "100-continue":
                raise KMEError(f"Expect: {expect[:40]!r} is not supported", status=417)
            if request.version >= (1, 1) and request.body_exists:
                await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = bytearray()

        async def read() -> None:
            while chunk := await request.content.readany():
                body.extend(chunk)
                if len(body) > lim.max_body:
                    raise KMEError(f"request body is larger than {lim.max_body} bytes", status=413)

        try:
            await asyncio.wait_for(read(), lim.body_timeout)
        except TimeoutError:
            raise KMEError(f"the request body did not arrive within {lim.body_timeout} s", status=408) from None
        except web.RequestPayloadError as exc:
            raise KMEBadRequest(f"malformed request body: {exc}"[:300]) from None
        return bytes(body)
