"""The kernel feed: the credit of a write (exact, against a brute-force reference), the settings,
and, as root, real ``RNDADDENTROPY`` writes into this machine's pool; the refusal without
CAP_SYS_ADMIN, checked in a child process running as ``nobody``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import select
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from qitcore.errors import DeviceError, DeviceNotFound, InvalidArgumentError, InvalidTypeError, ServiceUnavailable
from qitcore.service import kernel
from qitcore.service.config import DeviceSettings
from qitcore.service.kernel import KernelFeeder, KernelSettings, credit_bits
from qitcore.service.pool import Pool
from qitcore.service.stats import ServiceStats

from .as_user import run_as

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="RNDADDENTROPY needs CAP_SYS_ADMIN: run the tests as root")
needs_random = pytest.mark.skipif(not os.path.exists("/dev/random"), reason="no /dev/random on this system")
ENTROPY_AVAIL = Path("/proc/sys/kernel/random/entropy_avail")
POOLSIZE = Path("/proc/sys/kernel/random/poolsize")


HARDWARE = "truerng:///dev/ttyACM0"
"""A physical source's URL (never opened here: the pools of these tests are fakes)."""


class BytesPool:
    """Fresh bytes on every read; ``available=False``: no healthy device. ``urls``: the devices
    its status shows (a physical source unless told otherwise)."""

    epsilon = 2.0**-64

    def __init__(self, available: bool = True, urls: tuple[str, ...] = (HARDWARE,)) -> None:
        self.available = available
        self.taken = 0
        self.lock = threading.Lock()
        self.urls = urls

    def status(self) -> dict[str, Any]:
        devices = [{"url": url, "state": "healthy", "epsilon": self.epsilon} for url in self.urls]
        return {"buffered": 0, "capacity": 1 << 20, "devices": devices}

    def read(self, n: int, timeout: float | None = None) -> bytes:
        if not self.available:
            time.sleep(min(timeout or 0.0, 0.05))
            raise ServiceUnavailable("no healthy device (test)")
        with self.lock:
            self.taken += n
        return os.urandom(n)

    def try_read(self, n: int) -> bytes | None:
        return self.read(n) if self.available else None


def reference_credit(nbytes: int, epsilon: float, cap: float, served_bits: int = 0) -> int:
    """The largest c with 2^-c >= (L + N)·ε + 2^-L, found by counting down from L; then the caps."""
    bits = 8 * nbytes
    distance = (bits + served_bits) * Fraction(epsilon) + Fraction(1, 2**bits)
    c = bits
    while c > 0 and Fraction(1, 2**c) < distance:
        c -= 1
    return min(c, int(cap * nbytes))


# -- the credit --------------------------------------------------------------------------------


def test_a_64_byte_write_at_the_default_epsilon_is_credited_54_bits() -> None:
    # 512 blocks at most, each 2^-64-close: 512·2^-64 = 2^-55, plus 2^-512 puts it just above
    # 2^-55, so the guarantee is just under 55 bits.
    assert credit_bits(64, 2.0**-64, 8.0) == 54
    assert credit_bits(64, 2.0**-64, 0.5) == 32  # the cap binds
    assert credit_bits(64, 2.0**-300, 8.0) == 290  # 2^-291 from the blocks: the bound moves with ε
    assert credit_bits(4, 2.0**-300, 8.0) == 31  # just under the 32 bits written: 2^-32 plus a little
    assert credit_bits(64, 0.25, 8.0) == 0  # a useless guarantee credits nothing


@given(
    st.integers(1, 300),
    st.one_of(st.floats(1e-300, 0.999), st.integers(1, 1000).map(lambda e: 2.0**-e)),
    st.floats(0, 8),
    st.one_of(st.just(0), st.integers(0, 1 << 70)),
)
def test_the_credit_is_exactly_the_reference(nbytes: int, epsilon: float, cap: float, served: int) -> None:
    assert credit_bits(nbytes, epsilon, cap, served_bits=served) == reference_credit(nbytes, epsilon, cap, served)


def test_output_served_to_others_lowers_the_credit() -> None:
    # Others may hold every block served: the whole output, (L + N)·ε-close, bounds the guess.
    assert credit_bits(64, 2.0**-64, 8.0, served_bits=0) == 54
    assert credit_bits(64, 2.0**-64, 8.0, served_bits=8 << 20) == 40  # 1 MiB served: (2^23 + 512)·2^-64
    assert credit_bits(64, 2.0**-64, 8.0, served_bits=8 << 40) == 20  # 1 TiB
    assert credit_bits(64, 2.0**-100, 8.0, served_bits=8 << 40) == 56
    with pytest.raises(InvalidArgumentError, match="served_bits"):
        credit_bits(64, 2.0**-64, 8.0, served_bits=-1)


