"""The daemon's pool: the devices it owns and the extracted bytes they have ready.

Each device runs in a thread of its own: it opens the device (:func:`qitcore.open`: frames →
health tests → extraction, in the Rust core), reads extracted bytes in chunks and appends them
to that device's buffer, waiting while the buffer is full (backpressure: the stream's own queue
then fills and stops reading the device). Readers take bytes out of the buffers under one lock,
so each byte leaves the pool once, to one reader; that is what makes "no byte is served twice"
hold across every client and front end.

A request is served from the device with the most bytes ready; only when no single device has
enough does one request take from several. Every byte comes from a block that its own device's
extractor made from health-tested samples, and blocks are never reused, so how the bytes of
different devices are distributed between requests does not change what each block guarantees
(docs/service.md).

Failures, as each device's thread sees them:

- a health test fires (:class:`~qitcore.errors.HealthTestFailure`): the device's unserved bytes
  are dropped at once, its state becomes ``failed`` and the failure is counted by test; it is
  reopened (with fresh start-up tests) after a backoff;
- it goes away or cannot be opened (:class:`~qitcore.errors.DeviceError`): state ``backoff``
  (``disconnected`` when it is not there at all), reopened after a backoff that doubles from
  ``backoff[0]`` up to ``backoff[1]`` seconds, and starts again from ``backoff[0]`` once the
  device has stayed healthy that long. Bytes already buffered stay: they passed the tests.

A source that replays its raw input (a ``file://`` on a regular file, a simulator with a fixed
``seed=``: :func:`~qitcore.service.config.replay_key`) is opened once in the pool's life: when it
ends or fails it is ``failed`` for good, even across :meth:`Pool.reconfigure`, since opening it
again would extract the same samples again (with a fresh extractor seed the output differs, but
the entropy spent is the same). Two devices naming one such source are refused.

As a second guard, the pool remembers a digest of the first bytes of every opening and refuses
an opening whose output starts as an earlier one did (state ``failed``, not reopened until
:meth:`Pool.reconfigure`): no content is served twice even from a deterministic source that the
first rule does not recognise.

A device whose health test fires stops contributing at once: its buffered bytes are dropped, and
so are bytes a waiting :meth:`Pool.read` had already taken from it (each device counts its
health failures; a read serves only bytes taken since the device's latest failure).
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from .._validate import integer
from ..errors import (
    DeviceDisconnected,
    DeviceError,
    DeviceNotFound,
    DeviceTimeout,
    HealthTestFailure,
    InvalidArgumentError,
    InvalidTypeError,
    QitError,
    ServiceUnavailable,
)
from ..stream import QrngStream
from .config import (
    DEFAULT_BACKOFF,
    DEFAULT_BUFFER_BYTES,
    MAX_BUFFER_BYTES,
    DeviceSettings,
    check_backoff,
    check_devices,
    check_flag,
    replay_key,
)
from .stats import ServiceStats

__all__ = ["MAX_REQUEST", "STATES", "Pool"]

MAX_REQUEST = 1 << 20
"""The largest single request, in bytes."""
STATES = ("starting", "healthy", "failed", "disconnected", "backoff", "stopped")
"""A device's states, as :meth:`Pool.status` reports them."""
CHUNK = 1 << 16
"""Bytes a device thread moves from its stream to its buffer at most at once."""
# Longest a wait goes without looking at Ctrl-C, close() or a device being stopped (seconds).
_SLICE = 0.05
# Longest a device thread's read waits before it looks whether it should stop (seconds).
_READ_SLICE = 0.25
# How long close() waits for the device threads, all together (an opening device may take its
# timeout); well inside the unit's TimeoutStopSec.
_JOIN = 5.0
# Bytes of each opening's output whose digest is compared with the earlier openings'.
_HEAD = 32
# Digests remembered (about 100 bytes each): a device reopened every 0.5 s for a day stays below.
_HEADS = 1 << 18

log = logging.getLogger("qitcore.service.pool")


