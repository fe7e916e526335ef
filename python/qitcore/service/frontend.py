"""What the service's HTTP front ends (:class:`~qitcore.service.https.HttpsServer`,
:class:`~qitcore.service.metrics.MetricsServer`) share once their bounded listener is made: the
port they listen on, starting once and stopping twice."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, ClassVar

from .._validate import host_port, show_host_port

if TYPE_CHECKING:
    from .._https_listener import BoundedServer

__all__ = ["FrontEnd"]


class FrontEnd:
    """A front end around a :class:`~qitcore._https_listener.BoundedServer` bound at
    construction (so a bad address fails before anything starts). Subclasses set ``_server`` and
    ``settings`` (with its ``listen`` address) and say what they serve in ``_serving``."""

    _serving: ClassVar[str]
    """The log line once serving, with the address (``HOST:PORT``, an IPv6 host in brackets):
    ``"serving ... on %s"``."""
    _server: BoundedServer
    settings: Any

    @property
    def port(self) -> int:
        """The port listened on (the one the system chose for port 0)."""
        return self._server.port

    def start(self) -> None:
        """Starts serving in a thread of its own; returns once connections are accepted."""
        self._server.start()
        host, _ = host_port("listen", self.settings.listen)
        logging.getLogger(type(self).__module__).info(self._serving, show_host_port(host, self.port))

    def stop(self) -> None:
        """Stops accepting, closes every connection and returns once the server's threads have
        ended. Safe to call twice, and before :meth:`start`."""
        self._server.stop()
