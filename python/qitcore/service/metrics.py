"""Prometheus metrics of a running service, on an opt-in plain-HTTP endpoint (``GET /metrics``).

A collector of its own (in a registry of its own, so nothing of the process's default registry
leaks in) reads :meth:`Pool.status` and :meth:`ServiceStats.snapshot` at each scrape: the numbers
are those ``qitcore status`` shows, never a second set of counters that could drift from them.

Metrics (all ``qitcore_``): ``served_bytes_total{client_class}``, ``requests_total{client_class}``,
``requests_refused_total{client_class,reason}``, ``clients_open{front_end}``,
``clients_total{front_end}``, ``discarded_bytes_total``, ``pool_buffered_bytes``,
``pool_capacity_bytes``, ``device_state{device,state}`` (1 for the device's state, 0 for the
others), ``device_buffered_bytes{device}``, ``device_served_bytes_total{device}``,
``device_reopens_total{device}``, ``health_failures_total{device,test}``,
``kernel_credited_bits_total``, ``kernel_written_bytes_total``, ``uptime_seconds``.

The endpoint serves only these figures (no random bytes, no configuration): it is plain HTTP on
127.0.0.1 by default, bounded in connections like every listener of the service.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._validate import host_port
from ..errors import DeviceError, InvalidTypeError
from ..kme.limits import ConnectionLimits
from .frontend import FrontEnd
from .pool import STATES

if TYPE_CHECKING:
    from aiohttp import web

    from .pool import Pool
    from .stats import ServiceStats

__all__ = ["MetricsServer", "MetricsSettings", "registry"]

log = logging.getLogger("qitcore.service.metrics")


def _scrape_limits() -> ConnectionLimits:
    # A scraper or two, not the public: few connections, short deadlines (an idle connection
    # too: silent ones must not keep the scraper out for long; a scraper reconnects cheaply).
    return ConnectionLimits(
        max_connections=16, max_per_address=16, backlog=64, handshake_timeout=5.0, header_timeout=5.0,
        body_timeout=5.0, write_timeout=5.0, idle_timeout=5.0, max_body=1,
    )  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class MetricsSettings:
    """The metrics endpoint.

    Attributes:
        listen: ``HOST:PORT`` (port 0: any free one, see :attr:`MetricsServer.port`).
        connections: bounds on connections in number and in time.
    """

    listen: str = "127.0.0.1:9464"
    connections: ConnectionLimits = field(default_factory=_scrape_limits)

    def __post_init__(self) -> None:
        if not isinstance(self.listen, str):
            raise InvalidTypeError(f"metrics listen: expected HOST:PORT, got {type(self.listen).__name__}")
        host_port("metrics listen", self.listen)
        if not isinstance(self.connections, ConnectionLimits):
            raise InvalidTypeError(f"metrics connections: expected ConnectionLimits, got {self.connections!r}")


class _Collector:
    """Reads the pool and the stats at each scrape."""

    def __init__(self, pool: Pool, stats: ServiceStats) -> None:
        self.pool, self.stats = pool, stats

    def describe(self) -> list[Any]:
        return []  # the families depend on what is running: described at collect time only

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        snap = self.stats.snapshot()
        status = self.pool.status()

        def family(kind: Any, name: str, doc: str, labels: list[str], rows: list[tuple[list[str], float]]) -> Any:
            made = kind(f"qitcore_{name}", doc, labels=labels)
            for values, value in rows:
                made.add_metric(values, value)
            return made

        counter = functools.partial(family, CounterMetricFamily)
        gauge = functools.partial(family, GaugeMetricFamily)

        yield gauge("uptime_seconds", "Seconds since the service started.", [], [([], snap["uptime"])])
        yield counter(
            "served_bytes", "Random bytes served, by client class (local, https:<CN>, kernel).",
            ["client_class"], [([k], v) for k, v in sorted(snap["served"].items())],
        )  # fmt: skip
        requests = snap["requests"]
        yield counter(
            "requests", "Requests answered or refused, by client class.",
            ["client_class"], [([k], v["total"]) for k, v in sorted(requests.items())],
        )  # fmt: skip
        yield counter(
            "requests_refused", "Requests refused, by client class and reason.", ["client_class", "reason"],
            [([k, why], n) for k, v in sorted(requests.items()) for why, n in sorted(v["refused"].items())],
        )  # fmt: skip
        clients = snap["clients"]
        yield gauge(
            "clients_open", "Client connections open, by front end.",
            ["front_end"], [([k], v["open"]) for k, v in sorted(clients.items())],
        )  # fmt: skip
        yield counter(
            "clients", "Client connections accepted, by front end.",
            ["front_end"], [([k], v["total"]) for k, v in sorted(clients.items())],
        )  # fmt: skip
        yield counter(
            "discarded_bytes", "Extracted bytes dropped unserved (a device failed, a read was given up).",
            [], [([], snap["discarded"])],
        )  # fmt: skip
        yield gauge("pool_buffered_bytes", "Extracted bytes ready to serve.", [], [([], status["buffered"])])
        yield gauge("pool_capacity_bytes", "Extracted bytes the pool holds at most.", [], [([], status["capacity"])])
        devices = status["devices"]
        yield gauge(
            "device_state", "1 for each device's state, 0 for its other states.", ["device", "state"],
            [([d["url"], s], float(d["state"] == s)) for d in devices for s in STATES],
        )  # fmt: skip
        yield gauge(
            "device_buffered_bytes", "Extracted bytes ready, by device.",
            ["device"], [([d["url"]], d.get("buffered", 0)) for d in devices],
        )  # fmt: skip
        yield counter(
            "device_served_bytes", "Bytes served from each device.",
            ["device"], [([d["url"]], d["bytes_served"]) for d in devices],
        )  # fmt: skip
        yield counter(
            "device_reopens", "Times each device was reopened after failing or going away.",
            ["device"], [([d["url"]], d["reopens"]) for d in devices],
        )  # fmt: skip
        yield counter(
            "health_failures", "Health test failures, by device and test.", ["device", "test"],
            [([d["url"], t], n) for d in devices for t, n in sorted(d["health_failures"].items())],
        )  # fmt: skip
        kernel = snap["kernel"]
        yield counter(
            "kernel_credited_bits", "Bits of entropy credited to the kernel's pool.", [],
            [([], kernel["bits_credited"])],
        )  # fmt: skip
        yield counter(
            "kernel_written_bytes", "Bytes written into the kernel's pool.", [], [([], kernel["bytes_written"])]
        )


def registry(pool: Pool, stats: ServiceStats) -> Any:
    """A ``prometheus_client`` registry holding only the service's collector.

    Raises:
        DeviceError: prometheus_client (qitcore's ``service`` extra) is not installed.
    """
    try:
        from prometheus_client import CollectorRegistry
    except ImportError:
        raise DeviceError(
            "metrics need prometheus_client, part of qitcore's service extra: pip install 'qitcore[service]'"
        ) from None
    reg = CollectorRegistry(auto_describe=False)
    reg.register(_Collector(pool, stats))
    return reg


class MetricsServer(FrontEnd):
    """Serves the service's metrics on ``GET /metrics`` (Prometheus text format). Binds its
    socket here, so a bad address fails before anything starts.

    Raises:
        InvalidArgumentError: the address cannot be listened on.
        DeviceError: aiohttp or prometheus_client (qitcore's ``service`` extra) is not installed.
    """

    _serving = "serving metrics on http://%s/metrics"

    def __init__(self, pool: Pool, stats: ServiceStats, settings: MetricsSettings) -> None:
        if not isinstance(settings, MetricsSettings):
            raise InvalidTypeError(f"settings: expected MetricsSettings, got {type(settings).__name__}")
        self._registry = registry(pool, stats)
        try:
            from .._https_listener import BoundedServer, refuser
        except ImportError:
            raise DeviceError(
                "metrics need aiohttp, part of qitcore's service extra: pip install 'qitcore[service]'"
            ) from None
        self.settings = settings
        self._refuse = refuser()
        self._server = BoundedServer.listening(
            "metrics", settings.listen, settings.connections, None, self._answer, self._refuse,
            name="qitcore.service.metrics", threads=2,
        )  # fmt: skip

    def text(self) -> bytes:
        """The metrics now, in Prometheus text format."""
        from prometheus_client import generate_latest

        return bytes(generate_latest(self._registry))

    async def _answer(self, request: web.BaseRequest) -> web.StreamResponse:
        from aiohttp import web
        from prometheus_client import CONTENT_TYPE_LATEST

        if request.method not in ("GET", "HEAD"):
            response = self._refuse(405, f"method {request.method[:20]} is not allowed: GET")
            response.headers["Allow"] = "GET, HEAD"
            return response
        if request.path != "/metrics":
            return self._refuse(404, f"no such resource: {request.path[:100]} (GET /metrics)")
        try:
            # The pool's and the stats' locks may be held for a moment: not on the event loop.
            body = await asyncio.get_running_loop().run_in_executor(self._server.executor, self.text)
        except Exception:
            log.exception("collecting metrics failed")
            return self._refuse(503, "collecting metrics failed")
        response = web.Response(status=200, body=body)
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        response.headers["Cache-Control"] = "no-store"
        return response
