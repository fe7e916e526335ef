"""Toeplitz hashing: qitcore beside randextract and a NumPy FFT on the same inputs.

Streaming cases hash many blocks with one seed (QRNG conditioning); single-block cases hash one
large block (QKD privacy amplification), where a fresh seed per block is the usual case: the rows
"with seed setup" (constructing the hash from the seed, then hashing) are what a QKD user pays and
come first; "qitcore" alone reuses one prepared seed. Peers run on a slice of the same input when running
them on all of it would take minutes; throughput is per input bit either way, and every peer's
output is checked against qitcore's on the blocks it ran.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import numpy as np
import pytest
from qitcore.bits import pack_bits, unpack_bits
from qitcore.extract import Toeplitz

from .peers import numpy_fft_toeplitz, randextract_toeplitz

RNG = np.random.default_rng(20261126)

STREAMING = [(1024, 512, 64 << 20), (4096, 2048, 64 << 20)]  # n, m, input bytes
SINGLE = [1 << 12, 1 << 16, 1 << 20, 1 << 24]  # n, with m = n/2
PEER_BITS = {"randextract": 1 << 22, "numpy-fft": 1 << 24}  # input bits the peers get per case


def _peer_blocks(bits: np.ndarray, n: int, peer: str) -> np.ndarray:
    count = max(1, min(bits.size // n, PEER_BITS[peer] // n))
    return bits[: count * n].reshape(count, n)


def _rounds(seconds_per_round: float) -> int:
    return max(1, min(7, int(3 / max(seconds_per_round, 1e-6))))


def _check_peer(peer: str, seed: np.ndarray, blocks: np.ndarray, m: int, ours: np.ndarray) -> None:
    run = randextract_toeplitz if peer == "randextract" else numpy_fft_toeplitz
    assert np.array_equal(run(seed, blocks, m), ours[: blocks.shape[0]]), f"{peer} disagrees with qitcore"


@pytest.mark.parametrize(("n", "m", "nbytes"), STREAMING, ids=lambda v: str(v))
@pytest.mark.parametrize("impl", ["qitcore", "randextract", "numpy-fft"])
def test_streaming_blocks(benchmark: Any, record: Any, impl: str, n: int, m: int, nbytes: int) -> None:
    case = f"stream n={n} m={m}"
    seed = RNG.integers(0, 2, n + m - 1, dtype=np.uint8)
    data = RNG.integers(0, 256, nbytes, dtype=np.uint8)
    t = Toeplitz.from_bits(n, m, seed)
    if impl == "qitcore":
        benchmark.pedantic(t.hash, args=(data,), rounds=5, warmup_rounds=1)
        record(case, impl, benchmark, nbytes * 8)
        return
    bits = unpack_bits(data[: PEER_BITS[impl] // 8 + n // 8])
    blocks = _peer_blocks(bits, n, impl)
    ours = unpack_bits(t.hash(pack_bits(blocks.ravel()))).reshape(-1, m)
    _check_peer(impl, seed, blocks, m, ours)
    run = randextract_toeplitz if impl == "randextract" else numpy_fft_toeplitz
    benchmark.pedantic(run, args=(seed, blocks, m), rounds=3)
    record(case, impl, benchmark, blocks.size)


@pytest.mark.parametrize("n", SINGLE, ids=lambda v: f"2^{v.bit_length() - 1}")
@pytest.mark.parametrize("impl", ["qitcore (with seed setup)", "qitcore", "randextract", "numpy-fft"])
def test_single_block(benchmark: Any, record: Any, impl: str, n: int) -> None:
    m = n // 2
    case = f"one block n=2^{n.bit_length() - 1} m=n/2"
    seed = RNG.integers(0, 2, n + m - 1, dtype=np.uint8)
    x = RNG.integers(0, 2, n, dtype=np.uint8)
    packed_seed, packed_x = pack_bits(seed), pack_bits(x)
    t = Toeplitz(n, m, packed_seed)
    ours = unpack_bits(t.hash(packed_x), m)[None, :]
    if impl == "qitcore":
        benchmark.pedantic(t.hash, args=(packed_x,), rounds=_rounds(n / 3e8) * 3, warmup_rounds=1)
    elif impl.startswith("qitcore"):
        benchmark.pedantic(lambda: Toeplitz(n, m, packed_seed).hash(packed_x), rounds=_rounds(n / 1e8) * 3)
    else:
        _check_peer(impl, seed, x[None, :], m, ours)
        run = randextract_toeplitz if impl == "randextract" else numpy_fft_toeplitz
        benchmark.pedantic(run, args=(seed, x[None, :], m), rounds=_rounds(n / 2e6))
    record(case, impl, benchmark, n)


@pytest.mark.parametrize("impl", ["qitcore (with seed setup)", "qitcore"])
def test_largest_block(benchmark: Any, record: Any, note: Any, impl: str) -> None:
    """n = 2^27, m = 2^26 in this process: with a fresh seed, and with one prepared seed; with
    the fresh seed also time and peak memory in a fresh process."""
    n, m = 1 << 27, 1 << 26
    seed = RNG.integers(0, 256, (n + m - 1 + 7) // 8, dtype=np.uint8)
    x = RNG.integers(0, 256, n // 8, dtype=np.uint8)
    if impl == "qitcore":
        t = Toeplitz(n, m, seed)
        benchmark.pedantic(t.hash, args=(x,), rounds=3, warmup_rounds=1)
    else:
        benchmark.pedantic(lambda: Toeplitz(n, m, seed).hash(x), rounds=3, warmup_rounds=1)
    record("one block n=2^27 m=n/2", impl, benchmark, n)
    if impl == "qitcore":
        return
    # VmHWM is the peak resident set of this process image (ru_maxrss would carry the parent's
    # peak across exec on Linux).
    script = textwrap.dedent(
        """
        import os, time
        from qitcore.extract import Toeplitz
        def peak_kib():
            with open("/proc/self/status") as status:
                return int(next(line for line in status if line.startswith("VmHWM")).split()[1])
        n, m = 1 << 27, 1 << 26
        seed, x = os.urandom((n + m - 1 + 7) // 8), os.urandom(n // 8)
        base = peak_kib()
        start = time.perf_counter()
        Toeplitz(n, m, seed).hash(x)
        elapsed = time.perf_counter() - start
        print(peak_kib(), base, elapsed)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    peak_kib, base_kib, one_shot = out.split()
    peak_mib = int(peak_kib) / 1024
    note(
        f"n=2^27, m=2^26 in a fresh process: seed setup + hash {float(one_shot):.2f} s "
        f"({n / float(one_shot) / 1e6:.0f} Mbit/s), peak RSS {peak_mib:.0f} MiB "
        f"(interpreter, numpy and inputs {int(base_kib) / 1024:.0f} MiB)"
    )
    assert peak_mib < 1024, f"peak memory {peak_mib:.0f} MiB"
