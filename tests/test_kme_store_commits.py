"""The key store commits changes that arrive together in one transaction, each in a savepoint of
its own: under many threads every key is issued once and delivered once, a refused change (an
unknown ID among good ones, a take larger than the pool) undoes only itself, and the counters
agree with a plain count of what the threads were given."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from qitcore.errors import KMEBadRequest, KMEUnavailable
from qitcore.kme import KeyStore


def test_concurrent_changes_are_each_all_or_nothing(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "store.sqlite")
    material = os.urandom(32 * 1000)
    store.add(material)
    issued: list[tuple[str, bytes]] = []
    delivered: list[tuple[str, bytes]] = []
    refused = {"bad id": 0, "too many": 0}
    lock = threading.Lock()

    def worker(i: int) -> None:
        for round_ in range(12):
            keys = store.take("SAE-A", ["SAE-B"], 3, 32)
            with lock:
                issued.extend(keys)
            with pytest.raises(KMEUnavailable):
                store.take("SAE-A", ["SAE-B"], 1, 10**6)  # more than the pool: takes nothing
            with lock:
                refused["too many"] += 1
            if round_ % 3 == 0:  # one unknown ID refuses the whole request, and only it
                with pytest.raises(KMEBadRequest):
                    store.deliver("SAE-B", "SAE-A", [keys[0][0], f"no-such-key-{i}"])
                with lock:
                    refused["bad id"] += 1
            got = store.deliver("SAE-B", "SAE-A", [k for k, _ in keys])
            with lock:
                delivered.extend(got)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(issued) == 8 * 12 * 3 and sorted(issued) == sorted(delivered)
    assert len({k for k, _ in issued}) == len(issued)
    # Every byte of the pool went to exactly one key, in some order of the takes.
    assert sorted(k for _, k in issued) == sorted(material[i : i + 32] for i in range(0, len(issued) * 32, 32))
    assert store.waiting() == 0 and store.pool_bytes() == len(material) - len(issued) * 32
    counters = store.counters()
    assert counters["issued"] == counters["delivered"] == len(issued)
    assert counters["taken"] == len(issued) * 32 and refused == {"bad id": 8 * 4, "too many": 8 * 12}
    store.close()


def test_a_refused_change_in_a_batch_leaves_the_others(tmp_path: Path) -> None:
    """Changes queued while one commits are committed together; one that raises is undone alone."""
    store = KeyStore(tmp_path / "store.sqlite")
    store.add(bytes(range(64)))
    release = threading.Event()
    entered = threading.Event()

    def slow(db: object) -> None:  # holds the commit so that the others queue behind it
        entered.set()
        release.wait(5)

    results: dict[str, object] = {}

    def run(name: str, fn: object) -> None:
        try:
            results[name] = fn()  # type: ignore[operator]
        except Exception as exc:
            results[name] = exc

    first = threading.Thread(target=run, args=("slow", lambda: store._change(slow)))
    first.start()
    assert entered.wait(5)
    queued = [
        threading.Thread(target=run, args=("take", lambda: store.take("SAE-A", ["SAE-B"], 1, 16))),
        threading.Thread(target=run, args=("too big", lambda: store.take("SAE-A", ["SAE-B"], 1, 128))),
        threading.Thread(target=run, args=("bad", lambda: store.deliver("SAE-B", "SAE-A", ["nothing"]))),
    ]
    for t in queued:
        t.start()
    while len(store._pending) < 3:  # all three wait for the same next commit
        threading.Event().wait(0.01)
    release.set()
    for t in [first, *queued]:
        t.join(10)
    assert isinstance(results["too big"], KMEUnavailable) and isinstance(results["bad"], KMEBadRequest)
    ((key_id, key),) = results["take"]  # type: ignore[misc]
    assert key == bytes(range(16)) and store.pool_bytes() == 48 and store.waiting() == 1
    assert store.deliver("SAE-B", "SAE-A", [key_id]) == [(key_id, key)]
    store.close()
