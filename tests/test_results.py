"""The result classes of the Rust core, as Python sees them: where they live, what they refuse,
and what every result offers (repr, copies, comparison, plain-dict form)."""

from __future__ import annotations

import copy
import importlib
import os
import types
from typing import Any

import pytest
from qitcore import _core
from qitcore._records import as_dict, field_names
from qitcore.entropy import assess_iid, assess_non_iid
from qitcore.errors import UnsupportedOperationError
from qitcore.health import scan

RESULT_CLASSES = sorted(
    (
        obj
        for obj in vars(_core).values()
        if isinstance(obj, type)
        and any(isinstance(a, types.GetSetDescriptorType) for a in vars(obj).values())
        and "__copy__" in vars(obj)
    ),
    key=lambda c: c.__name__,
)


def test_the_result_classes_are_found() -> None:
    names = {c.__name__ for c in RESULT_CLASSES}
    assert {"IidResult", "NonIidResult", "HealthScan", "DeviceStatus", "SecureLength", "StreamCounters"} <= names
    assert len(names) >= 22, sorted(names)


@pytest.mark.parametrize("cls", RESULT_CLASSES, ids=lambda c: c.__name__)
def test_each_result_class_is_exported_by_the_module_it_names(cls: type) -> None:
    module = importlib.import_module(cls.__module__)
    assert getattr(module, cls.__name__) is cls


@pytest.mark.parametrize("cls", RESULT_CLASSES, ids=lambda c: c.__name__)
def test_results_are_made_by_qitcore_only(cls: type) -> None:
    with pytest.raises(UnsupportedOperationError, match=f"^{cls.__name__}: "):
        cls()
    with pytest.raises(UnsupportedOperationError):
        cls(1, x=2)


def _results() -> list[Any]:
    data = os.urandom(4096)
    iid = assess_iid(data, permutations=20, seed=7)
    non_iid = assess_non_iid(data)
    return [iid, iid.literal, iid.lrs, iid.independence, iid.permutation[0], non_iid, scan(data, min_entropy=7.0)]


@pytest.mark.parametrize("result", _results(), ids=lambda r: type(r).__name__)
def test_every_result_shows_its_fields_copies_as_itself_and_has_a_plain_form(result: Any) -> None:
    names = field_names(type(result))
    assert names, type(result)
    text = repr(result)
    assert text.startswith(f"{type(result).__name__}(")
    for name in names:
        assert f"{name}=" in text
        # The repr of each field, as a dataclass shows it.
        assert repr(getattr(result, name)) in text
    assert copy.copy(result) is result and copy.deepcopy(result) is result
    plain = as_dict(result)
    assert list(plain) == names
    for name in names:
        value = getattr(result, name)
        if not field_names(type(value)) and not isinstance(value, (list, tuple)):
            assert plain[name] == value


def test_results_compare_by_value() -> None:
    data = os.urandom(2048)
    assert assess_iid(data, permutations=20, seed=3) == assess_iid(data, permutations=20, seed=3)
    assert assess_iid(data, permutations=20, seed=3) != assess_iid(data[:-1], permutations=20, seed=3)


def test_results_that_were_dictionaries_read_as_read_only_mappings() -> None:
    stats = _core.FrameDecoder().stats()
    assert stats["frames"] == stats.frames == stats.get("frames") == 0
    assert "frames" in stats and "nope" not in stats and 0 not in stats
    assert stats.get("nope", 5) == 5 and stats.get("nope") is None
    assert dict(stats) == {**stats} == as_dict(stats)
    assert sorted(stats.keys()) == stats.keys() == field_names(type(stats))
    for key in ("nope", 0, None):
        with pytest.raises(KeyError):
            stats[key]


def test_as_dict_is_public() -> None:
    import qitcore

    assert qitcore.as_dict is as_dict


@pytest.mark.parametrize("bits", [1, 4, 7])
def test_a_health_monitor_refuses_samples_wider_than_it_was_set_for(bits: int) -> None:
    from qitcore.errors import InvalidArgumentError
    from qitcore.health import HealthMonitor

    data = bytearray(i & ((1 << bits) - 1) for i in range(2000))
    data[1500] = 1 << bits
    for method in ("feed", "process"):
        monitor = HealthMonitor(min_entropy=0.5, bits_per_sample=bits)
        with pytest.raises(InvalidArgumentError, match=r"^data: the sample at offset 1500 \(value"):
            getattr(monitor, method)(bytes(data))
        assert monitor.counters["samples"] == 0


