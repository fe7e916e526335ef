"""Keeps a KME's store supplied: while fewer keys than the low-water mark are stored, distil key
from a simulated QKD link (both ends in this process) and add it to the pool."""

from __future__ import annotations

import logging
import time

from ..errors import QitError
from ..qkd import LinkModel, distill
from .config import SourceSettings
from .store import KeyStore
from .worker import Worker

__all__ = ["Feeder"]

log = logging.getLogger("qitcore.kme.feeder")


class Feeder(Worker):
    """A background thread filling ``store`` from a simulated link (``settings``) while it holds
    fewer than ``settings.low_water`` keys of ``key_size`` bits (never more than
    ``max_key_count``: the Status object's limit). Progress is logged to ``qitcore.kme.feeder``
    (at INFO when ``log``, else DEBUG; failures at WARNING), never a key."""

    def __init__(
        self, store: KeyStore, settings: SourceSettings, key_size: int, max_key_count: int, *, log: bool = True
    ) -> None:
        self._store, self._settings, self._bytes = store, settings, key_size // 8
        self._max_bytes = max_key_count * self._bytes
        self._low = min(settings.low_water, max_key_count) * self._bytes
        self._log = log
        self.error: QitError | None = None
        super().__init__("kme-feeder")

    def _run(self) -> None:
        model = LinkModel(distance_km=self._settings.distance_km)
        while not self._stop.is_set():
            if self._store.pool_bytes() >= self._low:
                self._stop.wait(0.2)
                continue
            start = time.perf_counter()
            try:
                link = model.simulate(self._settings.pulses)
                key = distill(link.alice, link.bob, params=self._settings.params()).alice_key
            except QitError as exc:
                self.error = exc
                log.warning("distillation failed: %s", exc)
                self._stop.wait(1.0)
                continue
            try:
                self._store.add(key[: max(0, self._max_bytes - self._store.pool_bytes())])
            except QitError as exc:  # the store could not record it (disk full, ...): try again later
                self.error = exc
                log.warning("storing distilled key failed: %s", exc)
                self._stop.wait(1.0)
                continue
            stored = self._store.pool_bytes() // self._bytes
            log.log(
                logging.INFO if self._log else logging.DEBUG, "distilled %s bits in %.1f s; %s keys stored",
                f"{len(key) * 8:,}", time.perf_counter() - start, f"{stored:,}",
            )  # fmt: skip
