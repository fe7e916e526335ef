"""The package as pip installs it.

The sdist holds every input of the build (the Cargo workspace, the Python package, the firmware's C
sources, LICENSE, README); the wheel built from the unpacked sdist is the wheel built from this
checkout; it is one abi3 wheel for CPython >= 3.11 whose extension carries no symbols or debug
information. Installed into a fresh virtual environment (neither this checkout nor its .venv on
the path, an empty cache folder), the wheel alone gives the core and says which extra the device
backends need; with its extras it reads from ``sim://``, ``sim+pty://`` and the emulated QDP/1
USB device (both compile the C firmware the wheel carries), and the command line and the KME
server load.

Both builds reuse cargo's caches: the checkout's wheel shares ``target/`` with
``maturin develop --release``; the sdist's build keeps its own under ``target/wheel-check`` (its
first run compiles every crate: one to two minutes on two cores). pip fetches numpy and the
extras' packages (from its cache after the first run).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECK = ROOT / "target" / "wheel-check"
FIRMWARE = ROOT / "firmware_interface" / "c"
SHIPPED_FIRMWARE = ("host_pty.c", "qdp.c", "qdp.h", "qdp_device.c", "qdp_device.h")
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]
MAX_EXTENSION_BYTES = 4 << 20
BUILD_TIMEOUT_S = 900
PIP_TIMEOUT_S = 300


def run(*cmd: str | Path, cwd: Path = ROOT, env: dict[str, str] | None = None, timeout: float = 120) -> str:
    """``cmd``'s standard output; its whole output in the failure message when it fails."""
    result = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    shown = " ".join(map(str, cmd))
    assert result.returncode == 0, (
        f"{shown} exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    )
    return result.stdout


def maturin() -> Path:
    beside = Path(sys.executable).with_name("maturin")
    found = beside if beside.exists() else shutil.which("maturin")
    assert found, "maturin is not installed (requirements-dev.txt)"
    return Path(found)


def only(paths: list[Path]) -> Path:
    assert len(paths) == 1, paths
    return paths[0]


def elf_sections(data: bytes) -> set[str]:
    """The section names of a 64-bit little-endian ELF file, read from its section headers."""
    assert data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1, "not a 64-bit little-endian ELF file"
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def header(i: int) -> tuple[int, int, int]:
        name, _type, _flags, _addr, offset, size = struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize)
        return name, offset, size

    _, names_at, names_size = header(shstrndx)
    names = data[names_at : names_at + names_size]
    return {names[n : names.index(b"\0", n)].decode() for n, _, _ in map(header, range(shnum))}


def sync_tree(archive: Path, dest: Path) -> None:
    """``dest`` made to hold exactly the sdist's files, rewriting only those whose bytes changed, so
    cargo (which compares times) rebuilds only what changed since the last run."""
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.isfile()]
        prefix = os.path.commonpath([m.name for m in members])
        wanted = set()
        for m in members:
            rel = Path(m.name).relative_to(prefix)
            assert not rel.is_absolute() and ".." not in rel.parts, m.name
            wanted.add(rel)
            data = tar.extractfile(m).read()  # type: ignore[union-attr]
            target = dest / rel
            if not target.is_file() or target.read_bytes() != data:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
    for path in sorted(dest.rglob("*"), reverse=True):
        if path.is_file() and path.relative_to(dest) not in wanted:
            path.unlink()


@pytest.fixture(scope="module")
def sdist(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist, made right after the checkout's wheel so that both see the same files."""
    out = tmp_path_factory.mktemp("sdist")
    run(maturin(), "sdist", "--out", out)
    return only(list(out.glob("qitcore-*.tar.gz")))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The checkout's wheel, built as ``make wheel`` does (the interpreter of ``maturin develop``,
    so cargo reuses its build)."""
    out = tmp_path_factory.mktemp("wheel")
    run(maturin(), "build", "--release", "--quiet", "-i", sys.executable, "--out", out, timeout=BUILD_TIMEOUT_S)
    return only(list(out.glob("qitcore-*.whl")))


@pytest.fixture(scope="module")
def sdist_wheel(sdist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel pip builds from the sdist: built in the unpacked sdist, away from this checkout."""
    src = CHECK / "src"
    sync_tree(sdist, src)
    out = tmp_path_factory.mktemp("sdist-wheel")
    run(maturin(), "build", "--release", "--quiet", "-i", sys.executable, "--out", out,
        "--target-dir", CHECK / "target", cwd=src, timeout=BUILD_TIMEOUT_S)  # fmt: skip
    return only(list(out.glob("qitcore-*.whl")))


