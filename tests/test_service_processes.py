"""The randomness service as real processes: ``qitcore serve`` in a child process on the simulator
(``sim://`` and ``sim+pty://``), client processes reading through its Unix socket (and over
HTTPS), and what the issue promises of them:

- 8 local clients and 2 HTTPS clients reading at once: the union of every byte they received
  holds no repeated 16-byte block (the checker is shown to find a duplicated chunk in the same
  data);
- a stuck fault injected mid-run stops service from that device: its state turns ``failed``, its
  ``bytes_served`` stops growing, and no byte after the failure point reaches a client. With the
  simulator's and the extractor's seeds fixed, this process computes the exact bytes the device
  yields before its health test fails (``qitcore.open`` on the same URL and options); every byte
  the clients received lies in runs found in that prefix (replies of concurrent requests are
  pieced together from the device's output as it arrives), and none twice. With a healthy second
  device, the stuck one drops out (no more than its healthy bytes per opening served) while the
  clients read on;
- the daemon killed with SIGKILL: a client gets a clear error naming the socket, and reads again
  once a new daemon listens on the same path;
- a client of another uid is refused by the socket's mode, and let in once the mode allows it.

The helpers (starting a daemon, client processes, the repeat checker) are used by
``benches/bench_service.py`` and ``soak/test_service_soak.py`` too.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import qitcore
from qitcore.errors import DeviceDisconnected, DeviceNotFound, HealthTestFailure, QitError

from .as_user import run_as

SEED_BYTES = 897
"""Toeplitz seed of the simulator's default block and min-entropy (n + m - 1 bits, in bytes)."""
READY = "qitcore serve: listening on"
START_TIMEOUT = 30.0
"""Seconds a daemon may take to open its devices and listen (sim+pty:// compiles the firmware
on first use)."""


# -- the daemon --------------------------------------------------------------------------------


@dataclass
class Daemon:
    """A ``qitcore serve`` child process and what it wrote on stderr."""

    proc: subprocess.Popen[str]
    socket: Path
    lines: list[str] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)

    def status(self) -> dict[str, Any]:
        from qitcore.service.client import DaemonClient

        with DaemonClient(str(self.socket), timeout=10.0) as client:
            return client.status()

    def device(self, index: int = 0) -> dict[str, Any]:
        return devices_of(self.status())[index]

    def stderr(self) -> str:
        return "".join(self.lines)

    def stop(self) -> int:
        """SIGTERM (a clean stop), SIGKILL after 15 s; the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def devices_of(status: dict[str, Any]) -> list[dict[str, Any]]:
    """The device entries of a daemon's status."""
    devices: list[dict[str, Any]] = status["pool"]["devices"]
    return devices


def write_config(folder: Path, devices: Sequence[dict[str, Any]], **tables: dict[str, Any]) -> Path:
    """A TOML configuration: ``devices`` as ``[[device]]`` tables (strings, numbers, booleans),
    ``tables`` as ``[name]`` tables."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        return json.dumps(str(v))

    lines: list[str] = []
    for device in devices:
        lines.append("[[device]]")
        lines += [f"{k} = {value(v)}" for k, v in device.items()]
    for name, table in tables.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {value(v)}" for k, v in table.items()]
    path = folder / f"qitcored-{secrets.token_hex(4)}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def start_daemon(socket: Path, args: Sequence[str], timeout: float = START_TIMEOUT) -> Daemon:
    """Starts ``qitcore serve --socket SOCKET ARGS`` and waits for it to say it listens."""
    argv = [sys.executable, "-m", "qitcore", "serve", "--socket", str(socket), *args]
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    daemon = Daemon(proc, socket)

    def collect() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            daemon.lines.append(line)
            if READY in line:
                daemon.ready.set()
        daemon.ready.set()  # the process ended: stop waiting

    threading.Thread(target=collect, daemon=True).start()
    daemon.ready.wait(timeout)
    if not any(READY in line for line in daemon.lines) or proc.poll() is not None:
        daemon.stop()
        raise AssertionError(f"qitcore serve did not start within {timeout} s: {daemon.stderr()}")
    return daemon


@contextlib.contextmanager
def serving(socket: Path, args: Sequence[str]) -> Iterator[Daemon]:
    """A daemon for the length of the block, stopped with SIGTERM at its end (exit status 0)."""
    daemon = start_daemon(socket, args)
    try:
        yield daemon
    finally:
        code = daemon.stop()
    assert code == 0, f"qitcore serve exited with {code}: {daemon.stderr()}"


def in_state(daemon: Daemon, index: int, state: str) -> dict[str, Any] | None:
    """The daemon's device ``index`` if it is in ``state``, else None."""
    device = daemon.device(index)
    return device if device["state"] == state else None


