"""Bob's Cascade shuffles prepared ahead (``_core.CascadePreparation``, made while he sifts).

The shuffles depend on the key's length, the seed and the variant only; a reconciliation that
finds them prepared must run exactly as one that draws them itself (the reference): the same
queries, so the same disclosed bits, round trips and corrections, ending on Alice's key.

Drawing them is the long part of Cascade's set-up (seconds for 10^8 bits): Bob's correction and
Alice's wait for her responder answer Ctrl-C meanwhile, and a dropped preparation stops drawing.
"""

from __future__ import annotations

import resource
import time

import numpy as np
import numpy.typing as npt
import pytest
from qitcore import _core
from qitcore.errors import InvalidArgumentError

from .sigint import interrupted

# Long enough that drawing its shuffles takes seconds on any machine CI has.
LONG = 100_000_000


def _reconcile(
    alice: npt.NDArray[np.uint8], bob: npt.NDArray[np.uint8], seed: int, variant: str
) -> tuple[bytes, int, int, int, int]:
    responder = _core.CascadeResponder(alice, 0.02, seed, variant)
    key, leaked, rounds, corrected = _core.cascade_correct(bob, 0.02, seed, responder.answer, variant)
    return key, leaked, rounds, corrected, responder.disclosed


@pytest.mark.parametrize("variant", ["modified", "original"])
def test_prepared_shuffles_reconcile_as_drawn_ones(variant: str) -> None:
    rng = np.random.default_rng(3)
    alice = rng.integers(0, 2, 60_000, dtype=np.uint8)
    bob = alice.copy()
    bob[rng.random(alice.size) < 0.02] ^= 1
    drawn = _reconcile(alice, bob, 77, variant)
    prepared = _core.CascadePreparation(alice.size, 77, variant)
    ahead = _reconcile(alice, bob, 77, variant)
    del prepared
    assert ahead == drawn
    key, leaked, _, corrected, disclosed = ahead
    assert leaked == disclosed
    # The original's four passes may leave an error in a short block (verification catches it).
    if variant == "modified":
        assert key == alice.tobytes()
        assert corrected >= int((alice != bob).sum())


def test_bad_preparations_are_refused() -> None:
    for n in (0, 2**32):
        with pytest.raises(InvalidArgumentError, match="key length"):
            _core.CascadePreparation(n, 1)
    with pytest.raises(InvalidArgumentError):
        _core.CascadePreparation(100, 1, "bogus")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def test_ctrl_c_stops_cascade_before_its_first_query_and_alices_wait() -> None:
    key = np.zeros(LONG, dtype=np.uint8)
    started = time.monotonic()
    _core.CascadeResponder(key, 0.02, 1).answer(b"")  # waits for the whole build
    whole = time.monotonic() - started

    asked: list[bytes] = []
    stopped = interrupted(lambda: _core.cascade_correct(key, 0.02, 2, asked.append), 0.2)
    assert not asked and stopped < whole / 2, (stopped, whole)
    # Waiting for the shuffles Bob's preparation is still drawing stops too.
    prepared = _core.CascadePreparation(LONG, 5)
    stopped = interrupted(lambda: _core.cascade_correct(key, 0.02, 5, asked.append), 0.2)
    assert not asked and stopped < whole / 2, (stopped, whole)
    del prepared

    responder = _core.CascadeResponder(key, 0.02, 3)
    assert interrupted(lambda: responder.answer(b""), 0.2) < whole / 2
    assert responder.answer(b"") == b""  # the build went on: the next call waits for it


def test_a_dropped_preparation_stops_drawing() -> None:
    prepared = _core.CascadePreparation(LONG, 4)
    time.sleep(0.2)
    del prepared
    time.sleep(0.1)  # the build's next look at its flag
    before = _cpu()
    time.sleep(0.5)
    assert _cpu() - before < 0.2
