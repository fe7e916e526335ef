"""The ``qitcore`` command line.

``qitcore run`` is the main job on built-in defaults: for now it extracts from OS-random input with
Toeplitz hashing and prints the throughput.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

from . import _core
from .errors import QitError
from .extract import Toeplitz


def _run(args: argparse.Namespace) -> int:
    n, m = args.n, args.m
    total_bytes = args.megabytes * 1_000_000 // (n // 8 or 1) * (n // 8 or 1)
    if n % 8:
        raise QitError("run: n must be a multiple of 8 for the demo")
    data = os.urandom(max(total_bytes, n // 8))
    toeplitz = Toeplitz(n, m)
    print(f"qitcore {_core.__version__}: Toeplitz hashing {n} -> {m} bits, seed from the OS CSPRNG")
    print(f"carry-less multiplication backend: {_core.clmul_backend()}")
    print(f"input: {len(data) / 1e6:.1f} MB of OS-random bytes ({len(data) * 8 // n} blocks)")
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        result = toeplitz.hash(data)
        times.append(time.perf_counter() - start)
    best = min(times)
    median = sorted(times)[len(times) // 2]
    print(f"output: {len(result) / 1e6:.1f} MB")
    print(
        f"throughput (input): median {len(data) * 8 / median / 1e9:.2f} Gbit/s, "
        f"best {len(data) * 8 / best / 1e9:.2f} Gbit/s over {args.repeat} runs"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``qitcore`` command."""
    parser = argparse.ArgumentParser(prog="qitcore", description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="extract from OS-random input and print the throughput")
    run.add_argument("--n", type=int, default=4096, help="input bits per block (default 4096)")
    run.add_argument("--m", type=int, default=2048, help="output bits per block (default 2048)")
    run.add_argument("--megabytes", type=int, default=64, help="input size in MB (default 64)")
    run.add_argument("--repeat", type=int, default=5, help="timed runs (default 5)")
    run.set_defaults(func=_run)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except QitError as exc:
        print(f"qitcore: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
