"""Two KMEs at the ends of a simulated QKD link, in one process: keys distilled over their peer
link, issued at one KME and delivered at the other under the same IDs, in both directions, and a
peer that is down withholds keys without letting the stores diverge."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from qitcore.errors import KMEUnavailable
from qitcore.kme import KeyStore, KMEClient, KMEConfig, KMEServer
from qitcore.kme.peer import POOLS, PeerClient, PeerServer, PeerSettings, SessionDriver
from qitcore.qkd import Params

AUTH = b"peer-link-key-for-the-tests-0123"


class Pair:
    def __init__(self, root: Path) -> None:
        self.root = root
        ca = trustme.CA()
        self.ca = str(root / "ca.pem")
        ca.cert_pem.write_to_path(self.ca)
        server = ca.issue_cert("127.0.0.1")
        self.cert, self.key = str(root / "kme.pem"), str(root / "kme.key")
        server.cert_chain_pems[0].write_to_path(self.cert)
        server.private_key_pem.write_to_path(self.key)
        for sae in ("SAE-A", "SAE-B"):
            leaf = ca.issue_cert(f"{sae.lower()}.example", common_name=sae)
            leaf.cert_chain_pems[0].write_to_path(root / f"{sae}.pem")
            leaf.private_key_pem.write_to_path(root / f"{sae}.key")
        self.stores = {r: KeyStore(root / f"{r}.sqlite") for r in POOLS}
        base = PeerSettings("alice", "127.0.0.1", 0, "127.0.0.1", 0, AUTH, frozenset(), 7, 20.0, 20_000_000)
        self.settings = {
            "alice": dataclasses.replace(base, saes=frozenset({"SAE-B"})),
            "bob": dataclasses.replace(base, role="bob", saes=frozenset({"SAE-A"})),
        }
        self.peer_servers = {r: PeerServer(self.stores[r], self.settings[r], Params()).start() for r in POOLS}
        self.clients = {}
        for role, other in (("alice", "bob"), ("bob", "alice")):
            port = self.peer_servers[other].address[1]
            self.settings[role] = dataclasses.replace(self.settings[role], peer_port=port)
            self.clients[role] = PeerClient(self.stores[role], self.settings[role], timeout=5)
        self.drivers = [
            SessionDriver(self.stores[r], self.clients[r], self.settings[r], Params(), 4096).start() for r in POOLS
        ]
        self.kmes = {}
        for role, mine, theirs in (("alice", "SAE-A", "SAE-B"), ("bob", "SAE-B", "SAE-A")):
            config = KMEConfig(kme_id=f"KME-{role}", saes=frozenset({mine}), peer_saes=frozenset({theirs}))
            self.kmes[role] = KMEServer(
                config, self.stores[role], certfile=self.cert, keyfile=self.key, cafile=self.ca,
                peer=self.clients[role], pool=role,
            ).start()  # fmt: skip

    def client(self, role: str, sae: str) -> KMEClient:
        port = self.kmes[role].address[1]
        return KMEClient(
            f"https://127.0.0.1:{port}", str(self.root / f"{sae}.pem"), str(self.root / f"{sae}.key"), self.ca
        )

    def close(self) -> None:
        for d in self.drivers:
            d.stop()
        for k in self.kmes.values():
            k.stop()
        for p in self.peer_servers.values():
            p.stop()
        for c in self.clients.values():
            c.close()
        for s in self.stores.values():
            s.close()


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    p = Pair(tmp_path)
    deadline = time.monotonic() + 60
    while min(p.stores[r].pool_bytes(pool) for r in POOLS for pool in POOLS) < 4096:
        assert time.monotonic() < deadline, "no QKD session completed"
        time.sleep(0.1)
    yield p
    p.close()


def test_both_kmes_hold_the_same_material(pair: Pair) -> None:
    a, b = pair.stores["alice"], pair.stores["bob"]
    assert a.last_session() == b.last_session() >= 1
    assert all(a.pool_bytes(p) == b.pool_bytes(p) for p in POOLS)


def test_keys_issued_at_one_kme_are_delivered_at_the_other(pair: Pair) -> None:
    with pair.client("alice", "SAE-A") as a, pair.client("bob", "SAE-B") as b:
        sent = a.get_keys("SAE-B", number=3)
        got = b.get_keys_with_ids("SAE-A", [k.key_ID for k in sent])
        assert [(k.key_ID, k.key) for k in got] == [(k.key_ID, k.key) for k in sent]
        back = b.get_keys("SAE-A", number=2, size=512)
        assert [k.key for k in a.get_keys_with_ids("SAE-B", [k.key_ID for k in back])] == [k.key for k in back]
        assert a.status("SAE-B").source_KME_ID == "KME-alice"


def test_a_peer_that_is_down_withholds_keys_and_catches_up(pair: Pair) -> None:
    port = pair.peer_servers["bob"].address[1]
    pair.drivers[1].stop()  # Bob's KME stops running sessions while its peer port is down
    pair.peer_servers["bob"].stop()
    pair.clients["alice"].close()
    with pair.client("alice", "SAE-A") as a:
        with pytest.raises(KMEUnavailable, match="withheld"):
            a.get_keys("SAE-B", number=2)
        assert len(pair.stores["alice"].outbox()) == 1
        settings = dataclasses.replace(pair.settings["bob"], listen_port=port)
        pair.peer_servers["bob"] = PeerServer(pair.stores["bob"], settings, Params()).start()
        deadline = time.monotonic() + 10
        while pair.stores["alice"].outbox():  # Alice's KME sends the withheld take on its own
            assert time.monotonic() < deadline
            time.sleep(0.05)
        with pair.client("bob", "SAE-B") as b:
            sent = a.get_keys("SAE-B", number=1)
            assert b.get_keys_with_ids("SAE-A", [sent[0].key_ID])[0].key == sent[0].key
    counters = [s.counters() for s in pair.stores.values()]
    assert counters[0]["taken:alice"] == counters[1]["taken:alice"]
    assert pair.stores["bob"].waiting() == 2  # the withheld keys: never delivered to anyone
    pair.drivers[1] = SessionDriver(pair.stores["bob"], pair.clients["bob"], pair.settings["bob"], Params(), 0).start()
