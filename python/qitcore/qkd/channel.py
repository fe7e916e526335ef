"""The classical channel between the two ends, authenticated with a pre-shared key.

Every message is sealed as ``header | payload | tag``: the header holds a magic number, the
message kind, a sequence number and the payload length; the tag is either

- HMAC-SHA256 under the shared key (``auth_key`` bytes: :class:`Sealer`) of a direction byte,
  the header and the payload: the default, secure only computationally (against an adversary who
  cannot break SHA-256), or
- a Wegman–Carter tag one-time padded from a pre-shared key pool (``auth_key`` a
  :class:`~qitcore.qkd.keypool.KeyPool`: :class:`~qitcore.qkd.auth.WegmanCarterSealer`, whose
  header also carries the pad's pool offset): information-theoretically secure, the
  authentication the finite-key bound assumes; each tag costs 64 bits of the pool.

The receiver checks the tag first and then that the sequence number (and, with Wegman–Carter,
the pad's offset) is exactly the next one: a tampered, forged, reflected, dropped (the next
message arrives with a later number), replayed or reordered message ends the session with
:class:`~qitcore.errors.AuthenticationError`. Nothing in a message is used before that check.

Every session starts with a handshake of fresh nonces, :data:`NONCE_BYTES` each: Alice's first
(over TCP she sends it as soon as a connection is accepted; in one process
:meth:`~qitcore.qkd.session.AliceSession.challenge` returns it), then Bob's (over TCP, before his
first frame). The HMAC key of the session is HMAC-SHA256(pre-shared key, label ‖ Alice's nonce ‖
Bob's nonce) (:meth:`Sealer.bind`), so a frame recorded from another session or connection
never authenticates in this one, whichever end it is played to. (Wegman–Carter needs no such
binding: each tag's pad is used once, at an offset past every earlier one.)

Bob drives the session: :meth:`Channel.request` sends one message to Alice and returns her
reply. Two channels are provided: :class:`InProcessChannel` calls Alice's endpoint directly (both
ends in one process; a ``tamper`` hook lets tests drop, reorder or alter frames), and
:class:`TcpChannel` talks to an Alice served by :func:`serve_tcp` in another process.

Over TCP each frame travels behind its length (4 bytes, little-endian). A length is checked
against a bound before anything is read or allocated for the frame: a peer that has not yet
authenticated may send its nonce and at most :data:`FIRST_FRAME_LIMIT` bytes (its first message
is HELLO, the session's parameters), and later frames are bounded by what the session's records can need
(:func:`frame_limit`). Alice waits for Bob on a listening socket and reads the first frame of
every connection concurrently, each within its own deadline: a connection whose first frame is
late, oversized or does not authenticate is closed unanswered and Alice goes on listening, so a
stray or hostile client cannot end her session or hold the real Bob off.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import socket
import struct
import time
from collections.abc import Callable
from typing import Protocol

from .. import _core, _validate
from ..errors import (
    AuthenticationError,
    ChannelClosed,
    ChannelError,
    InvalidArgumentError,
    InvalidTypeError,
    QitError,
    os_reason,
)
from . import auth
from .keypool import KeyPool

__all__ = [
    "FIRST_FRAME_LIMIT",
    "Channel",
    "InProcessChannel",
    "Sealer",
    "TcpChannel",
    "frame_limit",
    "make_sealer",
    "read_auth_key",
    "serve_tcp",
]

log = logging.getLogger("qitcore.qkd.channel")

MAGIC = b"QK"
HEADER = struct.Struct("<2sBQI")
TAG_BYTES = 32
OVERHEAD = HEADER.size + TAG_BYTES
TO_ALICE, TO_BOB = b"A", b"B"
MIN_KEY_BYTES = 16
MAX_KEY_BYTES = 1 << 16
LENGTH = struct.Struct("<I")
MIN_FRAME = min(OVERHEAD, auth.OVERHEAD)
"""The shortest frame either sealer makes (an empty payload)."""
NONCE_BYTES = 16
"""Each end's fresh random contribution to a session's HMAC key (see :meth:`Sealer.bind`)."""
SESSION_LABEL = b"qitcore channel session/1"

FIRST_FRAME_LIMIT = 4096
"""Bytes a peer may send before it has authenticated (a whole frame): the first message of a
session is HELLO, whose payload is the parameters as JSON (about 200 bytes; header and tag add
47); 4 KiB leave room for any parameters written at full precision."""

BASE_LIMIT = 1 << 16
PER_RECORD_LIMIT = 16
MAX_FRAME = OVERHEAD + (1 << 30)
"""The bound :func:`recv_frame` applies when its caller names none (the peer link of the KMEs)."""


def frame_limit(records: int) -> int:
    """The largest frame (header, payload and tag, in bytes) a session over ``records`` detection
    records can need, in either direction.

    Bob reports at most the pulses Alice holds records of, so ``records`` (Alice's count, or
    Bob's) bounds every message: sifting costs at most 10 bytes of varint gap and one bit of basis
    per record, the estimation message 4 bytes of position and a bit per sampled key bit (at most
    half of them) and a bit per test bit, a batch of Cascade queries at most 16 bytes per block
    (a pass byte and three varints; blocks are at least one bit long), the privacy-amplification
    seed a bit per key bit and output bit. 16 bytes per record cover the largest of these; 64 KiB cover the fixed-size
    messages and the text of an error.
    """
    return OVERHEAD + BASE_LIMIT + PER_RECORD_LIMIT * max(0, records)


def read_auth_key(path: str | os.PathLike[str], name: str) -> bytes:
    """The pre-shared authentication key in file ``path``; ``name`` is the setting that named it.

    Raises:
        InvalidArgumentError: the file cannot be read, holds fewer than 16 bytes or more than
            64 KiB (a device such as /dev/zero named by mistake is not read without end).
    """
    try:
        with open(path, "rb") as f:
            key = f.read(MAX_KEY_BYTES + 1)
    except OSError as exc:
        raise InvalidArgumentError(f"{name}: {os_reason(exc)}") from None
    if len(key) > MAX_KEY_BYTES:
        raise InvalidArgumentError(f"{name}: {path} holds more than {MAX_KEY_BYTES} bytes: not a key file")
    if len(key) < MIN_KEY_BYTES:
        raise InvalidArgumentError(f"{name}: {path} holds {len(key)} bytes, at least {MIN_KEY_BYTES} are needed")
    return key


class Sealer:
    """Seals outgoing messages and opens incoming ones for one end, with its own counters.

    The tag is HMAC-SHA256 (RFC 2104) computed by the core (:class:`qitcore._core.ChannelMac`),
    continued from the key's inner and outer hash states, padded and hashed once per session (the
    inner one per direction, with its direction byte): a Cascade run seals and opens a few thousand
    short messages, and setting the key up for each would cost as much as hashing them. A frame is
    built and checked in one call each, the payload hashed where it lies (tags equal to
    ``hmac.digest`` of the direction byte, header and payload).
    """

    method = "hmac-sha256"
    eps = 0.0
    """Not information-theoretic: HMAC adds no ε to the composable ε, its security is computational."""

    def __init__(self, key: bytes | bytearray, *, is_alice: bool) -> None:
        if not isinstance(key, (bytes, bytearray)) or len(key) < MIN_KEY_BYTES:
            raise InvalidArgumentError(f"auth_key: expected at least {MIN_KEY_BYTES} bytes of pre-shared key")
        self._dirs = (TO_BOB, TO_ALICE) if is_alice else (TO_ALICE, TO_BOB)
        # The key is held in Rust, as HMAC states from which each session's key is derived:
        # no Python object keeps it (bytes cannot be wiped).
        self._key = _core.ChannelKey(key)
        self._mac = self._key.mac(*self._dirs)
        self._sent = 0
        self._received = 0

    def _session_mac(self, context: bytes) -> _core.ChannelMac:
        return self._key.session(SESSION_LABEL, bytes(context), *self._dirs)

    def bind(self, context: bytes) -> bool:
        """Binds the sealer to one session: every tag from now on is keyed with
        HMAC-SHA256(key, label ‖ ``context``), ``context`` holding both ends' fresh nonces, and the
        message numbers start again from 0. Without it every session would number its messages
        from 0 under the same key, and a recorded session could be replayed into a later one.
        Returns True: what was sealed before must be sealed again."""
        self._mac = self._session_mac(context)
        self._sent = self._received = 0
        return True

    def __repr__(self) -> str:
        return f"Sealer(sent={self._sent}, received={self._received}, key=<hidden>)"

    def close(self) -> None:
        """Nothing to wipe beyond what the garbage collector frees (the key's hash states)."""

    def limit_frames(self, nbytes: int) -> None:
        """Nothing to do: an HMAC tag's security does not depend on the message's length."""

    can_reply = True
    """A reply may always be sealed (HMAC spends no key): see :attr:`WegmanCarterSealer.can_reply`."""

    def seal(self, kind: int, payload: bytes) -> bytes:
        kind, payload = auth.check_message(kind, payload)
        header = HEADER.pack(MAGIC, kind, self._sent, len(payload))
        self._sent += 1
        return self._mac.seal(header, payload)

    def authentic(self, frame: bytes, context: bytes | None = None) -> bool:
        """Whether :meth:`open` would accept ``frame`` now, or as the first frame of a session
        bound to ``context`` (see :meth:`bind`); changes nothing (a stray peer's frame can be
        refused without ending the session)."""
        if not isinstance(frame, (bytes, bytearray)) or len(frame) < OVERHEAD:
            return False
        mac, due = (self._mac, self._received) if context is None else (self._session_mac(context), 0)
        if not mac.check(frame):
            return False
        magic, _, seq, length = HEADER.unpack_from(frame)
        return bool(magic == MAGIC and length == len(frame) - OVERHEAD and seq == due)

    def open(self, frame: bytes) -> tuple[int, bytes]:
        if not isinstance(frame, (bytes, bytearray)):
            raise InvalidTypeError(f"frame: expected bytes, got {type(frame).__name__}")
        if len(frame) < OVERHEAD:
            raise AuthenticationError(f"message of {len(frame)} bytes is shorter than a header and tag")
        if not self._mac.check(frame):
            raise AuthenticationError("message failed authentication (tampered, forged, or another key)")
        magic, kind, seq, length = HEADER.unpack_from(frame)
        if magic != MAGIC or length != len(frame) - OVERHEAD:
            raise AuthenticationError("authenticated message with a malformed header")
        if seq != self._received:
            what = "dropped" if seq > self._received else "replayed or reordered"
            raise AuthenticationError(f"message number {seq} where {self._received} was due: a message was {what}")
        self._received += 1
        return kind, bytes(frame[HEADER.size : -TAG_BYTES])


AuthKey = bytes | bytearray | KeyPool
"""What authenticates a channel: pre-shared key bytes (HMAC-SHA256) or a key pool (Wegman–Carter)."""


def make_sealer(auth_key: AuthKey, *, is_alice: bool) -> Sealer | auth.WegmanCarterSealer:
    """The sealer ``auth_key`` selects: Wegman–Carter for a :class:`KeyPool`, HMAC-SHA256 for bytes."""
    if isinstance(auth_key, KeyPool):
        return auth.WegmanCarterSealer(auth_key, is_alice=is_alice)
    return Sealer(auth_key, is_alice=is_alice)


class Endpoint(Protocol):
    """Alice's side as the channel sees it: a session handshake, then one sealed frame in, one
    sealed frame out."""

    def challenge(self, bob_nonce: bytes) -> bytes:
        """Binds Alice's sealer to a session with Bob's nonce and a fresh one of hers, which it
        returns (the in-process handshake; :func:`serve_tcp` does it on the wire)."""
        ...

    def handle_frame(self, frame: bytes) -> bytes: ...


class Listener(Endpoint, Protocol):
    """What :func:`serve_tcp` needs of Alice beyond :class:`Endpoint`."""

    @property
    def finished(self) -> bool:
        """Whether Bob confirmed the end of the session."""
        ...

    @property
    def error(self) -> QitError | None:
        """Why the session failed, once it has."""
        ...

    def authentic(self, frame: bytes, context: bytes | None = None) -> bool:
        """Whether ``frame`` would be accepted as the first message of a session bound to
        ``context``, without changing anything."""
        ...

    def bind(self, context: bytes) -> None:
        """Binds the session to ``context`` (both ends' nonces), for the connection chosen."""
        ...

    def frame_limit(self) -> int:
        """The largest frame the session may need (bytes)."""
        ...


class Channel:
    """Bob's end of the channel: :meth:`request` sends a message and returns the reply."""

    def __init__(self, auth_key: AuthKey) -> None:
        self._sealer = make_sealer(auth_key, is_alice=False)
        self.max_frame = MAX_FRAME
        self._bound = False

    def _bind(self, alice_nonce: bytes, bob_nonce: bytes) -> bool:
        """Binds Bob's sealer to the session both nonces name (see :meth:`Sealer.bind`)."""
        self._bound = True
        return self._sealer.bind(check_nonce(alice_nonce) + bob_nonce)

    @property
    def sealer(self) -> Sealer | auth.WegmanCarterSealer:
        """Bob's sealer (what the session's report reads its authentication figures from)."""
        return self._sealer

    def limit_frames(self, nbytes: int) -> None:
        """Refuse replies longer than ``nbytes`` (whole frames) before reading them."""
        self.max_frame = nbytes
        self._sealer.limit_frames(nbytes)

    def request(self, kind: int, payload: bytes) -> tuple[int, bytes]:
        if not self._bound:
            raise ChannelError("the channel has no session handshake: its subclass must bind it first")
        return self._sealer.open(self._exchange(self._sealer.seal(kind, payload)))

    def _exchange(self, frame: bytes) -> bytes:
        raise NotImplementedError

    def close(self) -> None:
        """Releases the channel (closing twice is harmless)."""

    def __enter__(self) -> Channel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


Tamper = Callable[[str, bytes], "bytes | None"]


class InProcessChannel(Channel):
    """Both ends in one process: each frame is handed to Alice's endpoint directly.

    ``tamper(direction, frame)``, with direction ``"to_alice"`` or ``"to_bob"``, may return the
    frame changed, another frame, or ``None`` to drop it (the session then ends with
    :class:`~qitcore.errors.ChannelClosed`, as a lost message would after a timeout).
    """

    def __init__(self, auth_key: AuthKey, endpoint: Endpoint, *, tamper: Tamper | None = None) -> None:
        super().__init__(auth_key)
        self._endpoint = endpoint
        self._tamper = tamper
        bob_nonce = os.urandom(NONCE_BYTES)
        self._bind(endpoint.challenge(bob_nonce), bob_nonce)

    def _exchange(self, frame: bytes) -> bytes:
        if self._tamper is not None:
            frame = self._pass("to_alice", frame)
        reply = self._endpoint.handle_frame(frame)
        if self._tamper is not None:
            reply = self._pass("to_bob", reply)
        return reply

    def _pass(self, direction: str, frame: bytes) -> bytes:
        out = self._tamper(direction, frame) if self._tamper else frame
        if out is None:
            raise ChannelClosed(f"message {direction.replace('_', ' ')} lost")
        return out


def check_nonce(value: object) -> bytes:
    """The other end's nonce, checked for its type and length."""
    if not isinstance(value, bytes) or len(value) != NONCE_BYTES:
        raise AuthenticationError("malformed session handshake")
    return value


def exchange_nonces(sock: socket.socket, *, alice: bool) -> bytes:
    """The handshake over ``sock`` (see the module): a fresh nonce of this end's and the peer's,
    Alice's sent first; returns both, Alice's first, the context a sealer binds to.

    Raises:
        ChannelError: the peer is silent past the socket's timeout.
        ChannelClosed: the connection ended or failed.
    """
    mine = os.urandom(NONCE_BYTES)

    def send() -> None:
        try:
            sock.sendall(mine)
        except OSError as exc:
            raise ChannelClosed(f"connection failed: {os_reason(exc)}") from None

    if alice:
        send()
        return mine + recv_exact(sock, NONCE_BYTES)
    theirs = recv_exact(sock, NONCE_BYTES)
    send()
    return theirs + mine


def send_frame(sock: socket.socket, frame: bytes) -> None:
    sock.sendall(LENGTH.pack(len(frame)) + frame)


_TIMED_OUT = "timed out waiting for the peer"


def recv_exact(sock: socket.socket, n: int, deadline: float | None = None) -> bytes:
    """Exactly ``n`` bytes from ``sock``, by ``deadline`` (a :func:`time.monotonic` time) when
    one is given, else each within the socket's timeout.

    Raises:
        ChannelError: the deadline passed, or the peer is silent past the socket's timeout.
        ChannelClosed: the connection ended first.
    """
    # Grows with what arrives (1 MiB at a time at most), so a frame that never comes costs nothing.
    chunks = bytearray()
    while len(chunks) < n:
        try:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                sock.settimeout(left)
            chunk = sock.recv(min(n - len(chunks), 1 << 20))
        except TimeoutError:
            raise ChannelError(_TIMED_OUT) from None
        except OSError as exc:
            raise ChannelClosed(f"connection failed: {os_reason(exc)}") from None
        if not chunk:
            raise ChannelClosed("the peer closed the connection")
        chunks += chunk
    return bytes(chunks)


def recv_frame(sock: socket.socket, *, limit: int = MAX_FRAME) -> bytes:
    """The next frame from ``sock``; its announced length is checked against ``limit`` (bytes)
    before any of it is read.

    Raises:
        ChannelError: the frame is longer than ``limit`` or shorter than a header and tag, or it
            did not arrive whole within the socket's timeout.
        ChannelClosed: the connection ended.
    """
    # The socket's timeout bounds the whole frame, not each piece of it: a peer sending a byte
    # now and then would otherwise hold the reader for as long as it likes.
    timeout = sock.gettimeout()
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        return _recv_frame(sock, limit, deadline)
    finally:
        if timeout is not None:
            with contextlib.suppress(OSError):
                sock.settimeout(timeout)


def _recv_frame(sock: socket.socket, limit: int, deadline: float | None) -> bytes:
    (length,) = LENGTH.unpack(recv_exact(sock, LENGTH.size, deadline))
    if length > limit:
        raise ChannelError(
            f"frame of {length} bytes is larger than the session allows ({limit} bytes): "
            "a peer that is not a qitcore QKD end, or one that misbehaves"
        )
    if length < MIN_FRAME:
        raise ChannelError(f"frame of {length} bytes is shorter than a header and tag")
    return recv_exact(sock, length, deadline)


MAX_SECONDS = 1e6
"""The longest timeout a channel takes (about 11 days): the socket layer overflows its clock a
little above 10^8 seconds."""


def seconds(name: str, value: object) -> float:
    """``value`` as a timeout: a real number of seconds above 0 and at most :data:`MAX_SECONDS`."""
    number = _validate.real(name, value)
    if not 0 < number <= MAX_SECONDS:
        raise InvalidArgumentError(
            f"{name}: expected a number of seconds above 0 and at most {MAX_SECONDS:g}, got {value}"
        )
    return number


class TcpChannel(Channel):
    """Bob's end over TCP, connected to an Alice running :func:`serve_tcp`.

    Args:
        timeout: seconds to wait for each reply.
        retry: seconds to go on trying to connect while nobody listens yet (refused or
            unreachable), with a growing pause between tries; ``0`` tries once.

    Raises:
        ChannelClosed: no connection could be made (within ``retry`` seconds).
        InvalidArgumentError: a port outside 1-65535, a timeout that is not positive, a negative retry.
    """

    def __init__(self, auth_key: AuthKey, host: str, port: int, *, timeout: float = 30.0, retry: float = 0.0) -> None:
        super().__init__(auth_key)
        if not isinstance(host, str):
            raise InvalidTypeError(f"host: expected a string, got {type(host).__name__}")
        port = _validate.integer("port", port, minimum=1, maximum=65535)
        timeout, retry = seconds("timeout", timeout), _validate.real("retry", retry)
        if not 0 <= retry <= MAX_SECONDS:
            raise InvalidArgumentError(f"retry: expected 0 to {MAX_SECONDS:g} seconds, got {retry}")
        self._where, self._timeout = (host, port), timeout
        self._tries = _Tries(retry)
        self._answered = False
        self._sock = _connect(host, port, timeout, self._tries)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _handshake(self) -> bool:
        """Reads Alice's nonce, sends Bob's and binds the sealer to both; True when it rekeyed."""
        context = exchange_nonces(self._sock, alice=False)
        return self._bind(context[:NONCE_BYTES], context[NONCE_BYTES:])

    def request(self, kind: int, payload: bytes) -> tuple[int, bytes]:
        if self._answered:
            return super().request(kind, payload)
        frame = None
        while True:
            try:
                # Each connection is a session of its own: an HMAC sealer is rekeyed and the first
                # frame sealed again; a Wegman–Carter frame is sent again as it was (its pads are
                # fresh already, and Alice has accepted nothing of it).
                if self._handshake() or frame is None:
                    frame = self._sealer.seal(kind, payload)
                reply = self._round_trip(frame)
            except ChannelClosed as exc:
                # A connection closed before Alice's first answer is one that never reached her
                # (a proxy, or a listener not yet started behind one, accepts and closes): retried
                # like a refused one until the time is up. Alice closes unanswered a frame sealed
                # under another key too, which Bob cannot tell apart: the message names both.
                self._sock.close()
                why = f"{exc} before Alice answered: is she running, with the same pre-shared key (or key pool) as Bob?"
                self._tries.seen = why
                if not self._tries.pause():
                    raise ChannelClosed(f"{why}{self._tries.waited()}") from None
                self._sock = _connect(*self._where, self._timeout, self._tries)
                self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                continue
            except ChannelError as exc:
                if str(exc) != _TIMED_OUT:
                    raise
                # Accepted and never answered: Alice serves one Bob at a time.
                raise ChannelError(f"{exc}: Alice accepted but did not answer (is she serving another Bob?)") from None
            self._answered = True
            return self._sealer.open(reply)

    def _round_trip(self, frame: bytes) -> bytes:
        try:
            send_frame(self._sock, frame)
        except OSError as exc:
            raise ChannelClosed(f"connection failed: {os_reason(exc)}") from None
        return recv_frame(self._sock, limit=self.max_frame)

    def _exchange(self, frame: bytes) -> bytes:
        return self._round_trip(frame)

    def close(self) -> None:
        self._sock.close()


class _Tries:
    """Bob's tries to reach Alice within ``retry`` seconds of the first: pauses that grow from
    50 ms to 1 s, and how long the tries took, for the message that gives up."""

    def __init__(self, retry: float) -> None:
        self.retry = retry
        self.started = time.monotonic()
        self._next_pause = 0.05
        self.seen = ""
        """What an earlier try ended with, when it says more than the last (a connection Alice
        closed unanswered, before she stopped listening)."""

    def pause(self) -> bool:
        """Sleeps before the next try; False when the time is up (no sleep then)."""
        left = self.started + self.retry - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(self._next_pause, left))
        self._next_pause = min(self._next_pause * 2, 1.0)
        return True

    def waited(self) -> str:
        return f" (tried for {time.monotonic() - self.started:.1f} s)" if self.retry else ""

    def earlier(self) -> str:
        return f"; before that, {self.seen}" if self.seen else ""


