"""A KME speaking ETSI GS QKD 014 v1.1.1 over HTTPS with mutual TLS.

The SAE calling is the subject common name of its client certificate (verified against the KME's
CA); plain HTTP is not offered. The master SAE asks ``enc_keys`` for its slave, the slave asks
``dec_keys`` with the key IDs the master passed on. Every refusal is an Error object with the
specification's status: 400 (malformed, outside the limits, unknown or spent key IDs), 401 (not a
known SAE, or keys of other SAEs), 503 (not enough key material, or a fault); and with HTTP's
where the request is not one the specification defines: 405 (a method other than GET and POST),
408 (a body too slow), 413 (a body too large), 415 (a compressed
body), 417 (an unknown expectation).

The HTTP layer (:mod:`qitcore.kme.https`, aiohttp) runs on an event loop in a thread of its own;
connections are bounded in number and in time (:class:`~qitcore.kme.limits.ConnectionLimits`).
"""

from __future__ import annotations

import importlib
import re
import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .. import _validate
from .._net import listen_socket
from .._validate import show_host_port
from ..errors import (
    DeviceError,
    InvalidArgumentError,
    InvalidTypeError,
    KMEBadRequest,
    KMEError,
    KMEUnauthorized,
    os_reason,
)
from .limits import ConnectionLimits
from .models import Key, KeyRequest, Status, container, parse_key_ids, parse_key_request
from .store import KeyStore

__all__ = ["ConnectionLimits", "KMEConfig", "KMEServer"]

PATH = re.compile(r"^/api/v1/keys/([^/?#]+)/(status|enc_keys|dec_keys)$")
DIGITS = re.compile(r"[0-9]{1,18}")  # ASCII only: int() also takes "1_0", " 7", "+7" and other scripts' digits


