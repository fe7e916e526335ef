"""The metrics endpoint: scraped over HTTP on 127.0.0.1 and parsed with prometheus_client's own
parser, the figures are those of the pool's status and the service's counters."""

from __future__ import annotations

import http.client
import json
import socket
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("aiohttp", reason="the metrics endpoint needs the service extra (aiohttp)")
pytest.importorskip("prometheus_client", reason="the metrics endpoint needs the service extra (prometheus_client)")

from prometheus_client.parser import text_string_to_metric_families
from qitcore.errors import DeviceError, InvalidArgumentError, InvalidTypeError
from qitcore.service.config import DeviceSettings
from qitcore.service.metrics import MetricsServer, MetricsSettings
from qitcore.service.pool import STATES, Pool
from qitcore.service.stats import ServiceStats

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class StatusPool:
    """A pool that only reports a fixed status."""

    def __init__(self, status: dict[str, Any]) -> None:
        self._status = status

    def status(self) -> dict[str, Any]:
        return self._status


FIXED_STATUS = {
    "buffered": 1234,
    "capacity": 1 << 20,
    "closed": False,
    "devices": [
        {
            "url": "sim://", "state": "healthy", "buffered": 1000, "bytes_served": 5000,
            "health_failures": {}, "reopens": 0, "last_error": None, "min_entropy": 6.2, "epsilon": 2.0**-64,
        },
        {
            "url": "sim://?fault=stuck:100", "state": "failed", "buffered": 234, "bytes_served": 70,
            "health_failures": {"RepetitionCountFailure": 2, "AdaptiveProportionFailure": 1}, "reopens": 3,
            "last_error": "RepetitionCountFailure: ...", "min_entropy": 6.2, "epsilon": 2.0**-64,
        },
    ],
}  # fmt: skip


@pytest.fixture
def metrics() -> Iterator[Any]:
    servers: list[MetricsServer] = []

    def start(pool: Any, stats: ServiceStats, **kwargs: Any) -> MetricsServer:
        server = MetricsServer(pool, stats, MetricsSettings(listen="127.0.0.1:0", **kwargs))
        servers.append(server)
        server.start()
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


def fetch(port: int, target: str = "/metrics", method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, target)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def scrape(port: int) -> Samples:
    status, headers, body = fetch(port)
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def test_the_figures_are_the_pools_status_and_the_services_counters(metrics: Any) -> None:
    stats = ServiceStats()
    stats.served("local", 300)
    stats.served("https:client-a", 64)
    stats.served("kernel", 128)
    for ok, reason in [(True, None), (True, None), (False, "unavailable"), (False, "rate"), (False, "rate")]:
        stats.request("local", ok, reason)
    stats.request("https:client-a", True)
    stats.client("local", 1)
    stats.client("local", 1)
    stats.client("local", -1)
    stats.credited(108, 128)
    stats.discarded(77)
    server = metrics(StatusPool(FIXED_STATUS), stats)
    got = scrape(server.port)

    assert got[("qitcore_served_bytes_total", (("client_class", "local"),))] == 300
    assert got[("qitcore_served_bytes_total", (("client_class", "https:client-a"),))] == 64
    assert got[("qitcore_served_bytes_total", (("client_class", "kernel"),))] == 128
    assert got[("qitcore_requests_total", (("client_class", "local"),))] == 5
    assert got[("qitcore_requests_refused_total", (("client_class", "local"), ("reason", "rate")))] == 2
    assert got[("qitcore_requests_refused_total", (("client_class", "local"), ("reason", "unavailable")))] == 1
    assert ("qitcore_requests_refused_total", (("client_class", "https:client-a"), ("reason", "rate"))) not in got
    assert got[("qitcore_clients_open", (("front_end", "local"),))] == 1
    assert got[("qitcore_clients_total", (("front_end", "local"),))] == 2
    assert got[("qitcore_kernel_credited_bits_total", ())] == 108
    assert got[("qitcore_kernel_written_bytes_total", ())] == 128
    assert got[("qitcore_discarded_bytes_total", ())] == 77
    assert got[("qitcore_pool_buffered_bytes", ())] == 1234
    assert got[("qitcore_pool_capacity_bytes", ())] == 1 << 20
    stuck = "sim://?fault=stuck:100"
    for state in STATES:
        assert got[("qitcore_device_state", (("device", "sim://"), ("state", state)))] == (state == "healthy")
        assert got[("qitcore_device_state", (("device", stuck), ("state", state)))] == (state == "failed")
    assert got[("qitcore_health_failures_total", (("device", stuck), ("test", "RepetitionCountFailure")))] == 2
    assert got[("qitcore_health_failures_total", (("device", stuck), ("test", "AdaptiveProportionFailure")))] == 1
    assert got[("qitcore_device_reopens_total", (("device", stuck),))] == 3
    assert got[("qitcore_device_served_bytes_total", (("device", "sim://"),))] == 5000
    assert got[("qitcore_device_buffered_bytes", (("device", stuck),))] == 234
    assert got[("qitcore_uptime_seconds", ())] >= 0
    # A registry of its own: none of prometheus_client's process and platform collectors.
    assert all(name.startswith("qitcore_") for name, _ in got)


