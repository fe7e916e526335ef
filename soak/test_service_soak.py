"""The randomness service under load for 10 minutes (``make soak``; ``QITCORE_SOAK_SECONDS``
sets another length): ``qitcore serve`` with four simulated devices, 8 client processes reading
all the time, faults injected and the daemon killed and started again.

- ``sim://?rate=200000``: healthy;
- ``sim://?rate=200000&fault=disconnect:2000000,drop:…,corrupt:…``: its link loses and corrupts
  frames, and goes down every 10 s or so; the daemon reopens it;
- at a fifth of the run a SIGHUP reload adds ``sim://?rate=200000&fault=stuck:1000000``, whose
  output sticks 5 s after each opening: its health test fails, the daemon drops what it buffered
  from it and reopens it after a backoff, and it fails again; at half the run the daemon is killed
  with SIGKILL and started again, with a device that sticks after 1,500,000 samples instead.

Counted: zero bytes served twice (no repeated 16-byte block in the union of everything the
clients received: a byte served twice, or output extracted from stuck samples, would repeat),
zero unhealthy bytes served (each stuck device served no more than its openings times the bytes
such a device yields before its health test fails, computed in this process on the same URL,
and its failures are in the status), and every client read again after the restart.

The devices together yield less than the clients ask for, so every device is read as fast as it
runs and its faults come in time: the pool serves from the device with the most bytes ready, and
a device whose share of the buffer stays full is not read (``sim+pty://`` is left out for that
reason: it runs as fast as the pty allows, whatever its ``rate``, and would serve everything).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from qitcore.errors import QitError
from qitcore.service.config import public_url

from tests.test_service_processes import (
    Daemon,
    devices_of,
    healthy_prefix,
    repeats,
    start_daemon,
    write_config,
)

SECONDS = float(os.environ.get("QITCORE_SOAK_SECONDS", "600"))
CLIENTS = 8
# Devices slower than the clients together (8 x 160 KiB/s): every device runs at its own rate, so
# its faults come in time (a device whose buffer stays full is not read, and stands still).
RATE = 200_000
BASE = [
    {"url": f"sim://?rate={RATE}"},
    {"url": f"sim://?rate={RATE}&fault=disconnect:2000000,drop:0.001,corrupt:0.0001"},
]

SOAK_CLIENT = r"""
import json, sys, time
import qitcore
from qitcore.errors import QitError

url, out, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
end = time.monotonic() + seconds
stream, errors, reads = None, {}, []
with open(out, "wb") as f:
    while time.monotonic() < end:
        try:
            if stream is None:
                stream = qitcore.open(url)
            data = stream.read(8192)
        except QitError as exc:
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            if stream is not None:
                stream.close()
            stream = None
            time.sleep(0.2)
            continue
        f.write(data)
        reads.append(time.monotonic())
        time.sleep(0.05)
if stream is not None:
    stream.close()
