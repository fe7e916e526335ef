"""``https://HOST:PORT[/PATH]?cert=FILE&key=FILE&ca=FILE``: random bytes from a qitcore service's
HTTPS endpoint (``qitcore serve --https``), as a stream like any device's.

The service has already health-tested and extracted them; here a thread fetches them
(``GET /random?bytes=N`` with the client certificate, over one kept-alive connection, the
standard library's ``http.client`` and ``ssl``: no aiohttp) and feeds them to the stream's
queue, which applies backpressure. Parameters: ``cert`` and ``key`` (the client certificate the
service knows by its CN, PEM), ``ca`` (the CA that signed the service's certificate; default:
the system's), ``chunk`` (bytes per request, 16384; smaller if the service allows less).
:func:`open_https` takes them as keywords. Of :func:`qitcore.open`'s options, ``timeout`` (seconds
to wait for a healthy device; the connection's own timeout allows a little more, so that the
service's 503 does not race it) and ``buffer_bytes`` apply; the conditioning options
(``min_entropy``, ``epsilon``, ...) are the service's, set in its configuration, and are refused
here rather than ignored.

Nothing the service sends is read without a bound: a reply of random bytes is read up to the size
asked for (one byte more shows a reply too long), an error's body up to 4 KiB.

Errors say what the service said: a certificate it does not serve is
:class:`~qitcore.errors.ServiceAccessDenied`, no healthy device is
:class:`~qitcore.errors.ServiceUnavailable`, nothing listening is
:class:`~qitcore.errors.DeviceNotFound` (when opening); once open, a failure ends the stream with
:class:`~qitcore.errors.DeviceDisconnected` and the reason. Requests over the client's rate are
retried when the service says to (429).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import socket
import ssl
import threading
import time
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from .. import _core
from ..errors import (
    DeviceDisconnected,
    DeviceError,
    DeviceNotFound,
    InvalidArgumentError,
    QitError,
    ServiceAccessDenied,
    ServiceUnavailable,
    UnsupportedOperationError,
    os_reason,
)
from ..stream import QrngStream
from ._params import integer, text
from ._registry import Options, Url, open, register_backend

__all__ = ["HTTPS_PARAMS", "open_https"]

HTTPS_PARAMS = (
    text("cert", "client certificate (PEM)"),
    text("key", "the client certificate's private key (PEM)"),
    text("ca", "CA of the service's certificate (PEM; default: the system's)"),
    integer("chunk", 1, 1 << 20, "bytes per request"),
)
DEFAULT_CHUNK = 1 << 14
RETRY_PAUSE = 1.0
"""Seconds at most between retries of a request the service refused for now (429, 503)."""
GRACE = 2.0
"""Seconds the connection waits for an answer beyond ``timeout``: the service's 503 comes at its
wait, which must not race the client's own timeout."""
MAX_ERROR_BODY = 4096
"""Bytes of an error's body read at most (its JSON reason)."""


class _Refused(Exception):
    def __init__(self, status: int, reason: str, retry_after: float | None, body: dict[str, Any]) -> None:
        super().__init__(f"HTTP {status}: {reason}")
        self.status, self.reason, self.retry_after, self.body = status, reason, retry_after, body


