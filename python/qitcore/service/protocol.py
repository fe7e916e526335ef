"""The wire format between ``qitcore serve`` and its local clients (the Unix socket), and where that
socket lives by default.

A client sends fixed 16-byte request headers; the daemon answers each with a 12-byte reply header
and its payload, in order, one whole reply before the next (so requests may be pipelined). All
integers are big-endian. docs/service-protocol.md gives the byte layouts and the rules; this
module is their one implementation, used by both ends, and it decodes hostile bytes into
:class:`~qitcore.errors.ProtocolError` naming what was wrong, never into an allocation the peer
chose: every length is checked against its bound before anything is read for it.
"""

from __future__ import annotations

import enum
import os
import struct
from dataclasses import dataclass

from ..errors import InvalidArgumentError, ProtocolError

__all__ = [
    "MAGIC",
    "MAX_ERROR",
    "MAX_READ",
    "MAX_STATUS",
    "MAX_WAIT_MS",
    "REPLY_SIZE",
    "REQUEST_SIZE",
    "SYSTEM_SOCKET",
    "VERSION",
    "Op",
    "Reply",
    "Request",
    "Status",
    "client_socket_paths",
    "decode_reply",
    "decode_request",
    "default_socket_path",
    "encode_reply",
    "encode_request",
    "reason_bytes",
]

MAGIC = b"QITC"
"""The first four bytes of every request and reply header."""
VERSION = 1
"""The protocol version this module speaks; a header of another version is refused."""
MAX_READ = 1 << 20
"""The largest READ request (bytes), the pool's ``MAX_REQUEST``; larger ones are refused
(``TOO_LARGE``) and the connection stays open."""
MAX_STATUS = 1 << 20
"""The largest STATUS reply payload (bytes of UTF-8 JSON) a client accepts."""
MAX_ERROR = 4096
"""The largest error reason (bytes of UTF-8) in a reply; a daemon truncates longer ones."""
MAX_WAIT_MS = 60_000
"""The longest a request may ask to wait for a healthy device (milliseconds); more is capped."""

_REQUEST = struct.Struct(">4sBBHII")
_REPLY = struct.Struct(">4sBBHI")
REQUEST_SIZE = _REQUEST.size
"""Bytes in a request header (16)."""
REPLY_SIZE = _REPLY.size
"""Bytes in a reply header (12)."""


class Op(enum.IntEnum):
    """What a request asks for."""

    READ = 1
    """``length`` random bytes."""
    STATUS = 2
    """The daemon's status, as UTF-8 JSON (``length`` must be 0)."""


class Status(enum.IntEnum):
    """How a request was answered. Every status but ``OK`` carries a UTF-8 reason."""

    OK = 0
    """READ: exactly ``length`` random bytes follow; STATUS: the JSON document follows."""
    UNAVAILABLE = 1
    """No device was healthy for as long as the request could wait, or the daemon is stopping;
    nothing was consumed. The connection stays open."""
    TOO_LARGE = 2
    """A READ above :data:`MAX_READ`. The connection stays open."""
    BAD_REQUEST = 3
    """The header was malformed (magic, version, op, reserved bits); the daemon closes the
    connection after this reply."""
    BUSY = 4
    """The daemon has as many clients as it serves at once; it closes the connection."""
    INTERNAL = 5
    """The daemon failed to answer (a bug); it closes the connection."""


@dataclass(frozen=True)
class Request:
    """A decoded request header."""

    op: Op
    length: int
    """READ: bytes wanted (0 to :data:`MAX_READ`, checked by the daemon); STATUS: 0."""
    wait_ms: int = 0
    """How long the client lets the daemon wait for a healthy device (ms); 0: the daemon's default."""


@dataclass(frozen=True)
class Reply:
    """A decoded reply header: its status and the length of the payload that follows."""

    status: Status
    length: int


def encode_request(op: Op, length: int = 0, wait_ms: int = 0) -> bytes:
    """The 16-byte header of a request.

    Raises:
        InvalidArgumentError: ``length`` or ``wait_ms`` is not an integer in 0..2^32-1, or a STATUS
            request has a length.
    """
    op = Op(op)
    for name, value in (("length", length), ("wait_ms", wait_ms)):
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 32:
            raise InvalidArgumentError(f"{name}: expected an integer from 0 to 2^32-1, got {value!r}")
    if op is Op.STATUS and length:
        raise InvalidArgumentError(f"length: a STATUS request has none, got {length}")
    return _REQUEST.pack(MAGIC, VERSION, op, 0, length, wait_ms)


