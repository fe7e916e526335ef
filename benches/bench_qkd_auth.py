"""The cost of Wegman–Carter authentication against HMAC-SHA256: one QKD session of about 10^6
detections (20 km, QBER ~1 %) both ends in one process, each way; and the tag alone on a
Cascade-sized message (64 bytes) and on 1 MiB.

The notes give, for the Wegman–Carter session of median time, the key-pool bits it consumed and
returned, its ε_auth and the key released (shorter than HMAC's by what was returned). The pools
are files in a temporary folder (each reservation is two fsyncs at each end).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path
from typing import Any

import pytest
from qitcore import _core, qkd
from qitcore.qkd.keypool import KeyPool

DETECTIONS_PULSES = 30_000_000  # about 1.05e6 detections at 20 km


@pytest.fixture(scope="module")
def link() -> qkd.SimulatedLink:
    return qkd.LinkModel(distance_km=20).simulate(DETECTIONS_PULSES, seed=11)


@pytest.mark.parametrize("method", ["hmac", "wegman-carter"])
def test_session(benchmark: Any, record: Any, note: Any, link: qkd.SimulatedLink, tmp_path: Path, method: str) -> None:
    results: list[qkd.Distilled] = []
    pools: tuple[KeyPool, KeyPool] | None = None
    if method == "wegman-carter":
        key = os.urandom(1 << 20)
        pools = KeyPool.create(tmp_path / "alice.pool", key), KeyPool.create(tmp_path / "bob.pool", key)

    def run() -> None:
        result = qkd.distill(link.alice, link.bob, auth_key=pools)
        assert result.alice_key == result.bob_key
        results.append(result)

    benchmark.pedantic(run, rounds=7, warmup_rounds=1)
    case = f"session of {len(link.bob):.2e} detections, {method}"
    r = sorted(results, key=lambda d: sum(d.report.seconds.values()))[len(results) // 2].report
    record(case, "qitcore", benchmark, r.sifted_key)
    median = float(benchmark.stats.stats.median)
    consumed = [d.report.pool_bits_consumed for d in results]
    note(
        f"{case}: {median * 1e3:.1f} ms median, {r.cascade_rounds} round trips; key {r.key_bits:,} bits"
        + (
            f"; pool bits consumed per session {min(consumed):,}-{max(consumed):,} (median session "
            f"{r.pool_bits_consumed:,}, returned {r.pool_bits_returned:,}), eps_auth {r.eps_auth:.3g}"
            if pools
            else ""
        )
    )


@pytest.mark.parametrize("size", [64, 1 << 20], ids=["64B", "1MiB"])
@pytest.mark.parametrize("method", ["hmac", "wegman-carter"])
def test_tag(benchmark: Any, record: Any, size: int, method: str) -> None:
    message = os.urandom(size)
    key, pad = bytearray(os.urandom(8)), bytearray(os.urandom(8))
    mac_key = os.urandom(32)
    if method == "hmac":
        benchmark(hmac.digest, mac_key, message, hashlib.sha256)
    else:
        benchmark(_core.wegman_carter_tag, key, pad, b"", message)
    record(f"tag of {size} bytes", method, benchmark, 8 * size)
