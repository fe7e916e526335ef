"""``qitcore run``, ``qitcore stream`` and ``qitcore devices``: random bytes from a device through
the whole pipeline (transport, frame decoder, health tests, Toeplitz extraction), with a live rate
and health display, and the devices attached.

``qitcore stream -o FILE`` writes a regular file through a hidden temporary file in the same
folder (``.qitcore-*.tmp``), renamed into place at the end, so FILE never holds a partial write.
The end is the requested ``--bytes``, the end of the device's stream, or a stop signal: Ctrl-C
(SIGINT), SIGTERM or SIGHUP keep the healthy bytes delivered so far (FILE then holds them, whole,
and stderr says how many) and exit with 128 + the signal's number (130 for Ctrl-C); the temporary
file is never left behind. A failure (a health test, a device error) leaves no FILE at all. FIFOs,
character devices, pipes and stdout (``-o -``, ``-o /dev/stdout``) are written directly, as the
bytes come.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import stat
import sys
import threading
import time
from collections.abc import Iterator
from types import FrameType
from typing import IO, TYPE_CHECKING, Any

from .. import _core
from ..errors import HealthTestFailure, InvalidArgumentError, InvalidTypeError, QitError
from ..report.files import make_temp
from .args import Commands, check_output_folders, count, in_url, positive_real, power_of_two

if TYPE_CHECKING:
    from ..stream import QrngStream, StreamStats

CHUNK = 1 << 20


def _open(args: argparse.Namespace) -> QrngStream:
    # The device backends (and numpy, pyserial, pyusb, the network stack they use) are imported
    # by the commands that open a device, not by every `qitcore` command line.
    from ..devices import open as open_device
    from ..devices import open_raw

    options: dict[str, Any] = {"min_entropy": args.min_entropy, "gap_policy": args.gap_policy}
    if args.epsilon is not None:
        options["epsilon"] = args.epsilon
    if args.alpha is not None:
        options["alpha"] = args.alpha
    try:
        return (open_raw if getattr(args, "raw_samples", False) else open_device)(args.device, **options)
    except (InvalidArgumentError, InvalidTypeError) as exc:
        raise in_url(args.device, exc) from None


def describe(stream: QrngStream) -> list[str]:
    """What the stream does, a line each."""
    info, lines = stream.info, []
    name = " ".join(str(info[k]) for k in ("vendor", "model") if info.get(k))
    lines.append(f"device: {stream.description}" + (f" ({name})" if name else ""))
    if "min_entropy" in info:
        lines.append(
            f"source: {info.get('bits_per_sample', 8)}-bit samples, min-entropy {info['min_entropy']:.3f} bits/sample "
            f"against classical side information ({info['min_entropy_without_side_information']:.3f} without)"
        )
    if stream.cutoffs is not None and stream.block_shape is not None:
        rct, apt, window = stream.cutoffs
        n, m = stream.block_shape
        lines.append(
            f"health: RCT cutoff {rct}, APT cutoff {apt} per {window} samples, at {stream.min_entropy:.3f} bits/sample"
        )
        lines.append(f"extractor: Toeplitz {n} -> {m} bits per block, seed from the OS CSPRNG")
    else:
        lines.append("raw samples: untested, unextracted (for entropy assessment only)")
    return lines


def summary(stats: StreamStats, delivered: int, seconds: float) -> list[str]:
    c = stats.counters
    return [
        f"read {delivered / 1e6:.1f} MB in {seconds:.2f} s: output {delivered * 8 / seconds / 1e6:.0f} Mbit/s, "
        f"raw input {c['bytes_in'] * 8 / seconds / 1e6:.0f} Mbit/s",
        f"frames {c['frames']:,}, CRC errors {c['crc_errors']:,}, gaps {c['gaps']:,} "
        f"({c['frames_lost']:,} frames lost), garbage {c['garbage_bytes']:,} bytes, "
        f"malformed {c['malformed_frames']:,}",
        f"samples {c['samples_in']:,}: start-up {c['samples_startup']:,}, healthy {c['samples_healthy']:,}, "
        f"withheld {c['samples_withheld']:,}; {c['blocks']:,} blocks extracted",
    ]


def _chunks(stream: QrngStream, total: int | None) -> Iterator[bytes]:
    left = total
    while left is None or left > 0:
        want = CHUNK if left is None else min(CHUNK, left)
        data = stream.read(want)
        if not data:
            return
        if left is not None:
            left -= len(data)
        yield data


class _Live:
    """A status line on stderr, refreshed a few times a second."""

    def __init__(self, stream: QrngStream, enabled: bool) -> None:
        self.stream, self.enabled, self.last = stream, enabled, 0.0

    def update(self, delivered: int, final: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not final and now - self.last < 0.25):
            return
        self.last = now
        s = self.stream.stats()
        c = s.counters
        state = "FAILED" if self.stream._core.error() is not None else "healthy"
        print(
            f"\r{delivered / 1e6:10.1f} MB  out {s.output_rate * 8 / 1e6:7.0f} Mbit/s  "
            f"in {s.raw_rate * 8 / 1e6:7.0f} Mbit/s  health {state}  crc {c['crc_errors']}  gaps {c['gaps']}  ",
            end="\n" if final else "",
            file=sys.stderr,
            flush=True,
        )


def run(args: argparse.Namespace) -> int:
    """The main job: stream from the simulator through the whole pipeline and summarise."""
    with _open(args) as stream:
        print(f"qitcore {_core.__version__}: streaming through transport -> frames -> health tests -> extractor")
        for line in describe(stream):
            print(line)
        start, delivered = time.perf_counter(), 0
        for data in _chunks(stream, args.megabytes * 1_000_000):
            delivered += len(data)
        seconds = time.perf_counter() - start
        if delivered == 0:
            raise QitError(f"run: {stream.description} delivered nothing")
        for line in summary(stream.stats(), delivered, seconds):
            print(line)
    return 0


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""The signals that stop ``qitcore stream`` keeping what it delivered."""


