"""Toeplitz hashing against the matrix definition, NumPy's FFT product and randextract."""

from __future__ import annotations

import contextlib
import hashlib
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from qitcore import _core
from qitcore.bits import pack_bits, unpack_bits
from qitcore.errors import InvalidArgumentError, InvalidLengthError, InvalidTypeError, QitError
from qitcore.extract import Toeplitz
from randextract import ToeplitzHashing

from .reference import toeplitz_fft, toeplitz_matrix, toeplitz_naive

ROOT = Path(__file__).resolve().parent.parent


def _random_case(rng: np.random.Generator, n: int, m: int, blocks: int) -> tuple[np.ndarray, np.ndarray]:
    return rng.integers(0, 2, n + m - 1, dtype=np.uint8), rng.integers(0, 2, n * blocks, dtype=np.uint8)


@pytest.mark.parametrize("bitorder", ["big", "little"])
@pytest.mark.parametrize(("n", "m", "blocks"), [(1, 1, 3), (7, 3, 8), (64, 64, 2), (100, 37, 9), (1024, 512, 17)])
def test_blocks_match_the_matrix_definition(backend: str, bitorder: str, n: int, m: int, blocks: int, rng) -> None:
    seed, x = _random_case(rng, n, m, blocks)
    t = Toeplitz(n, m, pack_bits(seed, bitorder=bitorder), bitorder=bitorder)
    result = t.hash(pack_bits(x, bitorder=bitorder), nbits=x.size)
    expect = np.concatenate([toeplitz_naive(seed, x[k * n : (k + 1) * n], m) for k in range(blocks)])
    assert np.array_equal(unpack_bits(result, blocks * m, bitorder=bitorder), expect)


def _whole_word_case(n: int, m: int, blocks: int, bitorder: str) -> tuple[np.ndarray, np.ndarray, bytes]:
    """A seed, blocks and their packed hash from a fixed generator (so a child process can redo it)."""
    seed, x = _random_case(np.random.default_rng(n + blocks), n, m, blocks)
    t = Toeplitz(n, m, pack_bits(seed, bitorder=bitorder), bitorder=bitorder)
    return seed, x, bytes(t.hash(pack_bits(x, bitorder=bitorder)))


WHOLE_WORD_CASES = [(1024, 512, 1100), (4096, 2048, 150), (128, 64, 9000)]


@pytest.mark.parametrize("bitorder", ["big", "little"])
@pytest.mark.parametrize(("n", "m", "blocks"), WHOLE_WORD_CASES)
def test_whole_word_batches_match_the_matrix_product(backend: str, bitorder: str, n: int, m: int, blocks: int) -> None:
    # Whole-word blocks convert their bytes a group at a time and take the aligned kernel; these
    # sizes span several parallel tasks and groups. float32 sums of at most n ones are exact.
    seed, x, packed = _whole_word_case(n, m, blocks, bitorder)
    got = unpack_bits(np.frombuffer(packed, dtype=np.uint8), blocks * m, bitorder=bitorder).reshape(blocks, m)
    matrix = toeplitz_matrix(seed, n, m).astype(np.float32)
    expect = (x.reshape(blocks, n).astype(np.float32) @ matrix.T) % 2
    assert np.array_equal(got, expect.astype(np.uint8))


def test_whole_word_blocks_agree_with_the_portable_simd_paths(simd_env: dict[str, str]) -> None:
    # The byte conversion asks the CPU-feature module, not the clmul backend: a child process
    # with QITCORE_SIMD=portable takes its scalar path.
    code = (
        "import hashlib\n"
        "from tests.test_toeplitz import WHOLE_WORD_CASES, _whole_word_case\n"
        "for n, m, blocks in WHOLE_WORD_CASES:\n"
        "    for order in ('big', 'little'):\n"
        "        print(hashlib.sha256(_whole_word_case(n, m, blocks, order)[2]).hexdigest())\n"
    )
    child = subprocess.run(
        [sys.executable, "-c", code], env=simd_env, cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    here = [
        hashlib.sha256(_whole_word_case(n, m, blocks, order)[2]).hexdigest()
        for n, m, blocks in WHOLE_WORD_CASES
        for order in ("big", "little")
    ]
    assert child == here


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_random_sizes_match_the_matrix_definition(data: st.DataObject) -> None:
    backend_name = data.draw(st.sampled_from(_core.available_clmul_backends()), label="backend")
    previous = _core.clmul_backend()
    _core.set_clmul_backend(backend_name)
    try:
        _check_random_case(data)
    finally:
        _core.set_clmul_backend(previous)


def _check_random_case(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 300), label="n")
    m = data.draw(st.integers(1, n), label="m")
    blocks = data.draw(st.integers(0, 12), label="blocks")
    bitorder = data.draw(st.sampled_from(["big", "little"]), label="bitorder")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="rng"))
    seed, x = _random_case(rng, n, m, blocks)
    t = Toeplitz(n, m, pack_bits(seed, bitorder=bitorder), bitorder=bitorder)
    packed = t.hash(pack_bits(x, bitorder=bitorder), nbits=x.size, output="numpy")
    assert isinstance(packed, np.ndarray) and packed.dtype == np.uint8
    expect = [toeplitz_naive(seed, x[k * n : (k + 1) * n], m) for k in range(blocks)]
    got = unpack_bits(packed, blocks * m, bitorder=bitorder)
    assert np.array_equal(got, np.concatenate(expect) if expect else got[:0])


