"""Every example in README.md runs as written: each fenced ``python`` and ``sh`` block is extracted
and run in a fresh folder holding the files it names (made here: sample files from numpy), with
``QITCORE_DEVICE=sim://``. A shell line ending in ``# exit status N`` must exit with N, every other
line with 0. What cannot run here is listed below with the reason, and substituted only where
the README names hardware or a fixed port."""

from __future__ import annotations

import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BIN = Path(sys.executable).parent

NOT_RUNNABLE = {
    "make run": "the quick start builds the project and runs this test suite (make test): it cannot run from inside it",
}
# The README names hardware and fixed ports; here they become the simulator and free ports.
HARDWARE = {"serial:///dev/ttyACM0": "sim://"}


@dataclass(frozen=True)
class Block:
    language: str
    line: int
    text: str

    @property
    def id(self) -> str:
        return f"{self.language}-line{self.line}"


def _blocks() -> list[Block]:
    text = README.read_text()
    found = []
    for m in re.finditer(r"^```(\w*)\n(.*?)^```$", text, re.S | re.M):
        found.append(Block(m[1], text.count("\n", 0, m.start()) + 1, m[2]))
    return found


BLOCKS = _blocks()
RUNNABLE = [b for b in BLOCKS if b.language in ("python", "sh") and not any(k in b.text for k in NOT_RUNNABLE)]
KME = [b for b in RUNNABLE if "kme" in b.text.lower() and "8443" in b.text]
PLAIN = [b for b in RUNNABLE if b not in KME]


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as server:
        return int(server.getsockname()[1])


def _fixtures(folder: Path, text: str) -> None:
    """The input files a block names, as the README describes them."""
    rng = np.random.default_rng(2024)
    if "samples.bin" in text:  # 4-bit samples: every assess line (and --subset 2,100000) applies
        (folder / "samples.bin").write_bytes(rng.integers(0, 16, 300_000, dtype=np.uint8).tobytes())
    if "restarts.bin" in text:  # 1000 restarts x 1000 samples
        (folder / "restarts.bin").write_bytes(rng.integers(0, 256, 1_000_000, dtype=np.uint8).tobytes())
    if "capture.bin" in text:  # enough bytes for AIS 31 procedure A
        (folder / "capture.bin").write_bytes(rng.integers(0, 256, 1_100_000, dtype=np.uint8).tobytes())


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QITCORE_")}
    env["QITCORE_DEVICE"] = "sim://"
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def _logical_lines(script: str) -> Iterator[str]:
    """Commands of a shell block: continuation lines joined, comment-only lines dropped."""
    pending = ""
    for line in script.splitlines():
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        line = pending + line
        pending = ""
        if line.strip() and not line.strip().startswith("#"):
            yield line


def _checked_script(script: str) -> str:
    """The block as a bash script that stops at the first line whose exit status is not the
    documented one (0 unless the line ends in ``# exit status N``)."""
    out = []
    for number, line in enumerate(_logical_lines(script), 1):
        out.append(line)
        if line.rstrip().endswith("&"):
            continue
        m = re.search(r"#\s*exit status (\d+)\s*$", line)
        want = int(m[1]) if m else 0
        out.append(
            f's=$?; if [ "$s" -ne {want} ]; then echo "README line {number}: exit status $s, expected {want}" >&2; '
            "exit 1; fi"
        )
    return "\n".join(out) + "\n"


def _run(block: Block, folder: Path, substitutions: dict[str, str]) -> subprocess.CompletedProcess[str]:
    text = block.text
    for old, new in substitutions.items():
        text = text.replace(old, new)
    if block.language == "python":
        (folder / "example.py").write_text(text)
        command = [sys.executable, "example.py"]
    else:
        (folder / "example.sh").write_text(_checked_script(text))
        command = ["bash", "example.sh"]
    return subprocess.run(command, cwd=folder, env=_env(), capture_output=True, text=True, timeout=300)


