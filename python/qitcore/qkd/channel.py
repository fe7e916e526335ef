"""The classical channel between the two ends, authenticated with a pre-shared key.

Every message is sealed as ``header | payload | tag``: the header holds a magic number, the
message kind, a sequence number and the payload length; the tag is HMAC-SHA256 under the shared
key of a direction byte, the header and the payload. The receiver checks the tag first and then
that the sequence number is exactly the next one: a tampered, forged, reflected, dropped (the
next message arrives with a later number), replayed or reordered message ends the session with
:class:`~qitcore.errors.AuthenticationError`. Nothing in a message is used before that check.

Bob drives the session: :meth:`Channel.request` sends one message to Alice and returns her
reply. Two channels are provided: :class:`InProcessChannel` calls Alice's endpoint directly (both
ends in one process; a ``tamper`` hook lets tests drop, reorder or alter frames), and
:class:`TcpChannel` talks to an Alice served by :func:`serve_tcp` in another process.
"""

from __future__ import annotations

import hmac
import os
import socket
import struct
from collections.abc import Callable
from typing import Protocol

from .. import _validate
from ..errors import AuthenticationError, ChannelClosed, ChannelError, InvalidArgumentError

__all__ = ["Channel", "InProcessChannel", "Sealer", "TcpChannel", "read_auth_key", "serve_tcp"]

MAGIC = b"QK"
HEADER = struct.Struct("<2sBQI")
TAG_BYTES = 32
MAX_PAYLOAD = 1 << 30
TO_ALICE, TO_BOB = b"A", b"B"
MIN_KEY_BYTES = 16


def read_auth_key(path: str | os.PathLike[str], name: str) -> bytes:
    """The pre-shared authentication key in file ``path``; ``name`` is the setting that named it.

    Raises:
        InvalidArgumentError: the file cannot be read or holds fewer than 16 bytes.
    """
    try:
        with open(path, "rb") as f:
            key = f.read()
    except OSError as exc:
        raise InvalidArgumentError(f"{name}: {exc}") from None
    if len(key) < MIN_KEY_BYTES:
        raise InvalidArgumentError(f"{name}: {path} holds {len(key)} bytes, at least {MIN_KEY_BYTES} are needed")
    return key


class Sealer:
    """Seals outgoing messages and opens incoming ones for one end, with its own counters."""

    def __init__(self, key: bytes, *, is_alice: bool) -> None:
        if not isinstance(key, (bytes, bytearray)) or len(key) < MIN_KEY_BYTES:
            raise InvalidArgumentError(f"auth_key: expected at least {MIN_KEY_BYTES} bytes of pre-shared key")
        self._key = bytes(key)
        self._out_dir, self._in_dir = (TO_BOB, TO_ALICE) if is_alice else (TO_ALICE, TO_BOB)
        self._sent = 0
        self._received = 0

    def __repr__(self) -> str:
        return f"Sealer(sent={self._sent}, received={self._received}, key=<hidden>)"

    def seal(self, kind: int, payload: bytes) -> bytes:
        header = HEADER.pack(MAGIC, kind, self._sent, len(payload))
        self._sent += 1
        tag = hmac.digest(self._key, self._out_dir + header + payload, "sha256")
        return header + payload + tag

    def open(self, frame: bytes) -> tuple[int, bytes]:
        if len(frame) < HEADER.size + TAG_BYTES:
            raise AuthenticationError(f"message of {len(frame)} bytes is shorter than a header and tag")
        header, body, tag = frame[: HEADER.size], frame[HEADER.size : -TAG_BYTES], frame[-TAG_BYTES:]
        expected = hmac.digest(self._key, self._in_dir + header + body, "sha256")
        if not hmac.compare_digest(tag, expected):
            raise AuthenticationError("message failed authentication (tampered, forged, or another key)")
        magic, kind, seq, length = HEADER.unpack(header)
        if magic != MAGIC or length != len(body):
            raise AuthenticationError("authenticated message with a malformed header")
        if seq != self._received:
            what = "dropped" if seq > self._received else "replayed or reordered"
            raise AuthenticationError(f"message number {seq} where {self._received} was due: a message was {what}")
        self._received += 1
        return kind, body


class Endpoint(Protocol):
    """Alice's side as the channel sees it: one sealed frame in, one sealed frame out."""

    def handle_frame(self, frame: bytes) -> bytes: ...


class Channel:
    """Bob's end of the channel: :meth:`request` sends a message and returns the reply."""

    def __init__(self, auth_key: bytes) -> None:
        self._sealer = Sealer(auth_key, is_alice=False)

    def request(self, kind: int, payload: bytes) -> tuple[int, bytes]:
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

    def __init__(self, auth_key: bytes, endpoint: Endpoint, *, tamper: Tamper | None = None) -> None:
        super().__init__(auth_key)
        self._endpoint = endpoint
        self._tamper = tamper

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


def send_frame(sock: socket.socket, frame: bytes) -> None:
    sock.sendall(struct.pack("<I", len(frame)) + frame)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < n:
        try:
            chunk = sock.recv(min(n - len(chunks), 1 << 20))
        except TimeoutError:
            raise ChannelError("timed out waiting for the peer") from None
        except OSError as exc:
            raise ChannelClosed(f"connection failed: {exc}") from None
        if not chunk:
            raise ChannelClosed("the peer closed the connection")
        chunks += chunk
    return bytes(chunks)


def recv_frame(sock: socket.socket) -> bytes:
    (length,) = struct.unpack("<I", _recv_exact(sock, 4))
    if length > MAX_PAYLOAD + HEADER.size + TAG_BYTES:
        raise ChannelError(f"frame of {length} bytes is larger than any message of the protocol")
    return _recv_exact(sock, length)


class TcpChannel(Channel):
    """Bob's end over TCP, connected to an Alice running :func:`serve_tcp`."""

    def __init__(self, auth_key: bytes, host: str, port: int, *, timeout: float = 30.0) -> None:
        super().__init__(auth_key)
        port = _validate.integer("port", port, minimum=1, maximum=65535)
        try:
            self._sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            raise ChannelClosed(f"cannot connect to {host}:{port}: {exc}") from None
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _exchange(self, frame: bytes) -> bytes:
        try:
            send_frame(self._sock, frame)
        except OSError as exc:
            raise ChannelClosed(f"connection failed: {exc}") from None
        return recv_frame(self._sock)

    def close(self) -> None:
        self._sock.close()


def serve_tcp(endpoint: Endpoint, sock: socket.socket, *, done: Callable[[], bool], timeout: float = 30.0) -> None:
    """Serves one Bob on the connected socket ``sock`` until ``done()`` or the peer leaves."""
    sock.settimeout(timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while not done():
        reply = endpoint.handle_frame(recv_frame(sock))
        try:
            send_frame(sock, reply)
        except OSError as exc:
            raise ChannelClosed(f"connection failed: {exc}") from None
