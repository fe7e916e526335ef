"""A piece of a test run as another user: forked, not started afresh (the interpreter lives under
/root, which another uid cannot read; the child keeps the modules already imported), with every
group and capability dropped, its JSON answer handed back through a pipe."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any


def run_as(uid: int, task: Callable[[], Any]) -> Any:
    """What ``task()`` returns (a JSON value) when run as ``uid`` in a forked child."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            os.write(w, json.dumps(task()).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        text = f.read()
    os.waitpid(pid, 0)
    return json.loads(text)