class _Device:
    """One device's thread, buffer and counters. Everything but ``settings``, ``thread`` and
    ``stop`` is guarded by the pool's lock."""

    def __init__(self, settings: DeviceSettings, capacity: int) -> None:
        self.settings = settings
        self.name = settings.public_url
        self.capacity = capacity
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.done = False  # its thread has ended (set by the thread, under the lock)
        self.again = False  # reconfigure() asked a failed device whose thread is ending to go on
        self.generation = 0  # health failures so far: bytes taken before one are not served
        self.replay: str | None = replay_key(settings)
        self.stream: QrngStream | None = None
        self.chunks: deque[bytes] = deque()
        self.head = 0  # bytes of chunks[0] already taken
        self.buffered = 0
        self.state = "starting"
        self.bytes_served = 0
        self.health_failures: dict[str, int] = {}
        self.reopens = 0
        self.last_error: str | None = None
        self.min_entropy: float | None = None
        self.healthy_since: float | None = None  # monotonic time the open stream began serving

    def put_back(self, piece: bytes) -> None:
        """Returns ``piece``, the last bytes taken from the front and served to nobody, to the
        front of the buffer (a read that failed): they are served next, still once."""
        if self.head:
            self.chunks[0] = self.chunks[0][self.head :]
            self.head = 0
        self.chunks.appendleft(piece)
        self.buffered += len(piece)

    def take(self, n: int) -> bytes:
        """The next ``n`` buffered bytes (``n <= buffered``), removed from the buffer."""
        self.buffered -= n
        first = self.chunks[0]
        end = self.head + n
        if self.head == 0 and n == len(first):
            # A request the size of a whole chunk (a bulk reader): the chunk itself, no copy.
            self.chunks.popleft()
            return first
        if end < len(first):
            # The common case, a short request: one slice, whatever the buffer holds.
            out = first[self.head : end]
            self.head = end
            return out
        pieces = []
        while n:
            first = self.chunks[0]
            k = min(n, len(first) - self.head)
            pieces.append(first[self.head : self.head + k])
            n -= k
            self.head += k
            if self.head == len(first):
                self.chunks.popleft()
                self.head = 0
        return b"".join(pieces)

    def drop(self) -> int:
        """Empties the buffer; returns the bytes dropped."""
        dropped = self.buffered
        self.chunks.clear()
        self.head = 0
        self.buffered = 0
        return dropped

    def status(self) -> dict[str, Any]:
        return {
            "url": self.name,
            "state": self.state,
            "buffered": self.buffered,
            "bytes_served": self.bytes_served,
            "health_failures": dict(self.health_failures),
            "reopens": self.reopens,
            "last_error": self.last_error,
            "min_entropy": self.min_entropy,
            "epsilon": self.settings.epsilon,
        }


