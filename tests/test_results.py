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
