"""Entropy assessment of many sample files: in this process, on a local pool of worker processes,
or on a Dask cluster (``dask.distributed``, qitcore's ``dask`` extra).

:func:`assess_files` assesses each file on its own (NIST SP 800-90B, non-IID track, IID track or
both) and returns one :class:`FileAssessment` per file, in input order. A file that cannot be
assessed (missing, empty, a sample too wide) gets a record carrying its error; the other files'
results are kept. A failure of the cluster itself (a task whose worker died more often than the
scheduler allows, a scheduler that went away) raises :class:`ClusterError`: the call never returns
a list with files silently missing.

On a cluster each file is read by the worker that assesses it (the file system must be shared,
the paths valid there) and only the results travel back, so the caller never holds anyone's
samples. Each worker holds one file's samples at a time: at most :data:`~qitcore.entropy.MAX_SAMPLES`
bytes and the assessment's working memory (see :mod:`qitcore.entropy`).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from . import _core, _validate, entropy
from .entropy import IidResult, NonIidResult
from .errors import ClusterError, InvalidArgumentError, InvalidTypeError, QitError, SampleFileError, os_reason

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["ClusterError", "FileAssessment", "Track", "assess_files", "connect", "local_cluster"]

Track = Literal["non-iid", "iid", "both"]
_TRACKS = ("non-iid", "iid", "both")
INSTALL = "pip install 'qitcore[dask]'"


@dataclass(frozen=True)
class FileAssessment:
    """One file's assessment.

    Attributes:
        path: the path as given.
        size: the samples read (one a byte: the file's size in bytes, or the block's with a
            ``subset``); 0 when they could not be read.
        sha256: SHA-256 of the samples assessed (hex), or ``None`` when they could not be read.
        non_iid: the non-IID track's result, when that track ran.
        iid: the IID track's result, when that track ran.
        seconds: wall time of reading and assessing the file where it ran.
        error: why the file was not assessed (its path not repeated), or ``None``.
        subset: ``(index, count)`` when block ``index`` of ``count`` samples was assessed
            (``assess_files(subset=)``, ``--subset``), ``None`` for the whole file.
    """

    path: str
    size: int
    sha256: str | None
    non_iid: NonIidResult | None
    iid: IidResult | None
    seconds: float
    error: str | None = None
    subset: tuple[int, int] | None = None

    @property
    def ok(self) -> bool:
        """Whether the file was assessed."""
        return self.error is None

    @property
    def bits_per_symbol(self) -> int | None:
        """The bits per sample the assessment used, or ``None`` when it did not run."""
        result = self.non_iid or self.iid
        return None if result is None else result.bits_per_symbol


#: What the runs yield: (the file's index in the input, its record, its report page or None).
_Results = Generator[tuple[int, "FileAssessment", str | None], None, None]


@dataclass(frozen=True)
class _Options:
    """What every file's task is given (small: it travels with each task)."""

    track: Track
    bits_per_symbol: int | None
    permutations: int
    seed: int | None
    truncate_bitstring: bool
    report: bool
    subset: tuple[int, int] | None = None


def _assess_one(path: str, shown: str, options: _Options) -> tuple[FileAssessment, str | None]:
    """Reads and assesses one file where the task runs (a worker, or this process), and, with
    ``options.report``, makes its HTML report there too, since the report's plots need the samples
    and only the worker holds them."""
    start = time.perf_counter()
    sha256: str | None = None
    size = 0
    try:
        data = entropy.read_samples(path, subset=options.subset)
        if options.subset is not None and len(data) < options.subset[1]:
            # As NIST's -l: a whole block, or no assessment (a short one would not compare).
            index, count = options.subset
            raise SampleFileError(
                f"subset {index},{count}: the block ends past the end of the file ({index * count + len(data)} samples)"
            )
        size = len(data)
        sha256 = entropy.sha256_hex(data)
        non_iid = iid = None
        if options.track != "iid":
            non_iid = entropy.assess_non_iid(
                data, bits_per_symbol=options.bits_per_symbol, truncate_bitstring=options.truncate_bitstring
            )
        if options.track != "non-iid":
            iid = entropy.assess_iid(
                data, bits_per_symbol=options.bits_per_symbol, permutations=options.permutations, seed=options.seed
            )
        record = FileAssessment(shown, size, sha256, non_iid, iid, time.perf_counter() - start, subset=options.subset)
        page = None
        if options.report:
            from .report.html import html_report

            bits = record.bits_per_symbol
            assert bits is not None  # a track ran
            page = html_report(data, bits, non_iid=non_iid, iid=iid, filename=shown, sha256=sha256)
        return record, page
    except QitError as exc:
        # The file's own problem: recorded, so that the other files' results are kept.
        # Its samples are the API's ``data``: the record names the file already.
        message = str(exc).removeprefix(f"{path}: ").removeprefix("data: ")
        seconds = time.perf_counter() - start
        return FileAssessment(shown, size, sha256, None, None, seconds, message, options.subset), None


