"""The ``qitcore serve`` process: the pool, its front ends, and the signals that steer them.

Start-up runs in an order that serves nothing doubtful: the configuration is read and checked,
the kernel feed (if configured) checks its privilege, the pool opens its devices (in their
threads), then the front ends start; once the Unix socket listens, ``qitcore serve: listening on
<path>`` goes to stderr (what scripts and tests wait for). Then the main thread only waits for
signals:

- SIGTERM or SIGINT: a clean stop: front ends stop in reverse order (clients in the middle of a
  request get an error, never a short answer), then the pool closes its devices; exit status 0;
- SIGHUP: the configuration file is read again; devices are added, removed or reopened with new
  options, and a front end whose settings changed is restarted. A file that does not parse or
  check is logged and the running configuration kept.

Signal handlers only set flags; all the work happens in the main thread's loop, never inside a
handler (which could interrupt a thread holding a lock the work needs).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any, TextIO

from .. import __version__
from ..errors import InvalidArgumentError, QitError
from .config import ServiceConfig
from .pool import Pool
from .stats import ServiceStats

__all__ = ["Daemon"]

log = logging.getLogger("qitcore.service.daemon")

# How often the main loop looks at the signal flags (seconds): the delay of a stop or reload.
_TICK = 0.1


class Daemon:
    """One running service.

    Args:
        config: what to run.
        reload: makes the configuration anew for SIGHUP (default: :func:`config.load` of
            ``config.path``; without a path, SIGHUP is logged and ignored).
        announce: where the ``listening on`` line goes (stderr).
    """

    def __init__(
        self,
        config: ServiceConfig,
        *,
        reload: Callable[[], ServiceConfig] | None = None,
        announce: TextIO | None = None,
    ) -> None:
        if not isinstance(config, ServiceConfig):
            raise InvalidArgumentError(f"config: expected a ServiceConfig, got {type(config).__name__}")
        self.config = config
        self._reload = reload
        self._announce = announce
        self.stats = ServiceStats()
        self.pool: Pool | None = None
        self._local: Any = None
        self._https: Any = None
        self._kernel: Any = None
        self._metrics: Any = None
        self._started = time.time()
        self._stop_signal: int | None = None
        self._hup = False
        self._lock = threading.Lock()  # start(), stop() and reload() one at a time

    # -- running -----------------------------------------------------------------------------

    def run(self) -> int:
        """Starts, serves until SIGTERM or SIGINT, stops; returns the exit status (0). Call from
        the main thread (signal handlers are installed there; the previous ones come back at the
        end).

        Raises:
            QitError: start-up failed (a device URL, the socket, the kernel feed's privilege);
                whatever had started is stopped first.
        """
        previous = {
            sig: signal.signal(sig, handler)
            for sig, handler in (
                (signal.SIGTERM, self._on_stop),
                (signal.SIGINT, self._on_stop),
                (signal.SIGHUP, self._on_hup),
            )
        }
        try:
            self.start()
            try:
                while self._stop_signal is None:
                    if self._hup:
                        self._hup = False
                        self.reload()
                    time.sleep(_TICK)
                log.info("%s: stopping", signal.Signals(self._stop_signal).name)
            finally:
                self.stop()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        log.info("stopped")
        return 0

    def start(self) -> None:
        """Starts the pool and the front ends; returns once the socket listens.

        Raises:
            QitError: as :meth:`run`.
        """
        with self._lock:
            try:
                self._start()
            except BaseException:
                self._stop()
                raise

    def _start(self) -> None:
        config = self.config
        self.pool = Pool(
            config.devices,
            buffer_bytes=config.buffer_bytes,
            stats=self.stats,
            backoff=config.backoff,
            reopen_after_health_failure=config.reopen_after_health_failure,
        )
        kernel = None
        if config.kernel is not None:
            from .kernel import KernelFeeder  # type: ignore[import-not-found,unused-ignore]

            kernel = KernelFeeder(self.pool, self.stats, config.kernel)
            # Before any device opens: without the privilege nothing starts at all.
            kernel.check()
        self.pool.start()
        log.info(
            "qitcore %s serving from %d device(s): %s",
            __version__,
            len(config.devices),
            ", ".join(d.public_url for d in config.devices),
        )
        self._local = self._make_local(config)
        self._local.start()
        if kernel is not None:
            kernel.start()
            self._kernel = kernel
        if config.https is not None:
            self._https = self._make_https(config)
            self._https.start()
        if config.metrics is not None:
            self._metrics = self._make_metrics(config)
            self._metrics.start()
        path = config.local.path
        log.info("listening on %s", path)
        out = self._announce if self._announce is not None else sys.stderr
        print(f"qitcore serve: listening on {path}", file=out, flush=True)

    def stop(self) -> None:
        """Stops the front ends, then the pool. Safe to call more than once."""
        with self._lock:
            self._stop()

    def _stop(self) -> None:
        for name in ("_metrics", "_https", "_kernel", "_local"):
            front = getattr(self, name)
            setattr(self, name, None)
            if front is not None:
                try:
                    front.stop()
                except Exception:  # one front end failing to stop must not keep the others up
                    log.exception("stopping %s failed", name.strip("_"))
        if self.pool is not None:
            self.pool.close()

    def reload(self) -> bool:
        """Reads the configuration again (SIGHUP) and applies it; returns whether it did. A
        configuration that fails its checks is logged and the running one kept."""
        with self._lock:
            make = self._reload
            if make is None:
                log.warning("SIGHUP: no configuration file to reload (started without --config); nothing changed")
                return False
            try:
                new = make()
            except QitError as exc:
                log.error("SIGHUP: the configuration was not reloaded, the running one is kept: %s", exc)
                return False
            try:
                self._apply(new)
            except QitError as exc:
                log.error("SIGHUP: applying the new configuration failed: %s", exc)
                return False
            return True

    def _apply(self, new: ServiceConfig) -> None:
        old = self.config
        assert self.pool is not None
        self.pool.reconfigure(
            new.devices, backoff=new.backoff, reopen_after_health_failure=new.reopen_after_health_failure
        )
        if new.buffer_bytes != old.buffer_bytes:
            log.warning("SIGHUP: buffer_bytes changes only at a restart; still %d", old.buffer_bytes)
            new = dataclasses.replace(new, buffer_bytes=old.buffer_bytes)
        if new.local != old.local:
            log.info("SIGHUP: [socket] changed; restarting the local socket")
            self._local.stop()
            self._local = self._make_local(new)
            self._local.start()
            print(f"qitcore serve: listening on {new.local.path}", file=self._announce or sys.stderr, flush=True)
        if new.kernel != old.kernel:
            log.info("SIGHUP: [kernel] changed")
            if self._kernel is not None:
                self._kernel.stop()
                self._kernel = None
            if new.kernel is not None:
                from .kernel import KernelFeeder  # type: ignore[import-not-found,unused-ignore]

                feeder = KernelFeeder(self.pool, self.stats, new.kernel)
                feeder.check()
                feeder.start()
                self._kernel = feeder
        if new.https != old.https:
            log.info("SIGHUP: [https] changed")
            if self._https is not None:
                self._https.stop()
                self._https = None
            if new.https is not None:
                self._https = self._make_https(new)
                self._https.start()
        if new.metrics != old.metrics:
            log.info("SIGHUP: [metrics] changed")
            if self._metrics is not None:
                self._metrics.stop()
                self._metrics = None
            if new.metrics is not None:
                self._metrics = self._make_metrics(new)
                self._metrics.start()
        self.config = new
        log.info(
            "SIGHUP: configuration reloaded; serving from %d device(s): %s",
            len(new.devices),
            ", ".join(d.public_url for d in new.devices),
        )

    # -- state -------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The whole service's state, JSON-able (what ``qitcore status`` shows): ``version``,
        ``pid``, ``uptime`` (seconds), ``config`` (its file, if any), ``front_ends`` (what each
        listens on), ``pool`` (:meth:`Pool.status`) and ``stats`` (:meth:`ServiceStats.snapshot`)."""
        config = self.config
        fronts: dict[str, Any] = {"local": {"path": config.local.path}}
        if self._https is not None and config.https is not None:
            fronts["https"] = {"listen": config.https.listen, "port": getattr(self._https, "port", None)}
        if self._metrics is not None and config.metrics is not None:
            fronts["metrics"] = {"listen": config.metrics.listen, "port": getattr(self._metrics, "port", None)}
        if self._kernel is not None:
            fronts["kernel"] = {"device": getattr(config.kernel, "device", None)}
        return {
            "version": __version__,
            "pid": os.getpid(),
            "uptime": time.time() - self._started,
            "config": config.path,
            "front_ends": fronts,
            "pool": self.pool.status() if self.pool is not None else None,
            "stats": self.stats.snapshot(),
        }

    # -- inside ------------------------------------------------------------------------------

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        self._stop_signal = signum

    def _on_hup(self, signum: int, frame: FrameType | None) -> None:
        self._hup = True

    def _make_local(self, config: ServiceConfig) -> Any:
        from .local import LocalServer  # type: ignore[import-not-found,unused-ignore]

        assert self.pool is not None
        return LocalServer(self.pool, self.stats, config.local, self.status)

    def _make_https(self, config: ServiceConfig) -> Any:
        from .https import HttpsServer  # type: ignore[import-not-found,unused-ignore]

        assert self.pool is not None
        return HttpsServer(self.pool, self.stats, config.https)

    def _make_metrics(self, config: ServiceConfig) -> Any:
        from .metrics import MetricsServer  # type: ignore[import-not-found,unused-ignore]

        assert self.pool is not None
        return MetricsServer(self.pool, self.stats, config.metrics)
