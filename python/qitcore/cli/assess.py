"""``qitcore assess`` and ``qitcore restart``: NIST SP 800-90B entropy assessment of a sample
file (one sample a byte), and the restart tests that validate an initial estimate."""

from __future__ import annotations

import argparse
import hashlib
import sys

from .. import _core, entropy
from ..report.progress import Progress
from ..report.terminal import iid_table, non_iid_table
from .args import Commands, check_output_folders, count, natural, real, subset


def add_parsers(sub: Commands) -> None:
    a = sub.add_parser("assess", help="NIST SP 800-90B entropy assessment of a sample file")
    a.add_argument("file", help="samples, one per byte")
    a.add_argument(
        "--bits-per-symbol", type=count, default=None, help="1-8; every sample must fit (default: the widest sample's)"
    )
    track = a.add_mutually_exclusive_group()
    track.add_argument("--iid", action="store_true", help="the IID track")
    track.add_argument("--non-iid", action="store_true", help="the non-IID track (default)")
    a.add_argument("--truncate", action="store_true", help="assess only 1,000,000 bits of the bit string")
    a.add_argument("--subset", metavar="INDEX,SAMPLES", help="assess only block INDEX of SAMPLES samples")
    a.add_argument(
        "--permutations", type=count, default=_core.DEFAULT_PERMUTATIONS, help="IID: most permutations (%(default)s)"
    )
    a.add_argument("--seed", type=natural, default=None, help="IID: seed for a reproducible run")
    a.add_argument("--json", metavar="OUT", help="write the result as JSON (NIST's fields)")
    a.add_argument("--report", metavar="OUT.html", help="write a self-contained HTML report")
    a.add_argument("--quiet", action="store_true", help="no terminal output")
    a.set_defaults(func=assess)

    r = sub.add_parser("restart", help="SP 800-90B restart tests on 1000 restarts x 1000 samples")
    r.add_argument("file", help="1,000,000 samples, restart after restart")
    r.add_argument("h_i", type=real, help="the initial entropy estimate to validate (bits per sample)")
    r.add_argument(
        "--bits-per-symbol", type=count, default=None, help="1-8; every sample must fit (default: the widest sample's)"
    )
    r.set_defaults(func=restart)


def assess(args: argparse.Namespace) -> int:
    """``qitcore assess``: 0 when assessed, 1 when the IID track's tests reject the IID assumption."""
    check_output_folders(json=args.json, report=args.report)
    data = entropy.read_samples(args.file, subset=subset(args.subset, args.file))
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
    if args.json or args.report:
        # Only the output files need these (json, datetime, tempfile).
        from ..report.files import write_atomically
        from ..report.json_output import iid_json, non_iid_json
    if args.json:
        text = (
            iid_json(iid_result, commandline=args.command_line, filename=args.file, sha256=sha)
            if iid_result is not None
            else non_iid_json(non_iid_result, commandline=args.command_line, filename=args.file, sha256=sha)  # type: ignore[arg-type]
        )
        write_atomically(args.json, text)
    if args.report:
        # Only the HTML report's plots need numpy.
        from ..report.html import html_report

        page = html_report(data, bits, non_iid=non_iid_result, iid=iid_result, filename=args.file, sha256=sha)
        write_atomically(args.report, page)
    if iid_result is not None and not iid_result.passed:
        return 1
    return 0


def restart(args: argparse.Namespace) -> int:
    """``qitcore restart``: 0 when the estimate is validated, 1 when it is not."""
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
    print("validation FAILED: min(H_r, H_c) < H_I / 2" if r.sanity_passed else "validation FAILED: sanity check")
    return 1
