"""Work that passes through every SIMD site of the core (CRC-32C, von Neumann, the health monitor,
the entropy estimators, the permutation tests' bzip2 lengths and lags, Toeplitz hashing), reduced
to plain values that compare bit for bit: floats as their hex form, bytes as hex.

``python -m tests.simd_workload`` prints them as JSON, with the carry-less backends the process
may use, so that a test can run it under ``QITCORE_SIMD=portable`` and compare with its own run.
"""

from __future__ import annotations

import enum
import json
import sys
from typing import Any

import numpy as np
from qitcore import _core, entropy, extract, health


def plain(value: Any) -> Any:
    """``value`` as JSON values that compare exactly: a result object becomes the dict of its
    public attributes (dataclass or core class alike)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value.hex()
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, np.generic):
        return plain(value.item())
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    names = (n for n in dir(value) if not n.startswith("_"))
    return {n: plain(a) for n in names if not callable(a := getattr(value, n))}


def _samples(rng: np.random.Generator, n: int, bits: int) -> bytes:
    return rng.integers(0, 1 << bits, n, dtype=np.uint8).tobytes()


def outputs() -> dict[str, Any]:
    """The results of the work, the same on every path."""
    rng = np.random.default_rng(14)
    raw = rng.integers(0, 256, 40_000, dtype=np.uint8).tobytes()
    # Long enough for the 64-sample AVX-512 chunks, with a run and a biased stretch that fail.
    capture = bytearray(raw)
    capture[10_000:10_040] = bytes([7]) * 40
    capture[20_000:20_200] = bytes(rng.choice([3, 5, 9, 11], 200))
    biased = np.packbits(rng.random(80_000) < 0.2).tobytes()
    seed = rng.integers(0, 256, (4096 + 1024 - 1 + 7) // 8, dtype=np.uint8).tobytes()
    out: dict[str, Any] = {
        "crc32c": [_core.crc32c(raw[:n]) for n in (0, 1, 7, 8, 9, 63, 64, 65, 1000, 40_000)],
        "von_neumann": [plain(extract.von_neumann(biased, bitorder=order)) for order in ("big", "little")],
        "health_scan": plain(health.scan(bytes(capture), 6.0)),
        "toeplitz": plain(extract.Toeplitz(4096, 1024, seed).hash(raw[: 8 * 512])),
    }
    monitor = health.HealthMonitor(7.0)
    out["health_feed"] = plain(monitor.feed(raw))
    out["health_counters"] = plain(monitor.counters)
    out["non_iid"] = plain(entropy.assess_non_iid(_samples(rng, 20_000, 3), bits_per_symbol=3))
    out["iid_bytes"] = plain(entropy.assess_iid(_samples(rng, 20_000, 8), permutations=200, seed=1))
    out["iid_symbols"] = plain(entropy.assess_iid(_samples(rng, 20_000, 2), permutations=200, seed=2))
    return out


if __name__ == "__main__":
    json.dump({"outputs": outputs(), "clmul_backends": _core.available_clmul_backends()}, sys.stdout, sort_keys=True)
