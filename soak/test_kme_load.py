"""KME load on loopback with mutual TLS: 8 client threads (master SAE-A asks enc_keys, slave SAE-B
dec_keys for the same IDs) for 60 s, the KME killed with SIGKILL and restarted after 30 s.

Counted: every key a master received reaches the slave exactly once with the same bytes (none
lost, none served twice), replays are refused, and the request rate (enc_keys and dec_keys
together) is at least 500 per second. Keys whose enc_keys answer died with the KME stay in the
store undelivered: they are reported, and there are at most as many as requests in flight.
"""

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
from qitcore.errors import ChannelClosed, KMEBadRequest, KMEError
from qitcore.kme import KeyStore, KMEClient
from qitcore.kme.pki import local_pki

THREADS, SECONDS, KILL_AT = 8, 60.0, 30.0


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as s:
        return int(s.getsockname()[1])


def _serve(folder: Path, port: int) -> subprocess.Popen[str]:
    args = ["kme", "serve", "--dir", str(folder), "--listen", f"127.0.0.1:{port}", "--no-source"]
    proc = subprocess.Popen([sys.executable, "-m", "qitcore", *args], stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None and "listening on" in proc.stderr.readline()
    return proc


def test_load_with_a_kill_and_restart(tmp_path: Path) -> None:
    folder = tmp_path / "kme"
    local_pki(folder, ["SAE-A", "SAE-B"])
    store = KeyStore(folder / "store.sqlite")
    store.add(os.urandom(3 << 20))  # 98,304 keys of 256 bits
    store.close()
    port = _free_port()
    proc = [_serve(folder, port)]
    url = f"https://127.0.0.1:{port}"

    def client(sae: str) -> KMEClient:
        return KMEClient(url, str(folder / f"{sae}.pem"), str(folder / f"{sae}.key"), str(folder / "ca.pem"))

    issued: dict[str, bytes] = {}
    delivered: dict[str, bytes] = {}
    twice: list[str] = []
    requests = [0] * THREADS
    lock = threading.Lock()
    end = time.monotonic() + SECONDS

    def worker(i: int) -> None:
        a, b = client("SAE-A"), client("SAE-B")
        pending: list[tuple[str, bytes]] = []
        while time.monotonic() < end or pending:
            try:
                if not pending and time.monotonic() < end:
                    key = a.get_keys("SAE-B", number=1)[0]
                    requests[i] += 1
                    with lock:
                        issued[key.key_ID] = key.key
                    pending.append((key.key_ID, key.key))
                if pending:
                    got = b.get_keys_with_ids("SAE-A", [pending[0][0]])[0]
                    requests[i] += 1
                    with lock:
                        if got.key_ID in delivered:
                            twice.append(got.key_ID)
                        delivered[got.key_ID] = got.key
                    pending.pop(0)
            except ChannelClosed:
                time.sleep(0.05)  # the KME is down: try again
            except KMEBadRequest:
                # A dec_keys whose answer died with the KME was committed: the key is spent.
                with lock:
                    if pending and pending[0][0] not in delivered:
                        delivered[pending[0][0]] = b"<answer lost>"
                pending.pop(0)
            except KMEError as exc:  # pragma: no cover - reported by the assertions
                raise AssertionError(exc) from exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    start = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(KILL_AT)
    proc[0].send_signal(signal.SIGKILL)
    proc[0].wait()
    proc.append(_serve(folder, port))
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    proc[-1].send_signal(signal.SIGTERM)
    assert proc[-1].wait(10) == 0

    rate = sum(requests) / elapsed
    lost_answers = sum(1 for v in delivered.values() if v == b"<answer lost>")
    store = KeyStore(folder / "store.sqlite")
    orphans = store.waiting()
    counters = store.counters()
    store.close()
    print(
        f"\nKME load: {sum(requests):,} key requests in {elapsed:.1f} s = {rate:,.0f}/s with {THREADS} threads; "
        f"{len(issued):,} keys issued, {len(delivered):,} delivered, {len(twice)} twice, "
        f"{lost_answers} dec_keys answers lost in the kill, {orphans} keys left undelivered (enc_keys answers lost); "
        f"store counters {counters}"
    )
    assert not twice
    assert set(issued) <= set(delivered)
    assert all(delivered[k] in (v, b"<answer lost>") for k, v in issued.items())
    assert lost_answers <= THREADS and orphans <= THREADS
    assert counters["issued"] == len(issued) + orphans
    assert rate >= 500
    with pytest.raises(KMEBadRequest):
        s = _serve(folder, port)
        try:
            with client("SAE-B") as b:
                b.get_keys_with_ids("SAE-A", [next(iter(issued))])
        finally:
            s.send_signal(signal.SIGTERM)
            s.wait(10)