class Pool:
    """The devices of a service and the extracted bytes they have ready.

    Args:
        devices: the devices to own (at least one; each URL once).
        buffer_bytes: bytes held ready in all, shared out equally between the devices (at least
            one chunk, 64 KiB, each).
        stats: where bytes dropped unserved are counted.
        backoff: ``(first, longest)`` wait in seconds before reopening a device that failed.
        reopen_after_health_failure: whether a device whose health test fired is reopened (after
            the backoff, with fresh start-up tests); ``False`` leaves it ``failed`` until
            :meth:`reconfigure` (SIGHUP) names it again, which SP 800-90B leaves to the design.

    Raises:
        InvalidArgumentError, InvalidTypeError: a bad argument, named.
    """

    def __init__(
        self,
        devices: Sequence[DeviceSettings],
        *,
        buffer_bytes: int = DEFAULT_BUFFER_BYTES,
        stats: ServiceStats | None = None,
        backoff: tuple[float, float] = DEFAULT_BACKOFF,
        reopen_after_health_failure: bool = True,
    ) -> None:
        devices = check_devices(devices)
        self._capacity = integer("buffer_bytes", buffer_bytes, minimum=CHUNK, maximum=MAX_BUFFER_BYTES)
        if stats is not None and not isinstance(stats, ServiceStats):
            raise InvalidTypeError(f"stats: expected a ServiceStats, got {type(stats).__name__}")
        self._stats = stats
        self._backoff = check_backoff(backoff)
        self._reopen_failed = check_flag("reopen_after_health_failure", reopen_after_health_failure)
        self._lock = threading.Lock()
        self._data = threading.Condition(self._lock)  # bytes arrived, or the pool closed
        self._room = threading.Condition(self._lock)  # bytes were taken, or a device was stopped
        self._devices: list[_Device] = []
        self._started = False
        self._closed = False
        self._serial = 0  # names device threads
        self._heads: dict[bytes, str] = {}  # digest of an opening's first bytes -> its device
        self._replayed: dict[str, str] = {}  # replay key of a source opened once -> its device
        self._cancels = 0  # cancel_reads() calls: a read waiting across one is refused
        self._stopping = False  # cancel_reads(stopping=True): reads no longer wait
        for settings in devices:
            self._devices.append(_Device(settings, self._share(len(devices))))

    # -- life --------------------------------------------------------------------------------

    def start(self) -> None:
        """Starts each device's thread (opening it there); returns at once.

        Raises:
            ServiceUnavailable: the pool was closed.
        """
        with self._lock:
            if self._closed:
                raise ServiceUnavailable("pool: closed")
            if self._started:
                return
            self._started = True
            for dev in self._devices:
                self._launch(dev)

    def close(self) -> None:
        """Stops every device and drops what is buffered; readers waiting get
        :class:`~qitcore.errors.ServiceUnavailable`. Safe to call more than once."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            devices = list(self._devices)
            streams = [self._stop(dev) for dev in devices]
            self._data.notify_all()
            self._room.notify_all()
        _close_all(streams)
        self._join(devices)

    def cancel_reads(self, *, stopping: bool = False) -> None:
        """Refuses every :meth:`read` waiting now, at once (:class:`~qitcore.errors.ServiceUnavailable`,
        its bytes dropped): what a stop or a front end's restart calls first, so that no front end
        waits for requests blocked on a pool that has nothing. Reads that start afterwards wait
        as usual, unless ``stopping``: then a read that cannot be answered from the bytes ready
        is refused at once, until :meth:`close`."""
        with self._lock:
            self._cancels += 1
            self._stopping = self._stopping or bool(stopping)
            self._data.notify_all()

    def reconfigure(
        self,
        devices: Sequence[DeviceSettings],
        *,
        backoff: tuple[float, float] | None = None,
        reopen_after_health_failure: bool | None = None,
    ) -> None:
        """Makes the pool own ``devices``: a device whose URL and options are unchanged keeps
        running (and its buffer), and one left ``failed`` for good is opened again; one no
        longer listed, or listed with other options, is stopped (its buffer dropped) and the new
        settings opened. ``backoff`` and ``reopen_after_health_failure``, when given, replace the
        pool's.

        Raises:
            InvalidArgumentError: as the constructor; ServiceUnavailable: the pool was closed.
        """
        devices = check_devices(devices)
        new_backoff = self._backoff if backoff is None else check_backoff(backoff)
        reopen = (
            self._reopen_failed
            if reopen_after_health_failure is None
            else check_flag("reopen_after_health_failure", reopen_after_health_failure)
        )
        with self._lock:
            if self._closed:
                raise ServiceUnavailable("pool: closed")
            self._backoff, self._reopen_failed = new_backoff, reopen
            kept = {dev.settings.url: dev for dev in self._devices}
            stopped = []
            new: list[_Device] = []
            for settings in devices:
                dev = kept.pop(settings.url, None)
                if dev is not None and dev.settings == settings:
                    if dev.done and not dev.stop.is_set():
                        # Left failed for good (or refused as a replay): the operator asks again.
                        # (A source that replays its input stays failed: its thread sees that.)
                        log.info("%s: opening again", dev.name)
                        dev.thread = None
                        dev.done = False
                    elif dev.state == "failed":
                        # Its thread may be about to end (a final failure): it goes on instead.
                        dev.again = True
                    new.append(dev)
                    continue
                if dev is not None:
                    stopped.append(dev)
                log.info("%s: added to the pool", settings.public_url)
                new.append(_Device(settings, 0))
            stopped.extend(kept.values())
            streams = []
            dropped = 0
            for dev in stopped:
                dropped += dev.buffered  # never served: counted as discarded
                streams.append(self._stop(dev))
                log.info("%s: removed from the pool", dev.name)
            share = self._share(len(new))
            for dev in new:
                dev.capacity = share
                if self._started and dev.thread is None:
                    self._launch(dev)
            self._devices = new
            self._room.notify_all()
        if dropped and self._stats is not None:
            self._stats.discarded(dropped)
        _close_all(streams)
        self._join(stopped)

    # -- reading -----------------------------------------------------------------------------

    def read(self, n: int, timeout: float | None = None, *, deadline: float | None = None) -> bytes:
        """Exactly ``n`` bytes (0 to :data:`MAX_REQUEST`), each taken out of the pool: never
        served again. Waits until they are there, for at most ``timeout`` seconds (for ever when
        ``None``) and never past ``deadline`` (a :func:`time.monotonic` value: front ends pass
        the one fixed when the request arrived, so time spent queued counts), answering Ctrl-C;
        thread-safe. A read that fails serves nothing: the bytes it had taken go back to the front
        of their devices' buffers, served next and still once; bytes it took from a device whose
        health test fired before the read completed are dropped (counted as discarded), and it
        takes others in their place.

        Raises:
            ServiceUnavailable: ``n`` bytes did not arrive in time (the message says whether any
                device is healthy), the pool is closed, or :meth:`cancel_reads` was called.
            InvalidArgumentError: ``n``, ``timeout`` or ``deadline`` out of range.
        """
        n = self._check_n(n)
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or not (timeout >= 0)
        ):
            raise InvalidArgumentError(f"timeout: expected seconds (0 or more) or None, got {timeout!r}")
        if deadline is not None and (
            isinstance(deadline, bool) or not isinstance(deadline, int | float) or math.isnan(deadline)
        ):
            raise InvalidArgumentError(f"deadline: expected a time.monotonic() value or None, got {deadline!r}")
        now = time.monotonic()
        until = None if timeout is None or math.isinf(timeout) else now + timeout
        if deadline is not None and not math.isinf(deadline):
            until = deadline if until is None else min(until, deadline)
        allowed = None if until is None else max(0.0, until - now)  # for the message
        parts: list[bytes] = []
        taken: list[tuple[_Device, int, int]] = []  # device, bytes, its generation then
        got = 0
        discarded = 0
        done = False
        try:
            with self._lock:
                cancels = self._cancels
                while True:
                    if self._closed:
                        raise ServiceUnavailable("pool: the service is stopping")
                    if self._cancels != cancels:
                        raise ServiceUnavailable("pool: the service is stopping or restarting a front end")
                    got += self._take(n - got, parts, taken)
                    if any(dev.generation != gen for dev, _, gen in taken):
                        # A device failed its health test since: nothing more of it is served.
                        lost = self._unfailed(parts, taken)
                        got -= lost
                        discarded += lost
                        continue
                    if got == n:
                        for dev, k, _ in taken:
                            dev.bytes_served += k
                        done = True
                        break
                    if self._stopping:
                        raise ServiceUnavailable("pool: the service is stopping")
                    wait = _SLICE
                    if until is not None:
                        left = until - time.monotonic()
                        if left <= 0:
                            raise ServiceUnavailable(self._why(n, got, allowed))
                        wait = min(wait, left)
                    # Short slices: a signal handler (Ctrl-C) runs between them.
                    self._data.wait(wait)
        finally:
            if not done:
                discarded += self._put_back(parts, taken)
            if discarded and self._stats is not None:
                self._stats.discarded(discarded)
        return b"".join(parts) if len(parts) != 1 else parts[0]

    def try_read(self, n: int) -> bytes | None:
        """``n`` bytes if the pool holds them now, else ``None`` with nothing taken. Never waits
        (beyond the pool's lock, held for microseconds).

        Raises:
            ServiceUnavailable: the pool is closed. InvalidArgumentError: ``n`` out of range.
        """
        n = self._check_n(n)
        with self._lock:
            if self._closed:
                raise ServiceUnavailable("pool: the service is stopping")
            # One device with enough: the common case, a single slice.
            best = None
            for dev in self._devices:
                if dev.buffered >= n and (best is None or dev.buffered > best.buffered):
                    best = dev
            if best is not None:
                best.bytes_served += n
                out = best.take(n) if n else b""
                self._room.notify_all()
                return out
            if sum(dev.buffered for dev in self._devices) < n:
                return None
            parts: list[bytes] = []
            taken: list[tuple[_Device, int, int]] = []
            self._take(n, parts, taken)
            for dev, k, _ in taken:
                dev.bytes_served += k
            return b"".join(parts)

    # -- state -------------------------------------------------------------------------------

    @property
    def epsilon(self) -> float:
        """The largest ε (distance from uniform per extracted block) of any configured device:
        what a consumer of bytes from any of them may rely on."""
        with self._lock:
            return max(dev.settings.epsilon for dev in self._devices)

    @property
    def capacity(self) -> int:
        """Bytes held ready at most, all devices together."""
        return self._capacity

    def status(self) -> dict[str, Any]:
        """JSON-able: ``buffered`` and ``capacity`` (bytes) and, per device, ``url`` (secret query
        values hidden), ``state`` (one of :data:`STATES`), ``buffered``, ``bytes_served``,
        ``health_failures`` (by test class name), ``reopens``, ``last_error``, ``min_entropy``
        (bits per sample, once opened) and ``epsilon``."""
        with self._lock:
            return {
                "buffered": sum(dev.buffered for dev in self._devices),
                "capacity": self._capacity,
                "closed": self._closed,
                "devices": [dev.status() for dev in self._devices],
            }

    def __enter__(self) -> Pool:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        with self._lock:
            states = ", ".join(f"{dev.name}: {dev.state}" for dev in self._devices)
        return f"<Pool {states}>"

    # -- inside ------------------------------------------------------------------------------

    @staticmethod
    def _check_n(n: int) -> int:
        return integer("n", n, minimum=0, maximum=MAX_REQUEST)

    def _share(self, count: int) -> int:
        return max(CHUNK, self._capacity // max(count, 1))

    def _take(self, want: int, parts: list[bytes], taken: list[tuple[_Device, int, int]]) -> int:
        """Under the lock: up to ``want`` bytes, from the devices with the most ready first;
        ``parts`` and ``taken`` grow in step (each piece, and its device and generation)."""
        got = 0
        while got < want:
            best = None
            for dev in self._devices:
                if dev.buffered and (best is None or dev.buffered > best.buffered):
                    best = dev
            if best is None:
                break
            k = min(want - got, best.buffered)
            parts.append(best.take(k))
            taken.append((best, k, best.generation))
            got += k
        if got:
            self._room.notify_all()
        return got

    def _put_back(self, parts: list[bytes], taken: list[tuple[_Device, int, int]]) -> int:
        """After a read failed: its pieces go back to the front of their devices' buffers, last
        taken first, so that each device's bytes keep their order and none is lost to a client
        whose wait ran out (a slow reader would otherwise waste the output it held). A piece of
        a device that is no longer healthy (failed, ended) or left the pool is dropped, as
        before; returns the bytes dropped."""
        dropped = returned = 0
        with self._lock:
            for piece, (dev, k, gen) in zip(reversed(parts), reversed(taken), strict=True):
                if self._closed or dev.generation != gen or dev.state != "healthy" or dev not in self._devices:
                    dropped += k
                else:
                    dev.put_back(piece)
                    returned += k
            if returned:
                self._data.notify_all()
        return dropped

    @staticmethod
    def _unfailed(parts: list[bytes], taken: list[tuple[_Device, int, int]]) -> int:
        """Under the lock: removes the pieces taken from a device that has failed a health test
        since; returns their bytes."""
        lost = 0
        keep = [i for i, (dev, k, gen) in enumerate(taken) if dev.generation == gen]
        for dev, k, gen in taken:
            if dev.generation != gen:
                lost += k
        parts[:] = [parts[i] for i in keep]
        taken[:] = [taken[i] for i in keep]
        return lost

    def _why(self, n: int, got: int, timeout: float | None) -> str:
        healthy = [dev for dev in self._devices if dev.state == "healthy"]
        if not healthy:
            states = "; ".join(
                f"{dev.name}: {dev.state}" + (f" ({dev.last_error})" if dev.last_error else "") for dev in self._devices
            )
            return f"no healthy device for {timeout or 0:g} s ({states})"
        return f"only {got} of the {n} bytes asked for arrived within {timeout or 0:g} s"

    def _launch(self, dev: _Device) -> None:
        """Under the lock: starts ``dev``'s thread."""
        self._serial += 1
        dev.thread = threading.Thread(target=self._run, args=(dev,), name=f"qitcore-pool-{self._serial}", daemon=True)
        dev.thread.start()

    def _stop(self, dev: _Device) -> QrngStream | None:
        """Under the lock: asks ``dev``'s thread to stop, drops its bytes, and returns its open
        stream, for the caller to close once the lock is released (closing a device can take
        seconds: a serial device's closing commands, a network client's thread)."""
        dev.stop.set()
        dev.state = "stopped"
        dev.drop()
        self._room.notify_all()
        return dev.stream

    @staticmethod
    def _join(devices: Sequence[_Device]) -> None:
        # One deadline for all: several devices stuck opening do not add up their waits.
        deadline = time.monotonic() + _JOIN
        for dev in devices:
            if dev.thread is not None and dev.thread is not threading.current_thread():
                dev.thread.join(max(0.0, deadline - time.monotonic()))
                if dev.thread.is_alive():
                    # Still opening (a device that takes its whole open timeout): it stops itself
                    # as soon as the open returns.
                    log.warning("%s: its thread is still opening the device; it will stop when that ends", dev.name)

    def _run(self, dev: _Device) -> None:
        """A device's thread: open, pump, and reopen after failures until stopped."""
        from ..devices import open as open_device

        delay = self._backoff[0]
        while not dev.stop.is_set():
            with self._lock:
                if dev.stop.is_set():
                    break
                dev.state = "starting"
                dev.again = False
            final = False  # a failure after which the device is not reopened
            try:
                self._may_open(dev)
                stream = open_device(dev.settings.url, **dict(dev.settings.options))
            except _Replay as exc:
                self._failed(dev, exc, "failed")
                final = True
            except (InvalidArgumentError, InvalidTypeError) as exc:
                # The settings cannot work (an extractor seed of the wrong length for this
                # device, no min-entropy for one that claims none): retrying would not help.
                self._failed(dev, exc, "failed")
                final = True
            except QitError as exc:
                self._failed(dev, exc, "disconnected" if isinstance(exc, DeviceNotFound) else "backoff")
            except Exception as exc:  # a bug in a backend: logged, and the device retried
                log.exception("%s: opening failed unexpectedly", dev.name)
                self._failed(dev, exc, "backoff")
            else:
                with self._lock:
                    stopping = dev.stop.is_set()
                    if not stopping:
                        dev.stream = stream
                        dev.min_entropy = stream.min_entropy
                        dev.healthy_since = None
                        if dev.replay is not None:
                            self._replayed[dev.replay] = dev.name
                if stopping:
                    _close_quietly(stream)
                    break
                log.info("%s: opened, running its start-up tests", dev.name)
                try:
                    self._pump(dev, stream)
                except _Replay as exc:
                    self._failed(dev, exc, "failed")
                    final = True
                except HealthTestFailure as exc:
                    self._failed(dev, exc, "failed")
                    final = not self._reopen_failed
                except QitError as exc:
                    # The end of a file, or a fixed-seed simulator's fault: opening it again would
                    # replay the same input; a replaying source is served once.
                    self._failed(dev, exc, "failed" if dev.replay is not None else "backoff")
                except Exception as exc:
                    log.exception("%s: reading failed unexpectedly", dev.name)
                    self._failed(dev, exc, "backoff")
                finally:
                    with self._lock:
                        dev.stream = None
                    _close_quietly(stream)
                if dev.replay is not None:
                    final = True
            if dev.stop.is_set():
                break
            if final:
                with self._lock:
                    # A reload that named it again while it was failing: it goes on.
                    final, dev.again = not dev.again, False
                    dev.done = final
                if final:
                    if dev.replay is not None and dev.replay in self._replayed:
                        log.error("%s: not reopened: it replays its input, which was served once", dev.name)
                    else:
                        log.error("%s: not reopened; reload the configuration (SIGHUP) to open it again", dev.name)
                    return
            first, longest = self._backoff
            # A device that served for a while starts its backoff afresh.
            if dev.healthy_since is not None and time.monotonic() - dev.healthy_since >= longest:
                delay = first
            delay = min(max(delay, first), longest)
            log.info("%s: reopening in %.3g s", dev.name, delay)
            if dev.stop.wait(delay):
                break
            delay = min(delay * 2, longest)
            with self._lock:
                dev.reopens += 1
        with self._lock:
            dev.state = "stopped"
            dev.stream = None
            dev.done = True

    def _may_open(self, dev: _Device) -> None:
        """Raises :class:`_Replay` when ``dev`` replays its input and the pool opened that input
        before (under any device's name)."""
        if dev.replay is None:
            return
        with self._lock:
            earlier = self._replayed.get(dev.replay)
        if earlier is not None:
            raise _Replay(
                f"{dev.name}: it replays its input ({dev.replay}), which {earlier} served already; "
                "a replaying source is served once (restart the daemon to serve it again)"
            )

    def _pump(self, dev: _Device, stream: QrngStream) -> None:
        """Moves ``stream``'s output into ``dev``'s buffer until ``dev`` is stopped (returns) or
        the stream fails (raises)."""
        shape = stream.block_shape
        # Output arrives a block at a time: waiting for less than one would return nothing sooner.
        block = max(1, shape[1] // 8) if shape else 1
        head = b""  # the opening's first bytes, held until they are compared with earlier ones
        while not dev.stop.is_set():
            queued = stream.stats().counters.bytes_queued
            want = min(CHUNK, max(queued, block, _HEAD - len(head)))
            try:
                data = stream.read(want, _READ_SLICE)
            except DeviceTimeout as exc:
                if type(exc) is not DeviceTimeout:  # NoValidFrames: the stream failed
                    raise
                continue
            except QitError:
                if dev.stop.is_set():  # closed under it by close() or reconfigure()
                    return
                raise
            if not data:
                raise DeviceDisconnected(f"{dev.name}: the device's output ended")
            if dev.healthy_since is None:
                head += data
                if len(head) < _HEAD:
                    continue
                self._first_output(dev, head)
                data, head = head, b""
                log.info("%s: healthy (start-up tests passed), serving", dev.name)
            self._put(dev, data)

    def _first_output(self, dev: _Device, head: bytes) -> None:
        """Marks ``dev`` healthy once its opening's first bytes are known to differ from every
        earlier opening's (of any device); raises :class:`_Replay` otherwise."""
        digest = hashlib.blake2b(head[:_HEAD], digest_size=16).digest()
        with self._lock:
            earlier = self._heads.get(digest)
            if earlier is not None:
                raise _Replay(
                    f"{dev.name}: its output repeats what {earlier} gave at an earlier opening "
                    "(a deterministic source with a fixed extractor_seed?); nothing of it is served"
                )
            if len(self._heads) >= _HEADS:
                self._heads.pop(next(iter(self._heads)))
            self._heads[digest] = dev.name
            if dev.stop.is_set():
                return
            dev.healthy_since = time.monotonic()
            dev.state = "healthy"
            dev.last_error = None

    def _put(self, dev: _Device, data: bytes) -> None:
        """Appends ``data`` to ``dev``'s buffer, waiting while it is full."""
        with self._lock:
            while dev.buffered and dev.buffered + len(data) > dev.capacity and not dev.stop.is_set():
                self._room.wait(_READ_SLICE)
            if dev.stop.is_set():
                return
            dev.chunks.append(data)
            dev.buffered += len(data)
            self._data.notify_all()

    def _failed(self, dev: _Device, exc: BaseException, state: str) -> None:
        text = str(exc) or type(exc).__name__
        with self._lock:
            if dev.stop.is_set():
                return
            dev.state = state
            dev.last_error = f"{type(exc).__name__}: {text}"
            dropped = 0
            if isinstance(exc, HealthTestFailure):
                name = type(exc).__name__
                dev.health_failures[name] = dev.health_failures.get(name, 0) + 1
                # Nothing more of this device is served from the moment its failure is known:
                # neither its buffered bytes nor those a waiting read has taken (the generation).
                dev.generation += 1
                dropped = dev.drop()
        if dropped and self._stats is not None:
            self._stats.discarded(dropped)
        if isinstance(exc, HealthTestFailure):
            log.error(
                "%s: %s failed; the device stopped contributing (%d buffered bytes dropped)",
                dev.name,
                exc.test,
                dropped,
            )
        elif isinstance(exc, DeviceDisconnected | DeviceNotFound):
            log.warning("%s: disconnected: %s", dev.name, text)
        elif isinstance(exc, DeviceError):
            log.warning("%s: device error: %s", dev.name, text)
        else:
            log.error("%s: %s: %s", dev.name, type(exc).__name__, text)


class _Replay(DeviceError):
    """An opening's output starts as an earlier opening's did."""


def _close_all(streams: Sequence[QrngStream | None]) -> None:
    """Closes ``streams`` (outside the pool's lock); closing wakes their threads' reads, and the
    threads close them again, harmlessly."""
    for stream in streams:
        if stream is not None:
            _close_quietly(stream)


def _close_quietly(stream: QrngStream) -> None:
    try:
        stream.close()
    except Exception:  # closing a broken device: nothing more to do with it
        log.debug("closing %s failed", stream.description, exc_info=True)