def _connect(host: str, port: int, timeout: float, tries: _Tries) -> socket.socket:
    where = _validate.show_host_port(host, port)
    while True:
        try:
            return socket.create_connection((host, port), timeout=timeout)
        except (ConnectionRefusedError, ConnectionResetError, ConnectionAbortedError) as exc:
            # Alice may not be listening yet: Bob started first is not an error until the time is up.
            if not tries.pause():
                raise ChannelClosed(f"cannot connect to {where}: {exc}{tries.waited()}{tries.earlier()}") from None
        except OSError as exc:
            raise ChannelClosed(f"cannot connect to {where}: {os_reason(exc)}") from None


MAX_PENDING = 32
"""Connections whose first frame Alice waits for at once; a new one beyond this closes the oldest
(a flood of silent clients cannot keep the real Bob from being read)."""

FIRST_FRAME_SECONDS = 10.0
"""How long a connection may take to deliver its first frame (HELLO, a few hundred bytes)."""


class _Pending:
    """A connection whose first frame is still arriving."""

    HEAD = NONCE_BYTES + LENGTH.size

    def __init__(self, sock: socket.socket, peer: str, deadline: float, nonce: bytes) -> None:
        self.sock, self.peer, self.deadline, self.nonce = sock, peer, deadline, nonce
        self.data = bytearray()

    def want(self) -> int:
        """Bytes still to read of Bob's nonce, the length and the frame; -1 when the length is
        out of bounds."""
        if len(self.data) < self.HEAD:
            return self.HEAD - len(self.data)
        length: int = LENGTH.unpack_from(self.data, NONCE_BYTES)[0]
        if not MIN_FRAME <= length <= FIRST_FRAME_LIMIT:
            return -1
        return self.HEAD + length - len(self.data)

    def context(self) -> bytes:
        """Both nonces: what the session's key is bound to."""
        return self.nonce + bytes(self.data[:NONCE_BYTES])


