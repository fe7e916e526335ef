"""How much of the KME's HTTPS listener one client, or all of them, may hold, and for how long.

Every stage of a connection has a deadline, so a client that connects and then sends nothing,
sends its request a byte at a time, never reads its replies, or keeps an idle connection open
gives its place up within a bounded time; connections beyond the bounds wait in the listen backlog (one address past its
share is closed at once). Nothing here is reported in the Status object: these bound the
transport, the ``[limits]`` of ``kme.toml`` bound the keys.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from ..errors import InvalidArgumentError

__all__ = ["ConnectionLimits"]


@dataclass(frozen=True)
class ConnectionLimits:
    """Bounds on the KME's client connections (times in seconds, sizes in bytes).

    Attributes:
        max_connections: connections open at once (in any stage); more wait in the backlog.
        max_per_address: connections open at once from one client address; more are closed.
        backlog: the listen backlog (connections the kernel queues before they are accepted).
        handshake_timeout: for the TLS handshake.
        header_timeout: from a request's first byte to the end of its headers.
        body_timeout: from the end of a request's headers to the end of its body.
        write_timeout: from the start of a response to its last byte handed to the kernel (a
            client that does not read its replies is disconnected then).
        idle_timeout: a connection with no request in progress (new, or kept alive) is closed.
        max_body: a request body (after any chunked encoding is undone).
    """

    max_connections: int = 512
    max_per_address: int = 64
    backlog: int = 1024
    handshake_timeout: float = 10.0
    header_timeout: float = 10.0
    body_timeout: float = 10.0
    write_timeout: float = 10.0
    idle_timeout: float = 30.0
    max_body: int = 1 << 20

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            kind = int if f.type in ("int", int) else (int, float)
            if isinstance(value, bool) or not isinstance(value, kind) or not 0 < value < 1e9:
                what = "an integer" if kind is int else "a number of seconds"
                raise InvalidArgumentError(f"{f.name}: expected {what} above 0, got {value!r}")
        if self.max_per_address > self.max_connections:
            raise InvalidArgumentError(
                f"max_per_address: {self.max_per_address} is more than max_connections = {self.max_connections}"
            )
