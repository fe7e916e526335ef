"""The port on which a KME answers the other KME of its link, under connections that never
authenticate: each is ended once its first frame is late (however slowly it trickles) or too
large, a flood of them cannot keep the real peer out, and the peer is still answered."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from qitcore.errors import ChannelClosed
from qitcore.kme import KeyStore
from qitcore.kme import peer as peer_module
from qitcore.kme.peer import COMMIT, START, PeerClient, PeerServer, PeerSettings, link_context
from qitcore.qkd import Params
from qitcore.qkd.channel import NONCE_BYTES, Sealer, recv_exact, recv_frame, send_frame

AUTH = b"peer-link-key-for-the-tests-0123"


@pytest.fixture
def alice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[PeerServer, PeerClient]]:
    monkeypatch.setattr(peer_module, "FIRST_FRAME_SECONDS", 0.5)
    monkeypatch.setattr(peer_module, "MAX_PENDING", 8)
    store = KeyStore(tmp_path / "alice.sqlite")
    settings = PeerSettings("alice", "127.0.0.1", 0, "127.0.0.1", 0, AUTH, frozenset({"SAE-B"}), 1, 20.0, 1_000_000)
    server = PeerServer(store, settings, Params()).start()
    bob_settings = PeerSettings(
        "bob", "127.0.0.1", server.address[1], "127.0.0.1", 0, AUTH, frozenset({"SAE-A"}), 1, 20.0, 1_000_000
    )
    client = PeerClient(KeyStore(tmp_path / "bob.sqlite"), bob_settings, timeout=5)
    yield server, client
    client.close()
    server.stop()
    store.close()


def _ended_within(sock: socket.socket, seconds: float, trickle: bytes = b"") -> float:
    start = time.monotonic()
    sock.settimeout(0.05)
    for byte in trickle:
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            break
        time.sleep(0.05)
    while time.monotonic() - start < seconds:
        try:
            if sock.recv(1) == b"":
                return time.monotonic() - start
        except TimeoutError:
            continue
        except OSError:
            return time.monotonic() - start
    raise AssertionError(f"the peer port kept the connection for {seconds} s")


def test_an_unauthenticated_connection_is_ended_when_late(alice: tuple[PeerServer, PeerClient]) -> None:
    server, _ = alice
    with socket.create_connection(server.address) as silent:
        assert 0.3 < _ended_within(silent, 3) < 1.5
    with socket.create_connection(server.address) as slow:  # a length, then a byte every 50 ms
        assert 0.3 < _ended_within(slow, 3, bytes(peer_module.NONCE_BYTES) + struct.pack("<I", 200) + bytes(40)) < 1.5


def test_an_oversized_first_frame_is_refused_before_it_is_read(alice: tuple[PeerServer, PeerClient]) -> None:
    server, _ = alice
    with socket.create_connection(server.address) as big:
        big.sendall(bytes(peer_module.NONCE_BYTES) + struct.pack("<I", peer_module.FIRST_FRAME_BYTES + 1))
        assert _ended_within(big, 3) < 0.3


def test_a_frame_recorded_on_another_connection_is_refused(alice: tuple[PeerServer, PeerClient]) -> None:
    """A START sealed for one connection's handshake, replayed on a new connection (whose
    challenge differs), is not answered: the connection is ended."""
    server, _ = alice
    sealer = Sealer(AUTH, is_alice=False)
    with socket.create_connection(server.address) as first:
        challenge = recv_exact(first, NONCE_BYTES)
        first.sendall(bytes(NONCE_BYTES))
        sealer.bind(link_context(challenge + bytes(NONCE_BYTES), "alice"))
        recorded = sealer.seal(START, struct.pack("<Q", 1) + bytes(NONCE_BYTES))
        send_frame(first, recorded)
        assert recv_frame(first)  # answered on its own connection
    with socket.create_connection(server.address) as replay:
        recv_exact(replay, NONCE_BYTES)
        replay.sendall(bytes(NONCE_BYTES))
        send_frame(replay, recorded)
        assert _ended_within(replay, 3) < 0.3


def test_a_flood_of_silent_connections_does_not_keep_the_peer_out(alice: tuple[PeerServer, PeerClient]) -> None:
    server, client = alice
    flood = [socket.create_connection(server.address) for _ in range(40)]
    try:
        time.sleep(0.2)  # all accepted: the port holds at most MAX_PENDING of them
        start = time.monotonic()
        assert client.request(COMMIT, struct.pack("<Q", 1)) == b"\x00"  # answered: nothing to commit
        assert time.monotonic() - start < 1.0
        time.sleep(1.0)  # the peer's connection outlives the deadline once authenticated
        assert client.request(COMMIT, struct.pack("<Q", 1)) == b"\x00"
    finally:
        for sock in flood:
            sock.close()


def test_a_kmes_own_connection_turned_back_onto_its_own_listener_is_refused(
    alice: tuple[PeerServer, PeerClient], tmp_path: Path
) -> None:
    """Both KMEs hold the link's key and both listen and connect: a network attacker who routes
    a KME's outgoing connection to its own listener must not get the KME to answer itself (it
    would apply its own takes as the other KME's). Each end binds the listener's role, so the
    two ends disagree and the first frame does not authenticate; the store is untouched."""
    server, client = alice
    store = KeyStore(tmp_path / "alice-own.sqlite")
    own = PeerSettings(
        "alice", "127.0.0.1", server.address[1], "127.0.0.1", 0, AUTH, frozenset({"SAE-B"}), 1, 20.0, 1_000_000
    )
    reflected = PeerClient(store, own, timeout=3)
    try:
        with pytest.raises(ChannelClosed):
            reflected.request(COMMIT, struct.pack("<Q", 1))
    finally:
        reflected.close()
        store.close()
    # The real peer (the other role) is answered on the same port.
    assert client.request(COMMIT, struct.pack("<Q", 1)) == b"\x00"  # answered: nothing to commit