print(json.dumps({"errors": errors, "reads": reads}))
"""
"""A client process: 8 KiB every 50 ms for ``seconds``, reopening its stream after an error."""


def _stuck(samples: int) -> tuple[dict[str, Any], int]:
    """A device that sticks ``samples`` after each opening, and the most bytes it yields before its
    health test fails (the simulator's seed changes the samples, not how many pass)."""
    url = f"sim://?rate={RATE}&fault=stuck:{samples}"
    most = 0
    for seed in range(3):
        prefix, failure = healthy_prefix(f"sim://?seed={seed}&fault=stuck:{samples}")
        assert failure.index >= samples
        most = max(most, len(prefix))
    return {"url": url}, most


def _served(device: dict[str, Any], prefix: int) -> str:
    opened = device["reopens"] + 1
    return (
        f"{device['bytes_served']:,} bytes served in {opened} openings of at most {prefix:,} healthy bytes each, "
        f"health failures {device['health_failures']}, now {device['state']}"
    )


def _poll(daemon: Daemon, seen: dict[str, dict[str, Any]]) -> None:
    """The latest entry of each device (by URL) in the daemon's status."""
    try:
        for device in devices_of(daemon.status()):
            seen[device["url"]] = device
    except QitError as exc:  # a status request may meet the daemon while it restarts
        print(f"soak: status not read ({type(exc).__name__}: {exc})")


@pytest.fixture
def folder() -> Iterator[Path]:
    """The socket, configurations and what the clients received (hundreds of MB): removed after."""
    path = Path(tempfile.mkdtemp(prefix="qitsoak-"))
    try:
        yield path
    finally:
        shutil.rmtree(path)


def test_the_service_for_ten_minutes_with_faults_and_a_restart(folder: Path) -> None:
    socket = folder / "qitcored.sock"
    first_stuck, first_prefix = _stuck(1_000_000)
    second_stuck, second_prefix = _stuck(1_500_000)
    base = write_config(folder, BASE)
    injected = write_config(folder, [*BASE, first_stuck])
    after = write_config(folder, [*BASE, second_stuck])
    config = folder / "live.toml"  # what SIGHUP and the restart read
    config.write_text(base.read_text())
    daemon = start_daemon(socket, ["--config", str(config)])
    start = time.monotonic()
    clients = []
    for i in range(CLIENTS):
        out = folder / f"client-{i}.bin"
        argv = [sys.executable, "-c", SOAK_CLIENT, f"qitcored://{socket}", str(out), str(SECONDS)]
        clients.append((subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), out))
    before: dict[str, dict[str, Any]] = {}
    later: dict[str, dict[str, Any]] = {}
    restarted_at = None
    try:
        stage = "base"
        while time.monotonic() - start < SECONDS:
            elapsed = time.monotonic() - start
            if stage == "base" and elapsed > SECONDS / 5:
                config.write_text(injected.read_text())
                daemon.proc.send_signal(signal.SIGHUP)
                stage = "injected"
            elif stage == "injected" and elapsed > SECONDS / 2:
                _poll(daemon, before)
                daemon.proc.send_signal(signal.SIGKILL)
                daemon.proc.wait()
                config.write_text(after.read_text())
                daemon = start_daemon(socket, ["--config", str(config)])
                restarted_at = time.monotonic()
                stage = "restarted"
            _poll(daemon, later if stage == "restarted" else before)
            time.sleep(2.0)
        _poll(daemon, later)
        reports = []
        for proc, out in clients:
            stdout, stderr = proc.communicate(timeout=60)
            assert proc.returncode == 0, stderr
            reports.append((json.loads(stdout.splitlines()[-1]), out.read_bytes()))
        _poll(daemon, later)
    finally:
        for proc, _ in clients:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        code = daemon.stop()
    assert code == 0, daemon.stderr()
    elapsed = time.monotonic() - start
    union = b"".join(data for _, data in reports)
    found = repeats(union)
    errors: dict[str, int] = {}
    for report, _ in reports:
        for name, count in report["errors"].items():
            errors[name] = errors.get(name, 0) + count
    stuck_before = before[public_url(first_stuck["url"])]
    stuck_after = later[public_url(second_stuck["url"])]
    dropping = later[public_url(BASE[1]["url"])]
    print(
        f"\nservice soak: {elapsed:.0f} s, {CLIENTS} clients, {len(union):,} bytes received "
        f"({len(union) / elapsed / 1024:.0f} KiB/s), repeated 16-byte blocks: {len(found)}; client errors {errors}; "
        f"stuck device before the restart: {_served(stuck_before, first_prefix)}; after: "
        f"{_served(stuck_after, second_prefix)}; disconnecting device reopened {dropping['reopens']} times"
    )
    for url, device in {**before, **later}.items():
        print(f"  {url}: {json.dumps(device, sort_keys=True)}")
    assert found == [], found
    for device, prefix in ((stuck_before, first_prefix), (stuck_after, second_prefix)):
        assert device["health_failures"].get("RepetitionCountFailure", 0) >= 1, device
        assert device["bytes_served"] <= (device["reopens"] + 1) * prefix, device
    # The clients took from the stuck devices too: the bound above was put to the test.
    assert stuck_before["bytes_served"] > 0 and stuck_after["bytes_served"] > 0
    assert dropping["reopens"] >= 1
    assert restarted_at is not None
    for report, _ in reports:
        assert any(t > restarted_at for t in report["reads"]), "a client did not read after the restart"
