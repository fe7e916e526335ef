"""The KME's persistent key store (SQLite).

Key material (from the QKD stack) waits in a pool. ``enc_keys`` takes keys from the pool, gives
them UUIDs and hands them to the master SAE in the same transaction that records them for their
slave SAE(s); ``dec_keys`` hands a key to each of its slaves once and deletes it when the last has
it. Every change is one transaction with ``synchronous=FULL``: a KME killed at any moment restarts
with every undelivered key and without any delivered one. ``secure_delete`` overwrites deleted key
material in the file.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import KMEBadRequest, KMEUnauthorized, KMEUnavailable

__all__ = ["KeyStore"]

CHUNK = 4096

SCHEMA = """
CREATE TABLE IF NOT EXISTS pool (seq INTEGER PRIMARY KEY AUTOINCREMENT, material BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS keys (
    key_id TEXT PRIMARY KEY, master TEXT NOT NULL, material BLOB NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS key_slaves (
    key_id TEXT NOT NULL REFERENCES keys(key_id), slave TEXT NOT NULL, delivered INTEGER NOT NULL,
    PRIMARY KEY (key_id, slave));
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class KeyStore:
    """A key store in the SQLite file ``path`` (created if missing). Thread-safe."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "secure_delete=ON", "foreign_keys=ON"):
            self._db.execute(f"PRAGMA {pragma}")
        self._db.executescript(SCHEMA)

    def __repr__(self) -> str:
        return f"KeyStore({self.path!r}, pool={self.pool_bytes()} bytes, waiting={self.waiting()})"

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _count(self, db: sqlite3.Connection, name: str, add: int) -> None:
        db.execute(
            "INSERT INTO counters VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + ?", (name, add, add)
        )

    def add(self, material: bytes) -> None:
        """Adds key material (both ends of the link hold the same bytes in the same order)."""
        if material:
            # Small rows: a request reads and rewrites only the rows it takes from.
            chunks = [(bytes(material[i : i + CHUNK]),) for i in range(0, len(material), CHUNK)]
            with self._transaction() as db:
                db.executemany("INSERT INTO pool (material) VALUES (?)", chunks)
                self._count(db, "material_bytes", len(material))
                self._count(db, "pool_bytes", len(material))

    def pool_bytes(self) -> int:
        with self._lock:
            return self._pool_bytes(self._db)

    @staticmethod
    def _pool_bytes(db: sqlite3.Connection) -> int:
        row = db.execute("SELECT value FROM counters WHERE name = 'pool_bytes'").fetchone()
        return int(row[0]) if row else 0

    def waiting(self) -> int:
        """Keys handed to a master and not yet to all their slaves."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM keys").fetchone()[0])

    def counters(self) -> dict[str, int]:
        """Running totals: material_bytes added, keys issued to masters, deliveries to slaves."""
        with self._lock:
            return dict(self._db.execute("SELECT name, value FROM counters").fetchall())

    def take(self, master: str, slaves: list[str], number: int, size_bytes: int) -> list[tuple[str, bytes]]:
        """``number`` fresh keys of ``size_bytes`` for ``master``, recorded for ``slaves``.

        Raises:
            KMEUnavailable: the pool holds less than ``number × size_bytes`` bytes (nothing taken).
        """
        need = number * size_bytes
        with self._transaction() as db:
            have = self._pool_bytes(db)
            if have < need:
                raise KMEUnavailable(f"not enough key material: {number} keys of {size_bytes * 8} bits asked, "
                                     f"{have * 8} bits stored")  # fmt: skip
            taken = bytearray()
            rows = db.execute("SELECT seq, material FROM pool ORDER BY seq").fetchmany(need // CHUNK + 2)
            for seq, material in rows:
                use = min(len(material), need - len(taken))
                taken += material[:use]
                if use == len(material):
                    db.execute("DELETE FROM pool WHERE seq = ?", (seq,))
                else:
                    db.execute("UPDATE pool SET material = ? WHERE seq = ?", (material[use:], seq))
                if len(taken) == need:
                    break
            now = time.time()
            keys = []
            for i in range(number):
                key_id = str(uuid.uuid4())
                key = bytes(taken[i * size_bytes : (i + 1) * size_bytes])
                db.execute("INSERT INTO keys VALUES (?, ?, ?, ?)", (key_id, master, key, now))
                db.executemany("INSERT INTO key_slaves VALUES (?, ?, 0)", [(key_id, s) for s in slaves])
                keys.append((key_id, key))
            self._count(db, "issued", number)
            self._count(db, "pool_bytes", -need)
            taken[:] = bytes(len(taken))
        return keys

    def deliver(self, slave: str, master: str, key_ids: list[str]) -> list[tuple[str, bytes]]:
        """The keys ``key_ids`` that ``master`` received for ``slave``, each to ``slave`` once.
        All or nothing: one bad ID refuses the whole request and changes nothing.

        Raises:
            KMEBadRequest: an ID is repeated, unknown, or already delivered to ``slave``.
            KMEUnauthorized: a key belongs to another pair of SAEs.
        """
        if len(set(key_ids)) != len(key_ids):
            raise KMEBadRequest("key_IDs: an ID is repeated")
        with self._transaction() as db:
            out = []
            for key_id in key_ids:
                row = db.execute("SELECT master, material FROM keys WHERE key_id = ?", (key_id,)).fetchone()
                if row is None:
                    raise KMEBadRequest(f"key_ID {key_id}: no such key (unknown, or already delivered)")
                mine = db.execute(
                    "SELECT delivered FROM key_slaves WHERE key_id = ? AND slave = ?", (key_id, slave)
                ).fetchone()
                if row[0] != master or mine is None:
                    raise KMEUnauthorized(f"key_ID {key_id}: not a key of {master} for {slave}")
                if mine[0]:
                    raise KMEBadRequest(f"key_ID {key_id}: already delivered to {slave}")
                out.append((key_id, bytes(row[1])))
            for key_id, _ in out:
                db.execute("UPDATE key_slaves SET delivered = 1 WHERE key_id = ? AND slave = ?", (key_id, slave))
                if not db.execute("SELECT 1 FROM key_slaves WHERE key_id = ? AND delivered = 0", (key_id,)).fetchone():
                    db.execute("DELETE FROM key_slaves WHERE key_id = ?", (key_id,))
                    db.execute("DELETE FROM keys WHERE key_id = ?", (key_id,))
            self._count(db, "delivered", len(out))
        return out