@pytest.mark.parametrize(("n", "m"), [(20_000, 10_000), (65_536, 32_768), (100_003, 999), (300_000, 299_999)])
def test_large_blocks_match_numpy_fft(backend: str, n: int, m: int, rng) -> None:
    seed, x = _random_case(rng, n, m, 1)
    got = Toeplitz.from_bits(n, m, seed).hash_bits(x)
    assert np.array_equal(got, toeplitz_fft(seed, x, m))


@pytest.mark.parametrize(("n", "m"), [(1, 1), (10, 10), (97, 31), (1000, 442), (4096, 2048), (50_000, 20_000)])
def test_bit_for_bit_with_randextract(n: int, m: int, rng) -> None:
    seed, x = _random_case(rng, n, m, 1)
    peer = np.asarray(ToeplitzHashing(input_length=n, output_length=m).extract(x, seed), dtype=np.uint8)
    assert np.array_equal(Toeplitz.from_bits(n, m, seed).hash_bits(x), peer)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 3000), m_frac=st.floats(0, 1), seed_value=st.integers(0, 2**32 - 1))
def test_random_sizes_agree_with_randextract(n: int, m_frac: float, seed_value: int) -> None:
    m = max(1, int(m_frac * n))
    seed, x = _random_case(np.random.default_rng(seed_value), n, m, 1)
    peer = np.asarray(ToeplitzHashing(input_length=n, output_length=m).extract(x, seed), dtype=np.uint8)
    assert np.array_equal(Toeplitz.from_bits(n, m, seed).hash_bits(x), peer)


def test_inputs_of_every_buffer_kind_give_the_same_output(rng) -> None:
    t = Toeplitz(256, 128)
    raw = rng.integers(0, 256, 32 * 5, dtype=np.uint8)
    expect = t.hash(raw.tobytes())
    for data in (
        bytearray(raw.tobytes()),
        memoryview(raw.tobytes()),
        raw,
        raw[::-1][::-1],
        raw.reshape(5, 32),
    ):
        assert t.hash(data) == expect
    # A strided view is read element by element (copied once), not as raw memory.
    wide = np.zeros(raw.size * 2, dtype=np.uint8)
    wide[::2] = raw
    assert t.hash(wide[::2]) == expect


def test_out_buffer_is_filled_and_returned(rng) -> None:
    t = Toeplitz(512, 200)
    data = rng.integers(0, 256, 64 * 8, dtype=np.uint8)
    target = np.full(t.output_bytes(8), 0xFF, dtype=np.uint8)
    assert t.hash(data, out=target) is target
    assert target.tobytes() == t.hash(data)
    buf = bytearray(t.output_bytes(8))
    t.hash(data, out=buf)
    assert bytes(buf) == t.hash(data)


def test_seed_is_random_hidden_and_exportable() -> None:
    a, b = Toeplitz(1024, 512), Toeplitz(1024, 512)
    assert a.seed_bytes() != b.seed_bytes()  # collide with probability 2^-1535
    assert len(a.seed_bytes()) == (1024 + 512 - 1 + 7) // 8
    seed = a.seed_bytes()
    assert seed.hex() not in repr(a) and "hidden" in repr(a)
    assert Toeplitz(1024, 512, seed).hash(bytes(range(128))) == a.hash(bytes(range(128)))


@pytest.mark.parametrize(
    ("args", "error", "names"),
    [
        ((0, 0), InvalidArgumentError, "n"),
        ((8, 0), InvalidArgumentError, "m"),
        ((8, 9), InvalidArgumentError, "m"),
        ((-8, 4), InvalidArgumentError, "n"),
        ((8.0, 4), InvalidTypeError, "n"),
        (("8", 4), InvalidTypeError, "n"),
        ((True, 1), InvalidTypeError, "n"),
        ((2**40, 4), InvalidArgumentError, "n"),
        ((16, 8, b"\x00" * 4), InvalidLengthError, "seed"),
        ((16, 8, "abc"), InvalidTypeError, "seed"),
        ((16, 8, np.zeros(3, dtype=np.int64)), InvalidTypeError, "seed"),
    ],
)
def test_bad_construction_names_the_argument(args: tuple, error: type, names: str) -> None:
    with pytest.raises(error, match=rf"^{names}: "):
        Toeplitz(*args)


