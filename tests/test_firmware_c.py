"""The C reference firmware (firmware_interface/c), compiled with gcc and run against the golden
vectors, and checked to need nothing but freestanding headers."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "firmware_interface"
C = ROOT / "c"
FLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2"]
DEVICE_SOURCES = ["qdp.c", "qdp_device.c"]


@pytest.fixture(scope="module")
def gcc() -> str:
    path = shutil.which("gcc")
    assert path, "gcc is installed by the Makefile"
    return path


@pytest.mark.parametrize("crc", ["bitwise", "table"])
def test_reference_passes_the_golden_vectors(gcc: str, tmp_path: Path, crc: str) -> None:
    exe = tmp_path / "test_qdp"
    define = ["-DQDP_CRC_TABLE"] if crc == "table" else []
    subprocess.run([gcc, *FLAGS, *define, "-o", str(exe), "test_qdp.c", *DEVICE_SOURCES], cwd=C, check=True)
    result = subprocess.run([str(exe), str(ROOT / "golden_vectors.txt")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    checks, failures = map(int, re.match(r"(\d+) checks, (\d+) failures", result.stdout).groups())
    assert failures == 0 and checks >= 40


def test_a_wrong_device_fails_the_vectors(gcc: str, tmp_path: Path) -> None:
    # The C test is not vacuous: a device that reports a temperature it does not measure fails.
    source = (C / "qdp_device.c").read_text().replace("qdp_put16(p + 34, 0x8000u)", "qdp_put16(p + 34, 0)")
    (tmp_path / "qdp_device.c").write_text(source)
    exe = tmp_path / "test_qdp"
    subprocess.run(
        [
            gcc,
            *FLAGS,
            f"-I{C}",
            "-o",
            str(exe),
            str(C / "test_qdp.c"),
            str(C / "qdp.c"),
            str(tmp_path / "qdp_device.c"),
        ],
        check=True,
    )
    result = subprocess.run([str(exe), str(ROOT / "golden_vectors.txt")], capture_output=True, text=True)
    assert result.returncode == 1 and "session status_idle" in result.stderr


@pytest.mark.parametrize("source", DEVICE_SOURCES)
def test_device_code_is_freestanding(gcc: str, tmp_path: Path, source: str) -> None:
    includes = set(re.findall(r'#include [<"]([^>"]+)[>"]', (C / source).read_text()))
    includes |= set(re.findall(r'#include [<"]([^>"]+)[>"]', (C / source.replace(".c", ".h")).read_text()))
    assert includes <= {"stdint.h", "stddef.h", "stdbool.h", "qdp.h", "qdp_device.h"}
    subprocess.run([gcc, *FLAGS, "-ffreestanding", "-c", source, "-o", str(tmp_path / "x.o")], cwd=C, check=True)
