"""Modified Toeplitz hashing against its definition and randextract's ModifiedToeplitzHashing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from qitcore.bits import pack_bits, unpack_bits
from qitcore.errors import InvalidArgumentError, InvalidLengthError
from qitcore.extract import ModifiedToeplitz
from randextract import ModifiedToeplitzHashing

from .reference import modified_toeplitz_naive


@pytest.mark.parametrize("bitorder", ["big", "little"])
@pytest.mark.parametrize(("n", "m", "blocks"), [(2, 1, 4), (9, 4, 8), (100, 37, 5), (1024, 512, 9), (64, 64, 3)])
def test_blocks_match_the_definition(backend: str, bitorder: str, n: int, m: int, blocks: int, rng) -> None:
    seed = rng.integers(0, 2, 0 if m == n else n - 1, dtype=np.uint8)
    x = rng.integers(0, 2, n * blocks, dtype=np.uint8)
    h = ModifiedToeplitz(n, m, pack_bits(seed, bitorder=bitorder), bitorder=bitorder)
    got = unpack_bits(h.hash(pack_bits(x, bitorder=bitorder), nbits=x.size), blocks * m, bitorder=bitorder)
    expect = np.concatenate([modified_toeplitz_naive(seed, x[k * n : (k + 1) * n], m) for k in range(blocks)])
    assert np.array_equal(got, expect)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 5000), m_frac=st.floats(0, 1), seed_value=st.integers(0, 2**32 - 1))
def test_bit_for_bit_with_randextract(n: int, m_frac: float, seed_value: int) -> None:
    m = max(1, min(n - 1, int(m_frac * n)))
    rng = np.random.default_rng(seed_value)
    seed, x = rng.integers(0, 2, n - 1, dtype=np.uint8), rng.integers(0, 2, n, dtype=np.uint8)
    peer = np.asarray(ModifiedToeplitzHashing(input_length=n, output_length=m).extract(x, seed), dtype=np.uint8)
    assert np.array_equal(ModifiedToeplitz.from_bits(n, m, seed).hash_bits(x), peer)


def test_large_blocks_match_the_definition_through_the_fast_paths(rng) -> None:
    # m > n - m makes the Toeplitz part tall; 200 000 bits take the FFT path.
    for n, m in [(200_000, 150_000), (200_000, 1000)]:
        seed, x = rng.integers(0, 2, n - 1, dtype=np.uint8), rng.integers(0, 2, n, dtype=np.uint8)
        got = ModifiedToeplitz.from_bits(n, m, seed).hash_bits(x)
        peer = ModifiedToeplitzHashing(input_length=n, output_length=m).extract(x, seed)
        assert np.array_equal(got, np.asarray(peer, dtype=np.uint8))


def test_seed_is_shorter_and_the_square_case_needs_none() -> None:
    assert ModifiedToeplitz(1000, 100).seed_bits == 999
    square = ModifiedToeplitz(16, 16)
    assert square.seed_bits == 0 and square.hash(b"\xab\xcd") == b"\xab\xcd"
    with pytest.raises(InvalidLengthError, match="^seed: "):
        ModifiedToeplitz(16, 8, b"\x00")
    with pytest.raises(InvalidArgumentError, match="^m: "):
        ModifiedToeplitz(8, 9)
    assert "hidden" in repr(ModifiedToeplitz(32, 8)) and "ModifiedToeplitz" in repr(ModifiedToeplitz(32, 8))
