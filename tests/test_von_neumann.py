"""Von Neumann debiasing against the pairwise definition and the law it rests on."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from qitcore.bits import pack_bits, unpack_bits
from qitcore.errors import InvalidArgumentError, InvalidTypeError
from qitcore.extract import von_neumann

from .reference import von_neumann_naive


@settings(max_examples=80, deadline=None)
@given(data=st.binary(max_size=600), cut=st.integers(0, 7), bitorder=st.sampled_from(["big", "little"]))
def test_matches_the_pairwise_definition(data: bytes, cut: int, bitorder: str) -> None:
    nbits = max(0, 8 * len(data) - cut)
    packed, count = von_neumann(data, nbits=nbits, bitorder=bitorder)
    expect = von_neumann_naive(unpack_bits(data, nbits, bitorder=bitorder))
    assert count == expect.size
    assert np.array_equal(unpack_bits(packed, count, bitorder=bitorder), expect)
    assert len(packed) == (count + 7) // 8


def test_biased_independent_bits_come_out_uniform_at_rate_p_times_1_minus_p() -> None:
    rng = np.random.default_rng(11)
    p, n = 0.8, 4_000_000
    bits = (rng.random(n) < p).astype(np.uint8)
    packed, count = von_neumann(pack_bits(bits), output="numpy")
    assert isinstance(packed, np.ndarray)
    # Output count is binomial(n/2, 2p(1-p)); ones among the output are binomial(count, 1/2).
    expected = n * p * (1 - p)
    assert abs(count - expected) < 6 * np.sqrt(n / 2 * 2 * p * (1 - p) * (1 - 2 * p * (1 - p)))
    ones = int(unpack_bits(packed, count).sum())
    assert abs(ones - count / 2) < 6 * np.sqrt(count) / 2


def test_large_inputs_split_across_threads_keep_their_order(rng) -> None:
    data = rng.integers(0, 256, 3 << 20, dtype=np.uint8)
    packed, count = von_neumann(data)
    expect = von_neumann_naive(unpack_bits(data))
    assert count == expect.size and np.array_equal(unpack_bits(packed, count), expect)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(InvalidTypeError, match="^data: "):
        von_neumann("0101")
    with pytest.raises(InvalidArgumentError, match="^nbits: "):
        von_neumann(b"\x00", nbits=9)
    with pytest.raises(InvalidArgumentError, match="^bitorder: "):
        von_neumann(b"\x00", bitorder="middle")  # type: ignore[arg-type]