def _one_of_each() -> list[Any]:
    """One result of every class, each made by the call that makes it in use."""
    import qitcore
    from qitcore import protocol
    from qitcore.entropy import assess_restart
    from qitcore.health import HealthMonitor, ais31_procedure_a, fips140_2

    data = os.urandom(4096)
    iid = assess_iid(data, permutations=20, seed=7)
    stuck = scan(bytes(200) + data, min_entropy=7.0)
    monitor = HealthMonitor(min_entropy=7.0)._core
    frames = {t[1]: bytes.fromhex(t[4]) for t in _golden("frame")}
    out = [iid, iid.literal, iid.lrs, iid.independence, iid.permutation[0], assess_non_iid(data), stuck]
    out += [stuck.failures[0], assess_restart(os.urandom(1_000_000), 7.0), monitor.counters, monitor.self_test()]
    out += [fips140_2(os.urandom(2500))[0][0], ais31_procedure_a(os.urandom(1_035_716)), _core.FrameDecoder().stats()]
    info = protocol.parse_info(protocol.parse_reply(frames["reply_info"]).data)
    out += [
        info,
        info.format,
        protocol.parse_reply(frames["reply_not_now"]),
        protocol.parse_status(frames["status_failed"]),
    ]
    with qitcore.open("sim://?seed=1") as stream:
        stream.read(1000)
        out += [stream._core.stats(), stream._core.sim_counters()]
    out.append(_core.simulate_bb84(100_000, 5, 10.0, 0.2, 0.1, 1e-6, 0.01, [0.5, 0.1, 0.0], [0.8, 0.15, 0.05], 0.9))
    out.append(
        _core.finite_key_length(
            [0.5, 0.1, 0.0], [0.8, 0.15, 0.05], [10**6] * 3, [10**5] * 3, [10**3] * 3, 10**5, 1e-10, 1e-15
        )
    )
    return out


def _golden(kind: str) -> list[list[str]]:
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "firmware_interface" / "golden_vectors.txt"
    rows = [line.split() for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return [row for row in rows if row[0] == kind]


@pytest.fixture(scope="module")
def one_of_each() -> list[Any]:
    return _one_of_each()


def test_one_of_each_covers_every_result_class(one_of_each: list[Any]) -> None:
    assert {type(r) for r in one_of_each} == set(RESULT_CLASSES)


def test_every_result_pickles_to_an_equal_result_of_its_class(one_of_each: list[Any]) -> None:
    import pickle

    for result in one_of_each:
        for protocol in (2, pickle.HIGHEST_PROTOCOL):
            back = pickle.loads(pickle.dumps(result, protocol))
            assert type(back) is type(result)
            assert back == result, type(result).__name__
            assert repr(back) == repr(result)
            assert as_dict(back) == as_dict(result)


def test_results_cross_processes(one_of_each: list[Any]) -> None:
    # What multiprocessing and Dask do with a worker's answer: pickled there, unpickled here.
    import concurrent.futures
    import multiprocessing

    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        back = pool.submit(_one_of_each_summary, one_of_each).result(timeout=120)
    assert back == [(type(r).__name__, repr(r)) for r in one_of_each]


def _one_of_each_summary(results: list[Any]) -> list[tuple[str, str]]:
    return [(type(r).__name__, repr(r)) for r in results]


@pytest.mark.parametrize("cls", RESULT_CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("state", [None, 5, "x", [], {}, {"nope": 1}, [[[]]], {"samples": -1}, b"\x80"])
def test_a_state_that_is_not_a_pickled_result_is_refused_by_name(cls: type, state: Any) -> None:
    from qitcore.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match=f"^{cls.__name__}: not a pickled {cls.__name__}"):
        cls._from_state(state)  # type: ignore[attr-defined]


def test_names_read_back_from_pickles_are_bounded() -> None:
    # An estimate's name is a fixed string in the core; a pickle cannot mint names without bound.
    from qitcore.errors import InvalidArgumentError

    literal = assess_iid(os.urandom(2048), permutations=20, seed=1).literal
    state = literal.__reduce__()[1][0]
    with pytest.raises(InvalidArgumentError, match="unexpected name"):
        for i in range(2000):
            type(literal)._from_state({**state, "name": f"made up {i}"})
    assert type(literal)._from_state(state) == literal
