"""extract_file against the in-memory extractors and the stream pipeline: the same bits out for
every method, input format, size and chunking; atomic output; the seed's file."""

from __future__ import annotations

import errno
import os
import pickle
import stat
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qitcore import _core
from qitcore.errors import InvalidArgumentError, InvalidLengthError, QitError, SampleFileError
from qitcore.extract import ExtractResult, ModifiedToeplitz, Toeplitz, extract_file, hash_condition
from qitcore.report import files

RNG = np.random.default_rng(20261204)


def naive_bits(samples: np.ndarray, bits: int, bitorder: str) -> tuple[bytes, int]:
    """Each sample's low ``bits`` bits, most significant first, one list element per bit, packed:
    ``(packed bytes, number of bits)``."""
    stream = [(int(s) >> k) & 1 for s in samples for k in range(bits - 1, -1, -1)]
    return np.packbits(np.array(stream, dtype=np.uint8), bitorder=bitorder).tobytes(), len(stream)


def expected(method: str, data: bytes, nbits: int, n: int, m: int, seed: bytes | None, bitorder: str) -> bytes:
    """The in-memory extractor on the whole blocks of ``nbits`` packed bits."""
    used = nbits // n * n
    head = data[: -(-used // 8)]
    if method.startswith("sha"):
        return bytes(hash_condition(head, n // 8, function=method))  # type: ignore[arg-type]
    cls = Toeplitz if method == "toeplitz" else ModifiedToeplitz
    return bytes(cls(n, m, seed, bitorder=bitorder).hash(head, nbits=used))  # type: ignore[arg-type]


def run(tmp_path: Path, data: bytes, **options: Any) -> tuple[ExtractResult, bytes, bytes | None]:
    src, dst = tmp_path / "in", tmp_path / "out"
    src.write_bytes(data)
    for leftover in (dst, tmp_path / "out.seed"):
        leftover.unlink(missing_ok=True)
    result = extract_file(src, dst, **options)
    seed = Path(result.seed_file).read_bytes() if result.seed_file else None
    return result, dst.read_bytes(), seed


# (method, n, m): block sizes on and off byte boundaries, m == n for modified Toeplitz (no seed).
SHAPES = [
    ("toeplitz", 64, 40),
    ("toeplitz", 4096, 3456),
    ("toeplitz", 1001, 333),
    ("modified-toeplitz", 96, 61),
    ("modified-toeplitz", 50, 50),
    ("sha256", 512, None),
    ("sha3-256", 8, None),
]


@pytest.mark.parametrize(("method", "n", "m"), SHAPES)
@pytest.mark.parametrize(
    ("fmt", "bits", "bitorder"),
    [
        ("bits", 8, "big"),
        ("bits", 8, "little"),
        ("samples", 8, "big"),
        ("samples", 4, "little"),
        ("samples", 3, "big"),
        ("samples", 1, "big"),
        ("samples", 2, "big"),
        ("samples", 7, "little"),
    ],
)
def test_the_output_is_the_in_memory_extractors_on_the_whole_blocks(
    tmp_path: Path, method: str, n: int, m: int | None, fmt: str, bits: int, bitorder: str
) -> None:
    per_byte = 8 if fmt == "bits" else bits
    # Chunks of a few groups of blocks: sizes around their boundaries and around the blocks'.
    chunk = max(1, 3 * n // per_byte)
    group = 8 * n // per_byte
    sizes = {0, 1, n // per_byte, n // per_byte + 1, chunk - 1, chunk, chunk + 1, 3 * chunk + group + 5}
    sizes |= {int(x) for x in RNG.integers(1, 6 * chunk + 2 * group, size=4)}
    for size in sorted(sizes):
        data = RNG.integers(0, 1 << per_byte, size=size, dtype=np.uint8)
        if size * per_byte < n:
            # No whole block: an error, and neither output nor fresh seed left.
            with pytest.raises(InvalidLengthError, match="fewer than one block"):
                run(tmp_path, data.tobytes(), method=method, n=n, m=m, input_format=fmt, bits_per_sample=bits)
            assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]
            continue
        result, out, seed = run(
            tmp_path,
            data.tobytes(),
            method=method,
            n=n,
            m=m,
            input_format=fmt,
            bits_per_sample=bits,
            bitorder=bitorder,
            chunk_bytes=chunk,
        )
        packed, nbits = naive_bits(data, bits, bitorder) if fmt == "samples" else (data.tobytes(), 8 * size)
        assert out == expected(method, packed, nbits, n, result.m, seed, bitorder), (size, fmt, bits)
        assert result.blocks == nbits // n
        assert (result.bits_in, result.dropped_bits) == (result.blocks * n, nbits - result.blocks * n)
        assert result.bytes_read == size and len(out) == -(-result.bits_out // 8)
        assert result.dropped_bytes == size - result.bits_in // per_byte


@pytest.mark.parametrize(("bits", "h"), [(8, 7.0), (4, 3.5), (3, 2.5), (1, 0.9)])
def test_the_output_is_the_stream_pipelines_on_the_same_healthy_samples(tmp_path: Path, bits: int, h: float) -> None:
    # The stream drops the start-up samples (1024) and releases whole APT windows; the file holds
    # exactly the samples it released, and both derive (n, m) from the same min-entropy and ε.
    samples = RNG.integers(0, 1 << bits, size=40_000, dtype=np.uint8)
    n, m = _core.Stream(bits, min_entropy=h).block_shape  # type: ignore[misc]
    seed = Toeplitz(n, m).seed_bytes()
    stream = _core.Stream(bits, min_entropy=h, seed=seed)
    stream.feed_samples(samples)
    stream.end()
    piped = b""
    while chunk := stream.read(1 << 20, timeout=10):
        piped += chunk
    window = 1024 if bits == 1 else 512
    released = samples[1024 : len(samples) // window * window]
    (tmp_path / "seed").write_bytes(seed)
    result, out, _ = run(tmp_path, released.tobytes(), min_entropy=h, bits_per_sample=bits, seed_file=tmp_path / "seed")
    assert (result.n, result.m) == (n, m)
    assert out == piped and len(out) > 0


def test_a_fresh_seed_is_written_private_and_exclusive_and_never_shown(tmp_path: Path) -> None:
    data = os.urandom(50_000)
    result, out, seed = run(tmp_path, data, m=2000)
    assert seed is not None and result.seed_written and result.seed_file == str(tmp_path / "out") + ".seed"
    assert stat.S_IMODE(os.stat(result.seed_file).st_mode) == 0o600
    assert out == expected("toeplitz", data, 8 * len(data), 4096, 2000, seed, "big")
    assert seed.hex() not in repr(result) and repr(seed) not in repr(result)
    assert pickle.loads(pickle.dumps(result)) == result
    # A second run never overwrites the seed the first one wrote, and leaves no output.
    (tmp_path / "out2.seed").write_bytes(b"keep")
    with pytest.raises(SampleFileError) as refused:  # an OSError of errno EEXIST, and a QitError
        extract_file(tmp_path / "in", tmp_path / "out2", m=2000)
    # It says what to do with a seed a killed run left behind.
    assert refused.value.errno == errno.EEXIST and isinstance(refused.value, OSError)
    assert refused.value.filename == str(tmp_path / "out2.seed")
    assert "remove it, or give it as the seed file" in str(refused.value.strerror)
    assert (tmp_path / "out2.seed").read_bytes() == b"keep"
    assert not (tmp_path / "out2").exists()


@pytest.mark.parametrize("when", ["before the rename", "after it"])
def test_an_interrupt_keeps_output_and_fresh_seed_together_or_neither(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    """Ctrl-C while the output is synced (before the rename) leaves neither file; while its folder
    is synced (after the rename) both, never an output whose fresh seed was removed."""
    data = os.urandom(50_000)
    (tmp_path / "in").write_bytes(data)
    real_fsync = os.fsync

    def interrupted(fd: int) -> None:
        folder = stat.S_ISDIR(os.fstat(fd).st_mode)
        if folder == (when == "after it") and not (tmp_path / "out.seed").samefile(f"/proc/self/fd/{fd}"):
            raise KeyboardInterrupt
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        extract_file(tmp_path / "in", tmp_path / "out", m=2000)
    monkeypatch.undo()
    left = sorted(p.name for p in tmp_path.iterdir())
    if when == "before the rename":
        assert left == ["in"]
    else:
        assert left == ["in", "out", "out.seed"]
        seed = (tmp_path / "out.seed").read_bytes()
        assert (tmp_path / "out").read_bytes() == expected("toeplitz", data, 8 * len(data), 4096, 2000, seed, "big")


def test_a_seed_file_is_read_and_checked(tmp_path: Path) -> None:
    data = os.urandom(9000)
    hasher = ModifiedToeplitz(1000, 700, bitorder="little")
    (tmp_path / "key").write_bytes(hasher.seed_bytes())
    result, out, _ = run(
        tmp_path,
        data,
        method="modified-toeplitz",
        n=1000,
        m=700,
        input_format="bits",
        bitorder="little",
        seed_file=tmp_path / "key",
    )
    assert not result.seed_written and not (tmp_path / "out.seed").exists()
    assert out == hasher.hash(data[: result.bits_in // 8], nbits=result.bits_in)
    (tmp_path / "key").write_bytes(hasher.seed_bytes() + b"\0")
    with pytest.raises(InvalidLengthError, match="seed"):
        run(tmp_path, data, method="modified-toeplitz", n=1000, m=700, seed_file=tmp_path / "key")
    assert not (tmp_path / "out").exists()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in ("in", "key"))


def test_a_failure_midway_leaves_no_output_and_no_fresh_seed(tmp_path: Path) -> None:
    samples = RNG.integers(0, 16, size=100_000, dtype=np.uint8)
    samples[90_000] = 16  # wider than 4 bits, in a late chunk: earlier chunks are written first
    (tmp_path / "in").write_bytes(samples.tobytes())
    with pytest.raises(InvalidArgumentError, match="offset 90000"):
        extract_file(tmp_path / "in", tmp_path / "out", m=100, bits_per_sample=4, chunk_bytes=4096)
    assert _leftovers(tmp_path) == []


def test_file_failures_are_qit_errors_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "in").write_bytes(os.urandom(1 << 12))
    for kwargs, missing in (({"seed_file": tmp_path / "no-seed"}, "no-seed"), ({}, "no-input")):
        src = tmp_path / ("no-input" if missing == "no-input" else "in")
        with pytest.raises(SampleFileError) as caught:
            extract_file(src, tmp_path / "out", m=64, **kwargs)  # type: ignore[arg-type]
        assert caught.value.errno == errno.ENOENT and str(caught.value.filename).endswith(missing)
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("change", ["shrinks", "grows"])
def test_an_input_changed_while_it_is_read_leaves_no_output_and_no_fresh_seed(tmp_path: Path, change: str) -> None:
    """A regular file cut short (or lengthened) after its first chunk: refused once read, not
    reported as a whole extraction of fewer blocks; no output, no seed."""
    source = tmp_path / "in"
    source.write_bytes(os.urandom(1 << 20))

    def meddle(done: int, total: int | None) -> None:
        if done == 1 << 16:
            if change == "shrinks":
                os.truncate(source, 1 << 18)
            else:
                with open(source, "ab") as f:
                    f.write(os.urandom(1 << 16))

    with pytest.raises(SampleFileError, match="was it changed"):
        extract_file(source, tmp_path / "out", m=64, chunk_bytes=1 << 16, progress=meddle)
    assert _leftovers(tmp_path) == []


def test_ctrl_c_leaves_no_output_and_no_fresh_seed(tmp_path: Path) -> None:
    (tmp_path / "in").write_bytes(os.urandom(1 << 20))
    calls = []

    def interrupt(done: int, total: int | None) -> None:
        calls.append((done, total))
        if len(calls) == 3:
            assert _leftovers(tmp_path) != []  # a temporary output and the seed exist by now
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        extract_file(tmp_path / "in", tmp_path / "out", m=64, chunk_bytes=1 << 16, progress=interrupt)
    assert _leftovers(tmp_path) == []
    assert calls == [(k << 16, 1 << 20) for k in (1, 2, 3)]


def test_a_fifo_is_read_to_its_end(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    data = os.urandom(300_001)

    def writer() -> None:
        with open(fifo, "wb", buffering=0) as f:
            for i in range(0, len(data), 7777):  # short writes: the reader sees short reads
                f.write(data[i : i + 7777])

    thread = threading.Thread(target=writer)
    thread.start()
    seen: list[int | None] = []
    result = extract_file(
        fifo, tmp_path / "out", n=512, m=300, input_format="bits", progress=lambda d, t: seen.append(t)
    )
    thread.join()
    seed = (tmp_path / "out.seed").read_bytes()
    assert (tmp_path / "out").read_bytes() == expected("toeplitz", data, 8 * len(data), 512, 300, seed, "big")
    assert result.bytes_read == len(data) and set(seen) == {None}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"m": 10, "min_entropy": 7.0}, "either m"),
        ({}, "either m"),
        ({"m": 10, "eps": 1e-9}, "eps"),
        ({"min_entropy": 9.0}, "min_entropy"),
        ({"min_entropy": 0.5, "input_format": "bits"}, None),
        ({"min_entropy": 1.5, "input_format": "bits"}, "min_entropy"),
        ({"min_entropy": 0.01, "n": 64}, "no output"),
        ({"method": "sha256", "m": 256}, "256 bits"),
        ({"method": "sha256", "n": 12}, "whole bytes"),
        ({"method": "sha3-256", "save_seed": "x"}, "no seed"),
        ({"method": "md5", "m": 1}, "method"),
        ({"m": 10, "input_format": "bits", "bits_per_sample": 4}, "bits_per_sample"),
        ({"m": 10, "bits_per_sample": 9}, "bits_per_sample"),
        ({"m": 5000}, "m"),
        ({"m": 10, "seed_file": "a", "save_seed": "b"}, "save_seed"),
        ({"m": 10, "chunk_bytes": 0}, "chunk_bytes"),
    ],
)
def test_bad_options_are_refused_by_name_before_any_output(
    tmp_path: Path, options: dict[str, Any], message: str | None
) -> None:
    (tmp_path / "in").write_bytes(os.urandom(1000))
    if message is None:  # the control: a valid variant of the same call
        extract_file(tmp_path / "in", tmp_path / "out", **options)
        return
    with pytest.raises(QitError, match=message):
        extract_file(tmp_path / "in", tmp_path / "out", **options)
    assert _leftovers(tmp_path) == []


def test_the_output_and_the_seed_file_may_not_be_the_input(tmp_path: Path) -> None:
    (tmp_path / "in").write_bytes(os.urandom(1000))
    with pytest.raises(InvalidArgumentError, match="dst"):
        extract_file(tmp_path / "in", tmp_path / "in", m=10)
    with pytest.raises(InvalidArgumentError, match="folder"):
        extract_file(tmp_path / "in", tmp_path / "nowhere" / "out", m=10)
    (tmp_path / "key").write_bytes(Toeplitz(4096, 10).seed_bytes())
    with pytest.raises(InvalidArgumentError, match="^seed_file: .* is the output"):
        extract_file(tmp_path / "in", tmp_path / "key", m=10, seed_file=tmp_path / "key")
    with pytest.raises(InvalidArgumentError, match="^save_seed: .* is the input"):
        extract_file(tmp_path / "in", tmp_path / "out", m=10, save_seed=tmp_path / "in")
    assert (tmp_path / "in").stat().st_size == 1000 and _leftovers(tmp_path) == []


@pytest.mark.skipif(
    not files._WRITE_BEHIND, reason="write-behind asks Linux's POSIX_FADV_DONTNEED; other systems skip it"
)
def test_a_file_output_goes_to_disk_chunk_by_chunk_and_a_special_file_is_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each chunk's output is handed to the disk once written, so the final sync waits for little:
    the ranges asked for lie within what was written by then and together cover the whole output,
    one call a chunk. /dev/null is not asked about; a refusal of the advice changes nothing."""
    calls: list[tuple[int, int, int]] = []
    real = os.posix_fadvise

    def record(fd: int, offset: int, length: int, advice: int) -> None:
        if advice == os.POSIX_FADV_DONTNEED:
            calls.append((offset, length, os.fstat(fd).st_size))
        real(fd, offset, length, advice)

    monkeypatch.setattr(os, "posix_fadvise", record)
    chunk = 1 << 15
    data = RNG.integers(0, 256, size=10 * chunk + 123, dtype=np.uint8).tobytes()
    result, out, seed = run(tmp_path, data, n=4096, m=1024, chunk_bytes=chunk)
    assert out == expected("toeplitz", data, 8 * len(data), 4096, 1024, seed, "big")
    assert len(calls) == -(-(len(data) // 512 * 512) // chunk)  # the chunks that hold a whole block
    covered = np.zeros(len(out), dtype=bool)
    for offset, length, size_then in calls:
        assert offset >= 0 and offset + length <= size_then
        covered[offset : offset + length] = True
    assert covered.all()

    calls.clear()
    (tmp_path / "in").write_bytes(data)
    extract_file(tmp_path / "in", "/dev/null", n=4096, m=1024, seed_file=tmp_path / "out.seed", chunk_bytes=chunk)
    assert calls == []

    def refuse(fd: int, offset: int, length: int, advice: int) -> None:
        if advice == os.POSIX_FADV_DONTNEED:
            raise OSError(22, "Invalid argument")
        real(fd, offset, length, advice)

    monkeypatch.setattr(os, "posix_fadvise", refuse)
    again = extract_file(
        tmp_path / "in", tmp_path / "again", n=4096, m=1024, seed_file=tmp_path / "out.seed", chunk_bytes=chunk
    )
    assert (tmp_path / "again").read_bytes() == out and again.blocks == result.blocks
