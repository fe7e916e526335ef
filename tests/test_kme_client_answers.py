"""The KME client against a KME that answers badly (a stand-in TLS server on 127.0.0.1): an
answer too large is refused after a bounded read, one nested too deeply or not JSON is a named
KMEError, never a RecursionError or MemoryError."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from qitcore.errors import KMEError
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
                block = self.fill * (65536 // len(self.fill))
                while self.sent < self.size:
                    part = block[: self.size - self.sent]
                    tls.sendall(part)
                    self.sent += len(part)
        except OSError:
            pass  # the client stopped reading and closed

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
