"""Ctrl-C in a test: SIGINT sent to this process from a timer while a call runs."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable

import pytest


def interrupted(call: Callable[[], object], after: float) -> float:
    """Seconds until ``call``, sent SIGINT ``after`` seconds in, raised KeyboardInterrupt."""
    timer = threading.Timer(after, lambda: os.kill(os.getpid(), signal.SIGINT))
    started = time.monotonic()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            call()
    finally:
        timer.cancel()
    return time.monotonic() - started
