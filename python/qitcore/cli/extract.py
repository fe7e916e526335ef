"""``qitcore extract IN -o OUT``: Toeplitz (or modified Toeplitz, or SHA) extraction of a file or
FIFO of raw samples or packed bits, in constant memory, with an atomic output
(:func:`qitcore.extract_file.extract_file`)."""

from __future__ import annotations

import argparse
import sys

from .. import _core
from .args import Commands, UsageError, count, count_up_to, positive_real, power_of_two, terminate_as_interrupt

_METHODS = ("toeplitz", "modified-toeplitz", "sha256", "sha3-256")


def add_parsers(sub: Commands) -> None:
    e = sub.add_parser("extract", help="extract a file of raw samples or bits (Toeplitz, constant memory)")
    e.add_argument("src", metavar="IN", help="raw samples (one a byte) or packed bits; a file, a FIFO, or - for stdin")
    e.add_argument(
        "-o",
        "--output",
        dest="dst",
        metavar="OUT",
        required=True,
        help="the output file (written atomically), or - for stdout (a pipe; the fresh seed needs --save-seed)",
    )
    e.add_argument("--method", choices=_METHODS, default="toeplitz", help="the extractor (%(default)s)")
    e.add_argument("-n", type=count, default=None, help="input bits per block (default: 4096, whole samples and bytes)")
    length = e.add_mutually_exclusive_group()
    length.add_argument("-m", metavar="BITS", type=count, default=None, help="output bits per block")
    length.add_argument(
        "--min-entropy",
        metavar="H",
        type=positive_real,
        default=None,
        help="claimed min-entropy per sample (per bit with --format bits): m from the leftover hash lemma",
    )
    e.add_argument(
        "--eps",
        metavar="EPS",
        type=positive_real,
        default=None,
        help=f"distance from uniform per block, with --min-entropy ({power_of_two(_core.Stream.DEFAULT_EPSILON)})",
    )
    e.add_argument(
        "--format",
        dest="input_format",
        choices=("samples", "bits"),
        default="samples",
        help="samples (one a byte) or packed bits (samples)",
    )
    e.add_argument(
        "--bits-per-sample",
        metavar="BITS",
        type=count_up_to(8),
        default=8,
        help="1-8; every sample must fit (%(default)s)",
    )
    e.add_argument("--bitorder", choices=("big", "little"), default="big", help="bit order of bits and seed (big)")
    seed = e.add_mutually_exclusive_group()
    seed.add_argument("--seed-file", metavar="FILE", help="read the seed from FILE (default: a fresh one)")
    seed.add_argument(
        "--save-seed", metavar="FILE", help="write the fresh seed to FILE, mode 0600, never overwritten (OUT.seed)"
    )
    e.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run on the Dask cluster at tcp://HOST:PORT: workers read and write ranges (shared file system)",
    )
    e.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    e.set_defaults(func=run, files={"src": "src", "seed": "seed_file"})


def run(args: argparse.Namespace) -> int:
    """``qitcore extract``: 0 when the output is written; Ctrl-C (exit 130) and SIGTERM (143)
    leave no output."""
    with terminate_as_interrupt():
        return _extract(args)


def _extract(args: argparse.Namespace) -> int:
    # Here, not at the top: numpy and the extractors are for this command only.
    from ..extract_file import extract_file
    from ..report.progress import FileProgress

    output = args.dst
    if output == "-":
        if sys.stdout.isatty():
            raise UsageError("extract: refusing to write binary to a terminal; give -o FILE or redirect stdout")
        if args.seed_file is None and args.save_seed is None and not args.method.startswith("sha"):
            # No OUT.seed beside a pipe: the fresh seed needs a file of its own.
            raise UsageError("extract: -o - is a pipe: give --save-seed FILE for the fresh seed (or --seed-file)")
        sys.stdout.flush()
        # Written in place, as any special file is: the bytes go down the pipe as they are hashed.
        output = f"/dev/fd/{sys.stdout.fileno()}"

    progress = FileProgress("extracting", enabled=not args.quiet)

    client = None
    if args.scheduler is not None:
        from ..archive import connect

        client = connect(args.scheduler)
    try:
        result = extract_file(
            src="/dev/stdin" if args.src == "-" else args.src,
            dst=output,
            method=args.method,
            n=args.n,
            m=args.m,
            min_entropy=args.min_entropy,
            eps=args.eps,
            input_format=args.input_format,
            bits_per_sample=args.bits_per_sample,
            bitorder=args.bitorder,
            seed_file=args.seed_file,
            save_seed=args.save_seed,
            progress=progress,
            client=client,
        )
    finally:
        progress.close()
        if client is not None:
            client.close()  # type: ignore[no-untyped-call]
    if not args.quiet:
        unit = "samples" if args.input_format == "samples" else "bytes"
        piped = args.dst == "-"
        print(
            f"{'stdout' if piped else args.dst}: {result.blocks:,} blocks of {result.n} -> {result.m} bits "
            f"({args.method}), {-(-result.bits_out // 8):,} bytes from {result.bytes_read:,} {unit}; "
            f"{result.dropped_bits} trailing bits not in a whole block dropped",
            # The summary never goes into the random bytes.
            file=sys.stderr if piped else sys.stdout,
        )
        if result.seed_written:
            print(f"seed written to {result.seed_file} (mode 0600): keep it secret", file=sys.stderr)
    return 0
