"""Presenting assessment results: terminal tables, NIST-compatible JSON, a self-contained HTML
report with plots, and progress display for long runs.

Each name is imported from its module on first use (PEP 562): a command that writes one file
(``report.files``) or prints one table does not import the HTML report's numpy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .files import write_atomically
    from .html import html_report
    from .json_output import iid_json, non_iid_json
    from .progress import Progress
    from .terminal import iid_table, non_iid_table

__all__ = [
    "Progress",
    "html_report",
    "iid_json",
    "iid_table",
    "non_iid_json",
    "non_iid_table",
    "write_atomically",
]

_MODULE_OF = {
    "Progress": "progress",
    "html_report": "html",
    "iid_json": "json_output",
    "iid_table": "terminal",
    "non_iid_json": "json_output",
    "non_iid_table": "terminal",
    "write_atomically": "files",
}


# Hidden from type checkers, which see the names imported under TYPE_CHECKING.
if not TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        if name not in _MODULE_OF:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
