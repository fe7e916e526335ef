"""``qitcore.open("qitcored://PATH")`` and the default stream of randbytes/QuantumRandom/
QuantumBitGenerator against an in-process daemon (a real Pool on the simulator behind a
LocalServer on a tmp socket): reads of every kind, the bound on what a client fetches ahead, the
errors when no daemon runs or it goes away, and reconnecting once it is back."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import qitcore
from qitcore import randomness
from qitcore.devices.daemon import DEFAULT_PREFETCH
from qitcore.errors import DeviceDisconnected, DeviceNotFound, DeviceTimeout, InvalidArgumentError, StreamClosedError
from qitcore.service.client import DaemonClient
from qitcore.service.config import DeviceSettings
from qitcore.service.local import LocalServer, LocalSettings
from qitcore.service.pool import Pool
from qitcore.service.stats import ServiceStats


@pytest.fixture(scope="module")
def pool() -> Iterator[Pool]:
    p = Pool([DeviceSettings("sim://", {})], buffer_bytes=4 << 20)
    p.start()
    try:
        p.read(1, timeout=20)
        yield p
    finally:
        p.close()


class Daemon:
    """A LocalServer on ``path`` that a test can stop and start again."""

    def __init__(self, pool: Pool, path: Path) -> None:
        self.pool = pool
        self.path = str(path)
        self.stats = ServiceStats()
        self.server: LocalServer | None = None

    def start(self) -> None:
        self.server = LocalServer(self.pool, self.stats, LocalSettings(path=self.path), lambda: {})
        self.server.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()

    def served(self) -> int:
        return int(self.stats.snapshot()["served"].get("local", 0))


@pytest.fixture
def daemon(pool: Pool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Daemon]:
    d = Daemon(pool, tmp_path / "qitcored.sock")
    d.start()
    # The default stream looks here, and only here.
    monkeypatch.setenv("QITCORE_SOCKET", d.path)
    monkeypatch.delenv("QITCORE_DEVICE", raising=False)
    monkeypatch.setattr(randomness, "_default", None)
    try:
        yield d
    finally:
        if randomness._default is not None:
            randomness._default.close()
        d.stop()


def wait_until(condition: object, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_a_daemon_stream_reads_like_any_device(daemon: Daemon) -> None:
    with qitcore.open(f"qitcored://{daemon.path}") as s:
        assert isinstance(s, qitcore.QrngStream)
        assert s.info["daemon"] == daemon.path and s.info["source"] == "qitcore daemon"
        assert len(s.read(0)) == 0 and len(s.read(32)) == 32
        assert len(s.read(3 << 20)) == 3 << 20  # more than a request and more than the prefetch
        buf = bytearray(100_000)
        assert s.readinto(buf) == 100_000 and buf.count(0) < 1000
        g = np.random.Generator(qitcore.QuantumBitGenerator(s))
        x = g.random(100_000)
        assert 0.49 < x.mean() < 0.51
        r = qitcore.QuantumRandom(s)
        assert sorted(r.sample(range(52), 52)) == list(range(52))
        assert 0 <= r.random() < 1 and r.getrandbits(100) < 2**100
    assert s.closed


@pytest.fixture
def unhealthy(tmp_path: Path) -> Iterator[Daemon]:
    """A daemon whose only device never opens (a capture that does not exist): nothing to serve."""
    absent = Pool([DeviceSettings(f"file://{tmp_path}/absent.qdp", {})])
    absent.start()
    d = Daemon(absent, tmp_path / "q.sock")
    d.start()
    try:
        yield d
    finally:
        d.stop()
        absent.close()


def test_a_read_with_a_timeout_answers_in_time_when_the_daemon_has_nothing(unhealthy: Daemon) -> None:
    d = unhealthy
    with qitcore.open(f"qitcored://{d.path}?timeout=0.2") as s:
        started = time.monotonic()
        with pytest.raises(DeviceTimeout):
            s.read(32, timeout=0.1)
        assert time.monotonic() - started < 1
        # The daemon answers "no healthy device"; the stream fails with its reason.
        with pytest.raises(DeviceDisconnected, match="no healthy device") as info:
            s.read(32, timeout=10)
        assert d.path in str(info.value)


def test_what_a_client_fetches_ahead_is_bounded(daemon: Daemon) -> None:
    with qitcore.open(f"qitcored://{daemon.path}") as s:
        assert s.info["prefetch_bytes"] == DEFAULT_PREFETCH
        s.read(32)
        time.sleep(0.5)  # the fetching thread fills the queue, then waits
        taken = daemon.served()
        assert taken <= DEFAULT_PREFETCH + 2 * (1 << 16)  # the queue, and two requests in flight
        time.sleep(0.3)
        assert daemon.served() == taken  # and takes nothing more while nobody reads
    with qitcore.open(f"qitcored://{daemon.path}?buffer_bytes=8192") as s:
        assert s.info["prefetch_bytes"] == 8192
        before = daemon.served()
        s.read(1)
        time.sleep(0.5)
        assert daemon.served() - before <= 8192 + 2 * 8192


def test_conditioning_options_and_raw_samples_are_refused(daemon: Daemon) -> None:
    with pytest.raises(InvalidArgumentError, match="min_entropy.*daemon conditions"):
        qitcore.open(f"qitcored://{daemon.path}", min_entropy=7.0)
    with pytest.raises(InvalidArgumentError, match="epsilon"):
        qitcore.open(f"qitcored://{daemon.path}?epsilon=1e-20")
    with pytest.raises(InvalidArgumentError, match="raw samples"):
        qitcore.open_raw(f"qitcored://{daemon.path}")
    with pytest.raises(InvalidArgumentError, match="rate: not a parameter of qitcored://"):
        qitcore.open(f"qitcored://{daemon.path}?rate=5")


def test_clients_of_one_daemon_get_disjoint_bytes(daemon: Daemon) -> None:
    url = f"qitcored://{daemon.path}"
    with qitcore.open(url) as a, qitcore.open(url) as b, DaemonClient(daemon.path) as c:
        data = [a.read(200_000), b.read(200_000), c.read(200_000), qitcore.randbytes(200_000)]
    joined = b"".join(data)
    assert len({joined[i : i + 16] for i in range(0, len(joined), 16)}) == len(joined) // 16


def test_randbytes_and_friends_use_the_running_daemon(daemon: Daemon) -> None:
    assert len(qitcore.randbytes(32)) == 32
    stream = randomness.default_stream()
    assert stream.info["daemon"] == daemon.path
    assert len(qitcore.QuantumRandom().randbytes(10)) == 10
    g = np.random.Generator(qitcore.QuantumBitGenerator())
    assert g.integers(0, 6, size=100).max() <= 5
    assert randomness.default_stream() is stream  # one stream, opened once


def test_without_a_device_or_a_daemon_randbytes_says_how_to_start_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QITCORE_SOCKET", str(tmp_path / "none.sock"))
    monkeypatch.delenv("QITCORE_DEVICE", raising=False)
    monkeypatch.setattr(randomness, "_default", None)
    for call in (lambda: qitcore.randbytes(1), qitcore.QuantumBitGenerator, lambda: qitcore.QuantumRandom().random()):
        with pytest.raises(DeviceNotFound, match=r"qitcore serve --device URL") as info:
            call()
        assert str(tmp_path / "none.sock") in str(info.value) and "QITCORE_DEVICE=sim://" in str(info.value)
    assert randomness._default is None  # nothing opened, the simulator least of all
    with pytest.raises(DeviceNotFound, match="no qitcore daemon listens"):
        qitcore.open(f"qitcored://{tmp_path}/none.sock")


def test_qitcore_device_wins_over_a_running_daemon(daemon: Daemon, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QITCORE_DEVICE", "sim://?seed=3")
    qitcore.randbytes(8)
    assert randomness.default_stream().description == "sim://?seed=***"  # the seed is never shown


def test_a_daemon_that_stops_fails_the_stream_and_reopening_reconnects(daemon: Daemon) -> None:
    s = qitcore.open(f"qitcored://{daemon.path}")
    try:
        s.read(32)
        daemon.stop()
        with pytest.raises(DeviceDisconnected, match=daemon.path):
            for _ in range(1000):  # what was fetched ahead comes first
                s.read(1 << 16, timeout=10)
        with pytest.raises(DeviceNotFound):
            qitcore.open(f"qitcored://{daemon.path}")
        daemon.start()
        with qitcore.open(f"qitcored://{daemon.path}") as again:
            assert len(again.read(1000)) == 1000
    finally:
        s.close()


def test_randbytes_raises_once_when_the_daemon_goes_and_reconnects_when_it_is_back(daemon: Daemon) -> None:
    assert len(qitcore.randbytes(32)) == 32
    first = randomness.default_stream()
    daemon.stop()
    with pytest.raises(DeviceDisconnected, match=daemon.path):
        for _ in range(1000):
            qitcore.randbytes(1 << 16)
    with pytest.raises(DeviceNotFound):
        qitcore.randbytes(32)  # still gone: says so, and how to start one
    daemon.start()
    assert len(qitcore.randbytes(32)) == 32
    assert randomness.default_stream() is not first
    assert first.closed


def test_a_forked_child_never_serves_the_bytes_its_parent_fetched(daemon: Daemon) -> None:
    qitcore.randbytes(1)  # the default stream has fetched ahead: its queue holds the parent's next bytes
    parent_stream = randomness.default_stream()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its own stream for randbytes, the parent's copy refused
        os.close(read_end)
        try:
            try:
                parent_stream.read(16)
                refused = "read"
            except StreamClosedError as exc:
                refused = "refused" if "open it again after fork" in str(exc) else str(exc)
            mine = qitcore.randbytes(4096).hex()
            text = f"{refused} {mine} {randomness.default_stream() is not parent_stream}"
        except BaseException as exc:
            text = f"{type(exc).__name__}: {exc}"
        os.write(write_end, text.encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        ready, _, _ = select.select([pipe], [], [], 20.0)
        if not ready:  # a child stuck on its parent's copy (queue, socket or locks): a failure
            os.kill(pid, signal.SIGKILL)
        told = pipe.read().decode() if ready else "the child did not answer in 20 s"
    _, status = os.waitpid(pid, 0)
    assert ready and os.waitstatus_to_exitcode(status) == 0, told
    parent = qitcore.randbytes(4096)
    refused, child_hex, own = told.split()
    assert (refused, own) == ("refused", "True"), told
    child = bytes.fromhex(child_hex)
    blocks = {parent[i : i + 16] for i in range(0, len(parent), 16)}
    assert not any(child[i : i + 16] in blocks for i in range(0, len(child), 16))
    assert randomness.default_stream() is parent_stream and not parent_stream.closed


def test_a_process_that_leaves_a_daemon_stream_open_still_exits(daemon: Daemon) -> None:
    # No close(): the stream is dropped at interpreter exit, its fetching thread mid-request.
    code = (
        "import qitcore\n"
        f"s = qitcore.open('qitcored://{daemon.path}')\n"
        "print(len(s.read(10)), flush=True)\n"
        f"kept = [qitcore.open('qitcored://{daemon.path}') for _ in range(2)]\n"
    )
    started = time.monotonic()
    try:
        done = subprocess.run([sys.executable, "-c", code], timeout=20, capture_output=True, text=True)
    except subprocess.TimeoutExpired:
        pytest.fail("a process with an open qitcored:// stream did not exit within 20 s")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "10"
    assert time.monotonic() - started < 10


def test_large_reads_go_straight_from_the_daemon_once_each(daemon: Daemon) -> None:
    with qitcore.open(f"qitcored://{daemon.path}") as a, qitcore.open(f"qitcored://{daemon.path}") as b:
        # Once the daemon is seen answering the largest chunks at once (at once here; a slow pool
        # would let a large direct request time out, and then the stream's path serves them).
        data = [a.read(10), b.read(10)]
        wait_until(lambda: a.device.fast and b.device.fast)
        before = a.stats().counters.bytes_delivered
        data += [a.read(1 << 20), b.read(1 << 20), a.read(300_000)]
        big = bytearray(1 << 20)
        assert a.readinto(big) == 1 << 20
        data.append(bytes(big))
        # These large reads did not pass through the streams' queues (one copy instead of three).
        assert a.stats().counters.bytes_delivered == before
        joined = b"".join(data)
        assert len(joined) == (1 << 20) * 3 + 300_000 + 20
        assert len({joined[i : i + 16] for i in range(0, len(joined) - 15, 16)}) == len(joined) // 16
        a.device.fast = False  # as after a slow answer: the stream's own path
        assert len(a.read(1 << 18)) == 1 << 18
        assert a.stats().counters.bytes_delivered == before + (1 << 18)
        # A read with a timeout keeps the stream's own path (its timeout and nothing consumed).
        assert len(a.read(1 << 18, timeout=10)) == 1 << 18


def test_a_large_read_after_the_daemon_went_away_raises_its_reason(daemon: Daemon) -> None:
    s = qitcore.open(f"qitcored://{daemon.path}")
    try:
        assert len(s.read(1 << 20)) == 1 << 20
        daemon.stop()
        with pytest.raises(DeviceDisconnected, match=daemon.path):
            for _ in range(100):  # what was fetched ahead comes first
                s.read(1 << 20)
    finally:
        s.close()


def test_a_daemon_without_a_healthy_device_fails_the_stream_within_its_timeout(unhealthy: Daemon) -> None:
    d = unhealthy
    with qitcore.open(f"qitcored://{d.path}?timeout=1") as s:
        started = time.monotonic()
        with pytest.raises(DeviceDisconnected, match="no healthy device"):
            s.read(32)
        # One wait of the timeout (plus the reply's way), not one per halved chunk (4 s before).
        assert time.monotonic() - started < 2.5
    # A process left with such a stream unclosed, after a read that timed out, still exits.
    code = (
        "import qitcore\n"
        f"s = qitcore.open('qitcored://{d.path}?timeout=1')\n"
        "try:\n    s.read(32, timeout=1.5)\nexcept Exception as e:\n    print(type(e).__name__, flush=True)\n"
    )
    try:
        done = subprocess.run([sys.executable, "-c", code], timeout=20, capture_output=True, text=True)
    except subprocess.TimeoutExpired:
        pytest.fail("a process with an unclosed qitcored:// stream did not exit within 20 s")
    assert done.returncode == 0, done.stderr
