"""The exceptions qitcore raises: one tree rooted at :class:`QitError`.

Each class also subclasses the builtin exception that fits it, so ``except ValueError`` keeps
working in code that does not know qitcore.
"""

from __future__ import annotations

# PyO3 names an argument it failed to convert in a note of this form.
_CONVERTING = r"while processing '([A-Za-z_][A-Za-z0-9_]*)'"

__all__ = [
    "AdaptiveProportionFailure",
    "AuthenticationError",
    "ChannelClosed",
    "ChannelError",
    "ClusterError",
    "DeviceBusy",
    "DeviceDisconnected",
    "DeviceError",
    "DeviceNotFound",
    "DeviceTimeout",
    "EmptySequenceError",
    "HealthTestFailure",
    "InternalError",
    "InvalidArgumentError",
    "InvalidLengthError",
    "InvalidTypeError",
    "KMEBadRequest",
    "KMEError",
    "KMEUnauthorized",
    "KMEUnavailable",
    "KeyPoolBusy",
    "KeyPoolError",
    "KeyPoolExhausted",
    "NoValidFrames",
    "NumericOverflowError",
    "OSRandomError",
    "OutOfMemoryError",
    "ProtocolError",
    "QitError",
    "QkdAbort",
    "QkdError",
    "RepetitionCountFailure",
    "ReplayedFrameError",
    "SampleFileError",
    "SelfTestFailure",
    "SequenceGapError",
    "ServiceAccessDenied",
    "ServiceUnavailable",
    "StreamClosedError",
    "UnsupportedOperationError",
    "VerificationFailure",
]


def os_reason(exc: BaseException) -> str:
    """Why a call failed, in words for a message that says what was being done: for an
    ``OSError`` the system's reason with the file it names (``/x.toml: No such file or
    directory``), without the ``[Errno 2]`` that ``str`` adds; ``str(exc)`` for anything else."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename is not None else exc.strerror
    return str(exc)


class QitError(Exception):
    """Root of every exception qitcore raises."""

    def add_note(self, note: str, /) -> None:
        """Every message starts with the name of what was wrong; for arguments the binding could not
        convert, that name comes in PyO3's note, so it moves to the front of the message instead."""
        # re is imported here, not with the package: it (with enum and functools) is most of what
        # `import qitcore` would load besides the core, and only such notes need it.
        import re

        m = re.fullmatch(_CONVERTING, note) if isinstance(note, str) else None
        if m and len(self.args) == 1 and isinstance(self.args[0], str):
            if not self.args[0].startswith(f"{m[1]}:"):
                self.args = (f"{m[1]}: {self.args[0]}",)
            return
        super().add_note(note)


class InvalidArgumentError(QitError, ValueError):
    """An argument's value lies outside its domain; the message names the argument."""


class InvalidLengthError(InvalidArgumentError):
    """A buffer or size has the wrong length (a seed of the wrong size, a partial block, ...)."""


class EmptySequenceError(InvalidArgumentError, IndexError):
    """There is nothing to choose from (``QuantumRandom().choice([])``): an ``IndexError``, as
    :mod:`random` raises."""


class NumericOverflowError(QitError, OverflowError):
    """A result beyond the floats (``QuantumRandom().lognormvariate(0, 1000)`` on some draws):
    an ``OverflowError``, as :mod:`random` raises."""


class InvalidTypeError(QitError, TypeError):
    """An argument has the wrong type (``str`` for bytes, a read-only buffer for ``out``, ...)."""


class OSRandomError(QitError, OSError):
    """The operating system's random number generator could not be read."""


class OutOfMemoryError(QitError, MemoryError):
    """A buffer as large as the arguments ask for could not be allocated (a Toeplitz matrix of
    2^32 bits under a memory limit, a read of terabytes). Nothing was changed."""


class InternalError(QitError, RuntimeError):
    """A bug in qitcore: an internal check failed. The operation had no effect; please report it
    with the message."""


class UnsupportedOperationError(QitError, NotImplementedError):
    """The object cannot do this by its nature (a device's bit generator has no seed to spawn
    from, and no state to save)."""


class SampleFileError(QitError, OSError):
    """A sample file is missing, unreadable or empty."""


class ClusterError(QitError, RuntimeError):
    """A Dask cluster could not do the work: Dask is not installed, the scheduler cannot be
    reached, or a task failed there for a reason other than its input (its worker died more often
    than the scheduler allows, qitcore is missing on the workers). No partial result is returned
    and no partial output left; the message names the file whose task failed."""


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


class DeviceError(QitError, OSError):
    """A device could not be opened, configured or read."""


class DeviceNotFound(DeviceError, FileNotFoundError):
    """No such device is attached (or the URL names none)."""