@pytest.mark.parametrize(
    ("args", "words"),
    [((0, 1e-20, 1.0), "nbytes"), ((64, 0.0, 1.0), "epsilon"), ((64, 1.0, 1.0), "epsilon"), ((64, 1e-20, 9), "cap")],
)
def test_the_credit_checks_its_arguments(args: tuple[Any, ...], words: str) -> None:
    with pytest.raises(InvalidArgumentError, match=words):
        credit_bits(*args)


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"credit_cap": 8.5}, InvalidArgumentError, "kernel credit_cap"),
        ({"credit_cap": "1"}, InvalidTypeError, "kernel credit_cap"),
        ({"chunk": 8}, InvalidArgumentError, "kernel chunk: expected 16 to 4096"),
        ({"chunk": 64.0}, InvalidArgumentError, "kernel chunk"),
        ({"interval": 0}, InvalidArgumentError, "kernel interval"),
        ({"device": ""}, InvalidArgumentError, "kernel device"),
    ],
)
def test_settings_are_checked_by_name(kwargs: dict[str, Any], error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words):
        KernelSettings(**kwargs)


def test_a_missing_device_is_device_not_found(tmp_path: Path) -> None:
    feeder = KernelFeeder(BytesPool(), ServiceStats(), KernelSettings(device=str(tmp_path / "random")))
    with pytest.raises(DeviceNotFound, match="does not exist"):
        feeder.check()


def test_a_device_that_is_not_the_kernels_pool_is_refused_at_check(tmp_path: Path) -> None:
    path = tmp_path / "plain"
    path.write_bytes(b"")
    feeder = KernelFeeder(BytesPool(), ServiceStats(), KernelSettings(device=str(path)))
    with pytest.raises(DeviceError, match="RNDADDENTROPY on .* failed"):
        feeder.check()


# -- which sources may be credited --------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("sim://", "kernel feed: sim:// is a simulator; its output is not entropy"),
        ("sim+pty://?seed=***", "kernel feed: sim+pty://?seed=*** is a simulator"),
        ("qitcored:///run/q.sock", "qitcored:///run/q.sock passes another service's output through"),
        ("https://rng.example:8444?cert=c.pem", "https://rng.example:8444?cert=c.pem passes another service's"),
        ("file:///var/capture.qdp", "file:///var/capture.qdp is a recording"),
        ("loop://", "loop:// is a loopback for tests"),
        ("socket://10.0.0.1:7000", "socket://10.0.0.1:7000 carries raw samples over an unauthenticated"),
        ("nosuch://x", r"nosuch://x is a source this version does not know to be physical"),
    ],
)
def test_sources_that_are_not_entropy_are_refused_by_name(url: str, words: str) -> None:
    refusal = kernel.credit_refusal(url)
    assert refusal is not None and refusal.startswith(
        words if words.startswith("kernel feed: ") else f"kernel feed: {words}"
    ), refusal


@pytest.mark.parametrize("url", [HARDWARE, "truerngpro:///dev/ttyACM1", "chaoskey://", "onerng:///dev/ttyACM0"])
def test_physical_sources_may_be_credited(url: str) -> None:
    assert kernel.credit_refusal(url) is None


def fake_sysfs(tmp_path: Path, **files: str) -> str:
    for name, text in files.items():
        (tmp_path / name).write_text(text + "\n")
    return str(tmp_path)


def test_the_kernels_own_hwrng_is_refused_while_the_kernel_credits_it(tmp_path: Path) -> None:
    sysfs = fake_sysfs(tmp_path, rng_current="virtio_rng.0", rng_quality="1024")
    refusal = kernel.credit_refusal(f"hwrng://?sysfs={sysfs}")
    assert refusal is not None and "which the kernel already credits (rng_quality 1024)" in refusal
    (tmp_path / "rng_quality").write_text("0\n")  # the kernel credits nothing of it: this feed may
    assert kernel.credit_refusal(f"hwrng://?sysfs={sysfs}") is None
    (tmp_path / "rng_quality").unlink()  # nothing says it does not: refused
    refusal = kernel.credit_refusal(f"hwrng://?sysfs={sysfs}")
    assert refusal is not None and "no rng_quality" in refusal


