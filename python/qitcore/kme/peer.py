"""The link between the two KMEs at the ends of a QKD link.

Each KME listens on a peer port and connects to the other's; every message is sealed with the
QKD channel's authentication (HMAC-SHA256 under a pre-shared key, numbered) and answered. The
KME on Bob's side drives the QKD sessions: it announces session ``i`` (START), both simulate the
link's records for session ``i`` from the shared link seed, the QKD session runs over the link
(QKD), Bob keeps the key tentative and asks Alice's KME to commit it (COMMIT), and commits it
himself once she has: both stores then hold the same material, split between the pool each KME
issues from. A KME that issues keys to its SAE for an SAE of the other KME sends the take (SYNC)
before answering; the other applies it under the same key IDs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import socket
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any

from .._net import listen_socket
from .._validate import show_host_port
from ..errors import ChannelClosed, ChannelError, InvalidArgumentError, KMEError, KMEUnavailable, QitError, os_reason
from ..qkd import AliceSession, BobSession, LinkModel, Params
from ..qkd.channel import NONCE_BYTES, Channel, Sealer, exchange_nonces, frame_limit, recv_frame, send_frame
from .store import KeyStore
from .worker import Worker

__all__ = ["POOLS", "PeerClient", "PeerServer", "PeerSettings", "SessionDriver"]

log = logging.getLogger("qitcore.kme.peer")

START, QKD, COMMIT, SYNC = 0x11, 0x12, 0x13, 0x14
ERROR = 0xEE
REPLY = 0x80
POOLS = ("alice", "bob")

FIRST_FRAME_SECONDS = 10.0
"""How long a connection to the peer port may take to deliver its first (authenticated) frame."""
FIRST_FRAME_BYTES = 1 << 20
"""The largest first frame: a take record (SYNC) names every key ID of a request."""
FLUSH_WAIT = 2.0
"""Seconds a request for the peer's SAEs waits while another is sending takes to the peer."""
MAX_PENDING = 16
"""Connections whose first frame is awaited at once; one more closes the oldest of them, so a
flood of silent or slow clients cannot keep the other KME out."""


def link_context(nonces: bytes, listener_role: str) -> bytes:
    """What a peer-link connection's sealers are bound to: both nonces and the role of the KME
    that listens. Why the role: both KMEs hold the same key and each both listens and connects, so
    without it a network attacker could turn a KME's own connection back onto its own listener,
    which would take the KME's records as the other's (its own takes applied twice); with it the
    two ends of such a connection name different listeners, and nothing authenticates."""
    return nonces + b"|listener=" + listener_role.encode()


def _other(role: str) -> str:
    return "bob" if role == "alice" else "alice"


@dataclass(frozen=True, repr=False)
class PeerSettings:
    """This KME's end of the peer link."""

    role: str  # "alice" or "bob": which end of the QKD link this KME is
    peer_host: str
    peer_port: int
    listen_host: str
    listen_port: int
    auth_key: bytes
    saes: frozenset[str]  # the SAEs attached to the other KME
    link_seed: int
    distance_km: float = 20.0
    pulses: int = 100_000_000

    def __repr__(self) -> str:
        return f"PeerSettings(role={self.role!r}, peer={self.peer_host}:{self.peer_port}, auth_key=<hidden>)"

    def link(self, session: int) -> Any:
        """Session ``session``'s simulated records (both KMEs derive the same ones)."""
        digest = hashlib.sha256(f"{self.link_seed}:{session}".encode()).digest()
        return LinkModel(distance_km=self.distance_km).simulate(self.pulses, seed=int.from_bytes(digest[:8], "little"))


