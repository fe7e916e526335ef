"""Bob's Cascade shuffles prepared ahead (``_core.CascadePreparation``, made while he sifts).

The shuffles depend on the key's length, the seed and the variant only; a reconciliation that
finds them prepared must run exactly as one that draws them itself (the reference): the same
queries, so the same disclosed bits, round trips and corrections, ending on Alice's key.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from qitcore import _core
from qitcore.errors import InvalidArgumentError


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
