"""The C reference firmware as the package builds it for sim+pty:// and the emulated USB device:
from the sources shipped in the package (links to firmware_interface/c, their one copy), into an
owner-only per-user cache, once per sources, compiler and flags; and the errors when a compiler, a
source file or pyserial/pyusb (the devices extra) is missing."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest
import qitcore
from qitcore.devices.firmware import build_firmware, firmware_cache, firmware_sources
from qitcore.errors import DeviceError, QitError

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ("libqdp.so", ("qdp.c", "qdp_device.c"), ("-shared", "-fPIC"))


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("QITCORE_FIRMWARE", raising=False)
    monkeypatch.delenv("CC", raising=False)
    return tmp_path / "cache"


def test_shipped_sources_are_the_firmware_interface_files() -> None:
    shipped = firmware_sources()
    assert shipped == ROOT / "python" / "qitcore" / "_firmware"
    names = sorted(p.name for p in shipped.iterdir())
    assert names == ["host_pty.c", "qdp.c", "qdp.h", "qdp_device.c", "qdp_device.h"]
    for name in names:
        assert (shipped / name).is_symlink()
        assert (shipped / name).resolve() == ROOT / "firmware_interface" / "c" / name


def test_built_once_into_an_owner_only_cache(cache_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = firmware_cache()
    assert folder == cache_home / "qitcore" / "firmware"
    folder.mkdir(parents=True)
    folder.chmod(0o777)  # left open by someone: closed again before anything is written into it
    lib = build_firmware(*LIBRARY)
    assert lib.parent == folder and lib.read_bytes()[:4] == b"\x7fELF"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    built = lib.stat().st_mtime_ns
    assert build_firmware(*LIBRARY) == lib and lib.stat().st_mtime_ns == built
    assert sorted(folder.iterdir()) == [lib]  # no temporary folder left behind
    # Another compiler command is another build.
    monkeypatch.setenv("CC", "cc -DQITCORE_TEST_MARKER")
    other = build_firmware(*LIBRARY)
    assert other != lib and sorted(folder.iterdir()) == sorted([lib, other])


def test_no_compiler_says_what_to_install(cache_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(DeviceError, match=r"need a C compiler.*apt-get install gcc") as info:
        build_firmware(*LIBRARY)
    assert isinstance(info.value, QitError) and isinstance(info.value, OSError)
    assert not (cache_home / "qitcore" / "firmware").exists() or not any(
        (cache_home / "qitcore" / "firmware").iterdir()
    )


def test_failed_compile_names_the_compiler_and_leaves_nothing(cache_home: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    broken = tmp_path / "src"
    broken.mkdir()
    for name in ("qdp.c", "qdp_device.c", "qdp.h", "qdp_device.h"):
        (broken / name).write_text("this is not C;\n")
    monkeypatch.setenv("QITCORE_FIRMWARE", str(broken))
    with pytest.raises(DeviceError, match="compiling the reference firmware with .* failed"):
        build_firmware(*LIBRARY)
    assert list(firmware_cache().iterdir()) == []


def test_missing_source_is_named(cache_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    partial = tmp_path / "src"
    partial.mkdir()
    (partial / "qdp.c").write_text("int x;\n")
    monkeypatch.setenv("QITCORE_FIRMWARE", str(partial))
    with pytest.raises(DeviceError, match=r"missing qdp_device\.c, qdp\.h, qdp_device\.h"):
        build_firmware(*LIBRARY)


@pytest.mark.parametrize(("url", "package"), [("sim+pty://", "pyserial"), ("loop://", "pyserial"),
                                              ("truerng://", "pyserial"), ("usb://1209:0001", "pyusb")])  # fmt: skip
def test_device_backends_without_the_devices_extra(url: str, package: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for module in [m for m in sys.modules if m.split(".")[0] in ("serial", "usb")]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setitem(sys.modules, "serial", None)  # None in sys.modules: the import fails
    monkeypatch.setitem(sys.modules, "usb", None)
    with pytest.raises(DeviceError, match=rf"needs {package}, .*pip install 'qitcore\[devices\]'"):
        qitcore.open(url)
    with qitcore.open("sim://") as s:  # the core still works
        assert len(s.read(1024)) == 1024


def test_cache_is_under_home_without_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert firmware_cache() == tmp_path / ".cache" / "qitcore" / "firmware"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # the XDG spec ignores relative paths
    assert firmware_cache() == tmp_path / ".cache" / "qitcore" / "firmware"
    assert os.path.isabs(firmware_cache())