def fake_kernel(feeder: KernelFeeder, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[int]:
    """Points ``feeder`` at a plain file and records the credit of each ioctl instead of making it
    (the tests of what is credited need no root)."""
    credits: list[int] = []
    (tmp_path / "random").write_bytes(b"")
    monkeypatch.setattr(feeder, "settings", dataclasses.replace(feeder.settings, device=str(tmp_path / "random")))
    monkeypatch.setattr(feeder, "_ioctl", lambda fd, data, bits: credits.append(bits))
    return credits


@pytest.mark.parametrize("url", ["sim://", "qitcored://", "https://127.0.0.1:8444?cert=c.pem", "file:///x"])
def test_check_refuses_a_credit_from_a_source_that_is_not_entropy(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = BytesPool(urls=(HARDWARE, url))
    feeder = KernelFeeder(pool, ServiceStats(), KernelSettings(credit_cap=1.0))
    calls = fake_kernel(feeder, monkeypatch, tmp_path)
    with pytest.raises(InvalidArgumentError, match=rf"kernel feed: {re.escape(url)} .*set \[kernel\] credit_cap = 0"):
        feeder.check()
    assert calls == []  # refused before anything was opened or written
    assert pool.taken == 0


def test_without_credit_any_source_may_be_fed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stats = ServiceStats()
    feeder = KernelFeeder(BytesPool(urls=("sim://",)), stats, KernelSettings(credit_cap=0))
    credits = fake_kernel(feeder, monkeypatch, tmp_path)
    feeder.check()
    try:
        assert [feeder.feed_once() for _ in range(3)] == [0, 0, 0]
    finally:
        feeder.stop()
    assert credits == [0, 0, 0, 0]  # the check's empty write, then three without credit
    assert stats.snapshot()["kernel"] == {"bits_credited": 0, "bytes_written": 192}


def test_when_a_sighup_brings_a_simulator_the_feed_stops_crediting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    pool = BytesPool()
    feeder = KernelFeeder(pool, ServiceStats(), KernelSettings(credit_cap=8.0))
    fake_kernel(feeder, monkeypatch, tmp_path)
    feeder.check()
    try:
        assert feeder.feed_once() == 54
        pool.urls = (HARDWARE, "sim://")  # what Pool.reconfigure does at SIGHUP
        with caplog.at_level("WARNING", logger="qitcore.service.kernel"):
            assert feeder.feed_once() == 0
            assert feeder.feed_once() == 0
        refusal = "kernel feed: sim:// is a simulator; its output is not entropy"
        logged = [r.getMessage() for r in caplog.records]
        assert logged.count(f"kernel feed: writing without credit from now on: {refusal}") == 1  # once, not per write
        assert feeder.status()["credit_refused"] == refusal
        assert feeder.status()["bits_per_write"] == 0
        pool.urls = (HARDWARE,)
        assert feeder.feed_once() > 0
        assert feeder.status()["credit_refused"] is None
    finally:
        feeder.stop()


def test_the_credit_uses_the_epsilon_of_the_devices_configured_at_the_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = BytesPool()
    pool.epsilon = 2.0**-100
    feeder = KernelFeeder(pool, ServiceStats(), KernelSettings(credit_cap=8.0))
    fake_kernel(feeder, monkeypatch, tmp_path)
    feeder.check()
    try:
        assert feeder.feed_once() == 90  # (512 + 0)·2^-100 = 2^-91, plus 2^-512: just under 91
        pool.epsilon = 2.0**-64  # a SIGHUP brings a device with a larger ε
        # 512 bits served before (to the kernel itself): (512 + 512)·2^-64 = 2^-54
        assert feeder.feed_once() == 53
    finally:
        feeder.stop()


def test_the_credit_counts_what_was_served_to_others(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stats = ServiceStats()
    feeder = KernelFeeder(BytesPool(), stats, KernelSettings(credit_cap=8.0))
    fake_kernel(feeder, monkeypatch, tmp_path)
    feeder.check()
    try:
        stats.served("local", 1 << 20)
        stats.discarded(1 << 20)
        assert feeder.feed_once() == credit_bits(64, 2.0**-64, 8.0, served_bits=16 << 20) == 39
        assert feeder.status()["bits_per_write"] == credit_bits(64, 2.0**-64, 8.0, served_bits=(16 << 20) + 512)
    finally:
        feeder.stop()


def test_start_after_check_does_not_check_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    feeder = KernelFeeder(BytesPool(), ServiceStats(), KernelSettings(interval=3600))
    calls = fake_kernel(feeder, monkeypatch, tmp_path)
    opened: list[int] = []
    real_open = feeder._open
    monkeypatch.setattr(feeder, "_open", lambda: opened.append(1) or real_open())
    feeder.check()
    feeder.start()
    try:
        deadline = time.monotonic() + 10
        while len(calls) < 2 and time.monotonic() < deadline:  # the check's write, then the first feed
            time.sleep(0.01)
    finally:
        feeder.stop()
    assert opened == [1]
    assert calls[0] == 0 and len(calls) >= 2  # (a plain file always polls writable: a burst)


# -- the real kernel ---------------------------------------------------------------------------


@needs_root
@needs_random
def test_as_root_the_kernel_accepts_the_writes_and_credits_are_counted() -> None:
    stats = ServiceStats()
    pool = BytesPool()
    feeder = KernelFeeder(pool, stats, KernelSettings())
    before = int(ENTROPY_AVAIL.read_text()) if ENTROPY_AVAIL.exists() else None
    feeder.check()
    try:
        credited = [feeder.feed_once() for _ in range(8)]
    finally:
        feeder.stop()
    # Each write counts the ones before it as output others may hold: 54 bits, then a little less.
    expected = [credit_bits(64, 2.0**-64, 1.0, served_bits=512 * i) for i in range(8)]
    assert credited == expected and expected[0] == 54 and expected[-1] == 51
    assert stats.snapshot()["kernel"] == {"bits_credited": sum(expected), "bytes_written": 512}
    assert stats.snapshot()["served"] == {"kernel": 512}
    assert stats.snapshot()["requests"] == {"kernel": {"total": 8, "refused": {}}}
    assert pool.taken == 512
    if before is not None:
        after = int(ENTROPY_AVAIL.read_text())
        size = int(POOLSIZE.read_text()) if POOLSIZE.exists() else 4096
        print(f"entropy_avail: {before} before, {after} after (pool size {size} bits)")
        assert 0 <= after <= size
        if before < size:  # a full pool (kernels since 5.18 keep 256 once initialised) cannot show it
            assert after > before


@needs_root
@needs_random
@pytest.mark.parametrize("chunk", [16, 1024, 4096])
def test_writes_of_every_allowed_size_are_accepted(chunk: int) -> None:
    stats = ServiceStats()
    feeder = KernelFeeder(BytesPool(), stats, KernelSettings(chunk=chunk, credit_cap=8.0))
    feeder.check()
    try:
        bits = feeder.feed_once()
    finally:
        feeder.stop()
    assert bits == credit_bits(chunk, BytesPool.epsilon, 8.0) > 0
    assert stats.snapshot()["kernel"] == {"bits_credited": bits, "bytes_written": chunk}


@needs_root
@needs_random
def test_the_feed_thread_writes_every_interval_and_stops() -> None:
    stats = ServiceStats()
    feeder = KernelFeeder(BytesPool(), stats, KernelSettings(interval=0.1, chunk=32))
    feeder.start()
    try:
        deadline = time.monotonic() + 10
        while stats.snapshot()["kernel"]["bytes_written"] < 3 * 32 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        feeder.stop()
    feeder.stop()  # twice: nothing
    written = stats.snapshot()["kernel"]["bytes_written"]
    assert written >= 3 * 32 and written % 32 == 0
    time.sleep(0.3)
    assert stats.snapshot()["kernel"]["bytes_written"] == written  # stopped means stopped


class AlwaysAsking:
    """A poller on which the kernel always asks for entropy (POLLOUT), as an old kernel below its
    wakeup threshold does."""

    def __init__(self) -> None:
        self.fds: dict[int, int] = {}

    def register(self, fd: int, events: int) -> None:
        self.fds[fd] = events

    def poll(self, timeout: float | None = None) -> list[tuple[int, int]]:
        return [(fd, select.POLLOUT) for fd, ev in self.fds.items() if ev & select.POLLOUT]


@needs_root
@needs_random
def test_while_the_kernel_asks_the_feed_writes_in_bounded_bursts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(select, "poll", AlwaysAsking)
    stats = ServiceStats()
    feeder = KernelFeeder(BytesPool(), stats, KernelSettings(interval=3600, chunk=16))
    feeder.start()
    try:
        time.sleep(0.35)
    finally:
        feeder.stop()
    writes = stats.snapshot()["kernel"]["bytes_written"] // 16
    # The interval alone would allow one write; the kernel's asking brings bursts of
    # BURST_WRITES, a pause of PAUSE s between them: at most 4 bursts in 0.35 s.
    assert kernel.BURST_WRITES < writes <= 4 * kernel.BURST_WRITES


@needs_root
@needs_random
def test_without_a_healthy_device_the_feed_writes_nothing_and_goes_on() -> None:
    stats = ServiceStats()
    pool = BytesPool(available=False)
    feeder = KernelFeeder(pool, stats, KernelSettings(interval=0.1))
    feeder.start()
    try:
        time.sleep(0.3)
        assert stats.snapshot()["kernel"]["bytes_written"] == 0
        pool.available = True
        deadline = time.monotonic() + 10
        while not stats.snapshot()["kernel"]["bytes_written"] and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        feeder.stop()
    assert stats.snapshot()["kernel"]["bytes_written"] > 0
    assert stats.snapshot()["requests"]["kernel"]["refused"]["unavailable"] >= 1


@needs_root
@needs_random
def test_a_real_pool_on_the_simulator_is_refused_a_credit_and_fed_without() -> None:
    stats = ServiceStats()
    pool = Pool([DeviceSettings("sim://?rate=2e6", {"epsilon": 2.0**-100})], buffer_bytes=1 << 16, stats=stats)
    pool.start()
    try:
        with pytest.raises(InvalidArgumentError, match=r"kernel feed: sim://\?rate=2e6 is a simulator"):
            KernelFeeder(pool, stats, KernelSettings(credit_cap=8.0)).check()
        feeder = KernelFeeder(pool, stats, KernelSettings(credit_cap=0, chunk=64))
        feeder.check()
        try:
            assert feeder.feed_once(timeout=20) == 0
        finally:
            feeder.stop()
    finally:
        pool.close()
    assert stats.snapshot()["kernel"] == {"bits_credited": 0, "bytes_written": 64}


@needs_root
@needs_random
def test_the_feed_rate_from_a_real_pool(capsys: pytest.CaptureFixture[str]) -> None:
    """Writes back to back (a pool read and the ioctl) from a pool on the simulator, fed without
    credit as the simulator must be; the credit column is what a physical device at the same ε
    would get for its first write. Prints the figures of docs/service-network.md (``-s``)."""
    stats = ServiceStats()
    pool = Pool([DeviceSettings("sim://?rate=4e7", {})], buffer_bytes=1 << 22, stats=stats)
    pool.start()
    lines = []
    try:
        pool.read(1 << 16, 20)  # the device is up
        for chunk in (64, 512, 4096):
            feeder = KernelFeeder(pool, stats, KernelSettings(credit_cap=0, chunk=chunk))
            feeder.check()
            try:
                writes, began = 0, time.perf_counter()
                while time.perf_counter() - began < 0.5:
                    feeder.feed_once(timeout=10)
                    writes += 1
                took = time.perf_counter() - began
            finally:
                feeder.stop()
            bits = credit_bits(chunk, pool.epsilon, 8.0)
            lines.append(
                f"chunk {chunk:4d}: {writes / took:8.0f} writes/s, {writes * chunk / took / 1e6:6.2f} MB/s; "
                f"a physical source at this ε: {bits} bits a write, {writes * bits / took / 1e6:.2f} Mbit/s"
            )
            assert writes > 0
    finally:
        pool.close()
    with capsys.disabled():
        print("\nkernel feed rate (credit_cap = 0 on sim://):\n" + "\n".join(lines))
    assert stats.snapshot()["requests"]["kernel"]["refused"] == {}  # the kernel took every write


def check_as(uid: int) -> str:
    """What :meth:`KernelFeeder.check` says run as ``uid`` (and with it without any capability)."""

    def check() -> str:
        try:
            KernelFeeder(BytesPool(), ServiceStats(), KernelSettings()).check()
        except DeviceError as exc:
            return f"refused: {exc}"
        return "accepted"

    return str(run_as(uid, check))


@needs_root
@needs_random
def test_without_cap_sys_admin_check_says_what_is_missing() -> None:
    outcome = check_as(65534)
    assert outcome.startswith("refused: kernel feed: the kernel refused RNDADDENTROPY on /dev/random"), outcome
    assert "CAP_SYS_ADMIN" in outcome
    assert check_as(0) == "accepted"  # the same check as root: the refusal was the privilege's
