"""Threads and waits: eight threads sharing each public object get what one thread gets (no
deadlock, no lost or repeated output), every test bounded in time; blocking reads answer Ctrl-C
and fail with a named error when the device sends no valid frame."""

from __future__ import annotations

import faulthandler
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import qitcore
import qitcore.extract
import qitcore.health
from qitcore import _core
from qitcore.errors import NoValidFrames

THREADS = 8
ROUNDS = 12
JOIN_SECONDS = 60.0
REPO = Path(__file__).resolve().parents[1]


def run_threads(work: Callable[[int], Any], threads: int = THREADS) -> list[Any]:
    """Runs ``work(i)`` on ``threads`` threads started together; their results in thread order.
    Fails (rather than hanging) when a thread is still running after JOIN_SECONDS. A deadlock
    that holds the GIL stops every Python thread, the joining one too: then faulthandler, which
    needs no GIL, prints every thread's stack and ends the process."""
    faulthandler.dump_traceback_later(JOIN_SECONDS + 30, exit=True)
    try:
        return _run_threads(work, threads)
    finally:
        faulthandler.cancel_dump_traceback_later()


def _run_threads(work: Callable[[int], Any], threads: int) -> list[Any]:
    barrier = threading.Barrier(threads)
    results: list[Any] = [None] * threads
    errors: list[BaseException] = []

    def main(i: int) -> None:
        try:
            barrier.wait(timeout=JOIN_SECONDS)
            results[i] = work(i)
        except BaseException as exc:  # reported below, whatever it is
            errors.append(exc)

    pool = [threading.Thread(target=main, args=(i,), daemon=True) for i in range(threads)]
    for t in pool:
        t.start()
    deadline = time.monotonic() + JOIN_SECONDS
    for t in pool:
        t.join(max(0.0, deadline - time.monotonic()))
    stuck = [t.name for t in pool if t.is_alive()]
    assert not stuck, f"threads still running after {JOIN_SECONDS} s (deadlock?): {stuck}"
    if errors:
        raise errors[0]
    return results


def chunks_of(seed: int, count: int, size: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size, dtype=np.uint8).tobytes() for _ in range(count)]


