"""Health tests for noise sources.

- :class:`HealthMonitor`: the NIST SP 800-90B continuous tests (§4.4) on a stream of samples —
  the Repetition Count Test and the Adaptive Proportion Test — with the start-up test (§4.3)
  before any output, a failed state that withholds everything from the failing window on until
  :meth:`HealthMonitor.reset`, and an on-demand :meth:`HealthMonitor.self_test`.
- :func:`scan`: every failure in a capture, for a report of where and why a source fails;
  :func:`scan_file` the same over a capture file of any size, read in chunks (constant memory).
- :func:`fips140_2` and :func:`ais31_procedure_a`: the block tests of FIPS 140-2 (2001) and BSI
  AIS 31 (2011) procedure A, with their published bounds.

Cutoffs follow SP 800-90B: ``RCT = 1 + ⌈−log2 α / H⌉`` and ``APT = 1 + CRITBINOM(W, 2^−H, 1 − α)``
(the standard's Table 2 form, the default) with ``W = 1024`` for binary samples and 512 otherwise;
``apt_formula="hill"`` selects Joshua Hill's correction ``2 + CRITBINOM(W − 1, 2^−H, 1 − α)``, which
differs by one at some ``H``.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from typing import Any, Literal

from . import _core, _validate
from ._core import Ais31Result, BlockTest, HealthCounters, HealthScan, ScanFailure, SelfTest
from ._records import as_dict
from .errors import InvalidArgumentError, InvalidTypeError, SampleFileError, SelfTestFailure

__all__ = [
    "Ais31Result",
    "BlockTest",
    "HealthCounters",
    "HealthMonitor",
    "HealthScan",
    "ScanFailure",
    "SelfTest",
    "ais31_procedure_a",
    "fips140_2",
    "scan",
    "scan_file",
]

#: α of each test by default: 2^-20, the largest SP 800-90B suggests.
DEFAULT_ALPHA: float = _core.HEALTH_DEFAULT_ALPHA
#: Samples of the start-up test by default (SP 800-90B §4.3 asks for at least 1024).
DEFAULT_STARTUP_SAMPLES: int = _core.HEALTH_DEFAULT_STARTUP_SAMPLES


def _alpha(alpha: Any) -> float:
    value = _validate.real("alpha", alpha)
    if not 0.0 < value < 1.0:
        raise InvalidArgumentError(f"alpha: must lie in the open interval (0, 1), got {value}")
    return value


class HealthMonitor:
    """SP 800-90B continuous health tests over a stream of samples (one per byte).

    Feed raw samples with :meth:`feed`; it returns the samples that passed. Samples are released a
    whole APT window (512 samples, 1024 for binary sources) at a time once the window has passed,
    so that a failure anywhere in a window lets none of it out; the first ``startup_samples``
    (rounded up to whole windows) are tested and dropped. A failure raises
    :class:`~qitcore.errors.RepetitionCountFailure` or
    :class:`~qitcore.errors.AdaptiveProportionFailure` and leaves the monitor failed: every further
    :meth:`feed` raises the same failure until :meth:`reset`, which reruns the start-up test.

    Args:
        min_entropy: claimed min-entropy per sample, in ``(0, bits_per_sample]`` bits.
        bits_per_sample: 1 to 8.
        alpha: false-positive probability of each test, in ``(0, 1)``; SP 800-90B suggests
            ``2**-20`` to ``2**-40``.
        startup_samples: samples tested before any output (at least 1024 per SP 800-90B §4.3).
        apt_formula: ``"standard"`` (Table 2) or ``"hill"``.

    A monitor pickles with its configuration and its whole state (counters, the RCT run, the APT
    window, the start-up progress, a failure, the samples held for their window), so that a copy
    unpickled in another process and fed the rest of a stream releases exactly what this one would.
    An unpickled state that no monitor could have reached is refused
    (:class:`~qitcore.errors.InvalidArgumentError` naming ``state``). As with any pickle, unpickle
    only what you trust.

    Raises:
        InvalidArgumentError: an argument is out of range.
    """

    __slots__ = ("_core",)

    def __init__(
        self,
        min_entropy: float,
        *,
        bits_per_sample: int = 8,
        alpha: float = DEFAULT_ALPHA,
        startup_samples: int = DEFAULT_STARTUP_SAMPLES,
        apt_formula: Literal["standard", "hill"] = "standard",
    ) -> None:
        bits = _validate.integer("bits_per_sample", bits_per_sample, minimum=1, maximum=8)
        h = _validate.real("min_entropy", min_entropy)
        startup = _validate.integer("startup_samples", startup_samples, minimum=1)
        self._core = _core.HealthMonitor(h, bits, _alpha(alpha), startup, apt_formula)

    def feed(self, data: Any) -> bytes:
        """Tests ``data`` (bytes-like, one sample per byte) and returns the samples released.

        Raises:
            RepetitionCountFailure, AdaptiveProportionFailure: a test fired (now or earlier);
                every pending sample is withheld.
            InvalidTypeError: ``data`` is not bytes-like.
        """
        return bytes(self._core.feed(data))

    def process(self, data: Any) -> tuple[int, int]:
        """Tests ``data`` without copying it, for callers that keep their own buffer of unresolved
        samples: returns ``(discard, emit)``, how many of the oldest unresolved samples to drop
        (start-up) and then to release. Do not mix with :meth:`feed` on one monitor.

        Raises:
            RepetitionCountFailure, AdaptiveProportionFailure: a test fired; every unresolved
                sample is to be withheld.
        """
        discard, emit = self._core.process(data)
        return int(discard), int(emit)

    def reset(self) -> None:
        """Leaves the failed state; the next samples go through the start-up test again."""
        self._core.reset()

    def self_test(self) -> None:
        """Feeds fresh monitors of this configuration a stuck sequence and a biased one and checks
        that the Repetition Count and Adaptive Proportion Tests fire on them.

        Raises:
            SelfTestFailure: a test did not fire.
        """
        silent = [name for name, fired in as_dict(self._core.self_test()).items() if not fired]
        if silent:
            raise SelfTestFailure(f"self-test: {', '.join(silent)} did not fire on its known-bad sequence")

    @property
    def state(self) -> Literal["startup", "healthy", "failed"]:
        """``"startup"``, ``"healthy"`` or ``"failed"``."""
        return self._core.state

    @property
    def rct_cutoff(self) -> int:
        """Repetition Count Test cutoff."""
        return int(self._core.cutoffs[0])

    @property
    def apt_cutoff(self) -> int:
        """Adaptive Proportion Test cutoff."""
        return int(self._core.cutoffs[1])

    @property
    def window(self) -> int:
        """Adaptive Proportion Test window, in samples."""
        return int(self._core.cutoffs[2])

    @property
    def pending(self) -> int:
        """Samples fed but not yet released (their window is incomplete)."""
        return int(self._core.pending)

    @property
    def counters(self) -> dict[str, int]:
        """Samples fed and released, windows, longest run, largest window count, failures."""
        counters: dict[str, int] = as_dict(self._core.counters)
        return counters

    def __repr__(self) -> str:
        return str(self._core.__repr__())

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        # The core's versioned state, which it checks on the way back in.
        return (_restore_monitor, (self._core._state(),))


def _restore_monitor(state: bytes) -> HealthMonitor:
    """The monitor a pickle holds (what :meth:`HealthMonitor.__reduce__` gave)."""
    monitor = HealthMonitor.__new__(HealthMonitor)
    monitor._core = _core.HealthMonitor._from_state(state)
    return monitor


def scan(
    data: Any,
    min_entropy: float,
    *,
    bits_per_sample: int = 8,
    alpha: float = DEFAULT_ALPHA,
    max_failures: int = 1000,
) -> HealthScan:
    """Runs the continuous tests over a whole capture and reports every failure (up to
    ``max_failures``), resetting the monitor after each.

    Raises:
        InvalidArgumentError: an argument is out of range, or a sample does not fit in
            ``bits_per_sample`` (the message gives its offset).
        InvalidTypeError: ``data`` is not bytes-like.
    """
    bits = _validate.integer("bits_per_sample", bits_per_sample, minimum=1, maximum=8)
    h = _validate.real("min_entropy", min_entropy)
    limit = _validate.integer("max_failures", max_failures, minimum=1)
    return _core.health_scan(data, h, bits, _alpha(alpha), limit)


def fips140_2(data: Any, *, bitorder: _validate.BitOrder = "big") -> list[list[BlockTest]]:
    """FIPS 140-2 (2001) monobit, poker, runs and long-run tests on every whole 20,000-bit block of
    ``data`` (packed bits).

    Raises:
        InvalidLengthError: fewer than 20,000 bits.
        InvalidTypeError: ``data`` is not bytes-like.
    """
    return _core.fips140_2(data, bitorder)  # the core checks the choice


def ais31_procedure_a(data: Any, *, bitorder: _validate.BitOrder = "big") -> Ais31Result:
    """BSI AIS 31 procedure A on packed bits (at least 8,285,728 bits, 1,035,716 bytes).

    Raises:
        InvalidLengthError: too few bits.
        InvalidTypeError: ``data`` is not bytes-like.
    """
    return _core.ais31_procedure_a(data, bitorder)


#: Samples read per chunk by :func:`scan_file`.
SCAN_CHUNK = 16 << 20


def scan_file(
    path: str | os.PathLike[str],
    min_entropy: float,
    *,
    bits_per_sample: int = 8,
    alpha: float = DEFAULT_ALPHA,
    max_failures: int = 1000,
    progress: Callable[[int, int | None], object] | None = None,
) -> HealthScan:
    """:func:`scan` of a capture file (one sample a byte) of any size, read a chunk at a time:
    the same failures and counters as :func:`scan` of the whole file, in constant memory. Reading
    stops once ``max_failures`` failures are found. Ctrl-C stops it between chunks.

    ``progress`` is called after each chunk with ``(samples read, file size or None)``.

    Raises:
        SampleFileError: the file is missing, unreadable or empty.
        InvalidArgumentError: an argument is out of range, or a sample does not fit in
            ``bits_per_sample`` (the message gives its offset in the file).
        InvalidTypeError: ``progress`` is not callable.
    """
    bits = _validate.integer("bits_per_sample", bits_per_sample, minimum=1, maximum=8)
    h = _validate.real("min_entropy", min_entropy)
    limit = _validate.integer("max_failures", max_failures, minimum=1)
    if progress is not None and not callable(progress):
        raise InvalidTypeError(f"progress: expected a callable, got {type(progress).__name__}")
    scanner = _core.HealthScanner(h, bits, _alpha(alpha), limit)
    name = path = _validate.path("path", path)
    read = 0
    try:
        with open(path, "rb", buffering=0) as f:
            info = os.fstat(f.fileno())
            size = info.st_size if stat.S_ISREG(info.st_mode) else None
            buffer = bytearray(SCAN_CHUNK)
            view = memoryview(buffer)
            while True:
                got = f.readinto(buffer)
                if not got:
                    break
                read += got
                wanted = scanner.feed(view[:got])
                if progress is not None:
                    progress(read, size)
                if not wanted:
                    break
    except OSError as exc:
        raise SampleFileError(f"{name}: {exc.strerror or exc}") from exc
    if read == 0:
        raise SampleFileError(f"{name}: no samples")
    return scanner.report()
