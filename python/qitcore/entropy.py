"""Entropy assessment after NIST SP 800-90B.

:func:`assess_non_iid` runs the non-IID track (§6.3): the ten estimators on the samples and, for
alphabets of more than two symbols, on their bit string, with
``H = min(H_original, bits_per_symbol × H_bitstring)`` as NIST's ``ea_non_iid`` computes it. Every
intermediate value is kept, under NIST's names, so results can be compared line by line with
NIST's tool (the test suite does so on NIST's own sample files).

:func:`assess_iid` runs the IID track (§5): the chi-square independence and goodness-of-fit tests,
the longest-repeated-substring test and the permutation tests (19 statistics, up to 10,000
permutations); when all pass, the most common value estimate is the assessment.

Samples are one per byte; the low ``bits_per_symbol`` bits are used (inferred from the data when not
given).

**Memory.** An assessment takes at most :data:`MAX_SAMPLES` samples (64 times the million SP 800-90B
asks for). Below it, memory grows by about 13 bytes a sample for 8-bit samples on the non-IID track
(NIST's ``ea_non_iid``: about 106), and by at most about 80 on data whose repeats are too long for
the bounded suffix sort (a broken source: measured 79 bytes a sample on a stuck source repeating
1000 samples, 53 on a capture written twice); on the IID track by about 2 + the number of worker
threads (NIST's ``ea_iid``: about 11 + 6 a thread). A buffer that cannot be allocated raises
:class:`~qitcore.errors.OutOfMemoryError`. :func:`read_samples` checks a file's size before reading
it and reads only the slice asked for, so that larger captures are assessed a slice at a time.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import _core, _validate
from ._core import (
    ChiSquareResult,
    Estimate,
    IidResult,
    LrsTestResult,
    NonIidResult,
    PermutationStatistic,
    RestartResult,
)
from .errors import InvalidArgumentError, InvalidLengthError, InvalidTypeError, SampleFileError

if TYPE_CHECKING:
    from .extract import conditioned_entropy

__all__ = [
    "MAX_SAMPLES",
    "ChiSquareResult",
    "Estimate",
    "IidResult",
    "LrsTestResult",
    "NonIidResult",
    "PermutationStatistic",
    "RestartResult",
    "assess_iid",
    "assess_non_iid",
    "assess_restart",
    "conditioned_entropy",
    "read_samples",
    "sha256_hex",
]


# Re-exported from qitcore.extract on first use (PEP 562): extract imports numpy, which an
# assessment does not need. Hidden from type checkers, which see the import under TYPE_CHECKING.
if not TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        if name == "conditioned_entropy":
            from .extract import conditioned_entropy

            return conditioned_entropy
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


#: The bit-string length NIST's ``-t`` option truncates to.
TRUNCATED_BITS = 1_000_000

#: The most samples one assessment takes (2^26 = 67,108,864); the core refuses more before
#: allocating anything.
MAX_SAMPLES: int = _core.MAX_SAMPLES


def _too_many(path: str | os.PathLike[str], samples: int | str, limit: int) -> InvalidLengthError:
    return InvalidLengthError(
        f"{os.fspath(path)}: {samples} samples, more than the {limit} one assessment takes; "
        "read a slice of them with subset=(index, count) (--subset INDEX,COUNT on the command line)"
    )


_LARGEST_OFFSET = 2**62
"""The furthest a subset may start in a file (bytes): the largest offset a seek takes, with room."""


def sha256_hex(data: Any) -> str:
    """SHA-256 of ``data`` (bytes-like) in hex, for the records that name what was assessed; by the
    core's hash rather than hashlib, whose OpenSSL would add 3.7 MiB to an assessment's peak."""
    try:
        size = memoryview(data).nbytes  # all of it, whatever its shape (len() counts rows)
    except TypeError:
        raise InvalidTypeError(f"data: expected a bytes-like object, got {type(data).__name__}") from None
    return bytes(_core.hash_condition("sha256", data, size)).hex()


def read_samples(
    path: str | os.PathLike[str],
    *,
    subset: Sequence[int] | None = None,
    max_samples: int = MAX_SAMPLES,
) -> bytes:
    """Reads a sample file (one sample per byte). ``subset=(index, count)`` reads the ``index``-th
    block of ``count`` samples, as NIST's ``-l index,count``: only that slice is read.

    A file of more than ``max_samples`` samples is refused from its size, before anything is read
    (a pipe or device is read up to one sample past the limit).

    Raises:
        SampleFileError: the file is missing, unreadable or empty, or the subset lies past its end.
        InvalidLengthError: the file (or ``count``) holds more than ``max_samples`` samples.
        InvalidArgumentError: ``subset`` is not two non-negative integers with ``count >= 1``.
    """
    path = _validate.path("path", path)
    limit = _validate.integer("max_samples", max_samples, minimum=1, maximum=MAX_SAMPLES)
    if subset is not None:
        if not isinstance(subset, (tuple, list)) or len(subset) != 2:
            raise InvalidArgumentError(f"subset: expected (index, count), got {subset!r}")
        index = _validate.integer("subset index", subset[0], minimum=0)
        count = _validate.integer("subset count", subset[1], minimum=1)
        if count > limit:
            raise InvalidLengthError(
                f"subset count: {count} samples, more than the {limit} one assessment takes; use a smaller count"
            )
    try:
        with open(path, "rb") as handle:
            status = os.fstat(handle.fileno())
            regular = stat.S_ISREG(status.st_mode)
            if subset is None:
                if regular and status.st_size > limit:
                    raise _too_many(path, status.st_size, limit)
                data = handle.read(limit + 1)
                if len(data) > limit:
                    raise _too_many(path, f"more than {limit}", limit)
            else:
                if index * count > _LARGEST_OFFSET or (regular and index * count >= status.st_size > 0):
                    raise SampleFileError(
                        f"{os.fspath(path)}: subset {index},{count} starts at sample {index * count}, "
                        f"past the file's {status.st_size} samples"
                    )
                handle.seek(index * count)
                data = handle.read(count)
    except OSError as exc:
        if isinstance(exc, SampleFileError):
            raise
        raise SampleFileError(f"{os.fspath(path)}: {exc.strerror or exc}") from exc
    if not data:
        where = "" if subset is None else f" at subset {tuple(subset)}"
        raise SampleFileError(f"{os.fspath(path)}: no samples{where}")
    return data


def assess_non_iid(data: Any, *, bits_per_symbol: int | None = None, truncate_bitstring: bool = False) -> NonIidResult:
    """Runs the SP 800-90B non-IID track on ``data`` (bytes-like, one sample per byte).

    Args:
        data: the samples.
        bits_per_symbol: 1 to 8; inferred from the data (the highest bit set) when ``None``.
        truncate_bitstring: assess only the first 1,000,000 bits of the bit string (NIST's ``-t``).

    Called from the main thread, Ctrl-C stops the run within about a second (every estimator
    looks for it as it goes) and raises ``KeyboardInterrupt``.

    Raises:
        InvalidTypeError: ``data`` is not bytes-like.
        InvalidLengthError: ``data`` is empty, or holds more than :data:`MAX_SAMPLES` samples (refused
            before anything is allocated).
        InvalidArgumentError: ``bits_per_symbol`` is outside 1-8, or a sample does not fit in it
            (the message gives the offset of the first one).
        OutOfMemoryError: the bit string, or the arrays of the tuple estimates on data with long
            repeats (a broken source), cannot be allocated; the other estimators are stopped.
    """
    if bits_per_symbol is not None:
        bits_per_symbol = _validate.integer("bits_per_symbol", bits_per_symbol, minimum=1, maximum=8)
    max_bits = TRUNCATED_BITS if _validate.flag("truncate_bitstring", truncate_bitstring) else None
    return _core.assess_non_iid(data, bits_per_symbol, max_bits)


def assess_iid(
    data: Any,
    *,
    bits_per_symbol: int | None = None,
    permutations: int = _core.DEFAULT_PERMUTATIONS,
    seed: int | None = None,
    progress: Any = None,
) -> IidResult:
    """Runs the SP 800-90B IID track on ``data`` (bytes-like, one sample per byte).

    Args:
        data: the samples.
        bits_per_symbol: 1 to 8; inferred from the data when ``None``.
        permutations: the most permutations to run (NIST's 10,000); a statistic stops being
            computed once it is decided, and the run ends when all are.
        seed: a 64-bit seed for the permutations, for a reproducible run; by default one is drawn
            from the OS CSPRNG (and reported in the result).
        progress: called as ``progress(rounds, decided)`` after each batch of permutations; an
            exception it raises stops the run and is raised by this call.

    Called from the main thread, Ctrl-C stops the run within a batch of permutations (a tenth of
    a second or so on a million samples, once the chi-square and LRS tests beside the first batch
    are done) and raises ``KeyboardInterrupt``. Python runs signal handlers only in the main
    thread: from another thread, stop a run by raising an exception in ``progress``.

    Raises:
        InvalidTypeError: ``data`` is not bytes-like.
        InvalidLengthError: ``data`` is empty, or holds more than :data:`MAX_SAMPLES` samples (refused
            before anything is allocated).
        InvalidArgumentError: ``bits_per_symbol``, ``permutations`` or ``seed`` out of range, or a
            sample does not fit in ``bits_per_symbol``.
        OutOfMemoryError: the LRS test's suffix array of data with long repeats cannot be allocated.
    """
    if bits_per_symbol is not None:
        bits_per_symbol = _validate.integer("bits_per_symbol", bits_per_symbol, minimum=1, maximum=8)
    permutations = _validate.integer("permutations", permutations, minimum=1)
    if seed is not None:
        seed = _validate.integer("seed", seed, minimum=0, maximum=2**64 - 1)
    if progress is not None and not callable(progress):
        raise _validate.InvalidTypeError(f"progress: expected a callable, got {type(progress).__name__}")
    return _core.assess_iid(data, bits_per_symbol, permutations, seed, progress)


def assess_restart(data: Any, h_i: float, *, bits_per_symbol: int | None = None) -> RestartResult:
    """Runs the SP 800-90B restart tests (§3.1.4) on 1,000,000 samples: 1000 restarts of the
    source, 1000 samples each, restart after restart (NIST's ``ea_restart`` format).

    The sanity check's cutoff is computed exactly for NIST's model of a source at ``h_i``, where
    NIST's tool estimates it by simulation; the validation runs every non-IID estimator on the rows
    and on the columns. Ctrl-C stops it as it stops :func:`assess_non_iid`.

    Raises:
        InvalidLengthError: not exactly 1,000,000 samples.
        InvalidArgumentError: ``h_i`` outside ``[0, bits_per_symbol]``, or a sample too wide.
        OutOfMemoryError: as for :func:`assess_non_iid`.
    """
    if bits_per_symbol is not None:
        bits_per_symbol = _validate.integer("bits_per_symbol", bits_per_symbol, minimum=1, maximum=8)
    return _core.assess_restart(data, _validate.real("h_i", h_i), bits_per_symbol)
