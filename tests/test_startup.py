"""What starting qitcore imports: ``import qitcore``, ``qitcore --help`` and an entropy assessment,
each in a fresh interpreter, load neither numpy nor any network or device library; and what is
imported lazily (``qitcore.X``, ``from qitcore import X``, the command line's deferred options)
is the same object, and the same command line, as before."""

from __future__ import annotations

import importlib
import json
import random
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import qitcore
from qitcore import _validate
from qitcore.cli import _parser
from qitcore.entropy import assess_non_iid

# Heavy, and needed only by the parts that use them: arrays (numpy), the KME and HTTPS (aiohttp,
# cryptography, ssl, asyncio), metrics, serial and USB devices, clusters.
HEAVY = ("numpy", "aiohttp", "cryptography", "ssl", "asyncio", "prometheus_client", "serial", "usb", "dask")

# The parts of qitcore that bring those in.
HEAVY_PARTS = ("qitcore.devices", "qitcore.qkd", "qitcore.kme", "qitcore.service", "qitcore.extract")

# Runs a piece of code in a fresh interpreter, then prints the modules it loaded, as JSON, on a
# line of its own after everything the code printed.
_REPORT = "\nimport json, sys\nprint('\\n' + json.dumps(sorted(sys.modules)))\n"


def _fresh(code: str, *, cwd: Path | None = None) -> tuple[str, set[str]]:
    """Runs ``code`` in a fresh interpreter: what it printed before the report, and the modules
    loaded at its end."""
    run = subprocess.run(
        [sys.executable, "-c", code + _REPORT], capture_output=True, text=True, timeout=120, cwd=cwd, check=False
    )
    assert run.returncode == 0, run.stderr
    printed, _, modules = run.stdout.rstrip("\n").rpartition("\n")
    return printed.rstrip("\n"), set(json.loads(modules))


def _command(*argv: str) -> str:
    """Code that runs ``qitcore ARGV`` as ``python -m qitcore`` does, keeping its exit status."""
    return (
        "import runpy, sys\n"
        f"sys.argv = ['qitcore', *{list(argv)!r}]\n"
        "try:\n"
        "    runpy.run_module('qitcore', run_name='__main__', alter_sys=True)\n"
        "except SystemExit as exc:\n"
        "    print(f'exit status {exc.code}')\n"
    )


def _heavy(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in names or m.startswith(HEAVY_PARTS))


@pytest.fixture(scope="module")
def one_bit_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """100,000 one-bit samples, one a byte, from a seeded generator."""
    generator = random.Random(16)
    path = tmp_path_factory.mktemp("startup") / "one-bit.bin"
    path.write_bytes(bytes(generator.getrandbits(1) for _ in range(100_000)))
    return path


def test_import_qitcore_loads_no_heavy_module() -> None:
    _, modules = _fresh("import qitcore")
    assert _heavy(modules, HEAVY) == []
    assert {m for m in modules if m.startswith("qitcore")} == {"qitcore", "qitcore._core", "qitcore.errors"}


def test_help_loads_no_heavy_module() -> None:
    printed, modules = _fresh(_command("--help"))
    assert "usage: qitcore" in printed and "assess" in printed and printed.endswith("exit status 0")
    assert _heavy(modules, HEAVY) == []


@pytest.mark.parametrize(
    ("command", "option"),
    [
        ("assess", "--bits-per-symbol"),
        ("health", "--min-entropy"),
        ("stream", "--device"),
        ("serve", "--socket"),
        ("kme", "serve"),
    ],
)
def test_a_commands_help_loads_no_heavy_module(command: str, option: str) -> None:
    printed, modules = _fresh(_command(command, "--help"))
    assert option in printed and printed.endswith("exit status 0")
    assert _heavy(modules, HEAVY) == []


def test_the_health_tests_load_no_heavy_module(one_bit_file: Path) -> None:
    printed, modules = _fresh(_command("health", str(one_bit_file), "--min-entropy", "0.5", "--fips"))
    assert "FIPS 140-2" in printed and printed.endswith(("exit status 0", "exit status 1"))
    assert _heavy(modules, HEAVY) == []


