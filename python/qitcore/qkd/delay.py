"""A classical channel with the latency of a real link, both ends in one process.

Bob drives the session in request/reply round trips, so a link's latency costs every round trip
twice its one-way delay whatever the CPUs do (Cascade takes hundreds of round trips per block).
:func:`delayed` makes a channel factory for :func:`qitcore.qkd.distill` that holds every message
for the link's one-way delay, in both directions, so that the wall time of a session run here is
what it would be over such a link::

    result = qkd.distill(link.alice, link.bob, channel=delayed(0.005))  # a 10 ms round trip

Over TCP, :class:`qitcore.qkd.proxy.DelayProxy` delays the bytes themselves.
"""

from __future__ import annotations

import random
import time

from .. import _validate
from ..errors import InvalidArgumentError
from .channel import AuthKey, Endpoint, InProcessChannel, Tamper

__all__ = ["MAX_DELAY", "Delay", "DelayedChannel", "check_delay", "delayed"]

MAX_DELAY = 10.0
"""The longest one-way delay and the widest jitter accepted (seconds): a geostationary hop is
about 0.27 s; anything near 10 s is a unit mistake (milliseconds given as seconds)."""


def check_delay(
    one_way: object, jitter: object, *, names: tuple[str, str] = ("one_way", "jitter"), unit: str = "s"
) -> tuple[float, float]:
    """``(one_way, jitter)`` as floats in seconds, each finite and within 0 to :data:`MAX_DELAY`
    seconds; given in ``unit`` (``"s"`` or ``"ms"``), which the messages use too.

    Raises:
        InvalidTypeError: not a real number.
        InvalidArgumentError: negative, not finite or above :data:`MAX_DELAY` (the message names it).
    """
    scale = {"s": 1.0, "ms": 1e3}[unit]
    checked = []
    for name, value in zip(names, (one_way, jitter), strict=True):
        number = _validate.real(name, value)
        if not 0.0 <= number <= MAX_DELAY * scale:
            raise InvalidArgumentError(f"{name}: expected 0 to {MAX_DELAY * scale:g} {unit}, got {number:g} {unit}")
        checked.append(number / scale)
    return checked[0], checked[1]


class Delay:
    """The delay of one link: each message is held ``one_way`` seconds plus a jitter drawn
    uniformly from ``[0, jitter]``, independently per message.

    Jitter only adds: a link's one-way delay is its propagation time, the least any message can
    take, and queues make some messages later still. A round trip therefore costs at least
    ``2 * one_way``.

    Args:
        one_way: seconds, 0 to :data:`MAX_DELAY`.
        jitter: seconds, 0 to :data:`MAX_DELAY`.
        seed: seeds the jitter (an int), for repeatable runs; default: from the OS. The jitter is
            timing noise, not a secret.

    Raises:
        InvalidArgumentError, InvalidTypeError: see :func:`check_delay`; a seed that is not an int.
    """

    def __init__(self, one_way: float, jitter: float = 0.0, *, seed: int | None = None) -> None:
        self.one_way, self.jitter = check_delay(one_way, jitter)
        if seed is not None:
            seed = _validate.integer("seed", seed, minimum=0)
        self._rng = random.Random(seed)
        self.messages = 0
        """Messages delayed so far (both directions)."""
        self.seconds = 0.0
        """Seconds of delay imposed so far (the sum of the draws, not of the time slept)."""

    def __repr__(self) -> str:
        return f"Delay(one_way={self.one_way:g}, jitter={self.jitter:g}, messages={self.messages})"

    def draw(self) -> float:
        """The next message's delay in seconds."""
        extra = self._rng.uniform(0.0, self.jitter) if self.jitter else 0.0
        return self.one_way + extra

    def hold(self) -> None:
        """Waits one message's delay. A plain sleep: in the main thread a Ctrl-C interrupts it."""
        seconds = self.draw()
        self.messages += 1
        self.seconds += seconds
        if seconds > 0:
            time.sleep(seconds)


class DelayedChannel(InProcessChannel):
    """An :class:`~qitcore.qkd.channel.InProcessChannel` whose every frame, request and reply,
    waits ``delay``'s one-way delay before it is delivered. ``tamper`` acts as the in-process
    channel's does, on the frame as it leaves its sender."""

    def __init__(self, auth_key: AuthKey, endpoint: Endpoint, *, delay: Delay, tamper: Tamper | None = None) -> None:
        super().__init__(auth_key, endpoint, tamper=tamper)
        self.delay = delay

    def __repr__(self) -> str:
        return f"DelayedChannel({self.delay!r})"

    def _exchange(self, frame: bytes) -> bytes:
        if self._tamper is not None:
            frame = self._pass("to_alice", frame)
        self.delay.hold()
        reply = self._endpoint.handle_frame(frame)
        if self._tamper is not None:
            reply = self._pass("to_bob", reply)
        self.delay.hold()
        return reply


class _Factory:
    """What :func:`delayed` returns: a channel factory that remembers its :class:`Delay`."""

    def __init__(self, delay: Delay, tamper: Tamper | None) -> None:
        self.delay = delay
        self._tamper = tamper

    def __repr__(self) -> str:
        return f"delayed({self.delay.one_way:g}, jitter_s={self.delay.jitter:g})"

    def __call__(self, auth_key: bytes, endpoint: Endpoint) -> DelayedChannel:
        return DelayedChannel(auth_key, endpoint, delay=self.delay, tamper=self._tamper)


def delayed(
    one_way_s: float, jitter_s: float = 0.0, *, seed: int | None = None, tamper: Tamper | None = None
) -> _Factory:
    """A channel factory for :func:`qitcore.qkd.distill` that delays every message by
    ``one_way_s`` seconds plus a jitter uniform in ``[0, jitter_s]``, in both directions: a round
    trip costs at least ``2 * one_way_s``.

    The factory's ``delay`` attribute (a :class:`Delay`) counts the messages delayed and the delay
    imposed, over every channel the factory made.

    Args:
        one_way_s: the one-way delay in seconds, 0 to :data:`MAX_DELAY`.
        jitter_s: the widest extra delay per message in seconds, 0 to :data:`MAX_DELAY`.
        seed: seeds the jitter, for repeatable runs (default: from the OS).
        tamper: as :class:`~qitcore.qkd.channel.InProcessChannel`'s, to inject faults as well.

    Raises:
        InvalidArgumentError: a delay or jitter that is negative, not finite or above
            :data:`MAX_DELAY`; a negative seed.
        InvalidTypeError: a delay that is not a real number; a seed that is not an int.
    """
    if tamper is not None and not callable(tamper):
        raise _validate.InvalidTypeError(f"tamper: expected a callable, got {type(tamper).__name__}")
    one_way_s, jitter_s = check_delay(one_way_s, jitter_s, names=("one_way_s", "jitter_s"))
    return _Factory(Delay(one_way_s, jitter_s, seed=seed), tamper)