class _Fetcher:
    """Fetches random bytes from the service over one kept-alive connection."""

    def __init__(self, url: Url, options: Options) -> None:
        self.url, self.options = url, options
        host, port = _address(url)
        self.host, self.port = host, port
        self.path = url.path if url.path not in ("", "/") else "/random"
        self.chunk = url.get("chunk", int, DEFAULT_CHUNK)
        self.context = _context(url)
        self._conn: http.client.HTTPSConnection | None = None
        self._lock = threading.Lock()
        self.closed = False

    def fetch(self) -> bytes:
        """One request's bytes (``chunk`` of them). A kept-alive connection the service closed
        meanwhile is reopened once.

        Raises:
            _Refused: the service answered with an error.
            OSError, http.client.HTTPException, ssl.SSLError: the connection failed.
        """
        for attempt in (0, 1):
            fresh = self._conn is None
            conn = self._connect()
            try:
                conn.request("GET", f"{self.path}?bytes={self.chunk}")
                response = conn.getresponse()
                ok = response.status == 200
                if ok and response.length is not None and response.length != self.chunk:
                    self.drop()  # its body is left unread: the connection cannot carry another request
                    raise _Refused(
                        502, f"the service announced {response.length} bytes for a request of {self.chunk}", None, {}
                    )
                body = response.read(self.chunk + 1 if ok else MAX_ERROR_BODY)
                if not response.isclosed() and len(body) <= (self.chunk if ok else 0):
                    body += response.read(1)  # the end of a chunked body: nothing more, or it is too long
            except (OSError, http.client.HTTPException):
                self.drop()
                if fresh or attempt or self.closed:
                    raise
                continue  # the service closed the idle connection: once more on a new one
            if response.will_close or not response.isclosed():
                self.drop()  # closing, or a body not read to its end
            if ok:
                if len(body) > self.chunk:
                    raise _Refused(502, f"the service sent more than the {self.chunk} bytes asked for", None, {})
                if len(body) < self.chunk:
                    raise _Refused(502, f"the service sent {len(body)} bytes for a request of {self.chunk}", None, {})
                return body
            raise _refusal(response.status, response.getheader("Retry-After"), body[:MAX_ERROR_BODY])
        raise AssertionError("unreachable")

    def _connect(self) -> http.client.HTTPSConnection:
        with self._lock:
            if self.closed:
                raise DeviceDisconnected(f"{self.url.public}: closed")
            if self._conn is None:
                self._conn = http.client.HTTPSConnection(
                    self.host, self.port, timeout=self.options.timeout + GRACE, context=self.context
                )
            return self._conn

    def drop(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(OSError):
                if conn.sock is not None:
                    conn.sock.shutdown(socket.SHUT_RDWR)  # a recv in another thread returns now
            conn.close()

    def close(self) -> None:
        self.closed = True
        self.drop()


def _refusal(status: int, retry_after: str | None, body: bytes) -> _Refused:
    try:
        payload = json.loads(body)
        reason = str(payload["error"]) if isinstance(payload, dict) and "error" in payload else ""
    except (ValueError, UnicodeDecodeError):
        payload, reason = {}, ""
    if not reason:
        reason = http.client.responses.get(status, "error")
    wait = None
    if retry_after is not None and retry_after.isascii() and retry_after.isdigit():
        wait = float(min(int(retry_after), 3600))
    return _Refused(status, reason[:300], wait, payload if isinstance(payload, dict) else {})


def _address(url: Url) -> tuple[str, int]:
    try:
        parts = urlsplit(f"//{url.location}")
        name, port = parts.hostname, parts.port or 443
    except ValueError as exc:
        raise InvalidArgumentError(f"{url.public}: not a valid address: {exc}") from None
    if not name:
        raise InvalidArgumentError(f"{url.public}: give the service's address, https://HOST:PORT")
    return name, port


def _context(url: Url) -> ssl.SSLContext:
    cert, key, ca = url.get("cert", str), url.get("key", str), url.get("ca", str)
    if cert is None:
        raise InvalidArgumentError(f"{url.public}: cert: the service needs a client certificate (?cert=FILE&key=FILE)")
    try:
        context = ssl.create_default_context(cafile=ca)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        files = ", ".join(f for f in (cert, key, ca) if f)
        raise InvalidArgumentError(f"{url.public}: cannot load {files}: {os_reason(exc)}") from None
    return context


def _opening_error(url: Url, exc: BaseException, timeout: float) -> DeviceError:
    """The error ``qitcore.open`` raises for a first request that failed."""
    where = url.public
    if isinstance(exc, _Refused):
        if exc.status in (401, 403):
            return ServiceAccessDenied(f"{where}: the service refuses this client: {exc.reason}")
        if exc.status == 503:
            return ServiceUnavailable(f"{where}: {exc.reason}")
        return DeviceError(f"{where}: the service answered HTTP {exc.status}: {exc.reason}")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return DeviceError(f"{where}: the service's certificate was not accepted: {exc.verify_message}")
    if isinstance(exc, ssl.SSLError):
        return DeviceError(f"{where}: TLS failed (is the client certificate one the service's CA signed?): {exc}")
    if isinstance(exc, ConnectionRefusedError | socket.gaierror):
        return DeviceNotFound(f"{where}: no service answers there ({exc})")
    if isinstance(exc, http.client.RemoteDisconnected | ConnectionResetError | ssl.SSLEOFError):
        # With TLS 1.3 a client certificate is checked after the client has finished its part of
        # the handshake: a refused one shows as a connection closed before any answer.
        return DeviceError(
            f"{where}: the service closed the connection without an answer: is the client certificate "
            "one the service's CA signed? (cert=, key=)"
        )
    if isinstance(exc, TimeoutError):
        return DeviceError(f"{where}: the service did not answer within {timeout:g} s")
    return DeviceError(f"{where}: {exc}")


class _Reader:
    """The thread that keeps the stream's queue full."""

    def __init__(self, fetcher: _Fetcher, core: _core.Stream, wait: float) -> None:
        self.fetcher, self.core, self.wait = fetcher, core, wait
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"qitcore {fetcher.url.public[:60]}", daemon=True)

    def _run(self) -> None:
        unavailable_since: float | None = None
        try:
            while not self.stop.is_set():
                try:
                    data = self.fetcher.fetch()
                except _Refused as r:
                    if self._retry(r, unavailable_since):
                        if r.status == 503 and unavailable_since is None:
                            unavailable_since = time.monotonic()
                        continue
                    self.core.disconnect(f"{self.fetcher.url.public}: the service answered HTTP {r.status}: {r.reason}")
                    return
                unavailable_since = None
                self.core.feed_samples(data)  # blocks while the queue is full
        except QitError:
            return  # the stream closed, or failed: its reader sees that
        except Exception as exc:  # the connection: OSError, ssl.SSLError, http.client.HTTPException
            if not self.stop.is_set():
                self.core.disconnect(f"{self.fetcher.url.public}: the connection to the service failed: {exc}")

    def _retry(self, r: _Refused, unavailable_since: float | None) -> bool:
        """Waits before asking again when the service says to (or a smaller chunk fits);
        False when the stream must end."""
        if r.status == 413:
            return _smaller_chunk(self.fetcher, r)
        if r.status == 429:
            self.stop.wait(min(r.retry_after or RETRY_PAUSE, RETRY_PAUSE))
            return True
        if r.status == 503 and (unavailable_since is None or time.monotonic() - unavailable_since < self.wait):
            self.stop.wait(min(r.retry_after or RETRY_PAUSE, RETRY_PAUSE))
            return True
        return False

    def close(self) -> None:
        self.stop.set()
        self.fetcher.close()
        self.core.close()  # a feed blocked on a full queue returns
        self.thread.join(timeout=5)


