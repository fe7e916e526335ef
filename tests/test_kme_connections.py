"""The KME's listener under clients that hold connections without finishing requests: a normal
client is served while hundreds of idle and slow connections are open; each stage of a
connection (TLS handshake, headers, body, idle keep-alive) is cut at its deadline; the number of
connections, and of connections from one address, is bounded. Loopback only: other addresses of
127.0.0.0/8 stand for other clients."""

from __future__ import annotations

import contextlib
import json
import logging
import resource
import socket
import ssl
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from qitcore.kme import KeyStore, KMEClient, KMEConfig, KMEServer
from qitcore.kme.limits import ConnectionLimits

from .test_kme import SAES, Pki


@pytest.fixture(autouse=True)
def _enough_descriptors() -> Iterator[None]:
    # Both ends of every connection live in this process.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4096 if hard == resource.RLIM_INFINITY else min(4096, hard)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@contextlib.contextmanager
def _kme(tmp_path: Path, limits: ConnectionLimits) -> Iterator[tuple[KMEServer, Pki]]:
    pki = Pki(tmp_path)
    store = KeyStore(tmp_path / "store.sqlite")
    store.add(bytes(range(256)) * 64)
    config = KMEConfig(saes=SAES, max_key_per_request=16)
    server = KMEServer(
        config, store, certfile=pki.server_cert, keyfile=pki.server_key, cafile=pki.ca_file, limits=limits
    )
    with server:
        yield server, pki
    store.close()


def _context(pki: Pki, sae: str = "SAE-A") -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=pki.ca_file)
    context.load_cert_chain(*pki.sae(sae))
    return context


def _tcp(kme: KMEServer, source: str = "127.0.0.1") -> socket.socket:
    return socket.create_connection(kme.address, timeout=5, source_address=(source, 0))


def _tls(kme: KMEServer, context: ssl.SSLContext, source: str = "127.0.0.1") -> ssl.SSLSocket:
    return context.wrap_socket(_tcp(kme, source), server_hostname="127.0.0.1")


def _is_open(sock: socket.socket) -> bool:
    """True while the server has not closed ``sock``: a read finds nothing yet (a TLS socket
    first takes in what the server may send unasked, such as session tickets)."""
    sock.settimeout(0.002)
    try:
        return sock.recv(1) != b""
    except TimeoutError:
        return True
    except (OSError, ssl.SSLError):
        return False


def _closed_within(sock: socket.socket, seconds: float) -> float:
    """How long the server took to close ``sock`` (reading and dropping what it sends)."""
    start = time.monotonic()
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        raise AssertionError(f"still open after {seconds} s") from None
    except (OSError, ssl.SSLError):
        pass
    return time.monotonic() - start


def test_a_client_is_served_while_hundreds_of_idle_and_slow_connections_are_open(tmp_path: Path) -> None:
    with _kme(tmp_path, ConnectionLimits()) as (kme, pki), contextlib.ExitStack() as held:
        context = _context(pki)
        others = [f"127.0.0.{i}" for i in range(2, 12)]  # ten other clients, 30 connections each
        silent, handshaken, partial, slow_body = [], [], [], []
        for i in range(300):
            source = others[i % len(others)]
            if i % 4 == 0:  # connects and never starts TLS
                silent.append(held.enter_context(_tcp(kme, source)))
                continue
            sock = held.enter_context(_tls(kme, context, source))
            if i % 4 == 1:  # a TLS connection that sends nothing
                handshaken.append(sock)
            elif i % 4 == 2:  # half a request line
                sock.sendall(b"GET /api/v1/keys/SAE-B/sta")
                partial.append(sock)
            else:  # headers done, a body promised and hardly begun
                sock.sendall(b"POST /api/v1/keys/SAE-B/enc_keys HTTP/1.1\r\nHost: k\r\nContent-Length: 40\r\n\r\n{")
                slow_body.append(sock)
        host, port = kme.address
        start = time.monotonic()
        with KMEClient(f"https://{host}:{port}", *pki.sae("SAE-A"), pki.ca_file) as a:
            first = time.monotonic() - start
            keys = a.get_keys("SAE-B", number=2)
            status = a.status("SAE-B")
        with KMEClient(f"https://{host}:{port}", *pki.sae("SAE-B"), pki.ca_file) as b:
            got = b.get_keys_with_ids("SAE-A", [k.key_ID for k in keys])
        took = time.monotonic() - start
        assert [k.key for k in got] == [k.key for k in keys] and status.stored_key_count == 510
        # The 300 were all still open while the client was served.
        assert all(_is_open(s) for s in silent + handshaken + partial + slow_body)
        assert took < 5.0, f"a normal client took {took:.2f} s beside 300 held connections"
        print(f"\n300 held connections: first request {first * 1000:.0f} ms, four requests {took * 1000:.0f} ms")