class Stopped(KeyboardInterrupt):
    """A stop signal arrived (SIGINT, SIGTERM or SIGHUP)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _Signals:
    """Turns the stop signals into :class:`Stopped`, except while a chunk is being written (it is
    written whole, then the stop takes effect) and once stopping (cleaning up is not cut short)."""

    def __init__(self) -> None:
        self.caught: int | None = None
        self._hold = 0
        self._previous: dict[int, Any] = {}

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self.caught is None:
            self.caught = signum
            if not self._hold:
                self._hold += 1  # stopping: later signals wait for the clean-up
                raise Stopped(signum)

    def __enter__(self) -> _Signals:
        # Only the main thread may set handlers (main() run from another thread keeps Python's
        # own: Ctrl-C is then a KeyboardInterrupt, handled the same way).
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """A stop signal during the block takes effect after it."""
        self._hold += 1
        try:
            yield
        finally:
            self._hold -= 1
        if self.caught is not None and not self._hold:
            self._hold += 1
            raise Stopped(self.caught)


def _is_stdout(path: str | None) -> bool:
    return path in (None, "-", "/dev/stdout", "/dev/fd/1", "/proc/self/fd/1")


class _Output:
    """Where ``qitcore stream`` writes: stdout, a special file written directly (a FIFO, a
    character device, a pipe named through /dev or /proc), or a regular file written to a
    temporary file beside it and renamed into place."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.name = "stdout" if _is_stdout(path) else str(path)
        self.file: IO[bytes] | None = None
        self.temp: str | None = None
        self.target: str | None = None
        self.written = 0

    def prepare(self) -> None:
        """Checks the target and opens it (before the device, so a bad path costs nothing).

        Raises:
            QitError: a terminal for stdout, a folder, a missing folder.
            OSError: the file cannot be created or opened (one line from main()).
        """
        path = self.path
        if _is_stdout(path):
            if sys.stdout.isatty():
                raise QitError("stream: refusing to write binary to a terminal; give -o FILE or redirect stdout")
            # Unbuffered, straight to the descriptor (see write()).
            sys.stdout.flush()
            self.file = open(sys.stdout.fileno(), "wb", buffering=0, closefd=False)  # noqa: SIM115
            return
        assert path is not None
        absolute = os.path.abspath(path)
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            mode = None
        if mode is not None and stat.S_ISDIR(mode):
            raise QitError(f"--output: {path} is a folder")
        if absolute.startswith(("/dev/", "/proc/")) or (mode is not None and not stat.S_ISREG(mode)):
            # Written in place, never replaced: a FIFO's reader, a device, a process's pipe. Files
            # reached through /dev/fd or /proc are appended to: the shell already truncated them
            # for '>', and '>>' asked for appending.
            self.file = open(path, "ab" if absolute.startswith(("/dev/fd/", "/proc/")) else "wb", buffering=0)  # noqa: SIM115
            return
        check_output_folders(output=path)
        # A symbolic link to a regular file: the file it points to is replaced, the link stays.
        self.target = os.path.realpath(path)
        handle, self.temp = make_temp(os.path.dirname(self.target))
        self.file = os.fdopen(handle, "wb", buffering=0)

    def write(self, data: bytes) -> None:
        """Writes all of ``data``: a write into a pipe that a signal interrupts returns short (the
        buffered writer's too), so each short write is continued. Outputs are unbuffered, so the
        bytes counted are the bytes the descriptor took."""
        assert self.file is not None
        view = memoryview(data)
        while view:
            n = self.file.write(view)
            self.written += n
            view = view[n:]

    def keep(self) -> None:
        """Finishes the output: a temporary file is flushed to disk and renamed into place. Safe
        twice (a stop signal that arrives while the finished output is being kept)."""
        if self.file is None or self.file.closed:
            return
        self.file.flush()
        if self.temp is None:
            return
        assert self.target is not None
        os.fsync(self.file.fileno())
        self.file.close()
        # mkstemp creates the file private; give it the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.temp, 0o666 & ~umask)
        os.replace(self.temp, self.target)
        self.temp = None

    def discard(self) -> None:
        """Removes the temporary file (nothing appears at the path); direct outputs keep what
        was written."""
        if self.temp is not None:
            with contextlib.suppress(OSError):
                assert self.file is not None
                self.file.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.temp)
            self.temp = None

    def close(self) -> None:
        if self.file is not None:
            with contextlib.suppress(OSError):
                self.file.close()


