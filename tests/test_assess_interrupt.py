"""The IID track answers Ctrl-C and a failing progress callback: the run stops at the next batch
of permutations and the call raises, in process and in the ``qitcore assess`` command.

The input is a 1-bit Markov source that fails the compression statistic: every one of NIST's
10,000 permutations then computes it, minutes of work, so a prompt stop cannot be the run's end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from qitcore.entropy import assess_iid

#: Generous for a loaded CI machine; the run itself would take minutes.
PROMPT = 10.0


def markov_bits(n: int = 1_000_000, repeat: float = 0.7, seed: int = 3) -> bytes:
    rng = np.random.default_rng(seed)
    flips = rng.random(n) >= repeat
    return (np.cumsum(flips) % 2).astype(np.uint8).tobytes()


def test_ctrl_c_stops_the_permutations() -> None:
    data = markov_bits()
    rounds: list[int] = []
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
    start = time.monotonic()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            assess_iid(data, seed=1, progress=lambda r, _d: rounds.append(r))
    finally:
        timer.cancel()
    elapsed = time.monotonic() - start
    assert elapsed < PROMPT, f"stopped after {elapsed:.1f} s"
    assert rounds and rounds[-1] < 10_000
    # Nothing is left running or locked: the next call works.
    small = assess_iid(data[:20_000], seed=1, permutations=20)
    assert small.permutation_rounds == 20


def test_an_exception_in_progress_stops_the_run_and_is_raised() -> None:
    data = markov_bits()
    calls: list[int] = []

    def progress(rounds: int, _decided: int) -> None:
        calls.append(rounds)
        if len(calls) == 3:
            raise ValueError("enough")

    start = time.monotonic()
    with pytest.raises(ValueError, match="^enough$"):
        assess_iid(data, seed=1, progress=progress)
    assert time.monotonic() - start < PROMPT
    assert len(calls) == 3, "no batch reported after the exception"


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process")
def test_the_command_exits_130_on_ctrl_c(tmp_path: Path) -> None:
    path = tmp_path / "markov.bin"
    path.write_bytes(markov_bits())
    qitcore = Path(sys.executable).with_name("qitcore")
    child = subprocess.Popen(
        [str(qitcore), "assess", "--iid", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    time.sleep(2.0)
    start = time.monotonic()
    child.send_signal(signal.SIGINT)
    try:
        _, err = child.communicate(timeout=PROMPT)
    finally:
        child.kill()
    assert child.returncode == 130, err
    assert time.monotonic() - start < PROMPT
    assert "Traceback" not in err
