"""``qitcore assess`` and ``qitcore restart``: NIST SP 800-90B entropy assessment of a sample
file (one sample a byte), and the restart tests that validate an initial estimate."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

from .. import _core, entropy
from ..report.progress import Progress
from ..report.terminal import files_table, iid_table, non_iid_table
from .args import (
    Commands,
    UsageError,
    check_output_folders,
    count,
    count_up_to,
    natural,
    real,
    subset,
    subset_block,
    terminate_as_interrupt,
)


def add_parsers(sub: Commands) -> None:
    a = sub.add_parser("assess", help="NIST SP 800-90B entropy assessment of sample files")
    a.add_argument("paths", nargs="+", metavar="FILE", help="samples, one per byte; several are compared")
    a.add_argument(
        "--bits-per-symbol",
        type=count_up_to(8),
        default=None,
        help="1-8; every sample must fit (default: the widest sample's)",
    )
    track = a.add_mutually_exclusive_group()
    track.add_argument("--iid", action="store_true", help="the IID track")
    track.add_argument("--non-iid", action="store_true", help="the non-IID track (default)")
    track.add_argument("--both", action="store_true", help="both tracks")
    a.add_argument(
        "--truncate",
        dest="truncate_bitstring",
        action="store_true",
        help="assess only 1,000,000 bits of the bit string",
    )
    a.add_argument(
        "--subset",
        metavar="INDEX,SAMPLES",
        help="assess only block INDEX of SAMPLES samples of each file (NIST's -l), reading only that block",
    )
    a.add_argument(
        "--permutations", type=count, default=_core.DEFAULT_PERMUTATIONS, help="IID: most permutations (%(default)s)"
    )
    a.add_argument("--seed", type=natural, default=None, help="IID: seed for a reproducible run (every file's)")
    where = a.add_mutually_exclusive_group()
    where.add_argument(
        "--jobs", type=count, default=1, metavar="N", help="assess N files at a time on a local Dask cluster"
    )
    where.add_argument("--scheduler", metavar="ADDRESS", help="run on this Dask cluster (tcp://HOST:PORT)")
    a.add_argument("--json", metavar="OUT", help="one file: write the result as JSON (NIST's fields)")
    a.add_argument("--jsonl", metavar="OUT", help="write one JSON record per file (JSON Lines)")
    a.add_argument(
        "--report",
        metavar="OUT.html",
        help="write a self-contained HTML report (several files: a comparison linking a report per file)",
    )
    a.add_argument("--quiet", action="store_true", help="no terminal output")
    a.set_defaults(func=assess, files={"data": "paths"})

    r = sub.add_parser("restart", help="SP 800-90B restart tests on 1000 restarts x 1000 samples")
    r.add_argument("file", help="1,000,000 samples, restart after restart")
    r.add_argument("h_i", metavar="H_I", type=real, help="the initial entropy estimate to validate (bits per sample)")
    r.add_argument(
        "--bits-per-symbol",
        type=count_up_to(8),
        default=None,
        help="1-8; every sample must fit (default: the widest sample's)",
    )
    r.set_defaults(func=restart, files={"data": "file"})


def assess(args: argparse.Namespace) -> int:
    """``qitcore assess``: 0 when every file was assessed, 1 when the IID track's tests reject the
    IID assumption on a file, 2 when a file could not be assessed. SIGTERM, like Ctrl-C, leaves no
    output file."""
    with terminate_as_interrupt():
        return _assess(args)


def _assess(args: argparse.Namespace) -> int:
    if len(args.paths) == 1 and not (args.both or args.jsonl or args.scheduler or args.jobs > 1):
        return _assess_file(args, args.paths[0])
    return _assess_files(args)


def _assess_file(args: argparse.Namespace, path: str) -> int:
    """One file, its results in full on the terminal."""
    check_output_folders(inputs=[path], json=args.json, report=args.report)
    data = entropy.read_samples(path, subset=subset(args.subset, path))
    sha = entropy.sha256_hex(data)
    quiet = args.quiet
    if not quiet:
        print(f"{path}: {len(data)} samples (SHA-256 {sha})")
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
            data, bits_per_symbol=args.bits_per_symbol, truncate_bitstring=args.truncate_bitstring
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
            iid_json(iid_result, commandline=args.command_line, filename=path, sha256=sha)
            if iid_result is not None
            else non_iid_json(non_iid_result, commandline=args.command_line, filename=path, sha256=sha)  # type: ignore[arg-type]
        )
        write_atomically(args.json, text)
    if args.report:
        # Only the HTML report's plots need numpy.
        from ..report.html import html_report

        page = html_report(data, bits, non_iid=non_iid_result, iid=iid_result, filename=path, sha256=sha)
        write_atomically(args.report, page)
    if iid_result is not None and not iid_result.passed:
        return 1
    return 0


def _report_name(page: str, index: int, total: int, path: str) -> str:
    """The file name of file ``index``'s report, beside the comparison page ``page``: the page's
    name, the file's number (two files may share a name) and its name made safe for a URL."""
    import re  # here: `qitcore --help` and one file's assessment need no regular expression

    stem = os.path.splitext(os.path.basename(page))[0]
    name = re.sub(r"[^A-Za-z0-9._-]", "_", os.path.basename(path)) or "file"
    return f"{stem}-{index + 1:0{len(str(total))}d}-{name}.html"


