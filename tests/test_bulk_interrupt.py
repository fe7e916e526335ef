"""Ctrl-C stops every long call on a large buffer (a megabyte or more): the extractors' (block
hashes between groups of blocks, conditioning hashes every megabyte of a block, one huge block
included, von Neumann between its tasks) and the FIPS 140-2 block tests (between blocks). A
stopped call leaves no partial output: a caller's ``out`` buffer is wiped, not left half hashed;
and the call then gives what it gave before."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from qitcore.extract import ModifiedToeplitz, Toeplitz, hash_condition, von_neumann
from qitcore.health import fips140_2

from .sigint import interrupted

MIB = 1 << 20
# Each call takes a second or more here; it takes an ``out`` buffer (or None for new bytes).
NAMES = ["toeplitz", "modified-toeplitz", "sha3-blocks", "sha3-one-block", "sha256-blocks", "von-neumann", "fips140-2"]
TAKES_OUT = NAMES[:5]


@pytest.fixture(scope="module")
def calls() -> dict[str, Callable[[Any], Any]]:
    data = np.random.default_rng(5).integers(0, 256, 1024 * MIB, dtype=np.uint8)
    toeplitz, modified = Toeplitz(1 << 24, 1 << 23), ModifiedToeplitz(1 << 24, 1 << 23)
    quarter = data[: 256 * MIB]
    return {
        "toeplitz": lambda out: toeplitz.hash(data[: 128 * MIB], out=out),
        "modified-toeplitz": lambda out: modified.hash(data[: 128 * MIB], out=out),
        "sha3-blocks": lambda out: hash_condition(quarter, 4096, function="sha3-256", out=out),
        "sha3-one-block": lambda out: hash_condition(quarter, len(quarter), function="sha3-256", out=out),
        "sha256-blocks": lambda out: hash_condition(quarter, 64, out=out),
        "von-neumann": lambda out: von_neumann(data)[0],
        "fips140-2": lambda out: [[(t.test, t.value, t.passed) for t in b] for b in fips140_2(data[: 32 * MIB])],
    }


@pytest.mark.parametrize("name", NAMES)
def test_ctrl_c_stops_a_long_call_and_leaves_no_partial_output(
    calls: dict[str, Callable[[Any], Any]], name: str
) -> None:
    call = calls[name]
    started = time.monotonic()
    whole = call(None)
    elapsed = time.monotonic() - started
    out = bytearray(b"\xff" * len(whole)) if name in TAKES_OUT else None
    assert interrupted(lambda: call(out), 0.1 * elapsed) < 0.6 * elapsed, elapsed
    if out is not None:
        assert not any(out)
    assert call(None) == whole
