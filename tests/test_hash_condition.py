"""SHA-256 and SHA3-256 conditioning against hashlib."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from qitcore.errors import InvalidArgumentError, InvalidLengthError, InvalidTypeError
from qitcore.extract import hash_condition


@pytest.mark.parametrize(("function", "reference"), [("sha256", hashlib.sha256), ("sha3-256", hashlib.sha3_256)])
@pytest.mark.parametrize("block_bytes", [1, 55, 64, 128, 4096])
def test_every_block_is_hashed_like_hashlib(function: str, reference, block_bytes: int, rng) -> None:
    data = rng.integers(0, 256, block_bytes * 37, dtype=np.uint8).tobytes()
    got = hash_condition(data, block_bytes, function=function)
    expect = b"".join(reference(data[k : k + block_bytes]).digest() for k in range(0, len(data), block_bytes))
    assert got == expect
    array = hash_condition(np.frombuffer(data, dtype=np.uint8), block_bytes, function=function, output="numpy")
    assert array.tobytes() == expect


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(InvalidLengthError, match="^data: "):
        hash_condition(b"\x00" * 65, 64)
    with pytest.raises(InvalidArgumentError, match="^block_bytes: "):
        hash_condition(b"\x00" * 64, 0)
    with pytest.raises(InvalidArgumentError, match="^function: "):
        hash_condition(b"\x00" * 64, 64, function="md5")  # type: ignore[arg-type]
    with pytest.raises(InvalidTypeError, match="^data: "):
        hash_condition("text", 4)
    with pytest.raises(InvalidLengthError, match="^out: "):
        hash_condition(b"\x00" * 64, 64, out=bytearray(31))
