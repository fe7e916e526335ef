"""Shared fixtures: every carry-less multiplication backend this CPU has, the environment of a
child process on each SIMD path (the CPU's own, or the portable one forced by ``QITCORE_SIMD``),
seeded generators, and the hypothesis profiles: ``default`` keeps ``make test`` fast, ``fuzz``
(``make fuzz``, or ``HYPOTHESIS_PROFILE=fuzz``) runs every property and fuzz test far longer."""

from __future__ import annotations

import os
import signal
import zlib
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from qitcore import _core

# A shell runs a background job (`make test &`, `nohup`) with SIGINT ignored, and children
# inherit an ignored signal across exec: the tests that interrupt a child with SIGINT (as Ctrl-C
# does) would then see it ignored. Catching it here (Python's own handler) makes every child
# start with the default disposition, as it does from a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

settings.register_profile("default", max_examples=100, deadline=None)
settings.register_profile(
    "fuzz", max_examples=20_000, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(params=_core.available_clmul_backends())
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """Runs the test once per backend, restoring the previous one afterwards."""
    previous = _core.clmul_backend()
    _core.set_clmul_backend(request.param)
    yield request.param
    _core.set_clmul_backend(previous)


@pytest.fixture(params=["auto", "portable"])
def simd_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """The environment for a child process whose SIMD sites take the CPU's fastest paths
    (``auto``) or all their portable ones (``portable``). The variable is read once per process,
    so a path other than this process's own needs a child."""
    return dict(os.environ, QITCORE_SIMD=request.param)


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> np.random.Generator:
    """A generator seeded from the test's name, so failures reproduce."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


@pytest.fixture(autouse=True)
def no_default_daemon(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Without a device named, randomness comes from a running local daemon: a test must not find
    one that happens to run on this machine at the default socket. Tests that want a daemon start
    their own and point ``QITCORE_SOCKET`` at it."""
    monkeypatch.setenv("QITCORE_SOCKET", str(tmp_path_factory.mktemp("no-daemon") / "qitcored.sock"))
    monkeypatch.delenv("QITCORE_DEVICE", raising=False)
