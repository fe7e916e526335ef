"""Every driver against its emulated device, through the whole pipeline: the rate it sustains
beside the real device's documented rate, and the host CPU the health tests and extraction cost
(process CPU time of an extracting stream minus that of a raw stream, same device, same input
size, per MB of device output).

Documented rates: TrueRNG v3 "over 400 kbits/second" and TrueRNG v1/v2 "more than 350
kilobits/second" (ubld.it product pages); ChaosKey 10 Mbit/s (OpenBSD urng(4)); a QDP/1 device on
USB 2.0 high speed: 400 Mbit/s. No rate was found for the TrueRNGpro and OneRNG.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import qitcore
import qitcore.testing
from qitcore.testing.usb import ChaosKey, EmulatedBackend, QdpUsbDevice

RAW_BYTES = 16 << 20
DEVICES = {
    "truerng": ("truerng://?port=emu://truerng", {}, 400e3),
    "truerngpro": ("truerngpro://?port=emu://truerngpro", {}, None),
    "onerng": ("onerng://?port=emu://onerng", {}, None),
    "chaoskey": ("chaoskey://", {"usb": ChaosKey}, 10e6),
    "qdp-usb": ("usb://1209:0001", {"usb": QdpUsbDevice}, 400e6),
}


def _run(url: str, extra: dict[str, Any], raw: bool) -> tuple[float, float, int]:
    """(seconds, CPU seconds, device bytes) to take RAW_BYTES of device input through a stream."""
    options = {"usb_backend": EmulatedBackend([extra["usb"]()])} if "usb" in extra else {}
    with (qitcore.open_raw if raw else qitcore.open)(url, **options) as s:
        s.read(1 << 16, timeout=20)
        start_in = s.stats()["bytes_in"]
        wall, cpu = time.perf_counter(), time.process_time()
        while s.stats()["bytes_in"] - start_in < RAW_BYTES:
            s.read(1 << 20, timeout=20)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        return wall, cpu, s.stats()["bytes_in"] - start_in


@pytest.mark.parametrize("name", list(DEVICES))
def test_driver_through_the_pipeline(benchmark: Any, record: Any, note: Any, name: str) -> None:
    url, extra, documented = DEVICES[name]
    wall, cpu, nbytes = benchmark.pedantic(_run, args=(url, extra, False), rounds=1, warmup_rounds=0)
    _, raw_cpu, raw_bytes = _run(url, extra, True)
    rate = nbytes * 8 / wall
    record(f"driver {name} (device bytes)", "qitcore", benchmark, nbytes * 8)
    per_mb = (cpu / nbytes - raw_cpu / raw_bytes) * 1e6 * 1e3
    doc = f", documented {documented / 1e6:g} Mbit/s -> {rate / documented:,.0f}x" if documented else ""
    note(f"{name}: {rate / 1e6:.0f} Mbit/s through the pipeline{doc}; health + extraction "
         f"{per_mb:.2f} ms CPU per MB of device output")  # fmt: skip
    if documented:
        assert rate >= documented
