"""A client for any ETSI GS QKD 014 KME, over HTTPS with mutual TLS."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import threading
import time
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from .. import _validate
from .._validate import show_host_port
from ..errors import (
    ChannelClosed,
    ChannelError,
    InvalidArgumentError,
    InvalidTypeError,
    KMEBadRequest,
    KMEError,
    KMEUnauthorized,
    KMEUnavailable,
    os_reason,
)
from .models import Key, KeyRequest, Status, parse_container

__all__ = ["KMEClient"]

ERRORS: dict[int, type[KMEError]] = {400: KMEBadRequest, 401: KMEUnauthorized, 503: KMEUnavailable}
MAX_ANSWER = 1 << 24
"""The largest answer read (bytes): far above any Key container a KME may send (a request of
hundreds of keys of 8 kbit is under a megabyte)."""


class KMEClient:
    """Talks to the KME at ``url`` (``https://host:port``) as the SAE of certificate ``cert``.

    Args:
        url: the KME's base URL; only ``https`` is accepted.
        cert, key: the SAE's client certificate and private key (PEM files).
        ca: the CA that signed the KME's certificate (PEM file).
        timeout: seconds per request.

    Raises:
        InvalidArgumentError: the URL is not ``https://host[:port]``, or a file is missing, not
            PEM, or the key is not the certificate's.

    One connection is kept open and reused (thread-safe; requests are serialised).
    """

    def __init__(self, url: str, cert: str, key: str, ca: str, *, timeout: float = 10.0) -> None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < 1e6:
            raise InvalidArgumentError(f"timeout: expected seconds above 0, got {timeout!r}")
        if not isinstance(url, str):
            raise InvalidTypeError(f"url: expected a string, got {type(url).__name__}")
        cert, key, ca = (_validate.path(name, value) for name, value in (("cert", cert), ("key", key), ("ca", ca)))
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise InvalidArgumentError(f"url: expected https://host[:port], got {url!r} (plain HTTP is not offered)")
        try:
            self._host, self._port = parts.hostname, parts.port or 443
        except ValueError as exc:  # a port that is not a number, or out of range
            raise InvalidArgumentError(f"url: {url!r}: {exc}") from None
        try:
            self._context = ssl.create_default_context(cafile=ca)
        except (OSError, ssl.SSLError) as exc:
            raise InvalidArgumentError(f"ca: cannot load {ca}: {_reason(exc)}") from None
        try:
            self._context.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as exc:
            raise InvalidArgumentError(f"cert, key: cannot load {cert} with {key}: {_reason(exc)}") from None
        self._timeout = timeout
        self._conn: http.client.HTTPSConnection | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"KMEClient(https://{show_host_port(self._host, self._port)})"

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> KMEClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        with self._lock:
            for attempt in (0, 1):  # a kept-alive connection the server closed is reopened once
                if self._conn is None:
                    self._conn = http.client.HTTPSConnection(
                        self._host, self._port, context=self._context, timeout=self._timeout
                    )
                # The timeout bounds the whole answer, not each read of it: a KME sending a byte
                # now and then would otherwise hold the caller for as long as it likes.
                deadline = _Deadline(self._conn)
                watchdog = threading.Timer(self._timeout, deadline.cut)
                watchdog.daemon = True
                watchdog.start()
                expired = deadline.expired
                try:
                    self._conn.request(method, path, body=data, headers=headers)
                    response = self._conn.getresponse()
                    payload = response.read(MAX_ANSWER + 1)
                    if expired.is_set():
                        raise TimeoutError
                    break
                except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                    self._conn.close()
                    self._conn = None
                    if expired.is_set():
                        raise self._late() from None
                    if attempt:
                        raise ChannelClosed(f"the KME closed the connection: {exc}") from None
                except (OSError, http.client.HTTPException, ValueError) as exc:
                    self._conn.close()
                    self._conn = None
                    if expired.is_set():
                        raise self._late() from None
                    raise ChannelClosed(f"KME at {show_host_port(self._host, self._port)}: {os_reason(exc)}") from None
                finally:
                    deadline.finish()
                    watchdog.cancel()
        if len(payload) > MAX_ANSWER:
            self.close()
            raise KMEError(f"HTTP {response.status} with a body over {MAX_ANSWER} bytes", status=response.status)
        try:
            decoded = json.loads(payload)
        except (ValueError, RecursionError):
            raise KMEError(f"HTTP {response.status} with a body that is not JSON", status=response.status) from None
        if response.status != 200:
            cls = ERRORS.get(response.status, KMEError)
            message = decoded.get("message", "") if isinstance(decoded, dict) else ""
            details = decoded.get("details") if isinstance(decoded, dict) else None
            raise cls(f"HTTP {response.status}: {message}", details, status=response.status)
        return decoded

    def _late(self) -> ChannelError:
        where = show_host_port(self._host, self._port)
        return ChannelError(f"KME at {where}: no whole answer within {self._timeout:g} s")

    def status(self, slave_sae_id: str) -> Status:
        """The Status of the link to ``slave_sae_id``."""
        slave_sae_id = _sae_id("slave_sae_id", slave_sae_id)
        return Status.from_json(self._request("GET", f"/api/v1/keys/{quote(slave_sae_id, safe='')}/status"))

    def get_keys(
        self, slave_sae_id: str, number: int = 1, size: int | None = None, *,
        additional_slave_sae_ids: list[str] | None = None, post: bool = False,
    ) -> list[Key]:  # fmt: skip
        """``number`` new keys of ``size`` bits (the KME's default size when ``None``) shared
        with ``slave_sae_id`` (``enc_keys``); GET unless ``post`` or extra slaves are given."""
        slave_sae_id = _sae_id("slave_sae_id", slave_sae_id)
        # Types here; values (a number of keys within the KME's limits, a size it serves) are the
        # KME's to judge, and its refusal names them (KMEBadRequest).
        number = _validate.integer("number", number)
        if size is not None:
            size = _validate.integer("size", size)
        if additional_slave_sae_ids is not None:
            additional_slave_sae_ids = _sae_ids("additional_slave_sae_ids", additional_slave_sae_ids)
        post = _validate.flag("post", post)
        path = f"/api/v1/keys/{quote(slave_sae_id, safe='')}/enc_keys"
        if post or additional_slave_sae_ids:
            request = KeyRequest(
                number=number, size=size, additional_slave_SAE_IDs=tuple(additional_slave_sae_ids or ())
            )
            return parse_container(self._request("POST", path, request.to_json()))
        query = {"number": number} if size is None else {"number": number, "size": size}
        return parse_container(self._request("GET", f"{path}?{urlencode(query)}"))

    def get_keys_with_ids(self, master_sae_id: str, key_ids: list[str], *, post: bool = True) -> list[Key]:
        """The keys ``master_sae_id`` received with IDs ``key_ids`` (``dec_keys``)."""
        master_sae_id = _sae_id("master_sae_id", master_sae_id)
        key_ids = _sae_ids("key_ids", key_ids, what="key ID")
        post = _validate.flag("post", post)
        path = f"/api/v1/keys/{quote(master_sae_id, safe='')}/dec_keys"
        if post:
            return parse_container(self._request("POST", path, {"key_IDs": [{"key_ID": k} for k in key_ids]}))
        return parse_container(self._request("GET", f"{path}?{urlencode([('key_ID', k) for k in key_ids])}"))


def _sae_id(name: str, value: Any, what: str = "SAE ID") -> str:
    """A non-empty string (an SAE ID, a key ID)."""
    if not isinstance(value, str):
        raise InvalidTypeError(f"{name}: expected a string ({what}), got {type(value).__name__}")
    if not value:
        raise InvalidArgumentError(f"{name}: empty ({what})")
    return value


def _sae_ids(name: str, values: Any, what: str = "SAE ID") -> list[str]:
    """A list or tuple of non-empty strings (a lone string is refused, not read as its letters)."""
    if not isinstance(values, (list, tuple)):
        raise InvalidTypeError(f"{name}: expected a list of {what}s, got {type(values).__name__}")
    return [_sae_id(f"{name}[{i}]", v, what) for i, v in enumerate(values)]


def _reason(exc: OSError | ssl.SSLError) -> str:
    """What went wrong, in words: ssl errors carry their reason apart from the OpenSSL codes."""
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return {"KEY_VALUES_MISMATCH": "the key is not the certificate's"}.get(exc.reason, exc.reason)
    return exc.strerror or str(exc)


class _Deadline:
    """Ends one request past its time: its blocked read returns, and the caller says why. A
    request still connecting (no socket yet) is cut as soon as its socket exists; once the
    request has finished (:meth:`finish`), nothing is cut, so its kept-alive connection is
    never shut under the next request."""

    def __init__(self, conn: http.client.HTTPSConnection) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self._done = False
        self.expired = threading.Event()

    def cut(self) -> None:
        self.expired.set()
        while True:
            with self._lock:
                if self._done:
                    return
                sock = self._conn.sock
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
                    return
            time.sleep(0.05)

    def finish(self) -> None:
        with self._lock:
            self._done = True
