"""Hostile arguments to every entry point of the binding (``qitcore._core``), found by walking the
module, so that a new function or method is covered without a change here: numbers of every kind
(negative, NaN, infinite, huge, bool, float where an integer is wanted), wrong types and odd
buffers. Each call succeeds or raises a ``QitError``; nothing else may come out (no
``OverflowError``/``TypeError`` from argument conversion, no ``PanicException``, which is not even
an ``Exception``, no crash). Allocations the arguments ask for that memory cannot hold raise
``OutOfMemoryError`` (a ``MemoryError``) instead of aborting the process."""

from __future__ import annotations

import inspect
import math
import os
import re
import resource
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qitcore import _core
from qitcore.errors import InvalidArgumentError, InvalidTypeError, QitError

from .fuzzing import examples

REPO = Path(__file__).resolve().parents[1]
NAN, INF = math.nan, math.inf

# Values no entry point should be surprised by: numbers of every kind, wrong types, odd buffers.
HOSTILE: list[Any] = [
    None, True, False, 0, 1, 3, 8, 64, 255, 256, -1, -(2**31), 2**31, 2**32 + 1, 2**63, 2**64, 2**70, -(2**70),
    0.0, -0.0, 0.5, 1.5, -1.0, 1e300, -1e300, NAN, INF, -INF, 1e-320,
    "", "big", "little", "x\udcff", "sha256", "modified",
    b"", b"\x00", b"\x01" * 9, bytes(range(256)) * 9, bytearray(b"\x01\x00\x01\x01"), memoryview(b"abcdef")[::2],
    np.zeros(64, np.uint8), np.arange(300, dtype=np.uint8), np.ones(5, np.float64), np.zeros(8, np.uint64),
    np.int64(-1), np.uint64(2**64 - 1), np.float32(NAN), np.bool_(True),
    [], [1.0, 0.5, 0.1], (0.5, 0.25, 0.0), [0.6, 0.3, 0.1], (1, 2, 3), [NAN, INF, -1.0], ["a", "b", "c"], {},
    Decimal("1e999"), 1 + 2j, object(), Path("no/such/file"),
    lambda *a, **k: b"", lambda *a, **k: 5, print,
]  # fmt: skip

# Work-size parameters: a huge *valid* value would only make the call take hours or a terabyte, so
# these draw from the hostile values outside that range (and small ones).
COSTLY = {
    ("simulate_bb84", "pulses"),
    ("assess_iid", "permutations"),
    ("NoiseModel.read", "n"),
    ("Toeplitz", "n"),
    ("Toeplitz", "m"),
    ("ModifiedToeplitz", "n"),
    ("ModifiedToeplitz", "m"),
    ("HealthMonitor.feed", "data"),
}
# (Waits return at once: the receiver's stream has ended, so no output or reply will come.)
# Descriptors: a small valid one would read this process's stdin or stdout.
DESCRIPTORS = {("Stream.attach_fd", "fd")}


def _is_costly(value: Any) -> bool:
    if isinstance(value, bool | np.bool_):
        return False
    if isinstance(value, int | np.integer):
        return 4096 < int(value) < 2**64
    return False


def pool(entry: str, param: str) -> list[Any]:
    """The values tried for ``param`` of ``entry``."""
    if (entry, param) in COSTLY:
        return [v for v in HOSTILE if not _is_costly(v)]
    if (entry, param) in DESCRIPTORS:
        return [v for v in HOSTILE if not (isinstance(v, int | np.integer) and 0 <= int(v) < 2**31)] + [10**6]
    return HOSTILE


def ended_stream() -> _core.Stream:
    s = _core.Stream(8, raw=True, capacity=1 << 20)
    s.end()
    return s


