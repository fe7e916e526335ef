"""The command line's errors name what the user typed. The API's argument errors begin with the
API's parameter name (``buffer_bytes: ...``), which the command line writes as the option that
gave it: that works only when each option's ``dest`` is the API parameter it feeds, or when a
command declares the name (``set_defaults(files=...)``). These tests read every command's source,
so a new call that passes an option under another name fails here, and run the cases that did."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import qitcore.cli
from qitcore.cli import main

CLI = Path(qitcore.cli.__file__).parent

# Keyword arguments fed from an option of another name, each for a reason no error can show.
RENAMED_ON_PURPOSE = {
    ("commandline", "command_line"),  # recorded in reports as typed, never checked
    ("retry", "timeout"),  # Bob retries for as long as he waits: the timeout, checked as --timeout
    ("inputs", "paths"),  # outputs checked against the inputs: the errors name the output's option
}


def _keyword_feeds() -> list[tuple[str, int, str, str]]:
    """(file, line, keyword, dest) for every call ``f(keyword=args.dest)`` in the CLI package."""
    found = []
    for path in sorted(CLI.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            for kw in node.keywords:
                value = kw.value
                if (
                    kw.arg is not None
                    and isinstance(value, ast.Attribute)
                    and isinstance(value.value, ast.Name)
                    and value.value.id == "args"
                ):
                    found.append((path.name, kw.lineno, kw.arg, value.attr))
    return found


def test_options_feed_the_api_parameters_of_their_own_name() -> None:
    feeds = _keyword_feeds()
    assert len(feeds) > 40  # the scan sees the commands' calls
    renamed = [f"{f}:{line}: {k}=args.{d}" for f, line, k, d in feeds if k != d and (k, d) not in RENAMED_ON_PURPOSE]
    assert not renamed, "give the option dest=<the API parameter> (see _as_options): " + "; ".join(renamed)


def test_every_declared_file_argument_exists() -> None:
    parser = qitcore.cli._parser()
    commands = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices
    declared = 0
    for name, sub in commands.items():
        files = sub.get_default("files") or {}
        dests = {a.dest for a in sub._actions}
        assert set(files.values()) <= dests, (name, files)
        declared += len(files)
    assert declared >= 4


@pytest.fixture
def wide(tmp_path: Path) -> Path:
    path = tmp_path / "wide.bin"
    path.write_bytes(np.random.default_rng(1).integers(16, 256, 5000, dtype=np.uint8).tobytes())
    return path


def test_errors_name_the_file_or_option_not_the_api_parameter(
    tmp_path: Path, wide: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    other = tmp_path / "other.bin"
    other.write_bytes(wide.read_bytes())
    cases = [
        (["assess", str(wide), "--bits-per-symbol", "4"], f"{wide}: the sample at offset 0 (value "),
        (["assess", str(wide), "--iid", "--bits-per-symbol", "4"], f"{wide}: the sample at offset 0 (value "),
        (["restart", str(wide), "4"], f"{wide}: restart tests need 1000 × 1000 = 1000000 samples, got 5000"),
        (["health", str(wide), "--min-entropy", "1", "--bits-per-sample", "4"], f"{wide}: the sample at offset 0"),
        (["health", str(wide), "--min-entropy", "1", "--bits-per-sample", "4", "--fips"],
         f"{wide}: the sample at offset 0"),
        (["extract", str(empty), "-o", str(tmp_path / "o"), "-m", "8"], f"{empty} holds 0 bits, fewer than one block"),
        (["extract", str(wide), "-o", str(wide), "-m", "8"], f"--output: {wide} is the input"),
        (["extract", str(wide), "-o", str(tmp_path / "o"), "-m", "8", "--bits-per-sample", "4"],
         f"{wide}: the sample at offset 0 is "),
    ]  # fmt: skip
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("qitcore: error: ")]
        assert len(err) == 1 and err[0].startswith(f"qitcore: error: {message}"), (argv, err)
    # Several files: one line for each, naming it.
    assert main(["assess", str(wide), str(other), "--bits-per-symbol", "4"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("qitcore: error: ")]
    assert len(err) == 2, err
    for path, line in zip([wide, other], err, strict=True):
        assert line.startswith(f"qitcore: error: {path}: the sample at offset 0 (value "), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.bin", "other.bin", "wide.bin"]


def test_status_names_its_socket_option(capsys: pytest.CaptureFixture[str]) -> None:
    """The socket's path reaches the client positionally, as its ``path``: the option's dest is
    that name, so the client's error names the option."""
    assert main(["status", "--socket", ""]) == 2
    assert capsys.readouterr().err == "qitcore: error: --socket: expected the daemon's socket path, got ''\n"


