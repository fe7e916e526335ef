"""The service's pool: each byte leaves it once, to one reader; a device whose health test fails
stops contributing at once; a disconnected one is reopened with backoff; readers and close()
never hang.

Two kinds of device: the simulator (``sim://``, the real pipeline with injected faults), and a
counting device standing in for ``qitcore.open`` whose output is its own byte positions, so that
"every byte exactly once, none lost, in order" can be checked exactly against a reference.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import qitcore.devices
from qitcore import protocol
from qitcore.errors import (
    DeviceDisconnected,
    DeviceTimeout,
    InvalidArgumentError,
    InvalidTypeError,
    QitError,
    RepetitionCountFailure,
    ServiceUnavailable,
    StreamClosedError,
)
from qitcore.service.config import DeviceSettings, ServiceConfig
from qitcore.service.pool import MAX_REQUEST, Pool
from qitcore.service.stats import ServiceStats

FAST = (0.05, 0.2)  # backoff for tests: reopen quickly
SMALL = 1 << 18  # buffer_bytes: keeps the simulator's work small


def _until(condition: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _device(pool: Pool, index: int) -> dict[str, Any]:
    device: dict[str, Any] = pool.status()["devices"][index]
    return device


@pytest.fixture
def pools() -> Iterator[Callable[..., Pool]]:
    """Makes started pools and closes them all at the end, whatever happened."""
    made: list[Pool] = []

    def make(urls: list[str], **kwargs: Any) -> Pool:
        kwargs.setdefault("backoff", FAST)
        kwargs.setdefault("buffer_bytes", SMALL)
        pool = Pool([DeviceSettings(u) for u in urls], **kwargs)
        made.append(pool)
        pool.start()
        return pool

    try:
        yield make
    finally:
        for pool in made:
            pool.close()


def _repeated_windows(responses: list[bytes], width: int = 16) -> int:
    """How many ``width``-byte windows (at every offset of every response) occur more than once."""
    windows = [
        np.lib.stride_tricks.sliding_window_view(np.frombuffer(r, np.uint8), width)
        for r in responses
        if len(r) >= width
    ]
    if not windows:
        return 0
    rows = np.ascontiguousarray(np.concatenate(windows)).view(f"V{width}").ravel()
    return int(len(rows) - len(np.unique(rows)))


# -- a counting device: output = its own positions -------------------------------------------


class Counting:
    """Devices whose output is 8-byte big-endian words ``tag << 48 | position`` (the tag is the
    URL's last value), position counting on across reopenings (as a physical device's output
    does), or starting again at 0 for the URLs in ``replaying``. ``fail`` maps a URL to
    ``(position, exception)``: that opening raises once it reaches the position; ``pause`` maps a
    URL to a position where its reads stop (return nothing) until the event is set."""

    def __init__(self) -> None:
        self.next: dict[str, int] = {}
        self.fail: dict[str, tuple[int, BaseException]] = {}
        self.pause: dict[str, tuple[int, threading.Event]] = {}
        self.replaying: set[str] = set()
        self.slow_close = 0.0  # seconds each close takes (a serial device's closing commands)
        self.opened: dict[str, int] = {}
        self.lock = threading.Lock()

    def open(self, url: str, **options: Any) -> Any:
        with self.lock:
            self.opened[url] = self.opened.get(url, 0) + 1
            self.next.setdefault(url, 0)
            if url in self.replaying:
                self.next[url] = 0
        return _CountingStream(self, url, int(url.rsplit("=", 1)[1]))


class _CountingStream:
    block_shape = (4096, 2048)
    min_entropy = 7.5
    description = "counting"

    def __init__(self, source: Counting, url: str, tag: int) -> None:
        self.source, self.url, self.tag = source, url, tag
        self.closed = False

    def stats(self) -> Any:
        return SimpleNamespace(counters=SimpleNamespace(bytes_queued=4096))

    def read(self, n: int, timeout: float | None = None) -> bytes:
        if self.closed:
            raise StreamClosedError("stream: read from a closed stream")
        assert n % 8 == 0
        with self.source.lock:
            start = self.source.next[self.url]
            words = n // 8
            pause = self.source.pause.get(self.url)
            if pause is not None and start + words > pause[0] and not pause[1].is_set():
                words = pause[0] - start
                if words <= 0:
                    time.sleep(0.01)
                    raise DeviceTimeout("counting: paused")
            failure = self.source.fail.get(self.url)
            if failure is not None:
                at, exc = failure
                if start >= at:
                    del self.source.fail[self.url]
                    raise exc
                words = min(words, at - start)
            self.source.next[self.url] = start + words
        return (np.arange(start, start + words, dtype=np.uint64) | np.uint64(self.tag << 48)).astype(">u8").tobytes()

    def close(self) -> None:
        self.closed = True
        time.sleep(self.source.slow_close)


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch) -> Counting:
    source = Counting()
    monkeypatch.setattr(qitcore.devices, "open", source.open)
    return source


def _words(responses: list[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(responses), dtype=">u8").astype(np.uint64)


def _served_by(words: np.ndarray, tag: int) -> np.ndarray:
    return np.sort(words[(words >> np.uint64(48)) == tag] & np.uint64((1 << 48) - 1))


def test_concurrent_readers_get_every_byte_once_none_lost_in_order(
    pools: Callable[..., Pool], counting: Counting
) -> None:
    pool = pools(["sim://?frame=1", "sim://?frame=2", "sim://?frame=3"], buffer_bytes=3 << 16)
    responses: list[list[bytes]] = [[] for _ in range(8)]

    def reader(i: int) -> None:
        rng = random.Random(i)
        for _ in range(300):
            n = 8 * rng.randint(1, 1024)
            data = pool.read(n, timeout=20) if rng.random() < 0.7 else pool.try_read(n)
            if data is not None:
                assert len(data) == n
                responses[i].append(data)

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    words = _words([r for rs in responses for r in rs])
    status = pool.status()
    for tag, device in zip((1, 2, 3), status["devices"], strict=True):
        served = _served_by(words, tag)
        # Exactly the device's first positions, each once: nothing served twice, nothing skipped.
        assert np.array_equal(served, np.arange(len(served), dtype=np.uint64)), f"device {tag}"
        assert device["bytes_served"] == 8 * len(served)
    # Within a response, each device's bytes come in the device's order (a read that waited may
    # hold several runs, with other readers' bytes between them).
    for rs in responses:
        for r in rs:
            w = np.frombuffer(r, ">u8").astype(np.uint64)
            for tag in (1, 2, 3):
                mine = w[(w >> np.uint64(48)) == tag]
                assert np.all(mine[1:] > mine[:-1])


def test_a_health_failure_drops_the_devices_ready_bytes_and_the_others_serve_on(
    pools: Callable[..., Pool], counting: Counting
) -> None:
    stats = ServiceStats()
    counting.fail["sim://?frame=1"] = (20_000, RepetitionCountFailure("Repetition Count Test failed at sample 9"))
    pool = pools(["sim://?frame=1", "sim://?frame=2"], buffer_bytes=1 << 20, stats=stats, backoff=(30.0, 30.0))
    _until(lambda: _device(pool, 0)["state"] == "failed", what="the failure")
    failed = _device(pool, 0)
    assert failed["health_failures"] == {"RepetitionCountFailure": 1}
    assert "RepetitionCountFailure" in failed["last_error"]
    # Its 160,000 bytes were ready and none was taken: all dropped at once.
    assert failed["buffered"] == 0 and failed["bytes_served"] == 0
    assert stats.snapshot()["discarded"] == 160_000
    words = _words([pool.read(4096, timeout=10) for _ in range(100)])
    assert not np.any(_served_by(words, 1) < 20_000), "a byte of the failed opening was served"
    assert len(_served_by(words, 2)) > 0


def test_a_failed_device_is_reopened_with_fresh_start_up_tests(pools: Callable[..., Pool], counting: Counting) -> None:
    counting.fail["sim://?frame=1"] = (1000, RepetitionCountFailure("stuck"))
    pool = pools(["sim://?frame=1"])
    _until(lambda: _device(pool, 0)["reopens"] >= 1 and _device(pool, 0)["state"] == "healthy", what="the reopening")
    assert counting.opened["sim://?frame=1"] >= 2
    words = _served_by(_words([pool.read(8000, timeout=10)]), 1)
    assert words.min() >= 1000  # only the new opening's output


def test_reading_stops_when_closed_and_close_is_prompt(pools: Callable[..., Pool], counting: Counting) -> None:
    pool = pools(["sim://?frame=1"])
    pool.read(8, timeout=10)
    started = time.monotonic()
    pool.close()
    assert time.monotonic() - started < 2
    assert pool.status()["devices"][0]["state"] == "stopped"
    with pytest.raises(ServiceUnavailable, match="stopping"):
        pool.read(8)
    with pytest.raises(ServiceUnavailable):
        pool.try_read(8)
    pool.close()  # twice is fine


# -- the simulator -----------------------------------------------------------------------------


def test_several_simulators_serve_distinct_bytes_to_concurrent_readers(pools: Callable[..., Pool]) -> None:
    pool = pools(["sim://?seed=1", "sim://?seed=2", "sim://?seed=3&fault=disconnect:300000"])
    responses: list[bytes] = []
    lock = threading.Lock()

    def reader(i: int) -> None:
        rng = random.Random(i)
        for _ in range(40):
            data = pool.read(rng.randint(16, 8192), timeout=20)
            with lock:
                responses.append(data)

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(responses) == 320
    assert sum(map(len, responses)) > 1 << 20
    assert _repeated_windows(responses) == 0
    served = sum(d["bytes_served"] for d in pool.status()["devices"])
    assert served == sum(map(len, responses))


def test_a_stuck_simulator_goes_failed_and_the_other_serves(pools: Callable[..., Pool]) -> None:
    stats = ServiceStats()
    pool = pools(["sim://?seed=1", "sim://?seed=2&fault=stuck:50000"], stats=stats, backoff=(30.0, 30.0))
    _until(lambda: _device(pool, 1)["state"] == "failed", what="the stuck device to fail")
    stuck = _device(pool, 1)
    assert stuck["health_failures"] == {"RepetitionCountFailure": 1}
    assert stuck["buffered"] == 0
    served_before = stuck["bytes_served"]
    for _ in range(20):
        assert len(pool.read(32 << 10, timeout=10)) == 32 << 10
    assert _device(pool, 1)["bytes_served"] == served_before  # it contributes nothing more
    assert _device(pool, 0)["state"] == "healthy"


def test_a_disconnected_simulator_backs_off_and_is_reopened(pools: Callable[..., Pool]) -> None:
    pool = pools(["sim://?fault=disconnect:100000"], backoff=(0.2, 0.4))
    seen, errors = set(), set()

    def reopened() -> bool:
        pool.try_read(4096)  # keep it flowing
        device = _device(pool, 0)
        seen.add(device["state"])
        errors.add(device["last_error"])
        return bool(device["reopens"] >= 2)

    _until(reopened, what="two reopenings")
    assert "backoff" in seen
    # The error shows while the device waits to be reopened (a healthy reopening clears it).
    assert any("DeviceDisconnected" in e for e in errors if e), errors
    assert _device(pool, 0)["health_failures"] == {}


def test_no_healthy_device_is_service_unavailable_naming_the_state(pools: Callable[..., Pool]) -> None:
    pool = pools(["sim://?fault=stuck:0"])  # fails its start-up tests at every opening
    with pytest.raises(ServiceUnavailable, match=r"no healthy device for 0.5 s \(sim://\?fault=stuck:0: "):
        pool.read(16, timeout=0.5)
    assert pool.try_read(16) is None


def test_a_waiting_reader_is_woken_by_close(pools: Callable[..., Pool]) -> None:
    pool = pools(["sim://?fault=stuck:0"])
    raised: list[BaseException] = []

    def reader() -> None:
        try:
            pool.read(16)
        except QitError as exc:
            raised.append(exc)

    t = threading.Thread(target=reader)
    t.start()
    time.sleep(0.2)
    pool.close()
    t.join(2)
    assert not t.is_alive()
    assert len(raised) == 1 and isinstance(raised[0], ServiceUnavailable)


def test_a_waiting_read_answers_ctrl_c(pools: Callable[..., Pool]) -> None:
    pool = pools(["sim://?fault=stuck:0"])

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            pool.read(16, timeout=30)
        assert time.monotonic() - started < 5
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_the_buffer_is_bounded(pools: Callable[..., Pool]) -> None:
    pool = pools(["sim://?seed=1", "sim://?seed=2"], buffer_bytes=1 << 18)
    _until(lambda: pool.status()["buffered"] >= (1 << 18) - (1 << 17), what="the buffer to fill")
    time.sleep(0.3)
    status = pool.status()
    assert status["capacity"] == 1 << 18
    assert all(d["buffered"] <= 1 << 17 for d in status["devices"])


def test_reconfigure_keeps_adds_and_removes_devices(pools: Callable[..., Pool]) -> None:
    pool = pools(["sim://?frame=1000", "sim://?frame=1001"])
    _until(lambda: all(d["state"] == "healthy" for d in pool.status()["devices"]), what="healthy devices")
    before = pool.try_read(16)
    assert before is not None
    pool.reconfigure([DeviceSettings("sim://?frame=1001"), DeviceSettings("sim://?frame=1002")])
    urls = [d["url"] for d in pool.status()["devices"]]
    assert urls == ["sim://?frame=1001", "sim://?frame=1002"]
    _until(lambda: all(d["state"] == "healthy" for d in pool.status()["devices"]), what="the new device")
    assert len(pool.read(1 << 16, timeout=10)) == 1 << 16
    # A device listed again with other options is reopened with them.
    pool.reconfigure([DeviceSettings("sim://?frame=1001", {"epsilon": 1e-30}), DeviceSettings("sim://?frame=1002")])
    assert pool.status()["devices"][0]["epsilon"] == 1e-30
    assert pool.epsilon == max(1e-30, pool.status()["devices"][1]["epsilon"])


def test_min_entropy_and_epsilon_are_reported(pools: Callable[..., Pool]) -> None:
    pool = pools(["sim://?epsilon=1e-25"])
    _until(lambda: _device(pool, 0)["state"] == "healthy", what="healthy")
    device = _device(pool, 0)
    assert device["epsilon"] == 1e-25 and pool.epsilon == 1e-25
    assert 0 < device["min_entropy"] <= 8


# -- arguments ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: Pool([]), InvalidArgumentError, "at least one device"),
        (lambda: Pool("sim://"), InvalidTypeError, "devices"),  # type: ignore[arg-type]
        (lambda: Pool(["sim://"]), InvalidTypeError, "DeviceSettings"),  # type: ignore[list-item]
        (lambda: Pool([DeviceSettings("sim://")] * 2), InvalidArgumentError, "more than once"),
        (lambda: Pool([DeviceSettings("sim://")], buffer_bytes=100), InvalidArgumentError, "buffer_bytes"),
        (lambda: Pool([DeviceSettings("sim://")], stats={}), InvalidTypeError, "stats"),  # type: ignore[arg-type]
        (lambda: Pool([DeviceSettings("sim://")], backoff=(0, 1)), InvalidArgumentError, "backoff"),
        (lambda: Pool([DeviceSettings("sim://")], backoff=(2.0, 1.0)), InvalidArgumentError, "backoff"),
        (lambda: DeviceSettings(""), InvalidArgumentError, "url"),
        (lambda: DeviceSettings("nosuch://"), InvalidArgumentError, "nosuch"),
        (lambda: DeviceSettings("sim://?rat=1"), InvalidArgumentError, "rat"),
        (lambda: DeviceSettings("sim://", {"bogus": 1}), InvalidArgumentError, "bogus"),
        (lambda: DeviceSettings("sim://", {"epsilon": 2}), InvalidArgumentError, "epsilon"),
        (lambda: DeviceSettings("sim://", {"extractor_seed": "xyz"}), InvalidArgumentError, "extractor_seed"),
    ],
)
def test_bad_arguments_are_refused_by_name(make: Callable[[], Any], error: type[QitError], match: str) -> None:
    with pytest.raises(error, match=match):
        make()


def test_bad_reads_are_refused_by_name() -> None:
    pool = Pool([DeviceSettings("sim://")])  # never started: nothing opened
    try:
        for n in (-1, MAX_REQUEST + 1):
            with pytest.raises(InvalidArgumentError, match="n:"):
                pool.read(n)
        with pytest.raises(InvalidTypeError, match="n:"):
            pool.try_read("16")  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="timeout"):
            pool.read(16, timeout=-1)
        with pytest.raises(InvalidArgumentError, match="timeout"):
            pool.read(16, timeout=float("nan"))
        assert pool.read(0) == b""
        assert pool.try_read(16) is None  # nothing buffered, nothing taken
    finally:
        pool.close()


def test_device_settings_hide_secrets() -> None:
    settings = DeviceSettings("sim://?seed=42&rate=1000", {"extractor_seed": "00" * 64})
    assert settings.public_url == "sim://?seed=***&rate=1000"
    assert "42" not in repr(settings) and "00" * 8 not in repr(settings)
    assert settings.options["extractor_seed"] == bytes(64)


def test_a_stats_object_counts_and_refuses_bad_values() -> None:
    stats = ServiceStats()
    stats.served("local", 32)
    stats.served("local", 8)
    stats.request("local", True)
    stats.request("https:alice", False, "limit")
    stats.client("local", 1)
    stats.client("local", 1)
    stats.client("local", -1)
    stats.credited(256, 64)
    snap = stats.snapshot()
    assert snap["served"] == {"local": 40}
    assert snap["requests"] == {
        "local": {"total": 1, "refused": {}},
        "https:alice": {"total": 1, "refused": {"limit": 1}},
    }
    assert snap["clients"] == {"local": {"open": 1, "total": 2}}
    assert snap["kernel"] == {"bits_credited": 256, "bytes_written": 64}
    with pytest.raises(InvalidArgumentError, match="nbytes"):
        stats.served("local", -1)
    with pytest.raises(InvalidTypeError, match="client_class"):
        stats.served(None, 1)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="delta"):
        stats.client("local", 2)


def test_a_reopened_device_that_replays_its_earlier_output_is_refused(
    pools: Callable[..., Pool], counting: Counting
) -> None:
    # A source the replay rule does not know (no file, no seed) whose output starts again at
    # each opening: the digest of the first bytes catches it.
    counting.replaying.add("sim://?frame=5")
    counting.fail["sim://?frame=5"] = (4096, DeviceDisconnected("gone"))
    pool = pools(["sim://?frame=5"])
    first = pool.read(4096 * 8, timeout=10)
    _until(lambda: _device(pool, 0)["state"] == "failed", what="the replay to be refused")
    device = _device(pool, 0)
    assert "repeats what sim://?frame=5 gave" in device["last_error"]
    assert device["reopens"] == 1
    time.sleep(0.5)  # not reopened again: it would replay again
    assert _device(pool, 0)["reopens"] == 1 and _device(pool, 0)["state"] == "failed"
    assert pool.try_read(1) is None
    assert np.array_equal(_served_by(_words([first]), 5), np.arange(4096, dtype=np.uint64))


def test_two_devices_with_the_same_output_serve_it_once(pools: Callable[..., Pool], counting: Counting) -> None:
    # Two URLs with the same tag: the same output from both.
    pool = pools(["sim://?frame=7", "sim://?bits=8&frame=7"], backoff=(30.0, 30.0))
    _until(lambda: sorted(d["state"] for d in pool.status()["devices"]) == ["failed", "healthy"], what="states")
    (failed,) = [d for d in pool.status()["devices"] if d["state"] == "failed"]
    assert "repeats what" in failed["last_error"] and failed["bytes_served"] == 0


# -- sources that replay their input: served once --------------------------------------------


def _capture(path: Path, samples: bytes, per_frame: int = 1000) -> str:
    """Writes ``samples`` as QDP/1 data frames to ``path``; returns its file:// URL."""
    out = b""
    for i in range(0, len(samples), per_frame):
        chunk = samples[i : i + per_frame]
        payload = len(chunk).to_bytes(2, "little") + b"\0\0" + chunk
        out += protocol.encode_frame(protocol.DATA, i // per_frame, payload)
    path.write_bytes(out)
    return f"file://{path}"


def test_a_capture_file_is_served_once_then_failed_for_good(tmp_path: Path) -> None:
    url = _capture(tmp_path / "capture.qdp", os.urandom(200_000))
    with qitcore.open(url, min_entropy=7.0) as stream:
        once = len(stream.read(1 << 30))
    assert once > 0
    pool = Pool([DeviceSettings(url, {"min_entropy": 7.0})], buffer_bytes=SMALL, backoff=FAST)
    try:
        pool.start()
        served = b""
        deadline = time.monotonic() + 20
        with pytest.raises(ServiceUnavailable):
            while time.monotonic() < deadline and len(served) <= 4 * once:
                served += pool.read(4096, timeout=2)
        device = _device(pool, 0)
        assert device["state"] == "failed" and device["reopens"] == 0, device
        assert "DeviceDisconnected" in device["last_error"]
        time.sleep(5 * FAST[1])  # a reopening would come within the backoff
        assert _device(pool, 0)["reopens"] == 0 and pool.try_read(1) is None
        # One pass at most, never the capture's entropy twice (the file was 36 times over before).
        assert device["bytes_served"] <= once and len(served) <= once
        # A reload naming it again does not serve it again, nor does another URL of the file.
        pool.reconfigure([DeviceSettings(url, {"min_entropy": 7.0})])
        _until(lambda: "served already" in (_device(pool, 0)["last_error"] or ""), what="the refusal")
        pool.reconfigure([DeviceSettings(f"{url}?bits=8", {"min_entropy": 7.0})])
        _until(lambda: "served already" in (_device(pool, 0)["last_error"] or ""), what="the refusal")
        assert _device(pool, 0)["state"] == "failed" and pool.try_read(1) is None
    finally:
        pool.close()


def test_a_seeded_simulator_is_not_reopened_after_it_fails(pools: Callable[..., Pool]) -> None:
    pool = pools(["sim://?seed=9&fault=disconnect:200000"])
    _until(lambda: _device(pool, 0)["state"] == "failed", what="the disconnection")
    time.sleep(5 * FAST[1])
    device = _device(pool, 0)
    assert device["reopens"] == 0 and device["state"] == "failed" and "DeviceDisconnected" in device["last_error"]
    # Without a seed the simulator's input is new at each opening: reopened as before.
    other = pools(["sim://?fault=disconnect:200000"])
    _until(lambda: _device(other, 0)["reopens"] >= 1, what="a reopening")


@pytest.mark.parametrize(
    "urls",
    [
        ["sim://?seed=7", "sim://?seed=7&frame=1000"],
        ["sim://?seed=7", "sim+pty://?seed=7"],
        ["file://{capture}", "file://{folder}/../{folder_name}/capture.qdp"],
    ],
)
def test_two_devices_reading_one_replayable_input_are_refused(urls: list[str], tmp_path: Path) -> None:
    capture = tmp_path / "capture.qdp"
    capture.write_bytes(b"")
    named = [u.format(capture=capture, folder=tmp_path, folder_name=tmp_path.name) for u in urls]
    devices = [DeviceSettings(u) for u in named]
    with pytest.raises(InvalidArgumentError, match="the same replayable input"):
        Pool(devices)
    with pytest.raises(InvalidArgumentError, match="the same replayable input"):
        ServiceConfig(devices=tuple(devices), local=None)
    Pool([devices[0], DeviceSettings("sim://?seed=8")]).close()  # different inputs are fine


def test_without_reopening_a_failed_device_stays_failed_until_reconfigured(pools: Callable[..., Pool]) -> None:
    pool = pools(["sim://?fault=stuck:50000"], reopen_after_health_failure=False)
    _until(lambda: _device(pool, 0)["state"] == "failed", what="the failure")
    time.sleep(4 * FAST[0])
    assert _device(pool, 0)["reopens"] == 0 and _device(pool, 0)["state"] == "failed"
    pool.reconfigure([DeviceSettings("sim://?fault=stuck:50000")])  # SIGHUP: opened again
    _until(lambda: _device(pool, 0)["health_failures"] == {"RepetitionCountFailure": 2}, what="the second failure")
    pool.reconfigure([DeviceSettings("sim://?fault=stuck:50000")], reopen_after_health_failure=True)
    _until(lambda: _device(pool, 0)["reopens"] >= 1, what="a reopening")


def test_settings_that_cannot_open_fail_for_good() -> None:
    pool = Pool([DeviceSettings("sim://", {"extractor_seed": "00" * 64})], buffer_bytes=SMALL, backoff=FAST)
    try:
        pool.start()
        _until(lambda: _device(pool, 0)["state"] == "failed", what="the failure")
        time.sleep(4 * FAST[0])
        device = _device(pool, 0)
        assert device["reopens"] == 0 and "InvalidLengthError: seed: expected 897 bytes" in device["last_error"]
    finally:
        pool.close()


# -- waking readers, deadlines, failures while a read waits ----------------------------------


def test_bytes_a_waiting_read_took_from_a_device_that_then_fails_are_not_served(
    pools: Callable[..., Pool], counting: Counting
) -> None:
    stats = ServiceStats()
    a_go, b_go = threading.Event(), threading.Event()
    counting.pause["sim://?frame=1"] = (512, a_go)  # 4096 bytes, then nothing until a_go
    counting.fail["sim://?frame=1"] = (512, RepetitionCountFailure("Repetition Count Test failed"))
    counting.pause["sim://?frame=2"] = (0, b_go)  # nothing until b_go
    pool = pools(["sim://?frame=1", "sim://?frame=2"], stats=stats, backoff=(30.0, 30.0))
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(pool.read(8192, timeout=20)))
    reader.start()
    try:
        # The reader holds device 1's 4096 bytes and waits for more.
        _until(
            lambda: counting.next.get("sim://?frame=1") == 512 and _device(pool, 0)["buffered"] == 0, what="the take"
        )
        a_go.set()  # device 1's health test fires
        _until(lambda: _device(pool, 0)["state"] == "failed", what="the failure")
        b_go.set()  # device 2 serves
    finally:
        a_go.set()
        b_go.set()
        reader.join(30)
    assert len(got) == 1 and len(got[0]) == 8192
    words = _words(got)
    assert len(_served_by(words, 1)) == 0, "bytes taken before the failure were served after it"
    assert np.array_equal(_served_by(words, 2), np.arange(1024, dtype=np.uint64))
    assert _device(pool, 0)["bytes_served"] == 0
    assert stats.snapshot()["discarded"] >= 4096