# A fresh object of each class, for calling its methods. A class added to the binding without an
# entry here fails `test_every_entry_point_is_exercised`.
RECEIVERS: dict[str, Callable[[], Any]] = {
    "Toeplitz": lambda: _core.Toeplitz(64, 32, bytes(12)),
    "ModifiedToeplitz": lambda: _core.ModifiedToeplitz(64, 32, bytes(8)),
    "HealthMonitor": lambda: _core.HealthMonitor(4.0),
    "HealthScanner": lambda: _core.HealthScanner(4.0, 8, None, 10),
    "FrameDecoder": _core.FrameDecoder,
    "NoiseModel": lambda: _core.NoiseModel(seed=1),
    "Stream": ended_stream,
    "CascadeResponder": lambda: _core.CascadeResponder(bytes(64), 0.05, 1),
    "CascadePreparation": lambda: _core.CascadePreparation(512, 1),
    "ChannelMac": lambda: _core.ChannelMac(bytes(32), b"A", b"B"),
    "ChannelKey": lambda: _core.ChannelKey(bytes(32)),
    "LdpcEncoder": lambda: _core.LdpcEncoder(64, 0.05, 1, bytes(64)),
    "LdpcDecoder": lambda: _core.LdpcDecoder(64, 0.05, 1, bytes(64), 0.05),
    "BitGenLock": lambda: _core.bitgen_capsule(ended_stream())[1],
    "NonIidResult": lambda: _core.assess_non_iid(bytes(range(4)) * 64, None, None),
    # One of the results read as mappings (the core's `counters!`): their methods are one macro's.
    "DecoderStats": lambda: _core.FrameDecoder().stats(),
}

# Result classes (the core's `results!` gives each `__copy__`): made by qitcore, never constructed
# (their constructors refuse every argument), with no methods beside their fields unless they
# have a receiver above.
RESULTS = {name for name, obj in vars(_core).items() if isinstance(obj, type) and "__copy__" in vars(obj)}
MAPPING_METHODS = {"get", "keys"}


def _shared_mapping_method(cls: type, attr: str) -> bool:
    """A mapping method of a result exercised through another class (`DecoderStats`)."""
    return cls.__name__ in RESULTS and cls.__name__ not in RECEIVERS and attr in MAPPING_METHODS


def entry_points() -> Iterator[tuple[str, Any, type | None]]:
    """``(name, callable, class)`` for every public function, class constructor and public method
    of ``_core``."""
    for name in sorted(dir(_core)):
        if name.startswith("_"):
            continue
        obj = getattr(_core, name)
        if isinstance(obj, type):
            yield name, obj, None
            for attr, member in sorted(vars(obj).items()):
                if not attr.startswith("_") and callable(member) and not _shared_mapping_method(obj, attr):
                    yield f"{name}.{attr}", member, obj
        elif callable(obj):
            yield name, obj, None


ENTRY_POINTS = list(entry_points())


