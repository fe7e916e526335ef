"""The peers qitcore's extractors are measured against, on 0/1 arrays as they take them."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from randextract import ToeplitzHashing

Bits = npt.NDArray[np.uint8]


def randextract_toeplitz(seed: Bits, blocks: Bits, m: int) -> Bits:
    """randextract 0.2.2's ToeplitzHashing, one call per block (its API takes one block)."""
    n = blocks.shape[1]
    ext = ToeplitzHashing(input_length=n, output_length=m)
    return np.stack([np.asarray(ext.extract(block, seed), dtype=np.uint8) for block in blocks])


def numpy_fft_toeplitz(seed: Bits, blocks: Bits, m: int) -> Bits:
    """What a NumPy user writes: a circular convolution of the seed with each zero-padded block by
    float64 real FFTs, batched over blocks, rounded and reduced mod 2."""
    total = seed.size
    count, n = blocks.shape
    padded = np.zeros((count, total), dtype=np.float64)
    padded[:, :n] = blocks
    spectrum = np.fft.rfft(padded, axis=1) * np.fft.rfft(seed.astype(np.float64))
    conv = np.fft.irfft(spectrum, total, axis=1)[:, :m]
    return (np.rint(conv).astype(np.int64) % 2).astype(np.uint8)
