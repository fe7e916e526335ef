"""Every SIMD site gives the same answers on the portable path as on the CPU's fastest: the work
of :mod:`tests.simd_workload` in a child process with ``QITCORE_SIMD`` set, compared with the same
work here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from qitcore import _core

from . import simd_workload

ROOT = Path(__file__).resolve().parent.parent


def test_every_simd_site_agrees_with_its_portable_path(simd_env: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tests.simd_workload"],
        env=simd_env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    child = json.loads(result.stdout)
    path = simd_env["QITCORE_SIMD"]
    # The override reached the core: gf2 offers only its portable backend.
    assert child["clmul_backends"] == (["portable"] if path == "portable" else _core.available_clmul_backends())
    here = json.loads(json.dumps(simd_workload.outputs()))
    for name, value in here.items():
        assert child["outputs"][name] == value, f"{name} differs with QITCORE_SIMD={path}"


def test_portable_override_wins_over_a_named_clmul_backend() -> None:
    env = {k: v for k, v in os.environ.items() if k != "QITCORE_CLMUL"}
    env.update(QITCORE_SIMD="portable", QITCORE_CLMUL="vpclmul")
    code = "from qitcore import _core; print(_core.clmul_backend())"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "portable"
