"""The daemon's Unix socket: the wire format (round trips, hostile headers), the server (each request
answered whole and in order, bounds on clients, time and size, the socket file's permissions,
stale and foreign files at its path) and DaemonClient's errors, against a real Pool on the
simulator."""

from __future__ import annotations

import contextlib
import grp
import json
import logging
import os
import shutil
import signal
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import qitcore
from hypothesis import given
from hypothesis import strategies as st
from qitcore.errors import (
    DeviceBusy,
    DeviceError,
    DeviceNotFound,
    InvalidArgumentError,
    ProtocolError,
    ServiceAccessDenied,
    ServiceUnavailable,
)
from qitcore.service import local, protocol
from qitcore.service.client import DaemonClient
from qitcore.service.config import DeviceSettings
from qitcore.service.local import LocalServer, LocalSettings
from qitcore.service.pool import MAX_REQUEST, Pool
from qitcore.service.protocol import (
    MAX_ERROR,
    MAX_READ,
    REPLY_SIZE,
    REQUEST_SIZE,
    Op,
    Request,
    Status,
    decode_reply,
    decode_request,
    encode_reply,
    encode_request,
)
from qitcore.service.stats import ServiceStats

# -- the wire format -------------------------------------------------------------------------------


@given(op=st.sampled_from(Op), length=st.integers(0, 2**32 - 1), wait=st.integers(0, 2**32 - 1))
def test_a_request_header_decodes_to_what_was_encoded(op: Op, length: int, wait: int) -> None:
    if op is Op.STATUS:
        length = 0
    header = encode_request(op, length, wait)
    assert len(header) == REQUEST_SIZE == 16
    assert decode_request(header) == Request(op, length, wait)


@given(status=st.sampled_from(Status), length=st.integers(0, MAX_ERROR))
def test_a_reply_header_decodes_to_what_was_encoded(status: Status, length: int) -> None:
    payload = bytes(length)
    header = encode_reply(status, payload)
    assert len(header) == REPLY_SIZE == 12
    reply = decode_reply(header, Request(Op.READ, length))
    assert (reply.status, reply.length) == (status, length)


def test_the_header_layout_is_the_documented_one() -> None:
    assert encode_request(Op.READ, 32, 1500) == b"QITC\x01\x01\x00\x00" + (32).to_bytes(4, "big") + (1500).to_bytes(
        4, "big"
    )
    assert encode_reply(Status.UNAVAILABLE, b"why") == b"QITC\x01\x01\x00\x00\x00\x00\x00\x03"


