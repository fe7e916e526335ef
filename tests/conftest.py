"""Shared fixtures: every carry-less multiplication backend this CPU has, and seeded generators."""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import numpy as np
import pytest
from qitcore import _core


@pytest.fixture(params=_core.available_clmul_backends())
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """Runs the test once per backend, restoring the previous one afterwards."""
    previous = _core.clmul_backend()
    _core.set_clmul_backend(request.param)
    yield request.param
    _core.set_clmul_backend(previous)


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> np.random.Generator:
    """A generator seeded from the test's name, so failures reproduce."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))