@pytest.mark.parametrize("cls", [qitcore.extract.Toeplitz, qitcore.extract.ModifiedToeplitz])
@pytest.mark.parametrize(("n", "m", "size"), [(4096, 3000, 64 * 512), (256, 200, 256)])
def test_a_shared_hash_gives_each_thread_the_single_threaded_output(cls: Any, n: int, m: int, size: int) -> None:
    seed = bytes(range(256)) * ((n + m) // 2048 + 1)
    hash_ = cls(n, m, seed[: cls(n, m).seed_bits // 8 + (cls(n, m).seed_bits % 8 > 0)])
    inputs = [chunks_of(100 + i, ROUNDS, size) for i in range(THREADS)]
    # The reference: one thread, and for the smallest inputs the definition itself.
    expect = [[hash_.hash(x) for x in per_thread] for per_thread in inputs]
    got = run_threads(lambda i: [hash_.hash(x) for x in inputs[i]])
    assert got == expect
    if cls is qitcore.extract.Toeplitz and n == 256:
        bits = np.unpackbits(np.frombuffer(hash_.seed_bytes(), np.uint8))[: n + m - 1]
        x = np.unpackbits(np.frombuffer(inputs[0][0][: n // 8], np.uint8))
        matrix = np.array([[bits[(i - j) % (n + m - 1)] for j in range(n)] for i in range(m)], dtype=np.uint8)
        assert np.packbits(matrix @ x % 2).tobytes() == expect[0][0][: m // 8]


def test_a_shared_health_monitor_counts_what_one_thread_counts() -> None:
    # Both paths: small inputs (kept attached) and large ones (detached, long enough that the
    # others queue for the monitor meanwhile), process() and feed().
    sizes = [300, 1 << 20]
    inputs = [chunks_of(200 + i, ROUNDS, sizes[i % 2]) for i in range(THREADS)]
    single = qitcore.health.HealthMonitor(7.0, alpha=2.0**-40)
    for per_thread in inputs:
        for x in per_thread:
            single.process(x)

    shared = qitcore.health.HealthMonitor(7.0, alpha=2.0**-40)
    got = run_threads(lambda i: [shared.process(x) for x in inputs[i]])
    resolved = sum(d + e for per_thread in got for d, e in per_thread)
    # The totals do not depend on the order the threads' chunks were tested in: every sample is
    # counted once, and all but the last, incomplete window are resolved.
    total = sum(len(x) for per_thread in inputs for x in per_thread)
    assert shared.counters["samples"] == single.counters["samples"] == total
    assert shared.counters["released"] == single.counters["released"]
    assert resolved == single.counters["released"] + 1024
    assert shared.state == "healthy"

    feeder = qitcore.health.HealthMonitor(7.0, alpha=2.0**-40)
    released = run_threads(lambda i: sum(len(feeder.feed(x)) for x in inputs[i]))
    assert sum(released) == single.counters["released"]
    assert feeder.pending == single.counters["samples"] - single.counters["released"] - 1024


def seeded_stream(url: str = "sim://?seed=21") -> qitcore.QrngStream:
    """A stream whose every byte is the same on every run: seeded simulator, fixed extractor seed."""
    with qitcore.open(url) as probe:
        assert probe.block_shape is not None
        n, m = probe.block_shape
    seed = bytes((7 * k + 3) % 256 for k in range((n + m - 1 + 7) // 8))
    return qitcore.open(url, extractor_seed=seed)


def as_sorted(per_thread: list[list[bytes]]) -> list[bytes]:
    """Every thread's chunks together, in sorted order."""
    return sorted(chunk for chunks in per_thread for chunk in chunks)


def test_a_shared_stream_gives_each_read_a_contiguous_run_of_the_output() -> None:
    size = 5000
    with seeded_stream() as one:
        reference = one.read(THREADS * ROUNDS * size)
    with seeded_stream() as shared:
        got = run_threads(lambda i: [shared.read(size) for _ in range(ROUNDS)])
    expect = [reference[k : k + size] for k in range(0, len(reference), size)]
    assert as_sorted(got) == as_sorted([expect])


def test_a_shared_numpy_generator_and_quantum_random_lose_and_repeat_nothing() -> None:
    words = 64
    with seeded_stream() as one:
        g = np.random.Generator(qitcore.QuantumBitGenerator(one))
        reference = [g.integers(0, 2**64, size=words, dtype=np.uint64, endpoint=False).tobytes() for _ in range(96)]
    with seeded_stream() as shared:
        g = np.random.Generator(qitcore.QuantumBitGenerator(shared))
        got = run_threads(
            lambda i: [g.integers(0, 2**64, size=words, dtype=np.uint64).tobytes() for _ in range(96 // THREADS)]
        )
    assert as_sorted(got) == as_sorted([reference])

    size = 333
    with seeded_stream() as one:
        r = qitcore.QuantumRandom(one)
        reference = [r.randbytes(size) for _ in range(THREADS * ROUNDS)]
    with seeded_stream() as shared:
        r = qitcore.QuantumRandom(shared)
        got = run_threads(lambda i: [r.randbytes(size) for _ in range(ROUNDS)])
    assert as_sorted(got) == as_sorted([reference])


def test_shared_simulator_objects_and_decoders_do_not_deadlock() -> None:
    model = _core.NoiseModel(seed=5)
    decoder = _core.FrameDecoder()
    frame = _core.encode_frame(1, 0, b"\x00" * 8)
    outputs = run_threads(lambda i: [(len(model.read(4096)), len(decoder.feed(frame))) for _ in range(ROUNDS)])
    assert all(o == [(4096, 1)] * ROUNDS for o in outputs)
    assert decoder.stats()["bytes"] == THREADS * ROUNDS * len(frame)


# -- waits that never end: Ctrl-C and the frame watchdog ------------------------------------------

# URLs whose streams never see a valid frame: every frame dropped, half the bytes corrupted, or a
# file of zeros.
SILENT = ["sim://?fault=drop:1", "sim://?fault=corrupt:0.5", "file:///dev/zero?min_entropy=7"]

CHILD = """
import resource, sys, time
import qitcore, numpy as np
url, how = sys.argv[1], sys.argv[2]
stream = qitcore.open(url, frame_timeout=float("inf"))
if how == "numpy":
    draw = lambda: np.random.Generator(qitcore.QuantumBitGenerator(stream)).random(10)
else:
    draw = lambda: stream.read(8)
print("waiting", flush=True)
try:
    draw()
except KeyboardInterrupt:
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    print(f"interrupted {cpu.ru_utime + cpu.ru_stime:.3f}", flush=True)
    raise
"""


@pytest.mark.parametrize("url", SILENT)
@pytest.mark.parametrize("how", ["read", "numpy"])
def test_ctrl_c_interrupts_a_read_that_waits_for_ever(url: str, how: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "python")}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, url, how], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "waiting"
        time.sleep(1.0)
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=10)
        took = time.monotonic() - sent
    finally:
        child.kill()
        child.wait()
    assert "KeyboardInterrupt" in err, err[-2000:]
    assert took < 3.0, f"{took:.1f} s from SIGINT to exit"
    # While it waited (about a second), the process did not spin a core on the garbage.
    line = next(x for x in out.splitlines() if x.startswith("interrupted"))
    cpu = float(line.split()[1])
    assert cpu < 1.2, f"{cpu:.2f} s of CPU for about 1 s of waiting (and start-up)"


@pytest.mark.parametrize("url", SILENT)
def test_no_valid_frame_within_the_frame_timeout_fails_with_a_named_error(url: str) -> None:
    started = time.monotonic()
    with qitcore.open(url, frame_timeout=0.5) as s, pytest.raises(NoValidFrames, match="frame_timeout") as info:
        s.read(8)
    waited = time.monotonic() - started
    assert 0.45 <= waited < 5.0, waited
    assert isinstance(info.value, TimeoutError)


def test_the_frame_timeout_is_ten_seconds_unless_given() -> None:
    assert qitcore.devices.Options().frame_timeout == 10.0
    with qitcore.open("sim://?frame_timeout=0.3&fault=drop:1") as s, pytest.raises(NoValidFrames):
        s.read(1)
    # A healthy stream reads past the timeout: the watchdog only fires without valid frames.
    # (At 4,000 samples per second the simulator sends a 1024-sample frame every 0.26 s.)
    with qitcore.open("sim://?rate=4000", frame_timeout=0.8) as s:
        t = time.monotonic()
        while time.monotonic() - t < 2.0:
            assert len(s.read(100)) == 100


def test_a_fifo_without_a_writer_opens_at_once_and_its_reads_time_out(tmp_path: Path) -> None:
    fifo = tmp_path / "device.fifo"
    os.mkfifo(fifo)
    started = time.monotonic()
    with qitcore.open(f"file://{fifo}?min_entropy=7", frame_timeout=0.5) as s:
        assert time.monotonic() - started < 2.0  # opening a FIFO waits for its writer elsewhere
        with pytest.raises(NoValidFrames):
            s.read(8)
        # A writer that comes and goes lets the reader thread's open finish, so that it ends.
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
