"""LDPC reconciliation: Bob's decoding (all frames, blind rounds included) of about 10^6 bits of
sifted key over a simulated BSC at QBER 1, 2, 3, 5 and 8 %, on all cores. The input rate counts
sifted key bits; each run checks that Bob's kept frames equal Alice's and notes f and failed frames.

    make bench  (or: python -m pytest benches/bench_ldpc.py -o python_files='bench_*.py' --benchmark-only)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from qitcore.qkd import ldpc

N = 10**6


def _h2(p: float) -> float:
    return -p * math.log2(p) - (1 - p) * math.log2(1 - p)


@pytest.mark.parametrize("qber", [0.01, 0.02, 0.03, 0.05, 0.08])
def test_ldpc_decode(benchmark: Any, record: Any, note: Any, qber: float) -> None:
    rng = np.random.default_rng(int(qber * 1000))
    alice = rng.integers(0, 2, N, dtype=np.uint8)
    bob = alice ^ (rng.random(N) < qber).astype(np.uint8)
    plan = ldpc.plan(N, qber, 11)
    enc = ldpc.LdpcEncoder(plan, alice)
    syndromes = enc.syndromes()
    reveals: dict[bytes, bytes] = {}

    def run() -> ldpc.LdpcDecoder:
        # Alice's answers are computed once per request and replayed, so that only Bob's work is
        # timed (the same requests recur: decoding is deterministic).
        dec = ldpc.LdpcDecoder(plan, bob)
        request = dec.decode(syndromes)
        while request is not None:
            if request not in reveals:
                reveals[request] = enc.reveal(request)
            request = dec.apply(reveals[request])
        return dec

    dec = benchmark.pedantic(run, rounds=3, warmup_rounds=0)
    assert np.array_equal(dec.key, ldpc.keep(plan, alice, dec.failed_frames))
    case = f"ldpc decode 1e6 bits, QBER {qber:.0%}"
    record(case, "qitcore", benchmark, plan.used_bits)
    kept = plan.used_bits - len(dec.failed_frames) * plan.key_per_frame
    f = dec.disclosed / (plan.used_bits * _h2(qber))
    note(
        f"{case}: {plan.code}, {plan.frames} frames, {len(dec.failed_frames)} failed, "
        f"f = {f:.3f}, {dec.rounds} round trips, {kept:,} bits kept"
    )
