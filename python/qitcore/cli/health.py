"""``qitcore health``: the continuous health tests (SP 800-90B §4.4) over a capture, reporting
where they fire, and optionally the FIPS 140-2 and AIS 31 procedure A block tests."""

from __future__ import annotations

import argparse
from typing import Any

from .. import entropy, health
from .args import Commands, count, count_up_to, natural, positive_real, power_of_two, subset


def add_parsers(sub: Commands) -> None:
    h = sub.add_parser("health", help="run the health tests over a capture and report where they fail")
    h.add_argument("file", help="samples, one per byte")
    h.add_argument("--min-entropy", type=positive_real, required=True, help="claimed min-entropy per sample (bits)")
    h.add_argument("--bits-per-sample", type=count_up_to(8), default=8, help="1-8; every sample must fit (%(default)s)")
    h.add_argument(
        "--alpha",
        type=positive_real,
        default=health.DEFAULT_ALPHA,
        help=f"false-positive rate ({power_of_two(health.DEFAULT_ALPHA)})",
    )
    h.add_argument(
        "--max-failures", type=count, default=1000, help="stop scanning after this many failures (%(default)s)"
    )
    h.add_argument("--show", type=natural, default=20, help="failures to list (%(default)s)")
    h.add_argument("--fips", action="store_true", help="also FIPS 140-2 tests on the bits of the file")
    h.add_argument("--ais31", action="store_true", help="also AIS 31 procedure A on the bits of the file")
    h.add_argument(
        "--bitorder", choices=("big", "little"), default="big", help="bit order of the bytes for --fips/--ais31 (big)"
    )
    h.add_argument(
        "--subset", metavar="INDEX,SAMPLES", help="test only block INDEX of SAMPLES samples (indices count from it)"
    )
    h.set_defaults(func=run, files={"data": "file"})


def run(args: argparse.Namespace) -> int:
    """``qitcore health``: 0 when no test fired, 1 when one did.

    The continuous tests alone read the file a chunk at a time, whatever its size; the block tests
    (``--fips``, ``--ais31``) and ``--subset`` take the samples in memory, up to
    :data:`~qitcore.entropy.MAX_SAMPLES`."""
    options = {"bits_per_sample": args.bits_per_sample, "alpha": args.alpha, "max_failures": args.max_failures}
    data = None
    if args.subset is not None or args.fips or args.ais31:
        data = entropy.read_samples(args.file, subset=subset(args.subset, args.file))
        report = health.scan(data, args.min_entropy, **options)
        samples = f"{len(data)} samples"
    else:
        report = _scan_file(args, options)
        samples = f"{report.samples} samples"
        if len(report.failures) >= args.max_failures:
            samples += f" tested (stopped at --max-failures {args.max_failures})"
    print(
        f"{args.file}: {samples}; cutoffs: RCT {report.rct_cutoff}, APT {report.apt_cutoff} "
        f"(window {report.window}); longest run {report.longest_run}, largest window count "
        f"{report.largest_window_count}"
    )
    if report.passed:
        print("no health test fired")
    for f in report.failures[: args.show]:
        print(f"  sample {f.index}: {f.test} fired (value {f.value} reached {f.count}, cutoff {f.cutoff})")
    if len(report.failures) > args.show:
        print(f"  ... and {len(report.failures) - args.show} more")
    status = 0 if report.passed else 1
    if args.fips:
        assert data is not None
        blocks = health.fips140_2(data, bitorder=args.bitorder)
        failed = [(i, t) for i, b in enumerate(blocks) for t in b if not t.passed]
        print(f"FIPS 140-2: {len(blocks)} blocks of 20000 bits, {len(failed)} failed tests")
        for i, t in failed[: args.show]:
            print(f"  block {i}: {_failed_block_test(t)}")
        status = max(status, int(bool(failed)))
    if args.ais31:
        assert data is not None
        a = health.ais31_procedure_a(data, bitorder=args.bitorder)
        failed = [(i, t) for i, b in enumerate(a.blocks) for t in b if not t.passed]
        print(
            f"AIS 31 procedure A: T0 {'passed' if a.t0.passed else 'FAILED'}; {len(failed)} of 1285 block tests "
            f"failed; verdict {a.verdict}"
        )
        for i, t in failed[: args.show]:
            print(f"  block {i}: {_failed_block_test(t)}")
        status = max(status, int(a.verdict != "pass"))
    return status


def _scan_file(args: argparse.Namespace, options: dict[str, Any]) -> health.HealthScan:
    """The continuous tests over the whole file, a chunk at a time, with a progress bar on a terminal."""
    from ..report.progress import FileProgress

    progress = FileProgress("health tests")

    try:
        return health.scan_file(args.file, args.min_entropy, progress=progress, **options)
    finally:
        progress.close()


def _failed_block_test(t: health.BlockTest) -> str:
    """A failed block test as a sentence: the core's detail gives the statistic and when it passes."""
    return f"{t.test} failed: {t.detail}"
