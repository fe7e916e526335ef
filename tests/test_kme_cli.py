"""``qitcore kme serve`` as a process: the local set-up (generated certificates, simulated link
feeding the store), keys surviving a SIGKILL and restart, and configuration errors."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from qitcore.errors import KMEBadRequest
from qitcore.kme import KMEClient


def _start(folder: Path, *extra: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "qitcore", "kme", "serve", "--dir", str(folder), "--listen", "127.0.0.1:0", *extra],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert "listening on" in line, line
    return proc, int(line.split("https://", 1)[1].split(" ")[0].rsplit(":", 1)[1])


def _client(folder: Path, port: int, sae: str) -> KMEClient:
    return KMEClient(
        f"https://127.0.0.1:{port}", str(folder / f"{sae}.pem"), str(folder / f"{sae}.key"), str(folder / "ca.pem")
    )


def test_local_kme_serves_distilled_keys_and_keeps_them_across_a_kill(tmp_path: Path) -> None:
    folder = tmp_path / "kme-local"
    proc, port = _start(folder)
    try:
        with _client(folder, port, "SAE-A") as a:
            deadline = time.monotonic() + 60
            while a.status("SAE-B").stored_key_count < 10:
                assert time.monotonic() < deadline, "the feeder stored no keys"
                time.sleep(0.2)
            keys = a.get_keys("SAE-B", number=4)
    finally:
        proc.send_signal(signal.SIGKILL)  # no clean shutdown: the store must not need one
        proc.wait(10)
    assert (folder / "SAE-A.key").stat().st_mode & 0o077 == 0
    proc, port = _start(folder, "--no-source")
    try:
        # The command-line client, as SAE-B, fetches two of the keys; the library the rest.
        tls = ["--url", f"https://127.0.0.1:{port}", "--ca", str(folder / "ca.pem")]
        sae_b = ["--cert", str(folder / "SAE-B.pem"), "--key", str(folder / "SAE-B.key")]
        ids = [keys[0].key_ID, keys[1].key_ID]
        command = [sys.executable, "-m", "qitcore", "kme", "get-by-id", "SAE-A", *ids, *tls, *sae_b]
        out = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        fetched = json.loads(out.stdout)["keys"]
        assert [base64.b64decode(k["key"]) for k in fetched] == [keys[0].key, keys[1].key]
        with _client(folder, port, "SAE-B") as b:
            got = b.get_keys_with_ids("SAE-A", [k.key_ID for k in keys[2:]])
            assert [g.key for g in got] == [k.key for k in keys[2:]] and all(len(k.key) == 32 for k in got)
            with pytest.raises(KMEBadRequest):
                b.get_keys_with_ids("SAE-A", [keys[0].key_ID])
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0


@pytest.mark.parametrize(
    "text, message",
    [
        ("[kme\n", "not valid TOML"),
        ("[kme]\nsaes = []\n", "saes"),
        ('[kme]\nsaes = ["A"]\n[limits]\nkey_size = 100\n', "multiples of 8"),
        ('[kme]\nsaes = ["A"]\ncolour = "red"\n', "unknown key"),
        ('[kme]\nsaes = ["A"]\nlisten = "nowhere"\n', "HOST:PORT"),
        ('[kme]\nsaes = ["A"]\n[tls]\ncert = "missing.pem"\n', "tls: cannot load"),
        ('[kme]\nsaes = ["A"]\n[peer]\nrole = "carol"\n', "role"),
        ('[kme]\nsaes = ["A"]\n[source]\nreconciliation = "turbo"\n', "[source] reconciliation"),
        ('[kme]\nsaes = ["A"]\n[source]\nreconciliation = 3\n', "[source] reconciliation"),
    ],
)
def test_configuration_errors_are_named(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "kme.toml"
    config.write_text(text)
    result = subprocess.run(
        [sys.executable, "-m", "qitcore", "kme", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and message in result.stderr


@pytest.mark.parametrize("method", ["cascade", "blind"])
def test_the_feeder_stops_at_max_key_count(tmp_path: Path, method: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import qitcore.kme.feeder
    from qitcore.kme import KeyStore
    from qitcore.kme.config import SourceSettings
    from qitcore.kme.feeder import Feeder
    from qitcore.qkd import distill

    # Its sessions reconcile as [source] says.
    used = []

    def distilling(*args: Any, **kwargs: Any) -> Any:
        used.append(kwargs["params"].reconciliation)
        return distill(*args, **kwargs)

    monkeypatch.setattr(qitcore.kme.feeder, "distill", distilling)
    store = KeyStore(tmp_path / "s.sqlite")
    settings = SourceSettings(distance_km=20, pulses=30_000_000, low_water=10**6, reconciliation=method)
    feeder = Feeder(store, settings, 256, 50, log=False).start()
    deadline = time.monotonic() + 60
    while store.pool_bytes() < 50 * 32 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    feeder.stop()
    assert store.pool_bytes() == 50 * 32 and feeder.error is None
    assert used and set(used) == {method}
    store.close()


def _free_port() -> int:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as s:
        return int(s.getsockname()[1])


def _start_config(config: Path) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "qitcore", "kme", "serve", "--config", str(config), "--listen", "127.0.0.1:0"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    for _ in range(5):
        line = proc.stderr.readline()
        if "https://" in line:
            return proc, int(line.split("https://", 1)[1].split(" ")[0].rsplit(":", 1)[1])
    raise AssertionError(f"the KME did not start: {line}")


def test_two_kmes_share_keys_through_qkd_and_survive_a_kill(tmp_path: Path) -> None:
    from qitcore.kme.pki import local_pki

    local_pki(tmp_path, ["SAE-A", "SAE-B"])
    (tmp_path / "peer.key").write_bytes(b"k" * 32)
    ports = {"alice": _free_port(), "bob": _free_port()}
    configs = {}
    for role, other, mine, theirs in (("alice", "bob", "SAE-A", "SAE-B"), ("bob", "alice", "SAE-B", "SAE-A")):
        configs[role] = tmp_path / f"{role}.toml"
        configs[role].write_text(
            f'[kme]\nid = "KME-{role}"\nstore = "{role}.sqlite"\nsaes = ["{mine}"]\n'
            f'[source]\npulses = 20000000\nlow_water = 100\nreconciliation = "blind"\n'
            f'[peer]\nrole = "{role}"\naddress = "127.0.0.1:{ports[other]}"\nlisten = "127.0.0.1:{ports[role]}"\n'
            f'auth_key_file = "peer.key"\nsaes = ["{theirs}"]\nlink_seed = 5\n'
        )
    procs = {role: _start_config(configs[role]) for role in ("alice", "bob")}
    try:
        with _client(tmp_path, procs["alice"][1], "SAE-A") as a:
            deadline = time.monotonic() + 60
            while a.status("SAE-B").stored_key_count < 20:
                assert time.monotonic() < deadline, "no QKD session between the KMEs"
                time.sleep(0.2)
            first, second = a.get_keys("SAE-B", number=2), a.get_keys("SAE-B", number=1)
            with _client(tmp_path, procs["bob"][1], "SAE-B") as b:
                assert [k.key for k in b.get_keys_with_ids("SAE-A", [k.key_ID for k in first])] == [
                    k.key for k in first
                ]
            procs["bob"][0].send_signal(signal.SIGKILL)
            procs["bob"][0].wait(10)
            procs["bob"] = _start_config(configs["bob"])
            with _client(tmp_path, procs["bob"][1], "SAE-B") as b:
                assert b.get_keys_with_ids("SAE-A", [second[0].key_ID])[0].key == second[0].key
                back = b.get_keys("SAE-A", number=1, size=128)
            assert a.get_keys_with_ids("SAE-B", [back[0].key_ID])[0].key == back[0].key
    finally:
        for proc, _ in procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc, _ in procs.values():
            assert proc.wait(10) == 0