def test_a_one_bit_assessment_loads_no_heavy_module(one_bit_file: Path) -> None:
    printed, modules = _fresh(_command("assess", str(one_bit_file)))
    assert printed.endswith("exit status 0")
    assert _heavy(modules, HEAVY) == []
    # The command's answer is the library's, computed here (where numpy is loaded).
    expected = assess_non_iid(one_bit_file.read_bytes()).h_assessed
    assert f"assessed    = {expected:.6f} bits per sample" in printed


def test_the_iid_track_and_the_json_output_load_no_heavy_module(one_bit_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "iid.json"
    printed, modules = _fresh(_command("assess", str(one_bit_file), "--iid", "--seed", "1", "--json", str(out)))
    assert printed.endswith(("exit status 0", "exit status 1"))
    assert json.loads(out.read_text())["IID"] is True
    assert _heavy(modules, HEAVY) == []


def test_the_assessment_api_loads_no_heavy_module(one_bit_file: Path) -> None:
    printed, modules = _fresh(
        "from qitcore.entropy import assess_non_iid, read_samples\n"
        f"print(assess_non_iid(read_samples({str(one_bit_file)!r})).h_assessed)"
    )
    assert float(printed) == assess_non_iid(one_bit_file.read_bytes()).h_assessed
    assert _heavy(modules, HEAVY) == []


def test_the_html_report_imports_numpy_when_asked_for(one_bit_file: Path, tmp_path: Path) -> None:
    page = tmp_path / "r.html"
    printed, modules = _fresh(_command("assess", str(one_bit_file), "--quiet", "--report", str(page)))
    assert printed.endswith("exit status 0") and page.read_text().startswith("<!DOCTYPE html>")
    assert "numpy" in modules


def test_every_name_in_all_resolves_in_a_fresh_interpreter() -> None:
    printed, _ = _fresh(
        "import qitcore\n"
        "from qitcore import *\n"
        "names = [n for n in qitcore.__all__ if n not in globals()]\n"
        "print(names)"
    )
    assert printed == "[]"


@pytest.mark.parametrize(
    ("name", "home"),
    [
        ("open", "qitcore.devices"),
        ("open_raw", "qitcore.devices"),
        ("QuantumBitGenerator", "qitcore.randomness"),
        ("QuantumRandom", "qitcore.randomness"),
        ("randbytes", "qitcore.randomness"),
        ("QrngStream", "qitcore.stream"),
        ("RawSampleStream", "qitcore.stream"),
        ("QitError", "qitcore.errors"),
        ("as_dict", "qitcore._records"),
        ("__version__", "qitcore._core"),
    ],
)
def test_names_are_their_home_modules_objects(name: str, home: str) -> None:
    assert getattr(qitcore, name) is getattr(importlib.import_module(home), name)
    assert name in qitcore.__all__


# The subpackages the package's docstring and the README name, and the others users reach as
# attributes of the package.
SUBMODULES = ["bits", "cli", "corpus", "devices", "entropy", "errors", "extract", "health", "kme", "protocol", "qkd",
              "randomness", "report", "service", "stream", "testing"]  # fmt: skip


@pytest.mark.parametrize("name", SUBMODULES)
def test_every_subpackage_is_an_attribute_in_a_fresh_interpreter(name: str) -> None:
    printed, modules = _fresh(f"import qitcore\nprint(qitcore.{name}.__name__)")
    assert printed == f"qitcore.{name}" and f"qitcore.{name}" in modules


def test_dir_lists_what_resolves_and_nothing_else_does() -> None:
    listed = dir(qitcore)
    assert set(qitcore.__all__) <= set(listed)
    assert not hasattr(qitcore, "no_such_thing")
    with pytest.raises(AttributeError, match="no_such_thing"):
        _ = qitcore.no_such_thing  # type: ignore[attr-defined]


# Every module that serves names on first use (a module-level __getattr__, which takes the name
# alone), found in the package's sources so that a new one is covered without being listed here.
def _lazy_modules() -> list[str]:
    root = Path(qitcore.__file__).parent
    found = []
    for path in root.rglob("*.py"):
        if re.search(r"^ *def __getattr__\(name: str\)", path.read_text(), re.MULTILINE):
            parts = path.relative_to(root.parent).with_suffix("").parts
            found.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return sorted(found)


LAZY_MODULES = _lazy_modules()


@pytest.mark.parametrize("module", LAZY_MODULES)
def test_dir_of_a_lazy_module_lists_what_it_serves(module: str) -> None:
    """dir() is what a user (and tab completion) reads: every public name resolves and is listed,
    lazily served ones included; typing helpers and modules it only imports are not public."""
    mod = importlib.import_module(module)
    listed = set(dir(mod))
    public = set(getattr(mod, "__all__", ()))
    assert public <= listed, public - listed
    for name in listed - {n for n in listed if n.startswith("_")}:
        getattr(mod, name)
    if module == "qitcore.qkd":
        assert not {"Any", "Callable", "TYPE_CHECKING", "annotations", "dataclass", "os"} & listed


def test_help_reads_every_listed_name_without_the_optional_extras() -> None:
    # pydoc and inspect.getmembers read every name dir() lists: in a fresh interpreter where the
    # extras' packages cannot be imported, each must resolve, and none of the modules that need an
    # extra may be listed (reading it would raise, or register the emulated devices).
    script = (
        "import sys\n"
        "for blocked in ('serial', 'usb', 'aiohttp', 'cryptography', 'prometheus_client'):\n"
        "    sys.modules[blocked] = None\n"
        "import inspect, pydoc, qitcore\n"
        "names = dir(qitcore)\n"
        "assert not {'kme', 'service', 'testing', 'cli'} & set(names), names\n"
        "inspect.getmembers(qitcore)\n"
        "pydoc.render_doc(qitcore)\n"
        "print(len(names))"
    )
    printed, modules = _fresh(script)
    assert int(printed) >= len(qitcore.__all__)
    assert not {"qitcore.kme", "qitcore.service", "qitcore.testing"} & set(modules)


def test_lazily_reexported_names_are_the_originals() -> None:
    from qitcore import entropy, extract, report
    from qitcore.report import files, html, json_output, progress, terminal

    assert entropy.conditioned_entropy is extract.conditioned_entropy  # type: ignore[attr-defined]
    homes = {"write_atomically": files, "html_report": html, "iid_json": json_output, "non_iid_json": json_output,
             "Progress": progress, "iid_table": terminal, "non_iid_table": terminal}  # fmt: skip
    assert sorted(homes) == sorted(report.__all__)
    for name, home in homes.items():
        assert getattr(report, name) is getattr(home, name)
    assert not hasattr(report, "no_such_thing") and not hasattr(entropy, "no_such_thing")


def test_real_numbers_are_checked_without_numpy_and_numpys_are_still_accepted() -> None:
    printed, modules = _fresh("from qitcore import _validate\nprint(_validate.real('x', 2), _validate.real('y', 0.5))")
    assert printed == "2.0 0.5" and "numpy" not in modules
    assert _validate.real("x", np.float32(0.5)) == 0.5 and _validate.real("x", np.int64(3)) == 3.0
    for refused in (True, "1", None, np.bool_(True)):
        with pytest.raises(qitcore.errors.InvalidTypeError):
            _validate.real("x", refused)


COMMAND_LINES = [
    ["qkd", "simulate", "--pulses", "2e7", "--seed", "3"],
    ["qkd", "alice", "--listen", "127.0.0.1:0", "--records", "a.npz", "--auth-key-file", "k"],
    ["qkd", "bob", "--connect", "127.0.0.1:9", "--records", "b.npz", "--auth-key-file", "k", "--mu", "0.5,0.1,0"],
    ["assess", "f", "--iid", "--seed", "1"],
    ["kme", "get", "SAE-B", "--url", "u", "--cert", "c", "--key", "k", "--ca", "a"],
]


@pytest.mark.parametrize("argv", COMMAND_LINES, ids=lambda argv: " ".join(argv[:2]))
def test_options_built_on_first_use_parse_as_the_whole_tree_does(argv: list[str]) -> None:
    assert vars(_parser(deferred=True).parse_args(argv)) == vars(_parser().parse_args(argv))


@pytest.mark.parametrize("command", [["qkd"], ["qkd", "simulate"], ["qkd", "bob"]])
def test_help_of_options_built_on_first_use_is_the_whole_trees(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    texts = []
    for parser in (_parser(deferred=True), _parser()):
        with pytest.raises(SystemExit):
            parser.parse_args([*command, "--help"])
        texts.append(capsys.readouterr().out)
    assert texts[0] == texts[1] and "usage: qitcore qkd" in texts[0]
    if command[-1] == "simulate":
        from qitcore.qkd import LinkModel

        assert f"fibre length in km ({LinkModel().distance_km:g})" in texts[0]
