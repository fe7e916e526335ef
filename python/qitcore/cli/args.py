"""What every ``qitcore`` subcommand reads the same way: counts, sizes and durations, output
folders, and ``--subset``; and the parser they are read with.

The number readers are ``argparse`` ``type=`` functions: each returns the value or raises
``argparse.ArgumentTypeError`` with a message that says what was expected (argparse names the
option). The checks that need more than one argument (an output's folder, a subset of a file)
raise ``QitError`` subclasses, which ``main`` prints as one line.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, NoReturn, TypeAlias

from .._validate import public_url
from ..errors import InvalidArgumentError, InvalidTypeError, QitError

__all__ = [
    "Commands",
    "Parser",
    "Terminated",
    "UsageError",
    "check_output_folders",
    "count",
    "count_up_to",
    "defer",
    "natural",
    "positive_real",
    "real",
    "subset",
    "terminate_as_interrupt",
]

Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""What ``add_subparsers`` returns: each command module adds its commands to it."""

# ASCII digits only: Python's int() and float() also take "1_0" and full-width digits.
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_LARGEST = 2**63 - 1


class UsageError(QitError):
    """A command line argparse refused."""


class Parser(argparse.ArgumentParser):
    """The parser of ``qitcore`` and of each of its commands (argparse makes subcommands' parsers of
    the top parser's class).

    Its errors are one line, like every other error of the command. A command's arguments may be
    added on first use (:meth:`defer`): those whose defaults come from a module that is slow to
    import (the QKD parameters need numpy) then cost nothing to ``qitcore --help`` or to the
    other commands.
    """

    _build: Callable[[argparse.ArgumentParser], None] | None = None

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("qitcore").strip()
        raise UsageError(f"{command + ': ' if command else ''}{message} (see {self.prog} --help)")

    def defer(self, build: Callable[[argparse.ArgumentParser], None]) -> None:
        """Calls ``build(self)`` to add the arguments before this parser is first used."""
        self._build = build

    def complete(self) -> None:
        """Adds the deferred arguments now, in this parser and every one below it."""
        self._complete_self()
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                for parser in action.choices.values():
                    if isinstance(parser, Parser):
                        parser.complete()

    # The entry points through which argparse reads a parser's arguments: parsing (also how a
    # parent parser hands over to a subcommand's) and the help and usage texts.
    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: Any = None
    ) -> tuple[Any, list[str]]:
        self._complete_self()
        return super().parse_known_args(args, namespace)

    def format_usage(self) -> str:
        self._complete_self()
        return super().format_usage()

    def format_help(self) -> str:
        self._complete_self()
        return super().format_help()

    def _complete_self(self) -> None:
        if self._build is not None:
            build, self._build = self._build, None
            build(self)


def defer(parser: argparse.ArgumentParser, build: Callable[[argparse.ArgumentParser], None]) -> None:
    """``build(parser)`` when ``parser`` is first used, or now if it is not a :class:`Parser`."""
    if isinstance(parser, Parser):
        parser.defer(build)
    else:
        build(parser)


def power_of_two(x: float) -> str:
    """``x`` as help texts show a default that is a power of two (``2^-40``), else as ``%g``."""
    exponent = math.log2(x)
    return f"2^{exponent:g}" if exponent == int(exponent) else f"{x:g}"


def _decimal(text: str) -> Decimal:
    if not _NUMBER.fullmatch(text.strip()):
        raise argparse.ArgumentTypeError(f"not a number: {text!r}")
    try:
        return Decimal(text.strip())
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _whole(text: str, minimum: int, maximum: int = _LARGEST) -> int:
    value = _decimal(text)
    if value != value.to_integral_value():
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    if value < minimum:
        what = "a positive whole number" if minimum == 1 else f"a whole number >= {minimum}"
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    if value > maximum:
        raise argparse.ArgumentTypeError(f"{text!r} is too large (at most {maximum:,})")
    return int(value)


def count(text: str) -> int:
    """A positive whole number, written plainly (``1000000``) or with an exponent (``1e6``)."""
    return _whole(text, 1)


def count_up_to(maximum: int) -> Callable[[str], int]:
    """:func:`count` with a largest value, refused when the command line is read."""

    def bounded(text: str) -> int:
        return _whole(text, 1, maximum)

    return bounded


def natural(text: str) -> int:
    """A whole number >= 0, written plainly or with an exponent."""
    return _whole(text, 0)


