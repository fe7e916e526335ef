"""Messages made from operating-system errors say the system's reason, not Python's rendering of
the exception (``[Errno 2] No such file or directory: '/x'``, whose path the message often names
already). ``errors.os_reason`` words it; a scan of the package finds any message that formats a
caught ``OSError`` itself, so a new one cannot slip in."""

from __future__ import annotations

import ast
import errno
import ssl
from pathlib import Path

import pytest
import qitcore
from qitcore.errors import InvalidArgumentError, os_reason
from qitcore.kme import config as kme_config
from qitcore.qkd.channel import read_auth_key

PACKAGE = Path(qitcore.__file__).parent
# Exceptions whose str() is Python's rendering of an operating-system error.
OS_ERRORS = {"OSError", "IOError", "FileNotFoundError", "PermissionError", "ConnectionError", "TimeoutError"}


def _raw_renderings() -> tuple[int, list[str]]:
    """(handlers scanned, places that put a caught OS error into an f-string as it is)."""
    handlers, raw = 0, []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.ExceptHandler) and node.name):
                continue
            caught = node.type.elts if isinstance(node.type, ast.Tuple) else [node.type]
            if not any(isinstance(c, ast.Name) and c.id in OS_ERRORS for c in caught):
                continue
            handlers += 1
            for inner in ast.walk(ast.Module(body=node.body, type_ignores=[])):
                if (
                    isinstance(inner, ast.FormattedValue)
                    and isinstance(inner.value, ast.Name)
                    and inner.value.id == node.name
                ):
                    raw.append(f"{path.relative_to(PACKAGE)}:{inner.lineno}")
    return handlers, raw


def test_no_message_formats_a_caught_os_error_itself() -> None:
    handlers, raw = _raw_renderings()
    assert handlers > 30  # the scan sees the package's handlers
    assert not raw, "word it with errors.os_reason(exc): " + ", ".join(raw)


def test_os_reason_words_each_kind_of_error() -> None:
    assert os_reason(FileNotFoundError(errno.ENOENT, "No such file or directory", "/x.toml")) == (
        "/x.toml: No such file or directory"
    )
    assert os_reason(OSError(errno.EADDRINUSE, "Address already in use")) == "Address already in use"
    assert os_reason(TimeoutError("timed out")) == "timed out"  # no strerror: its own words
    assert os_reason(ssl.SSLError(9, "[SSL] PEM lib (_ssl.c:3900)")) == "[SSL] PEM lib (_ssl.c:3900)"
    assert os_reason(ValueError("bad")) == "bad"


@pytest.mark.parametrize("read", [lambda p: read_auth_key(p, "--auth-key-file"), kme_config.load])
def test_a_missing_file_is_named_once_with_the_system_reason(tmp_path: Path, read: object) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(InvalidArgumentError) as raised:
        read(missing)  # type: ignore[operator]
    message = str(raised.value)
    assert message.endswith(f"{missing}: No such file or directory"), message
    assert "Errno" not in message and message.count(str(missing)) == 1, message