def _peer_name(sock: socket.socket) -> str:
    try:
        host, port = sock.getpeername()[:2]
    except OSError:
        return "?"
    return _validate.show_host_port(host, port)


def serve_tcp(
    endpoint: Listener,
    server: socket.socket,
    *,
    timeout: float = 30.0,
    first_frame_timeout: float = FIRST_FRAME_SECONDS,
    on_connect: Callable[[str], None] | None = None,
) -> None:
    """Waits on the listening socket ``server`` for Bob and serves him until the session ends
    (Bob confirmed, or it failed: ``endpoint`` then says why).

    Every connection's first frame is read concurrently, within ``first_frame_timeout`` seconds
    and :data:`FIRST_FRAME_LIMIT` bytes; one that is late, oversized, malformed or fails
    authentication is closed without an answer and Alice goes on listening. The first connection
    whose frame authenticates is Bob's (``on_connect`` is called with its address): the others
    are closed and the session continues on it, each reply awaited at most ``timeout`` seconds
    and each frame bounded by ``endpoint.frame_limit()``.

    Raises:
        ChannelError: no authenticated Bob within ``timeout`` seconds; Bob silent for longer than
            ``timeout``; a frame longer than the session allows.
        ChannelClosed: Bob's connection ended before the session did.
        InvalidArgumentError: a timeout that is not positive.
    """
    timeout, first_frame_timeout = seconds("timeout", timeout), seconds("first_frame_timeout", first_frame_timeout)
    conn, frame = _await_bob(endpoint, server, timeout, first_frame_timeout)
    with conn:
        peer = _peer_name(conn)
        log.info("authenticated peer %s", peer)
        if on_connect is not None:
            on_connect(peer)
        conn.setblocking(True)
        conn.settimeout(timeout)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        limit = endpoint.frame_limit()
        while True:
            reply = endpoint.handle_frame(frame)
            try:
                try:
                    send_frame(conn, reply)
                except OSError as exc:
                    raise ChannelClosed(f"connection failed: {os_reason(exc)}") from None
                if endpoint.finished or endpoint.error is not None:
                    return  # the reply told Bob how it ended; endpoint.result() tells the caller
                frame = recv_frame(conn, limit=limit)
            except ChannelClosed as exc:
                if endpoint.finished:
                    raise  # Alice's key is made; the reply telling Bob so is lost (the README's lost last message)
                # Bob stopped (his error, Ctrl-C) or his link failed: his side says which.
                raise ChannelClosed(f"{exc} mid-session (Bob's own error says why); no key released") from None