def test_each_stage_of_a_connection_has_a_deadline(tmp_path: Path) -> None:
    limits = ConnectionLimits(handshake_timeout=0.5, header_timeout=0.5, body_timeout=0.5, idle_timeout=1.5)
    with _kme(tmp_path, limits) as (kme, pki):
        context = _context(pki)
        with _tcp(kme) as silent:  # no TLS handshake
            assert 0.3 < _closed_within(silent, 5) < 1.5
        with _tls(kme, context) as idle:  # TLS, then nothing
            assert 1.2 < _closed_within(idle, 5) < 2.5
        with _tls(kme, context) as dribble:  # headers a byte at a time: activity does not extend them
            start = time.monotonic()
            request = b"GET /api/v1/keys/SAE-B/status HTTP/1.1\r\nHost: k\r\n\r\n"
            with contextlib.suppress(OSError):
                for byte in request[:-4]:
                    dribble.sendall(bytes([byte]))
                    time.sleep(0.05)
            assert 0.3 < time.monotonic() - start + _closed_within(dribble, 5) < 1.4
        with _tls(kme, context) as slow:  # the body never completes: 408 and an Error object
            slow.sendall(b"POST /api/v1/keys/SAE-B/enc_keys HTTP/1.1\r\nHost: k\r\nContent-Length: 30\r\n\r\n{")
            slow.settimeout(5)
            head, _, body = slow.recv(65536).partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 408") and "did not arrive" in json.loads(body)["message"]
        with _tls(kme, context) as kept:  # an answered request, then an idle keep-alive connection
            kept.sendall(b"GET /api/v1/keys/SAE-B/status HTTP/1.1\r\nHost: k\r\n\r\n")
            kept.settimeout(5)
            assert kept.recv(65536).startswith(b"HTTP/1.1 200")
            assert 1.2 < _closed_within(kept, 5) < 2.5


def test_clients_leaving_mid_request_are_not_logged_as_faults(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with _kme(tmp_path, ConnectionLimits()) as (kme, pki):
        context = _context(pki)
        for _ in range(5):
            sock = _tls(kme, context)
            sock.sendall(b"POST /api/v1/keys/SAE-B/enc_keys HTTP/1.1\r\nHost: k\r\nContent-Length: 40\r\n\r\n{")
            time.sleep(0.05)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # leave with a reset
            sock.close()
        time.sleep(0.3)
        host, port = kme.address
        with KMEClient(f"https://{host}:{port}", *pki.sae("SAE-A"), pki.ca_file) as a:
            assert a.status("SAE-B").stored_key_count == 512
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_connections_beyond_the_bounds_wait_or_are_closed(tmp_path: Path) -> None:
    limits = ConnectionLimits(max_connections=12, max_per_address=6)
    with _kme(tmp_path, limits) as (kme, pki), contextlib.ExitStack() as held:
        context = _context(pki)
        first = [held.enter_context(_tls(kme, context, "127.0.0.2")) for _ in range(6)]
        with _tcp(kme, "127.0.0.2") as extra:  # a seventh from one address is closed at once
            assert _closed_within(extra, 2) < 1.0
        rest = [held.enter_context(_tls(kme, context, "127.0.0.3")) for _ in range(6)]
        # Twelve are open: the next waits in the backlog, its handshake unanswered ...
        waiting = held.enter_context(_tcp(kme))
        tls = context.wrap_socket(waiting, server_hostname="127.0.0.1", do_handshake_on_connect=False)
        tls.settimeout(0.5)
        with pytest.raises((TimeoutError, socket.timeout)):
            tls.do_handshake()
        # ... until a place frees.
        first[0].close()
        tls.settimeout(5)
        tls.do_handshake()
        tls.sendall(b"GET /api/v1/keys/SAE-B/status HTTP/1.1\r\nHost: k\r\nConnection: close\r\n\r\n")
        assert tls.recv(65536).startswith(b"HTTP/1.1 200")
        assert all(_is_open(s) for s in first[1:] + rest)


@pytest.mark.parametrize(
    "field, value",
    [("max_connections", 0), ("idle_timeout", -1.0), ("header_timeout", float("nan")), ("backlog", 1.5),
     ("max_body", True), ("body_timeout", float("inf"))],
)  # fmt: skip
def test_limits_are_checked(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        ConnectionLimits(**{field: value})  # type: ignore[arg-type]
