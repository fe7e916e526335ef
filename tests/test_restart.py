"""Restart tests against NIST's ``ea_restart -v -n FILE 8 7.0`` on truerand_8bit.bin (which prints
ALPHA 5.0251553006530614e-06, X_cutoff 27, X_max 16, H_r 7.865118, H_c 6.638405, passed) and on a
source that restarts into the same state."""

from __future__ import annotations

import numpy as np
import pytest
from qitcore.entropy import assess_restart
from qitcore.errors import InvalidArgumentError, InvalidLengthError

from .sp800_90b import samples


def test_agrees_with_nists_restart_tool() -> None:
    r = assess_restart(samples("truerand_8bit"), 7.0, bits_per_symbol=8)
    assert r.alpha == pytest.approx(5.0251553006530614e-06, rel=1e-12)
    assert (r.cutoff, max(r.max_row, r.max_column)) == (27, 16)
    assert r.h_r == pytest.approx(7.865118, abs=1e-6) and r.h_c == pytest.approx(6.638405, abs=1e-6)
    assert r.sanity_passed and r.passed and r.h_min == pytest.approx(r.h_c)


def test_a_source_that_restarts_into_the_same_state_fails_the_sanity_check() -> None:
    rng = np.random.default_rng(3)
    matrix = rng.integers(0, 256, (1000, 1000), dtype=np.uint8)
    matrix[:, :50] = rng.integers(0, 256, 50, dtype=np.uint8)  # the first 50 samples of every restart agree
    r = assess_restart(matrix.tobytes(), 7.0)
    assert r.max_column == 1000 and not r.sanity_passed and not r.passed


def test_wrong_shapes_and_claims_are_refused() -> None:
    with pytest.raises(InvalidLengthError, match="^data: "):
        assess_restart(b"\x01" * 1000, 1.0)
    with pytest.raises(InvalidArgumentError, match="^h_i: "):
        assess_restart(bytes(range(256)) * 3906 + bytes(64), 9.0)
