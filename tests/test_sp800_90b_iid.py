"""The IID track against the results NIST publishes with its sample data (the data folder's
README: most-common-value estimates, and both files pass NIST's IID tests), and against NIST's
``ea_iid 1.1.7 -vvv`` output on the same files for the chi-square, LRS and unpermuted statistics."""

from __future__ import annotations

import numpy as np
import pytest
from qitcore.entropy import assess_iid
from qitcore.errors import InvalidArgumentError, InvalidTypeError

from .sp800_90b import samples

# NIST ea_iid 1.1.7 -vvv on each file: chi-square (T, df), LRS (W, P_col) and the 19 unpermuted
# statistics (excursion differs from NIST's in the last bits: NIST's build fuses a multiply-add).
NIST_IID = {
    "truerand_1bit": {
        "h": 0.99504301513122573,
        "independence": (1959.9547918847986, 2046),
        "goodness_of_fit": (10.381131785392068, 9),
        "lrs": (39, 0.5000003749651048712711),
        "statistics": [398.0734649999869, 79772, 11, 74828, 499907, 19, 20.84108721027180166629, 64,
                       24458, 24540, 24578, 24605, 24910,
                       2003826, 2003159, 2003373, 2002280, 2004698, 155806],
    },
    "truerand_8bit": {
        "h": 7.8651180028995897,
        "independence": (65643.308565352563, 65280),
        "goodness_of_fit": (2449.4755588173562, 2295),
        "lrs": (4, 0.003907343436000388435041),
        "statistics": [70510.35097599648, 667249, 8, 501865, 499840, 18, 20.68036397476993215605, 71,
                       3973, 3879, 3979, 3887, 4055,
                       16277316612, 16283209676, 16272155554, 16277073222, 16277087498, 1067936],
    },
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(NIST_IID))
def test_iid_track_agrees_with_nist(name: str) -> None:
    ref = NIST_IID[name]
    result = assess_iid(samples(name), seed=2026)
    assert result.h_original == pytest.approx(ref["h"], rel=1e-12)
    assert result.h_assessed == pytest.approx(ref["h"], rel=1e-12)
    for ours, (score, df) in [
        (result.independence, ref["independence"]),
        (result.goodness_of_fit, ref["goodness_of_fit"]),
    ]:
        assert ours.score == pytest.approx(score, rel=1e-12) and ours.df == df
    assert (result.lrs.length, result.lrs.p_col) == (ref["lrs"][0], pytest.approx(ref["lrs"][1], rel=1e-12))
    assert [s.value for s in result.permutation] == pytest.approx(ref["statistics"], rel=1e-12)
    # Both pass NIST's IID tests; every statistic was decided within 10,000 permutations.
    assert result.passed and all(s.passed for s in result.permutation)
    assert result.permutation_rounds <= 10_000


def test_correlated_samples_fail_the_iid_tests() -> None:
    # A sticky Markov chain over 8 symbols: each sample repeats the last with probability 0.3.
    rng = np.random.default_rng(5)
    n = 200_000
    fresh = rng.integers(0, 8, n, dtype=np.uint8)
    stick = rng.random(n) < 0.3
    data = fresh.copy()
    for i in range(1, n):
        if stick[i]:
            data[i] = data[i - 1]
    result = assess_iid(data.tobytes(), seed=1, permutations=200)
    assert not result.passed
    assert not result.independence.passed
    failing = {s.name for s in result.permutation if not s.passed}
    assert {"numRunsMedian", "periodicity(1)"} <= failing


def test_progress_is_reported_and_seeds_reproduce() -> None:
    data = np.random.default_rng(9).integers(0, 4, 20_000, dtype=np.uint8).tobytes()
    calls: list[tuple[int, int]] = []
    a = assess_iid(data, seed=42, progress=lambda rounds, decided: calls.append((rounds, decided)))
    b = assess_iid(data, seed=42)
    assert calls and calls[-1][0] == a.permutation_rounds
    assert [s.counts for s in a.permutation] == [s.counts for s in b.permutation]
    assert a.permutation_seed == 42


def test_bad_arguments() -> None:
    with pytest.raises(InvalidArgumentError, match="^permutations: "):
        assess_iid(b"\x01\x02", permutations=0)
    with pytest.raises(InvalidTypeError, match="^progress: "):
        assess_iid(b"\x01\x02", progress=3)
    with pytest.raises(InvalidArgumentError, match="^data: .*offset 1"):
        assess_iid(b"\x01\x09", bits_per_symbol=3)
