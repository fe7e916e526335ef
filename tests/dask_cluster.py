"""The Dask cluster the tests run on (a real ``distributed.LocalCluster`` of two worker processes,
as ``--jobs 2`` starts it) and the way they kill one of its workers mid-run."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import dask
import distributed
from qitcore.archive import local_cluster as jobs_cluster


@contextlib.contextmanager
def local_cluster(*, secure: bool = True, **config: Any) -> Iterator[distributed.Client]:
    """Two worker processes, the core's threads limited to one each so the two do not fight over
    this machine's cores, closed on leaving. ``config``: Dask settings for the cluster's life
    (``distributed.scheduler.allowed-failures``). ``secure=False``: plain TCP, as a user's own
    cluster that ``--scheduler tcp://...`` reaches by its address alone."""
    with (
        dask.config.set(config),
        jobs_cluster(2, threads=1, log_level=logging.CRITICAL, secure=secure) as cluster,
        distributed.Client(cluster, timeout=30) as client,
    ):
        client.wait_for_workers(2, timeout=30)
        yield client


def kill_a_worker_mid_run(client: distributed.Client, call: Callable[[], Any], *, after: float = 0.0) -> Any:
    """Runs ``call`` in a thread; once a task is running (and ``after`` seconds more), SIGKILL to
    the worker process running it. Returns what ``call`` returned, or the exception it raised."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = call()
        except Exception as exc:
            outcome["error"] = exc

    pids = client.run(os.getpid)
    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 20
    busy: list[str] = []
    while not busy and time.monotonic() < deadline:
        busy = [w for w, tasks in client.processing().items() if tasks]
        time.sleep(0.02)
    assert busy, "no task started within 20 s"
    time.sleep(after)
    os.kill(pids[busy[0]], signal.SIGKILL)
    thread.join(timeout=120)
    assert not thread.is_alive(), "the call did not return within 120 s of the kill"
    # The kill happened: the worker at that address is gone, or restarted under another pid.
    assert pids[busy[0]] not in client.run(os.getpid).values()
    return outcome.get("result", outcome.get("error"))
