"""Pickling the extractors and the health monitor: a copy behaves exactly as the original, a
tampered state is refused by name, the seed never shows in a repr."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import numpy as np
import pytest
from qitcore import _core, health
from qitcore.errors import InvalidArgumentError, InvalidTypeError, RepetitionCountFailure
from qitcore.extract import ModifiedToeplitz, Toeplitz, _BlockHash
from qitcore.health import HealthMonitor

RNG = np.random.default_rng(1204)


@pytest.mark.parametrize("cls", [Toeplitz, ModifiedToeplitz])
@pytest.mark.parametrize(("n", "m", "bitorder"), [(64, 40, "big"), (1001, 333, "little"), (4096, 4096, "big")])
def test_an_extractor_hashes_identically_after_a_round_trip(cls: Any, n: int, m: int, bitorder: str) -> None:
    if cls is Toeplitz and m == n:
        m = n - 1
    original = cls(n, m, bitorder=bitorder)
    data = RNG.integers(0, 256, size=n * 8 // 8 * 3, dtype=np.uint8).tobytes()
    for twin in (pickle.loads(pickle.dumps(original)), copy.deepcopy(original), copy.copy(original)):
        assert type(twin) is cls
        assert (twin.n, twin.m, twin.bitorder) == (n, m, bitorder)
        assert twin.seed_bytes() == original.seed_bytes()
        assert twin.hash(data) == original.hash(data)
    # A different seed hashes differently: the round trip is what kept the function.
    assert cls(n, m, bitorder=bitorder).hash(data) != original.hash(data) or original.seed_bits == 0


def test_the_seed_travels_in_the_pickle_and_never_in_a_repr() -> None:
    hasher = Toeplitz(256, 128)
    seed = hasher.seed_bytes()
    assert seed in pickle.dumps(hasher)  # documented: a pickle of an extractor is its seed
    for text in (repr(hasher), repr(pickle.loads(pickle.dumps(hasher))), str(hasher)):
        assert seed.hex() not in text and repr(seed) not in text and "hidden" in text


def test_a_pickled_extractor_of_another_class_is_refused() -> None:
    class Forged:
        def __reduce__(self) -> Any:
            return (Toeplitz.__reduce__(Toeplitz(16, 8))[0], (dict, 16, 8, b"\0\0\0", "big"))

    with pytest.raises(TypeError, match="state"):
        pickle.loads(pickle.dumps(Forged()))


@pytest.mark.parametrize(
    ("cls", "seed", "message"),
    [
        (Toeplitz, None, "the seed must be bytes, got NoneType"),  # would draw a fresh seed: another function
        (Toeplitz, bytearray(3), "the seed must be bytes"),
        (_BlockHash, b"\0\0\0", "not a qitcore block hash class"),
    ],
)
def test_a_forged_extractor_state_is_refused(cls: Any, seed: Any, message: str) -> None:
    restore = Toeplitz.__reduce__(Toeplitz(16, 8))[0]
    with pytest.raises(InvalidTypeError, match=f"^state: {message}"):
        restore(cls, 16, 8, seed, "big")


def feed_all(monitor: HealthMonitor, data: np.ndarray, cuts: list[int]) -> list[Any]:
    """Every call's released bytes (or failure) over ``data`` fed in pieces of ``cuts``."""
    out: list[Any] = []
    at, i = 0, 0
    while at < len(data):
        piece = data[at : at + cuts[i % len(cuts)]].tobytes()
        at, i = at + len(piece), i + 1
        try:
            out.append(monitor.feed(piece))
        except RepetitionCountFailure as exc:
            out.append(("failed", str(exc)))
    return out


def snapshot(monitor: HealthMonitor) -> tuple[Any, ...]:
    return (monitor.state, monitor.counters, monitor.pending, repr(monitor))


