"""LDPC reconciliation's frame error rate and efficiency over thousands of frames per QBER:
fresh keys over a simulated BSC at QBER 1–8 %, the plan made for the true QBER. Both ends must count
the same disclosure, at most 3 round trips. A kept frame that differs from Alice's (the decoder
converged to another word with the same syndrome: an undetected error, which only the session's
verification hash catches) is counted and bounded (the 40960-bit codes showed none in 1000 frames at
each QBER 1–8 %).

The issue's target is f ≤ 1.10 with FER ≤ 10^-3 at QBER 1–5 %; the bounds asserted here are what
the shipped codes and decoder reach (see the printed figures), kept as a regression guard.

Run by ``make soak``; prints each QBER's frames, failed frames, f and round trips.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from qitcore.qkd import ldpc

FRAMES = 2000
# (QBER, largest frame error rate, largest f) the soak accepts.
# Measured with examples/ldpc_fer.rs (1000 frames): FER 0.001 at 1 %, 0 elsewhere; f 1.187, 1.154,
# 1.125, 1.125, 1.125, 1.121, 1.122 at 1, 2, 3, 4, 5, 6, 8 %. Here (2000 frames): FER 0.0005 at 1 and
# 3 %, 0 elsewhere; f 1.184, 1.155, 1.126, 1.124, 1.125, 1.122, 1.121.
BOUNDS = [
    (0.01, 0.01, 1.22),
    (0.02, 0.005, 1.19),
    (0.03, 0.005, 1.16),
    (0.04, 0.005, 1.16),
    (0.05, 0.005, 1.16),
    (0.06, 0.005, 1.16),
    (0.08, 0.005, 1.16),
]


def _h2(p: float) -> float:
    return -p * math.log2(p) - (1 - p) * math.log2(1 - p)


@pytest.mark.parametrize("qber, max_fer, max_f", BOUNDS)
def test_ldpc_frame_error_rate(qber: float, max_fer: float, max_f: float) -> None:
    frames = failed = disclosed = used = undetected = 0
    worst_rounds = 0
    batch = 200
    for seed in range(FRAMES // batch):
        k = ldpc.plan(1, qber, seed).key_per_frame
        rng = np.random.default_rng([seed, int(qber * 1000)])
        alice = rng.integers(0, 2, batch * k, dtype=np.uint8)
        bob = alice ^ (rng.random(alice.size) < qber).astype(np.uint8)
        out = ldpc.reconcile(alice, bob, qber, seed)
        k = out.plan.key_per_frame
        undetected += sum(
            not np.array_equal(out.alice[at : at + k], out.bob[at : at + k]) for at in range(0, out.alice.size, k)
        )
        frames += out.plan.frames
        failed += len(out.failed_frames)
        disclosed += out.disclosed
        used += out.plan.used_bits
        worst_rounds = max(worst_rounds, out.round_trips)
    fer = failed / frames
    f = disclosed / (used * _h2(qber))
    print(
        f"\nLDPC QBER {qber:.0%}: {frames} frames, {failed} failed (FER {fer:.4f}), "
        f"{undetected} undetected, f = {f:.4f}, at most {worst_rounds} round trips"
    )
    assert worst_rounds <= 3
    assert undetected <= 2
    assert fer <= max_fer
    assert f <= max_f
