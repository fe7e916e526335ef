"""Extraction of one large file on a Dask cluster, what :func:`~qitcore.extract_file.extract_file`
does when it is given a ``client``.

The input is cut at block boundaries into ranges of whole groups of blocks (a group starts on a
whole input byte, sample and output byte), and each range has a fixed place in the output: ``m``
bits for each ``n``. So every worker reads its own range of the input from the shared file system
and writes that range's output at its own offset into the one temporary file beside the
destination, which the caller renames into place once every range is written and synced (and
removes on any failure). The result is the single-process run's, bit for bit. A range written
twice (Dask runs a task again when its worker died) is the same bytes at the same place, so
retries are harmless.

The seed never travels over the cluster's connections: a task carries paths and numbers, and each
worker reads the seed from the seed file (a fresh seed is written there, mode 0600, before any
task starts).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _validate
from . import extract_file as single
from .archive import _dask
from .errors import ClusterError, InvalidTypeError, QitError, SampleFileError
from .extract import ModifiedToeplitz, Toeplitz
from .report.files import start_writeback

__all__ = ["DEFAULT_TASK_BYTES", "check_client", "extract_on_cluster"]

#: Input bytes per task by default: large enough that a task's fixed costs (scheduling, opening
#: the files, reading the seed) are small against its hashing, small enough that the workers share
#: out a file of a few GiB evenly and a lost worker's range is quick to redo.
DEFAULT_TASK_BYTES = 256 << 20


@dataclass(frozen=True)
class _Range:
    """One task: a range of blocks of the input (paths and numbers only, never the seed)."""

    src: str
    temp: str
    seed_file: str | None
    kind: str
    plan: Any
    first: int
    blocks: int
    chunk_blocks: int


def check_client(client: Any, task_bytes: int | None) -> int:
    """Validates the cluster arguments before anything is written; returns the bytes per task."""
    distributed = _dask()
    if not isinstance(client, distributed.Client):
        raise InvalidTypeError(f"client: expected a distributed.Client, got {type(client).__name__}")
    if task_bytes is None:
        return DEFAULT_TASK_BYTES
    return _validate.integer("task_bytes", task_bytes, minimum=1)


def _hasher(task: _Range) -> Any:
    if task.seed_file is None:
        return None  # the SHA conditioners
    cls = Toeplitz if task.kind == "toeplitz" else ModifiedToeplitz
    seed = single._read_seed(task.seed_file, cls, task.plan.n, task.plan.m)
    return cls(task.plan.n, task.plan.m, seed, bitorder=task.plan.bitorder)


def _hash_range(task: _Range) -> int:
    """Runs on a worker: hashes the range a chunk at a time and writes each chunk's output at its
    place in the temporary file. Returns the input bytes hashed."""
    plan = task.plan
    hasher = _hasher(task)
    start = task.first * plan.n // plan.unit_bits
    buffer = bytearray(task.chunk_blocks * plan.n // plan.unit_bits)
    array = np.frombuffer(buffer, dtype=np.uint8)
    done = 0
    with open(task.src, "rb", buffering=0) as source, open(task.temp, "r+b", buffering=0) as out:
        source.seek(start)
        while done < task.blocks:
            count = min(task.chunk_blocks, task.blocks - done)
            want = -(-count * plan.n // plan.unit_bits)  # the last range may end inside a byte
            offset = (task.first + done) * plan.n // plan.unit_bits
            if single._read_full(source, memoryview(buffer)[:want]) < want:
                raise SampleFileError(f"{task.src}: shorter than when the work was divided; was it changed?")
            data = single._as_bits(array[:want], plan, offset)
            output = memoryview(bytearray(single._output_bytes(hasher, count)))
            single._hash(task.kind, hasher, plan, data, count, output)
            _write_all(out, output, (task.first + done) * plan.m // 8)
            start_writeback(out, (task.first + done) * plan.m // 8, len(output))
            done += count
        os.fsync(out.fileno())
    return int(task.blocks * plan.n // plan.unit_bits)


def _write_all(out: Any, data: memoryview, offset: int) -> None:
    """Writes all of ``data`` at ``offset``: a raw write may take less (a signal, a network file
    system, a size limit), and a short write left alone would be a hole in the output."""
    out.seek(offset)
    while data:
        written = out.write(data)
        if not written:
            raise OSError(f"{out.name}: no bytes written at offset {offset}")
        data = data[written:]


def extract_on_cluster(
    client: Any,
    src: str,
    temp: str,
    seed_file: str | None,
    kind: str,
    plan: Any,
    total: int,
    chunk_blocks: int,
    task_bytes: int | None,
    progress: Callable[[int, int | None], None] | None,
) -> tuple[int, int]:
    """Hashes the whole blocks of ``src`` (``total`` bytes) into ``temp`` on ``client``'s workers;
    returns ``(blocks hashed, input bytes read)`` as the single-process run does."""
    distributed = _dask()
    per_task = max(1, check_client(client, task_bytes) * plan.unit_bits // plan.n // plan.group) * plan.group
    blocks = total * plan.unit_bits // plan.n
    # Absolute paths: a worker's current folder is not ours.
    src, temp = os.path.abspath(src), os.path.abspath(temp)
    seed = None if seed_file is None else os.path.abspath(seed_file)
    ranges = [
        _Range(src, temp, seed, kind, plan, first, min(per_task, blocks - first), min(chunk_blocks, per_task))
        for first in range(0, blocks, per_task)
    ]
    # pure=False: the same range asked for twice is work to do twice, not a cached answer.
    futures = client.map(_hash_range, ranges, pure=False, retries=0)
    done = 0
    finished = False
    try:
        for future in distributed.as_completed(futures):
            try:
                done += future.result()
            except QitError:
                raise  # the input's own problem (a sample too wide), raised as here
            except Exception as exc:
                raise ClusterError(
                    f"src: a range of {src} failed on the Dask cluster: {type(exc).__name__}: {exc}"
                ) from exc
            future.release()
            if progress is not None:
                progress(done, total)
        finished = True
    finally:
        if not finished:
            # Ctrl-C or a failed range: the other ranges are not wanted (their output is removed).
            client.cancel(futures, force=True)
    # Every range wrote its whole output or raised; the size says so too, on any file system.
    size = os.stat(temp).st_size
    if size != -(-blocks * plan.m // 8):
        raise ClusterError(f"src: the cluster's output of {src} holds {size} bytes, not {-(-blocks * plan.m // 8)}")
    return blocks, total