def decode_request(header: bytes) -> Request:
    """The request in a 16-byte header.

    Raises:
        ProtocolError: the header is short, or its magic, version, op or reserved field is wrong
            (the daemon answers BAD_REQUEST with this message and closes the connection).
    """
    if len(header) != REQUEST_SIZE:
        raise ProtocolError(f"request: expected a {REQUEST_SIZE}-byte header, got {len(header)} bytes")
    magic, version, op, reserved, length, wait_ms = _REQUEST.unpack(header)
    if magic != MAGIC:
        raise ProtocolError(f"request: bad magic {magic!r} (expected {MAGIC!r}): not a qitcore client")
    if version != VERSION:
        raise ProtocolError(f"request: protocol version {version} (this daemon speaks version {VERSION})")
    if op not in Op._value2member_map_:
        raise ProtocolError(f"request: unknown op {op} (expected 1 READ or 2 STATUS)")
    if reserved:
        raise ProtocolError(f"request: reserved field must be 0, got {reserved:#06x}")
    if op == Op.STATUS and length:
        raise ProtocolError(f"request: a STATUS request has length 0, got {length}")
    return Request(Op(op), length, wait_ms)


def encode_reply(status: Status, payload: bytes = b"") -> bytes:
    """A reply header (12 bytes); the payload is sent after it. Error reasons over
    :data:`MAX_ERROR` bytes must be cut by the caller (:func:`reason_bytes`)."""
    status = Status(status)
    if status is not Status.OK and len(payload) > MAX_ERROR:
        raise InvalidArgumentError(f"payload: an error reason holds at most {MAX_ERROR} bytes, got {len(payload)}")
    return _REPLY.pack(MAGIC, VERSION, status, 0, len(payload))


def reason_bytes(reason: str) -> bytes:
    """``reason`` in UTF-8, cut to :data:`MAX_ERROR` bytes (at a character boundary)."""
    data = reason.encode("utf-8", "replace")
    if len(data) <= MAX_ERROR:
        return data
    return data[: MAX_ERROR - 3].decode("utf-8", "ignore").encode() + b"..."


def decode_reply(header: bytes, request: Request) -> Reply:
    """The reply in a 12-byte header, checked against the request it answers: an OK reply to a
    READ of n bytes must announce n bytes, a STATUS document at most :data:`MAX_STATUS`, an error
    reason at most :data:`MAX_ERROR`.

    Raises:
        ProtocolError: the header is short or malformed, or announces a payload the request does
            not allow.
    """
    if len(header) != REPLY_SIZE:
        raise ProtocolError(f"reply: expected a {REPLY_SIZE}-byte header, got {len(header)} bytes")
    magic, version, status, reserved, length = _REPLY.unpack(header)
    if magic != MAGIC or version != VERSION or reserved:
        raise ProtocolError(
            f"reply: not a qitcore daemon's reply of version {VERSION} (magic {magic!r}, version {version})"
        )
    if status not in Status._value2member_map_:
        raise ProtocolError(f"reply: unknown status {status}")
    st = Status(status)
    if st is not Status.OK:
        if length > MAX_ERROR:
            raise ProtocolError(f"reply: an error reason of {length} bytes (at most {MAX_ERROR})")
    elif request.op is Op.READ and length != request.length:
        raise ProtocolError(f"reply: {length} bytes announced for a READ of {request.length}")
    elif request.op is Op.STATUS and length > MAX_STATUS:
        raise ProtocolError(f"reply: a status document of {length} bytes (at most {MAX_STATUS})")
    return Reply(st, length)


SYSTEM_SOCKET = "/run/qitcore/qitcored.sock"
"""The system daemon's socket (the systemd unit's runtime directory)."""


def default_socket_path() -> str:
    """Where a daemon listens by default: ``$QITCORE_SOCKET`` if set; else :data:`SYSTEM_SOCKET`
    for root; else ``$XDG_RUNTIME_DIR/qitcored.sock`` (a folder only this user may write to).
    There is no fallback to a shared folder such as ``/tmp``: another user could put a socket there
    first and serve chosen bytes.

    Raises:
        InvalidArgumentError: not root, and neither ``$QITCORE_SOCKET`` nor ``$XDG_RUNTIME_DIR``
            is set: the path must be named.
    """
    explicit = os.environ.get("QITCORE_SOCKET")
    if explicit:
        return explicit
    if os.getuid() == 0:
        return SYSTEM_SOCKET
    user = _user_socket_path()
    if user is None:
        raise InvalidArgumentError(
            f"socket: no default path for uid {os.getuid()}: XDG_RUNTIME_DIR is not set (no login "
            "session); name the socket with --socket PATH, [socket] path or QITCORE_SOCKET, in a "
            "folder only you may write to (not /tmp)"
        )
    return user


def client_socket_paths() -> list[str]:
    """Where a client looks for a daemon, in order: ``$QITCORE_SOCKET`` alone if set; else the
    system daemon's socket, then ``$XDG_RUNTIME_DIR/qitcored.sock`` (the one a daemon run by this
    user listens on by default) when that is set."""
    explicit = os.environ.get("QITCORE_SOCKET")
    if explicit:
        return [explicit]
    user = None if os.getuid() == 0 else _user_socket_path()  # root's daemon listens on the system's
    return [SYSTEM_SOCKET] if user is None or user == SYSTEM_SOCKET else [SYSTEM_SOCKET, user]


def _user_socket_path() -> str | None:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime) and os.path.isdir(runtime):
        return os.path.join(runtime, "qitcored.sock")
    return None
