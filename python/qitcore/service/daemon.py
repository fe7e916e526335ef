"""The ``qitcore serve`` process: the pool, its front ends, and the signals that steer them.

Start-up runs in an order that serves nothing doubtful: the configuration is read and checked,
the kernel feed (if configured) checks its privilege, the socket is made (so a path another
daemon holds stops the start before any device is touched), the pool opens its devices (in their
threads), then the other front ends start; once the Unix socket listens, ``qitcore serve: listening on
<path>`` goes to stderr (what scripts and tests wait for). Then the main thread only waits for
signals:

- SIGTERM or SIGINT: a clean stop: front ends stop in reverse order (clients in the middle of a
  request get an error, never a short answer), then the pool closes its devices; exit status 0;
- SIGHUP: the configuration file is read again; devices are added, removed or reopened with new
  options, and a front end whose settings changed is restarted. A file that does not parse or
  check is logged and the running configuration kept. So is one whose front ends cannot start:
  a front end on a new address (socket path, listen address) or the kernel feed is built and
  started beside the old one, which stops only once every new one runs; one on the same
  address is stopped, and started again with its old settings if the new ones fail. The pool's
  devices change last, once the front ends have.

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
from . import config as config_module
from .config import ServiceConfig
from .pool import Pool
from .stats import ServiceStats

__all__ = ["Daemon"]

log = logging.getLogger("qitcore.service.daemon")

# How often the main loop looks at the signal flags (seconds): the delay of a stop or reload.
_TICK = 0.1
# The front ends, in the order they start (they stop in the reverse order).
_FRONTS = ("local", "kernel", "https", "metrics")


class Daemon:
    """One running service.

    Args:
        config: what to run.
        reload: makes the configuration anew for SIGHUP (default: :func:`config.load` of
            ``config.path``; without a path, SIGHUP is logged and ignored). ``qitcore serve``
            passes one that applies its command line on top of the file again.
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
        path = config.path
        if reload is None and path is not None:

            def reload() -> ServiceConfig:
                return config_module.load(path)

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
            kernel = self._make("kernel", config)
            # Before any device opens: without the privilege nothing starts at all.
            kernel.check()
        # The socket next, before any device opens: a path another daemon holds, or one that
        # cannot be made, stops the start before a device is touched. Requests that come before
        # the devices are healthy wait for them, as at any other time.
        self._local = self._make("local", config)
        self._local.start()
        self.pool.start()
        log.info(
            "qitcore %s serving from %d device(s): %s",
            __version__,
            len(config.devices),
            ", ".join(d.public_url for d in config.devices),
        )
        for name in _FRONTS:
            if getattr(config, name) is None or name == "local":
                continue
            front: Any = kernel if name == "kernel" else self._make(name, config)
            front.start()
            setattr(self, f"_{name}", front)
        self._listening(config)

    def _listening(self, config: ServiceConfig) -> None:
        path = config.local.path
        log.info("listening on %s", path)
        out = self._announce if self._announce is not None else sys.stderr
        print(f"qitcore serve: listening on {path}", file=out, flush=True)

    def stop(self) -> None:
        """Stops the front ends, then the pool. Safe to call more than once."""
        with self._lock:
            self._stop()

    def _stop(self) -> None:
        if self.pool is not None:
            # Requests waiting for a pool that has nothing are refused now, so that no front end's
            # stop waits for them (an HTTPS request may wait up to its `wait`).
            self.pool.cancel_reads(stopping=True)
        for name in reversed(_FRONTS):
            front = getattr(self, f"_{name}")
            setattr(self, f"_{name}", None)
            if front is not None:
                _stop_quietly(name, front)
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
        """Applies ``new``: every front end whose settings changed first (all or none: on a
        failure the ones already changed are put back), then the pool's devices; ``self.config``
        becomes ``new`` only when all of it runs."""
        old = self.config
        assert self.pool is not None
        if new.buffer_bytes != old.buffer_bytes:
            log.warning("SIGHUP: buffer_bytes changes only at a restart; still %d", old.buffer_bytes)
            new = dataclasses.replace(new, buffer_bytes=old.buffer_bytes)
        changes: list[_Change] = []
        try:
            for name in _FRONTS:
                if getattr(new, name) != getattr(old, name):
                    log.info("SIGHUP: [%s] changed", "socket" if name == "local" else name)
                    changes.append(self._change(name, old, new))
        except BaseException:
            for change in reversed(changes):
                self._undo(change, old)
            raise
        # Every new front end runs: the old ones built beside them stop now.
        for change in changes:
            if change.beside and change.before is not None:
                _stop_quietly(change.name, change.before)
        self.pool.reconfigure(
            new.devices, backoff=new.backoff, reopen_after_health_failure=new.reopen_after_health_failure
        )
        self.config = new
        if new.local != old.local:
            self._listening(new)
        log.info(
            "SIGHUP: configuration reloaded; serving from %d device(s): %s",
            len(new.devices),
            ", ".join(d.public_url for d in new.devices),
        )

    def _change(self, name: str, old: ServiceConfig, new: ServiceConfig) -> _Change:
        """Starts front end ``name`` with ``new``'s settings (or takes it away when it has none).
        On a new address it starts beside the old one, which keeps serving until the caller
        stops it; on the same address the old one stops first and, if the new one cannot start,
        is started again with ``old``'s settings before the error goes up."""
        attr = f"_{name}"
        before = getattr(self, attr)
        if getattr(new, name) is None:
            setattr(self, attr, None)
            return _Change(name, before, None, beside=True)
        if before is None or not _same_address(name, getattr(old, name), getattr(new, name)):
            after = self._make(name, new)
            after.start()
            setattr(self, attr, after)
            return _Change(name, before, after, beside=True)
        self._release(name, before)
        setattr(self, attr, None)
        try:
            after = self._make(name, new)
            after.start()
        except BaseException:
            log.error("SIGHUP: the new [%s] did not start; starting the old one again", name)
            self._restore(name, old)
            raise
        setattr(self, attr, after)
        return _Change(name, before, after, beside=False)

    def _undo(self, change: _Change, old: ServiceConfig) -> None:
        """Puts front end ``change.name`` back as ``old`` has it (a later change failed)."""
        attr = f"_{change.name}"
        if change.after is not None:
            self._release(change.name, change.after)
        setattr(self, attr, None)
        if change.beside:
            setattr(self, attr, change.before)  # never stopped
        else:
            self._restore(change.name, old)

    def _restore(self, name: str, old: ServiceConfig) -> None:
        try:
            front = self._make(name, old)
            front.start()
        except Exception:  # the old settings ran a moment ago; this is not expected
            log.exception("SIGHUP: the old [%s] could not be started again; it is off", name)
            return
        setattr(self, f"_{name}", front)

    def _release(self, name: str, front: Any) -> None:
        """Stops ``front``; an HTTPS server first has the pool refuse its waiting requests, so that
        its stop does not wait for them."""
        if name == "https" and self.pool is not None:
            self.pool.cancel_reads()
        _stop_quietly(name, front)

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
            describe = getattr(self._kernel, "status", None)
            fronts["kernel"] = describe() if describe is not None else {"device": config.kernel.device}
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

    def _make(self, name: str, config: ServiceConfig) -> Any:
        """Front end ``name`` for ``config``, not started (HTTPS and metrics have bound their
        address and loaded their certificates; the socket binds and the kernel feed checks its
        privilege when started)."""
        import importlib

        assert self.pool is not None
        module, cls = {
            "local": (".local", "LocalServer"),
            "kernel": (".kernel", "KernelFeeder"),
            "https": (".https", "HttpsServer"),
            "metrics": (".metrics", "MetricsServer"),
        }[name]
        make = getattr(importlib.import_module(module, __package__), cls)
        if name == "local":
            return make(self.pool, self.stats, config.local, self.status)
        return make(self.pool, self.stats, getattr(config, name))


@dataclasses.dataclass
class _Change:
    """A front end changed by a reload: the one that ran before, the one that runs now, and
    whether the new one was started beside the old (which then still runs)."""

    name: str
    before: Any
    after: Any
    beside: bool


def _same_address(name: str, old: Any, new: Any) -> bool:
    """Whether front ends with settings ``old`` and ``new`` would hold the same address (then the
    old one must stop before the new one can start)."""
    if name == "local":
        return bool(os.path.realpath(old.path) == os.path.realpath(new.path))
    if name in ("https", "metrics"):
        return bool(old.listen == new.listen)
    return False  # the kernel feed holds no address: a new one starts beside the old


def _stop_quietly(name: str, front: Any) -> None:
    try:
        front.stop()
    except Exception:  # one front end failing to stop must not keep the others up
        log.exception("stopping %s failed", name)
