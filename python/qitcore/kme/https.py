"""The KME's HTTPS side: aiohttp's HTTP/1.1 on an event loop in a thread of its own, behind the
bounded listener shared with the randomness service (:mod:`qitcore._https_listener`: connections
bounded in number and in time by :class:`ConnectionLimits`). Requests are answered by
:meth:`KMEServer.handle`, which runs in a small pool of threads (the store is SQLite, and
blocking). Imported only when a KME serves: the client needs no aiohttp."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .._https_listener import BoundedServer, json_response, peer_common_name, refuser
from ..errors import KMEBadRequest, KMEError, KMEUnauthorized
from .models import error_body

if TYPE_CHECKING:
    from .server import KMEServer

__all__ = ["Service"]

log = logging.getLogger("qitcore.kme.https")

METHODS = ("GET", "POST")
STORE_THREADS = 8


_HEADERS = {"Server": "qitcore-kme"}


def _json(status: int, payload: dict[str, Any], *, close: bool = False) -> web.Response:
    if status == 405:
        return json_response(status, payload, headers={**_HEADERS, "Allow": ", ".join(METHODS)}, close=True)
    return json_response(status, payload, headers=_HEADERS, close=close)


_refuse = refuser(_HEADERS, error_body)


def _sae(request: web.BaseRequest) -> str:
    name = peer_common_name(request)
    if name is None:
        raise KMEUnauthorized("the client certificate names no SAE (no subject common name)")
    return name


class Service:
    """Serves ``kme`` on the listening socket ``sock`` until :meth:`stop`."""

    def __init__(self, kme: KMEServer, sock: socket.socket) -> None:
        self.kme, self.sock, self.limits = kme, sock, kme.limits
        self._server = BoundedServer(
            sock, kme.limits, kme.context, self._answer, _refuse, name="qitcore.kme.https", threads=STORE_THREADS
        )

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        """Stops accepting, closes every connection (a request being answered gets up to a second
        to finish) and returns once the server's threads have ended."""
        self._server.stop()

    async def _answer(self, request: web.BaseRequest) -> web.StreamResponse:
        try:
            caller = _sae(request)
            self.kme.check(request.method, caller)
            body = await self._body(request)
            loop = asyncio.get_running_loop()
            payload = await loop.run_in_executor(
                self._server.executor, self.kme.handle, request.method, request.raw_path, body, caller
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
