"""``qitcore run`` and ``qitcore stream``: random bytes from a device through the whole pipeline
(transport, frame decoder, health tests, Toeplitz extraction), with a live rate and health display.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import time
from collections.abc import Iterator
from typing import IO, Any

from . import _core
from .devices import open as open_device
from .devices import open_raw
from .errors import HealthTestFailure, QitError
from .report.files import atomic_file
from .stream import QrngStream, StreamStats

CHUNK = 1 << 20


def _log2(x: float) -> str:
    return f"2^{math.log2(x):.0f}"


def _open(args: argparse.Namespace) -> QrngStream:
    options: dict[str, Any] = {"min_entropy": args.min_entropy, "gap_policy": args.gap_policy}
    if args.epsilon is not None:
        options["epsilon"] = args.epsilon
    if args.alpha is not None:
        options["alpha"] = args.alpha
    return (open_raw if getattr(args, "raw_samples", False) else open_device)(args.device, **options)


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
        for line in summary(stream.stats(), delivered, seconds):
            print(line)
    return 0


@contextlib.contextmanager
def _output(path: str | None) -> Iterator[IO[bytes]]:
    """stdout, or a file that appears only when the stream completes."""
    if path is None or path == "-":
        if sys.stdout.isatty():
            raise QitError("stream: refusing to write binary to a terminal; give -o FILE or redirect stdout")
        yield sys.stdout.buffer
        return
    with atomic_file(path) as out:
        yield out


def stream(args: argparse.Namespace) -> int:
    """``qitcore stream``: bytes to a file or stdout, with a live display on stderr."""
    delivered = 0
    with _open(args) as s:
        if not args.quiet:
            for line in describe(s):
                print(line, file=sys.stderr)
        live = _Live(s, enabled=not args.quiet and sys.stderr.isatty())
        start = time.perf_counter()
        try:
            with _output(args.output) as out:
                for data in _chunks(s, args.bytes):
                    out.write(data)
                    delivered += len(data)
                    live.update(delivered)
                if args.bytes is not None and delivered < args.bytes:
                    raise QitError(f"stream: the device ended after {delivered:,} of {args.bytes:,} bytes")
        except HealthTestFailure as exc:
            live.update(delivered, final=True)
            print(f"qitcore: health test failure: {exc}; output stopped", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            pass
        live.update(delivered, final=True)
        if not args.quiet:
            for line in summary(s.stats(), delivered, time.perf_counter() - start):
                print(line, file=sys.stderr)
    return 0


def add_parsers(sub: Any) -> None:
    default = os.environ.get("QITCORE_DEVICE", "sim://")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--device", default=default, help=f"device URL (default $QITCORE_DEVICE or sim://: {default})")
        p.add_argument("--min-entropy", type=float, default=None, help="bits per sample (default: the device's claim)")
        p.add_argument("--epsilon", type=float, default=None, help="distance from uniform per block (2^-64)")
        p.add_argument("--alpha", type=float, default=None, help="health tests' false-positive rate (2^-40)")
        p.add_argument("--gap-policy", choices=("count", "error"), default="count")

    run_p = sub.add_parser("run", help="stream from the simulator through the whole pipeline and summarise")
    common(run_p)
    run_p.add_argument("--megabytes", type=int, default=256, help="output to read, in MB (default 256)")

    st = sub.add_parser("stream", help="stream random bytes from a device to a file or stdout")
    common(st)
    st.add_argument("--bytes", type=int, default=None, help="bytes to write (default: until the device ends or ^C)")
    st.add_argument("-o", "--output", default=None, help="output file (written whole or not at all); default stdout")
    st.add_argument("--raw-samples", action="store_true", help="write raw samples (for assessment), not random bytes")
    st.add_argument("--quiet", action="store_true", help="no display on stderr")

    sub.add_parser("devices", help="list attached QRNGs with their driver and whether they can be opened")


def devices(args: argparse.Namespace) -> int:
    """``qitcore devices``: attached devices with their driver and whether they can be opened."""
    from .devices.discover import discover

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
