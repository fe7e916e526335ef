"""Keys the store hands out are the pool's bytes in order, every key of the size asked, whatever
the sizes of the additions that made the pool (rows shorter than a chunk at the end of each
addition and of each half of a session's key): checked against a plain queue of bytes, through
``take`` and through a peer's ``apply`` of the same takes."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from qitcore.errors import KMEUnavailable
from qitcore.kme import KeyStore
from qitcore.kme.store import CHUNK

from .fuzzing import examples

sizes = st.lists(st.one_of(st.integers(1, 40), st.integers(900, 1100), st.sampled_from([CHUNK - 1, CHUNK, CHUNK + 1])),
                 min_size=1, max_size=30)  # fmt: skip
requests = st.lists(st.tuples(st.integers(1, 40), st.sampled_from([1, 16, 32, 1000, 1024, 5000])), min_size=1,
                    max_size=12)  # fmt: skip


@settings(max_examples=examples(30), deadline=None)
@given(additions=sizes, asked=requests, seed=st.integers(0, 2**32))
def test_takes_are_the_pool_in_order_at_the_size_asked(
    tmp_path_factory: pytest.TempPathFactory, additions: list[int], asked: list[tuple[int, int]], seed: int
) -> None:
    folder = tmp_path_factory.mktemp("takes")
    rng = random.Random(seed)
    alice, bob = KeyStore(folder / "alice.sqlite"), KeyStore(folder / "bob.sqlite")
    queue = bytearray()  # the reference: what was added, less what was taken, in order
    session = 0
    for size in additions:
        material = rng.randbytes(size)
        if rng.random() < 0.3:  # a QKD session's key: halves into the two issuers' pools
            session += 1
            for store in (alice, bob):
                assert store.commit_session(session, ("local", "other"), material)
            queue += material[: len(material) // 2]
        else:
            for store in (alice, bob):
                store.add(material)
            queue += material
    for number, size in asked:
        need = number * size
        if need > len(queue):
            with pytest.raises(KMEUnavailable):
                alice.take("SAE-A", ["SAE-B"], number, size, outbox=True)
            continue
        keys = alice.take("SAE-A", ["SAE-B"], number, size, outbox=True)
        assert [len(k) for _, k in keys] == [size] * number
        assert b"".join(k for _, k in keys) == queue[:need]
        del queue[:need]
        assert alice.pool_bytes() == len(queue)
    # The peer repeats every take: the same bytes under the same IDs.
    for record in alice.outbox():
        bob.apply(record)
        ids = record["ids"]
        assert bob.deliver("SAE-B", "SAE-A", ids) == alice.deliver("SAE-B", "SAE-A", ids)
    assert bob.pool_bytes() == alice.pool_bytes() == len(queue)
    alice.close()
    bob.close()


def test_a_counter_ahead_of_the_rows_refuses_the_take(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "store.sqlite")
    store.add(os.urandom(3000))
    # The counter says more than the rows hold (a store damaged outside qitcore): refused, and
    # nothing taken.
    store._change(lambda db: store._count(db, "pool_bytes", 5000))
    with pytest.raises(KMEUnavailable, match="holds 3000 bytes"):
        store.take("SAE-A", ["SAE-B"], 4, 1000)
    assert store.take("SAE-A", ["SAE-B"], 3, 1000)[0][1] and store.waiting() == 3
    store.close()