def _await_bob(
    endpoint: Listener, server: socket.socket, timeout: float, first_frame_timeout: float
) -> tuple[socket.socket, bytes]:
    """The first connection to ``server`` whose first frame authenticates, and that frame."""
    deadline = time.monotonic() + timeout
    pending: dict[socket.socket, _Pending] = {}
    dropped = 0
    server.setblocking(False)
    with selectors.DefaultSelector() as selector:
        selector.register(server, selectors.EVENT_READ)

        def drop(p: _Pending, why: str) -> None:
            nonlocal dropped
            dropped += 1
            log.info("dropped peer %s: %s", p.peer, why)
            selector.unregister(p.sock)
            del pending[p.sock]
            p.sock.close()

        try:
            while True:
                now = time.monotonic()
                for p in [p for p in pending.values() if p.deadline <= now]:
                    drop(p, "no complete first frame in time")
                if now >= deadline:
                    extra = f" ({dropped} unauthenticated connections dropped)" if dropped else ""
                    raise ChannelError(f"no authenticated Bob connected within {timeout:g} s{extra}")
                # Wakes at least twice a second, so a Ctrl-C is seen promptly everywhere.
                wait = min([deadline, *(p.deadline for p in pending.values())]) - now
                for key, _ in selector.select(min(wait, 0.5)):
                    if key.fileobj is server:
                        _accept(server, selector, pending, min(deadline, time.monotonic() + first_frame_timeout), drop)
                        continue
                    p = pending.get(key.fileobj)  # type: ignore[call-overload]
                    if p is None:
                        continue  # dropped by an earlier event of this round (to make room)
                    try:
                        chunk = p.sock.recv(p.want())
                    except BlockingIOError:
                        continue
                    except OSError as exc:
                        drop(p, f"connection failed: {os_reason(exc)}")
                        continue
                    if not chunk:
                        drop(p, "closed before a whole first frame")
                        continue
                    p.data += chunk
                    want = p.want()
                    if want < 0:
                        drop(p, "first frame's length out of bounds")
                    elif want == 0:
                        frame, context = bytes(p.data[p.HEAD :]), p.context()
                        if endpoint.authentic(frame, context):
                            selector.unregister(p.sock)
                            del pending[p.sock]
                            endpoint.bind(context)
                            return p.sock, frame
                        drop(p, "first frame failed authentication")
        finally:
            for p in list(pending.values()):
                p.sock.close()
            server.setblocking(True)


