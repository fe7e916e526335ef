"""The exceptions qitcore raises: one tree rooted at :class:`QitError`.

Each class also subclasses the builtin exception that fits it, so ``except ValueError`` keeps
working in code that does not know qitcore.
"""

from __future__ import annotations

__all__ = [
    "InvalidArgumentError",
    "InvalidLengthError",
    "InvalidTypeError",
    "OSRandomError",
    "QitError",
    "SampleFileError",
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