def _check(
    paths: Iterable[str | os.PathLike[str]],
    track: str,
    bits_per_symbol: int | None,
    permutations: int,
    seed: int | None,
    truncate_bitstring: bool,
    jobs: int,
    progress: Any,
    report: bool,
    subset: Sequence[int] | None = None,
) -> tuple[list[str], _Options, int]:
    if isinstance(paths, (str, bytes, os.PathLike)):
        raise InvalidTypeError(f"paths: expected a sequence of paths, got one {type(paths).__name__}")
    shown: list[str] = []
    try:
        items = list(paths)
    except TypeError:
        raise InvalidTypeError(f"paths: expected a sequence of paths, got {type(paths).__name__}") from None
    for p in items:
        shown.append(_validate.path("paths", p))
    if not shown:
        raise InvalidArgumentError("paths: no file to assess")
    track = _validate.choice("track", track, _TRACKS)
    truncate_bitstring = _validate.flag("truncate_bitstring", truncate_bitstring)
    if bits_per_symbol is not None:
        bits_per_symbol = _validate.integer("bits_per_symbol", bits_per_symbol, minimum=1, maximum=8)
    permutations = _validate.integer("permutations", permutations, minimum=1)
    if seed is not None:
        seed = _validate.integer("seed", seed, minimum=0, maximum=2**64 - 1)
    # Each worker may hold a whole assessment (up to 2^26 samples and some 20 bytes a sample of
    # work space): far more workers than cores would only add up memory.
    jobs = _validate.integer("jobs", jobs, minimum=1, maximum=max_jobs())
    if progress is not None and not callable(progress):
        raise InvalidTypeError(f"progress: expected a callable, got {type(progress).__name__}")
    block: tuple[int, int] | None = None
    if subset is not None:
        if not isinstance(subset, (tuple, list)) or len(subset) != 2:
            raise InvalidArgumentError(f"subset: expected (index, count), got {subset!r}")
        block = (
            _validate.integer("subset index", subset[0], minimum=0),
            _validate.integer("subset count", subset[1], minimum=1, maximum=entropy.MAX_SAMPLES),
        )
    options = _Options(track, bits_per_symbol, permutations, seed, bool(truncate_bitstring), report, block)  # type: ignore[arg-type]
    return shown, options, jobs


def max_jobs() -> int:
    """The most local workers ``jobs`` takes: four per core of this machine."""
    return 4 * (os.cpu_count() or 1)


def _dask() -> Any:
    try:
        import distributed
    except ImportError:
        raise ClusterError(
            f"running on Dask needs the distributed package, part of qitcore's dask extra: {INSTALL}"
        ) from None
    return distributed


def _local(paths: list[str], options: _Options) -> _Results:
    for i, shown in enumerate(paths):
        record, page = _assess_one(shown, shown, options)
        yield i, record, page


def _on_cluster(client: Any, paths: list[str], options: _Options) -> _Results:
    distributed = _dask()
    if not isinstance(client, distributed.Client):
        raise InvalidTypeError(f"client: expected a distributed.Client, got {type(client).__name__}")
    # Absolute paths: a worker's current folder is not the caller's. pure=False: the same file
    # twice is two tasks (two IID runs with seeds of their own when no seed is given).
    futures = client.map(
        _assess_one, [os.path.abspath(p) for p in paths], paths, options=options, pure=False, retries=0
    )
    where = {future.key: i for i, future in enumerate(futures)}
    done = False
    try:
        for future in distributed.as_completed(futures):
            i = where[future.key]
            try:
                record, page = future.result()
            except Exception as exc:
                # Every QitError of the file's own was recorded by the task: this is the cluster's.
                raise ClusterError(
                    f"{paths[i]}: its task failed on the Dask cluster: {type(exc).__name__}: {exc}"
                ) from exc
            # The result is ours now: the cluster can forget it.
            future.release()
            yield i, record, page
        done = True
    finally:
        if not done:
            # Ctrl-C, an error, or a caller that stopped early: nothing more is wanted.
            client.cancel(futures, force=True)


