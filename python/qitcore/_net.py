"""Listening sockets for every server qitcore runs (a QKD end, the KME, the service's front ends).

The address family follows the host: ``socket.create_server`` alone listens on IPv4, so an IPv6
host (``[::1]:7000`` on a command line, ``::1`` once read) would fail to bind.
"""

from __future__ import annotations

import socket

__all__ = ["listen_socket"]


def listen_socket(host: str, port: int, *, backlog: int | None = None) -> socket.socket:
    """A TCP socket bound to ``(host, port)`` and listening, of the family ``host`` resolves to
    first (a literal address's own).

    Raises:
        OSError: the host does not resolve, or the address cannot be listened on.
        OverflowError: a port out of range.
    """
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
    except socket.gaierror:
        family = socket.AF_INET  # create_server then says why the host is no good
    return socket.create_server((host, port), family=family, backlog=backlog)