def test_a_device_is_closed_outside_the_pools_lock(pools: Callable[..., Pool], counting: Counting) -> None:
    pool = pools(["sim://?frame=1", "sim://?frame=2"])
    _until(lambda: all(d["buffered"] > 0 for d in pool.status()["devices"]), what="bytes from both")
    counting.slow_close = 1.5
    removing = threading.Thread(target=pool.reconfigure, args=([DeviceSettings("sim://?frame=2")],))
    removing.start()
    try:
        time.sleep(0.2)  # device 1 is being closed now
        started = time.monotonic()
        assert pool.try_read(8) is not None
        took = time.monotonic() - started
    finally:
        removing.join(10)
        counting.slow_close = 0.0
    assert took < 0.5, f"a reader waited {took:.2f} s for a device to close"


def test_cancel_reads_wakes_waiting_reads_and_stopping_refuses_later_ones(pools: Callable[..., Pool]) -> None:
    pool = pools(["sim://?fault=stuck:0"])  # never healthy
    raised: list[BaseException] = []

    def reader() -> None:
        try:
            pool.read(16, timeout=30)
        except ServiceUnavailable as exc:
            raised.append(exc)

    waiting = threading.Thread(target=reader)
    waiting.start()
    time.sleep(0.3)
    started = time.monotonic()
    pool.cancel_reads()
    waiting.join(5)
    assert time.monotonic() - started < 1 and len(raised) == 1
    assert "stopping or restarting" in str(raised[0])
    # Later reads wait as before ...
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable, match="no healthy device"):
        pool.read(16, timeout=0.3)
    assert time.monotonic() - started >= 0.25
    # ... unless the service is stopping.
    pool.cancel_reads(stopping=True)
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable, match="stopping"):
        pool.read(16, timeout=30)
    assert time.monotonic() - started < 0.5


