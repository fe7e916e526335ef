"""Random sizes and garbage into every public entry point of qitcore.extract and qitcore.bits:
each call returns or raises a QitError, and never crashes the interpreter."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
from qitcore import bits, entropy, extract, health
from qitcore.errors import QitError

GARBAGE: list[Any] = [
    None,
    3.5,
    float("nan"),
    "x",
    b"",
    object(),
    -1,
    0,
    2**70,
    [1, 0],
    np.zeros(3, dtype=np.float32),
    np.ones((2, 2), dtype=np.uint8),
    np.zeros(4, dtype=np.uint8)[::2],
    memoryview(b"abcd"),
    True,
]


def _value(rng: np.random.Generator, good: Any) -> Any:
    return good if rng.random() < 0.7 else GARBAGE[rng.integers(len(GARBAGE))]


def _size(rng: np.random.Generator) -> int:
    return int(rng.choice([0, 1, 2, 7, 8, 63, 64, 65, 200, 4096, 70_000, -3]))


def test_every_entry_point_survives_garbage() -> None:
    rng = np.random.default_rng(2026)
    calls = [
        lambda: extract.ModifiedToeplitz(_value(rng, _size(rng)), _value(rng, _size(rng)), _value(rng, rng.bytes(40))),
        lambda: extract.von_neumann(_value(rng, rng.bytes(int(rng.integers(0, 300)))), nbits=_value(rng, None)),
        lambda: extract.hash_condition(_value(rng, rng.bytes(64 * 3)), _value(rng, _size(rng))),
        lambda: extract.output_length(_value(rng, _size(rng)), _value(rng, rng.random()), _value(rng, rng.random())),
        lambda: extract.output_entropy(*(_value(rng, _size(rng)) for _ in range(3)), _value(rng, 3.0)),
        lambda: extract.conditioned_entropy(
            *(_value(rng, _size(rng)) for _ in range(3)), _value(rng, 3.0), vetted=_value(rng, False)
        ),
        lambda: bits.pack_bits(_value(rng, rng.integers(0, 2, 20))),
        lambda: bits.unpack_bits(_value(rng, rng.bytes(5)), _value(rng, 30)),
        lambda: entropy.assess_non_iid(
            _value(rng, rng.bytes(int(rng.integers(0, 40))) if rng.random() < 0.5 else bytes(int(rng.integers(0, 9)))),
            bits_per_symbol=_value(rng, None),
        ),
        lambda: entropy.assess_iid(
            _value(rng, rng.bytes(int(rng.integers(0, 40)))), permutations=_value(rng, 5), seed=1
        ),
        lambda: health.scan(_value(rng, rng.bytes(50)), _value(rng, rng.random() * 8), alpha=_value(rng, 1e-6)),
        lambda: health.HealthMonitor(_value(rng, rng.random() * 9), bits_per_sample=_value(rng, 8)).feed(
            _value(rng, rng.bytes(600))
        ),
    ]
    for _ in range(200):
        for call in calls:
            with contextlib.suppress(QitError):
                call()
    # Objects that were built hash random data of random lengths without crashing either.
    for _ in range(200):
        try:
            h = extract.ModifiedToeplitz(_size(rng), _size(rng))
        except QitError:
            continue
        with contextlib.suppress(QitError):
            h.hash(_value(rng, rng.bytes(int(rng.integers(0, 2000)))), out=_value(rng, None))