def _run(paths: list[str], options: _Options, client: Client | None, jobs: int) -> _Results:
    """``(input index, record, report page or None)`` for each file, in the order they finish."""
    if client is not None:
        yield from _on_cluster(client, paths, options)
        return
    # More workers than files would only take memory.
    jobs = min(jobs, len(paths))
    if jobs == 1:
        yield from _local(paths, options)
        return
    distributed = _dask()
    cluster = None
    try:
        with _interrupt_after():
            try:
                cluster = local_cluster(jobs)
            except (OSError, RuntimeError) as exc:
                # No process or port to be had (limits, a sandbox): the machine's to fix, said as such.
                raise ClusterError(
                    f"jobs: cannot start a local Dask cluster of {jobs} workers: {os_reason(exc)}"
                ) from exc
        with distributed.Client(cluster) as local:
            yield from _on_cluster(local, paths, options)
    finally:
        if cluster is not None:
            cluster.close()


@contextlib.contextmanager
def _interrupt_after() -> Generator[None]:
    """Ctrl-C during the block is raised when the block ends (in the main thread; elsewhere the
    block runs as is); a second one is raised at once. A LocalCluster interrupted while its
    workers start is left half made: it cannot be closed, and Dask's exit handler prints an
    AssertionError. Starting takes seconds."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or (
        signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    interrupted: list[int] = []

    def defer(signum: int, frame: object) -> None:
        if interrupted:
            raise KeyboardInterrupt  # a second Ctrl-C: the user will not wait
        interrupted.append(signum)

    previous = signal.signal(signal.SIGINT, defer)
    try:
        yield
    except Exception:
        # A terminal's Ctrl-C reaches the starting workers too, and the start then fails: the
        # user's interrupt is what happened, not the failure it caused.
        if interrupted:
            raise KeyboardInterrupt from None
        raise
    finally:
        signal.signal(signal.SIGINT, previous)
    if interrupted:
        raise KeyboardInterrupt


def local_cluster(
    workers: int, *, threads: int | None = None, log_level: int | None = None, secure: bool = True
) -> Any:
    """The ``distributed.LocalCluster`` that ``jobs=N`` starts: ``workers`` single-threaded worker
    processes on 127.0.0.1, no dashboard (Dask's HTTP endpoints on any free loopback port, leaving
    8787 to the user's own clusters), the core's threads shared out among the workers (``threads``
    each; by default the machine's cores divided among them) so that N workers do not each start a
    thread per core. Close it after use (it is a context manager). Its workers start with SIGINT
    blocked, for life: a terminal's Ctrl-C reaches this process, which closes the cluster, and not
    each worker.

    With ``secure`` (the default) the cluster speaks TLS with credentials made for it alone
    (Dask's ``Security.temporary``): its ports are on the loopback, where any local user could
    otherwise connect and run code on the workers as the user who started them.

    Raises:
        ClusterError: Dask is not installed, or ``secure`` and the cryptography package is not.
    """
    import logging

    distributed = _dask()
    if secure:
        try:
            import cryptography  # noqa: F401  # Security.temporary makes its certificates with it
        except ImportError:
            raise ClusterError(
                f"a local Dask cluster's credentials need the cryptography package, part of qitcore's dask extra: "
                f"{INSTALL}"
            ) from None
    each = threads if threads is not None else max(1, (os.cpu_count() or 1) // workers)
    return _without_ctrl_c(
        lambda: distributed.LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            silence_logs=logging.ERROR if log_level is None else log_level,
            env={"RAYON_NUM_THREADS": str(each)},
            security=True if secure else None,
        )
    )


def _without_ctrl_c(start: Callable[[], Any]) -> Any:
    """``start()`` run in a thread that blocks SIGINT, waited for here. The threads it starts (Dask's
    event loop) and the processes they spawn (the workers) inherit the blocked signal, so a
    terminal's Ctrl-C, which goes to the whole foreground process group, reaches this process
    alone: the workers are this process's to stop (it closes the cluster), and a worker
    interrupted while it imports printed a traceback each. Where signals cannot be blocked
    (not POSIX) ``start`` runs here."""
    import signal
    import threading

    if not hasattr(signal, "pthread_sigmask"):
        return start()
    outcome: list[Any] = []
    failure: list[BaseException] = []

    def run() -> None:
        from multiprocessing import resource_tracker

        try:
            # Started first: starting it unblocks SIGINT in the thread that starts it.
            resource_tracker.ensure_running()
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            outcome.append(start())
        except BaseException as exc:  # raised in the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=run, name="qitcore-cluster-start", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.1)  # the caller's thread stays interruptible meanwhile
    if failure:
        raise failure[0]
    return outcome[0]


def connect(address: str, *, timeout: float = 10.0) -> Client:
    """A ``distributed.Client`` of the Dask scheduler at ``address`` (``tcp://HOST:PORT``).

    Raises:
        ClusterError: Dask is not installed, or no scheduler answered within ``timeout`` seconds,
            or it has no worker and none joined within that time.
    """
    distributed = _dask()
    try:
        client: Client = distributed.Client(address, timeout=timeout)
    except (OSError, ValueError, TypeError) as exc:
        # TimeoutError and refused connections are OSErrors; a malformed address a ValueError or
        # TypeError, depending on where Dask's parser stops.
        raise ClusterError(f"scheduler {address}: cannot connect: {os_reason(exc)}") from None
    try:
        # A scheduler without workers would take the work and never do it.
        client.wait_for_workers(1, timeout=timeout)
    except (OSError, TimeoutError) as exc:
        client.close()  # type: ignore[no-untyped-call]
        raise ClusterError(f"scheduler {address}: no worker joined it within {timeout:g} s") from exc
    return client


def assess_files(
    paths: Sequence[str | os.PathLike[str]],
    *,
    track: Track = "non-iid",
    bits_per_symbol: int | None = None,
    permutations: int = _core.DEFAULT_PERMUTATIONS,
    seed: int | None = None,
    truncate_bitstring: bool = False,
    subset: Sequence[int] | None = None,
    client: Client | None = None,
    jobs: int = 1,
    progress: Callable[[int, int], object] | None = None,
) -> list[FileAssessment]:
    """Assesses each sample file (one sample a byte) and returns one record per file, in input order.

    Args:
        paths: the files. On a cluster, relative paths are made absolute here: the workers must
            see the same files at the same paths (a shared file system).
        track: ``"non-iid"`` (SP 800-90B §6.3), ``"iid"`` (§5) or ``"both"``.
        bits_per_symbol: 1 to 8 for every file; by default each file's widest sample decides.
        permutations: IID: the most permutations per file.
        seed: IID: one seed for every file's permutations (reproducible); by default each file's
            run draws its own from the OS CSPRNG (reported in its result).
        truncate_bitstring: non-IID: assess only 1,000,000 bits of each bit string (NIST's ``-t``).
        subset: ``(index, count)``: assess block ``index`` of ``count`` samples of each file (NIST's
            ``-l``), reading only that block, so that captures past the 2^26 samples one assessment
            takes can be assessed; a file that ends before the block does is an error record.
        client: a ``distributed.Client``: the files are assessed on its cluster.
        jobs: without a client, ``1`` assesses the files here one after the other (Dask is not
            imported); ``N > 1`` starts a ``distributed.LocalCluster`` of N single-threaded worker
            processes for this call and closes it before returning.
        progress: called as ``progress(done, total)`` here each time a file is finished.

    Ctrl-C (``KeyboardInterrupt``) cancels the files not yet assessed, closes a cluster this call
    started, and is raised. In this process, the IID track stops within a batch of permutations; a
    non-IID run ends first (seconds).

    Raises:
        InvalidArgumentError: no path, or ``track``, ``bits_per_symbol``, ``permutations``,
            ``seed``, ``subset`` or ``jobs`` out of range.
        InvalidArgumentError: ``jobs > 1`` with a ``client``.
        InvalidTypeError: ``paths`` is one path rather than a sequence, or holds something else;
            ``client`` is not a ``distributed.Client``.
        ClusterError: Dask is needed (``client`` or ``jobs > 1``) and not installed, or a task
            failed on the cluster for a reason that is not its file's (the message names the file).
    """
    shown, options, jobs = _check(
        paths, track, bits_per_symbol, permutations, seed, truncate_bitstring, jobs, progress, False, subset
    )
    if client is not None and jobs > 1:
        raise InvalidArgumentError(f"jobs: {jobs} local workers asked for with a client; its cluster's workers run")
    records: list[FileAssessment | None] = [None] * len(shown)
    # closing(): an exception raised here (Ctrl-C between files, a failing progress callback)
    # cancels the cluster's work and closes a cluster this call started, now rather than when the
    # generator is collected.
    with contextlib.closing(_run(shown, options, client, jobs)) as results:
        for done, (i, record, _) in enumerate(results, 1):
            records[i] = record
            if progress is not None:
                progress(done, len(shown))
    missing = [shown[i] for i, r in enumerate(records) if r is None]
    if missing:  # pragma: no cover - every task yields once or raises
        raise ClusterError(f"{missing[0]}: no result came back ({len(missing)} files)")
    return [r for r in records if r is not None]