def stream(args: argparse.Namespace) -> int:
    """``qitcore stream``: bytes to a file or stdout, with a live display on stderr. Exit status:
    0 done, 1 a health test failed, 2 an error, 128 + N stopped by signal N (bytes kept)."""
    out = _Output(args.output)
    # The handlers stay until the output is kept or removed: a second signal is only recorded
    # (by then the first one's stop is under way), so no clean-up is cut short.
    with _Signals() as signals:
        try:
            return _stream(args, out, signals)
        except Stopped as stop:
            return _stopped(stop.signum, out)
        except KeyboardInterrupt:  # no handler of ours (main() outside the main thread)
            return _stopped(signal.SIGINT, out)
        finally:
            out.discard()
            out.close()


def _stream(args: argparse.Namespace, out: _Output, signals: _Signals) -> int:
    out.prepare()
    delivered = 0
    with _open(args) as s:
        if not args.quiet:
            for line in describe(s):
                print(line, file=sys.stderr)
        live = _Live(s, enabled=not args.quiet and sys.stderr.isatty())
        start = time.perf_counter()
        try:
            for data in _chunks(s, args.bytes):
                with signals.held():
                    out.write(data)
                    delivered += len(data)
                live.update(delivered)
            if args.bytes is not None and delivered < args.bytes:
                raise QitError(f"stream: the device ended after {delivered:,} of {args.bytes:,} bytes")
            with signals.held():
                out.keep()
        except HealthTestFailure as exc:
            live.update(delivered, final=True)
            print(f"qitcore: health test failure: {exc}; output stopped", file=sys.stderr)
            return 1
        except BrokenPipeError:
            # The reader went away (``qitcore stream | head -c 100``): the natural end of a pipe.
            _silence_stdout()
            return 0
        live.update(delivered, final=True)
        if not args.quiet:
            for line in summary(s.stats(), delivered, time.perf_counter() - start):
                print(line, file=sys.stderr)
    return 0


