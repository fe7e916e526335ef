"""The ``qitcore`` command line.

- ``qitcore run``: the main job on built-in defaults: random bytes from the simulator through the
  whole pipeline (frames, health tests, Toeplitz extraction), with a summary.
- ``qitcore stream [--device URL] [--bytes N] [-o FILE]``: random bytes from a device, with a live
  rate and health display.
- ``qitcore devices``: attached QRNGs, their drivers and whether they can be opened.
- ``qitcore assess FILE``: NIST SP 800-90B entropy assessment (non-IID track by default, ``--iid``
  for the IID track), a table on the terminal, ``--json`` with NIST's fields, ``--report`` HTML.
- ``qitcore restart FILE H_I``: the SP 800-90B restart tests.
- ``qitcore health FILE --min-entropy H``: the continuous health tests over a capture, and
  optionally the FIPS 140-2 and AIS 31 block tests.

Exit status: 0 when the run completed (and, for ``health``, no test fired), 1 when a health test
fired or a restart/IID test failed, 2 on errors. Every error, a bad option included, is one line
on stderr, ``qitcore: error: ...``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shlex
import sys
from collections.abc import Sequence
from typing import NoReturn

from . import __version__, cli_kme, cli_qkd, cli_stream, entropy, health
from .cli_args import check_output_folders, count, natural, positive_real, real
from .errors import QitError
from .report import Progress, html_report, iid_json, iid_table, non_iid_json, non_iid_table, write_atomically


class _UsageError(QitError):
    """A command line argparse refused."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, like every other error of the command."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("qitcore").strip()
        raise _UsageError(f"{command + ': ' if command else ''}{message} (see {self.prog} --help)")


def _subset(text: str | None, path: str) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        index, samples = (natural(part) for part in text.split(","))
    except (ValueError, argparse.ArgumentTypeError):
        raise QitError(f"--subset: expected INDEX,SAMPLES (two whole numbers), got {text!r}") from None
    if samples < 1:
        raise QitError(f"--subset: expected at least 1 sample per block, got {text!r}")
    # Checked here so that a block larger than the file is never allocated for.
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise QitError(f"{path}: {exc.strerror or exc}") from None
    if (index + 1) * samples > size:
        raise QitError(f"--subset: block {index} of {samples:,} samples ends past the end of {path} ({size:,} samples)")
    return index, samples


def _command_line(argv: Sequence[str] | None) -> str:
    return shlex.join(["qitcore", *(sys.argv[1:] if argv is None else argv)])


def _assess(args: argparse.Namespace, argv: Sequence[str] | None) -> int:
    check_output_folders(json=args.json, report=args.report)
    data = entropy.read_samples(args.file, subset=_subset(args.subset, args.file))
    sha = hashlib.sha256(data).hexdigest()
    quiet = args.quiet
    if not quiet:
        print(f"{args.file}: {len(data)} samples (SHA-256 {sha})")
    non_iid_result = iid_result = None
    if args.iid:
        progress = Progress("permutation tests", args.permutations, enabled=None if not quiet else False)
        iid_result = entropy.assess_iid(
            data,
            bits_per_symbol=args.bits_per_symbol,
            permutations=args.permutations,
            seed=args.seed,
            progress=lambda rounds, decided: progress.update(rounds, f"{decided}/19 decided"),
        )
        progress.close()
        bits = iid_result.bits_per_symbol
        if not quiet:
            print(iid_table(iid_result))
    else:
        if not quiet:
            print("running the non-IID estimators ...", file=sys.stderr)
        non_iid_result = entropy.assess_non_iid(
            data, bits_per_symbol=args.bits_per_symbol, truncate_bitstring=args.truncate
        )
        bits = non_iid_result.bits_per_symbol
        if not quiet:
            for warning in non_iid_result.warnings:
                print(f"warning: {warning}", file=sys.stderr)
            print(non_iid_table(non_iid_result))
    commandline = _command_line(argv)
    if args.json:
        text = (
            iid_json(iid_result, commandline=commandline, filename=args.file, sha256=sha)
            if iid_result is not None
            else non_iid_json(non_iid_result, commandline=commandline, filename=args.file, sha256=sha)  # type: ignore[arg-type]
        )
        write_atomically(args.json, text)
    if args.report:
        page = html_report(data, bits, non_iid=non_iid_result, iid=iid_result, filename=args.file, sha256=sha)
        write_atomically(args.report, page)
    if iid_result is not None and not iid_result.passed:
        return 1
    return 0


def _restart(args: argparse.Namespace) -> int:
    data = entropy.read_samples(args.file, max_samples=1_000_000)  # refused from its size past that
    r = entropy.assess_restart(data, args.h_i, bits_per_symbol=args.bits_per_symbol)
    print(
        f"sanity check: max count {max(r.max_row, r.max_column)} (rows {r.max_row}, columns {r.max_column}), "
        f"cutoff {r.cutoff} at alpha {r.alpha:.6g}: {'passed' if r.sanity_passed else 'FAILED'}"
    )
    print(f"H_r = {r.h_r:.6f}, H_c = {r.h_c:.6f}, H_I = {r.h_i:.6f}")
    if r.passed:
        print(f"validation passed: min(H_r, H_c, H_I) = {r.h_min:.6f}")
        return 0
    print(
        "validation FAILED" + ("" if r.sanity_passed else " (sanity check)") + ": min(H_r, H_c) < H_I / 2"
        if r.sanity_passed
        else "validation FAILED: sanity check"
    )
    return 1