class PeerServer(Worker):
    """Answers the other KME: Alice's side of QKD sessions, commits, and takes to apply."""

    def __init__(self, store: KeyStore, settings: PeerSettings, params: Params) -> None:
        self._store, self._settings, self._params = store, settings, params
        try:
            self._sock = listen_socket(settings.listen_host, settings.listen_port)
        except OSError as exc:
            where = show_host_port(settings.listen_host, settings.listen_port)
            raise InvalidArgumentError(f"[peer] listen: cannot listen on {where}: {os_reason(exc)}") from None
        self._session: tuple[int, AliceSession] | None = None
        self._lock = threading.Lock()
        self._pending: dict[socket.socket, float] = {}  # not yet authenticated: when each was accepted
        self._pending_lock = threading.Lock()
        self._limit = frame_limit(settings.pulses)
        super().__init__("kme-peer")

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._sock.getsockname()[:2]
        return str(host), int(port)

    def stop(self) -> None:
        super().stop()
        self._sock.close()

    def _run(self) -> None:
        self._sock.settimeout(0.1)  # accept() wakes to see stop(): closing alone does not wake it
        while not self._stop.is_set():
            self._drop_late()
            try:
                conn, addr = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._pending_lock:
                if len(self._pending) >= MAX_PENDING:
                    oldest = next(iter(self._pending))
                    del self._pending[oldest]
                    log.debug("peer port: dropping the oldest unauthenticated connection for %s", addr[0])
                    _end(oldest)
                self._pending[conn] = time.monotonic()
            conn.settimeout(FIRST_FRAME_SECONDS)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _drop_late(self) -> None:
        """Ends connections that have not authenticated in time, however slowly bytes trickle in."""
        now = time.monotonic()
        with self._pending_lock:
            late = [c for c, since in self._pending.items() if now - since > FIRST_FRAME_SECONDS]
            for conn in late:
                del self._pending[conn]
                _end(conn)

    def _serve(self, conn: socket.socket) -> None:
        sealer = Sealer(self._settings.auth_key, is_alice=True)
        authenticated = False
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # The connection's handshake: this end's nonce, then the other KME's; every frame is
            # sealed under a key bound to both, so none recorded from another connection passes.
            try:
                sealer.bind(link_context(exchange_nonces(conn, alice=True), self._settings.role))
            except QitError:
                with self._pending_lock:
                    self._pending.pop(conn, None)
                return
            while not self._stop.is_set():
                try:
                    frame = recv_frame(conn, limit=self._limit if authenticated else FIRST_FRAME_BYTES)
                    kind, payload = sealer.open(frame)
                except QitError:
                    with self._pending_lock:
                        self._pending.pop(conn, None)
                    return  # the peer left, or sent something unauthenticated: drop the connection
                if not authenticated:
                    with self._pending_lock:
                        if self._pending.pop(conn, None) is None:
                            return  # dropped for being late or oldest while the frame arrived
                    authenticated = True
                    conn.settimeout(None)  # the other KME: requests come when they come
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                try:
                    with self._lock:
                        reply = sealer.seal(REPLY | kind, self._handle(kind, payload))
                except (QitError, ValueError, KeyError, struct.error) as exc:
                    reply = sealer.seal(ERROR, str(exc).encode())
                try:
                    send_frame(conn, reply)
                except OSError:
                    return

    def _handle(self, kind: int, payload: bytes) -> bytes:
        if kind == SYNC:
            self._store.apply(json.loads(payload))
            return b""
        if self._settings.role != "alice":
            raise KMEUnavailable("only Alice's KME answers QKD sessions")
        if kind == START:
            # The session's number, and Bob's nonce for the QKD session's own handshake.
            if len(payload) != 8 + NONCE_BYTES:  # before the link's records are simulated
                raise KMEUnavailable(f"malformed START of {len(payload)} bytes (a peer of another version?)")
            (session,) = struct.unpack_from("<Q", payload)
            link = self._settings.link(session)
            alice = AliceSession(link.alice, self._params, self._settings.auth_key)
            alice_nonce = alice.challenge(payload[8:])
            self._session = (session, alice)
            return alice_nonce
        if kind == QKD:
            if self._session is None:
                raise KMEUnavailable("no QKD session started")
            return self._session[1].handle_frame(payload)
        if kind == COMMIT:
            (session,) = struct.unpack("<Q", payload)
            material = None
            if self._session is not None and self._session[0] == session and self._session[1].finished:
                material = self._session[1].result()[0]
                self._session = None
            return b"\x01" if self._store.commit_session(session, POOLS, material) else b"\x00"
        raise KMEUnavailable(f"unknown peer message {kind:#x}")


def _end(conn: socket.socket) -> None:
    """Wakes the thread reading ``conn`` (it sees the end of the stream) and lets it close it."""
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_RDWR)


