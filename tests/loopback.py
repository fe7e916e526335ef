"""Whether this machine can listen on its IPv6 loopback address, which the IPv6 tests need to know
(where it cannot, they check that the refusal is a clear error instead)."""

from __future__ import annotations

import socket


def ipv6_loopback() -> bool:
    """True when a TCP socket can listen on ``::1``."""
    try:
        with socket.create_server(("::1", 0), family=socket.AF_INET6):
            return True
    except OSError:
        return False