def test_a_read_ends_at_its_deadline(pools: Callable[..., Pool]) -> None:
    pool = pools(["sim://?fault=stuck:0"])
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable, match="no healthy device"):
        pool.read(16, timeout=30, deadline=started + 0.3)
    assert 0.25 <= time.monotonic() - started < 2
    # A deadline already past: refused at once (the request waited its time in a queue).
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable):
        pool.read(16, deadline=started - 1)
    assert time.monotonic() - started < 0.2
    with pytest.raises(InvalidArgumentError, match="deadline"):
        pool.read(16, deadline=float("nan"))


def test_a_reload_while_a_device_is_failing_for_good_reopens_it(
    pools: Callable[..., Pool], counting: Counting, monkeypatch: pytest.MonkeyPatch
) -> None:
    go = threading.Event()
    counting.pause["sim://?frame=1"] = (0, go)
    counting.fail["sim://?frame=1"] = (1000, RepetitionCountFailure("Repetition Count Test failed"))
    pool = pools(["sim://?frame=1"], reopen_after_health_failure=False)
    failed = pool._failed
    reloads: list[bool] = []

    def failing(dev: Any, exc: BaseException, state: str) -> None:
        failed(dev, exc, state)
        if not reloads:
            # SIGHUP names it again at the instant its thread is about to end.
            reloads.append(True)
            pool.reconfigure([DeviceSettings("sim://?frame=1")])

    monkeypatch.setattr(pool, "_failed", failing)
    go.set()
    _until(lambda: _device(pool, 0)["reopens"] >= 1 and _device(pool, 0)["state"] == "healthy", what="the reopening")
    assert reloads == [True] and counting.opened["sim://?frame=1"] == 2