class PeerClient:
    """This KME's requests to the other: one connection, reopened after a failure."""

    def __init__(self, store: KeyStore, settings: PeerSettings, *, timeout: float = 30.0) -> None:
        self._store, self._settings, self._timeout = store, settings, timeout
        self._conn: tuple[socket.socket, Sealer] | None = None
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn[0].close()
                self._conn = None

    def request(self, kind: int, payload: bytes) -> bytes:
        with self._lock:
            try:
                if self._conn is None:
                    s = self._settings
                    sock = socket.create_connection((s.peer_host, s.peer_port), timeout=self._timeout)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    sealer = Sealer(s.auth_key, is_alice=False)
                    self._conn = (sock, sealer)
                    # The listener it reaches is the other KME's, of the other role.
                    sealer.bind(link_context(exchange_nonces(sock, alice=False), _other(s.role)))
                sock, sealer = self._conn
                send_frame(sock, sealer.seal(kind, payload))
                reply_kind, reply = sealer.open(recv_frame(sock, limit=frame_limit(self._settings.pulses)))
            except (OSError, ChannelError) as exc:
                if self._conn is not None:
                    self._conn[0].close()
                self._conn = None
                where = show_host_port(self._settings.peer_host, self._settings.peer_port)
                raise ChannelClosed(f"peer KME at {where}: {os_reason(exc)}") from None
        if reply_kind == ERROR:
            raise KMEUnavailable(f"peer KME: {reply.decode(errors='replace')}")
        return reply

    def flush(self) -> None:
        """Sends every take the peer has not confirmed, in order.

        Raises:
            KMEUnavailable: the peer is unreachable or refused a take (it stays queued).
        """
        # One request thread waits on the peer; the others wait a moment, then answer 503: a silent
        # peer must not take every thread the KME answers its own SAEs with.
        if not self._flush_lock.acquire(timeout=FLUSH_WAIT):
            raise KMEUnavailable("the peer KME has not confirmed earlier keys yet; these are withheld, ask again")
        try:
            for record in self._store.outbox():
                try:
                    self.request(SYNC, json.dumps(record).encode())
                except (ChannelClosed, KMEError) as exc:
                    raise KMEUnavailable(f"the peer KME did not confirm the keys ({exc}); they are withheld") from None
                self._store.confirmed(str(record["pool"]), int(record["offset"]))
        finally:
            self._flush_lock.release()


class _PeerQkdChannel(Channel):
    """Bob's QKD channel carried by the peer link."""

    def __init__(self, auth_key: bytes, client: PeerClient, alice_nonce: bytes, bob_nonce: bytes) -> None:
        super().__init__(auth_key)
        self._client = client
        self._bind(alice_nonce, bob_nonce)

    def _exchange(self, frame: bytes) -> bytes:
        return self._client.request(QKD, frame)


class SessionDriver(Worker):
    """On Bob's KME: runs QKD sessions while either pool is below ``low_water_bytes``, and retries
    unconfirmed takes; both in one background thread."""

    def __init__(self, store: KeyStore, client: PeerClient, settings: PeerSettings, params: Params,
                 low_water_bytes: int, *, run_sessions: bool = True) -> None:  # fmt: skip
        self._store, self._client, self._settings, self._params = store, client, settings, params
        self._low, self._run_sessions = low_water_bytes, run_sessions
        super().__init__("kme-sessions")

    def _commit(self, session: int) -> None:
        confirmed = self._client.request(COMMIT, struct.pack("<Q", session)) == b"\x01"
        if confirmed:
            self._store.commit_session(session, POOLS)
        else:
            self._store.drop_tentative(session)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self._store.outbox():
                    self._client.flush()
                for session in self._store.tentative():
                    self._commit(session)
                low = min(self._store.pool_bytes(p) for p in POOLS) < self._low
                if not (self._run_sessions and self._settings.role == "bob" and low):
                    self._stop.wait(0.2)
                    continue
                session = self._store.last_session() + 1
                start = time.perf_counter()
                nonce = os.urandom(NONCE_BYTES)
                alice_nonce = self._client.request(START, struct.pack("<Q", session) + nonce)
                link = self._settings.link(session)
                channel = _PeerQkdChannel(self._settings.auth_key, self._client, alice_nonce, nonce)
                key, _ = BobSession(link.bob, self._params, channel).run()
                self._store.add_tentative(session, key)
                self._commit(session)
                log.info("QKD session %d: %s bits in %.1f s", session, f"{len(key) * 8:,}", time.perf_counter() - start)
            except QitError as exc:
                log.warning("peer link: %s", exc)
                self._stop.wait(0.5)
