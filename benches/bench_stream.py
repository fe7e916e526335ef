"""The QRNG pipeline end to end: simulator -> frame decoder -> health tests -> Toeplitz -> reader.

- In process (``sim://``): the issue's target is 1 Gbit/s of raw device input.
- Through the pseudo-terminal (``sim+pty://``: the C reference firmware, the pty, pyserial): the
  target is 400 Mbit/s (USB 2.0 high speed) or the pty's own limit, whichever is lower. The pty's
  limit is measured in the same run by copying the same number of bytes through a bare pty with
  native code at both ends (``head -c`` in, ``head -c`` out of the raw slave). No library offers
  this pipeline, so the bare pty is the only reference.
"""

from __future__ import annotations

import os
import subprocess
import tty
from typing import Any

import pytest
import qitcore

OUTPUT_BYTES = 64 << 20


def _measure(benchmark: Any, url: str, output_bytes: int, rounds: int) -> tuple[int, Any]:
    with qitcore.open(url) as stream:
        stream.read(1 << 20)  # past the start-up test
        before = stream.stats()["bytes_in"]
        benchmark.pedantic(lambda: stream.read(output_bytes), rounds=rounds, warmup_rounds=0)
        stats = stream.stats()
    raw_bits = (stats["bytes_in"] - before) * 8 // rounds
    assert stats["crc_errors"] == stats["gaps"] == 0
    return raw_bits, stats


def test_in_process_pipeline(benchmark: Any, record: Any, note: Any) -> None:
    raw_bits, _stats = _measure(benchmark, "sim://", OUTPUT_BYTES, 5)
    record("stream sim:// (raw input)", "qitcore", benchmark, raw_bits)
    rate = raw_bits / benchmark.stats.stats.median / 1e9
    note(f"sim:// in process: {rate:.2f} Gbit/s of raw device input per median round (target 1 Gbit/s)")


def _bare_pty(nbytes: int) -> None:
    """``head -c`` into the master, ``head -c`` out of the raw slave: the kernel's pty with
    native code at both ends."""
    master, slave = os.openpty()
    tty.setraw(slave)
    reader = subprocess.Popen(["head", "-c", str(nbytes)], stdin=slave, stdout=subprocess.DEVNULL)
    writer = subprocess.Popen(["head", "-c", str(nbytes), "/dev/zero"], stdout=master)
    writer.wait()
    reader.wait()
    os.close(master)
    os.close(slave)


@pytest.mark.parametrize("path", ["qitcore sim+pty://", "bare pty (head -c)"])
def test_through_the_pty(benchmark: Any, record: Any, note: Any, path: str) -> None:
    output_bytes = 16 << 20
    if path.startswith("qitcore"):
        raw_bits, _ = _measure(benchmark, "sim+pty://", output_bytes, 3)
        test_through_the_pty.raw_bits = raw_bits  # type: ignore[attr-defined]
        rate = raw_bits / benchmark.stats.stats.median / 1e6
        note(f"sim+pty:// through the C firmware, pty and pyserial: {rate:.0f} Mbit/s of raw input (target 400)")
    else:
        raw_bits = getattr(test_through_the_pty, "raw_bits", output_bytes * 11)
        benchmark.pedantic(_bare_pty, args=(raw_bits // 8,), rounds=3)
        rate = raw_bits / benchmark.stats.stats.median / 1e6
        note(f"bare pty, same bytes, same run: {rate:.0f} Mbit/s (the pty's own limit on this machine)")
    record("stream through a pty (raw input)", path, benchmark, raw_bits)