class DeviceBusy(DeviceError):
    """The device is in use by another program (or claimed by a kernel driver that could not be
    detached)."""


class DeviceDisconnected(DeviceError, ConnectionError):
    """The device went away (unplugged, its process ended, its pipe closed). Bytes already
    delivered to the reader stay delivered; reopen the device to go on."""


class DeviceTimeout(DeviceError, TimeoutError):
    """The device did not answer a command, or sent nothing, within the time allowed."""


class NoValidFrames(DeviceTimeout):
    """No valid frame arrived from the device for the stream's ``frame_timeout`` (10 s by
    default): the link carries nothing, or only bytes that are not QDP/1 frames (a wrong device or
    URL, a wrong sample format, a broken link). The stream has failed; reopen it to go on."""


class ServiceUnavailable(DeviceError):
    """The randomness service (``qitcore serve``) has nothing to serve: no device of its pool is
    healthy (all failed their health tests, are disconnected or still starting) for as long as the
    request may wait, or the service is stopping. Nothing was consumed; ask again later."""


class ServiceAccessDenied(DeviceError, PermissionError):
    """The randomness service refused this client: no permission on its socket (the socket's
    owner, group and mode decide), or a client certificate it does not accept."""


class ProtocolError(DeviceError):
    """The device broke the QDP/1 protocol: a malformed payload, another protocol version, a
    command refused."""


class SequenceGapError(ProtocolError):
    """Frames went missing between the device and the host (``lost`` of them, the frame numbered
    ``received`` arriving where ``expected`` was due). Raised when the stream's gap policy is
    ``"error"``; otherwise gaps are counted in its statistics."""

    def __init__(self, message: str, expected: int = -1, received: int = -1, lost: int = -1) -> None:
        super().__init__(message)
        self.expected = expected
        self.received = received
        self.lost = lost


class ReplayedFrameError(SequenceGapError):
    """A frame arrived whose sequence number does not advance past ``last``, the number of the
    last frame accepted: a duplicate, or a frame from the past (``received``). Its samples are never
    used. Raised when the stream's gap policy is ``"error"``; otherwise replays are dropped and
    counted (``replays`` in the statistics)."""

    def __init__(self, message: str, last: int = -1, received: int = -1) -> None:
        super().__init__(message, (last + 1) % 2**32 if last >= 0 else -1, received, 0)
        self.last = last


class StreamClosedError(QitError, ValueError):
    """The stream was closed; reading from it again is an error, as for a closed file."""


class QkdError(QitError):
    """A QKD post-processing session ended without a key. No key material is returned from it."""


class QkdAbort(QkdError):
    """The protocol decided to stop: the error rate is above the threshold, the peer aborted, or
    the two ends disagree on the session's parameters."""


class VerificationFailure(QkdAbort):
    """The keys differ after reconciliation (their verification tags disagree); both are
    discarded."""


class ChannelError(QkdError, ConnectionError):
    """The classical channel failed: the peer went away, timed out, or sent something that is not
    a message of the protocol."""


class ChannelClosed(ChannelError):
    """The peer closed the channel (or a message was dropped and none will come)."""


class AuthenticationError(ChannelError):
    """A message failed authentication: a wrong tag (tampered, or another key), or a sequence
    number out of order (dropped, replayed or reordered)."""


class KeyPoolError(QitError, OSError):
    """A pre-shared key pool file (:class:`qitcore.qkd.KeyPool`) is missing, unreadable,
    corrupt, shorter than its header says, readable by others, or asked to hand out key bits it
    already handed out. The message names the file."""


class KeyPoolBusy(KeyPoolError):
    """Another process (or another open pool in this one) holds the pool file's lock: two users
    of one pool could hand out the same key bits."""


class KeyPoolExhausted(KeyPoolError, QkdError):
    """The key pool holds fewer unused bits than the next authentication tag needs. A session
    that meets it ends without a key; the pool is replenished with :meth:`KeyPool.replenish`
    (distilled key from a session authenticated otherwise, or new pre-shared key)."""


class KMEError(QitError):
    """An ETSI GS QKD 014 request failed. ``status`` is the HTTP status (400, 401, 503), and
    ``message`` and ``details`` the Error object's fields."""

    status = 503

    def __init__(self, message: str, details: list[dict[str, object]] | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []
        if status is not None:
            self.status = status


class KMEBadRequest(KMEError, ValueError):
    """400: the request is malformed, asks for what the KME does not allow, or names keys it
    does not hold."""

    status = 400


class KMEUnauthorized(KMEError, PermissionError):
    """401: the caller is not a known SAE, or asks for keys that belong to another SAE."""

    status = 401


class KMEUnavailable(KMEError):
    """503: the KME cannot serve the request now (not enough key material, or an internal
    error)."""

    status = 503
