"""Independent references for the extractors: obviously correct (slow) implementations, and the
NumPy FFT Toeplitz product a user would write. Tests and benchmarks compare qitcore with these."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Bits = npt.NDArray[np.uint8]


def toeplitz_matrix(seed: Bits, n: int, m: int) -> Bits:
    """The m × n matrix T[i, j] = seed[(i - j) mod (n + m - 1)], built entry by entry."""
    total = n + m - 1
    i = np.arange(m)[:, None]
    j = np.arange(n)[None, :]
    return seed[(i - j) % total].astype(np.uint8)


def toeplitz_naive(seed: Bits, x: Bits, m: int) -> Bits:
    """T·x over GF(2) by the matrix definition (O(nm) memory: small sizes only)."""
    matrix = toeplitz_matrix(seed, x.size, m).astype(np.int64)
    return ((matrix @ x.astype(np.int64)) % 2).astype(np.uint8)


def toeplitz_fft(seed: Bits, x: Bits, m: int) -> Bits:
    """T·x by a circular convolution of the seed with the zero-padded input in float64 FFTs, the
    way a NumPy user writes it. Exact while the sums (at most n) stay far below 2^52."""
    total = seed.size
    padded = np.zeros(total, dtype=np.float64)
    padded[: x.size] = x
    conv = np.fft.irfft(np.fft.rfft(seed.astype(np.float64)) * np.fft.rfft(padded), total)
    return (np.rint(conv[:m]).astype(np.int64) % 2).astype(np.uint8)


def modified_toeplitz_naive(seed: Bits, x: Bits, m: int) -> Bits:
    """Hayashi–Tsurumaru: T_{m×(n−m)}·x[:n−m] ⊕ x[n−m:], with the same seed layout."""
    n = x.size
    if n == m:
        return x.copy()
    return toeplitz_naive(seed, x[: n - m], m) ^ x[n - m :]


def von_neumann_naive(bits: Bits) -> Bits:
    """Pairs 01 → 0, 10 → 1, 00 and 11 dropped; a trailing odd bit is dropped."""
    pairs = bits[: bits.size // 2 * 2].reshape(-1, 2)
    keep = pairs[:, 0] != pairs[:, 1]
    return pairs[keep, 0].astype(np.uint8)
