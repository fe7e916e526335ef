"""The IID track answers Ctrl-C and a failing progress callback: the run stops at the next batch
of permutations and the call raises, in process and in the ``qitcore assess`` command. The
non-IID track and the restart tests answer Ctrl-C too: every estimator looks for it as it goes.

The input is a 1-bit Markov source that fails the compression statistic: every one of NIST's
10,000 permutations then computes it, minutes of work, so a prompt stop cannot be the run's end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from qitcore.entropy import assess_iid, assess_non_iid, assess_restart

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGINT is TerminateProcess on Windows")

#: Generous for a loaded CI machine; the run itself would take minutes.
PROMPT = 10.0


def markov_bits(n: int = 1_000_000, repeat: float = 0.7, seed: int = 3) -> bytes:
    rng = np.random.default_rng(seed)
    flips = rng.random(n) >= repeat
    return (np.cumsum(flips) % 2).astype(np.uint8).tobytes()


def test_ctrl_c_stops_the_permutations() -> None:
    data = markov_bits()
    rounds: list[int] = []
    sent: list[float] = []

    def progress(r: int, _decided: int) -> None:
        # Ctrl-C once the rounds are provably under way (the first batch reported).
        rounds.append(r)
        if not sent:
            sent.append(time.monotonic())
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        assess_iid(data, seed=1, progress=progress)
    elapsed = time.monotonic() - sent[0]
    assert elapsed < PROMPT, f"stopped {elapsed:.1f} s after Ctrl-C"
    assert rounds[-1] < 10_000
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


def test_the_command_exits_130_on_ctrl_c(tmp_path: Path) -> None:
    path = tmp_path / "markov.bin"
    path.write_bytes(markov_bits())
    child = subprocess.Popen(
        [sys.executable, "-m", "qitcore", "assess", "--iid", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        # The command names the file once it has read it, just before the assessment starts;
        # the assessment then runs for minutes.
        assert child.stdout is not None
        first = child.stdout.readline()
        assert "samples" in first, first
        time.sleep(0.5)
        start = time.monotonic()
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=PROMPT)
    finally:
        child.kill()
    assert child.returncode == 130, err
    assert time.monotonic() - start < PROMPT
    assert "Traceback" not in err


def _interrupt_after(seconds: float) -> list[float]:
    """Sends this process SIGINT after ``seconds``, from a timer thread; the time it was sent."""
    import threading

    sent: list[float] = []

    def send() -> None:
        sent.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGINT)

    threading.Timer(seconds, send).start()
    return sent


def test_ctrl_c_stops_the_non_iid_estimators() -> None:
    # 16 million 8-bit samples: the whole track takes tens of seconds (about 45 on a 2-core
    # AVX2 machine), each estimator several; a stop between estimators would not be prompt.
    data = np.random.default_rng(4).integers(0, 256, 16_000_000, dtype=np.uint8).tobytes()
    sent = _interrupt_after(1.0)
    with pytest.raises(KeyboardInterrupt):
        assess_non_iid(data)
    elapsed = time.monotonic() - sent[0]
    assert elapsed < PROMPT, f"stopped {elapsed:.1f} s after Ctrl-C"
    # Nothing is left running or locked: the next call works.
    assert assess_non_iid(data[:50_000]).samples == 50_000


def test_ctrl_c_stops_the_suffix_sort_of_a_broken_source() -> None:
    # A stuck source repeating 1000 samples: its bit string's repeats are too long for the
    # streamed sort, and libsais, which cannot be interrupted, sorts it whole (12 s of 8 million
    # samples on a 2-core AVX2 machine, the wait for it answered Ctrl-C only after it). The wait
    # is what stops now; the sort finishes alone on its own thread.
    period = np.random.default_rng(5).integers(0, 256, 1000, dtype=np.uint8)
    data = np.tile(period, 8000).tobytes()
    sent = _interrupt_after(2.0)
    with pytest.raises(KeyboardInterrupt):
        assess_non_iid(data)
    elapsed = time.monotonic() - sent[0]
    assert elapsed < 4.0, f"stopped {elapsed:.1f} s after Ctrl-C"


def test_ctrl_c_stops_the_restart_tests() -> None:
    # Early on, while the sanity check's cutoff is computed (it took 3 s on this machine, before
    # the first look at the flag, when each binomial term was a log-gamma), and later, while the
    # estimators run.
    data = np.random.default_rng(6).integers(0, 256, 1_000_000, dtype=np.uint8).tobytes()
    for after in (0.05, 0.8):
        sent = _interrupt_after(after)
        with pytest.raises(KeyboardInterrupt):
            assess_restart(data, 7.0)
        elapsed = time.monotonic() - sent[0]
        assert elapsed < 1.5, f"stopped {elapsed:.1f} s after Ctrl-C"
    assert assess_restart(bytes(range(256)) * 3906 + bytes(64), 7.0).h_i == 7.0
