"""The whole ``qitcore`` argument tree: every option and subcommand explained, counts read the same
way everywhere (``1e6`` accepted, non-positive sizes refused), usage errors on one line, and
``--version``."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import qitcore
from qitcore.cli import GROUPS, _parser, main
from qitcore.cli import args as cli_args


def _tree(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every parser of the command line with its command path, the top one included."""
    yield parser.prog, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _tree(sub)


def _options() -> Iterator[tuple[str, argparse.Action]]:
    for prog, parser in _tree(_parser()):
        for action in parser._actions:
            if not isinstance(action, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)):
                yield f"{prog} {'/'.join(action.option_strings) or action.dest}", action


def test_the_tree_reaches_every_subcommand() -> None:
    progs = {prog for prog, _ in _tree(_parser())}
    for command in ("run", "stream", "devices", "assess", "restart", "health", "qkd simulate", "qkd alice",
                    "qkd bob", "kme serve", "kme status", "kme get"):  # fmt: skip
        assert f"qitcore {command}" in progs, command


def test_each_group_adds_the_commands_the_table_names() -> None:
    """``main`` imports only the module of the command named, by this table."""
    import importlib

    for group, commands in GROUPS.items():
        sub = cli_args.Parser(prog="qitcore").add_subparsers(dest="command")
        importlib.import_module(f"qitcore.cli.{group}").add_parsers(sub)
        assert tuple(sub.choices) == commands, group
    full = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert list(full.choices) == [c for commands in GROUPS.values() for c in commands]


@pytest.mark.parametrize("command", ["assess", "restart", "health", "qkd", "run"])
def test_a_command_imports_its_own_group_alone(command: str) -> None:
    code = (
        "import sys\n"
        "from qitcore.cli import main\n"
        "try:\n"
        f"    main([{command!r}, '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "groups = {'stream', 'service', 'qkd', 'kme', 'assess', 'extract', 'health'}\n"
        "print(sorted(m.split('.')[2] for m in sys.modules if m.count('.') == 2 and m.startswith('qitcore.cli.')"
        " and m.split('.')[2] in groups))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    own = next(group for group, commands in GROUPS.items() if command in commands)
    assert out.stdout.strip().splitlines()[-1] == str([own]), out.stdout


def test_every_option_and_argument_has_help() -> None:
    missing = [name for name, action in _options() if not (action.help or "").strip()]
    assert missing == []


def test_every_subcommand_has_help() -> None:
    missing = []
    for prog, parser in _tree(_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                described = {a.dest for a in action._choices_actions if (a.help or "").strip()}
                missing += [f"{prog} {name}" for name in action.choices if name not in described]
    assert missing == []


def test_no_option_reads_counts_with_plain_int() -> None:
    """``int`` refuses ``1e6``; every whole-number option uses the shared types instead."""
    plain = [name for name, action in _options() if action.type is int]
    assert plain == []


@pytest.mark.parametrize(
    ("text", "value"), [("1", 1), ("1000000", 1_000_000), ("1e6", 1_000_000), ("2.5e3", 2500), ("+7", 7)]
)
def test_counts_accept_exponents(text: str, value: int) -> None:
    assert cli_args.count(text) == value and cli_args.natural(text) == value


@pytest.mark.parametrize("text", ["0", "-5", "-1e6", "1.5", "1e-3", "", "x", "1_0", "１０", "nan", "inf", "1e400"])
def test_counts_refuse_what_is_not_a_positive_whole_number(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        cli_args.count(text)


def test_reals_refuse_infinity_and_positive_reals_refuse_zero() -> None:
    assert cli_args.real("-0.5") == -0.5 and cli_args.positive_real("1e-12") == 1e-12
    for text in ("1e400", "inf", "nan", "0x10"):
        with pytest.raises(argparse.ArgumentTypeError):
            cli_args.real(text)
    for text in ("0", "-1", "0.0"):
        with pytest.raises(argparse.ArgumentTypeError):
            cli_args.positive_real(text)


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--megabytes", "0"],
        ["run", "--megabytes", "-3"],
        ["stream", "--bytes", "-5", "-o", "x.bin"],
        ["qkd", "simulate", "--pulses", "0"],
        ["qkd", "bob", "--connect", "127.0.0.1:9", "--records", "r", "--auth-key-file", "k", "--timeout", "-1"],
        ["qkd", "alice", "--listen", "127.0.0.1:0", "--records", "r", "--auth-key-file", "k", "--timeout", "0"],
        ["assess", "f", "--permutations", "0"],
        ["assess", "f", "--bits-per-symbol", "-1"],
        ["health", "f", "--min-entropy", "7", "--max-failures", "0"],
        ["health", "f", "--min-entropy", "7", "--show", "-1"],
        ["health", "f", "--min-entropy", "-7"],
        ["kme", "get", "SAE", "--url", "u", "--cert", "c", "--key", "k", "--ca", "a", "--number", "0"],
        ["frobnicate"],
        [],
    ],
)
def test_bad_command_lines_are_one_line_errors_with_status_2(
    argv: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # a command that wrongly runs writes nothing into the checkout
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("qitcore: error: "), captured.err


def test_counts_with_exponents_reach_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    args = _parser().parse_args(["qkd", "simulate", "--pulses", "2e7", "--distance-km", "1.5e1"])
    assert args.pulses == 20_000_000 and args.distance_km == 15.0
    args = _parser().parse_args(["assess", "f", "--permutations", "1e3", "--seed", "0"])
    assert args.permutations == 1000 and args.seed == 0


def test_version() -> None:
    result = subprocess.run([sys.executable, "-m", "qitcore", "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout == f"qitcore {qitcore.__version__}\n"