def wait_for(predicate: Any, timeout: float, what: str) -> Any:
    """Polls ``predicate`` every 50 ms until it returns something true."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


# -- client processes ---------------------------------------------------------------------------

CLIENT = r"""
import json, sys, time
import qitcore
from qitcore.errors import QitError
from qitcore.service.client import DaemonClient

url, total, chunk, out, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], float(sys.argv[5])
kwargs = json.loads(sys.argv[6])
sizes, error = [], None
start = time.monotonic()
with open(out, "wb") as f:
    try:
        if url.startswith("requests:"):
            # One request per read, one reply each: a chunk is a run of the pool's bytes as served.
            source = DaemonClient(url.removeprefix("requests:"), **kwargs)
        else:
            source = qitcore.open(url, **kwargs)
        with source:
            got = 0
            while got < total and time.monotonic() - start < seconds:
                data = source.read(min(chunk, total - got))
                if data:
                    f.write(data)
                    sizes.append(len(data))
                    got += len(data)
    except QitError as exc:
        error = {"type": type(exc).__name__, "message": str(exc)}
print(json.dumps({"sizes": sizes, "error": error, "elapsed": time.monotonic() - start}))
"""
"""A client process: reads ``total`` bytes from ``url`` in reads of ``chunk`` bytes (or until
``seconds`` pass, or an error), writes them to ``out`` and prints the sizes read and the error
as JSON. ``url`` is a device URL for :func:`qitcore.open` (``qitcored://PATH``,
``https://…``), or ``requests:PATH`` for a :class:`DaemonClient` on that socket. ``kwargs``:
keyword arguments for either."""


@dataclass
class ClientResult:
    data: bytes
    sizes: list[int]
    error: dict[str, str] | None
    elapsed: float

    def chunks(self) -> Iterator[bytes]:
        at = 0
        for n in self.sizes:
            yield self.data[at : at + n]
            at += n


def start_client(url: str, total: int, chunk: int, out: Path, seconds: float, **kwargs: Any) -> subprocess.Popen[str]:
    argv = [sys.executable, "-c", CLIENT, url, str(total), str(chunk), str(out), str(seconds), json.dumps(kwargs)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish_client(proc: subprocess.Popen[str], out: Path, timeout: float) -> ClientResult:
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        raise AssertionError(f"a client process did not finish within {timeout} s: {stderr}") from None
    assert proc.returncode == 0, f"client process failed ({proc.returncode}): {stderr}"
    report = json.loads(stdout.splitlines()[-1])
    data = out.read_bytes()
    assert sum(report["sizes"]) == len(data)
    return ClientResult(data, report["sizes"], report["error"], report["elapsed"])


def run_clients(
    urls: Sequence[str], folder: Path, total: int | Sequence[int], chunk: int, seconds: float, **kwargs: Any
) -> list[ClientResult]:
    """One client process per URL, all at once (``total`` bytes each, or ``total[i]`` for the
    i-th); their results once all have ended."""
    totals = [total] * len(urls) if isinstance(total, int) else list(total)
    procs = []
    for i, (url, n) in enumerate(zip(urls, totals, strict=True)):
        out = folder / f"client-{i}-{secrets.token_hex(3)}.bin"
        procs.append((start_client(url, n, chunk, out, seconds, **kwargs), out))
    try:
        return [finish_client(p, out, seconds + 60) for p, out in procs]
    finally:
        for p, _ in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


# -- the repeat checker -------------------------------------------------------------------------

WINDOWS = 1 << 22
"""Sliding windows compared per step (memory: a few times 8 bytes each)."""


HASH_BITS = 24
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _hash(keys: np.ndarray[Any, np.dtype[np.uint64]]) -> np.ndarray[Any, np.dtype[np.uint64]]:
    """The top ``HASH_BITS`` bits of a multiplicative hash of each key."""
    hashed: np.ndarray[Any, np.dtype[np.uint64]] = (keys * _GOLDEN) >> np.uint64(64 - HASH_BITS)
    return hashed


def repeats(data: bytes | bytearray | memoryview, limit: int = 10) -> list[tuple[int, int]]:
    """Where a 16-byte block of ``data`` occurs again: pairs of offsets ``(a, b)``, ``a < b``, at
    which the same 16 bytes occur, one of them a multiple of 16; at most ``limit`` pairs (sorted),
    an empty list when there is none.

    It finds every aligned block repeated anywhere, hence every repeated run of 31 bytes or more
    (such a run holds an aligned block), whatever the requests' sizes were. Aligned blocks are
    indexed by their first 8 bytes; every hit on them is compared in full, so a report is a real
    repeat (a missed one needs two distinct blocks of ``data`` to share 8 bytes, for random bytes
    a chance of about ``(len(data)/16)**2 / 2**65``).
    """
    buf = np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
    n_blocks = len(buf) // 16
    if n_blocks < 1:
        return []
    keys = buf[: n_blocks * 16].view("<u8")[::2]
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    # Keys shared by several aligned blocks: exact repeats or (rarely) 8-byte coincidences.
    shared = np.zeros(n_blocks, dtype=bool)
    same = ordered[1:] == ordered[:-1]
    shared[1:] |= same
    shared[:-1] |= same
    found: set[tuple[int, int]] = set()

    def block(at: int) -> bytes:
        return bytes(buf[at : at + 16])

    for i in np.flatnonzero(shared):
        # Every block sharing its key with another is compared with those of its run.
        q = int(order[i]) * 16
        j = i + 1
        while j < n_blocks and ordered[j] == ordered[i]:
            other = int(order[j]) * 16
            if block(q) == block(other):
                found.add((min(q, other), max(q, other)))
                if len(found) >= limit:
                    return sorted(found)
            j += 1
    # Aligned keys in a table of hash bits: most windows leave at one look-up in it.
    table = np.zeros(1 << HASH_BITS, dtype=bool)
    table[_hash(keys)] = True
    for k in range(8):
        count = (len(buf) - k - 8) // 8  # windows at k, k+8, ... with 16 bytes left in data
        for first in range(0, count, WINDOWS):
            m = min(WINDOWS, count - first)
            offset = k + 8 * first
            windows = buf[offset : offset + 8 * m].view("<u8")
            positions = offset + 8 * np.arange(m, dtype=np.int64)
            # A window at an aligned offset is an aligned block: those were compared above.
            maybe = np.flatnonzero(table[_hash(windows)] & (positions % 16 != 0))
            index = np.searchsorted(ordered, windows[maybe])
            index[index == n_blocks] = 0
            for c in maybe[np.flatnonzero(ordered[index] == windows[maybe])]:
                p = int(positions[c])
                run = int(np.searchsorted(ordered, windows[c]))
                while run < n_blocks and ordered[run] == windows[c]:
                    q = int(order[run]) * 16
                    if block(q) == bytes(buf[p : p + 16]):
                        found.add((min(p, q), max(p, q)))
                    run += 1
                if len(found) >= limit:
                    return sorted(found)[:limit]
    return sorted(found)[:limit]


def healthy_prefix(url: str, limit: int = 1 << 26, **options: Any) -> tuple[bytes, HealthTestFailure]:
    """Every byte ``qitcore.open(url, **options)`` yields before its health test fails, read
    in this process, and the failure."""
    out = bytearray()
    with qitcore.open(url, **options) as stream:
        try:
            while len(out) < limit:
                out += stream.read(1 << 16)
        except HealthTestFailure as exc:
            return bytes(out), exc
    raise AssertionError(f"{url}: no health test failed within {limit:,} bytes")


ANCHOR = 8
"""Bytes a run must have to be placed in a device's output (shorter runs match anywhere)."""


def outside(chunks: Sequence[bytes], prefix: bytes) -> list[tuple[int, int, int]]:
    """The runs of received bytes that are not in ``prefix``: ``(chunk, offset, length)``.

    A reply is a run of the device's output, or, when concurrent requests waited for the same
    device, several runs of it (the pool hands out bytes as they arrive). Each chunk is walked
    from its start: the next ``ANCHOR`` bytes are looked up among the prefix's windows, and the
    run found is followed byte by byte until it differs; bytes that start no run are outside.
    The device adds whole extractor blocks (hundreds of bytes), so a byte from past the failure
    shows as an outside run of a block's length; runs shorter than ``ANCHOR`` are where one
    request's pieces meet, and are reported too (the caller bounds them).
    """
    data = np.frombuffer(prefix, dtype=np.uint8)
    if len(data) < ANCHOR:
        return [(i, 0, len(c)) for i, c in enumerate(chunks) if c]
    weights = 256 ** np.arange(ANCHOR, dtype=np.uint64)  # ANCHOR bytes as one little-endian key
    keys = np.lib.stride_tricks.sliding_window_view(data, ANCHOR) @ weights
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    found: list[tuple[int, int, int]] = []
    for index, chunk in enumerate(chunks):
        got = np.frombuffer(chunk, dtype=np.uint8)
        at, miss = 0, None
        while at < len(got):
            p = -1
            if at + ANCHOR <= len(got):
                key = got[at : at + ANCHOR] @ weights
                k = int(np.searchsorted(ordered, key))
                if k < len(ordered) and ordered[k] == key:
                    p = int(order[k])
            if p < 0:
                miss = at if miss is None else miss
                at += 1
                continue
            if miss is not None:
                found.append((index, miss, at - miss))
                miss = None
            n = min(len(got) - at, len(data) - p)
            differ = np.flatnonzero(got[at : at + n] != data[p : p + n])
            at += int(differ[0]) if len(differ) else n
        if miss is not None:
            found.append((index, miss, len(got) - miss))
    return found


# -- tests ----------------------------------------------------------------------------------------


def test_the_repeat_checker_finds_what_it_should(rng: np.random.Generator) -> None:
    data = bytearray(rng.bytes(1 << 20))
    assert repeats(data) == []
    copy = bytearray(data)
    copy[5000:5016] = copy[160:176]  # an aligned block again, unaligned
    assert repeats(copy) == [(160, 5000)]
    copy = bytearray(data)
    copy[777_001:777_032] = copy[99_999:100_030]  # a 31-byte run, both unaligned
    # The aligned block inside the run, found where the copy put it; and the copy's own aligned
    # block, found where it came from.
    assert repeats(copy) == [(100_000, 777_002), (100_006, 777_008)]
    copy = bytearray(data)
    copy[4096:4112] = copy[64:80]  # aligned twice
    assert repeats(copy) == [(64, 4096)]
    # An 8-byte coincidence alone is no repeat.
    copy = bytearray(data)
    copy[32:40] = copy[48:56]
    assert repeats(copy) == []
    # What extraction from stuck samples looks like: one block over and over.
    assert len(repeats(bytes(1 << 20), limit=3)) == 3


def test_outside_finds_bytes_not_in_the_devices_output(rng: np.random.Generator) -> None:
    prefix = rng.bytes(1 << 17)
    pieces = prefix[100:500] + prefix[9000:9003] + prefix[2000:2500]  # interleaved replies
    assert prefix[9000] != prefix[500]  # else the first run would go on into the second piece
    assert outside([pieces, prefix[7:4096]], prefix) == [(0, 400, 3)]
    # One extractor block from elsewhere; its ends differ from the bytes that would continue the
    # runs beside it (a run is followed as long as bytes agree, by chance too).
    foreign = bytearray(rng.bytes(385))
    foreign[0] = prefix[1000] ^ 1
    foreign[-1] = prefix[4999] ^ 1
    assert outside([prefix[:1000] + foreign + prefix[5000:6000]], prefix) == [(0, 1000, 385)]
    assert outside([prefix[-100:] + b"x" * 20], prefix) == [(0, 100, 20)]


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    """A folder for a socket, short enough for AF_UNIX paths (108 bytes), removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="qitsvc-"))
    try:
        yield folder
    finally:
        for entry in folder.iterdir():
            entry.unlink()
        folder.rmdir()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, the service's certificate (``kme.pem``, for localhost and 127.0.0.1) and two clients'."""
    from qitcore.kme.pki import local_pki

    folder = tmp_path_factory.mktemp("pki")
    local_pki(folder, ["client-a", "client-b"])
    return folder


def https_args(pki: Path) -> list[str]:
    """``qitcore serve`` options for HTTPS on a free port of 127.0.0.1, with mutual TLS."""
    tls = {"--tls-cert": "kme.pem", "--tls-key": "kme.key", "--tls-ca": "ca.pem"}
    return ["--https", "127.0.0.1:0", *(x for flag, name in tls.items() for x in (flag, str(pki / name)))]


def https_url(daemon: Daemon, pki: Path, cn: str) -> str:
    port = daemon.status()["front_ends"]["https"]["port"]
    return f"https://127.0.0.1:{port}?cert={pki / cn}.pem&key={pki / cn}.key&ca={pki / 'ca.pem'}"


def _balanced(status: dict[str, Any]) -> dict[str, Any] | None:
    """``status`` if every byte taken from the pool reached a client or was counted as discarded
    (a stream that closes with a read-ahead request in flight), else None."""
    taken = sum(d["bytes_served"] for d in devices_of(status))
    served = sum(status["stats"]["served"].values())
    return status if served <= taken <= served + status["stats"]["discarded"] else None


@pytest.mark.parametrize("device", ["sim://", "sim+pty://"])
def test_ten_clients_share_the_device_without_a_repeated_byte(
    device: str, socket_dir: Path, tmp_path: Path, pki: Path
) -> None:
    socket = socket_dir / "qitcored.sock"
    local = 1 << 20 if device == "sim://" else 1 << 18
    remote = 1 << 18  # within the default limits of a certificate (1 MiB/s)
    with serving(socket, ["--device", device, *https_args(pki)]) as daemon:
        urls = [f"qitcored://{socket}"] * 8 + [https_url(daemon, pki, cn) for cn in ("client-a", "client-b")]
        results = run_clients(urls, tmp_path, [local] * 8 + [remote] * 2, 4096, 30.0)
        # Once the requests of closing streams are settled, every byte taken is accounted for.
        status = wait_for(lambda: _balanced(daemon.status()), 5, "the counts to settle")
    for r in results:
        assert r.error is None, r.error
    assert [len(r.data) for r in results] == [local] * 8 + [remote] * 2
    union = b"".join(r.data for r in results)
    assert repeats(union) == []
    # The same checker on the same data, with one client's chunk handed to another as well.
    tampered = union + results[3].data[12_345 : 12_345 + 4096]
    assert repeats(tampered, limit=1)
    served = status["stats"]["served"]
    assert served["local"] >= 8 * local  # and what the streams fetched ahead, unread
    assert served["https:client-a"] >= remote and served["https:client-b"] >= remote
    assert devices_of(status)[0]["state"] == "healthy"


def _stuck_device(samples: int, rate: float, seed: int) -> tuple[dict[str, Any], bytes]:
    """A ``[[device]]`` table for a simulator that sticks after ``samples``, with both seeds fixed,
    and the bytes it yields before its health test fails (computed here)."""
    url = f"sim://?seed={seed}&rate={rate:g}&fault=stuck:{samples}"
    extractor_seed = os.urandom(SEED_BYTES)
    prefix, failure = healthy_prefix(url.replace(f"rate={rate:g}&", ""), extractor_seed=extractor_seed)
    assert failure.index >= samples  # the failure is the stuck output's, not a false alarm
    return {"url": url, "extractor_seed": extractor_seed.hex()}, prefix


def test_a_stuck_device_serves_nothing_after_its_failure(socket_dir: Path, tmp_path: Path) -> None:
    # 500,000 samples/s stuck after 3,000,000: the failure comes about 6 s after the device opens,
    # while the clients read (the daemon's buffer holds all the bytes before it: 2.25 MB).
    table, prefix = _stuck_device(3_000_000, 5e5, seed=7)
    socket = socket_dir / "qitcored.sock"
    config = write_config(tmp_path, [table])
    with serving(socket, ["--config", str(config)]) as daemon:
        # Each client reads until the daemon has had no healthy device for 2 s.
        results = run_clients([f"requests:{socket}"] * 8, tmp_path, 1 << 30, 4096, 30.0, timeout=2.0)
        device = wait_for(lambda: in_state(daemon, 0, "failed"), 10, "the device's state 'failed'")
        time.sleep(0.5)
        later = daemon.device()
    chunks = [c for r in results for c in r.chunks()]
    # Every byte received is one the device yielded before its failure ...
    strays = outside(chunks, prefix)
    assert all(n < ANCHOR for _, _, n in strays), [s for s in strays if s[2] >= ANCHOR][:5]
    # ... and none was served twice (the reopened device would yield the same bytes again: the
    # daemon refuses an opening whose output repeats an earlier one's).
    assert repeats(b"".join(chunks)) == []
    got = sum(len(c) for c in chunks)
    # The clients were reading when the device failed: most of its healthy bytes reached them.
    assert got >= len(prefix) // 2, (got, len(prefix))
    for r in results:
        assert r.error is not None and r.error["type"] == "ServiceUnavailable", r.error
    assert device["health_failures"] == {"RepetitionCountFailure": 1}, device
    assert device["bytes_served"] == later["bytes_served"] == got
    assert later["state"] == "failed"


def test_a_stuck_device_drops_out_and_the_healthy_one_serves_on(socket_dir: Path, tmp_path: Path) -> None:
    # Seeds drawn afresh at each opening (the daemon reopens a failed device after a backoff): the
    # device yields the same number of healthy bytes each time, computed here on a seeded copy.
    samples = 1_000_000
    prefix, failure = healthy_prefix(f"sim://?seed=11&fault=stuck:{samples}")
    assert failure.index >= samples
    socket = socket_dir / "qitcored.sock"
    config = write_config(tmp_path, [{"url": f"sim://?rate=5e5&fault=stuck:{samples}"}, {"url": "sim://?rate=2e6"}])
    with serving(socket, ["--config", str(config)]) as daemon:
        results = run_clients([f"qitcored://{socket}"] * 8, tmp_path, 1 << 30, 4096, 5.0)
        stuck = wait_for(lambda: daemon.device(0)["health_failures"], 10, "a health failure of the stuck device")
        stuck = daemon.device(0)
        healthy = daemon.device(1)
    for r in results:
        assert r.error is None, r.error  # the healthy device served on
        assert len(r.data) > 0
    assert stuck["health_failures"].get("RepetitionCountFailure", 0) >= 1, stuck
    # No more than its healthy bytes per opening: nothing from past a failure.
    assert stuck["bytes_served"] <= (stuck["reopens"] + 1) * len(prefix), stuck
    assert healthy["state"] == "healthy" and healthy["bytes_served"] > 0 and not healthy["health_failures"]
    # Output extracted from stuck samples would repeat block after block.
    assert repeats(b"".join(r.data for r in results)) == []


KILLED_CLIENT = r"""
import json, sys, time
import qitcore
from qitcore.errors import QitError

url, seconds = sys.argv[1], float(sys.argv[2])
end = time.monotonic() + seconds
stream, down, said = None, False, False

def say(**kw):
    print(json.dumps(kw), flush=True)

while time.monotonic() < end:
    try:
        if stream is None:
            stream = qitcore.open(url)
        stream.read(4096)
    except QitError as exc:
        if not down:
            say(event="error", type=type(exc).__name__, message=str(exc))
        down = True
        if stream is not None:
            stream.close()
        stream = None
        time.sleep(0.1)
        continue
    if down:
        say(event="reconnected")
        down = False
    elif not said:
        say(event="read")
        said = True
    time.sleep(0.01)
say(event="end")
"""
"""A client process that reads 4 KiB every 10 ms and reopens its stream after an error; it prints
its first read, the first error of each outage (type and message) and each reconnection."""


def lines_of(proc: subprocess.Popen[str]) -> queue.Queue[str]:
    """The lines of a child's stdout as they come, "" at its end."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put("")

    threading.Thread(target=pump, daemon=True).start()
    return lines


def next_event(lines: queue.Queue[str], timeout: float = 20.0) -> dict[str, Any]:
    try:
        line = lines.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError(f"the client said nothing for {timeout} s") from None
    assert line, "the client ended"
    event: dict[str, Any] = json.loads(line)
    return event


def test_clients_see_a_killed_daemon_and_read_again_when_it_is_back(socket_dir: Path) -> None:
    from qitcore.service.client import DaemonClient

    socket = socket_dir / "qitcored.sock"
    first = start_daemon(socket, ["--device", "sim://"])
    client = subprocess.Popen(
        [sys.executable, "-c", KILLED_CLIENT, f"qitcored://{socket}", "40"], stdout=subprocess.PIPE, text=True
    )
    second = None
    try:
        events = lines_of(client)
        assert next_event(events)["event"] == "read"
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait()
        error = next_event(events)
        assert error["event"] == "error" and error["type"] in ("DeviceDisconnected", "DeviceNotFound"), error
        assert str(socket) in error["message"], error
        # A client in this process, too, while nothing listens.
        with pytest.raises((DeviceNotFound, DeviceDisconnected), match=str(socket)), DaemonClient(str(socket)) as c:
            c.read(32)
        second = start_daemon(socket, ["--device", "sim://"])
        assert next_event(events)["event"] == "reconnected"
    finally:
        client.kill()
        client.wait()
        first.stop()
        if second is not None:
            assert second.stop() == 0, second.stderr()


def _read_as(uid: int, path: str) -> tuple[str, str]:
    """Asks the daemon for 32 bytes as ``uid`` (no groups); what happened, as (outcome, message)."""
    from qitcore.service.client import DaemonClient

    def read() -> list[str]:
        try:
            with DaemonClient(path, timeout=5.0) as client:
                return ["ok", str(len(client.read(32)))]
        except QitError as exc:
            return [type(exc).__name__, f"{exc}|{isinstance(exc, PermissionError)}"]

    kind, message = run_as(uid, read)
    return str(kind), str(message)


@pytest.mark.skipif(os.geteuid() != 0, reason="running a client as another uid needs root")
def test_a_client_without_permission_on_the_socket_is_refused(socket_dir: Path, tmp_path: Path) -> None:
    socket_dir.chmod(0o755)  # the folder is open to all: only the socket's own mode decides
    socket = socket_dir / "qitcored.sock"
    config = write_config(tmp_path, [{"url": "sim://"}], socket={"mode": 0o600})
    with serving(socket, ["--config", str(config)]):
        assert socket.stat().st_mode & 0o777 == 0o600 and socket.stat().st_uid == 0
        outcome, message = _read_as(65534, str(socket))
        assert outcome != "ok", message
        assert str(socket) in message and message.endswith("|True"), (outcome, message)
        assert "permission" in message.lower()
        # The same client once the mode lets others in: the refusal was the mode's.
        socket.chmod(0o666)
        assert _read_as(65534, str(socket)) == ("ok", "32")
