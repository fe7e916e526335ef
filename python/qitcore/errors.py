"""The exceptions qitcore raises: one tree rooted at :class:`QitError`.

Each class also subclasses the builtin exception that fits it, so ``except ValueError`` keeps
working in code that does not know qitcore.
"""

from __future__ import annotations

__all__ = [
    "AdaptiveProportionFailure",
    "HealthTestFailure",
    "InvalidArgumentError",
    "InvalidLengthError",
    "InvalidTypeError",
    "OSRandomError",
    "QitError",
    "RepetitionCountFailure",
    "SampleFileError",
    "SelfTestFailure",
]


class QitError(Exception):
    """Root of every exception qitcore raises."""


class InvalidArgumentError(QitError, ValueError):
    """An argument's value lies outside its domain; the message names the argument."""


class InvalidLengthError(InvalidArgumentError):
    """A buffer or size has the wrong length (a seed of the wrong size, a partial block, ...)."""


class InvalidTypeError(QitError, TypeError):
    """An argument has the wrong type (``str`` for bytes, a read-only buffer for ``out``, ...)."""


class OSRandomError(QitError, OSError):
    """The operating system's random number generator could not be read."""


class SampleFileError(QitError, OSError):
    """A sample file is missing, unreadable or empty."""


class HealthTestFailure(QitError):
    """A continuous health test fired: the source is unhealthy and its output is withheld until
    the monitor is reset. ``index`` is the sample at which the test fired, ``value`` the sample
    value repeated or counted, ``count`` the run length or window count that reached ``cutoff``."""

    test = "health test"

    def __init__(self, message: str, index: int = -1, value: int = -1, count: int = -1, cutoff: int = -1) -> None:
        super().__init__(message)
        self.index = index
        self.value = value
        self.count = count
        self.cutoff = cutoff


class RepetitionCountFailure(HealthTestFailure):
    """The Repetition Count Test fired: ``count`` identical samples in a row."""

    test = "Repetition Count Test"


class AdaptiveProportionFailure(HealthTestFailure):
    """The Adaptive Proportion Test fired: the window's first value recurred ``count`` times."""

    test = "Adaptive Proportion Test"


class SelfTestFailure(QitError):
    """A health test did not fire on the known-bad sequence of the self-test."""
