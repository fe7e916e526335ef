"""What the KME's key store leaves on disk: its files are owner-only whatever the umask, and no
file SQLite writes (the database, its journal, a write-ahead log or shared-memory file if one
appeared) holds the bytes of a delivered key: after deliveries, and after the KME process is
killed (SIGKILL) in the middle of deliveries. Keys not yet delivered are found by the same
search, which shows the search would see a delivered one."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from qitcore.errors import ChannelClosed, KMEError
from qitcore.kme import KeyStore, KMEClient
from qitcore.kme.pki import local_pki

SUFFIXES = ("", "-journal", "-wal", "-shm")


def _files(path: Path) -> dict[str, bytes]:
    return {s: Path(f"{path}{s}").read_bytes() for s in SUFFIXES if Path(f"{path}{s}").exists()}


def _found(path: Path, keys: list[bytes]) -> list[bytes]:
    """The keys of which either half appears in any of the store's files. A key cut by a page
    boundary (pool rows overflow onto further pages) keeps at least one half whole."""
    contents = list(_files(path).values())
    return [k for k in keys if any(k[:16] in c or k[16:] in c for c in contents)]


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_store_files_are_owner_only_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    path = tmp_path / "store.sqlite"
    old = os.umask(umask)
    try:
        store = KeyStore(path)
        store.add(os.urandom(4096))
        (key,) = store.take("SAE-A", ["SAE-B"], 1, 32)
        store.deliver("SAE-B", "SAE-A", [key[0]])
        present = {s: os.stat(f"{path}{s}").st_mode & 0o777 for s in SUFFIXES if os.path.exists(f"{path}{s}")}
        store.close()
    finally:
        os.umask(old)
    assert "" in present and "-journal" in present  # the rollback journal stays, emptied
    assert present == dict.fromkeys(present, 0o600)


def test_an_existing_store_readable_by_others_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    KeyStore(path).close()
    for suffix in ("", "-journal"):
        os.chmod(f"{path}{suffix}", 0o644)
    KeyStore(path).close()
    assert all(os.stat(f"{path}{s}").st_mode & 0o777 == 0o600 for s in ("", "-journal"))


def test_delivered_keys_are_in_no_file_after_deliveries(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    store = KeyStore(path)
    store.add(os.urandom(64 * 1024))  # several pages of pool rows, as the feeder adds them
    taken = [k for _ in range(40) for k in store.take("SAE-A", ["SAE-B"], 8, 32)]
    two = store.take("SAE-A", ["SAE-B", "SAE-C"], 4, 64)  # delivered once to each slave
    delivered, waiting = taken[: len(taken) // 2], taken[len(taken) // 2 :]
    for i in range(0, len(delivered), 5):
        store.deliver("SAE-B", "SAE-A", [k for k, _ in delivered[i : i + 5]])
    store.deliver("SAE-B", "SAE-A", [k for k, _ in two])
    half = _found(path, [k for _, k in two])  # still waiting for SAE-C: on disk
    store.deliver("SAE-C", "SAE-A", [k for k, _ in two])
    assert _found(path, [k for _, k in delivered + two]) == []
    assert len(half) == len(two) and _found(path, [k for _, k in waiting]) == [k for _, k in waiting]
    store.close()
    assert _found(path, [k for _, k in delivered + two]) == []


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as s:
        return int(s.getsockname()[1])


def test_delivered_keys_are_in_no_file_after_a_kill_during_deliveries(tmp_path: Path) -> None:
    folder = tmp_path / "kme"
    local_pki(folder, ["SAE-A", "SAE-B"])
    path = folder / "store.sqlite"
    store = KeyStore(path)
    material = os.urandom(256 * 1024)
    store.add(material)
    store.close()
    port = _free_port()
    args = ["kme", "serve", "--dir", str(folder), "--listen", f"127.0.0.1:{port}", "--no-source"]
    proc = subprocess.Popen([sys.executable, "-m", "qitcore", *args], stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None and "listening on" in proc.stderr.readline()
    url = f"https://127.0.0.1:{port}"

    def client(sae: str) -> KMEClient:
        return KMEClient(url, str(folder / f"{sae}.pem"), str(folder / f"{sae}.key"), str(folder / "ca.pem"))

    delivered: list[bytes] = []
    issued: list[bytes] = []
    lock = threading.Lock()
    stop = threading.Event()

    def worker() -> None:
        with client("SAE-A") as a, client("SAE-B") as b:
            while not stop.is_set():
                try:
                    keys = a.get_keys("SAE-B", number=4)
                    with lock:
                        issued.extend(k.key for k in keys)
                    got = b.get_keys_with_ids("SAE-A", [k.key_ID for k in keys])
                    with lock:
                        delivered.extend(k.key for k in got)
                except (ChannelClosed, KMEError):
                    return  # the KME was killed

    threads = [threading.Thread(target=worker) for _ in range(4)]
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while len(delivered) < 200:  # kill once deliveries are well under way, in the middle of more
            assert time.monotonic() < deadline, "the KME delivered too few keys"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    with lock:
        gone, out = list(delivered), list(issued)
    assert len(gone) >= 200 and _found(path, gone) == []
    # Material never issued is still there: the search would have seen keys.
    tail = [material[-i - 32 : -i] for i in range(32, 4096, 512)]
    assert _found(path, tail) == tail
    # So are keys issued and not delivered, but for those whose delivery the kill cut short.
    undelivered = [k for k in out if k not in set(gone)]
    assert len(_found(path, undelivered)) >= len(undelivered) - 16