def test_serve_names_its_buffer_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["serve", "--device", "sim://", "--socket", str(tmp_path / "s"), "--buffer", str(2**63 - 1)]
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith("qitcore: error: --buffer: must be at most ")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "argv",
    [
        ["assess", "{wide}", "--bits-per-symbol", "9"],
        ["restart", "{wide}", "4", "--bits-per-symbol", "9"],
        ["health", "{wide}", "--min-entropy", "1", "--bits-per-sample", "9"],
        ["extract", "{wide}", "-o", "{out}", "-m", "8", "--bits-per-sample", "9"],
    ],
)
def test_symbol_widths_are_refused_when_the_command_line_is_read(
    argv: list[str], wide: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before any work is announced ("running the non-IID estimators ..."): nothing but the error."""
    assert main([a.format(wide=wide, out=tmp_path / "o") for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'9' is too large (at most 8)" in err, err


def test_url_parameters_are_named_in_their_url_not_as_the_options_of_the_same_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A device URL's parameters share names with options (buffer_bytes and --buffer, alpha and
    --alpha): a bad one written in the URL is the URL's, a bad option the option's."""
    socket = str(tmp_path / "s")
    out = str(tmp_path / "x.bin")
    cases = [
        (["serve", "--device", "sim://?buffer_bytes=abc", "--socket", socket],
         "--device: sim://?buffer_bytes=abc: buffer_bytes: expected a whole number"),
        (["stream", "--device", "sim://?alpha=5", "--bytes", "10", "-o", out],
         "--device: sim://?alpha=5: alpha: expected a number"),
        (["stream", "--device", "sim://?output=x", "--bytes", "10", "-o", out],
         "--device: sim://?output=x: output: not a parameter of sim:// URLs"),
        (["stream", "--device", "sim://", "--alpha", "5", "--bytes", "10", "-o", out], "--alpha: expected a number"),
    ]  # fmt: skip
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith(f"qitcore: error: {message}") and err.count("\n") == 1, (argv, err)
    assert list(tmp_path.iterdir()) == []


def test_declared_files_are_named_whatever_else_was_typed(
    tmp_path: Path, wide: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An output named like the API's parameter (-o src, --json data) does not take the blame, the
    seed file is named for its size, and a file named like a word of the message keeps its name."""
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    the = tmp_path / "the"
    the.write_bytes(wide.read_bytes())
    monkeypatch.chdir(tmp_path)
    cases = [
        (["assess", str(wide), "--json", "data", "--bits-per-symbol", "4"], f"{wide}: the sample at offset 0"),
        (["extract", str(wide), "-o", "src", "-m", "8", "--bits-per-sample", "4"], f"{wide}: the sample at offset 0"),
        (["extract", str(empty), "-o", "src", "-m", "8"], f"{empty} holds 0 bits"),
        (["extract", str(wide), "-o", "o1", "-m", "8", "--seed-file", str(empty)], f"{empty}: expected 513 bytes"),
        (["assess", "the", "--bits-per-symbol", "4"], "the: the sample at offset 0"),
    ]  # fmt: skip
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("qitcore: error: ")]
        assert len(err) == 1 and err[0].startswith(f"qitcore: error: {message}"), (argv, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.bin", "the", "wide.bin"]


def test_parameters_inside_a_message_are_written_as_options(
    tmp_path: Path, wide: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "o")
    cases = [
        (["extract", str(wide), "-o", out, "-m", "8", "--format", "bits", "--bits-per-sample", "4"],
         "--bits-per-sample: applies to --format samples only"),
        (["extract", str(wide), "-o", out, "-m", "8", "--eps", "0.1"], "--eps: applies with --min-entropy only"),
        (["extract", str(wide), "-o", out], "-m: give either m (output bits per block) or --min-entropy"),
        (["extract", str(wide), "-o", "-", "-m", "8"], "extract: -o - is a pipe: give --save-seed FILE"),
    ]  # fmt: skip
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith(f"qitcore: error: {message}") and err.count("\n") == 1, (argv, err)
    assert list(tmp_path.iterdir()) == [wide]