def test_scrapes_follow_the_counters(metrics: Any) -> None:
    stats = ServiceStats()
    server = metrics(StatusPool(FIXED_STATUS), stats)
    assert ("qitcore_served_bytes_total", (("client_class", "local"),)) not in scrape(server.port)
    stats.served("local", 10)
    assert scrape(server.port)[("qitcore_served_bytes_total", (("client_class", "local"),))] == 10
    stats.served("local", 5)
    assert scrape(server.port)[("qitcore_served_bytes_total", (("client_class", "local"),))] == 15


def test_only_get_metrics_is_served(metrics: Any) -> None:
    server = metrics(StatusPool(FIXED_STATUS), ServiceStats())
    status, _, body = fetch(server.port, "/")
    assert status == 404 and "GET /metrics" in json.loads(body)["error"]
    status, headers, _ = fetch(server.port, "/metrics", method="POST")
    assert status == 405 and headers["Allow"] == "GET, HEAD"


def test_a_real_pool_on_the_simulator_shows_as_healthy_with_its_bytes(metrics: Any) -> None:
    stats = ServiceStats()
    pool = Pool([DeviceSettings("sim://?rate=2e6")], buffer_bytes=1 << 16, stats=stats)
    pool.start()
    try:
        server = metrics(pool, stats)
        data = pool.read(4096, timeout=20)
        stats.served("local", len(data))
        got = scrape(server.port)
    finally:
        pool.close()
    assert got[("qitcore_device_state", (("device", "sim://?rate=2e6"), ("state", "healthy")))] == 1
    assert got[("qitcore_device_served_bytes_total", (("device", "sim://?rate=2e6"),))] == 4096
    assert got[("qitcore_served_bytes_total", (("client_class", "local"),))] == 4096
    assert 0 <= got[("qitcore_pool_buffered_bytes", ())] <= got[("qitcore_pool_capacity_bytes", ())] == 1 << 16


def test_silent_connections_give_their_places_up_within_seconds(metrics: Any) -> None:
    server = metrics(StatusPool(FIXED_STATUS), ServiceStats())
    silent = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(16)]
    try:
        began = time.monotonic()
        assert scrape(server.port)  # waits in the backlog until the silent ones are closed
        assert time.monotonic() - began < 8  # the 5 s idle deadline, not 30 s
    finally:
        for conn in silent:
            conn.close()


def test_stop_is_idempotent_and_settings_are_checked(metrics: Any) -> None:
    server = MetricsServer(StatusPool(FIXED_STATUS), ServiceStats(), MetricsSettings(listen="127.0.0.1:0"))
    server.start()
    port = server.port
    server.stop()
    server.stop()
    deadline = time.monotonic() + 2
    with pytest.raises(ConnectionRefusedError):
        while time.monotonic() < deadline:
            fetch(port)
    with pytest.raises(InvalidArgumentError, match="metrics listen: expected HOST:PORT"):
        MetricsSettings(listen="9464")
    with pytest.raises(InvalidTypeError, match="metrics connections"):
        MetricsSettings(connections={"max_connections": 1})  # type: ignore[arg-type]
    with pytest.raises(InvalidTypeError, match="settings: expected MetricsSettings"):
        MetricsServer(StatusPool(FIXED_STATUS), ServiceStats(), "127.0.0.1:0")  # type: ignore[arg-type]


@pytest.mark.parametrize("missing", ["prometheus_client", "aiohttp"])
def test_without_the_service_extra_the_server_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    monkeypatch.setitem(sys.modules, missing, None)  # as if not installed: importing it fails
    monkeypatch.delitem(sys.modules, "qitcore._https_listener", raising=False)
    with pytest.raises(
        DeviceError, match=rf"{missing}, part of qitcore's service extra: pip install 'qitcore\[service\]'"
    ):
        MetricsServer(StatusPool(FIXED_STATUS), ServiceStats(), MetricsSettings(listen="127.0.0.1:0"))