def _stopped(signum: int, out: _Output) -> int:
    """Keeps what was delivered, says so, and gives the exit status of a stop by ``signum``."""
    name = signal.Signals(signum).name
    try:
        if out.written:
            out.keep()
            print(f"qitcore: stopped by {name}: kept the {out.written:,} healthy bytes delivered in {out.name}",
                  file=sys.stderr)  # fmt: skip
        else:
            print(f"qitcore: stopped by {name} before any byte was delivered; {out.name} not written", file=sys.stderr)
    except BrokenPipeError:
        _silence_stdout()
    except OSError as exc:
        print(f"qitcore: stopped by {name}; {out.name} could not be kept: {exc.strerror or exc}", file=sys.stderr)
    return 128 + signum


def _silence_stdout() -> None:
    """After the reader of stdout left: later writes (the interpreter's final flush) go nowhere
    instead of raising again."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def add_parsers(sub: Commands) -> None:
    named = os.environ.get("QITCORE_DEVICE")

    def common(p: argparse.ArgumentParser, simulator_by_default: bool) -> None:
        default: str | None
        if simulator_by_default:
            default, text = named or "sim://", "device URL (default $QITCORE_DEVICE, else the simulator sim://)"
        else:
            # Random bytes for use never come from the simulator unless it is named.
            default, text = (
                named,
                "device URL, e.g. serial:///dev/ttyACM0, or sim:// for the simulator (default $QITCORE_DEVICE)",
            )
        p.add_argument("--device", default=default, required=default is None, help=text)
        p.add_argument(
            "--min-entropy", type=positive_real, default=None, help="bits per sample (default: the device's claim)"
        )
        epsilon, alpha = power_of_two(_core.Stream.DEFAULT_EPSILON), power_of_two(_core.Stream.DEFAULT_ALPHA)
        p.add_argument(
            "--epsilon", type=positive_real, default=None, help=f"distance from uniform per block ({epsilon})"
        )
        p.add_argument("--alpha", type=positive_real, default=None, help=f"health tests' false-positive rate ({alpha})")
        p.add_argument(
            "--gap-policy",
            choices=("count", "error"),
            default="count",
            help="lost or replayed frames: count them and go on (default), or stop with an error",
        )

    run_p = sub.add_parser("run", help="stream from the simulator through the whole pipeline and summarise")
    common(run_p, simulator_by_default=True)
    run_p.add_argument("--megabytes", type=count, default=256, help="output to read, in MB (default 256; 1e3 works)")
    run_p.set_defaults(func=run)

    st = sub.add_parser(
        "stream",
        help="stream random bytes from a device to a file or stdout",
        description="Exit status: 0 done, 1 a health test failed, 2 an error, 130 stopped by Ctrl-C (143 SIGTERM, "
        "129 SIGHUP): the healthy bytes delivered until then are kept, whole.",
    )
    common(st, simulator_by_default=False)
    st.add_argument(
        "--bytes",
        type=count,
        default=None,
        help="bytes to write, 1 or more (1e6 works; default: until the device ends or a stop signal)",
    )
    st.add_argument(
        "-o",
        "--output",
        default=None,
        help="output file, replaced whole once the stream ends or is stopped (Ctrl-C, SIGTERM, SIGHUP keep the bytes "
        "delivered; a failure leaves none); FIFOs, devices and pipes are written directly; default or '-': stdout",
    )
    st.add_argument("--raw-samples", action="store_true", help="write raw samples (for assessment), not random bytes")
    st.add_argument("--quiet", action="store_true", help="no display on stderr")
    st.set_defaults(func=stream)

    devices_p = sub.add_parser("devices", help="list attached QRNGs with their driver and whether they can be opened")
    devices_p.set_defaults(func=devices)


def devices(args: argparse.Namespace) -> int:
    """``qitcore devices``: attached devices with their driver and whether they can be opened."""
    from ..devices.discover import discover

    found = discover()
    if not found:
        print("no supported device attached (qitcore drives: truerng, truerngpro, onerng, chaoskey, QDP/1 on USB or "
              "serial, /dev/hwrng); the simulator is always there: sim://")  # fmt: skip
        return 0
    print(f"{'driver':<11} {'USB ID':<10} {'where':<24} {'serial':<18} {'access':<7} url")
    for f in found:
        access = "yes" if f.accessible else "NO"
        print(f"{f.driver:<11} {f.ids:<10} {f.location:<24} {f.serial or '-':<18} {access:<7} {f.url}")
    for f in found:
        if f.hint:
            print(f"\n{f.name} at {f.location}: no permission; add this udev rule:\n  {f.hint}")
    return 0
