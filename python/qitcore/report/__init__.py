"""Presenting assessment results: terminal tables, NIST-compatible JSON, a self-contained HTML
report with plots, and progress display for long runs."""

from __future__ import annotations

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