@dataclass(frozen=True)
class KMEConfig:
    """What the KME serves, and its limits (reported in the Status object and enforced)."""

    kme_id: str = "KME-1"
    target_kme_id: str = "KME-1"
    saes: frozenset[str] = field(default_factory=frozenset)
    key_size: int = 256
    max_key_count: int = 100_000
    max_key_per_request: int = 128
    max_key_size: int = 8192
    min_key_size: int = 64
    max_SAE_ID_count: int = 2  # noqa: N815 - the specification's name
    peer_saes: frozenset[str] = field(default_factory=frozenset)  # SAEs attached to the peer KME

    def __post_init__(self) -> None:
        """Checks every field (the KME serves what it holds: a bad value would fail in the middle
        of a request, or stop its key source's thread).

        Raises:
            InvalidArgumentError, InvalidTypeError: a field of the wrong kind or out of range.
        """
        for name in ("kme_id", "target_kme_id"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise InvalidArgumentError(f"{name}: expected a non-empty string, got {getattr(self, name)!r}")
        for name in ("saes", "peer_saes"):
            value = getattr(self, name)
            if not isinstance(value, (frozenset, set, list, tuple)) or not all(isinstance(s, str) and s for s in value):
                raise InvalidArgumentError(f"{name}: expected SAE IDs (non-empty strings), got {value!r}")
            object.__setattr__(self, name, frozenset(value))
        for name in ("key_size", "max_key_count", "max_key_per_request", "max_key_size", "min_key_size",
                     "max_SAE_ID_count"):  # fmt: skip
            _validate.integer(name, getattr(self, name), minimum=1)
        if not self.min_key_size <= self.key_size <= self.max_key_size:
            raise InvalidArgumentError(
                f"key sizes: expected min_key_size <= key_size <= max_key_size, got "
                f"{self.min_key_size}, {self.key_size}, {self.max_key_size}"
            )


class KMEServer:
    """An ETSI GS QKD 014 KME on ``host:port`` (port 0: any free port, see :attr:`address`).

    Args:
        config: identities and limits.
        store: where keys wait.
        certfile, keyfile: the KME's certificate chain and key (PEM).
        cafile: the CA that signs the SAEs' client certificates.
        limits: bounds on client connections (:class:`ConnectionLimits`; its defaults when None).

    Raises:
        InvalidArgumentError: a TLS file cannot be loaded, or ``host:port`` cannot be listened on.
        DeviceError: aiohttp (qitcore's ``kme`` extra) is not installed.
    """

    def __init__(
        self, config: KMEConfig, store: KeyStore, *, certfile: str, keyfile: str, cafile: str,
        host: str = "127.0.0.1", port: int = 0, peer: Any = None, pool: str = "local",
        limits: ConnectionLimits | None = None,
    ) -> None:  # fmt: skip
        for name, value, kind in (("config", config, KMEConfig), ("store", store, KeyStore)):
            if not isinstance(value, kind):
                raise InvalidTypeError(f"{name}: expected {kind.__name__}, got {type(value).__name__}")
        certfile = _validate.path("certfile", certfile)
        keyfile = _validate.path("keyfile", keyfile)
        cafile = _validate.path("cafile", cafile)
        for name, text in (("host", host), ("pool", pool)):
            if not isinstance(text, str):
                raise InvalidTypeError(f"{name}: expected a string, got {type(text).__name__}")
        port = _validate.integer("port", port, minimum=0, maximum=65535)
        self.config = config
        self.store = store
        self.limits = limits or ConnectionLimits()
        if not isinstance(self.limits, ConnectionLimits):
            raise InvalidTypeError(f"limits: expected ConnectionLimits, got {type(limits).__name__}")
        # With a peer KME (a PeerClient), keys for its SAEs come from `pool` and are sent to it.
        self.peer = peer
        self.pool = pool
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            self.context.load_cert_chain(certfile, keyfile)
            self.context.load_verify_locations(cafile)
        except (OSError, ssl.SSLError) as exc:
            raise InvalidArgumentError(
                f"tls: cannot load {certfile}, {keyfile} or {cafile}: {os_reason(exc)}"
            ) from None
        self.context.verify_mode = ssl.CERT_REQUIRED
        try:
            self._sock = listen_socket(host, port, backlog=self.limits.backlog)
        except (OSError, OverflowError) as exc:
            raise InvalidArgumentError(
                f"listen: cannot listen on {show_host_port(host, port)}: {os_reason(exc)}"
            ) from None
        self._sock.setblocking(False)
        try:
            https = importlib.import_module(".https", __package__)
        except ImportError:
            self._sock.close()
            raise DeviceError(
                "the KME server needs aiohttp, part of qitcore's kme extra: pip install 'qitcore[kme]'"
            ) from None
        self._service = https.Service(self, self._sock)
        self._started = False

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._sock.getsockname()[:2]
        return str(host), int(port)

    def start(self) -> KMEServer:
        """Serves in background threads until :meth:`stop`."""
        if not self._started:
            self._started = True
            self._service.start()
        return self

    def stop(self) -> None:
        """Stops accepting, closes every connection (a request being answered gets up to a second
        to finish) and returns once the server's threads have ended. Safe to call twice."""
        if self._started:
            self._started = False
            self._service.stop()
        self._sock.close()

    def __enter__(self) -> KMEServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def check(self, method: str, caller: str) -> None:
        """Refuses an SAE this KME does not serve (401) and methods other than GET and POST (405)."""
        if caller not in self.config.saes:
            raise KMEUnauthorized(f"{caller} is not an SAE of this KME")
        if method not in ("GET", "POST"):
            raise KMEError(f"method {method[:20]} is not allowed: GET or POST", status=405)

    def handle(self, method: str, target: str, body: bytes, caller: str) -> dict[str, Any]:
        """One request's JSON answer; refusals raise :class:`KMEError` subclasses."""
        c = self.config
        self.check(method, caller)
        url = urlsplit(target)
        match = PATH.match(url.path)
        if match is None:
            raise KMEBadRequest(f"no such resource: {url.path[:100]}")
        try:
            other, resource = unquote(match.group(1), errors="strict"), match.group(2)
        except UnicodeDecodeError:
            raise KMEBadRequest("SAE ID: the path's percent-escapes are not UTF-8") from None
        if other not in c.saes | c.peer_saes:
            raise KMEBadRequest(f"unknown SAE ID {other[:100]}")
        if other == caller:
            raise KMEBadRequest(f"{caller} names itself: the other SAE of a link must be another")
        query = parse_qs(url.query, keep_blank_values=True)
        if resource == "status":
            return self._status(caller, other).to_json()
        if resource == "enc_keys":
            request = parse_key_request(body) if method == "POST" else self._query_request(query)
            return self._enc_keys(caller, other, request)
        ids = parse_key_ids(body) if method == "POST" else query.get("key_ID", [])
        if not ids:
            raise KMEBadRequest("key_ID: at least one is needed")
        if len(ids) > c.max_key_per_request * c.max_SAE_ID_count:
            raise KMEBadRequest(f"key_ID: at most {c.max_key_per_request * c.max_SAE_ID_count} in one request")
        keys = self.store.deliver(caller, other, ids)
        return container([Key(key_id, key) for key_id, key in keys])

    def _status(self, master: str, slave: str) -> Status:
        c = self.config
        return Status(
            source_KME_ID=c.kme_id, target_KME_ID=c.target_kme_id, master_SAE_ID=master, slave_SAE_ID=slave,
            key_size=c.key_size,
            stored_key_count=min(self.store.pool_bytes(self._pool_for([slave])) // (c.key_size // 8), c.max_key_count),
            max_key_count=c.max_key_count, max_key_per_request=c.max_key_per_request, max_key_size=c.max_key_size,
            min_key_size=c.min_key_size, max_SAE_ID_count=c.max_SAE_ID_count,
        )  # fmt: skip

    @staticmethod
    def _query_request(query: dict[str, list[str]]) -> KeyRequest:
        unknown = set(query) - {"number", "size"}
        if unknown:
            raise KMEBadRequest(f"unknown query parameter(s) {sorted(unknown)}"[:200])
        values = {}
        for name in ("number", "size"):
            if name in query:
                if len(query[name]) != 1 or not DIGITS.fullmatch(query[name][0]):
                    raise KMEBadRequest(f"{name}: expected one integer (ASCII digits)")
                values[name] = int(query[name][0])
        return KeyRequest(number=values.get("number", 1), size=values.get("size"))

    def _enc_keys(self, master: str, slave: str, r: KeyRequest) -> dict[str, Any]:
        c = self.config
        if r.extension_mandatory:
            names = sorted({k for ext in r.extension_mandatory for k in ext})
            raise KMEBadRequest("not all extension_mandatory parameters are supported: " + ", ".join(names)[:200],
                                [{"extension_mandatory_unsupported": names}])  # fmt: skip
        if not 1 <= r.number <= c.max_key_per_request:
            raise KMEBadRequest(f"number: must be 1 to max_key_per_request = {c.max_key_per_request}, got {r.number}")
        size = c.key_size if r.size is None else r.size
        if size % 8:
            raise KMEBadRequest(f"size: {size} bits is not a multiple of 8")
        if not c.min_key_size <= size <= c.max_key_size:
            raise KMEBadRequest(f"size: must be {c.min_key_size} to {c.max_key_size} bits, got {size}")
        slaves = [slave, *r.additional_slave_SAE_IDs]
        if len(slaves) > c.max_SAE_ID_count or len(set(slaves)) != len(slaves) or master in slaves:
            raise KMEBadRequest(f"slave SAE IDs: at most {c.max_SAE_ID_count}, distinct, not the master")
        unknown = [s for s in slaves if s not in c.saes | c.peer_saes]
        if unknown:
            raise KMEBadRequest(f"unknown slave SAE ID(s) {unknown}"[:200])
        pool = self._pool_for(slaves)
        if pool == "local":
            keys = self.store.take(master, slaves, r.number, size // 8)
        else:
            # Recorded for the peer in the same transaction; answered only once the peer has them.
            keys = self.store.take(master, slaves, r.number, size // 8, pool=pool, outbox=True)
            self.peer.flush()
        return container([Key(key_id, key) for key_id, key in keys])

    def _pool_for(self, slaves: list[str]) -> str:
        """The local pool for SAEs of this KME, this KME's issuing pool for the peer's SAEs."""
        remote = [s in self.config.peer_saes for s in slaves]
        if not any(remote):
            return "local"
        if not all(remote) or self.peer is None:
            raise KMEBadRequest("slave SAEs must all be attached to this KME or all to its peer")
        return self.pool