@pytest.mark.parametrize(
    ("header", "match"),
    [
        (b"", "16-byte header"),
        (b"QITC\x01\x01\x00\x00\x00\x00", "16-byte header"),
        (b"GET / HTTP/1.1\r\n", "bad magic"),
        (b"QITC\x02\x01\x00\x00" + bytes(8), "protocol version 2"),
        (b"QITC\x01\x07\x00\x00" + bytes(8), "unknown op 7"),
        (b"QITC\x01\x01\x00\x01" + bytes(8), "reserved"),
        (b"QITC\x01\x02\x00\x00\x00\x00\x00\x05" + bytes(4), "STATUS request has length 0"),
    ],
)
def test_malformed_request_headers_are_refused_naming_what_is_wrong(header: bytes, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        decode_request(header)


@given(st.binary(min_size=16, max_size=16))
def test_any_sixteen_bytes_decode_or_raise_protocol_error(header: bytes) -> None:
    try:
        request = decode_request(header)
    except ProtocolError:
        return
    assert header[:4] == b"QITC" and request.op in Op


def test_replies_announcing_what_the_request_does_not_allow_are_refused() -> None:
    read32 = Request(Op.READ, 32)
    with pytest.raises(ProtocolError, match="33 bytes announced for a READ of 32"):
        decode_reply(b"QITC\x01\x00\x00\x00" + (33).to_bytes(4, "big"), read32)
    with pytest.raises(ProtocolError, match="error reason"):
        decode_reply(b"QITC\x01\x01\x00\x00" + (MAX_ERROR + 1).to_bytes(4, "big"), read32)
    with pytest.raises(ProtocolError, match="status document"):
        decode_reply(b"QITC\x01\x00\x00\x00" + (2**32 - 1).to_bytes(4, "big"), Request(Op.STATUS, 0))
    with pytest.raises(ProtocolError, match="unknown status 9"):
        decode_reply(b"QITC\x01\x09\x00\x00" + bytes(4), read32)
    with pytest.raises(ProtocolError, match="not a qitcore daemon"):
        decode_reply(b"HTTP/1.1 200", read32)


def test_encoding_refuses_values_that_do_not_fit() -> None:
    with pytest.raises(InvalidArgumentError, match="length"):
        encode_request(Op.READ, 2**32)
    with pytest.raises(InvalidArgumentError, match="wait_ms"):
        encode_request(Op.READ, 1, -1)
    with pytest.raises(InvalidArgumentError, match="STATUS"):
        encode_request(Op.STATUS, 5)
    with pytest.raises(InvalidArgumentError, match="error reason"):
        encode_reply(Status.INTERNAL, bytes(MAX_ERROR + 1))
    assert len(protocol.reason_bytes("é" * 5000)) <= MAX_ERROR
    assert MAX_READ == MAX_REQUEST


def test_the_default_socket_paths(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("QITCORE_SOCKET", "/somewhere/q.sock")
    assert protocol.default_socket_path() == "/somewhere/q.sock"
    assert protocol.client_socket_paths() == ["/somewhere/q.sock"]
    monkeypatch.delenv("QITCORE_SOCKET")
    monkeypatch.setattr(os, "getuid", lambda: 0)
    assert protocol.default_socket_path() == "/run/qitcore/qitcored.sock"
    monkeypatch.setattr(os, "getuid", lambda: 1234)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert protocol.default_socket_path() == str(tmp_path / "qitcored.sock")
    # A client looks for the system daemon first, then the user's own.
    assert protocol.client_socket_paths() == ["/run/qitcore/qitcored.sock", str(tmp_path / "qitcored.sock")]
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    # No fallback to a folder others may write to (/tmp): a user without a runtime folder names it.
    with pytest.raises(InvalidArgumentError, match=r"no default path for uid 1234: XDG_RUNTIME_DIR is not set"):
        protocol.default_socket_path()
    with pytest.raises(InvalidArgumentError, match="--socket PATH"):
        LocalSettings()
    assert protocol.client_socket_paths() == ["/run/qitcore/qitcored.sock"]
    monkeypatch.setenv("XDG_RUNTIME_DIR", "relative/dir")
    assert protocol.client_socket_paths() == ["/run/qitcore/qitcored.sock"]


def test_settings_are_checked() -> None:
    with pytest.raises(InvalidArgumentError, match="mode"):
        LocalSettings(path="/tmp/x.sock", mode=0o1777)
    with pytest.raises(InvalidArgumentError, match="mode"):
        LocalSettings(path="/tmp/x.sock", mode="rw")  # type: ignore[arg-type]
    assert LocalSettings(path="/tmp/x.sock", mode="0640").mode == 0o640  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="max_clients"):
        LocalSettings(path="/tmp/x.sock", max_clients=0)
    with pytest.raises(InvalidArgumentError, match="idle_timeout"):
        LocalSettings(path="/tmp/x.sock", idle_timeout=float("inf"))
    with pytest.raises(InvalidArgumentError, match="107 bytes"):
        LocalSettings(path="/tmp/" + "x" * 200)


# -- the server --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pool() -> Iterator[Pool]:
    stats = ServiceStats()
    p = Pool([DeviceSettings("sim://", {})], buffer_bytes=4 << 20, stats=stats)
    p.start()
    try:
        p.read(1, timeout=20)  # healthy: start-up tests passed
        yield p
    finally:
        p.close()


class Served:
    """A LocalServer on a tmp socket, stopped at the end of the test."""

    def __init__(self, pool: Pool, path: Path, **settings: object) -> None:
        self.stats = ServiceStats()
        self.settings = LocalSettings(path=str(path), **settings)  # type: ignore[arg-type]
        self.server = LocalServer(pool, self.stats, self.settings, lambda: {"pool": pool.status(), "hello": "world"})

    @property
    def path(self) -> str:
        return self.settings.path

    def connect(self) -> socket.socket:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(self.path)
        return s


@pytest.fixture
def served(pool: Pool, tmp_path: Path) -> Iterator[Served]:
    s = Served(pool, tmp_path / "q.sock", idle_timeout=2.0, max_clients=8)
    s.server.start()
    try:
        yield s
    finally:
        s.server.stop()


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise EOFError(f"closed after {len(out)} of {n} bytes")
        out += chunk
    return bytes(out)


def reply_of(sock: socket.socket, request: Request) -> tuple[Status, bytes]:
    reply = decode_reply(recv_exactly(sock, REPLY_SIZE), request)
    return reply.status, recv_exactly(sock, reply.length)


def wait_until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def closed_by_peer(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_a_read_gets_exactly_the_bytes_asked_for(served: Served) -> None:
    with DaemonClient(served.path) as c:
        for n in (0, 1, 32, 100_000, MAX_READ):
            assert len(c.read(n)) == n
        # Larger than one request: split and pipelined by the client.
        assert len(c.read(MAX_READ * 2 + 5)) == MAX_READ * 2 + 5
        buf = bytearray(1000)
        assert c.readinto(buf) == 1000 and buf != bytes(1000)
    wait_until(lambda: served.server.clients == 0)
    snap = served.stats.snapshot()
    assert snap["served"]["local"] == 1 + 32 + 100_000 + MAX_READ + MAX_READ * 2 + 5 + 1000
    assert snap["clients"]["local"] == {"open": 0, "total": 1}


def test_pipelined_requests_are_answered_whole_and_in_order(served: Served) -> None:
    sizes = [7, 0, 65_536, 1, 300_000, 32]
    with served.connect() as s:
        s.sendall(b"".join(encode_request(Op.READ, n) for n in sizes) + encode_request(Op.STATUS))
        for n in sizes:
            status, data = reply_of(s, Request(Op.READ, n))
            assert status is Status.OK and len(data) == n
        status, doc = reply_of(s, Request(Op.STATUS, 0))
        assert status is Status.OK and json.loads(doc)["hello"] == "world"


def test_pipelined_reads_from_the_client_come_back_in_order(served: Served) -> None:
    from qitcore.errors import UnsupportedOperationError

    with DaemonClient(served.path) as c:
        for n in (10, 0, 5000):
            c.send_read(n)
        assert c.pending == 3
        with pytest.raises(UnsupportedOperationError, match="3 replies to send_read"):
            c.read(1)
        buf = bytearray(5000)
        assert [c.receive_into(buf) for _ in range(3)] == [10, 0, 5000]
        assert c.pending == 0
        with pytest.raises(UnsupportedOperationError, match="no request"):
            c.receive_into(buf)
        with pytest.raises(InvalidArgumentError, match="n:"):
            c.send_read(MAX_READ + 1)
        c.send_read(100)
        with pytest.raises(InvalidArgumentError, match="too small"):
            c.receive_into(bytearray(99))
        assert c.receive_into(bytearray(100)) == 100 and len(c.read(8)) == 8


def test_a_request_above_the_largest_is_refused_and_the_connection_kept(served: Served) -> None:
    with served.connect() as s:
        for n in (MAX_READ + 1, 2**32 - 1):
            s.sendall(encode_request(Op.READ, n))
            status, reason = reply_of(s, Request(Op.READ, n))
            assert (
                status is Status.TOO_LARGE
                and reason == f"read: at most 1048576 bytes a request, got {n}; split it".encode()
            )
        s.sendall(encode_request(Op.READ, 16))
        assert reply_of(s, Request(Op.READ, 16))[0] is Status.OK
    assert served.stats.snapshot()["requests"]["local"]["refused"]["too-large"] == 2


@pytest.mark.parametrize(
    "garbage",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"QITC\x09\x01\x00\x00" + bytes(8),
        b"\xff" * 16,
        b"QITC\x01\x03" + bytes(10),
    ],
)
def test_a_malformed_request_gets_a_reason_then_the_connection_closes(served: Served, garbage: bytes) -> None:
    with served.connect() as s:
        s.sendall(garbage)
        status, reason = reply_of(s, Request(Op.READ, 0))
        assert status is Status.BAD_REQUEST and reason.startswith(b"request: ")
        assert closed_by_peer(s)
    with DaemonClient(served.path) as c:
        assert len(c.read(32)) == 32  # the server is still up


def test_truncated_headers_and_vanishing_clients_leave_the_server_serving(served: Served) -> None:
    for part in (b"Q", b"QITC\x01\x01", encode_request(Op.READ, 1 << 20)):
        s = served.connect()
        # Gone before taking its 1 MiB reply: refusing to receive first makes the daemon's write
        # fail whenever it comes (a reply that fits the kernel's buffer before a close would not).
        s.shutdown(socket.SHUT_RD)
        s.sendall(part)
        s.close()  # gone mid-header, or without its reply
    # The 1 MiB taken for the client that left went to nobody: counted as discarded.
    wait_until(lambda: served.stats.snapshot()["discarded"] >= 1 << 20)
    # A client that never reads its replies: its socket buffer fills, the daemon gives up on it.
    hog = served.connect()
    hog.sendall(encode_request(Op.READ, MAX_READ) * 8)
    time.sleep(0.2)
    with DaemonClient(served.path) as c:
        assert len(c.read(4096)) == 4096
    hog.close()


def test_slow_and_idle_clients_are_closed_after_the_idle_timeout(served: Served) -> None:
    idle = served.connect()
    slow = served.connect()
    started = time.monotonic()
    # A byte a second: the header never completes within the 2-second idle timeout.
    for b in encode_request(Op.READ, 8)[:3]:
        slow.sendall(bytes([b]))
        time.sleep(0.8)
    assert closed_by_peer(idle) and closed_by_peer(slow)
    assert time.monotonic() - started < 6
    idle.close()
    slow.close()


def test_a_read_beyond_the_largest_is_refused_before_anything_is_allocated(served: Served) -> None:
    with DaemonClient(served.path) as c:
        for n in (2**32 + 1, 2**62, 2**63):
            with pytest.raises(InvalidArgumentError, match="at most 4294967296"):
                c.read(n)
        assert len(c.read(1)) == 1


def test_clients_that_never_take_their_replies_leave_nothing_open(served: Served) -> None:
    """Clients that pipeline 1 MiB reads and never read: each is closed after the idle timeout
    and its connection and unsent reply go with it (close() alone kept them for as long as the
    client kept its end, past max_clients)."""
    fds = lambda: len(os.listdir("/proc/self/fd"))  # noqa: E731 (the server runs in this process)
    before = fds()
    held = []
    for _ in range(3):
        for _ in range(4):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(served.path)
            s.sendall(encode_request(Op.READ, 1 << 20) * 4)
            held.append(s)
        wait_until(lambda: served.server.clients == 0, 10)
    try:
        # The clients' own sockets are all that is left open.
        wait_until(lambda: fds() <= before + len(held), 5)
    finally:
        for s in held:
            s.close()
    with DaemonClient(served.path) as c:
        assert len(c.read(1)) == 1


def test_clients_beyond_max_clients_are_told_busy_and_closed(served: Served) -> None:
    # This user is the daemon's: it has RESERVED connections beyond max_clients (8 here).
    held = [served.connect() for _ in range(8 + local.RESERVED)]
    try:
        for s in held:  # each connection accepted and served
            s.sendall(encode_request(Op.READ, 1))
            assert reply_of(s, Request(Op.READ, 1))[0] is Status.OK
        with DaemonClient(served.path) as extra, pytest.raises(DeviceBusy, match="too many clients"):
            extra.read(1)
    finally:
        for s in held:
            s.close()
    wait_until(lambda: served.server.clients == 0)
    with DaemonClient(served.path) as c:
        assert len(c.read(1)) == 1  # room again once they left
    assert served.stats.snapshot()["requests"]["local"]["refused"]["busy"] == 1


def test_concurrent_clients_get_disjoint_bytes(served: Served) -> None:
    results: list[bytes] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def client() -> None:
        try:
            with DaemonClient(served.path) as c:
                got = [c.read(4096) for _ in range(64)]
            with lock:
                results.extend(got)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    data = b"".join(results)
    assert len(data) == 8 * 64 * 4096
    blocks = {data[i : i + 16] for i in range(0, len(data), 16)}
    assert len(blocks) == len(data) // 16  # no 16-byte block served twice


def test_status_is_the_daemons_json(served: Served) -> None:
    with DaemonClient(served.path) as c:
        doc = c.status()
    assert doc["hello"] == "world" and doc["pool"]["devices"][0]["url"] == "sim://"


def test_the_peer_is_logged_at_debug_with_its_uid(served: Served, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="qitcore.service.local"), DaemonClient(served.path) as c:
        c.read(1)
    assert f"uid {os.getuid()} pid {os.getpid()}" in caplog.text


def test_no_healthy_device_is_answered_unavailable_with_the_reason(tmp_path: Path) -> None:
    absent = Pool([DeviceSettings(f"file://{tmp_path}/absent.qdp", {})], stats=ServiceStats())
    absent.start()
    s = Served(absent, tmp_path / "q.sock")
    s.server.start()
    try:
        with DaemonClient(s.path, timeout=0.3) as c:
            started = time.monotonic()
            with pytest.raises(ServiceUnavailable, match="no healthy device") as info:
                c.read(32)
            assert time.monotonic() - started < 3
            assert s.path in str(info.value)
            assert len(c.status()["pool"]["devices"]) == 1  # the connection goes on
        assert s.stats.snapshot()["requests"]["local"]["refused"]["unavailable"] == 1
    finally:
        s.server.stop()
        absent.close()


@contextlib.contextmanager
def _waiting_readers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int) -> Iterator[Served]:
    """A server with ``workers`` readers over a pool with no device: every read waits its whole
    wait on a reader, then is answered UNAVAILABLE."""
    monkeypatch.setattr(local, "_WORKERS", workers)
    absent = Pool([DeviceSettings(f"file://{tmp_path}/absent.qdp", {})], stats=ServiceStats())
    absent.start()
    s = Served(absent, tmp_path / "q.sock")
    s.server.start()
    try:
        yield s
    finally:
        s.server.stop()
        absent.close()


