"""Extraction over a file or FIFO of any size, in constant memory: :func:`extract_file`.

The input is read in chunks of whole blocks, each hashed by the in-memory extractor (which runs
without the GIL, on every core) and written to a temporary file beside the output, renamed into
place only once everything is written and synced. The output is the in-memory extractor's on the
same bits: ``Toeplitz(n, m, seed).hash(bits[:blocks * n])``, whatever the chunking.

How the input becomes bits: ``input_format="bits"`` takes the file as packed bits in ``bitorder``;
``"samples"`` takes one sample per byte in its low ``bits_per_sample`` bits and strings the
samples' bits together, most significant first (the stream pipeline's rule, see
:mod:`qitcore.stream`), packed in ``bitorder``. The bits after the last whole block are dropped
and counted in the result.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import math
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from . import _core, _validate
from .errors import InvalidArgumentError, InvalidLengthError, InvalidTypeError, QitError, SampleFileError
from .extract import ModifiedToeplitz, Toeplitz, output_length
from .report.files import atomic_output, is_special, start_writeback

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["DEFAULT_EPSILON", "ExtractResult", "Method", "extract_file"]

Method = Literal["toeplitz", "modified-toeplitz", "sha256", "sha3-256"]
InputFormat = Literal["samples", "bits"]
METHODS: tuple[str, ...] = ("toeplitz", "modified-toeplitz", "sha256", "sha3-256")

#: ε per output block by default: the stream pipeline's (2^-64).
DEFAULT_EPSILON: float = _core.Stream.DEFAULT_EPSILON
#: Input block bits by default: the stream pipeline's target (rounded up to whole samples and bytes).
DEFAULT_BLOCK_BITS: int = _core.Stream.DEFAULT_BLOCK_BITS
#: Input bytes read per chunk by default. Large enough that each hash call keeps every core busy
#: (the core splits a call into tasks of about 64 KiB) and the per-call overhead is negligible,
#: small enough to stay far below the memory target.
DEFAULT_CHUNK_BYTES = 8 << 20
#: The most input bytes one chunk may hold (``chunk_bytes``, and a group of very large blocks): the
#: memory bound, whatever the file's size.
MAX_CHUNK_BYTES = 256 << 20
_SHA_BITS = 256

# Bit reversal of every byte: packed bits in big order to little order.
_REVERSE = np.array([int(f"{i:08b}"[::-1], 2) for i in range(256)], dtype=np.uint8)


@dataclass(frozen=True)
class ExtractResult:
    """What :func:`extract_file` did. Holds no seed (only where its file is), so it may be logged,
    printed and pickled."""

    method: str
    """``"toeplitz"``, ``"modified-toeplitz"``, ``"sha256"`` or ``"sha3-256"``."""
    n: int
    """Input bits per block."""
    m: int
    """Output bits per block."""
    blocks: int
    """Blocks hashed."""
    bits_in: int
    """Input bits hashed: ``blocks * n``."""
    bits_out: int
    """Output bits written: ``blocks * m`` (the output file has ``ceil(bits_out / 8)`` bytes)."""
    bytes_read: int
    """Input bytes read (samples, for ``input_format="samples"``)."""
    dropped_bits: int
    """Input bits after the last whole block: not hashed."""
    dropped_bytes: int
    """Input bytes not wholly hashed (those holding the dropped bits)."""
    seed_file: str | None
    """The seed's file (read, or written when the seed was fresh); ``None`` for the SHA conditioners."""
    seed_written: bool
    """Whether the seed was drawn from the OS CSPRNG and written to :attr:`seed_file`."""


@dataclass(frozen=True)
class _Plan:
    """The block shape and how a chunk of input becomes packed bits."""

    n: int
    m: int
    unit_bits: int
    """Bits each input byte contributes: 8 for packed bits, ``bits_per_sample`` for samples."""
    samples: bool
    bitorder: _validate.BitOrder
    group: int
    """Blocks per chunk are a multiple of this: chunks then start on whole bytes, whole samples
    and whole output bytes, so that the outputs of successive chunks simply concatenate."""