@pytest.mark.parametrize("split", [0, 700, 1024, 1500, 3001, 5000, 7000])
@pytest.mark.parametrize("bits", [1, 4, 8])
def test_a_monitor_pickled_mid_stream_continues_exactly_as_the_original(split: int, bits: int) -> None:
    data = RNG.integers(0, 1 << bits, size=9000, dtype=np.uint8)
    data[6000:6100] = 0  # a stuck run: the monitor fails in the second half
    cuts = [333, 1, 700, 64]
    original = HealthMonitor(0.7 * bits, bits_per_sample=bits, startup_samples=1500, apt_formula="hill")
    feed_all(original, data[:split], cuts)
    startup = 2048 if bits == 1 else 1536  # 1500 samples, in whole windows
    assert original.state == ("startup" if split < startup else "healthy" if split < 6000 else "failed")
    restored = pickle.loads(pickle.dumps(original))
    assert type(restored) is HealthMonitor
    assert snapshot(restored) == snapshot(original)
    expected = feed_all(original, data[split:], cuts)
    got = feed_all(restored, data[split:], cuts)
    assert got == expected
    assert snapshot(restored) == snapshot(original)
    assert any(isinstance(call, tuple) for call in expected)  # the failure is reached after or before
    assert restored.state == "failed"
    restored.reset()
    original.reset()
    more = RNG.integers(0, 1 << bits, size=3000, dtype=np.uint8)
    assert feed_all(restored, more, cuts) == feed_all(original, more, cuts)


def test_a_monitor_used_through_process_pickles_too() -> None:
    data = RNG.integers(0, 256, size=5000, dtype=np.uint8).tobytes()
    original = HealthMonitor(7.0)
    original.process(data[:2222])
    restored = copy.deepcopy(original)
    assert restored.process(data[2222:]) == original.process(data[2222:])
    assert snapshot(restored) == snapshot(original)


def test_the_core_monitor_pickles_on_its_own() -> None:
    core = _core.HealthMonitor(6.0, 8)
    core.feed(RNG.integers(0, 256, size=2000, dtype=np.uint8).tobytes())
    twin = pickle.loads(pickle.dumps(core))
    assert (twin.counters, twin.pending, twin.state) == (core.counters, core.pending, core.state)


def forged(state: bytes) -> bytes:
    """A pickle that rebuilds a monitor from ``state``, as a tampered pickle would."""
    restore = HealthMonitor(7.0).__reduce__()[0]

    class Forged:
        def __reduce__(self) -> Any:
            return (restore, (state,))

    return pickle.dumps(Forged())


def test_tampered_or_truncated_states_are_refused_by_name() -> None:
    monitor = HealthMonitor(7.0)
    monitor.feed(RNG.integers(0, 256, size=1700, dtype=np.uint8).tobytes())
    good = monitor.__reduce__()[1][0]
    assert pickle.loads(forged(good)).counters == monitor.counters  # the control
    bad = [good[:-1], good[:10], b"", good + b"\0", b"XXXX" + good[4:], good[:4] + b"\x09" + good[5:]]
    # min_entropy (bytes 5..12) of 0: no valid configuration.
    bad.append(good[:5] + bytes(8) + good[13:])
    for state in bad:
        with pytest.raises(InvalidArgumentError, match="^state: "):
            pickle.loads(forged(state))
    with pytest.raises(TypeError, match="state"):
        pickle.loads(forged("not bytes"))  # type: ignore[arg-type]


def test_every_flipped_bit_of_a_state_is_refused_or_gives_a_working_monitor() -> None:
    monitor = HealthMonitor(3.0, bits_per_sample=4, startup_samples=512)
    monitor.feed(RNG.integers(0, 16, size=1300, dtype=np.uint8).tobytes())
    good = monitor.__reduce__()[1][0]
    refused = 0
    for i in range(len(good)):
        for bit in range(8):
            state = bytearray(good)
            state[i] ^= 1 << bit
            try:
                twin = health._restore_monitor(bytes(state))
            except InvalidArgumentError as exc:
                assert str(exc).startswith("state: ")
                refused += 1
                continue
            twin.feed(bytes(range(16)) * 8)  # works, whatever it then decides
    assert refused > len(good) * 4
