"""How long fuzz tests run: a few examples in ``make test``, two hundred times as many in
``make fuzz`` (``HYPOTHESIS_PROFILE=fuzz``). Use ``@settings(max_examples=examples(N))``."""

from __future__ import annotations

import os

FUZZING = os.environ.get("HYPOTHESIS_PROFILE") == "fuzz"


def examples(n: int) -> int:
    """``n`` examples in the ordinary run, ``200 n`` under ``make fuzz``."""
    return n * 200 if FUZZING else n
