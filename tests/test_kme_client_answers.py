"""The KME client against a KME that answers badly (a stand-in TLS server on 127.0.0.1): an
answer too large is refused after a bounded read, one nested too deeply or not JSON is a named
KMEError, never a RecursionError or MemoryError."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from qitcore.errors import ChannelError, KMEError
from qitcore.kme import KMEClient
from qitcore.kme.client import MAX_ANSWER

from .test_kme import Pki


class BadKme:
    """Answers every connection's first request with ``head`` and then ``body_size`` bytes of ``fill``."""

    def __init__(self, pki: Pki, head: bytes, fill: bytes, body_size: int) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(pki.server_cert, pki.server_key)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.head, self.fill, self.size = head, fill, body_size
        self.sent = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        try:
            with self.context.wrap_socket(conn, server_side=True) as tls:
                tls.recv(65536)
                tls.sendall(self.head)
                self._send_body(tls)
        except OSError:
            pass  # the client stopped reading and closed

    def _send_body(self, tls: ssl.SSLSocket) -> None:
        block = self.fill * (65536 // len(self.fill))
        while self.sent < self.size:
            part = block[: self.size - self.sent]
            tls.sendall(part)
            self.sent += len(part)

    def close(self) -> None:
        self.sock.close()
        self.thread.join(10)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


def _client(pki: Pki, server: BadKme) -> KMEClient:
    return KMEClient(f"https://127.0.0.1:{server.sock.getsockname()[1]}", *pki.sae("SAE-A"), pki.ca_file, timeout=10)


@pytest.fixture
def huge(pki: Pki) -> Iterator[BadKme]:
    size = 4 * MAX_ANSWER
    server = BadKme(pki, f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode(), b" ", size)
    yield server
    server.close()


def test_an_answer_too_large_is_refused_after_a_bounded_read(pki: Pki, huge: BadKme) -> None:
    with _client(pki, huge) as client, pytest.raises(KMEError, match="body over"):
        client.status("SAE-B")
    assert huge.sent < 2 * MAX_ANSWER  # the client stopped reading near the bound


@pytest.mark.parametrize("body", [b"[" * 200_000, b"<html>503</html>"])
def test_an_answer_that_is_not_json_is_named(pki: Pki, body: bytes) -> None:
    head = f"HTTP/1.1 503 Service Unavailable\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    server = BadKme(pki, head + body, b" ", 0)
    try:
        with _client(pki, server) as client, pytest.raises(KMEError, match="not JSON"):
            client.get_keys("SAE-B")
    finally:
        server.close()


class DrippingKme(BadKme):
    """Answers with a whole header, then the body a byte every ``pause`` seconds."""

    def __init__(self, pki: Pki, pause: float) -> None:
        self.pause = pause
        body = b'{"keys": []}'
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
        super().__init__(pki, head, body, len(body))

    def _send_body(self, tls: ssl.SSLSocket) -> None:
        for byte in self.fill:
            tls.sendall(bytes([byte]))
            time.sleep(self.pause)


def test_a_kme_that_drips_its_answer_is_given_up_at_the_timeout(pki: Pki) -> None:
    """Every byte arrives within the timeout, the answer as a whole does not: the request ends
    at the timeout, not a dozen timeouts later."""
    server = DrippingKme(pki, pause=0.4)
    port = server.sock.getsockname()[1]
    start = time.monotonic()
    with (
        KMEClient(f"https://127.0.0.1:{port}", *pki.sae("SAE-A"), pki.ca_file, timeout=1.5) as client,
        pytest.raises(ChannelError, match="no whole answer within 1.5 s"),
    ):
        client.get_keys("SAE-B")
    assert time.monotonic() - start < 3
    server.close()


def test_a_silent_peer_kme_does_not_hold_up_requests_for_local_saes(pki: Pki, tmp_path: Path) -> None:
    """Requests for the peer's SAEs, whose takes wait for a peer KME that accepts and never
    answers, take every request thread there is: a request between two SAEs of this KME is
    still answered, and the peer's wait ends in 503 rather than the client's timeout."""
    import os

    from qitcore.errors import KMEUnavailable
    from qitcore.kme import KeyStore, KMEConfig, KMEServer
    from qitcore.kme.peer import PeerClient, PeerSettings

    hole = socket.create_server(("127.0.0.1", 0), backlog=64)  # the kernel accepts; nobody answers
    settings = PeerSettings("alice", "127.0.0.1", hole.getsockname()[1], "127.0.0.1", 0, os.urandom(32),
                            frozenset({"SAE-C"}), 1, 20.0, 1_000_000)  # fmt: skip
    store = KeyStore(tmp_path / "store.sqlite")
    store.add(os.urandom(100_000))
    store.add(os.urandom(100_000), pool="alice")
    peer = PeerClient(store, settings, timeout=4)
    config = KMEConfig(saes=frozenset({"SAE-A", "SAE-B"}), peer_saes=frozenset({"SAE-C"}))
    outcomes: list[str] = []
    with KMEServer(config, store, certfile=pki.server_cert, keyfile=pki.server_key, cafile=pki.ca_file,
                   peer=peer, pool="alice") as server:  # fmt: skip
        url = "https://{}:{}".format(*server.address)

        def remote() -> None:
            with KMEClient(url, *pki.sae("SAE-A"), pki.ca_file, timeout=30) as a:
                try:
                    a.get_keys("SAE-C")
                    outcomes.append("answered")
                except KMEUnavailable:
                    outcomes.append("503")

        threads = [threading.Thread(target=remote, daemon=True) for _ in range(10)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        start = time.monotonic()
        with KMEClient(url, *pki.sae("SAE-A"), pki.ca_file, timeout=20) as a:
            assert len(a.get_keys("SAE-B")) == 1
        assert time.monotonic() - start < 6
        for t in threads:
            t.join(30)
    hole.close()
    assert outcomes.count("503") >= 9 and "answered" not in outcomes, outcomes