def _health(args: argparse.Namespace) -> int:
    data = entropy.read_samples(args.file, subset=_subset(args.subset, args.file))
    report = health.scan(
        data,
        args.min_entropy,
        bits_per_sample=args.bits_per_sample,
        alpha=args.alpha,
        max_failures=args.max_failures,
    )
    print(
        f"{args.file}: {len(data)} samples; cutoffs: RCT {report.rct_cutoff}, APT {report.apt_cutoff} "
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
        blocks = health.fips140_2(data, bitorder=args.bitorder)
        failed = [(i, t) for i, b in enumerate(blocks) for t in b if not t.passed]
        print(f"FIPS 140-2: {len(blocks)} blocks of 20000 bits, {len(failed)} failed tests")
        for i, t in failed[: args.show]:
            print(f"  block {i}: {_failed_block_test(t)}")
        status = max(status, int(bool(failed)))
    if args.ais31:
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


def _failed_block_test(t: health.BlockTest) -> str:
    """A failed block test as a sentence: the core's detail gives the statistic and when it passes."""
    return f"{t.test} failed: {t.detail}"


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="qitcore", description="Quantum random numbers and QKD key processing.")
    parser.add_argument("--version", action="version", version=f"qitcore {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    cli_stream.add_parsers(sub)
    cli_qkd.add_parsers(sub)
    cli_kme.add_parsers(sub)

    assess = sub.add_parser("assess", help="NIST SP 800-90B entropy assessment of a sample file")
    assess.add_argument("file", help="samples, one per byte")
    assess.add_argument(
        "--bits-per-symbol", type=count, default=None, help="1-8; every sample must fit (default: the widest sample's)"
    )
    track = assess.add_mutually_exclusive_group()
    track.add_argument("--iid", action="store_true", help="the IID track")
    track.add_argument("--non-iid", action="store_true", help="the non-IID track (default)")
    assess.add_argument("--truncate", action="store_true", help="assess only 1,000,000 bits of the bit string")
    assess.add_argument("--subset", metavar="INDEX,SAMPLES", help="assess only block INDEX of SAMPLES samples")
    assess.add_argument("--permutations", type=count, default=10_000, help="IID: most permutations (10000)")
    assess.add_argument("--seed", type=natural, default=None, help="IID: seed for a reproducible run")
    assess.add_argument("--json", metavar="OUT", help="write the result as JSON (NIST's fields)")
    assess.add_argument("--report", metavar="OUT.html", help="write a self-contained HTML report")
    assess.add_argument("--quiet", action="store_true", help="no terminal output")

    restart = sub.add_parser("restart", help="SP 800-90B restart tests on 1000 restarts x 1000 samples")
    restart.add_argument("file", help="1,000,000 samples, restart after restart")
    restart.add_argument("h_i", type=real, help="the initial entropy estimate to validate (bits per sample)")
    restart.add_argument(
        "--bits-per-symbol", type=count, default=None, help="1-8; every sample must fit (default: the widest sample's)"
    )

    h = sub.add_parser("health", help="run the health tests over a capture and report where they fail")
    h.add_argument("file", help="samples, one per byte")
    h.add_argument("--min-entropy", type=positive_real, required=True, help="claimed min-entropy per sample (bits)")
    h.add_argument("--bits-per-sample", type=count, default=8, help="1-8; every sample must fit (8)")
    h.add_argument("--alpha", type=positive_real, default=health.DEFAULT_ALPHA, help="false-positive rate (2^-20)")
    h.add_argument("--max-failures", type=count, default=1000, help="stop scanning after this many failures (1000)")
    h.add_argument("--show", type=natural, default=20, help="failures to list (20)")
    h.add_argument("--fips", action="store_true", help="also FIPS 140-2 tests on the bits of the file")
    h.add_argument("--ais31", action="store_true", help="also AIS 31 procedure A on the bits of the file")
    h.add_argument(
        "--bitorder", choices=("big", "little"), default="big", help="bit order of the bytes for --fips/--ais31 (big)"
    )
    h.add_argument(
        "--subset", metavar="INDEX,SAMPLES", help="test only block INDEX of SAMPLES samples (indices count from it)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``qitcore`` command."""
    try:
        args = _parser().parse_args(argv)
        if args.command == "run":
            return cli_stream.run(args)
        if args.command == "stream":
            return cli_stream.stream(args)
        if args.command == "devices":
            return cli_stream.devices(args)
        if args.command == "qkd":
            return cli_qkd.run(args)
        if args.command == "kme":
            return cli_kme.run(args)
        if args.command == "assess":
            return _assess(args, argv)
        if args.command == "restart":
            return _restart(args)
        return _health(args)
    except QitError as exc:
        print(f"qitcore: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # A file the user named that cannot be written, a closed pipe: the user's to fix, not a bug.
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"qitcore: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("qitcore: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
