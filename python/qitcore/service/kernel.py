"""Feeding the Linux kernel's entropy pool (what rngd does for hardware RNGs): health-tested,
extracted bytes from the service's pool go into ``/dev/random`` with the ``RNDADDENTROPY`` ioctl,
credited with no more entropy than the extractor guarantees.

The credit of one write of ``n`` bytes (``L = 8n`` bits) is

    min(L, floor(-log2((L + N)·ε + 2^-L)), floor(cap · n))

with ε the largest distance from uniform of the extracted blocks of the devices configured at
the time of the write, ``L`` the most extracted blocks ``n`` bytes can span (each block yields at
least one bit) and ``N`` the bits the service has served (or dropped) since it started, a bound
on the blocks anyone else may hold: the service's whole output is ``(L + N)·ε``-close to uniform
(the hybrid argument, a composable distance), and a string δ-close to uniform over ``L`` bits,
even given everything else served, takes no value with probability above ``2^-L + δ``, so its
min-entropy is at least ``-log2(δ + 2^-L)``. ``cap`` (bits per byte) is a further, configured
bound. docs/service-network.md has the derivation and the figures.

Only sources whose output is entropy the kernel does not already count are credited: a pool
holding the simulator, a recording, another service's output passed through, or the kernel's own
hardware RNG gets no credit (:data:`CREDIT`, one verdict per URL scheme); ``credit_cap = 0``
feeds such a pool without credit.

The kernel asks for entropy as rngd expects: ``/dev/random`` polls writable (``POLLOUT``) while
it wants more (below ``write_wakeup_threshold`` on kernels before 5.18, until the CRNG is
initialised on later ones). Writes also go in every :attr:`KernelSettings.interval` seconds, so
the pool keeps taking fresh input on kernels that never ask.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import math
import os
import select
import struct
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from .._validate import integer
from ..devices import _registry
from ..devices.hwrng import SYSFS, kernel_rng
from ..errors import DeviceError, DeviceNotFound, InvalidArgumentError, InvalidTypeError, QitError

if TYPE_CHECKING:
    from .pool import Pool
    from .stats import ServiceStats

__all__ = ["CREDIT", "RNDADDENTROPY", "KernelFeeder", "KernelSettings", "credit_bits", "credit_refusal"]

log = logging.getLogger("qitcore.service.kernel")

RNDADDENTROPY = 0x40085203
"""``_IOW('R', 0x03, int[2])``: add bytes to the input pool and credit entropy (CAP_SYS_ADMIN)."""
_HEADER = struct.Struct("=ii")  # struct rand_pool_info: int entropy_count (bits); int buf_size (bytes)
BURST_WRITES = 64
"""Writes at most in one answer to the kernel's request, before a pause of :data:`PAUSE` s: a
kernel that keeps asking never drains the pool faster than about ``BURST_WRITES·chunk/PAUSE``
bytes a second."""
PAUSE = 0.1
READ_WAIT = 1.0
"""Seconds one read from the pool waits for a healthy device before the feeder looks again."""


_SIMULATOR = "is a simulator; its output is not entropy"
_PASS_THROUGH = "passes another service's output through; its ε is not this service's to vouch for"
_PLAIN_NETWORK = (
    "carries raw samples over an unauthenticated network connection; whoever is on the path may choose them"
)
_HWRNG = "hwrng"
CREDIT: dict[str, str | None] = {
    # Physical sources read by this process: credited.
    "truerng": None, "truerngpro": None, "onerng": None, "cdc": None, "serial": None, "usb": None,
    "chaoskey": None,
    # Not entropy, or not this service's entropy: never credited.
    "sim": _SIMULATOR,
    "sim+pty": _SIMULATOR,
    "loop": "is a loopback for tests; its output is not entropy",
    "file": "is a recording; whoever can read the file knows its output, and it can be replayed",
    "qitcored": _PASS_THROUGH,
    "https": _PASS_THROUGH,
    "socket": _PLAIN_NETWORK,
    "rfc2217": _PLAIN_NETWORK,
    # The kernel's own hardware RNG: credited only when the kernel does not credit it itself.
    "hwrng": _HWRNG,
}  # fmt: skip
"""Whether a device's output may be credited to the kernel, by URL scheme: None when it may, else
why not. A scheme not listed (a backend this table does not know) is not credited."""


def credit_refusal(url: str) -> str | None:
    """Why the output of the device at ``url`` must not be credited to the kernel's pool (the
    whole message, naming the device), or None when it may be (see :data:`CREDIT`)."""
    if not isinstance(url, str):
        raise InvalidTypeError(f"url: expected a device URL, got {type(url).__name__}")
    try:
        parsed = _registry.Url.parse(url)
    except QitError as exc:
        return f"kernel feed: {url[:200]} is not a device URL ({exc})"
    scheme = parsed.scheme
    where = url[:200]
    if scheme not in CREDIT:
        return f"kernel feed: {where} is a source this version does not know to be physical ({scheme}://)"
    verdict = CREDIT[scheme]
    if verdict is _HWRNG:
        return _hwrng_refusal(where, parsed.get("sysfs", str, SYSFS))
    return None if verdict is None else f"kernel feed: {where} {verdict}"


def _hwrng_refusal(where: str, sysfs: str) -> str | None:
    # The kernel's khwrng thread feeds and credits its pool from the current hardware RNG whenever
    # that RNG's quality is above 0: crediting the same bytes again would count them twice.
    info = kernel_rng(sysfs)
    current, quality = info.get("rng_current"), info.get("rng_quality")
    if current in ("none", ""):
        return None  # no current RNG: opening it fails anyway, and the kernel credits nothing
    if quality == "0":
        return None
    said = f"rng_quality {quality}" if quality is not None else "no rng_quality to say it does not"
    return f"kernel feed: {where} is the kernel's own hardware RNG, which the kernel already credits ({said})"


def credit_bits(nbytes: int, epsilon: float, cap: float, *, served_bits: int = 0) -> int:
    """Bits of entropy to credit for ``nbytes`` extracted bytes whose blocks are each
    ``epsilon``-close to uniform, at most ``cap`` bits per byte, when ``served_bits`` bits of the
    same service's output (a bound on its blocks) may be held by others (see the module's notes).

    Raises:
        InvalidArgumentError: ``nbytes`` below 1, ``epsilon`` outside (0, 1), ``cap`` outside
            [0, 8], ``served_bits`` below 0.
    """
    if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < 1:
        raise InvalidArgumentError(f"nbytes: expected a whole number of bytes above 0, got {nbytes!r}")
    if not (isinstance(epsilon, int | float) and 0 < epsilon < 1):
        raise InvalidArgumentError(f"epsilon: expected a distance in (0, 1), got {epsilon!r}")
    if not (isinstance(cap, int | float) and 0 <= cap <= 8):
        raise InvalidArgumentError(f"cap: expected bits per byte from 0 to 8, got {cap!r}")
    others = integer("served_bits", served_bits, minimum=0, maximum=1 << 126)
    bits = 8 * nbytes
    # Exactly, in rationals: floats would lose the 2^-L term and could round the bound up.
    distance = (bits + others) * Fraction(epsilon) + Fraction(1, 1 << bits)
    guaranteed = _floor_log2_inverse(distance)
    return max(0, min(bits, guaranteed, math.floor(cap * nbytes)))


def _floor_log2_inverse(x: Fraction) -> int:
    """floor(-log2(x)) for 0 < x, exactly (0 or less when x >= 1)."""
    p, q = x.numerator, x.denominator
    c = q.bit_length() - p.bit_length()  # within one of the answer
    if c >= 0:
        return c if p << c <= q else c - 1
    return c if p <= q << -c else c - 1


@dataclass(frozen=True)
class KernelSettings:
    """The kernel feed.

    Attributes:
        credit_cap: bits of entropy credited per byte written, at most (0 to 8; the extractor's
            guarantee is usually lower, see :func:`credit_bits`). 0 feeds without credit, which
            any device may (a simulator, a pass-through: see :data:`CREDIT`).
        chunk: bytes per write (16 to 4096).
        interval: seconds between writes when the kernel does not ask (a fresh contribution now
            and then), 0.1 to 86400.
        device: the character device the ioctl goes to.
    """

    credit_cap: float = 1.0
    chunk: int = 64
    interval: float = 60.0
    device: str = "/dev/random"

    def __post_init__(self) -> None:
        if isinstance(self.credit_cap, bool) or not isinstance(self.credit_cap, int | float):
            raise InvalidTypeError(f"kernel credit_cap: expected bits per byte, got {self.credit_cap!r}")
        if not 0 <= self.credit_cap <= 8:
            raise InvalidArgumentError(f"kernel credit_cap: expected 0 to 8 bits per byte, got {self.credit_cap}")
        if isinstance(self.chunk, bool) or not isinstance(self.chunk, int) or not 16 <= self.chunk <= 4096:
            raise InvalidArgumentError(f"kernel chunk: expected 16 to 4096 bytes, got {self.chunk!r}")
        if isinstance(self.interval, bool) or not isinstance(self.interval, int | float):
            raise InvalidTypeError(f"kernel interval: expected seconds, got {self.interval!r}")
        if not 0.1 <= self.interval <= 86_400:
            raise InvalidArgumentError(f"kernel interval: expected 0.1 to 86400 seconds, got {self.interval}")
        if not isinstance(self.device, str) or not self.device or "\0" in self.device:
            raise InvalidArgumentError(f"kernel device: expected a path, got {self.device!r}")


class KernelFeeder:
    """Feeds the kernel's pool from ``pool`` in a thread of its own (see the module's notes).
    :meth:`check` first: the ioctl needs CAP_SYS_ADMIN."""

    def __init__(self, pool: Pool, stats: ServiceStats, settings: KernelSettings) -> None:
        if not isinstance(settings, KernelSettings):
            raise InvalidTypeError(f"settings: expected KernelSettings, got {type(settings).__name__}")
        self.pool, self.stats, self.settings = pool, stats, settings
        self._fd: int | None = None
        self._wake_r, self._wake_w = -1, -1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._refused: str | None = None  # why the last write got no credit (logged when it changes)

    def check(self) -> None:
        """Checks that the pool's devices may be credited (unless ``credit_cap`` is 0), then opens
        the device and makes a write that credits nothing, as the feed's writes will be made: a
        refusal is found before anything is served.

        Raises:
            InvalidArgumentError: ``credit_cap`` is above 0 while a device of the pool is one
                whose output must not be credited (:func:`credit_refusal` names it).
            DeviceError: the ioctl is refused (no CAP_SYS_ADMIN: run as root, or give the service
                that capability), or the device cannot be opened; DeviceNotFound when it does not exist.
        """
        if self.settings.credit_cap > 0:
            refusal = self._refusal()
            if refusal is not None:
                raise InvalidArgumentError(f"{refusal}; to feed it without credit, set [kernel] credit_cap = 0")
        fd = self._open()
        try:
            self._ioctl(fd, b"", 0)
        except BaseException:
            os.close(fd)
            raise
        with self._lock:
            if self._fd is None:
                self._fd = fd
                return
        os.close(fd)

    def start(self) -> None:
        """Starts feeding in a thread of its own; checks first (as :meth:`check`) unless
        :meth:`check` has been called."""
        with self._lock:
            checked = self._fd is not None
        if not checked:
            self.check()
        with self._lock:
            if self._thread is not None:
                raise InvalidArgumentError("kernel feed: already started")
            self._wake_r, self._wake_w = os.pipe()
            self._thread = threading.Thread(target=self._run, name="qitcore-kernel-feed", daemon=True)
            self._thread.start()
        log.info(
            "feeding the kernel's pool through %s: %d-byte writes credited %d bits each now (ε = %.3g, cap %g bit/B)",
            self.settings.device, self.settings.chunk, self._credit(self.settings.chunk), self.pool.epsilon,
            self.settings.credit_cap,
        )  # fmt: skip

    def stop(self) -> None:
        """Stops feeding and closes the device; returns once the thread has ended (a write under
        way waits at most about a second for the pool). Safe to call twice."""
        self._stop.set()
        with self._lock:
            thread, wake = self._thread, self._wake_w
        if wake >= 0:
            with contextlib.suppress(OSError):
                os.write(wake, b"x")
        if thread is not None:
            thread.join()
        with self._lock:
            for fd in (self._fd, self._wake_r, self._wake_w):
                if fd is not None and fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self._fd, self._wake_r, self._wake_w = None, -1, -1

    def feed_once(self, timeout: float | None = READ_WAIT) -> int:
        """Takes one chunk out of the pool and writes it into the kernel's pool; returns the bits
        credited. Counted in the stats: a request of client class ``kernel`` (refused as
        ``unavailable`` or ``refused``), the bytes served and the bits credited. Call
        :meth:`check` (or :meth:`start`) first.

        Raises:
            ServiceUnavailable: no healthy device for ``timeout`` seconds.
            DeviceError: the write was refused.
        """
        fd = self._fd
        if fd is None:
            raise DeviceError("kernel feed: call check() or start() before feeding")
        n = self.settings.chunk
        # The devices before and after the read: the bytes came from devices configured at some
        # moment in between, so both must allow a credit (a SIGHUP may change them meanwhile).
        before = self._credit(n)
        try:
            data = self.pool.read(n, timeout)
        except QitError:
            self.stats.request("kernel", False, "unavailable")
            raise
        bits = min(before, self._credit(n))
        try:
            self._ioctl(fd, data, bits)
        except DeviceError:
            # The bytes left the pool and went nowhere: discarded, never served to anyone else.
            self.stats.request("kernel", False, "refused")
            self.stats.discarded(n)
            raise
        self.stats.request("kernel", True)
        self.stats.served("kernel", n)
        self.stats.credited(bits, n)
        return bits

    def _refusal(self, devices: list[dict[str, Any]] | None = None) -> str | None:
        """Why the pool's devices (now, unless given) must not be credited, or None."""
        for device in self.pool.status()["devices"] if devices is None else devices:
            refusal = credit_refusal(str(device["url"]))
            if refusal is not None:
                return refusal
        return None

    def _credit(self, nbytes: int) -> int:
        """The credit of a write of ``nbytes`` now: from the devices configured now, with the
        output served so far as what others may hold; 0 while a device must not be credited."""
        if self.settings.credit_cap == 0:
            return 0
        devices = self.pool.status()["devices"]
        refusal = self._refusal(devices)
        if refusal != self._refused:
            if refusal is not None:
                log.warning("kernel feed: writing without credit from now on: %s", refusal)
            else:
                log.info("kernel feed: the pool's devices may be credited again")
            self._refused = refusal
        if refusal is not None or not devices:
            return 0
        epsilon = max(float(device["epsilon"]) for device in devices)
        snap = self.stats.snapshot()
        served_bits = 8 * (sum(snap["served"].values()) + snap["discarded"])
        return credit_bits(nbytes, epsilon, self.settings.credit_cap, served_bits=served_bits)

    def _open(self) -> int:
        path = self.settings.device
        try:
            return os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise DeviceNotFound(f"kernel feed: {path} does not exist") from None
        except OSError as exc:
            raise DeviceError(f"kernel feed: cannot open {path}: {exc.strerror}") from None

    def _ioctl(self, fd: int, data: bytes, bits: int) -> None:
        try:
            # A mutable buffer goes to the kernel as it is; an immutable one is copied into 1 KiB.
            fcntl.ioctl(fd, RNDADDENTROPY, bytearray(_HEADER.pack(bits, len(data)) + data), True)
        except OSError as exc:
            if exc.errno == errno.EPERM:
                raise DeviceError(
                    f"kernel feed: the kernel refused RNDADDENTROPY on {self.settings.device}: it needs "
                    "CAP_SYS_ADMIN (run qitcore serve --feed-kernel as root, or grant the service "
                    "AmbientCapabilities=CAP_SYS_ADMIN)"
                ) from None
            raise DeviceError(f"kernel feed: RNDADDENTROPY on {self.settings.device} failed: {exc.strerror}") from None

    def _run(self) -> None:
        fd, wake = self._fd, self._wake_r
        assert fd is not None
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        poller.register(wake, select.POLLIN)
        next_feed = time.monotonic()  # one contribution at once, then every interval
        unavailable = False
        while not self._stop.is_set():
            events = dict(poller.poll(max(0.0, next_feed - time.monotonic()) * 1000))
            if self._stop.is_set() or wake in events:
                return
            asked = bool(events.get(fd, 0) & select.POLLOUT)
            if not asked and time.monotonic() < next_feed:
                continue
            try:
                written = 0
                self.feed_once()
                written += 1
                # The kernel asks for more: go on while it does, a burst at most.
                while asked and written < BURST_WRITES and not self._stop.is_set():
                    if not any(ev & select.POLLOUT for f, ev in poller.poll(0) if f == fd):
                        break
                    self.feed_once()
                    written += 1
                if unavailable:
                    log.info("kernel feed: the pool serves again")
                    unavailable = False
            except QitError as exc:
                if not unavailable:
                    log.warning("kernel feed: nothing written: %s", exc)
                unavailable = True
            except Exception:
                log.exception("kernel feed: internal error")
                unavailable = True
            next_feed = time.monotonic() + (
                self.settings.interval if not unavailable else min(1.0, self.settings.interval)
            )
            if asked:
                self._stop.wait(PAUSE)

    def status(self) -> dict[str, Any]:
        """The feed's settings, the credit the next write gets now (``bits_per_write``; 0 while
        refused) and why there is none (``credit_refused``: the reason, or None), JSON-able:
        what the daemon's status shows under ``front_ends.kernel``."""
        bits = self._credit(self.settings.chunk)
        return {
            "device": self.settings.device,
            "chunk": self.settings.chunk,
            "interval": self.settings.interval,
            "credit_cap": self.settings.credit_cap,
            "bits_per_write": bits,
            "credit_refused": self._refused,
        }
