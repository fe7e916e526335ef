"""Writing output files so that a failed run leaves none behind."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import IO


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str], *, private: bool = False) -> Iterator[IO[bytes]]:
    """A binary file that appears at ``path`` only when the ``with`` block completes: it is
    written as a temporary file in the same folder and renamed into place, so an interrupted or
    failed run never leaves a partial file. ``private`` files (keys) stay readable by their owner
    only."""
    # Here rather than at the top: tempfile imports shutil and random, which commands that write
    # no file (and `qitcore --help`) need not load.
    import tempfile

    folder = os.path.dirname(os.path.abspath(path))
    handle, temp = tempfile.mkstemp(dir=folder, prefix=".qitcore-", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            yield out
        # mkstemp creates the file private; give it the permissions a plain open() would.
        if not private:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(temp, 0o666 & ~umask)
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


def write_atomically(path: str | os.PathLike[str], text: str) -> None:
    """Writes ``text`` (UTF-8) to ``path`` through :func:`atomic_file`."""
    with atomic_file(path) as out:
        out.write(text.encode("utf-8"))