def _smaller_chunk(fetcher: _Fetcher, r: _Refused) -> bool:
    """After a 413: asks for the service's largest request from now on, if that is smaller."""
    largest = r.body.get("max_request")
    if isinstance(largest, int) and not isinstance(largest, bool) and 0 < largest < fetcher.chunk:
        fetcher.chunk = largest
        return True
    return False


def _first(fetcher: _Fetcher, wait: float) -> bytes:
    """The first request, answered here so that ``qitcore.open`` raises what went wrong. A
    service with no healthy device yet (503) is asked again for ``wait`` seconds; one over the
    client's rate is asked again when it says to."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return fetcher.fetch()
        except _Refused as r:
            if r.status == 413 and _smaller_chunk(fetcher, r):
                continue
            if r.status in (429, 503) and time.monotonic() < deadline:
                time.sleep(min(r.retry_after or RETRY_PAUSE, RETRY_PAUSE, max(0.0, deadline - time.monotonic())))
                continue
            raise _opening_error(fetcher.url, r, fetcher.options.timeout + GRACE) from None
        except (OSError, http.client.HTTPException) as exc:
            raise _opening_error(fetcher.url, exc, fetcher.options.timeout + GRACE) from None


def _open_https(url: Url, options: Options, raw: bool) -> QrngStream:
    if raw:
        raise UnsupportedOperationError(
            f"{url.public}: a service serves extracted bytes only; assess raw samples on the service's host"
        )
    options.passed_through(url, "service")
    fetcher = _Fetcher(url, options)
    try:
        first = _first(fetcher, options.timeout)
    except BaseException:
        fetcher.close()
        raise
    # The bytes were health-tested and extracted by the service: the stream passes them through.
    core = _core.Stream(8, raw=True, capacity=options.buffer_bytes, frame_timeout=math.inf)
    core.feed_samples(first)
    reader = _Reader(fetcher, core, options.timeout)
    reader.thread.start()
    info = {"service": f"{fetcher.host}:{fetcher.port}", "path": fetcher.path, "chunk": fetcher.chunk}
    return QrngStream(core, description=url.public, info=info, min_entropy=None, on_close=reader.close)


def open_https(
    address: str, *, cert: str, key: str | None = None, ca: str | None = None, chunk: int | None = None, **options: Any
) -> QrngStream:
    """Opens a service's HTTPS endpoint with the client certificate as keywords:
    ``open_https("https://host:8444", cert="c.pem", key="c.key", ca="ca.pem")`` is
    ``qitcore.open("https://host:8444?cert=c.pem&key=c.key&ca=ca.pem")`` with the paths quoted.
    ``options`` are :func:`qitcore.open`'s."""
    if not isinstance(address, str) or not address.startswith("https://") or "?" in address:
        raise InvalidArgumentError(f"address: expected https://HOST:PORT[/PATH] without a query, got {address!r}")
    query = {"cert": cert, "key": key, "ca": ca, "chunk": chunk}
    given = {k: str(v) for k, v in query.items() if v is not None}
    return open(f"{address}?{urlencode(given, quote_via=quote)}", **options)


register_backend("https", _open_https, HTTPS_PARAMS)