def real(text: str) -> float:
    """A finite real number (``0.5``, ``1e-12``)."""
    exact = _decimal(text)
    value = float(exact)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is out of range")
    if value == 0 and exact != 0:
        # 1e-400 would reach the checks as 0.0, and their message would not be what was typed.
        raise argparse.ArgumentTypeError(f"{text!r} is too small to be told from 0")
    return value


def positive_real(text: str) -> float:
    """A finite real number > 0 (a duration in seconds, a rate)."""
    value = real(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def in_url(url: str, exc: InvalidArgumentError | InvalidTypeError) -> InvalidArgumentError | InvalidTypeError:
    """``exc`` from opening ``url`` with options, named as the URL's when the parameter it names
    was written in the URL (``sim://?alpha=5``): a URL's parameters share names with the command's
    options (``--alpha``), and the option was not what the user typed wrong."""
    from urllib.parse import parse_qsl, urlsplit

    name = str(exc).partition(":")[0]
    try:
        written = {key for key, _ in parse_qsl(urlsplit(url).query, keep_blank_values=True)}
    except ValueError:
        written = set()
    if name in written:
        return type(exc)(f"device: {public_url(url)}: {exc}")
    return exc


def check_output_folders(*, inputs: Sequence[str] = (), **outputs: str | None) -> None:
    """Refuses, before the work that would fill them, output files whose folder does not exist,
    that are folders, that are one of the ``inputs``, or that are another output (keyword: the option's name with
    ``_`` for ``-``; value: the path, or ``None`` when not given).

    Raises:
        InvalidArgumentError: naming the option and the folder or the file it would overwrite.
    """
    seen: dict[str, str] = {}
    for option, path in outputs.items():
        if not path:
            continue
        name = f"--{option.replace('_', '-')}"
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise InvalidArgumentError(f"{name}: {path}: no such folder {folder}")
        if os.path.isdir(path):
            # Found now, not after the work: a QKD end would fail here after its peer kept the key.
            raise InvalidArgumentError(f"{name}: {path} is a folder")
        if os.path.exists(path):
            for source in inputs:
                if os.path.exists(source) and os.path.samefile(source, path):
                    raise InvalidArgumentError(f"{name}: {path} is an input")
        real = os.path.realpath(path)
        if real in seen and not real.startswith("/dev/"):
            raise InvalidArgumentError(f"{name}: {path} is also the output of {seen[real]}")
        seen[real] = name


def subset_block(text: str | None) -> tuple[int, int] | None:
    """``--subset INDEX,SAMPLES`` as (index, samples), or ``None`` when the option was not given.

    Raises:
        QitError: the text is not two whole numbers, or a block holds no sample.
    """
    if text is None:
        return None
    try:
        index, samples = (natural(part) for part in text.split(","))
    except (ValueError, argparse.ArgumentTypeError):
        raise QitError(f"--subset: expected INDEX,SAMPLES (two whole numbers), got {text!r}") from None
    if samples < 1:
        raise QitError(f"--subset: expected at least 1 sample per block, got {text!r}")
    return index, samples


def subset(text: str | None, path: str) -> tuple[int, int] | None:
    """``--subset INDEX,SAMPLES`` of the sample file at ``path``: block ``INDEX`` of ``SAMPLES``
    samples (one a byte), or ``None`` when the option was not given.

    Raises:
        QitError: the text is not two whole numbers, a block holds no sample, the file cannot be
            read, or the block ends past the end of the file.
    """
    block = subset_block(text)
    if block is None:
        return None
    index, samples = block
    # Checked here so that a block larger than the file is never allocated for.
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise QitError(f"{path}: {exc.strerror or exc}") from None
    if (index + 1) * samples > size:
        raise QitError(f"--subset: block {index} of {samples:,} samples ends past the end of {path} ({size:,} samples)")
    return index, samples


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the command is (as Ctrl-C is), so that its clean-up runs."""


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM (``timeout``, systemd, a batch system, ``kill``) raises
    :class:`Terminated` rather than ending the process at once: commands that write files then
    remove their temporary files and fresh seeds as they do on Ctrl-C. Outside the main thread,
    or when a handler is already set, the block runs unchanged."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) not in (
        signal.SIG_DFL,
        None,
    ):
        yield
        return

    def terminate(signum: int, frame: object) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
