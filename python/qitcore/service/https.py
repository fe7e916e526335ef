"""The service's network front end: random bytes over HTTPS with mutual TLS.

The TLS set-up is the KME's (:mod:`qitcore._https_listener`, the same bounded aiohttp listener):
a client must present a certificate the configured CA signed, and its subject common name (CN)
decides what it may take. :attr:`HttpsSettings.clients` maps a CN, or ``"*"`` for any CN the CA
signed, to :class:`ClientLimits`; a CN it does not name gets 403. Each CN has token buckets of its
own (bytes and requests per second), shared by all of its connections.

One resource, ``GET /random?bytes=N``: N bytes as ``application/octet-stream``; with
``&format=hex`` or ``&format=base64`` a JSON object ``{"format", "bytes", "data"}`` for scripts.
Refusals are JSON ``{"error": reason}`` with the status that fits: 400 (a malformed query), 403
(a CN not served), 404, 405, 413 (more than the CN's largest request), 429 (over its rate, with
``Retry-After``), 503 (no healthy device for the request's wait, with ``Retry-After``). Bytes come
out of the pool (:meth:`Pool.try_read`, else :meth:`Pool.read` in a worker thread), so a byte sent
here is never served to anyone else.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import math
import os
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._validate import host_port
from ..errors import DeviceError, InvalidArgumentError, InvalidTypeError, QitError, ServiceUnavailable, os_reason
from ..kme.limits import ConnectionLimits
from .frontend import FrontEnd

if TYPE_CHECKING:
    from aiohttp import web

    from .pool import Pool
    from .stats import ServiceStats

__all__ = ["ClientLimits", "HttpsServer", "HttpsSettings", "server_context"]

log = logging.getLogger("qitcore.service.https")

FORMATS = ("binary", "hex", "base64")
READ_THREADS = 8
MAX_CLIENT_CLASSES = 64
"""Client classes (and so metric labels) for CNs the configuration does not name, at most: the
first ones seen get one each, the rest are counted together as ``https:other``."""
MAX_BUCKETS = 4096
"""CNs whose rate buckets are kept at once; past it, those whose buckets are full are forgotten."""
MAX_WAIT = 60.0
"""Seconds a request may wait for the pool at most (the local socket's bound too): a stop or a
restart of the endpoint waits that long at most for reads under way."""
_LARGEST_REQUEST = 1 << 20  # the pool's MAX_REQUEST: no limit may allow more


def _positive(name: str, value: Any, *, whole: bool = False, at_most: float = 1e12) -> None:
    kind = int if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind):
        what = "an integer" if whole else "a number"
        raise InvalidTypeError(f"{name}: expected {what}, got {type(value).__name__}")
    if not (0 < value <= at_most) or (isinstance(value, float) and not math.isfinite(value)):
        bound = f"{int(at_most)}" if float(at_most).is_integer() and at_most < 1e15 else f"{at_most:g}"
        raise InvalidArgumentError(f"{name}: expected a value above 0 and at most {bound}, got {value!r}")


@dataclass(frozen=True)
class ClientLimits:
    """What one client (one certificate CN) may take.

    Attributes:
        bytes_per_second: sustained rate of random bytes; a client may burst up to one second's
            worth, or one largest request, whichever is more.
        requests_per_second: sustained rate of requests (any outcome); bursts of one second's
            worth (at least one request).
        max_request: bytes in one request, at most 1 MiB (larger ones get 413).
    """

    bytes_per_second: float = float(1 << 20)
    requests_per_second: float = 100.0
    max_request: int = 1 << 16

    def __post_init__(self) -> None:
        _positive("bytes_per_second", self.bytes_per_second)
        _positive("requests_per_second", self.requests_per_second)
        _positive("max_request", self.max_request, whole=True, at_most=_LARGEST_REQUEST)


@dataclass(frozen=True, kw_only=True)
class HttpsSettings:
    """The HTTPS endpoint.

    Attributes:
        cert, key: the server's certificate chain and private key (PEM files).
        ca: the CA whose signature a client certificate needs (PEM file).
        listen: ``HOST:PORT`` (port 0: any free one, see :attr:`HttpsServer.port`).
        clients: limits by certificate CN; ``"*"`` applies to any CN not named (each such CN still
            has buckets of its own). Without ``"*"``, a CN not named is refused (403).
        connections: bounds on connections in number and in time.
        wait: seconds a request waits for the pool (no healthy device) before 503, counted from
            its arrival (time spent queued for a worker thread counts); at most 60.
    """

    cert: str = ""
    key: str = ""
    ca: str = ""
    listen: str = "127.0.0.1:8444"
    clients: Mapping[str, ClientLimits] = field(default_factory=lambda: {"*": ClientLimits()})
    connections: ConnectionLimits = field(default_factory=ConnectionLimits)
    wait: float = 5.0

    def __post_init__(self) -> None:
        for name, what in (("cert", "the server's certificate"), ("key", "its private key"), ("ca", "the clients' CA")):
            if getattr(self, name) == "":
                raise InvalidArgumentError(f"https {name}: missing ({what}, a PEM file)")
        for name in ("cert", "key", "ca", "listen"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise InvalidArgumentError(f"https {name}: expected a non-empty string, got {value!r}")
        host_port("https listen", self.listen)
        if not isinstance(self.clients, Mapping):
            raise InvalidTypeError(f"https clients: expected a mapping of CN to ClientLimits, got {self.clients!r}")
        for cn, limits in self.clients.items():
            if not isinstance(cn, str) or not cn or len(cn) > 200:
                raise InvalidArgumentError(f"https clients: a CN must be 1 to 200 characters, got {cn!r}")
            if not isinstance(limits, ClientLimits):
                raise InvalidTypeError(f"https clients[{cn!r}]: expected ClientLimits, got {type(limits).__name__}")
        if not isinstance(self.connections, ConnectionLimits):
            raise InvalidTypeError(f"https connections: expected ConnectionLimits, got {self.connections!r}")
        _positive("https wait", self.wait, at_most=MAX_WAIT)


def server_context(cert: str, key: str, ca: str) -> ssl.SSLContext:
    """A TLS server context that asks for a client certificate and accepts only one signed by
    ``ca`` (the KME's set-up: TLS 1.2 at least, the platform's default ciphers).

    A client without a certificate of that CA (none at all, or another CA's) fails the handshake:
    nothing of it reaches the HTTP parser, so the service authenticates before it allocates. Every
    request then needs a verified CN.

    Raises:
        InvalidArgumentError: a file does not exist, cannot be read, or is not a certificate or
            key (the message names it).
    """
    for what, path in (("cert", cert), ("key", key), ("ca", ca)):
        if not os.path.isfile(path):
            raise InvalidArgumentError(f"https {what}: {path}: no such file")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise InvalidArgumentError(f"https cert: cannot load {cert} with its key {key}: {os_reason(exc)}") from None
    try:
        context.load_verify_locations(ca)
    except (OSError, ssl.SSLError) as exc:
        raise InvalidArgumentError(f"https ca: cannot load {ca}: {os_reason(exc)}") from None
    context.verify_mode = ssl.CERT_REQUIRED
    return context


class _Bucket:
    """A token bucket: ``rate`` tokens a second, holding at most ``size``. Not thread-safe: used
    on the event loop only."""

    def __init__(self, rate: float, size: float) -> None:
        self.rate, self.size = rate, size
        self.tokens = size
        self.when = time.monotonic()

    def take(self, n: float) -> float:
        """Takes ``n`` tokens and returns 0, or takes none and returns the seconds until there
        will be ``n``."""
        now = time.monotonic()
        self.tokens = min(self.size, self.tokens + (now - self.when) * self.rate)
        self.when = now
        if self.tokens >= n:
            self.tokens -= n
            return 0.0
        return (n - self.tokens) / self.rate

    def give_back(self, n: float) -> None:
        self.tokens = min(self.size, self.tokens + n)


class _Client:
    """One CN's limits and buckets."""

    def __init__(self, limits: ClientLimits) -> None:
        self.limits = limits
        self.requests = _Bucket(limits.requests_per_second, max(1.0, limits.requests_per_second))
        self.bytes = _Bucket(limits.bytes_per_second, max(float(limits.max_request), limits.bytes_per_second))

    def rested(self) -> bool:
        """Both buckets are full: the client is as if it had never come."""
        return (
            self.requests.take(0) == 0
            and self.requests.tokens >= self.requests.size
            and (self.bytes.take(0) == 0 and self.bytes.tokens >= self.bytes.size)
        )


def _label(cn: str) -> str:
    """``cn`` as a client class's name: as it is when short and printable, else a printable
    prefix and a hash of the whole (distinct CNs keep distinct names)."""
    if len(cn) <= 64 and cn.isprintable() and cn != "other":
        return cn
    prefix = "".join(c if c.isprintable() else "?" for c in cn[:32])
    return f"{prefix}~{hashlib.blake2b(cn.encode(errors='surrogatepass'), digest_size=6).hexdigest()}"


class _Refusal(Exception):
    def __init__(self, status: int, reason: str, word: str, *, retry_after: float | None = None, **extra: Any):
        super().__init__(reason)
        self.status, self.reason, self.word, self.retry_after, self.extra = status, reason, word, retry_after, extra


_HEADERS = {"Server": "qitcore-serve", "Cache-Control": "no-store"}


def _json(
    status: int, payload: dict[str, Any], *, close: bool = False, retry_after: float | None = None
) -> web.Response:
    from .._https_listener import json_response

    headers = {**_HEADERS, "Allow": "GET"} if status == 405 else _HEADERS
    return json_response(status, payload, headers=headers, close=close, retry_after=retry_after)


class HttpsServer(FrontEnd):
    """Serves random bytes from ``pool`` over HTTPS with mutual TLS (see the module's notes).
    :meth:`stop` returns once a request waiting for the pool ends: within
    :attr:`HttpsSettings.wait` (60 s at most), at once after :meth:`Pool.cancel_reads`, which the
    daemon calls first.

    Binds its socket here, so a bad address or certificate fails before anything starts.

    Raises:
        InvalidArgumentError: the settings are not usable (a TLS file cannot be loaded, the
            address cannot be listened on).
        DeviceError: aiohttp (qitcore's ``service`` extra) is not installed.
    """

    _serving = "serving random bytes over HTTPS on %s"

    def __init__(self, pool: Pool, stats: ServiceStats, settings: HttpsSettings) -> None:
        if not isinstance(settings, HttpsSettings):
            raise InvalidTypeError(f"settings: expected HttpsSettings, got {type(settings).__name__}")
        try:
            from .._https_listener import BoundedServer, refuser
        except ImportError:
            raise DeviceError(
                "the HTTPS endpoint needs aiohttp, part of qitcore's service extra: pip install 'qitcore[service]'"
            ) from None
        self.pool, self.stats, self.settings = pool, stats, settings
        context = server_context(settings.cert, settings.key, settings.ca)
        self._clients: dict[str, _Client] = {}
        self._classes: dict[str, str] = {}
        self._others = 0
        self._server = BoundedServer.listening(
            "https", settings.listen, settings.connections, context, self._answer, refuser(_HEADERS),
            name="qitcore.service.https", threads=READ_THREADS, on_connection=self._connection,
        )  # fmt: skip

    def _connection(self, delta: int) -> None:
        self.stats.client("https", delta)

    def _client(self, cn: str) -> _Client | None:
        client = self._clients.get(cn)
        if client is None:
            limits = self.settings.clients.get(cn) or self.settings.clients.get("*")
            if limits is None:
                return None
            if len(self._clients) >= MAX_BUCKETS:
                self._forget_rested()
                if len(self._clients) >= MAX_BUCKETS:
                    # Every bucket still counts a recent client: forgetting one would lift its
                    # limits, keeping them all would let the map grow with every CN the CA signs.
                    raise _Refusal(
                        503, f"{MAX_BUCKETS} clients are being rate-limited; try again shortly", "busy", retry_after=1.0
                    )
            client = self._clients[cn] = _Client(limits)
        return client

    def _forget_rested(self) -> None:
        # A CN whose buckets are full again is as if never seen: its entry can go (CNs under "*"
        # are as many as the CA signs).
        for cn in [cn for cn, client in self._clients.items() if client.rested()]:
            del self._clients[cn]

    def _class(self, cn: str | None) -> str:
        """The client class ``cn`` is counted under: ``https:<CN>`` (a long or odd CN shortened
        and hashed) for CNs the configuration names and the first :data:`MAX_CLIENT_CLASSES`
        others, ``https:other`` for the rest; ``https`` without a CN."""
        if cn is None:
            return "https"
        name = self._classes.get(cn)
        if name is None:
            if cn not in self.settings.clients:
                if self._others >= MAX_CLIENT_CLASSES:
                    return "https:other"
                self._others += 1
            name = self._classes[cn] = f"https:{_label(cn)}"
        return name

    async def _answer(self, request: web.BaseRequest) -> web.StreamResponse:
        from .._https_listener import peer_common_name

        arrived = time.monotonic()
        cn = peer_common_name(request)
        who = self._class(cn)
        try:
            response = await self._serve(request, cn, who, arrived + self.settings.wait)
        except _Refusal as r:
            # A refused request's body (there should be none) is left unread: the connection ends.
            self.stats.request(who, False, r.word)
            log.debug("refused %s: %s", who, r.reason)
            close = r.status in (403, 405) or not request.content.is_eof()
            payload = {"error": r.reason, **r.extra}
            return _json(r.status, payload, close=close, retry_after=r.retry_after)
        except ConnectionError as exc:  # the client went away mid-request: nobody to answer
            log.debug("a client left during its request: %s", exc)
            self.stats.request(who, False, "disconnected")
            return _json(400, {"error": "the connection ended during the request"}, close=True)
        except Exception:
            log.exception("internal error while answering a request")
            self.stats.request(who, False, "internal")
            return _json(503, {"error": "internal error"}, close=True)
        self.stats.request(who, True)
        return response

    async def _serve(self, request: web.BaseRequest, cn: str | None, who: str, deadline: float) -> web.StreamResponse:
        if cn is None:
            raise _Refusal(403, "the client certificate has no subject common name", "forbidden")
        client = self._client(cn)
        if client is None:
            raise _Refusal(403, f"{cn[:100]} is not a client of this service", "forbidden")
        wait = client.requests.take(1)
        if wait:
            raise _Refusal(
                429, f"over {client.limits.requests_per_second:g} requests a second", "rate", retry_after=wait
            )
        if request.method != "GET":
            raise _Refusal(405, f"method {request.method[:20]} is not allowed: GET", "bad-request")
        if request.path != "/random":
            raise _Refusal(404, f"no such resource: {request.path[:100]} (GET /random?bytes=N)", "bad-request")
        n, form = self._query(request, client.limits)
        wait = client.bytes.take(n)
        if wait:
            raise _Refusal(429, f"over {client.limits.bytes_per_second:g} bytes a second", "rate", retry_after=wait)
        try:
            data = await self._take(n, deadline)
        except BaseException:
            client.bytes.give_back(n)  # nothing was served
            raise
        self.stats.served(who, n)
        return self._body(data, form)

    @staticmethod
    def _query(request: web.BaseRequest, limits: ClientLimits) -> tuple[int, str]:
        query = request.rel_url.query
        unknown = sorted(set(query) - {"bytes", "format"})
        if unknown:
            raise _Refusal(400, f"unknown query parameter(s) {unknown}"[:200], "bad-request")
        for name in query:
            if len(query.getall(name)) > 1:
                raise _Refusal(400, f"{name}: given more than once", "bad-request")
        text = query.get("bytes")
        if text is None:
            raise _Refusal(400, "bytes: missing (GET /random?bytes=N)", "bad-request")
        if not (text.isascii() and text.isdigit() and len(text) <= 10):
            raise _Refusal(400, f"bytes: expected a whole number of bytes, got {text[:20]!r}", "bad-request")
        n = int(text)
        if n < 1:
            raise _Refusal(400, "bytes: must be at least 1", "bad-request")
        if n > limits.max_request:
            raise _Refusal(
                413, f"bytes: {n} is more than this client's largest request, {limits.max_request}", "too-large",
                max_request=limits.max_request,
            )  # fmt: skip
        form = query.get("format", "binary")
        if form not in FORMATS:
            raise _Refusal(400, f"format: expected one of {', '.join(FORMATS)}, got {form[:20]!r}", "bad-request")
        return n, form

    async def _take(self, n: int, deadline: float) -> bytes:
        """``n`` bytes out of the pool: at once when buffered, else from a worker thread that
        waits for a healthy device until ``deadline`` (:func:`time.monotonic`; the request's
        arrival plus :attr:`HttpsSettings.wait`)."""
        try:
            data = self.pool.try_read(n)
            if data is None:
                loop = asyncio.get_running_loop()
                data = await loop.run_in_executor(self._server.executor, self._read_by, n, deadline)
        except ServiceUnavailable as exc:
            raise _Refusal(503, f"no random bytes to serve: {exc}"[:300], "unavailable", retry_after=1.0) from None
        except QitError as exc:
            raise _Refusal(503, f"no random bytes to serve: {exc}"[:300], "unavailable", retry_after=1.0) from None
        if len(data) != n:  # the pool promises exactly n: anything else is a bug, and nothing is sent
            raise RuntimeError(f"the pool returned {len(data)} bytes for a request of {n}")
        return data

    def _read_by(self, n: int, deadline: float) -> bytes:
        # In a worker thread, maybe after a wait in the executor's queue: only what is left of
        # the request's wait, and none when its deadline has passed (its client has given up).
        if deadline <= time.monotonic():
            raise ServiceUnavailable(f"no healthy device within {self.settings.wait:g} s")
        return self.pool.read(n, self.settings.wait, deadline=deadline)

    @staticmethod
    def _body(data: bytes, form: str) -> web.StreamResponse:
        from aiohttp import web

        if form == "binary":
            response = web.Response(status=200, body=data, content_type="application/octet-stream")
        else:
            text = data.hex() if form == "hex" else base64.b64encode(data).decode()
            payload = {"format": form, "bytes": len(data), "data": text}
            response = web.Response(status=200, body=json.dumps(payload).encode(), content_type="application/json")
        response.headers.update(_HEADERS)
        return response