def _file_errors(fn: Callable[..., ExtractResult]) -> Callable[..., ExtractResult]:
    """``fn`` with its files' failures raised as :class:`SampleFileError` (an ``OSError`` and a
    ``QitError``), naming the file: every failure of qitcore's is a ``QitError``."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> ExtractResult:
        try:
            return fn(*args, **kwargs)
        except OSError as exc:
            if isinstance(exc, QitError):
                raise
            where = f"{exc.filename}: " if exc.filename is not None else ""
            error = SampleFileError(f"{where}{exc.strerror or exc}")
            # What an OSError tells, kept: which error, of which file.
            error.errno, error.strerror, error.filename = exc.errno, exc.strerror, exc.filename
            raise error from exc

    return wrapper


@_file_errors
def extract_file(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    method: Method = "toeplitz",
    n: int | None = None,
    m: int | None = None,
    min_entropy: float | None = None,
    eps: float | None = None,
    input_format: InputFormat = "samples",
    bits_per_sample: int = 8,
    bitorder: _validate.BitOrder = "big",
    seed_file: str | os.PathLike[str] | None = None,
    save_seed: str | os.PathLike[str] | None = None,
    progress: Callable[[int, int | None], None] | None = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    client: Client | None = None,
    task_bytes: int | None = None,
) -> ExtractResult:
    """Extracts a file (or FIFO) of raw samples or packed bits into ``dst``, in constant memory.

    Toeplitz (the default) and modified Toeplitz hashing take ``n``-bit blocks to ``m`` bits
    (:class:`~qitcore.extract.Toeplitz`); SHA-256 and SHA3-256 condition ``n``-bit blocks into
    256 bits each (:func:`~qitcore.extract.hash_condition`). The output is exactly the in-memory
    extractor's on the input's whole blocks; the bits after the last whole block are dropped
    (counted in :attr:`ExtractResult.dropped_bits`). The input is not health-tested here: assess
    it (``qitcore assess``) and test it (``qitcore health``) first.

    Args:
        src: the input, a regular file or a FIFO (read once, front to back).
        dst: the output file; written as a temporary file in its folder, synced, then renamed, so
            that it exists only complete. On any error or Ctrl-C no output (and no fresh seed
            file) is left.
        method: ``"toeplitz"``, ``"modified-toeplitz"``, ``"sha256"`` or ``"sha3-256"``.
        n: input bits per block; by default 4096 rounded up to whole samples and bytes (the
            stream pipeline's block). The SHA conditioners take whole bytes.
        m: output bits per block (Toeplitz kinds); or give ``min_entropy`` instead.
        min_entropy: claimed min-entropy per sample (``input_format="samples"``) or per bit
            (``"bits"``); ``m`` is then the leftover hash lemma's length for ``eps``
            (:func:`~qitcore.extract.output_length`), rounded down to whole bytes, as the stream
            pipeline derives it.
        eps: distance from uniform per output block, with ``min_entropy`` (default ``2**-64``).
        input_format: ``"samples"`` (one sample a byte) or ``"bits"`` (packed bits).
        bits_per_sample: 1 to 8, for samples; every sample must fit.
        bitorder: bit order of the packed input, the seed and the output.
        seed_file: a file holding the seed as :meth:`~qitcore.extract.Toeplitz.seed_bytes` gives
            it. Without it the seed is drawn from the OS CSPRNG and written to ``save_seed``
            (default ``dst + ".seed"``), created exclusively with mode 0600, never overwritten,
            never logged. Keep it secret; it is needed to hash the same way again.
        save_seed: where to write a fresh seed (see ``seed_file``).
        progress: called after each chunk with ``(input bytes read, input size or None)``.
        chunk_bytes: input bytes per read, rounded to whole blocks (memory is a few times this,
            or a few blocks when a block is larger).
        client: a ``distributed.Client`` (qitcore's ``dask`` extra): the input, a regular file, is
            cut at block boundaries into ranges that the cluster's workers hash, each reading its
            own range and writing its output at its own offset (the file system must be shared,
            the paths valid on the workers). The output is the same, bit for bit. The seed reaches
            the workers through the seed file, never over the cluster's connections.
        task_bytes: with ``client``, input bytes per task (default
            :data:`~qitcore.extract_cluster.DEFAULT_TASK_BYTES`), rounded to whole blocks.

    Returns:
        An :class:`ExtractResult`.

    Raises:
        InvalidArgumentError: an option is out of range or contradicts another, ``m`` would be
            0, a sample is wider than ``bits_per_sample`` (its offset named), or ``dst`` or the
            seed file is the input.
        InvalidLengthError: the seed file has the wrong size.
        InvalidTypeError: an option has the wrong type.
        SampleFileError: (an ``OSError``) a file cannot be read or written, changed while it
            was read, or ``save_seed`` exists.
        ClusterError: with ``client``: Dask is not installed, or a range failed on the cluster
            for a reason other than the input (its worker died more often than the scheduler
            allows); no output is left.
    """
    kind = _validate.choice("method", method, METHODS)
    fmt = _validate.choice("input_format", input_format, ("samples", "bits"))
    order = _validate.bitorder(bitorder)
    bits = _validate.integer("bits_per_sample", bits_per_sample, minimum=1, maximum=8)
    if fmt == "bits" and bits != 8:
        raise InvalidArgumentError("bits_per_sample: applies to input_format='samples' only")
    chunk_bytes = _validate.integer("chunk_bytes", chunk_bytes, minimum=1, maximum=MAX_CHUNK_BYTES)
    src, dst = _validate.path("src", src), _validate.path("dst", dst)
    if progress is not None and not callable(progress):
        raise InvalidTypeError(f"progress: expected a callable, got {type(progress).__name__}")
    if seed_file is not None:
        seed_file = _validate.path("seed_file", seed_file)
    if save_seed is not None:
        save_seed = _validate.path("save_seed", save_seed)
    special = is_special(dst)  # a FIFO or device: written in place (refuses a folder)
    if special and client is not None:
        raise InvalidArgumentError(f"dst: {dst} is not a regular file; a cluster's workers write their ranges into one")
    if special and seed_file is None and save_seed is None and not kind.startswith("sha"):
        raise InvalidArgumentError(f"save_seed: {dst} is not a regular file; name a file for the fresh seed")
    if client is not None:
        from .extract_cluster import check_client

        check_client(client, task_bytes)
    unit = bits if fmt == "samples" else 8
    hasher, n, m = _hasher(kind, n, m, min_entropy, eps, unit, fmt, order, seed_file, save_seed)
    seed_path = None
    if hasher is not None:
        seed_path = seed_file if seed_file is not None else (save_seed if save_seed is not None else dst + ".seed")
    _check_paths(src, dst, seed_path, "seed_file" if seed_file is not None else "save_seed")
    plan = _Plan(n=n, m=m, unit_bits=unit, samples=fmt == "samples", bitorder=order, group=_group(n, m, unit))
    blocks_per_chunk = max(1, chunk_bytes * unit // n // plan.group) * plan.group
    with open(src, "rb", buffering=0) as source:
        total = _size(source)
        if client is not None and total is None:
            raise InvalidArgumentError(f"src: {src} is not a regular file; a cluster's workers read ranges of one")
        if total is not None:
            _check_whole_block(src, total * unit, n)
            # No larger buffers than the file needs.
            blocks_per_chunk = min(blocks_per_chunk, -(-total * unit // n // plan.group) * plan.group)
        with (
            _private_seed(seed_path if seed_file is None else None, hasher) as seed,
            atomic_output(dst, durable=True, on_replaced=seed.keep) as (out, temp),
        ):
            if client is None:
                stats = _run(source, out, hasher, kind, plan, blocks_per_chunk, total, progress, temp is not None)
                if total is not None and stats[1] != total:
                    # Leaving here removes the output and a fresh seed: nothing short passes as whole.
                    raise SampleFileError(
                        f"src: {src} held {total} bytes when it was opened and {stats[1]} were read; was it changed?"
                    )
            else:
                from .extract_cluster import extract_on_cluster

                assert total is not None and temp is not None  # a regular file in and out: checked above
                stats = extract_on_cluster(
                    client, src, temp, seed_path, kind, plan, total, blocks_per_chunk, task_bytes, progress
                )
            # A FIFO's length is known only now; leaving here removes the output and a fresh seed.
            _check_whole_block(src, stats[1] * unit, n)
    blocks, read = stats
    used = blocks * n
    return ExtractResult(
        method=kind,
        n=n,
        m=m,
        blocks=blocks,
        bits_in=used,
        bits_out=blocks * m,
        bytes_read=read,
        dropped_bits=read * unit - used,
        dropped_bytes=read - used // unit,
        seed_file=seed_path,
        seed_written=seed.written,
    )


def _hasher(
    kind: str,
    n: int | None,
    m: int | None,
    min_entropy: float | None,
    eps: float | None,
    unit: int,
    fmt: str,
    order: _validate.BitOrder,
    seed_file: Any,
    save_seed: Any,
) -> tuple[Toeplitz | ModifiedToeplitz | None, int, int]:
    """The hash object (``None`` for SHA) and the block shape ``(n, m)``."""
    if n is None:
        n = _pipeline_block(unit if fmt == "samples" else 1)
    n = _validate.integer("n", n, minimum=1, maximum=1 << 32)
    if kind.startswith("sha"):
        for name, value in (("m", m), ("min_entropy", min_entropy), ("eps", eps)):
            if value is not None:
                raise InvalidArgumentError(f"{name}: {kind} outputs 256 bits a block; give only n")
        for name, value in (("seed_file", seed_file), ("save_seed", save_seed)):
            if value is not None:
                raise InvalidArgumentError(f"{name}: {kind} takes no seed")
        if n % 8:
            raise InvalidArgumentError(f"n: {kind} conditions whole bytes, got {n} bits")
        _check_memory(n, _SHA_BITS, unit)
        return None, n, _SHA_BITS
    if seed_file is not None and save_seed is not None:
        raise InvalidArgumentError("save_seed: the seed is read from seed_file; a fresh one is saved only without it")
    if (m is None) == (min_entropy is None):
        raise InvalidArgumentError("m: give either m (output bits per block) or min_entropy, not both or neither")
    if m is not None:
        if eps is not None:
            raise InvalidArgumentError("eps: applies with min_entropy only")
        m = _validate.integer("m", m, minimum=1, maximum=n)
    else:
        h = _validate.real("min_entropy", min_entropy)
        per, word = (unit, "sample") if fmt == "samples" else (1, "bit")
        if not 0 < h <= per:
            raise InvalidArgumentError(f"min_entropy: must lie in (0, {per}] bits per {word}, got {h}")
        e = DEFAULT_EPSILON if eps is None else _validate.real("eps", eps)
        # The stream pipeline's rule: the entropy of the block's samples, whole output bytes.
        m = output_length(n, h * n / per, e, per="block") // 8 * 8
        if m == 0:
            raise InvalidArgumentError(
                f"min_entropy: {n}-bit blocks at {h} bits per {word} and eps = {e:g} leave no output; use larger n"
            )
    _check_memory(n, m, unit)
    cls = Toeplitz if kind == "toeplitz" else ModifiedToeplitz
    if seed_file is None:
        return cls(n, m, bitorder=order), n, m  # the seed comes from the OS CSPRNG
    return cls(n, m, _read_seed(os.fspath(seed_file), cls, n, m), bitorder=order), n, m


def _check_whole_block(src: str, bits: int, n: int) -> None:
    """Refuses an input that holds no whole block: an empty output is no success."""
    if bits < n:
        raise InvalidLengthError(f"src: {src} holds {bits} bits, fewer than one block of n = {n} bits")


def _check_memory(n: int, m: int, unit: int) -> None:
    """Refuses, before the seed is drawn, blocks whose group (the fewest blocks a chunk may hold)
    would not fit the memory bound: the read buffers are two groups' input at least."""
    need = _group(n, m, unit) * n // unit
    if need > MAX_CHUNK_BYTES:
        raise InvalidArgumentError(
            f"n: blocks of {n} bits are read {need // (1 << 20)} MiB at a time, more than the "
            f"{MAX_CHUNK_BYTES >> 20} MiB bound; use smaller blocks (or a multiple of 8 bits for n and m)"
        )


def _pipeline_block(bits: int) -> int:
    """The stream pipeline's block: at least 4096 bits, whole samples and whole bytes."""
    samples = -(-DEFAULT_BLOCK_BITS // bits)
    while samples * bits % 8:
        samples += 1
    return samples * bits


def _read_seed(path: str, cls: Any, n: int, m: int) -> bytes:
    """The seed file's bytes; at most one byte more than a seed is read, whatever the file."""
    expected = -(-cls._seed_length(n, m) // 8)
    with open(path, "rb") as f:
        return f.read(expected + 1)  # one more, so that a longer file is refused by its length


def _group(n: int, m: int, unit: int) -> int:
    """The least number of blocks that fill whole input bytes (or samples) and whole output bytes."""
    whole = math.lcm(8 // math.gcd(n, 8), 8 // math.gcd(m, 8))
    return math.lcm(whole, unit // math.gcd(n, unit))


def _check_paths(src: str, dst: str, seed: str | None, seed_name: str) -> None:
    """Refuses, before any work, an output folder that does not exist and an output or seed file
    that is the input, or a seed file that is the output (``seed_name`` names its option)."""
    if os.path.isdir(dst):
        raise InvalidArgumentError(f"dst: {dst} is a folder")
    folder = os.path.dirname(os.path.abspath(dst))
    if not os.path.isdir(folder):
        raise InvalidArgumentError(f"dst: {dst}: no such folder {folder}")
    for name, path in (("dst", dst), (seed_name, seed)):
        if path is not None and os.path.exists(path) and os.path.exists(src) and os.path.samefile(src, path):
            raise InvalidArgumentError(f"{name}: {path} is the input")
    if seed is not None and os.path.abspath(seed) == os.path.abspath(dst):
        raise InvalidArgumentError(f"{seed_name}: {seed} is the output")


def _size(f: IO[bytes]) -> int | None:
    """The size of a regular file, or ``None`` (a FIFO, a character device)."""
    info = os.fstat(f.fileno())
    if stat.S_ISDIR(info.st_mode):
        raise InvalidArgumentError(f"src: {f.name} is a folder")
    if not stat.S_ISREG(info.st_mode):
        return None
    if hasattr(os, "posix_fadvise"):
        # Read once, front to back: the kernel may read further ahead.
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
    return info.st_size


@dataclass
class _FreshSeed:
    """Whether a fresh seed was written, and whether it is kept whatever happens next."""

    written: bool
    kept: bool = False

    def keep(self) -> None:
        """The output is in place: its seed stays, even if an interrupt comes now."""
        self.kept = True


@contextlib.contextmanager
def _private_seed(path: str | None, hasher: Any) -> Iterator[_FreshSeed]:
    """Writes a fresh seed to ``path`` (created exclusively, mode 0600, synced) when ``path`` is
    given; removes it again if the extraction fails before its output was put in place."""
    if path is None:
        yield _FreshSeed(written=False)
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Most often a seed left by a run killed outright (SIGKILL), which could not remove it.
        raise FileExistsError(
            errno.EEXIST,
            "exists, and a fresh seed never replaces a file; if no output of it was kept (a run "
            "killed outright leaves its seed), remove it, or give it as the seed file to use it",
            path,
        ) from None
    fresh = _FreshSeed(written=True)
    try:
        try:
            view = memoryview(hasher.seed_bytes())
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        yield fresh
    except BaseException:
        if not fresh.kept:
            with contextlib.suppress(OSError):
                os.unlink(path)
        raise


def _read_full(f: IO[bytes], view: memoryview) -> int:
    """Fills ``view`` from ``f`` (a FIFO returns short reads); fewer bytes only at the end."""
    got = 0
    while got < len(view):
        count = f.readinto(view[got:])  # type: ignore[attr-defined]
        if not count:
            break
        got += count
    return got


def _run(
    source: IO[bytes],
    out: IO[bytes],
    hasher: Any,
    kind: str,
    plan: _Plan,
    blocks_per_chunk: int,
    total: int | None,
    progress: Callable[[int, int | None], None] | None,
    write_behind: bool = False,
) -> tuple[int, int]:
    """Reads chunk after chunk on this thread while one worker thread packs, hashes (on every core,
    without the GIL) and writes the chunk before, in order: the reads (a disk, a FIFO) overlap the
    hashing. Two input buffers take turns. Returns ``(blocks hashed, input bytes read)``.
    ``write_behind`` (a regular file, synced at the end) starts each chunk's writeback as soon as
    it is written, so that the disk writes while the next chunk is hashed.

    Only this thread reads, so Ctrl-C (delivered here) interrupts a read that waits on a FIFO; the
    worker never waits on input, so the chunk it holds is finished before the error propagates.
    """
    from concurrent.futures import Future, ThreadPoolExecutor

    chunk_in = blocks_per_chunk * plan.n // plan.unit_bits
    buffers = [bytearray(chunk_in), bytearray(chunk_in)]
    output = memoryview(bytearray(_output_bytes(hasher, blocks_per_chunk)))
    written = [0, 0]  # output bytes written, and those of the chunk before the last

    def work(chunk: npt.NDArray[np.uint8], offset: int) -> int:
        data = _as_bits(chunk, plan, offset)
        count = chunk.size * plan.unit_bits // plan.n
        if count:
            size = _output_bytes(hasher, count)
            _hash(kind, hasher, plan, data, count, output[:size])
            out.write(output[:size])
            if write_behind:
                # The chunk before is on its way to disk by now: dropped from the cache.
                start_writeback(out, written[0] - written[1], written[1] + size)
            written[0] += size
            written[1] = size
        return count

    blocks = read = done = 0
    pending: Future[int] | None = None
    # Leaving the block waits for the worker's chunk (never longer than one chunk's hashing).
    with ThreadPoolExecutor(1, thread_name_prefix="qitcore-extract") as worker:
        turn = 0
        while True:
            got = _read_full(source, memoryview(buffers[turn]))
            if pending is not None:
                blocks += pending.result()
                pending = None
                if progress is not None:
                    progress(done, total)
            if got:
                pending = worker.submit(work, np.frombuffer(buffers[turn], dtype=np.uint8)[:got], read)
                read += got
                done = read
            if got < chunk_in:
                if pending is not None:
                    blocks += pending.result()
                    if progress is not None:
                        progress(done, total)
                return blocks, read
            turn ^= 1


def _output_bytes(hasher: Any, blocks: int) -> int:
    return blocks * (_SHA_BITS // 8) if hasher is None else int(hasher.output_bytes(blocks))


def _hash(kind: str, hasher: Any, plan: _Plan, data: npt.NDArray[np.uint8], blocks: int, out: Any) -> None:
    """Hashes the first ``blocks`` blocks of the packed bits ``data`` into ``out``."""
    used = blocks * plan.n
    data = data[: -(-used // 8)]
    if hasher is None:
        _core.hash_condition(kind, data, plan.n // 8, out)
    else:
        hasher.hash(data, nbits=used, out=out)


def _as_bits(chunk: npt.NDArray[np.uint8], plan: _Plan, offset: int) -> npt.NDArray[np.uint8]:
    """The chunk as packed bits in the plan's bit order (packed input: the chunk itself)."""
    if not plan.samples:
        return chunk
    bits = plan.unit_bits
    if bits < 8:
        wide = np.flatnonzero(chunk >> bits)
        if wide.size:
            at = int(wide[0])
            raise InvalidArgumentError(
                f"src: the sample at offset {offset + at} is {int(chunk[at])}, wider than {bits} bits per sample"
            )
    packed = _pack_samples(chunk, bits)
    return _REVERSE[packed] if plan.bitorder == "little" else packed


def _pack_samples(samples: npt.NDArray[np.uint8], bits: int) -> npt.NDArray[np.uint8]:
    """Samples' low ``bits`` bits, most significant first, packed in big order (the last byte
    padded with zeros)."""
    if bits == 8:
        return samples
    if bits == 1:
        return np.packbits(samples)
    count = samples.size
    if bits in (2, 4):
        per = 8 // bits
        padded = np.zeros(-(-count // per) * per, dtype=np.uint8)
        padded[:count] = samples
        lanes = padded.reshape(-1, per)
        packed = np.zeros(lanes.shape[0], dtype=np.uint8)
        for k in range(per):
            packed |= lanes[:, k] << np.uint8(8 - bits * (k + 1))
        return packed
    # 3, 5, 6, 7 bits: through one byte per bit, a slice of samples at a time to bound memory.
    step = 1 << 20
    parts = [
        np.packbits(np.unpackbits(samples[i : i + step, None], axis=1)[:, 8 - bits :].reshape(-1))
        for i in range(0, count, step)
    ]
    if len(parts) <= 1:
        return parts[0] if parts else np.empty(0, dtype=np.uint8)
    # Slices of 2^20 samples hold whole bytes of bits (2^20 · bits is a multiple of 8).
    return np.concatenate(parts)
