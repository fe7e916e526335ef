"""The service's counters: bytes served and requests per client class, clients connected per front
end, kernel credits, bytes the pool discarded.

One object is shared by every front end and the pool, so ``qitcore status`` and the metrics
endpoint read one consistent set of numbers. Counting is on the path of every request, so it is
one lock around a few dictionary updates of ints; :meth:`ServiceStats.snapshot` copies them out.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from typing import Any

from .._validate import integer
from ..errors import InvalidArgumentError, InvalidTypeError

__all__ = ["ServiceStats"]


def _name(what: str, value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidTypeError(f"{what}: expected a string, got {type(value).__name__}")
    if not value or len(value) > 200:
        raise InvalidArgumentError(f"{what}: expected 1 to 200 characters, got {len(value)}")
    return value


class ServiceStats:
    """Thread-safe counters of a running service.

    Client classes name who was served: ``"local"`` (the Unix socket), ``"https:<CN>"`` (a client
    certificate's common name), ``"kernel"`` (the kernel's pool). Front ends are ``"local"``,
    ``"https"``, ... All counts are bytes unless named otherwise.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started = time.time()
        self._served: defaultdict[str, int] = defaultdict(int)
        self._requests: defaultdict[str, int] = defaultdict(int)
        self._refused: defaultdict[str, defaultdict[str, int]] = defaultdict(lambda: defaultdict(int))
        self._clients: defaultdict[str, int] = defaultdict(int)
        self._clients_total: defaultdict[str, int] = defaultdict(int)
        self._credited_bits = 0
        self._credited_bytes = 0
        self._discarded = 0

    def served(self, client_class: str, nbytes: int) -> None:
        """``nbytes`` random bytes went to a client of ``client_class``."""
        n = integer("nbytes", nbytes, minimum=0)
        with self._lock:
            self._served[_name("client_class", client_class)] += n

    def request(self, client_class: str, ok: bool, reason: str | None = None) -> None:
        """A request of ``client_class`` was answered (``ok``) or refused, for ``reason`` (a short
        word such as ``"unavailable"``, ``"limit"``, ``"bad-request"``)."""
        name = _name("client_class", client_class)
        with self._lock:
            self._requests[name] += 1
            if not ok:
                self._refused[name][_name("reason", reason or "error")] += 1

    def client(self, front_end: str, delta: int) -> None:
        """A client connected to ``front_end`` (``delta`` +1) or left it (-1)."""
        d = integer("delta", delta, minimum=-1, maximum=1)
        with self._lock:
            name = _name("front_end", front_end)
            self._clients[name] += d
            if d > 0:
                self._clients_total[name] += d

    def credited(self, bits: int, nbytes: int) -> None:
        """``nbytes`` went into the kernel's pool, credited with ``bits`` bits of entropy."""
        b = integer("bits", bits, minimum=0)
        n = integer("nbytes", nbytes, minimum=0)
        with self._lock:
            self._credited_bits += b
            self._credited_bytes += n

    def discarded(self, nbytes: int) -> None:
        """``nbytes`` extracted bytes left the pool without being served (a device that failed, a
        read that was given up): never served to anyone."""
        n = integer("nbytes", nbytes, minimum=0)
        with self._lock:
            self._discarded += n

    def snapshot(self) -> dict[str, Any]:
        """The counters now, JSON-able: ``served`` and ``requests`` by client class (``requests``:
        ``{"total", "refused": {reason: count}}``), ``clients`` by front end (``{"open",
        "total"}``), ``kernel`` (``{"bits_credited", "bytes_written"}``), ``discarded`` bytes and
        ``uptime`` seconds."""
        with self._lock:
            return {
                "uptime": time.time() - self._started,
                "served": dict(self._served),
                "requests": {
                    name: {"total": total, "refused": dict(self._refused.get(name, {}))}
                    for name, total in self._requests.items()
                },
                "clients": {
                    name: {"open": self._clients[name], "total": self._clients_total[name]} for name in self._clients
                },
                "kernel": {"bits_credited": self._credited_bits, "bytes_written": self._credited_bytes},
                "discarded": self._discarded,
            }
