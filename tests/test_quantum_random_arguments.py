"""QuantumRandom's inherited methods against :class:`random.Random` on bad arguments: where the
standard library raises, QuantumRandom raises a QitError of the same builtin type; where it loops
forever reading the generator (``gammavariate(nan, 1)``) or returns a non-number, QuantumRandom
refuses before it reads; good arguments give the standard library's kind of result."""

from __future__ import annotations

import itertools
import math
import random
import warnings
from fractions import Fraction
from typing import Any

import pytest
import qitcore
from qitcore.errors import EmptySequenceError, InvalidArgumentError, InvalidTypeError, NumericOverflowError, QitError

BAD: list[Any] = [None, "x", -1, 0, 1.5, math.nan, math.inf, -math.inf, [], (), 10**400, [1, 2], {1, 2}, object()]
METHODS = [
    "uniform", "triangular", "normalvariate", "gauss", "lognormvariate", "expovariate",
    "vonmisesvariate", "gammavariate", "betavariate", "paretovariate", "weibullvariate",
    "randrange", "randint", "choice", "choices", "sample", "shuffle",
]  # fmt: skip


class _Counting(random.Random):
    """The standard library's behaviour, counting the draws it makes."""

    draws = 0

    def _draw(self) -> None:
        self.draws += 1
        if self.draws > 10_000:
            raise _Looping

    def random(self) -> float:
        self._draw()
        return super().random()

    def getrandbits(self, k: int) -> int:  # overridden too, so that randrange draws bits as ever
        self._draw()
        return super().getrandbits(k)


class _Looping(Exception):
    pass


def _outcome(generator: random.Random, name: str, args: tuple[Any, ...]) -> tuple[str, Any]:
    try:
        return "value", getattr(generator, name)(*args)
    except _Looping:
        return "loops", None
    except Exception as exc:  # the standard library's own types are the reference here
        return "raises", exc


@pytest.fixture(scope="module")
def quantum() -> Any:
    with qitcore.open("sim://?seed=21") as stream:
        yield qitcore.QuantumRandom(stream)


# A distribution parameter that is no finite real number.
REFUSED = (InvalidArgumentError, InvalidTypeError, NumericOverflowError)
# Arguments each method accepts, for the cases where one argument is bad.
GOOD: dict[str, tuple[Any, ...]] = {
    "uniform": (0.0, 1.0), "triangular": (0.0, 1.0, 0.5), "normalvariate": (0.0, 1.0),
    "gauss": (0.0, 1.0), "lognormvariate": (0.0, 1.0), "expovariate": (1.0,),
    "vonmisesvariate": (0.0, 1.0), "gammavariate": (2.0, 1.0), "betavariate": (2.0, 3.0),
    "paretovariate": (2.0,), "weibullvariate": (1.0, 2.0), "randrange": (0, 10, 2), "randint": (1, 6),
    "choice": ([1, 2],), "choices": ([1, 2], [1, 1]), "sample": ([1, 2, 3], 2), "shuffle": ([1, 2, 3],),
}  # fmt: skip


@pytest.mark.parametrize("name", METHODS)
def test_bad_arguments_raise_what_random_raises_as_a_qit_error(name: str, quantum: Any) -> None:
    """Every call with up to two arguments from BAD, and every good call with one argument made
    bad: where the standard library raises, QuantumRandom raises a QitError (of the same builtin
    type when only one argument is bad: with two, which one is reported first is an accident of
    the standard library's order of work)."""
    reference = _Counting(5)
    one_bad = [((*GOOD[name][:i], bad, *GOOD[name][i + 1 :]), True) for i in range(len(GOOD[name])) for bad in BAD]
    any_bad = [(args, False) for count in range(3) for args in itertools.product(BAD, repeat=count)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # randrange(1.5)
        for args, single in one_bad + any_bad:
            reference.draws = 0
            kind, expected = _outcome(reference, name, args)
            got = _outcome(quantum, name, args)
            where = f"{name}{args!r}"
            if kind == "raises":
                assert got[0] == "raises" and isinstance(got[1], QitError), (where, expected, got)
                kinds = (TypeError, IndexError, OverflowError)
                builtin = next((k for k in kinds if isinstance(expected, k)), ValueError)
                assert not single or isinstance(got[1], builtin), (where, expected, got[1])
            elif kind == "loops" or _not_a_number(expected):
                assert got[0] == "raises" and isinstance(got[1], REFUSED), (where, got)
            elif got[0] == "raises":  # the standard library accepted it: only a parameter that is
                assert isinstance(got[1], REFUSED), (where, got)  # not a finite real is refused
                assert "must be finite" in str(got[1]) or "expected a real number" in str(got[1]), (where, got)
            else:
                assert type(got[1]) is type(expected), (where, expected, got[1])


def _not_a_number(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


def test_the_standard_library_really_loops_where_quantum_random_refuses() -> None:
    """The reference above: these calls never end on random.Random (they stop at 10,000 draws)."""
    loops = [("gammavariate", (math.nan, 1.0)), ("betavariate", (math.inf, 1.0)), ("vonmisesvariate", (0, math.nan))]
    for name, args in loops:
        assert _outcome(_Counting(1), name, args)[0] == "loops", name


def test_the_checked_methods_still_draw(quantum: Any) -> None:
    assert 2.0 <= quantum.uniform(2, 3) <= 3.0
    assert quantum.gammavariate(2.0, 1.0) > 0 and 0 < quantum.betavariate(2, 3) < 1
    assert quantum.triangular(0, 1) <= 1 and quantum.triangular(0, 1, 0.2) >= 0
    assert quantum.expovariate(-2.0) < 0  # a negative rate is the standard library's, kept
    assert quantum.choice("abc") in "abc" and sorted(quantum.sample(range(10), 10)) == list(range(10))
    assert len(quantum.choices("ab", k=5)) == 5 and quantum.randrange(0, 10, 3) in (0, 3, 6, 9)
    with pytest.raises(EmptySequenceError, match="choice: Cannot choose from an empty sequence"):
        quantum.choice([])
    with pytest.raises(IndexError):  # the builtin type, for code that knows random only
        quantum.choice(())
    with pytest.raises(InvalidArgumentError, match="gammavariate: alpha must be positive, got 0.0"):
        quantum.gammavariate(0, 1)
    with pytest.raises(NumericOverflowError, match="uniform: a: must be finite, got a number beyond the floats"):
        quantum.uniform(10**400, 1)
    # Any real number random takes: fractions and bools too.
    assert 1 / 3 <= quantum.uniform(Fraction(1, 3), Fraction(2, 3)) <= 2 / 3 and 1 <= quantum.uniform(True, 2) <= 2
    # A draw beyond the floats is an OverflowError, as random's, not an argument error.
    with pytest.raises(NumericOverflowError, match="lognormvariate: math range error"):
        for _ in range(200):
            quantum.lognormvariate(0, 1000)
