"""A KME speaking ETSI GS QKD 014 v1.1.1 over HTTPS with mutual TLS.

The SAE calling is the subject common name of its client certificate (verified against the KME's
CA); plain HTTP is not offered. The master SAE asks ``enc_keys`` for its slave, the slave asks
``dec_keys`` with the key IDs the master passed on. Every refusal is an Error object with the
specification's status: 400 (malformed, outside the limits, unknown or spent key IDs), 401 (not a
known SAE, or keys of other SAEs), 503 (not enough key material, or a fault).
"""

from __future__ import annotations

import json
import re
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socket import IPPROTO_TCP, TCP_NODELAY, socket
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..errors import InvalidArgumentError, KMEBadRequest, KMEError, KMEUnauthorized
from .models import Key, KeyRequest, Status, container, error_body, parse_key_ids, parse_key_request
from .store import KeyStore

__all__ = ["KMEConfig", "KMEServer"]

PATH = re.compile(r"^/api/v1/keys/([^/?#]+)/(status|enc_keys|dec_keys)$")
MAX_BODY = 1 << 20


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


def _sae(handler: BaseHTTPRequestHandler) -> str:
    cert = handler.connection.getpeercert() if isinstance(handler.connection, ssl.SSLSocket) else None
    for rdn in (cert or {}).get("subject", ()):
        for name, value in rdn:
            if name == "commonName":
                return str(value)
    raise KMEUnauthorized("the client certificate names no SAE (no subject common name)")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # requests carry key IDs: not for a default log

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                raise KMEBadRequest(f"request body of {length} bytes is larger than {MAX_BODY}")
            body = self.rfile.read(length) if length else b""
            status, payload = 200, self.server.kme.handle(method, self.path, body, _sae(self))
        except KMEError as exc:
            status, payload = exc.status, error_body(exc.message, exc.details)
        except (ValueError, OSError) as exc:
            status, payload = 400, error_body(f"malformed request: {exc}")
        except Exception:
            status, payload = 503, error_body("internal error")
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    kme: KMEServer

    def get_request(self) -> tuple[socket, Any]:
        sock, addr = super().get_request()
        # Headers and body leave in separate writes: without this, Nagle's algorithm holds the
        # body until the client's delayed ACK (40 ms a request).
        sock.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1)
        # The handshake runs in the request's thread: a slow or bad client never blocks accept.
        return self.kme.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # failed handshakes (no or wrong certificate) end the connection quietly


class KMEServer:
    """An ETSI GS QKD 014 KME on ``host:port`` (port 0: any free port, see :attr:`address`).

    Args:
        config: identities and limits.
        store: where keys wait.
        certfile, keyfile: the KME's certificate chain and key (PEM).
        cafile: the CA that signs the SAEs' client certificates.
    """

    def __init__(
        self, config: KMEConfig, store: KeyStore, *, certfile: str, keyfile: str, cafile: str,
        host: str = "127.0.0.1", port: int = 0, peer: Any = None, pool: str = "local",
    ) -> None:  # fmt: skip
        self.config = config
        self.store = store
        # With a peer KME (a PeerClient), keys for its SAEs come from `pool` and are sent to it.
        self.peer = peer
        self.pool = pool
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            self.context.load_cert_chain(certfile, keyfile)
            self.context.load_verify_locations(cafile)
        except (OSError, ssl.SSLError) as exc:
            raise InvalidArgumentError(f"tls: cannot load {certfile}, {keyfile} or {cafile}: {exc}") from None
        self.context.verify_mode = ssl.CERT_REQUIRED
        try:
            self._server = _Server((host, port), _Handler)
        except OSError as exc:
            raise InvalidArgumentError(f"listen: cannot listen on {host}:{port}: {exc}") from None
        self._server.kme = self
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> KMEServer:
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="kme", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> KMEServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def handle(self, method: str, target: str, body: bytes, caller: str) -> dict[str, Any]:
        """One request's JSON answer; refusals raise :class:`KMEError` subclasses."""
        c = self.config
        if caller not in c.saes:
            raise KMEUnauthorized(f"{caller} is not an SAE of this KME")
        url = urlsplit(target)
        match = PATH.match(url.path)
        if match is None:
            raise KMEBadRequest(f"no such resource: {url.path}")
        other, resource = match.groups()
        if other not in c.saes | c.peer_saes:
            raise KMEBadRequest(f"unknown SAE ID {other}")
        query = parse_qs(url.query, keep_blank_values=True)
        if resource == "status":
            return self._status(caller, other).to_json()
        if resource == "enc_keys":
            request = parse_key_request(body) if method == "POST" else self._query_request(query)
            return self._enc_keys(caller, other, request)
        ids = parse_key_ids(body) if method == "POST" else query.get("key_ID", [])
        if not ids:
            raise KMEBadRequest("key_ID: at least one is needed")
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
            raise KMEBadRequest(f"unknown query parameter(s) {sorted(unknown)}")
        values = {}
        for name in ("number", "size"):
            if name in query:
                try:
                    (values[name],) = (int(v) for v in query[name])
                except ValueError:
                    raise KMEBadRequest(f"{name}: expected one integer") from None
        return KeyRequest(number=values.get("number", 1), size=values.get("size"))

    def _enc_keys(self, master: str, slave: str, r: KeyRequest) -> dict[str, Any]:
        c = self.config
        if r.extension_mandatory:
            names = sorted({k for ext in r.extension_mandatory for k in ext})
            raise KMEBadRequest("not all extension_mandatory parameters are supported",
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
            raise KMEBadRequest(f"unknown slave SAE ID(s) {unknown}")
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
