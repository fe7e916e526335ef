"""The service's HTTPS endpoint (mutual TLS, the certificate's CN decides access, per-client limits)
and the ``https://`` device backend that reads from it.

Servers listen on 127.0.0.1, port 0, and are stopped at the end of each test. Most tests serve a
recording pool (every byte it hands out is kept, so a test can check the client got exactly
those); the last ones serve a real :class:`Pool` on the simulator.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import socket
import ssl
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("aiohttp", reason="the HTTPS endpoint needs the service extra (aiohttp)")
pytest.importorskip("cryptography", reason="test certificates need the cryptography package")

import qitcore
from qitcore.devices.https_client import open_https
from qitcore.errors import (
    DeviceDisconnected,
    DeviceError,
    DeviceNotFound,
    InvalidArgumentError,
    InvalidTypeError,
    ServiceAccessDenied,
    ServiceUnavailable,
    UnsupportedOperationError,
)
from qitcore.kme.limits import ConnectionLimits
from qitcore.kme.pki import local_pki
from qitcore.service import https
from qitcore.service.config import DeviceSettings
from qitcore.service.https import ClientLimits, HttpsServer, HttpsSettings
from qitcore.service.pool import Pool
from qitcore.service.stats import ServiceStats

Pki = dict[str, Path]
CLIENTS = ["client-a", "client-b", "stranger"]


class RecordingPool:
    """Hands out fresh random bytes and remembers them; ``available=False``: no healthy device."""

    epsilon = 2.0**-64

    def __init__(self, *, available: bool = True, buffered: bool = True) -> None:
        self.available, self.buffered = available, buffered
        self.given: list[bytes] = []
        self.lock = threading.Lock()

    def _take(self, n: int) -> bytes:
        data = os.urandom(n)
        with self.lock:
            self.given.append(data)
        return data

    def try_read(self, n: int) -> bytes | None:
        return self._take(n) if self.available and self.buffered else None

    def read(self, n: int, timeout: float | None = None, *, deadline: float | None = None) -> bytes:
        if not self.available:
            time.sleep(min(timeout or 0.0, 0.2))
            raise ServiceUnavailable("no healthy device for 0.2 s (test)")
        return self._take(n)

    def status(self) -> dict[str, Any]:
        return {"buffered": 0, "capacity": 0, "devices": []}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return local_pki(tmp_path_factory.mktemp("pki"), CLIENTS)


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return local_pki(tmp_path_factory.mktemp("other-pki"), ["client-a"])


def settings(pki: Pki, **kwargs: Any) -> HttpsSettings:
    return HttpsSettings(
        cert=str(pki["kme"]), key=str(pki["kme_key"]), ca=str(pki["ca"]), listen="127.0.0.1:0", **kwargs
    )


class Served:
    """A running server, its pool and stats."""

    def __init__(self, server: HttpsServer, pool: Any, stats: ServiceStats) -> None:
        self.server, self.pool, self.stats = server, pool, stats

    @property
    def port(self) -> int:
        return self.server.port


@pytest.fixture
def serve(pki: Pki) -> Iterator[Any]:
    servers: list[HttpsServer] = []

    def start(pool: Any = None, **kwargs: Any) -> Served:
        pool = RecordingPool() if pool is None else pool
        stats = ServiceStats()
        server = HttpsServer(pool, stats, settings(pki, **kwargs))
        servers.append(server)
        server.start()
        return Served(server, pool, stats)

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


def client_context(pki: Pki, who: str | None = "client-a") -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki["ca"]))
    if who is not None:
        context.load_cert_chain(str(pki[who]), str(pki[f"{who}_key"]))
    return context


def get(port: int, target: str, context: ssl.SSLContext, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        conn.request(method, target)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def url(port: int, pki: Pki, who: str = "client-a", extra: str = "") -> str:
    return f"https://127.0.0.1:{port}?cert={pki[who]}&key={pki[who + '_key']}&ca={pki['ca']}{extra}"


# -- the endpoint ------------------------------------------------------------------------------


def test_binary_bytes_are_the_pools_and_are_counted_for_the_clients_cn(serve: Any, pki: Pki) -> None:
    s = serve()
    status, headers, body = get(s.port, "/random?bytes=100", client_context(pki))
    assert status == 200
    assert headers["Content-Type"] == "application/octet-stream"
    assert headers["Cache-Control"] == "no-store"
    assert body == s.pool.given[0] and len(body) == 100
    snap = s.stats.snapshot()
    assert snap["served"] == {"https:client-a": 100}
    assert snap["requests"]["https:client-a"] == {"total": 1, "refused": {}}


@pytest.mark.parametrize("form", ["hex", "base64"])
def test_json_formats_carry_the_bytes_for_scripts(serve: Any, pki: Pki, form: str) -> None:
    s = serve()
    status, headers, body = get(s.port, f"/random?bytes=48&format={form}", client_context(pki))
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    answer = json.loads(body)
    assert answer["format"] == form and answer["bytes"] == 48
    data = bytes.fromhex(answer["data"]) if form == "hex" else base64.b64decode(answer["data"], validate=True)
    assert data == s.pool.given[0]


def test_bytes_come_from_the_blocking_read_when_nothing_is_buffered(serve: Any, pki: Pki) -> None:
    s = serve(RecordingPool(buffered=False))
    status, _, body = get(s.port, "/random?bytes=1000", client_context(pki))
    assert status == 200 and body == s.pool.given[0]


@pytest.mark.parametrize(
    ("target", "words"),
    [
        ("/random", "bytes: missing"),
        ("/random?bytes=abc", "bytes: expected a whole number"),
        ("/random?bytes=-5", "bytes: expected a whole number"),
        ("/random?bytes=0", "bytes: must be at least 1"),
        ("/random?bytes=1e3", "bytes: expected a whole number"),
        ("/random?bytes=99999999999999999999", "bytes: expected a whole number"),
        ("/random?bytes=8&format=xml", "format: expected one of binary, hex, base64"),
        ("/random?bytes=8&colour=red", "unknown query parameter(s) ['colour']"),
        ("/random?bytes=8&bytes=9", "bytes: given more than once"),
    ],
)
def test_bad_queries_get_400_with_a_reason_and_nothing_is_taken(serve: Any, pki: Pki, target: str, words: str) -> None:
    s = serve()
    status, headers, body = get(s.port, target, client_context(pki))
    assert status == 400 and headers["Content-Type"].startswith("application/json")
    assert words in json.loads(body)["error"]
    assert s.pool.given == []
    assert s.stats.snapshot()["requests"]["https:client-a"]["refused"] == {"bad-request": 1}


def test_other_resources_and_methods_are_refused(serve: Any, pki: Pki) -> None:
    s = serve()
    status, _, body = get(s.port, "/keys?bytes=8", client_context(pki))
    assert status == 404 and "GET /random?bytes=N" in json.loads(body)["error"]
    status, headers, _ = get(s.port, "/random?bytes=8", client_context(pki), method="POST")
    assert status == 405 and headers["Allow"] == "GET"
    assert s.pool.given == []


def test_a_cn_not_named_in_clients_gets_403(serve: Any, pki: Pki) -> None:
    s = serve(clients={"client-a": ClientLimits()})
    assert get(s.port, "/random?bytes=8", client_context(pki, "client-a"))[0] == 200
    status, _, body = get(s.port, "/random?bytes=8", client_context(pki, "client-b"))
    assert status == 403 and "client-b is not a client of this service" in json.loads(body)["error"]
    assert len(s.pool.given) == 1
    assert s.stats.snapshot()["requests"]["https:client-b"]["refused"] == {"forbidden": 1}


def test_star_serves_any_cn_the_ca_signed_each_with_its_own_limits(serve: Any, pki: Pki) -> None:
    s = serve(clients={"*": ClientLimits(requests_per_second=0.2)})  # one request, then one per 5 s
    assert get(s.port, "/random?bytes=8", client_context(pki, "client-a"))[0] == 200
    assert get(s.port, "/random?bytes=8", client_context(pki, "client-b"))[0] == 200  # b's bucket, not a's
    assert get(s.port, "/random?bytes=8", client_context(pki, "client-a"))[0] == 429


def test_a_client_without_a_certificate_cannot_connect(serve: Any, pki: Pki) -> None:
    # Authentication before allocation: the handshake itself refuses it, no request is parsed.
    s = serve()
    with pytest.raises((ssl.SSLError, ConnectionError)):
        get(s.port, "/random?bytes=8", client_context(pki, None))
    assert s.pool.given == []
    assert "https" not in s.stats.snapshot()["requests"]


def test_a_certificate_of_another_ca_cannot_connect_and_the_failure_is_logged(
    serve: Any, pki: Pki, other_pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    s = serve()
    context = client_context(pki, None)
    context.load_cert_chain(str(other_pki["client-a"]), str(other_pki["client-a_key"]))
    with caplog.at_level("INFO", logger="qitcore.service.https"):
        for _ in range(3):
            with pytest.raises((ssl.SSLError, ConnectionError)):
                get(s.port, "/random?bytes=8", context)
        other = (
            f"https://127.0.0.1:{s.port}?cert={other_pki['client-a']}&key={other_pki['client-a_key']}&ca={pki['ca']}"
        )
        with pytest.raises(DeviceError, match="is the client certificate one the service's CA signed|TLS failed"):
            qitcore.open(other)
        time.sleep(0.2)
    assert s.pool.given == []
    lines = [r.getMessage() for r in caplog.records if "TLS handshake" in r.getMessage()]
    assert len(lines) == 1 and "failed" in lines[0]  # one line, not one per connection


def test_client_classes_are_bounded_in_length_and_in_number(pki: Pki) -> None:
    server = HttpsServer(
        RecordingPool(), ServiceStats(), settings(pki, clients={"*": ClientLimits(), "named": ClientLimits()})
    )
    try:
        long = "x" * 300
        assert server._class(None) == "https"
        assert server._class("client-a") == "https:client-a"
        name = server._class(long)
        assert name.startswith("https:" + "x" * 32 + "~") and len(name) < 60
        assert server._class(long + "y") not in (name, "https:other")  # distinct CNs, distinct classes
        assert server._class("tab\there").startswith("https:tab?here~")
        assert server._class("other") != "https:other"  # no CN can pass for the overflow class
        for i in range(https.MAX_CLIENT_CLASSES):
            server._class(f"cn-{i}")
        assert server._class("one-too-many") == "https:other"
        assert server._class("client-a") == "https:client-a"  # seen before: keeps its class
        assert server._class("named") == "https:named"  # named in the configuration: always its own
        ServiceStats().served(server._class("z" * 10_000), 1)  # a name the stats accept
    finally:
        server.stop()


def test_requests_over_the_rate_get_429_with_retry_after(serve: Any, pki: Pki) -> None:
    s = serve(clients={"*": ClientLimits(requests_per_second=0.5)})  # one request, then one per 2 s
    answers = [get(s.port, "/random?bytes=8", client_context(pki)) for _ in range(2)]
    assert [a[0] for a in answers] == [200, 429]
    assert int(answers[1][1]["Retry-After"]) >= 1
    assert "over 0.5 requests a second" in json.loads(answers[1][2])["error"]
    assert s.stats.snapshot()["requests"]["https:client-a"]["refused"] == {"rate": 1}


def test_bytes_over_the_rate_get_429_and_a_refused_request_costs_no_bytes(serve: Any, pki: Pki) -> None:
    # A bucket of 1000 bytes (one largest request) refilled at 100 a second.
    s = serve(clients={"*": ClientLimits(bytes_per_second=100, max_request=1000)})
    context = client_context(pki)
    assert get(s.port, "/random?bytes=900", context)[0] == 200
    status, headers, body = get(s.port, "/random?bytes=900", context)
    assert status == 429 and "over 100 bytes a second" in json.loads(body)["error"]
    assert int(headers["Retry-After"]) >= 1
    assert get(s.port, "/random?bytes=50", context)[0] == 200  # the refused 900 were not taken
    assert [len(b) for b in s.pool.given] == [900, 50]


def test_a_request_larger_than_the_clients_largest_gets_413_naming_it(serve: Any, pki: Pki) -> None:
    s = serve(clients={"*": ClientLimits(max_request=4096)})
    status, _, body = get(s.port, "/random?bytes=4097", client_context(pki))
    answer = json.loads(body)
    assert status == 413 and answer["max_request"] == 4096 and "largest request, 4096" in answer["error"]


def test_no_healthy_device_gets_503_with_the_reason(serve: Any, pki: Pki) -> None:
    s = serve(RecordingPool(available=False), wait=0.2)
    status, headers, body = get(s.port, "/random?bytes=8", client_context(pki))
    assert status == 503 and "no healthy device" in json.loads(body)["error"]
    assert int(headers["Retry-After"]) >= 1
    assert s.stats.snapshot()["requests"]["https:client-a"]["refused"] == {"unavailable": 1}


class StuckPool(RecordingPool):
    """No healthy device: a read waits its whole timeout, then fails; counts reads under way."""

    def __init__(self) -> None:
        super().__init__(available=False)
        self.waited: list[float] = []

    def read(self, n: int, timeout: float | None = None, *, deadline: float | None = None) -> bytes:
        # As Pool.read: until the earlier of timeout and deadline; at once past the deadline.
        assert timeout is not None and deadline is not None
        left = min(timeout, deadline - time.monotonic())
        if left > 0:
            with self.lock:
                self.waited.append(left)
            time.sleep(left)
        raise ServiceUnavailable(f"no healthy device for {max(left, 0):.2f} s (test)")


def test_the_wait_counts_from_the_requests_arrival_not_from_its_turn_in_the_queue(serve: Any, pki: Pki) -> None:
    # Three times as many waiting requests as worker threads: without the deadline fixed at
    # arrival, the last ones would wait their turn (a whole wait per round) and then the wait again.
    wait, count = 1.0, 3 * 8
    s = serve(StuckPool(), wait=wait, clients={"*": ClientLimits(requests_per_second=1000)})
    context = client_context(pki)
    times: list[float] = []
    statuses: list[int] = []

    def one() -> None:
        began = time.monotonic()
        status, _, _ = get(s.port, "/random?bytes=8", context)
        with s.pool.lock:
            times.append(time.monotonic() - began)
            statuses.append(status)

    threads = [threading.Thread(target=one) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert statuses == [503] * count
    assert max(times) < 2 * wait, sorted(times)  # a round and a half at most; 3 s without the fix
    assert all(0 < w <= wait for w in s.pool.waited)
    # The requests queued behind the first eight had only what was left of their wait, if anything.
    assert sum(w > wait / 2 for w in s.pool.waited) <= 8, sorted(s.pool.waited)


def test_open_connections_are_counted_and_bounded_per_address(serve: Any, pki: Pki) -> None:
    limits = ConnectionLimits(max_connections=4, max_per_address=2)
    s = serve(connections=limits)
    context = client_context(pki)
    conns = [http.client.HTTPSConnection("127.0.0.1", s.port, context=context, timeout=10) for _ in range(3)]
    try:
        for conn in conns[:2]:
            conn.request("GET", "/random?bytes=8")
            assert conn.getresponse().read()
        assert s.stats.snapshot()["clients"]["https"]["open"] == 2
        with pytest.raises((ssl.SSLError, ConnectionError)):  # the third from this address is closed
            conns[2].request("GET", "/random?bytes=8")
            conns[2].getresponse()
    finally:
        for conn in conns:
            conn.close()
    deadline = time.monotonic() + 5
    while s.stats.snapshot()["clients"]["https"]["open"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert s.stats.snapshot()["clients"]["https"] == {"open": 0, "total": 2}


def stuck_reader(port: int, context: ssl.SSLContext, requests: int) -> ssl.SSLSocket:
    """A TLS connection with a small receive buffer that pipelines ``requests`` large requests
    and never reads a reply."""
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.settimeout(10)
    raw.connect(("127.0.0.1", port))
    conn = context.wrap_socket(raw, server_hostname="127.0.0.1")
    conn.sendall(b"GET /random?bytes=65536 HTTP/1.1\r\nHost: x\r\n\r\n" * requests)
    return conn


def test_clients_that_never_read_their_replies_are_cut_off_at_the_write_deadline(serve: Any, pki: Pki) -> None:
    limits = ConnectionLimits(
        max_connections=4, max_per_address=4, handshake_timeout=5, header_timeout=5, body_timeout=5,
        idle_timeout=5, write_timeout=1.0,
    )  # fmt: skip
    greedy = ClientLimits(bytes_per_second=1e9, requests_per_second=1e6, max_request=1 << 16)
    s = serve(connections=limits, clients={"*": greedy})
    context = client_context(pki)
    stuck = [stuck_reader(s.port, context, 64) for _ in range(4)]
    try:
        deadline = time.monotonic() + 5
        while s.stats.snapshot()["clients"]["https"]["open"] < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert s.stats.snapshot()["clients"]["https"]["open"] == 4  # every place is held
        began = time.monotonic()
        # An honest client waits in the backlog, then is served once the stuck ones are cut off.
        status, _, body = get(s.port, "/random?bytes=32", context)
        assert status == 200 and len(body) == 32
        assert time.monotonic() - began < 4  # the write deadline (1 s), not the idle one (5 s) or never
        deadline = time.monotonic() + 5
        while s.stats.snapshot()["clients"]["https"]["open"] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert s.stats.snapshot()["clients"]["https"]["open"] == 0
        for conn in stuck:  # each was aborted: it ends after fewer replies than it asked for
            conn.settimeout(5)
            received = 0
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                while chunk := conn.recv(1 << 16):
                    received += len(chunk)
            assert received < 64 * 65536
    finally:
        for conn in stuck:
            conn.close()


def test_stop_is_idempotent_and_closes_the_port(pki: Pki) -> None:
    server = HttpsServer(RecordingPool(), ServiceStats(), settings(pki))
    server.stop()  # before start: allowed
    server = HttpsServer(RecordingPool(), ServiceStats(), settings(pki))
    server.start()
    port = server.port
    with pytest.raises(InvalidArgumentError, match="cannot start a server that is running"):
        server.start()
    server.stop()
    server.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_settings_are_checked_by_name(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="https listen"):
        HttpsSettings(cert="c", key="k", ca="a", listen="nowhere")
    with pytest.raises(InvalidTypeError, match=r"https clients\['x'\]: expected ClientLimits"):
        settings(pki, clients={"x": {"max_request": 5}})
    with pytest.raises(InvalidArgumentError, match="https wait: expected a value above 0 and at most 60"):
        settings(pki, wait=61)
    with pytest.raises(InvalidArgumentError, match=r"https cert: missing \(the server's certificate, a PEM file\)"):
        HttpsSettings(listen="127.0.0.1:0")  # type: ignore[call-arg]
    with pytest.raises(InvalidArgumentError, match=r"at most 1048576, got 2000000"):
        ClientLimits(max_request=2_000_000)
    for what in ("cert", "key", "ca"):
        files = {
            "cert": str(pki["kme"]),
            "key": str(pki["kme_key"]),
            "ca": str(pki["ca"]),
            what: str(tmp_path / "nope.pem"),
        }
        with pytest.raises(InvalidArgumentError, match=rf"https {what}: .*nope.pem: no such file"):
            HttpsServer(RecordingPool(), ServiceStats(), HttpsSettings(listen="127.0.0.1:0", **files))
    with pytest.raises(InvalidArgumentError, match="max_request"):
        ClientLimits(max_request=(1 << 20) + 1)
    with pytest.raises(InvalidArgumentError, match="bytes_per_second"):
        ClientLimits(bytes_per_second=0)
    with pytest.raises(InvalidTypeError, match="requests_per_second"):
        ClientLimits(requests_per_second=True)
    with pytest.raises(InvalidArgumentError, match="https cert: .*no.pem: no such file"):
        HttpsServer(RecordingPool(), ServiceStats(), HttpsSettings(cert=str(tmp_path / "no.pem"), key="k", ca="a"))


# -- the https:// backend ----------------------------------------------------------------------


def test_open_https_reads_exactly_the_bytes_the_service_served(serve: Any, pki: Pki) -> None:
    s = serve()
    with qitcore.open(url(s.port, pki, extra="&chunk=4096")) as stream:
        data = stream.read(10_000)
    assert len(data) == 10_000
    # The stream hands the service's bytes out in order; it read ahead, so they are a prefix.
    assert b"".join(s.pool.given).startswith(data)
    assert all(len(b) == 4096 for b in s.pool.given)


def test_open_https_takes_the_certificate_as_keywords(serve: Any, pki: Pki) -> None:
    s = serve()
    address = f"https://127.0.0.1:{s.port}"
    with open_https(address, cert=str(pki["client-b"]), key=str(pki["client-b_key"]), ca=str(pki["ca"])) as stream:
        assert len(stream.read(64)) == 64
    assert "https:client-b" in s.stats.snapshot()["served"]
    with pytest.raises(InvalidArgumentError, match="without a query"):
        open_https(address + "?chunk=5", cert="c")


def test_a_client_the_service_refuses_gets_service_access_denied(serve: Any, pki: Pki) -> None:
    s = serve(clients={"client-a": ClientLimits()})
    with pytest.raises(ServiceAccessDenied, match="refuses this client: stranger is not a client"):
        qitcore.open(url(s.port, pki, "stranger"))


def test_no_service_is_device_not_found_and_no_healthy_device_is_service_unavailable(serve: Any, pki: Pki) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    with pytest.raises(DeviceNotFound, match="no service answers there"):
        qitcore.open(url(free, pki))
    s = serve(RecordingPool(available=False), wait=0.1)
    with pytest.raises(ServiceUnavailable, match="no healthy device"):
        qitcore.open(url(s.port, pki), timeout=0.5)


def test_the_client_adapts_its_requests_to_the_largest_the_service_allows(serve: Any, pki: Pki) -> None:
    s = serve(clients={"*": ClientLimits(max_request=1000)})
    with qitcore.open(url(s.port, pki, extra="&chunk=65536")) as stream:
        assert len(stream.read(3000)) == 3000
        assert stream.info["chunk"] == 1000


def test_the_service_going_away_ends_the_stream_with_device_disconnected(serve: Any, pki: Pki) -> None:
    s = serve()
    stream = qitcore.open(url(s.port, pki, extra="&chunk=1024"), buffer_bytes=4096)
    try:
        stream.read(100)
        s.server.stop()
        with pytest.raises(DeviceDisconnected, match="127.0.0.1"):
            for _ in range(100):
                stream.read(4096, timeout=10)
    finally:
        stream.close()


def test_the_client_checks_its_parameters_before_connecting(pki: Pki) -> None:
    with pytest.raises(InvalidArgumentError, match="cert: the service needs a client certificate"):
        qitcore.open("https://127.0.0.1:1")
    with pytest.raises(InvalidArgumentError, match="chunk"):
        qitcore.open(url(1, pki, extra="&chunk=0"))
    with pytest.raises(InvalidArgumentError, match="colour"):
        qitcore.open(url(1, pki, extra="&colour=red"))
    with pytest.raises(InvalidArgumentError, match="cannot load"):
        qitcore.open(f"https://127.0.0.1:1?cert={pki['client-a']}&key={pki['ca']}")
    with pytest.raises(UnsupportedOperationError, match="raw samples"):
        qitcore.open_raw(url(1, pki))


def test_conditioning_options_are_refused_rather_than_ignored(pki: Pki) -> None:
    with pytest.raises(InvalidArgumentError, match="epsilon: the service conditions its devices' samples"):
        qitcore.open(url(1, pki, extra="&epsilon=1e-30"))
    with pytest.raises(InvalidArgumentError, match="min_entropy: the service conditions"):
        qitcore.open(url(1, pki), min_entropy=5.0)
    with pytest.raises(InvalidArgumentError, match="extractor_seed"):
        open_https("https://127.0.0.1:1", cert=str(pki["client-a"]), extractor_seed=bytes(64))


def test_the_services_503_does_not_race_the_clients_timeout(serve: Any, pki: Pki) -> None:
    # The service answers 503 at its wait; a client whose timeout is that wait still gets the 503
    # (ServiceUnavailable), not a timeout of its own connection.
    s = serve(StuckPool(), wait=0.5)
    with pytest.raises(ServiceUnavailable, match="no healthy device"):
        qitcore.open(url(s.port, pki), timeout=0.5)


class Misbehaving:
    """A TLS server on 127.0.0.1 that answers every request with ``head`` and then body bytes
    without end (for up to ``seconds``), as a broken service or proxy might."""

    def __init__(self, pki: Pki, head: bytes, *, chunked: bool, seconds: float = 6.0) -> None:
        self.head, self.chunked, self.seconds = head, chunked, seconds
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(str(pki["kme"]), str(pki["kme_key"]))
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.sent = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                raw, _ = self.sock.accept()
            except TimeoutError:
                continue
            with contextlib.suppress(OSError, ssl.SSLError):
                raw.settimeout(2)
                with self.context.wrap_socket(raw, server_side=True) as conn:
                    conn.recv(4096)
                    conn.sendall(self.head)
                    piece = b"1000\r\n" + bytes(4096) + b"\r\n" if self.chunked else bytes(4096)
                    end = time.monotonic() + self.seconds
                    while not self.stop.is_set() and time.monotonic() < end:
                        conn.sendall(piece)
                        self.sent += len(piece)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        self.sock.close()


@pytest.mark.parametrize(
    ("head", "chunked", "error", "words"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n", False, DeviceError, "announced 100000000 bytes"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", True, DeviceError, "more than the 1024 bytes"),
        (
            b"HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\n\r\n", True, ServiceUnavailable,
            "Service Unavailable|Busy|error",
        ),
    ],
)  # fmt: skip
def test_replies_without_end_are_read_only_as_far_as_they_are_needed(
    pki: Pki, head: bytes, chunked: bool, error: type[Exception], words: str
) -> None:
    server = Misbehaving(pki, head, chunked=chunked)
    try:
        began = time.monotonic()
        with pytest.raises(error, match=words):
            qitcore.open(url(server.port, pki, extra="&chunk=1024"), timeout=1.0)
        assert time.monotonic() - began < 4  # not the server's 6 s of body, nor its 100 MB
    finally:
        server.close()


# -- on a real pool ----------------------------------------------------------------------------


def test_two_clients_on_a_real_pool_never_get_the_same_bytes(serve: Any, pki: Pki) -> None:
    pool = Pool([DeviceSettings("sim://?rate=4e6")], buffer_bytes=1 << 18)
    pool.start()
    try:
        s = serve(pool)
        with (
            qitcore.open(url(s.port, pki, "client-a", "&chunk=8192")) as a,
            qitcore.open(url(s.port, pki, "client-b", "&chunk=8192")) as b,
        ):
            got = [a.read(100_000, timeout=20), b.read(100_000, timeout=20)]
    finally:
        pool.close()
    blocks = [data[i : i + 16] for data in got for i in range(0, len(data), 16)]
    assert len(blocks) == 12_500 and len(set(blocks)) == len(blocks)
    served = s.stats.snapshot()["served"]
    assert served["https:client-a"] >= 100_000 and served["https:client-b"] >= 100_000


def test_without_aiohttp_the_server_says_what_to_install(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "aiohttp", None)  # as if not installed: importing it fails
    monkeypatch.delitem(sys.modules, "qitcore._https_listener", raising=False)
    with pytest.raises(
        DeviceError, match=r"aiohttp, part of qitcore's service extra: pip install 'qitcore\[service\]'"
    ):
        HttpsServer(RecordingPool(), ServiceStats(), settings(pki))


def test_the_rate_buckets_stay_bounded_whatever_the_number_of_clients() -> None:
    """One bucket pair per client CN, at most MAX_BUCKETS: at the bound, CNs whose buckets have
    refilled are forgotten; when none has (every one a recent client, here at 1 KiB/s, so none
    refills for a minute), a new CN is answered 503 rather than the map growing with every CN
    the CA signs, and nobody's limits are lifted."""
    from qitcore.service import https

    server = https.HttpsServer.__new__(https.HttpsServer)  # the bucket map alone, no listener
    server._clients = {}
    server.settings = type("Settings", (), {"clients": {"*": https.ClientLimits(bytes_per_second=1024)}})()
    for i in range(https.MAX_BUCKETS):
        client = server._client(f"client-{i}")
        assert client is not None
        client.bytes.take(1 << 16)
    with pytest.raises(https._Refusal) as refused:
        server._client("one-more")
    assert refused.value.status == 503 and len(server._clients) == https.MAX_BUCKETS
    assert server._client("client-7") is server._clients["client-7"]  # known clients go on
    server.settings.clients = {"*": https.ClientLimits()}
    for i in range(10):  # buckets that have refilled are forgotten, making room
        server._clients[f"client-{i}"] = https._Client(https.ClientLimits())
    assert server._client("one-more") is not None
    assert len(server._clients) <= https.MAX_BUCKETS