def test_bytes_of_a_device_removed_by_a_reload_are_counted_as_discarded(
    pools: Callable[..., Pool], counting: Counting
) -> None:
    stats = ServiceStats()
    pool = pools(["sim://?frame=1", "sim://?frame=2"], stats=stats)
    _until(lambda: _device(pool, 0)["buffered"] > 0, what="bytes from the first device")
    before = _device(pool, 0)["buffered"]
    pool.reconfigure([DeviceSettings("sim://?frame=2")])
    assert stats.snapshot()["discarded"] >= before > 0


def test_bytes_a_read_took_before_its_wait_ran_out_are_served_next(
    pools: Callable[..., Pool], counting: Counting
) -> None:
    """A read that fails gives back what it took: the next reads get those bytes, in the device's
    order and once each, and nothing is counted as discarded (a client whose wait runs out, on
    purpose or not, does not waste the device's output)."""
    stats = ServiceStats()
    go = threading.Event()
    counting.pause["sim://?frame=1"] = (512, go)  # 4096 bytes, then nothing until go
    pool = pools(["sim://?frame=1"], stats=stats)
    try:
        _until(lambda: _device(pool, 0)["buffered"] == 4096, what="the first bytes")
        with pytest.raises(ServiceUnavailable):
            pool.read(8192, timeout=0.3)  # takes the 4096, then its wait runs out
        assert _device(pool, 0)["buffered"] == 4096 and stats.snapshot()["discarded"] == 0
        words = _words([pool.read(1000, timeout=5), pool.read(3096, timeout=5)])
        assert np.array_equal(_served_by(words, 1), np.arange(512, dtype=np.uint64))
        assert _device(pool, 0)["bytes_served"] == 4096
    finally:
        go.set()
