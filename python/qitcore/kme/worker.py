"""The background threads of a KME (feeder, peer server, session driver): started and stopped
the same way."""

from __future__ import annotations

import threading
from typing import TypeVar

__all__ = ["Worker"]

W = TypeVar("W", bound="Worker")


class Worker:
    """A daemon thread running :meth:`_run` until :meth:`stop`; ``_stop`` is the event to watch."""

    def __init__(self, name: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self: W) -> W:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        raise NotImplementedError