def test_the_readme_has_the_examples_this_test_expects() -> None:
    assert {b.language for b in BLOCKS} <= {"python", "sh", ""}, "a block in a language this test does not run"
    assert len(PLAIN) >= 7 and len(KME) == 2
    skipped = [b for b in BLOCKS if b.language in ("python", "sh") and b not in RUNNABLE]
    assert len(skipped) == len(NOT_RUNNABLE)


def test_the_quick_start_is_two_commands() -> None:
    quick = next(b for b in BLOCKS if "make run" in b.text)
    commands = [line.split("#")[0].strip() for line in quick.text.splitlines()]
    assert [c for c in commands if c] == ["make run", "make test"]


@pytest.mark.parametrize("block", PLAIN, ids=[b.id for b in PLAIN])
def test_readme_example_runs(block: Block, tmp_path: Path) -> None:
    _fixtures(tmp_path, block.text)
    result = _run(block, tmp_path, {**HARDWARE, "7000": str(_free_port())})
    assert result.returncode == 0, f"README line {block.line}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"


@pytest.fixture(scope="module")
def kme(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    """The README's local KME, started as its first KME block says, on a free port."""
    folder, port = tmp_path_factory.mktemp("kme"), _free_port()
    serve = next(_logical_lines(KME[0].text)).split("#")[0].split()
    assert serve == ["qitcore", "kme", "serve"]
    log = open(folder / "serve.log", "w")  # noqa: SIM115 - closed below, after the server
    server = subprocess.Popen(
        [*serve, "--listen", f"127.0.0.1:{port}"], cwd=folder, env=_env(), stdout=log, stderr=subprocess.STDOUT
    )
    try:
        _await_keys(folder, port, server)
        yield folder, port
    finally:
        server.terminate()
        server.wait(30)
        log.close()


def _await_keys(folder: Path, port: int, server: subprocess.Popen[bytes]) -> None:
    """Waits until the KME answers and holds keys for the README's requests."""
    from qitcore.errors import QitError
    from qitcore.kme import KMEClient

    local = folder / "kme-local"
    deadline = time.monotonic() + 120
    while True:
        assert server.poll() is None and time.monotonic() < deadline, (folder / "serve.log").read_text()
        if (local / "ca.pem").exists():
            try:
                with KMEClient(f"https://127.0.0.1:{port}", *(str(local / f) for f in
                               ("SAE-A.pem", "SAE-A.key", "ca.pem"))) as client:  # fmt: skip
                    if client.status("SAE-B").stored_key_count >= 4:
                        return
            except (QitError, OSError):
                pass  # not listening yet, or certificates still being written
        time.sleep(0.2)


@pytest.mark.parametrize("block", KME, ids=[b.id for b in KME])
def test_readme_kme_example_runs(block: Block, kme: tuple[Path, int]) -> None:
    folder, port = kme
    text = block.text
    if block.language == "sh":
        text = "\n".join(_logical_lines(text)).split("\n", 1)[1]  # the server is already running
        if shutil.which("curl") is None:
            _request_as_curl_would(text.replace("8443", str(port)), folder)
            return
    result = _run(Block(block.language, block.line, text), folder, {"8443": str(port)})
    assert result.returncode == 0, f"README line {block.line}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    if block.language == "sh":
        assert '"keys"' in result.stdout


def _request_as_curl_would(command: str, folder: Path) -> None:
    """The README's curl line, made with Python's TLS client where curl is not installed."""
    options = dict(re.findall(r"--(cacert|cert|key) (\S+)", command))
    (url,) = re.findall(r"https://[^\s']+", command)
    context = ssl.create_default_context(cafile=str(folder / options["cacert"]))
    context.load_cert_chain(str(folder / options["cert"]), str(folder / options["key"]))
    with urllib.request.urlopen(url, context=context, timeout=30) as response:
        assert response.status == 200 and b'"keys"' in response.read()