def test_bad_bitorder_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="bitorder"):
        Toeplitz(8, 4, bitorder="middle")  # type: ignore[arg-type]


def test_bad_hash_arguments_are_refused_and_write_nothing() -> None:
    t = Toeplitz(16, 8)
    target = bytearray(b"\xee" * 2)
    cases = [
        (("abcd",), {}, InvalidTypeError, "data"),
        ((b"\x00" * 3,), {}, InvalidLengthError, "data"),
        ((b"\x00" * 4,), {"nbits": 31}, InvalidLengthError, "data"),
        ((b"\x00" * 4,), {"nbits": 33}, InvalidArgumentError, "nbits"),
        ((b"\x00" * 4,), {"nbits": -1}, InvalidArgumentError, "nbits"),
        ((b"\x00" * 4,), {"out": bytearray(3)}, InvalidLengthError, "out"),
        ((b"\x00" * 4,), {"out": b"\x00\x00"}, InvalidTypeError, "out"),
        ((b"\x00" * 4,), {"out": np.zeros(4, dtype=np.uint8)[::2]}, InvalidTypeError, "out"),
        ((b"\x00" * 4,), {"output": "list"}, InvalidArgumentError, "output"),
    ]
    for args, kwargs, error, name in cases:
        with pytest.raises(error, match=rf"^{name}: "):
            t.hash(*args, **kwargs)
    shared = bytearray(4)
    with pytest.raises(InvalidArgumentError, match=r"^out: "):
        t.hash(shared, out=memoryview(shared)[:2])
    t2 = Toeplitz(16, 8)
    with pytest.raises(InvalidLengthError):
        t2.hash(b"\x00" * 3, out=target)
    assert target == bytearray(b"\xee" * 2)


def test_every_error_is_a_qiterror_and_a_builtin() -> None:
    for error in (InvalidArgumentError, InvalidLengthError):
        assert issubclass(error, QitError) and issubclass(error, ValueError)
    assert issubclass(InvalidTypeError, QitError) and issubclass(InvalidTypeError, TypeError)


def test_fuzzed_arguments_never_crash() -> None:
    """Random sizes, seeds and garbage: every call returns or raises a QitError."""
    rng = np.random.default_rng(7)
    garbage = [None, 3.5, "x", b"", object(), -1, 2**70, [1, 2], np.zeros(2, dtype=np.float32)]
    for _ in range(400):
        n = int(rng.choice([0, 1, 2, 7, 8, 63, 64, 65, 200, 4096, -3]))
        m = int(rng.choice([0, 1, 3, 8, 64, 100, 5000]))
        seed_len = int(rng.integers(0, 700))
        args: list = [
            n,
            m,
            rng.bytes(seed_len) if rng.random() < 0.8 else garbage[rng.integers(len(garbage))],
        ]
        try:
            t = Toeplitz(*args)
        except QitError:
            continue
        data = rng.bytes(int(rng.integers(0, 1200))) if rng.random() < 0.8 else garbage[rng.integers(len(garbage))]
        with contextlib.suppress(QitError):
            t.hash(data)


def test_the_gil_is_released_during_large_hashes() -> None:
    t = Toeplitz(4096, 2048)
    data = np.random.default_rng(1).integers(0, 256, 48 << 20, dtype=np.uint8)
    ticks = 0
    stop = threading.Event()

    def count() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1

    worker = threading.Thread(target=count)
    worker.start()
    time.sleep(0.01)
    before = ticks
    t.hash(data)
    during = ticks - before
    stop.set()
    worker.join()
    # With the GIL held for the whole call, the counting thread could not run at all meanwhile.
    assert during > 1000, during


def test_backend_can_be_switched_and_reported() -> None:
    available = _core.available_clmul_backends()
    assert available[0] == "portable"
    previous = _core.clmul_backend()
    for name in available:
        _core.set_clmul_backend(name)
        assert _core.clmul_backend() == name
    _core.set_clmul_backend(previous)
    with pytest.raises(InvalidArgumentError, match="backend"):
        _core.set_clmul_backend("quantum")


@pytest.mark.parametrize("name", _core.available_clmul_backends())
def test_environment_variable_forces_a_backend(name: str) -> None:
    import os
    import subprocess
    import sys

    env = dict(os.environ, QITCORE_CLMUL=name)
    code = "from qitcore import _core; print(_core.clmul_backend())"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == name
