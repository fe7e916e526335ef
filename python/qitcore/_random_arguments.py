"""QuantumRandom's inherited :class:`random.Random` methods, with their arguments checked first and
their errors raised as :class:`~qitcore.errors.QitError` subclasses.

Why check rather than only translate: the standard library loops forever on some parameters
(``gammavariate(nan, 1)``, ``betavariate(inf, 1)``), and a QuantumRandom reads device bytes on
every turn of such a loop. Every distribution parameter must be a finite real number, and the
ones the formulas divide by or need positive are checked too; a bad one is refused before any
byte is read. What the standard library still raises (an empty sequence, weights that sum to
zero, a step of 0) becomes the QitError subclass of the same builtin type, so ``except
ValueError`` and ``except IndexError`` keep working.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from . import _validate
from .errors import (
    EmptySequenceError,
    InvalidArgumentError,
    InvalidTypeError,
    NumericOverflowError,
    OutOfMemoryError,
    QitError,
)

# Each distribution's parameters that must be positive, or non-zero, beside finite.
DISTRIBUTIONS: dict[str, dict[str, str]] = {
    "uniform": {},
    "triangular": {},
    "normalvariate": {},
    "gauss": {},
    "lognormvariate": {},
    "expovariate": {"lambd": "non-zero"},
    "vonmisesvariate": {},
    "gammavariate": {"alpha": "positive", "beta": "positive"},
    "betavariate": {"alpha": "positive", "beta": "positive"},
    "paretovariate": {"alpha": "non-zero"},
    "weibullvariate": {"beta": "non-zero"},
}
# The methods on integers and sequences: the standard library's checks, its errors translated.
TRANSLATED = ("randrange", "randint", "choice", "choices", "sample", "shuffle")
# Python 3.12's binomialvariate(n, p): an integer count and a probability.
BINOMIAL = "binomialvariate"


@contextmanager
def as_qit_errors(name: str) -> Iterator[None]:
    """The standard library's argument errors in ``name`` as QitError subclasses."""
    try:
        yield
    except QitError:
        raise
    except IndexError as exc:
        raise EmptySequenceError(f"{name}: {exc}") from None
    except OverflowError as exc:  # a draw whose result is beyond the floats
        raise NumericOverflowError(f"{name}: {exc}") from None
    except (ValueError, ArithmeticError) as exc:
        raise InvalidArgumentError(f"{name}: {exc}") from None
    except TypeError as exc:
        raise InvalidTypeError(f"{name}: {exc}") from None
    except MemoryError:
        raise OutOfMemoryError(f"{name}: not enough memory for the result") from None


def _real(name: str, value: Any) -> float:
    """``value`` as a finite float: any real number :mod:`random` takes (ints and bools,
    fractions, numpy's), as a float."""
    if not isinstance(value, numbers.Real):
        return _validate.real(name, value)  # numpy's scalars, and the refusal of anything else
    try:
        x = float(value)
    except OverflowError:  # an int beyond the floats: an OverflowError, as random raises
        raise NumericOverflowError(f"{name}: must be finite, got a number beyond the floats") from None
    if not math.isfinite(x):
        raise InvalidArgumentError(f"{name}: must be finite, got {x}")
    return x


def _bind(
    name: str, signature: inspect.Signature, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> inspect.BoundArguments:
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise InvalidTypeError(f"{name}: {exc}") from None
    bound.apply_defaults()
    return bound


def distribution(name: str) -> Callable[..., Any]:
    """``random.Random.<name>`` with every parameter checked as :data:`DISTRIBUTIONS` says."""
    base = getattr(random.Random, name)
    signature = inspect.signature(base)
    rules = DISTRIBUTIONS[name]

    @functools.wraps(base)
    def method(*args: Any, **kwargs: Any) -> Any:
        bound = _bind(name, signature, args, kwargs)
        refused: InvalidArgumentError | None = None  # a wrong type anywhere is said first
        for parameter, value in list(bound.arguments.items())[1:]:
            if value is None and signature.parameters[parameter].default is None:
                continue  # triangular's mode: None means the midpoint
            try:
                x = _real(f"{name}: {parameter}", value)
            except InvalidArgumentError as exc:
                refused = refused or exc
                continue
            rule = rules.get(parameter)
            if (rule == "positive" and x <= 0) or (rule == "non-zero" and x == 0):
                refused = refused or InvalidArgumentError(f"{name}: {parameter} must be {rule}, got {x}")
            bound.arguments[parameter] = x
        if refused is not None:
            raise refused
        with as_qit_errors(name):
            return base(*bound.args, **bound.kwargs)

    return method


def translated(name: str) -> Callable[..., Any]:
    """``random.Random.<name>`` with its errors translated."""
    base = getattr(random.Random, name)

    @functools.wraps(base)
    def method(*args: Any, **kwargs: Any) -> Any:
        with as_qit_errors(name):
            return base(*args, **kwargs)

    return method


def binomial() -> Callable[..., Any]:
    """Python 3.12's ``binomialvariate(n=1, p=0.5)``: ``n`` an integer ≥ 0, ``p`` in [0, 1]."""
    base = getattr(random.Random, BINOMIAL)
    signature = inspect.signature(base)

    @functools.wraps(base)
    def method(*args: Any, **kwargs: Any) -> Any:
        bound = _bind(BINOMIAL, signature, args, kwargs)
        bound.arguments["n"] = _validate.integer(f"{BINOMIAL}: n", bound.arguments["n"], minimum=0)
        p = _validate.real(f"{BINOMIAL}: p", bound.arguments["p"])
        if not 0.0 <= p <= 1.0:
            raise InvalidArgumentError(f"{BINOMIAL}: p must lie in [0, 1], got {p}")
        bound.arguments["p"] = p
        with as_qit_errors(BINOMIAL):
            return base(*bound.args, **bound.kwargs)

    return method


def install(cls: type[random.Random]) -> None:
    """Puts the checked methods on ``cls``."""
    for name in DISTRIBUTIONS:
        setattr(cls, name, distribution(name))
    for name in TRANSLATED:
        setattr(cls, name, translated(name))
    if hasattr(random.Random, BINOMIAL):
        setattr(cls, BINOMIAL, binomial())
