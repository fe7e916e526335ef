"""The Dask cluster the tests run on: a real ``distributed.LocalCluster`` of two worker processes."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import dask
import distributed


@contextlib.contextmanager
def local_cluster(**config: Any) -> Iterator[distributed.Client]:
    """Two single-threaded worker processes on 127.0.0.1, no dashboard, closed on leaving; the
    core's threads limited to one a worker so the two do not fight over this machine's cores.
    ``config``: Dask settings for the cluster's life (``distributed.scheduler.allowed-failures``)."""
    with (
        dask.config.set(config),
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            # Dask's HTTP endpoints (health, metrics) on any free loopback port, not 8787.
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            silence_logs=logging.CRITICAL,
            env={"RAYON_NUM_THREADS": "1"},
        ) as cluster,
        distributed.Client(cluster, timeout=30) as client,
    ):
        client.wait_for_workers(2, timeout=30)
        yield client
