"""Cascade alone, qitcore against cascade-python (Bruno Rijsman's reference implementation, the
Python code the issue names), on the same keys: 10^4 and 10^5 bits at QBER 2 %.

cascade-python is not on PyPI: set ``QITCORE_CASCADE_PYTHON`` to a checkout of
https://github.com/brunorijsman/cascade-python to include it; without it only qitcore runs.
Every run checks that Bob ends with Alice's key; the notes give the parities each disclosed.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np
import pytest
from qitcore import _core

QBER = 0.02
PEER = os.environ.get("QITCORE_CASCADE_PYTHON")


def _keys(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(n)
    alice = rng.integers(0, 2, n, dtype=np.uint8)
    return alice, alice ^ (rng.random(n) < QBER).astype(np.uint8)


def _h2(p: float) -> float:
    return float(-p * np.log2(p) - (1 - p) * np.log2(1 - p))


def _qitcore(alice: np.ndarray, bob: np.ndarray, variant: str) -> tuple[np.ndarray, int]:
    responder = _core.CascadeResponder(alice, QBER, 7, variant)
    fixed, leaked, _, _ = _core.cascade_correct(bob, QBER, 7, responder.answer, variant)
    return np.frombuffer(fixed, np.uint8), leaked


def _peer(alice: np.ndarray, bob: np.ndarray, algorithm: str) -> tuple[np.ndarray, int]:
    sys.path.insert(0, str(PEER))
    from cascade.key import Key  # type: ignore[import-not-found]
    from cascade.mock_classical_channel import MockClassicalChannel  # type: ignore[import-not-found]
    from cascade.reconciliation import Reconciliation  # type: ignore[import-not-found]

    def key(bits: np.ndarray) -> Any:
        k = Key()
        k._size = len(bits)  # its keys are dicts of bits; no public constructor takes given bits
        k._bits = dict(enumerate(bits.tolist()))
        return k

    r = Reconciliation(algorithm, MockClassicalChannel(key(alice)), key(bob), QBER)
    reconciled = r.reconcile()
    fixed = np.array([reconciled._bits[i] for i in range(len(alice))], dtype=np.uint8)
    return fixed, int(r.stats.ask_parity_blocks)  # one parity bit disclosed per block asked


IMPLS = [("qitcore modified", "modified"), ("qitcore original", "original")]
if PEER:
    IMPLS += [("cascade-python original", "original")]


@pytest.mark.parametrize("n", [10**4, 10**5], ids=lambda n: f"{n:.0e}")
@pytest.mark.parametrize("impl, variant", IMPLS, ids=[i for i, _ in IMPLS])
def test_cascade(benchmark: Any, record: Any, note: Any, n: int, impl: str, variant: str) -> None:
    alice, bob = _keys(n)
    errors = int((alice != bob).sum())
    run = _qitcore if impl.startswith("qitcore") else _peer
    rounds = 5 if impl.startswith("qitcore") or n < 10**5 else 1
    fixed, leaked = benchmark.pedantic(lambda: run(alice, bob, variant), rounds=rounds, warmup_rounds=0)
    assert np.array_equal(fixed, alice), f"{impl} left errors"
    case = f"cascade {n:.0e} bits, QBER 2%"
    record(case, impl, benchmark, n)
    note(f"{case}, {impl}: {leaked:,} parities disclosed, f = {leaked / (n * _h2(errors / n)):.4f}")