def _accept(
    server: socket.socket,
    selector: selectors.BaseSelector,
    pending: dict[socket.socket, _Pending],
    deadline: float,
    drop: Callable[[_Pending, str], None],
) -> None:
    try:
        sock, _ = server.accept()
    except (BlockingIOError, InterruptedError):
        return
    except OSError as exc:
        # Out of file descriptors, or a connection reset before it was accepted: keep listening,
        # after freeing a descriptor (the listening socket stays readable and would spin).
        log.warning("accept failed: %s", exc)
        if pending:
            drop(min(pending.values(), key=lambda p: p.deadline), "descriptors needed")
        else:
            time.sleep(0.05)
        return
    if len(pending) >= MAX_PENDING:
        drop(min(pending.values(), key=lambda p: p.deadline), "too many connections waiting")
    sock.setblocking(False)
    nonce = os.urandom(NONCE_BYTES)
    try:
        # The challenge goes first: Bob's first frame is sealed under a key bound to it, so no
        # frame recorded from another session authenticates here.
        if sock.send(nonce) != NONCE_BYTES:
            raise BlockingIOError
    except OSError:
        sock.close()
        return
    pending[sock] = _Pending(sock, _peer_name(sock), deadline, nonce)
    selector.register(sock, selectors.EVENT_READ)