def _timed_read(s: Served, wait_ms: int) -> tuple[Status, float, bytes]:
    """One READ of 32 bytes allowing ``wait_ms``: its status, how long it took, its payload."""
    with s.connect() as sock:
        request = Request(Op.READ, 32, wait_ms)
        started = time.monotonic()
        sock.sendall(encode_request(request.op, request.length, request.wait_ms))
        status, payload = reply_of(sock, request)
        return status, time.monotonic() - started, payload


def _in_threads(work: Callable[[], object], count: int) -> list[threading.Thread]:
    threads = [threading.Thread(target=work) for _ in range(count)]
    for t in threads:
        t.start()
    return threads


def test_a_request_waits_no_longer_than_it_allows_even_when_queued(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two readers, six requests the pool cannot answer: four wait in the queue for a reader. The
    # wait counts from each request's arrival, so every answer comes within it.
    answers: list[tuple[Status, float, bytes]] = []
    with _waiting_readers(tmp_path, monkeypatch, 2) as s:
        for t in _in_threads(lambda: answers.append(_timed_read(s, 800)), 6):
            t.join(10)
    assert [a[0] for a in answers] == [Status.UNAVAILABLE] * 6
    took = [a[1] for a in answers]
    assert max(took) < 0.8 + 0.5, took  # queued ones too: not 2 or 3 times the wait


def test_a_queued_request_is_answered_at_its_own_deadline_not_when_a_reader_frees(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two readers held by requests that may wait 3 s; a request that allows 0.3 s, queued behind
    # them, is answered when its own wait ends (it was answered only once a reader freed, 3 s).
    with _waiting_readers(tmp_path, monkeypatch, 2) as s:
        slow = _in_threads(lambda: _timed_read(s, 3000), 2)
        time.sleep(0.3)  # both readers are taken
        status, took, reason = _timed_read(s, 300)
        assert status is Status.UNAVAILABLE and took < 1.0, (took, reason)
        assert b"spent waiting for one of the daemon's 2 readers" in reason, reason
        for t in slow:
            t.join(10)


def test_one_user_holds_at_most_its_share_of_the_readers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Eight readers, so a quarter (two) for each untrusted user: two slow requests of one user
    # take its two; two more wait for that user's share, not for the readers the other users
    # need, and are answered at their own deadline.
    monkeypatch.setattr(local, "_trusted", lambda uid: False)
    slow: list[bytes] = []
    quick: list[bytes] = []
    with _waiting_readers(tmp_path, monkeypatch, 8) as s:
        threads = _in_threads(lambda: slow.append(_timed_read(s, 2000)[2]), 2)
        time.sleep(0.3)
        assert s.server._shares._held == {os.getuid(): 2}
        threads += _in_threads(lambda: quick.append(_timed_read(s, 400)[2]), 2)
        for t in threads:
            t.join(10)
        assert s.server._shares._held == {}  # every share given back
    assert len(quick) == 2 and all(b"this user's share of the daemon's readers, 2," in r for r in quick), quick
    assert len(slow) == 2 and all(b"no healthy device" in r for r in slow), slow


# -- the socket file -------------------------------------------------------------------------------


def test_the_socket_gets_its_mode_and_group_and_stop_removes_it(pool: Pool, tmp_path: Path) -> None:
    group = next((g for g in grp.getgrall() if g.gr_gid != os.getgid() and g.gr_gid in os.getgroups()), None)
    if group is None and os.getuid() == 0:
        group = next(g for g in grp.getgrall() if g.gr_gid != os.getgid())
    name = group.gr_name if group is not None else None
    (tmp_path / "sub").mkdir()
    s = Served(pool, tmp_path / "sub" / "q.sock", mode=0o640, group=name)
    s.server.start()
    try:
        info = os.stat(s.path)
        assert stat.S_ISSOCK(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o640
        if group is not None:
            assert info.st_gid == group.gr_gid
        assert [p.name for p in (tmp_path / "sub").iterdir()] == ["q.sock"]  # no temporary left
    finally:
        s.server.stop()
    assert not os.path.exists(s.path)
    s.server.stop()  # twice is fine


def test_the_default_mode_is_the_users_alone_unless_a_group_is_named(pool: Pool, tmp_path: Path) -> None:
    # The daemon's primary group may be every user's (``users``): without a group, 0600.
    assert LocalSettings(path="/x/q.sock").mode == 0o600
    assert LocalSettings(path="/x/q.sock", group="root").mode == 0o660
    assert LocalSettings(path="/x/q.sock", group="root", mode="0640").mode == 0o640  # type: ignore[arg-type]
    s = Served(pool, tmp_path / "q.sock")
    s.server.start()
    try:
        assert stat.S_IMODE(os.stat(s.path).st_mode) == 0o600
    finally:
        s.server.stop()


def test_a_missing_folder_other_than_the_systems_is_refused(pool: Pool, tmp_path: Path) -> None:
    s = Served(pool, tmp_path / "typo" / "q.sock")
    with pytest.raises(DeviceError, match=r"its folder .*typo does not exist; create it"):
        s.server.start()
    assert list(tmp_path.iterdir()) == []  # nothing made


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to act as another user (setuid)")
def test_a_stale_socket_that_cannot_be_removed_is_a_device_error(pool: Pool) -> None:
    shared = Path(tempfile.mkdtemp(prefix="qitcore-f3-"))
    shared.chmod(0o1777)  # sticky, like /tmp
    path = shared / "q.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()  # stale: nobody listens
    os.chown(path, 0, 0)
    path.chmod(0o666)  # anyone may probe it: refused connection, so stale
    pid = os.fork()
    if pid == 0:  # as uid 65534, whom the sticky bit forbids to remove root's file
        code = 4
        try:
            os.setgid(65534)
            os.setuid(65534)
            Served(pool, path).server.start()
        except DeviceError as exc:
            code = 3 if "a stale socket is there and cannot be removed" in str(exc) and "uid 0" in str(exc) else 5
        except BaseException:
            code = 6
        os._exit(code)
    try:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 3
        assert path.exists()
    finally:
        shutil.rmtree(shared)


def test_an_unknown_group_is_refused_before_anything_is_created(pool: Pool, tmp_path: Path) -> None:
    s = Served(pool, tmp_path / "q.sock", group="no-such-group-qitcore")
    with pytest.raises(InvalidArgumentError, match="no group named 'no-such-group-qitcore'"):
        s.server.start()
    assert list(tmp_path.iterdir()) == []


def test_a_stale_socket_is_replaced(pool: Pool, tmp_path: Path) -> None:
    path = tmp_path / "q.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()  # the file stays, nobody listens: a daemon that died
    s = Served(pool, path)
    s.server.start()
    try:
        with DaemonClient(str(path)) as c:
            assert len(c.read(8)) == 8
    finally:
        s.server.stop()


def test_a_live_socket_is_not_taken_over(served: Served, pool: Pool) -> None:
    second = Served(pool, Path(served.path))
    with pytest.raises(DeviceBusy, match="another daemon listens"):
        second.server.start()
    with DaemonClient(served.path) as c:
        assert len(c.read(8)) == 8  # the first one still serves


@pytest.mark.parametrize("kind", ["file", "directory", "symlink"])
def test_a_path_that_is_not_a_socket_is_never_replaced(pool: Pool, tmp_path: Path, kind: str) -> None:
    path = tmp_path / "q.sock"
    if kind == "file":
        path.write_text("precious")
    elif kind == "directory":
        path.mkdir()
    else:
        (tmp_path / "target").write_text("precious")
        path.symlink_to(tmp_path / "target")
    s = Served(pool, path)
    with pytest.raises(DeviceError, match="exists and is not a socket"):
        s.server.start()
    if kind == "file":
        assert path.read_text() == "precious"
    assert path.exists() or path.is_symlink()
    s.server.stop()  # never started: nothing to do, nothing removed
    assert path.exists() or path.is_symlink()


def test_stop_leaves_a_socket_another_daemon_put_there(pool: Pool, tmp_path: Path) -> None:
    s = Served(pool, tmp_path / "q.sock")
    s.server.start()
    os.unlink(s.path)
    other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    other.bind(s.path)
    try:
        s.server.stop()
        assert os.path.exists(s.path)
    finally:
        other.close()


# -- the client's errors -------------------------------------------------------------------------------


def test_no_daemon_is_device_not_found_saying_how_to_start_one(tmp_path: Path) -> None:
    with pytest.raises(DeviceNotFound, match=r"qitcore serve --device URL.*systemd") as info:
        DaemonClient(str(tmp_path / "none.sock")).read(1)
    assert str(tmp_path / "none.sock") in str(info.value)
    with pytest.raises(InvalidArgumentError, match="timeout"):
        DaemonClient(str(tmp_path / "none.sock"), timeout=0)
    with pytest.raises(InvalidArgumentError, match="n:"):
        DaemonClient(str(tmp_path / "none.sock")).read(-1)


def test_a_daemon_that_goes_away_mid_connection_is_device_disconnected(pool: Pool, tmp_path: Path) -> None:
    from qitcore.errors import DeviceDisconnected

    s = Served(pool, tmp_path / "q.sock")
    s.server.start()
    c = DaemonClient(s.path)
    try:
        assert len(c.read(8)) == 8
        s.server.stop()
        with pytest.raises(DeviceDisconnected, match=str(tmp_path / "q.sock")):
            c.read(8)
        # The next request reconnects: nothing there now, then a daemon again.
        with pytest.raises(DeviceNotFound):
            c.read(8)
        s.server.start()
        assert len(c.read(8)) == 8
    finally:
        c.close()
        s.server.stop()


def _connect_as(uid: int, path: str) -> int:
    """In a forked child running as ``uid``: 0 when it read a byte from the daemon, 3 when it was
    refused with ServiceAccessDenied, 4 on any other outcome."""
    pid = os.fork()
    if pid == 0:  # the child: only already-imported, pure-Python code runs here
        code = 4
        try:
            os.setgid(uid)
            os.setuid(uid)
            with DaemonClient(path, timeout=5) as c:
                code = 0 if len(c.read(1)) == 1 else 4
        except ServiceAccessDenied as exc:
            code = 3 if isinstance(exc, PermissionError) and "permission denied" in str(exc) else 4
        except BaseException:
            code = 4
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_a_socket_whose_permissions_refuse_the_user_is_service_access_denied(pool: Pool) -> None:
    folder = Path(tempfile.mkdtemp(prefix="qitcore-h2-"))
    folder.chmod(0o755)  # any user may reach the socket; only its own mode decides
    s = Served(pool, folder / "q.sock", mode=0o666)
    s.server.start()
    try:
        if os.getuid() == 0:
            # Root passes every permission check: the client is a child that becomes nobody.
            assert _connect_as(65534, s.path) == 0  # allowed by mode 0o666
            os.chmod(s.path, 0o660)
            assert _connect_as(65534, s.path) == 3
        else:
            os.chmod(s.path, 0o000)
            with pytest.raises(ServiceAccessDenied, match="permission denied"):
                DaemonClient(s.path).read(1)
    finally:
        s.server.stop()
        shutil.rmtree(folder)


def _squatter(folder: Path, uid: int | None) -> tuple[int, str]:
    """A forked child that listens on ``folder``/q.sock as ``uid`` (None: as this user) and
    answers every READ with zeros: what a user squatting a shared folder would serve. Its pid and
    the socket's path; kill it with SIGKILL."""
    path = str(folder / "q.sock")
    pid = os.fork()
    if pid == 0:  # the child: only already-imported, pure-Python code runs here
        try:
            if uid is not None:
                os.setgid(uid)
                os.setuid(uid)
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(path)
            os.chmod(path, 0o666)
            listener.listen(4)
            while True:
                conn, _ = listener.accept()
                with conn, contextlib.suppress(EOFError, OSError):
                    while True:
                        request = decode_request(recv_exactly(conn, REQUEST_SIZE))
                        conn.sendall(encode_reply(Status.OK, bytes(request.length)) + bytes(request.length))
        except BaseException:
            pass
        os._exit(0)
    wait_until(lambda: os.path.exists(path))
    return pid, path


@pytest.mark.skipif(os.getuid() != 0, reason="serving as another uid needs root (setuid)")
def test_a_socket_served_by_another_user_is_refused(tmp_path: Path) -> None:
    shared = Path(tempfile.mkdtemp(prefix="qitcore-f3-"))
    shared.chmod(0o1777)  # like /tmp: anyone may put a socket here
    owned = Path(tempfile.mkdtemp(prefix="qitcore-f3-"))
    children: list[int] = []
    try:
        # Served by uid 65534 in a folder anyone may write to: refused, even for root.
        pid, path = _squatter(shared, 65534)
        children.append(pid)
        with pytest.raises(ServiceAccessDenied, match=r"is served by uid 65534, not by root or you \(uid 0\)"):
            DaemonClient(path, timeout=5).read(16)
        os.environ["QITCORE_SOCKET"] = path
        try:
            with pytest.raises(ServiceAccessDenied, match="uid 65534"):
                qitcore.open("qitcored://")
        finally:
            del os.environ["QITCORE_SOCKET"]
        os.unlink(path)
        # The same squatter as this user (root) is believed: the refusal above was the uid's.
        pid, path = _squatter(shared, None)
        children.append(pid)
        with DaemonClient(path, timeout=5) as client:
            assert client.read(16) == bytes(16)
        # A folder that uid 65534 owns and nobody else may write to: its daemon is trusted.
        os.chown(owned, 65534, 65534)
        owned.chmod(0o755)
        pid, path = _squatter(owned, 65534)
        children.append(pid)
        with DaemonClient(path, timeout=5) as client:
            assert client.read(16) == bytes(16)
        owned.chmod(0o775)  # now its group may put a socket there too: refused
        with pytest.raises(ServiceAccessDenied, match="uid 65534"):
            DaemonClient(path, timeout=5).read(16)
    finally:
        for pid in children:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        shutil.rmtree(shared)
        shutil.rmtree(owned)


def test_a_large_read_keeps_a_bounded_window_of_requests_in_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A read of 40 requests (1 KiB each here) never has more than 8 unanswered on the connection.
    from qitcore.service import client as client_module

    monkeypatch.setattr(client_module, "MAX_READ", 1024)
    path = str(tmp_path / "q.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    in_flight: list[int] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(5)
            answered = 0
            pending = b""
            while answered < 40:
                time.sleep(0.01)  # let the client send all it would
                pending += conn.recv(1 << 16)
                in_flight.append(len(pending) // REQUEST_SIZE)  # sent, not yet answered
                while len(pending) >= REQUEST_SIZE:
                    request = decode_request(pending[:REQUEST_SIZE])
                    pending = pending[REQUEST_SIZE:]
                    conn.sendall(encode_reply(Status.OK, bytes(request.length)) + bytes(request.length))
                    answered += 1

    server = threading.Thread(target=serve)
    server.start()
    try:
        with DaemonClient(path, timeout=5) as c:
            assert c.read(40 * 1024) == bytes(40 * 1024)
    finally:
        server.join(10)
        listener.close()
    assert 1 < max(in_flight) <= 8, in_flight


@pytest.mark.skipif(os.getuid() != 0, reason="connecting as another uid needs root (setuid)")
def test_one_user_cannot_take_every_connection(pool: Pool) -> None:
    folder = Path(tempfile.mkdtemp(prefix="qitcore-f3-"))
    folder.chmod(0o755)
    s = Served(pool, folder / "q.sock", mode=0o666, max_clients=4, max_clients_per_uid=2)
    s.server.start()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # uid 65534 holds what it may, and is refused one more
        code = 4
        try:
            os.setgid(65534)
            os.setuid(65534)
            held = [DaemonClient(s.path, timeout=5) for _ in range(2)]
            for c in held:
                c.read(1)
            try:
                DaemonClient(s.path, timeout=5).read(1)
            except DeviceBusy as exc:
                code = 3 if "too many clients of uid 65534" in str(exc) else 5
            os.write(write_end, b"x")  # still holding its two
            time.sleep(3)
        except BaseException:
            code = 6
        os._exit(code)
    os.close(write_end)
    try:
        assert os.read(read_end, 1) == b"x"
        # The other users (root here) still get in, beyond max_clients too (the reserve).
        clients = [DaemonClient(s.path, timeout=5) for _ in range(4)]
        for c in clients:
            assert len(c.read(1)) == 1
        for c in clients:
            c.close()
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 3
    finally:
        os.close(read_end)
        s.server.stop()
        shutil.rmtree(folder)


def test_a_flood_of_malformed_clients_is_logged_as_a_count(
    served: Served, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local, "_LOG_WINDOW", 30.0)  # the whole flood within one window
    with caplog.at_level(logging.INFO, logger="qitcore.service.local"):
        for _ in range(40):
            with served.connect() as s:
                s.sendall(b"x" * REQUEST_SIZE)
                assert reply_of(s, Request(Op.READ, 0))[0] is Status.BAD_REQUEST
        lines = [r for r in caplog.records if "malformed request" in r.getMessage()]
        assert len(lines) == local._LOG_LINES == 1  # the first, then counted
        monkeypatch.setattr(local, "_LOG_WINDOW", 0.0)
        with served.connect() as s:  # the next window: the count, then this one's line
            s.sendall(b"x" * REQUEST_SIZE)
            reply_of(s, Request(Op.READ, 0))
        wait_until(lambda: any("39 more malformed-client lines suppressed" in r.getMessage() for r in caplog.records))
    with DaemonClient(served.path) as c:
        assert len(c.read(8)) == 8  # served all along


def test_check_finds_what_start_would_refuse_without_creating_anything(
    served: Served, pool: Pool, tmp_path: Path
) -> None:
    with pytest.raises(DeviceBusy, match="another daemon listens"):
        Served(pool, Path(served.path)).server.check()  # before a daemon opens its devices
    with pytest.raises(DeviceError, match="does not exist"):
        Served(pool, tmp_path / "typo" / "q.sock").server.check()
    with pytest.raises(InvalidArgumentError, match="no group named"):
        Served(pool, tmp_path / "q2.sock", group="no-such-group-qitcore").server.check()
    fresh = Served(pool, tmp_path / "q3.sock")
    fresh.server.check()
    assert not (tmp_path / "q3.sock").exists() and not (tmp_path / "typo").exists()