def parameters(fn: Any) -> list[inspect.Parameter]:
    params = list(inspect.signature(fn).parameters.values())
    return [p for p in params if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def test_every_entry_point_is_exercised() -> None:
    names = {name for name, _, _ in ENTRY_POINTS}
    classes = {name for name in names if isinstance(getattr(_core, name, None), type)}
    assert classes <= set(RECEIVERS) | RESULTS, f"add a receiver for {sorted(classes - set(RECEIVERS) - RESULTS)}"
    assert len(RESULTS) >= 20, sorted(RESULTS)  # the shared methods are found
    for name in RESULTS - set(RECEIVERS):
        methods = {a for a, m in vars(getattr(_core, name)).items() if not a.startswith("_") and callable(m)}
        assert methods <= MAPPING_METHODS, (name, methods)
    for name, fn, _ in ENTRY_POINTS:
        assert parameters(fn) is not None, name  # every signature can be read
    # The binding's whole surface, so that a walk that found nothing cannot pass.
    assert len(names) >= 70, sorted(names)
    assert {"Stream.read", "Toeplitz", "HealthMonitor.process", "bitgen_capsule", "assess_iid"} <= names


@pytest.fixture(scope="module", autouse=True)
def bounded_memory() -> Iterator[None]:
    """Caps this process's address space while hostile sizes are tried, so that an allocation
    that would exhaust the machine fails (and must fail cleanly) instead."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    cap = vm + (6 << 30)
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def call(name: str, fn: Any, cls: type | None, args: dict[str, Any]) -> None:
    receiver = RECEIVERS[cls.__name__]() if cls is not None else None
    backend = _core.clmul_backend()
    try:
        if receiver is None:
            fn(**args)
        else:
            getattr(receiver, name.split(".", 1)[1])(**args)
    finally:
        _core.set_clmul_backend(backend)
        if isinstance(receiver, _core.Stream):
            receiver.close()


@pytest.mark.parametrize(("name", "fn", "cls"), ENTRY_POINTS, ids=[e[0] for e in ENTRY_POINTS])
@settings(max_examples=examples(15), deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_hostile_arguments_raise_only_qit_errors(name: str, fn: Any, cls: type | None, data: st.DataObject) -> None:
    args: dict[str, Any] = {}
    for p in parameters(fn):
        choices = pool(name, p.name)
        if p.default is not inspect.Parameter.empty and p.default is not Ellipsis:
            choices = [*choices, p.default]
        value = data.draw(st.sampled_from(choices), label=p.name)
        args[p.name] = value
    try:
        call(name, fn, cls, args)
    except (InvalidArgumentError, InvalidTypeError) as exc:
        # A refused argument is named first, as every qitcore message does.
        assert re.match(r"[\w.()\[\]' -]+: ", str(exc)), f"{name}({args!r}): unnamed argument in {exc!r}"
    except QitError:
        pass
    except BaseException as exc:  # anything but a QitError is the failure
        raise AssertionError(f"{name}({args!r}) raised {type(exc).__module__}.{type(exc).__name__}: {exc}") from exc


def test_hostile_durations_and_sizes_named_in_the_issue() -> None:
    s = ended_stream()
    bad: list[Any] = [-1, NAN, -INF, "1", True]
    for timeout in bad:
        with pytest.raises(QitError, match="^timeout: .*seconds"):
            s.read(8, timeout=timeout)
    assert s.read(8, timeout=INF) == b"" and s.read(8, timeout=1e300) == b""
    with pytest.raises(QitError, match="^n: .*integer"):
        _core.Toeplitz(-1, 1)
    with pytest.raises(QitError):
        _core.Toeplitz(64.0, 32)  # type: ignore[arg-type]


OOM_CHILD = textwrap.dedent(
    """
    import resource
    import numpy as np
    from qitcore import _core
    from qitcore.errors import OutOfMemoryError

    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (vm + (512 << 20), resource.RLIM_INFINITY))
    attempts = [
        lambda: _core.Toeplitz(2**32, 2**31),
        lambda: _core.ModifiedToeplitz(2**32, 2**31),
        lambda: _core.Toeplitz(2**32, 2**31, bytes(1)),
        lambda: _core.NoiseModel(seed=1).read(2**40),
        # A strided view of one byte seen as 2^60: its copy cannot be made.
        lambda: _core.Toeplitz(8, 8, bytes(2)).hash(np.broadcast_to(np.zeros(1, np.uint8), (2**60,))),
    ]
    # Sizes around the limit: each is built, or refused cleanly; none may abort the process.
    attempts += [lambda k=k: _core.Toeplitz(2**k, 2**(k - 1)) for k in range(22, 33, 2)]
    attempts += [lambda k=k: _core.ModifiedToeplitz(2**k, 2**(k - 1)) for k in range(22, 33, 2)]
    for attempt in attempts:
        try:
            attempt()
            print("built")
        except OutOfMemoryError as exc:
            assert isinstance(exc, MemoryError)
            print("refused", exc)
        except Exception as exc:
            print("other", type(exc).__name__, exc)
    print("done")
    """
)


def test_allocations_beyond_a_memory_limit_raise_memory_error() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "python")}
    done = subprocess.run(
        [sys.executable, "-c", OOM_CHILD], capture_output=True, text=True, timeout=300, env=env, check=False
    )
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-3000:]}"
    lines = done.stdout.splitlines()
    assert lines[-1] == "done", lines
    # The five impossible requests are refused; the sizes around the limit are built or refused.
    assert all(line.startswith("refused") for line in lines[:5]), lines
    assert all(line.split()[0] in ("built", "refused") for line in lines[5:-1]), lines
    assert "Toeplitz: could not allocate" in lines[0], lines[0]
    assert "a strided input's copy: could not allocate" in lines[4], lines[4]


def test_a_simulation_beyond_its_largest_is_refused_before_it_runs() -> None:
    arguments = (1, 10.0, 0.2, 0.5, 1e-6, 0.01, [0.5, 0.1, 0.0002], [0.7, 0.2, 0.1], 0.9)
    with pytest.raises(InvalidArgumentError, match="pulses: expected 1 to 1099511627776"):
        _core.simulate_bb84(2**62, *arguments)
    assert len(_core.simulate_bb84(1000, *arguments).index) > 0
