"""A progress line on standard error for long runs (only when it is a terminal)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Shows ``label: done/total (extra)`` with a bar, redrawn at most ten times a second."""

    def __init__(self, label: str, total: int, *, stream: TextIO | None = None, enabled: bool | None = None) -> None:
        self.label = label
        self.total = max(total, 1)
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self._last = 0.0
        self._shown = False

    def update(self, done: int, extra: str = "") -> None:
        """Redraws the line (rate-limited)."""
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < 0.1 and done < self.total:
            return
        self._last = now
        width = 30
        filled = min(width, int(width * done / self.total))
        bar = "#" * filled + "-" * (width - filled)
        suffix = f" ({extra})" if extra else ""
        self.stream.write(f"\r{self.label}: [{bar}] {done}/{self.total}{suffix}   ")
        self.stream.flush()
        self._shown = True

    def close(self) -> None:
        """Ends the line."""
        if self._shown:
            self.stream.write("\n")
            self.stream.flush()
            self._shown = False


class FileProgress:
    """A ``progress(done, total)`` callback for work through a file: the bar appears on the first
    call that knows the file's size (a FIFO has none, and then no bar is shown)."""

    def __init__(self, label: str, *, enabled: bool = True) -> None:
        self.label = label
        self.enabled = enabled
        self._bar: Progress | None = None

    def __call__(self, done: int, total: int | None) -> None:
        if not self.enabled or not total:
            return
        if self._bar is None:
            self._bar = Progress(self.label, total)
        self._bar.update(done, f"{done / total:.0%}")

    def close(self) -> None:
        """Ends the bar's line, if one was shown."""
        if self._bar is not None:
            self._bar.close()