@pytest.fixture(scope="module")
def venv(sdist_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A fresh virtual environment with the sdist's wheel installed, without its extras; its
    environment variables (no PYTHONPATH, an empty cache folder) and a scratch folder to run in."""
    home = tmp_path_factory.mktemp("venv")
    base = getattr(sys, "_base_executable", sys.executable)
    run(base, "-m", "venv", home / "env", timeout=PIP_TIMEOUT_S)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "QITCORE"))}
    env.update(XDG_CACHE_HOME=str(home / "cache"), PATH=f"{home / 'env' / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    python = home / "env" / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", sdist_wheel, env=env, timeout=PIP_TIMEOUT_S)
    (home / "run").mkdir()
    return {"python": python, "env": env, "cwd": home / "run", "cache": home / "cache", "wheel": sdist_wheel}


def in_venv(venv: dict[str, object], *args: str | Path, timeout: float = 120) -> str:
    return run(venv["python"], *args, cwd=venv["cwd"], env=venv["env"], timeout=timeout)  # type: ignore[arg-type]


def test_sdist_holds_every_input_of_the_build(sdist: Path) -> None:
    """Every Rust and Python source of the checkout, the manifests, the lock file, LICENSE,
    README and the firmware (the shipped copies as plain files with the sources' bytes)."""
    with tarfile.open(sdist) as tar:
        files = {m.name.split("/", 1)[1]: m for m in tar.getmembers() if m.isfile()}
        needed = {"pyproject.toml", "Cargo.toml", "Cargo.lock", "LICENSE", "README.md", "PKG-INFO"}
        needed |= {"rust/qitcore-core/Cargo.toml", "rust/qitcore-py/Cargo.toml", "firmware_interface/PROTOCOL.md"}
        needed |= {p.relative_to(ROOT).as_posix() for p in ROOT.glob("rust/*/src/**/*.rs")}
        needed |= {
            p.relative_to(ROOT).as_posix() for p in (ROOT / "python").rglob("*.py*") if "__pycache__" not in p.parts
        }
        needed |= {f"firmware_interface/c/{p.name}" for p in FIRMWARE.iterdir()}
        assert sorted(needed - set(files)) == []
        for name in SHIPPED_FIRMWARE:
            data = tar.extractfile(files[f"python/qitcore/_firmware/{name}"]).read()  # type: ignore[union-attr]
            assert data == (FIRMWARE / name).read_bytes(), name
        assert tar.extractfile(files["LICENSE"]).read() == (ROOT / "LICENSE").read_bytes()  # type: ignore[union-attr]


def test_wheel_is_abi3_stripped_and_carries_the_firmware(wheel: Path) -> None:
    assert wheel.name.startswith(f"qitcore-{VERSION}-cp311-abi3-")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        tags = [line.split(": ", 1)[1] for line in z.read(f"qitcore-{VERSION}.dist-info/WHEEL").decode().splitlines()
                if line.startswith("Tag: ")]  # fmt: skip
        assert tags and all(t.startswith("cp311-abi3-") for t in tags), tags
        extensions = [n for n in names if n.startswith("qitcore/_core") and n.endswith(".so")]
        assert extensions == ["qitcore/_core.abi3.so"]
        so = z.read(extensions[0])
        assert len(so) < MAX_EXTENSION_BYTES, f"_core.abi3.so is {len(so)} bytes"
        sections = elf_sections(so)
        assert {".text", ".dynsym"} <= sections  # the reader sees the sections that stay
        assert ".symtab" not in sections and not any(s.startswith(".debug") for s in sections), sorted(sections)
        for name in SHIPPED_FIRMWARE:
            assert z.read(f"qitcore/_firmware/{name}") == (FIRMWARE / name).read_bytes(), name
        assert z.read(f"qitcore-{VERSION}.dist-info/licenses/LICENSE") == (ROOT / "LICENSE").read_bytes()
        metadata = z.read(f"qitcore-{VERSION}.dist-info/METADATA").decode()
    fields = [tuple(line.split(": ", 1)) for line in metadata.split("\n\n", 1)[0].splitlines() if ": " in line]
    assert ("Requires-Python", ">=3.11") in fields
    assert ("License-Expression", "Apache-2.0") in fields
    assert ("Requires-Dist", "numpy>=1.24") in fields
    assert ("Requires-Dist", "pyserial>=3.5 ; extra == 'devices'") in fields
    assert ("Requires-Dist", "pyusb>=1.2 ; extra == 'devices'") in fields
    assert {("Classifier", c) for c in PYPROJECT["project"]["classifiers"]} <= set(fields)


def test_sdist_builds_the_same_wheel(wheel: Path, sdist_wheel: Path) -> None:
    """The same files; the same bytes for all but the extension and the records of its hash."""

    def contents(path: Path) -> dict[str, str]:
        with zipfile.ZipFile(path) as z:
            return {n: hashlib.sha256(z.read(n)).hexdigest() for n in z.namelist()}

    ours, theirs = contents(wheel), contents(sdist_wheel)
    assert sorted(ours) == sorted(theirs)
    varies = {"qitcore/_core.abi3.so", f"qitcore-{VERSION}.dist-info/RECORD"}
    differ = [n for n in ours if ours[n] != theirs[n] and n not in varies and "/sboms/" not in n]
    assert differ == []


CORE_ONLY = """
import hashlib, importlib.util, os, sys
import qitcore
from qitcore.errors import DeviceError
from qitcore.extract import hash_condition
assert qitcore.__file__.startswith(sys.prefix), qitcore.__file__
assert importlib.util.find_spec("serial") is None and importlib.util.find_spec("usb") is None
data = os.urandom(4 * 64)
assert hash_condition(data, 64) == b"".join(hashlib.sha256(data[i : i + 64]).digest() for i in range(0, 256, 64))
with qitcore.open("sim://") as s:
    assert len(s.read(4096)) == 4096
for url in ("sim+pty://", "usb://1209:0001", "truerng://"):
    try:
        qitcore.open(url)
    except DeviceError as exc:
        assert "qitcore[devices]" in str(exc), exc
    else:
        raise AssertionError(url + " opened without pyserial and pyusb")
print("core ok")
"""


def test_installed_wheel_without_extras_gives_the_core(venv: dict[str, object]) -> None:
    assert in_venv(venv, "-c", CORE_ONLY).strip() == "core ok"
    command = Path(str(venv["python"])).with_name("qitcore")
    assert run(command, "--version", cwd=venv["cwd"], env=venv["env"]).split() == ["qitcore", VERSION]  # type: ignore[arg-type]


DEVICES = """
import os, stat, sys
from pathlib import Path
import qitcore
from qitcore.devices.firmware import firmware_cache
from qitcore.testing.usb import EmulatedBackend, QdpUsbDevice
with qitcore.open("sim+pty://") as s:
    assert len(s.read(65536)) == 65536
    assert s.info["pty"].startswith("/dev/")
backend = EmulatedBackend([QdpUsbDevice()])
with qitcore.open("usb://1209:0001", usb_backend=backend) as s:
    assert len(s.read(65536)) == 65536
cache = firmware_cache()
assert cache.is_relative_to(os.environ["XDG_CACHE_HOME"]), cache
assert stat.S_IMODE(cache.stat().st_mode) == 0o700
built = sorted(p.name.split("-")[0] for p in cache.iterdir())
assert built == ["host_pty", "libqdp"], built
shipped = Path(qitcore.__file__).parent / "_firmware"
assert sorted(p.name for p in shipped.iterdir()) == sorted({names}), list(shipped.iterdir())
print("devices ok")
"""


def test_installed_wheel_with_extras_gives_every_backend_and_the_kme(venv: dict[str, object]) -> None:
    extras = ",".join(PYPROJECT["project"]["optional-dependencies"])
    in_venv(venv, "-m", "pip", "install", "--quiet", f"{venv['wheel']}[{extras}]", timeout=PIP_TIMEOUT_S)
    script = DEVICES.replace("{names}", repr(SHIPPED_FIRMWARE))
    assert in_venv(venv, "-c", script, timeout=300).strip() == "devices ok"
    assert "--config" in in_venv(venv, "-m", "qitcore", "kme", "serve", "--help")
    in_venv(venv, "-c", "import qitcore.kme.server, qitcore.kme.client, qitcore.kme.pki")