def _assess_files(args: argparse.Namespace) -> int:
    """Several files (or one on a cluster): a summary table, ``--jsonl`` and a comparison report."""
    from .. import archive

    if args.json:
        raise UsageError("assess: --json writes one file's result; use --jsonl for several (see qitcore assess --help)")
    check_output_folders(inputs=args.paths, jsonl=args.jsonl, report=args.report)
    track = "both" if args.both else ("iid" if args.iid else "non-iid")
    paths, options, jobs = archive._check(
        args.paths,
        track,
        args.bits_per_symbol,
        args.permutations,
        args.seed,
        args.truncate_bitstring,
        args.jobs,
        None,
        bool(args.report),
        subset_block(args.subset),
    )
    total = len(paths)
    progress = Progress("files assessed", total, enabled=None if not args.quiet else False)
    folder = os.path.dirname(os.path.abspath(args.report)) if args.report else ""
    links: list[str | None] = [None] * total
    records: list[archive.FileAssessment | None] = [None] * total
    written: list[str] = []
    errors = 0
    # Only the output files need these (json, datetime, tempfile).
    from ..report.files import atomic_file, write_atomically

    client = archive.connect(args.scheduler) if args.scheduler else None
    try:
        with contextlib.closing(archive._run(paths, options, client, jobs)) as results:
            for done, (i, record, page) in enumerate(results, 1):
                records[i] = record
                if page is not None:
                    # Written as each arrives: the caller holds one file's report at a time.
                    link = links[i] = _report_name(args.report, i, total, record.path)
                    target = os.path.join(folder, link)
                    # A page an earlier run left stays if this run fails: its report links to it.
                    existed = os.path.exists(target)
                    write_atomically(target, page)
                    if not existed:
                        written.append(target)
                errors += record.error is not None
                progress.update(done, f"{errors} not assessed")
        progress.close()
        assessed = [r for r in records if r is not None]
        if len(assessed) != total:  # pragma: no cover - every task yields once or raises
            raise archive.ClusterError(f"{total - len(assessed)} of {total} files had no result")
        if args.jsonl:
            from ..report.json_output import file_record_json

            with atomic_file(args.jsonl) as out:
                for r in assessed:
                    out.write(file_record_json(r, commandline=args.command_line).encode("utf-8") + b"\n")
            written.append(args.jsonl)
        if args.report:
            from ..report.compare import comparison_report

            write_atomically(args.report, comparison_report(assessed, links, commandline=args.command_line))
    except BaseException:
        # A run that did not finish leaves none of its files behind (each was written whole).
        progress.close()
        for target in written:
            with contextlib.suppress(OSError):
                os.unlink(target)
        raise
    finally:
        if client is not None:
            client.close()  # type: ignore[no-untyped-call]
    if not args.quiet:
        print(files_table(assessed))
    for r in assessed:
        if r.error is not None:
            print(f"qitcore: error: {r.path}: {r.error}", file=sys.stderr)
    if any(r.error is not None for r in assessed):
        return 2
    return 1 if any(r.iid is not None and not r.iid.passed for r in assessed) else 0


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
