"""A FIFO whose writer sends some bytes and then nothing, so that a command reading it waits in
read() for as long as a test needs (to stop it there with a signal)."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def stalled_fifo(fifo: Path, head: int = 1 << 16) -> Iterator[None]:
    """Makes ``fifo`` and, while the block runs, writes ``head`` random bytes into it and holds it
    open; afterwards the writer is released, even when no reader ever came."""
    os.mkfifo(fifo)
    stop = threading.Event()

    def writer() -> None:
        with open(fifo, "wb") as f:
            f.write(os.urandom(head))
            f.flush()
            stop.wait(60)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        # A writer still waiting for a reader (the command failed before opening the FIFO).
        os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        thread.join()


def wait_for_temp(folder: Path, timeout: float = 30) -> None:
    """Waits until a qitcore temporary output file exists in ``folder``: the command is under way."""
    deadline = time.monotonic() + timeout
    while not any(p.name.startswith(".qitcore-") for p in folder.iterdir()):
        assert time.monotonic() < deadline, "the command did not start"
        time.sleep(0.05)
