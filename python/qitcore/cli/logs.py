"""Where the long-running commands log: ``qitcore serve`` to the journal under systemd (each line
carrying its priority) or to stderr with times, ``qitcore kme serve`` to whatever stderr is when a
record comes.

A module of its own so that the other commands, and ``qitcore --help``, do not import logging.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, ClassVar


class JournalFormatter(logging.Formatter):
    """Under systemd (stderr is the journal's stream), each line starts with its syslog priority,
    ``<3>`` for errors, which journald records as the entry's priority; journald adds the time."""

    _PRIORITY: ClassVar[dict[int, int]] = {
        logging.DEBUG: 7,
        logging.INFO: 6,
        logging.WARNING: 4,
        logging.ERROR: 3,
        logging.CRITICAL: 2,
    }

    def format(self, record: logging.LogRecord) -> str:
        priority = self._PRIORITY.get(record.levelno, 6)
        text = super().format(record)
        return "\n".join(f"<{priority}>{line}" for line in text.splitlines())


def to_journal() -> bool:
    """Whether stderr is connected to the journal (systemd sets ``JOURNAL_STREAM`` to its
    ``device:inode``)."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return stream == f"{st.st_dev}:{st.st_ino}"


def service_handler() -> logging.Handler:
    """The handler of ``qitcore serve``: journal lines under systemd, else lines with times."""
    handler = logging.StreamHandler(sys.stderr)
    if to_journal():
        handler.setFormatter(JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    return handler


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record comes (as the CLI's own messages do)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass
