"""Both SP 800-90B tracks on every source of the corpus (qitcore.corpus, regenerated here) against
NIST's own answers on the same bytes (tests/data/sp800-90b/corpus/nist-results.json, recorded with
NIST's ea_non_iid -vv and ea_iid -vvv; see the README there): every value the non-IID track prints;
for the IID track the chi-square, LRS and unpermuted statistics, each permutation test's verdict,
the overall verdict and the assessed entropy.

NIST's IID answers are recorded for the seven sources meant to be IID only. On the three meant not
to be (markov-1, drift-8, correlated-8) NIST's ea_iid runs all 10,000 permutations (the failing
statistics, compression among them, are never decided early): on the shared 2-core machine where
the data was recorded, markov-1's run had not finished after more than an hour, and the other two
could not run in that session. Their IID agreement is therefore not tested yet; record_nist.py
adds them when their runs exist."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from qitcore import corpus
from qitcore.entropy import NonIidResult, assess_iid, assess_non_iid

RESULTS = json.loads((Path(__file__).parent / "data" / "sp800-90b" / "corpus" / "nist-results.json").read_text())
SOURCES: dict[str, Any] = RESULTS["sources"]
IID_RECORDED = [name for name, r in SOURCES.items() if "iid" in r]
REL_TOL = 1e-7  # as the agreement tests on NIST's own files (the issue asks for 1e-6 or better)


def _data(name: str) -> bytes:
    data = corpus.generate(name, RESULTS["generator"]["samples"], RESULTS["generator"]["seed"])

    assert hashlib.sha256(data).hexdigest() == SOURCES[name]["sha256"], f"{name}: not the bytes NIST assessed"
    return data


def _ours(result: NonIidResult) -> dict[str, float]:
    values = {}
    for e in result.estimates():
        for key, value in e.fields.items():
            values[f"{e.view}: {e.name}: {key}"] = float(value)
        if e.min_entropy is not None:
            values[f"{e.view}: {e.name}: min entropy"] = e.min_entropy
    return values


def test_nist_results_cover_the_corpus() -> None:
    # Every source's non-IID track; the IID track on every source meant to pass it, and on those
    # meant to fail it whose 10,000-permutation NIST run (an hour or more here) was recorded: the
    # README lists which.
    assert list(SOURCES) == [s.name for s in corpus.SOURCES]
    assert all("non_iid" in r for r in SOURCES.values())
    assert {s.name for s in corpus.SOURCES if s.iid} <= set(IID_RECORDED)


@pytest.mark.parametrize("name", list(SOURCES))
def test_non_iid_track_matches_nist(name: str) -> None:
    nist = SOURCES[name]["non_iid"]
    result = assess_non_iid(_data(name), bits_per_symbol=SOURCES[name]["bits_per_symbol"])
    ours = _ours(result)
    mismatches = [
        f"{key}: ours {ours.get(key)!r}, NIST {value!r}"
        for key, value in nist["estimates"].items()
        if key not in ours or ours[key] != pytest.approx(value, rel=REL_TOL, abs=1e-300)
    ]
    assert not mismatches, "\n".join(mismatches)
    # Nothing beyond what NIST prints: the same estimators ran and fell back the same way.
    assert not set(ours) - set(nist["estimates"])
    summary = nist["summary"]
    assert result.h_original == pytest.approx(summary["H_original"], rel=REL_TOL)
    assert result.h_assessed == pytest.approx(summary["Assessed min entropy"], rel=REL_TOL)
    if "H_bitstring" in summary:
        assert result.h_bitstring == pytest.approx(summary["H_bitstring"], rel=REL_TOL)
    else:
        assert result.h_bitstring is None


@pytest.mark.parametrize("name", IID_RECORDED)
def test_iid_track_matches_nist(name: str) -> None:
    nist = SOURCES[name]["iid"]
    result = assess_iid(_data(name), bits_per_symbol=SOURCES[name]["bits_per_symbol"], seed=2026)
    summary = nist["summary"]
    assert result.h_original == pytest.approx(summary["H_original"], rel=1e-12)
    assert result.h_assessed == pytest.approx(summary["Assessed min entropy"], rel=1e-12)
    if "H_bitstring" in summary:
        assert result.h_bitstring == pytest.approx(summary["H_bitstring"], rel=1e-12)
    for ours, ref in [
        (result.independence, nist["chi_square"]["independence"]),
        (result.goodness_of_fit, nist["chi_square"]["goodness_of_fit"]),
    ]:
        assert (ours.score, ours.df) == (pytest.approx(ref["T"], rel=1e-12), ref["df"])
    assert (result.independence.passed and result.goodness_of_fit.passed) == nist["chi_square_passed"]
    lrs = nist["lrs"]
    assert result.lrs.length == lrs["W"]
    assert result.lrs.p_col == pytest.approx(lrs["P_col"], rel=1e-12)
    assert result.lrs.probability == pytest.approx(lrs["Pr(X >= 1)"], rel=1e-9)
    assert result.lrs.passed == nist["lrs_passed"]
    statistics = {s.name: s for s in result.permutation}
    assert list(statistics) == list(nist["permutation"])
    for stat_name, ref in nist["permutation"].items():
        assert statistics[stat_name].value == pytest.approx(ref["value"], rel=1e-12), stat_name
    # The permutations drawn differ between the tools; the verdicts must not.
    verdicts = {k: s.passed for k, s in statistics.items()}
    assert verdicts == {k: ref["passed"] for k, ref in nist["permutation"].items()}
    assert result.passed == nist["passed"]
