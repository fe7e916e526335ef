"""The ``qitcore`` command line.

- ``qitcore run``: the main job on built-in defaults: random bytes from the simulator through the
  whole pipeline (frames, health tests, Toeplitz extraction), with a summary.
- ``qitcore stream [--device URL] [--bytes N] [-o FILE]``: random bytes from a device, with a live
  rate and health display.
- ``qitcore devices``: attached QRNGs, their drivers and whether they can be opened.
- ``qitcore assess FILE``: NIST SP 800-90B entropy assessment (non-IID track by default, ``--iid``
  for the IID track), a table on the terminal, ``--json`` with NIST's fields, ``--report`` HTML.
- ``qitcore extract IN -o OUT``: Toeplitz (or modified Toeplitz, or SHA) extraction of a file or
  FIFO of raw samples or packed bits of any size, in constant memory, written atomically; the seed
  from ``--seed-file`` or fresh from the OS (saved to ``--save-seed``, by default ``OUT.seed``).
- ``qitcore restart FILE H_I``: the SP 800-90B restart tests.
- ``qitcore health FILE --min-entropy H``: the continuous health tests over a capture, and
  optionally the FIPS 140-2 and AIS 31 block tests.
- ``qitcore qkd simulate|alice|bob``: QKD key distillation; ``qitcore kme serve|status|get|get-by-id``:
  ETSI GS QKD 014 key delivery.
- ``qitcore serve [--device URL ...] [--config FILE]``: the randomness service, one process owning
  the QRNGs and serving local clients, the kernel's pool and the network; ``qitcore status``: what
  a running one is doing.

Each module of this package holds one group of commands: its ``add_parsers`` adds them and sets
each one's ``func``, which ``main`` calls with the parsed arguments. The modules import what their
commands run (numpy, the devices, the network stack) inside those commands, so that building the
parser costs little: ``qitcore --help`` and ``qitcore assess`` import neither numpy nor any device
or network library.

Exit status: 0 when the run completed (and, for ``health``, no test fired), 1 when a health test
fired or a restart/IID test failed, 2 on errors. Every error, a bad option included, is one line
on stderr, ``qitcore: error: ...``.
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import re
import shlex
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import InvalidArgumentError, InvalidTypeError, QitError
from .args import Parser, Terminated

#: The modules of this package that hold command groups, in their order in ``--help``, and the
#: commands each adds (a test holds this table to the modules' own parsers): a command line that
#: names a command imports that module alone.
GROUPS: dict[str, tuple[str, ...]] = {
    "stream": ("run", "stream", "devices"),
    "service": ("serve", "status"),
    "qkd": ("qkd",),
    "kme": ("kme",),
    "assess": ("assess", "restart"),
    "extract": ("extract",),
    "health": ("health",),
}


def _parser(*, deferred: bool = False, command: str | None = None) -> argparse.ArgumentParser:
    """The whole command line, or only the group of ``command`` when that names one; with
    ``deferred``, the arguments some commands add on first use are left until then (``main``
    parses one command line, so only its command's are built)."""
    parser = Parser(prog="qitcore", description="Quantum random numbers and QKD key processing.")
    parser.add_argument("--version", action="version", version=f"qitcore {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    groups = [group for group, commands in GROUPS.items() if command in commands] or list(GROUPS)
    for group in groups:
        importlib.import_module(f"{__name__}.{group}").add_parsers(sub)
    if not deferred:
        parser.complete()
    return parser


_LAST_AT_EXIT: list[object] = []


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``qitcore`` command."""
    # The command line as typed, for reports that record how they were made.
    # Registered first, so run last at exit: from then on a Ctrl-C is ignored rather than ending
    # the process by the signal (status -2, not 130) while Python finishes shutting down.
    if not _LAST_AT_EXIT:  # once, however often main() is called
        _LAST_AT_EXIT.append(atexit.register(_ctrl_c_ignored_at_the_very_end))
    words = list(sys.argv[1:] if argv is None else argv)
    typed = argparse.Namespace(command_line=shlex.join(["qitcore", *words]))
    # The command named first, if any: only its group's module is imported (a few megabytes and
    # some tens of milliseconds less than all of them); anything else gets the whole parser.
    parser = _parser(deferred=True, command=words[0] if words else None)
    try:
        args = parser.parse_args(argv, namespace=typed)
        status: int = args.func(args)
        return status
    except QitError as exc:
        message = str(exc)
        if isinstance(exc, (InvalidArgumentError, InvalidTypeError)):
            # A leading word the user typed is a value of theirs (a file named "seed"), not a name.
            options = {k: v for k, v in _options(parser, typed).items() if k not in words}
            message = _as_options(message, options, _files(typed), " ".join(words))
        print(f"qitcore: error: {message}", file=sys.stderr)
        return 2
    except OSError as exc:
        # A file the user named that cannot be written, a closed pipe: the user's to fix, not a bug.
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"qitcore: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except Terminated:
        print("qitcore: terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("qitcore: interrupted", file=sys.stderr)
        atexit.register(_ctrl_c_at_exit_stops_at_once)
        return 130


def _ctrl_c_ignored_at_the_very_end() -> None:
    """The last exit handler: the interpreter's own shutdown follows, where Python would restore
    the default action of SIGINT (death by the signal) before the process has ended."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _ctrl_c_at_exit_stops_at_once() -> None:
    """After an interrupt, a further Ctrl-C while the interpreter exits stops the child processes
    at once, and the exit goes on without them.

    Registered last, this runs first at exit, before the libraries' own clean-ups (Dask closing a
    local cluster waits for its workers to leave): a user who presses Ctrl-C again during them
    means "now", and an interrupted clean-up would only print a traceback. So the press stops the
    children (terminated, killed if they linger) instead of interrupting, and the clean-ups then
    finish at once with nothing left to wait for, multiprocessing's own included (which unlinks
    its semaphores, so that nothing is reported leaked).
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def stop_children(signum: int, frame: object) -> None:
        import multiprocessing

        children = multiprocessing.active_children()
        for child in children:
            child.terminate()
        for child in children:
            child.join(1.0)
            if child.is_alive():
                child.kill()

    signal.signal(signal.SIGINT, stop_children)


# A parameter named inside an API message ("applies with min_entropy only", "input_format='bits'"):
# only names with an underscore, which no English word of a message has.
_BODY_NAME = re.compile(r"\b([a-z]+(?:_[a-z0-9]+)+)(?:='([^']*)')?")


def _option_in_body(found: re.Match[str], options: dict[str, str]) -> str:
    option = options.get(found[1])
    if option is None or not option.startswith("-"):
        return found[0]
    return option if found[2] is None else f"{option} {found[2]}"


# API parameters that are paths: their errors may go on with the path ("src: x.bin is a folder").
# The samples read from a file (``data``) are not: "data: the sample at ..." keeps its prefix, as
# the file's name, even for a file named "the".
_PATHS = frozenset({"src", "dst"})


def _as_options(message: str, options: dict[str, str], files: dict[str, str], typed: str = "") -> str:
    """``message`` with a leading parameter name (``eps_sec: ...``, as the Python API's argument
    errors begin) written as the command-line argument that gave it (``--eps-sec: ...``), or as
    the file a command declared the parameter to come from (``data: ...`` as ``x.bin: ...``).

    Every argument whose value reaches the API under its own name is covered, with no list to
    keep in step. Only argument errors are rewritten (a file's error begins with its path, which
    may be any word); a command whose values may come from a configuration file names the file
    in its own errors.
    """
    name, colon, rest = message.partition(":")
    if not (colon and name.isidentifier()):
        return message
    # Inside the message too, except where the user typed the name (a URL's sim://?buffer_bytes=).
    rest = _BODY_NAME.sub(lambda found: found[0] if found[1] in typed else _option_in_body(found, options), rest)
    if name in files:
        shown = files[name]
        if name in _PATHS and rest.lstrip().startswith(f"{shown} "):
            return rest.lstrip()  # "src: x.bin holds 0 bits" names the file already
        return f"{shown}:{rest}"
    if name in options:
        return f"{options[name]}:{rest}"
    return message


def _options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, str]:
    """The ``dest`` of each argument and how it is written: its long option, or a positional's
    metavar; in ``parser`` and the subcommands' parsers ``args`` chose below it."""
    options: dict[str, str] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            chosen = action.choices.get(getattr(args, action.dest, None) or "")
            if chosen is not None:
                options.update(_options(chosen, args))
        elif not action.option_strings:
            if action.dest != argparse.SUPPRESS:
                options.setdefault(action.dest, str(action.metavar or action.dest.upper()))
        elif action.dest != "help":
            options.setdefault(action.dest, action.option_strings[-1])
    return options


def _files(args: argparse.Namespace) -> dict[str, str]:
    """The API parameters a command takes from a file, or as the samples read from it, each with
    the file as typed: declared with ``set_defaults(files={"data": "file"})`` (one file, when the
    argument takes several; none when the file was not given)."""
    files: dict[str, str] = {}
    for api_name, dest in getattr(args, "files", {}).items():
        value = getattr(args, dest, None)
        value = value[0] if isinstance(value, list) and len(value) == 1 else value
        if isinstance(value, str):
            files[api_name] = value
    return files
