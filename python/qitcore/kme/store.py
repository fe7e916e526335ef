"""The KME's persistent key store (SQLite).

Key material (from the QKD stack) waits in a pool. ``enc_keys`` takes keys from the pool, gives
them UUIDs and hands them to the master SAE in the same transaction that records them for their
slave SAE(s); ``dec_keys`` hands a key to each of its slaves once and deletes it when the last has
it. Every change is one transaction with ``synchronous=FULL``: a KME killed at any moment restarts
with every undelivered key and without any delivered one.

Delivered keys leave no copy in any file SQLite writes: ``secure_delete`` overwrites deleted rows
and freed pages with zeros in the database file, the rollback journal (which holds the pages a
transaction changes, as they were) is emptied when the transaction commits (``journal_mode=
TRUNCATE``: the commit *is* the truncation, so no kill leaves a committed delivery in it), and
statement journals stay in memory (``temp_store=MEMORY``). A write-ahead log would keep old page
images after the commit. The files are created readable by their owner only. To keep the
throughput of a write-ahead log with a journal's three syncs a commit, changes that arrive while
one commits are committed together (each in a savepoint of its own: one change refused does not
undo the others).

Two KMEs at the ends of a QKD link hold the same material in named pools, one per KME that issues
from it (so the two never take from one pool at once). A QKD session's key is kept *tentative* by
the driving KME until the other confirms it has committed the same session; each take is recorded
by offset in an *outbox* until the peer KME has applied it (:meth:`apply`, idempotent), so both
stores give the same bytes the same key IDs whatever crashes in between.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

from .. import _validate
from ..errors import InvalidArgumentError, KMEBadRequest, KMEUnauthorized, KMEUnavailable

__all__ = ["KeyStore"]

CHUNK = 4096
COMPANIONS = ("-journal", "-wal", "-shm")  # the files SQLite keeps beside a database
PRAGMAS = ("journal_mode=TRUNCATE", "synchronous=FULL", "secure_delete=ON", "temp_store=MEMORY", "foreign_keys=ON")

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS pool (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL DEFAULT 'local', material BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS pool_by_name ON pool (name, seq);
CREATE TABLE IF NOT EXISTS tentative (session INTEGER PRIMARY KEY, material BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS applied (name TEXT NOT NULL, offset INTEGER NOT NULL, ids TEXT NOT NULL,
    PRIMARY KEY (name, offset));
CREATE TABLE IF NOT EXISTS outbox (name TEXT NOT NULL, offset INTEGER NOT NULL, record TEXT NOT NULL,
    PRIMARY KEY (name, offset));
CREATE TABLE IF NOT EXISTS keys (
    key_id TEXT PRIMARY KEY, master TEXT NOT NULL, material BLOB NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS key_slaves (
    key_id TEXT NOT NULL REFERENCES keys(key_id), slave TEXT NOT NULL, delivered INTEGER NOT NULL,
    PRIMARY KEY (key_id, slave));
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class KeyStore:
    """A key store in the SQLite file ``path`` (created if missing, readable by its owner only).
    Thread-safe.

    Raises:
        InvalidArgumentError: ``path`` cannot be created or opened, or is not a key store.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = _validate.path("path", path)
        _private(self.path)
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            for pragma in PRAGMAS:
                self._db.execute(f"PRAGMA {pragma}")
            mode = self._db.execute("PRAGMA journal_mode").fetchone()[0]
            if mode != "truncate":  # a store of an earlier version, still open elsewhere in write-ahead mode
                raise sqlite3.OperationalError(f"journal mode is {mode}: is another KME using it?")
            self._db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise InvalidArgumentError(f"store: cannot open {self.path}: {exc}") from None
        self._lock = threading.Lock()  # the connection: one statement at a time
        self._queue = threading.Condition()  # changes waiting for a commit
        self._pending: list[_Change[Any]] = []
        self._committing = False

    def __repr__(self) -> str:
        return f"KeyStore({self.path!r}, pool={self.pool_bytes()} bytes, waiting={self.waiting()})"

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _change(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Runs ``fn`` in a transaction and returns its result once committed. Changes asked for
        while another commits wait and are then committed together, each in a savepoint: one
        that raises is undone alone and its exception raised to its caller."""
        change = _Change(fn)
        with self._queue:
            self._pending.append(change)
            while self._committing and not change.done:
                self._queue.wait()
            if change.done:
                return change.outcome()
            self._committing = True
            batch, self._pending = self._pending, []
        try:
            self._commit(batch)
        finally:
            with self._queue:
                self._committing = False
                for c in batch:
                    c.done = True
                self._queue.notify_all()
        return change.outcome()

    def _commit(self, batch: list[_Change[Any]]) -> None:
        with self._lock:
            db = self._db
            try:
                db.execute("BEGIN IMMEDIATE")
                for change in batch:
                    db.execute("SAVEPOINT change")
                    try:
                        change.result = change.fn(db)
                    except Exception as exc:
                        db.execute("ROLLBACK TO change")
                        change.error = exc
                    db.execute("RELEASE change")
                db.execute("COMMIT")
            except BaseException as exc:
                # Nothing of the batch was committed: no caller may see a result of it.
                if db.in_transaction:
                    db.execute("ROLLBACK")
                failed = KMEUnavailable(f"store: the change was not recorded ({exc})")
                for change in batch:
                    change.error, change.result = failed, None
                if not isinstance(exc, Exception):
                    raise

    def _count(self, db: sqlite3.Connection, name: str, add: int) -> None:
        db.execute(
            "INSERT INTO counters VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + ?", (name, add, add)
        )

    @staticmethod
    def _names(pool: str) -> tuple[str, str]:
        """The counters of a pool: bytes held, and bytes taken so far (its next offset)."""
        return ("pool_bytes", "taken") if pool == "local" else (f"pool_bytes:{pool}", f"taken:{pool}")

    def _add(self, db: sqlite3.Connection, material: bytes, pool: str) -> None:
        # Small rows: a request reads and rewrites only the rows it takes from.
        chunks = [(pool, bytes(material[i : i + CHUNK])) for i in range(0, len(material), CHUNK)]
        db.executemany("INSERT INTO pool (name, material) VALUES (?, ?)", chunks)
        self._count(db, "material_bytes", len(material))
        self._count(db, self._names(pool)[0], len(material))

    def add(self, material: bytes, pool: str = "local") -> None:
        """Adds key material to ``pool`` (both ends of a link add the same bytes in the same order)."""
        if material:
            self._change(lambda db: self._add(db, material, pool))

    def pool_bytes(self, pool: str = "local") -> int:
        with self._lock:
            return self._counter(self._db, self._names(pool)[0])

    @staticmethod
    def _counter(db: sqlite3.Connection, name: str) -> int:
        row = db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    # QKD sessions between two KMEs: material is split between the pools of the two issuers.

    def last_session(self) -> int:
        """The number of the last QKD session committed (0 before the first)."""
        with self._lock:
            return self._counter(self._db, "session")

    def add_tentative(self, session: int, material: bytes) -> None:
        row = (session, bytes(material))
        self._change(lambda db: db.execute("INSERT OR REPLACE INTO tentative VALUES (?, ?)", row))

    def tentative(self) -> list[int]:
        with self._lock:
            return [int(r[0]) for r in self._db.execute("SELECT session FROM tentative ORDER BY session")]

    def commit_session(self, session: int, pools: tuple[str, str], material: bytes | None = None) -> bool:
        """Adds session ``session``'s key (``material``, or the tentative one) to ``pools``: its first
        half to the first, the rest to the second. Only the session after the last is taken; an
        earlier one is already in (True); a later one, or one without material, is refused (False)."""

        def change(db: sqlite3.Connection) -> bool:
            last = self._counter(db, "session")
            if session <= last:
                db.execute("DELETE FROM tentative WHERE session = ?", (session,))
                return True
            if session != last + 1:
                return False
            key = material
            if key is None:
                row = db.execute("SELECT material FROM tentative WHERE session = ?", (session,)).fetchone()
                if row is None:
                    return False
                key = bytes(row[0])
            half = len(key) // 2
            self._add(db, key[:half], pools[0])
            self._add(db, key[half:], pools[1])
            db.execute("DELETE FROM tentative WHERE session = ?", (session,))
            self._count(db, "session", 1)
            return True

        return self._change(change)

    def drop_tentative(self, session: int) -> None:
        self._change(lambda db: db.execute("DELETE FROM tentative WHERE session = ?", (session,)))

    def waiting(self) -> int:
        """Keys handed to a master and not yet to all their slaves."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM keys").fetchone()[0])

    def counters(self) -> dict[str, int]:
        """Running totals: material_bytes added, keys issued to masters, deliveries to slaves."""
        with self._lock:
            return dict(self._db.execute("SELECT name, value FROM counters").fetchall())

    def take(
        self, master: str, slaves: list[str], number: int, size_bytes: int, *, pool: str = "local",
        outbox: bool = False,
    ) -> list[tuple[str, bytes]]:  # fmt: skip
        """``number`` fresh keys of ``size_bytes`` from ``pool`` for ``master``, recorded for
        ``slaves``; with ``outbox``, the take is also queued for the peer KME (:meth:`outbox`).

        Raises:
            KMEUnavailable: the pool holds less than ``number × size_bytes`` bytes (nothing taken).
        """

        def change(db: sqlite3.Connection) -> list[tuple[str, bytes]]:
            offset = self._counter(db, self._names(pool)[1])
            keys = self._take(db, pool, master, slaves, [str(uuid.uuid4()) for _ in range(number)], size_bytes)
            if outbox:
                record = {"pool": pool, "offset": offset, "ids": [k for k, _ in keys], "master": master,
                          "slaves": slaves, "size": size_bytes}  # fmt: skip
                db.execute("INSERT INTO outbox VALUES (?, ?, ?)", (pool, offset, json.dumps(record)))
            return keys

        return self._change(change)

    def _take(
        self, db: sqlite3.Connection, pool: str, master: str, slaves: list[str], ids: list[str], size_bytes: int
    ) -> list[tuple[str, bytes]]:
        held, taken_name = self._names(pool)
        need = len(ids) * size_bytes
        have = self._counter(db, held)
        if have < need:
            raise KMEUnavailable(f"not enough key material: {len(ids)} keys of {size_bytes * 8} bits asked, "
                                 f"{have * 8} bits stored")  # fmt: skip
        taken = bytearray()
        # Rows hold up to CHUNK bytes, fewer at the end of each addition and of each half of a
        # session's key: read as many as it takes, a batch at a time (each batch read whole before
        # its rows are changed), never a count worked out from CHUNK.
        while len(taken) < need:
            batch = (need - len(taken)) // CHUNK + 16
            rows = db.execute(
                "SELECT seq, material FROM pool WHERE name = ? ORDER BY seq LIMIT ?", (pool, batch)
            ).fetchall()
            if not rows:
                break
            for seq, material in rows:
                use = min(len(material), need - len(taken))
                taken += material[:use]
                if use == len(material):
                    db.execute("DELETE FROM pool WHERE seq = ?", (seq,))
                else:
                    db.execute("UPDATE pool SET material = ? WHERE seq = ?", (material[use:], seq))
                if len(taken) == need:
                    break
        if len(taken) != need:
            # The counter said the pool held enough and its rows do not: refuse (the savepoint
            # undoes the rows taken) rather than hand out short keys.
            taken[:] = bytes(len(taken))
            raise KMEUnavailable(f"store: pool {pool} holds {len(taken)} bytes of the {have} its counter says")
        now = time.time()
        keys = []
        for i, key_id in enumerate(ids):
            key = bytes(taken[i * size_bytes : (i + 1) * size_bytes])
            db.execute("INSERT INTO keys VALUES (?, ?, ?, ?)", (key_id, master, key, now))
            db.executemany("INSERT INTO key_slaves VALUES (?, ?, 0)", [(key_id, s) for s in slaves])
            keys.append((key_id, key))
        self._count(db, "issued", len(ids))
        self._count(db, held, -need)
        self._count(db, taken_name, need)
        taken[:] = bytes(len(taken))
        return keys

    def outbox(self) -> list[dict[str, Any]]:
        """Takes not yet confirmed by the peer KME, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT record FROM outbox ORDER BY name, offset").fetchall()
        return [json.loads(r[0]) for r in rows]

    def confirmed(self, pool: str, offset: int) -> None:
        self._change(lambda db: db.execute("DELETE FROM outbox WHERE name = ? AND offset = ?", (pool, offset)))

    def apply(self, record: dict[str, Any]) -> None:
        """Repeats the peer KME's take ``record`` here: the same bytes of the same pool under the
        same IDs. Applying a record twice is harmless.

        Raises:
            KMEUnavailable: the record is ahead of this store (an earlier one or material is missing).
            KMEBadRequest: a record at an offset already used for other IDs (the stores diverged).
        """
        try:
            pool, offset, size = str(record["pool"]), int(record["offset"]), int(record["size"])
            ids = [str(i) for i in record["ids"]]
            master, slaves = str(record["master"]), [str(s) for s in record["slaves"]]
        except (KeyError, TypeError, ValueError):
            raise KMEBadRequest("malformed take record") from None

        def change(db: sqlite3.Connection) -> None:
            row = db.execute("SELECT ids FROM applied WHERE name = ? AND offset = ?", (pool, offset)).fetchone()
            if row is not None:
                if json.loads(row[0]) != ids:
                    raise KMEBadRequest(f"pool {pool} offset {offset} was applied with other key IDs")
                return
            here = self._counter(db, self._names(pool)[1])
            if offset != here:
                raise KMEUnavailable(f"pool {pool}: take at offset {offset}, this store is at {here}")
            self._take(db, pool, master, slaves, ids, size)
            db.execute("INSERT INTO applied VALUES (?, ?, ?)", (pool, offset, json.dumps(ids)))

        self._change(change)

    def deliver(self, slave: str, master: str, key_ids: list[str]) -> list[tuple[str, bytes]]:
        """The keys ``key_ids`` that ``master`` received for ``slave``, each to ``slave`` once.
        All or nothing: one bad ID refuses the whole request and changes nothing.

        Raises:
            KMEBadRequest: an ID is repeated, unknown, or already delivered to ``slave``.
            KMEUnauthorized: a key belongs to another pair of SAEs.
        """
        if len(set(key_ids)) != len(key_ids):
            raise KMEBadRequest("key_IDs: an ID is repeated")

        def change(db: sqlite3.Connection) -> list[tuple[str, bytes]]:
            out = []
            for key_id in key_ids:
                row = db.execute("SELECT master, material FROM keys WHERE key_id = ?", (key_id,)).fetchone()
                if row is None:
                    raise KMEBadRequest(f"key_ID {key_id[:100]}: no such key (unknown, or already delivered)")
                mine = db.execute(
                    "SELECT delivered FROM key_slaves WHERE key_id = ? AND slave = ?", (key_id, slave)
                ).fetchone()
                if row[0] != master or mine is None:
                    raise KMEUnauthorized(f"key_ID {key_id[:100]}: not a key of {master} for {slave}")
                if mine[0]:
                    raise KMEBadRequest(f"key_ID {key_id[:100]}: already delivered to {slave}")
                out.append((key_id, bytes(row[1])))
            for key_id, _ in out:
                db.execute("UPDATE key_slaves SET delivered = 1 WHERE key_id = ? AND slave = ?", (key_id, slave))
                if not db.execute("SELECT 1 FROM key_slaves WHERE key_id = ? AND delivered = 0", (key_id,)).fetchone():
                    db.execute("DELETE FROM key_slaves WHERE key_id = ?", (key_id,))
                    db.execute("DELETE FROM keys WHERE key_id = ?", (key_id,))
            self._count(db, "delivered", len(out))
            return out

        return self._change(change)


class _Change(Generic[T]):
    """A change waiting for a commit, and what came of it."""

    def __init__(self, fn: Callable[[sqlite3.Connection], T]) -> None:
        self.fn = fn
        self.result: T | None = None
        self.error: BaseException | None = None
        self.done = False

    def outcome(self) -> T:
        if self.error is not None:
            raise self.error
        return cast(T, self.result)


def _private(path: str) -> None:
    """Creates the database file owner-only (SQLite gives its journals the database's mode) and
    takes group and other access from any that exist; a path that cannot be opened is left to
    SQLite to report."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
    except OSError:
        return
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    for suffix in COMPANIONS:
        try:
            if os.stat(path + suffix).st_mode & 0o077:
                os.chmod(path + suffix, 0o600)
        except OSError:
            pass
