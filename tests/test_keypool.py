"""The pre-shared key pool: every byte handed out at most once, across sessions, restarts and
crashes; consumed bytes wiped on disk; one process at a time; clear errors for bad files."""

from __future__ import annotations

import errno
import itertools
import os
import random
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from qitcore.errors import KeyPoolBusy, KeyPoolError, KeyPoolExhausted, QkdError
from qitcore.qkd.keypool import HEADER, RESERVE, KeyPool

KEY = bytes(random.Random(7).randrange(1, 256) for _ in range(4 * RESERVE + 100))  # no zero byte


def _file(path: Path) -> bytes:
    return path.read_bytes()


def test_created_private_and_hands_out_the_key_in_order(tmp_path: Path) -> None:
    path = tmp_path / "pool"
    with KeyPool.create(path, KEY) as pool:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert (pool.size, pool.used, pool.available) == (len(KEY), 0, len(KEY))
        start = pool.begin()
        assert start == 0
        assert bytes(pool.take(0, 8)) == KEY[:8]
        assert bytes(pool.take(8, 8)) == KEY[8:16]
        # Skipped bytes are spent too.
        assert bytes(pool.take(40, 4)) == KEY[40:44]
        with pytest.raises(KeyPoolError, match="already handed out"):
            pool.take(20, 4)
        # Reserved on the shared grid, durably.
        assert pool.used == RESERVE


def test_repr_never_shows_key_bytes(tmp_path: Path) -> None:
    pool = KeyPool.create(tmp_path / "pool", KEY)
    shown = repr(pool)
    pool.take(0, 16)
    shown += repr(pool)
    pool.close()
    shown += repr(pool)
    assert "hidden" in shown
    for chunk in (KEY[:4], KEY[16:20]):
        assert chunk.hex() not in shown and repr(chunk)[2:-1] not in shown


def test_consumed_bytes_are_zeroed_on_disk_and_the_rest_kept(tmp_path: Path) -> None:
    path = tmp_path / "pool"
    with KeyPool.create(path, KEY) as pool:
        pool.take(0, 8)
        used = pool.used
        data = _file(path)[HEADER.size :]
        assert data[:used] == bytes(used)
        assert data[used:] == KEY[used:]


def test_the_mark_survives_a_restart_and_nothing_is_handed_out_twice(tmp_path: Path) -> None:
    path = tmp_path / "pool"
    KeyPool.create(path, KEY).close()
    handed: list[tuple[int, int]] = []
    rng = random.Random(3)
    for _ in range(6):  # restarts
        with KeyPool(path) as pool:
            for _ in range(3):  # sessions
                at = pool.begin()
                for _ in range(rng.randrange(1, 20)):
                    n = rng.choice((8, 8, 16, 3))
                    if at + n > pool.size:
                        break
                    assert bytes(pool.take(at, n)) == KEY[at : at + n]
                    handed.append((at, at + n))
                    at += n + rng.choice((0, 0, 8))
    handed.sort()
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in itertools.pairwise(handed))
    assert len(handed) > 20


def test_exhaustion_is_a_clear_error_and_consumes_nothing_more(tmp_path: Path) -> None:
    with KeyPool.create(tmp_path / "pool", KEY[:40]) as pool:
        pool.take(0, 32)
        with pytest.raises(KeyPoolExhausted, match="exhausted") as err:
            pool.take(32, 16)
        assert isinstance(err.value, QkdError)
        assert pool.used == 40 and pool.handed_out == 32
        assert bytes(pool.take(32, 8)) == KEY[32:40]


def test_replenished_key_is_durable_and_handed_out_after_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "pool"
    extra = b"\xaa" * 24
    with KeyPool.create(path, KEY[:32]) as pool:
        pool.take(0, 32)
        pool.replenish(extra)
        assert pool.size == 56
    with KeyPool(path) as pool:
        assert pool.size == 56 and pool.used == 32
        assert bytes(pool.take(pool.begin(), 24)) == extra


def test_an_interrupted_replenish_is_not_taken_for_key(tmp_path: Path) -> None:
    path = tmp_path / "pool"
    KeyPool.create(path, KEY[:32]).close()
    with open(path, "ab") as f:  # appended bytes whose header update never happened
        f.write(b"\x55" * 16)
    with KeyPool(path) as pool:
        assert pool.size == 32
    assert len(_file(path)) == HEADER.size + 32


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b[:10], "shorter than its header"),
        (lambda b: b"XXXXXXXX" + b[8:], "not a key pool"),
        (lambda b: b[:9] + bytes([b[9] ^ 1]) + b[10:], "corrupt header"),
        (lambda b: b[:-1], "header says"),
    ],
    ids=["truncated header", "magic", "flipped header bit", "short key"],
)
def test_damaged_files_are_refused(tmp_path: Path, damage, message: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "pool"
    KeyPool.create(path, KEY).close()
    path.write_bytes(damage(_file(path)))
    with pytest.raises(KeyPoolError, match=message):
        KeyPool(path)


def test_missing_shared_or_existing_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyPoolError, match="No such file"):
        KeyPool(tmp_path / "absent")
    path = tmp_path / "pool"
    KeyPool.create(path, KEY).close()
    with pytest.raises(KeyPoolError, match="exists"):
        KeyPool.create(path, KEY)
    path.chmod(0o640)
    with pytest.raises(KeyPoolError, match="chmod 600"):
        KeyPool(path)


def test_one_user_at_a_time_in_this_process(tmp_path: Path) -> None:
    path = tmp_path / "pool"
    first = KeyPool.create(path, KEY)
    with pytest.raises(KeyPoolBusy):
        KeyPool(path)
    first.close()
    KeyPool(path).close()


_HOLDER = textwrap.dedent(
    """
    import sys, time
    from qitcore.qkd.keypool import KeyPool
    pool = KeyPool(sys.argv[1])
    print(pool.begin(), flush=True)
    time.sleep(60)
    """
)

_CRASHER = textwrap.dedent(
    """
    import os, signal, sys
    from qitcore.qkd.keypool import KeyPool
    pool = KeyPool(sys.argv[1])
    at = pool.begin()
    pad = pool.take(at, 8)
    print(at, pad.hex(), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # between recording the bytes and using them
    """
)


def _python(code: str, path: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True, env=env)


def test_another_process_on_the_pool_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pool"
    KeyPool.create(path, KEY).close()
    holder = _python(_HOLDER, path)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "0"
        with pytest.raises(KeyPoolBusy, match="another process"):
            KeyPool(path)
    finally:
        holder.kill()
        holder.wait()
    KeyPool(path).close()  # the lock went with the process


def test_a_process_killed_after_taking_bytes_loses_them_and_never_reuses_them(tmp_path: Path) -> None:
    path = tmp_path / "pool"
    KeyPool.create(path, KEY).close()
    seen: list[tuple[int, str]] = []
    for _ in range(3):
        crasher = _python(_CRASHER, path)
        out, _ = crasher.communicate(timeout=60)
        assert crasher.returncode == -signal.SIGKILL
        at, pad = out.split()
        seen.append((int(at), pad))
    # Each killed process started past what the one before had taken: lost, not reused.
    offsets = [at for at, _ in seen]
    assert offsets == sorted(set(offsets)) and offsets[1] - offsets[0] >= 8
    assert [pad for _, pad in seen] == [KEY[at : at + 8].hex() for at in offsets]
    with KeyPool(path) as pool:
        assert pool.begin() > offsets[-1]
        assert _file(path)[HEADER.size :][: pool.used] == bytes(pool.used)


def test_bad_arguments_are_refused_by_name(tmp_path: Path) -> None:
    from qitcore.errors import InvalidArgumentError, InvalidTypeError

    for path in (None, 3, 2.5, True, b"p"):
        with pytest.raises(InvalidTypeError, match="path"):
            KeyPool(path)  # type: ignore[arg-type]
        with pytest.raises(InvalidTypeError, match="path"):
            KeyPool.create(path, KEY)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="NUL"):
        KeyPool.create(str(tmp_path / "a\0b"), KEY)
    pool = KeyPool.create(tmp_path / "p", os.urandom(4 * RESERVE))
    for call, error in (
        (lambda: pool.take(0, -8), InvalidArgumentError),
        (lambda: pool.peek(16, -3), InvalidArgumentError),
        (lambda: pool.take(0.5, 8), InvalidTypeError),
        (lambda: pool.peek(16.0, 8), InvalidTypeError),
        (lambda: pool.reserve("9"), InvalidTypeError),
    ):
        with pytest.raises(error):
            call()
    assert pool.handed_out == 0 and pool.used == 0  # nothing handed out or reserved
    with pytest.raises(KeyPoolExhausted):
        pool.peek((1 << 64) - 9, 8)  # an offset from a frame's 64-bit field: past the end


CREATE_OVER_A_SIZE_LIMIT = textwrap.dedent(
    """
    import os, resource, signal, sys
    from qitcore.errors import KeyPoolError
    from qitcore.qkd.keypool import KeyPool

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (16 << 10, resource.RLIM_INFINITY))
    try:
        KeyPool.create(sys.argv[1], os.urandom(1 << 16))
    except KeyPoolError as exc:
        print("refused:", exc)
    """
)


def test_a_pool_that_cannot_be_written_whole_leaves_no_file(tmp_path: Path) -> None:
    """A file size limit (or a full disk) mid-write: refused, no partial file of key bytes left
    under any name, and the pool can be created once the limit is gone."""
    folder = tmp_path / "pools"
    folder.mkdir()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "python")}
    done = subprocess.run(
        [sys.executable, "-c", CREATE_OVER_A_SIZE_LIMIT, str(folder / "pool")],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0 and "refused: key pool" in done.stdout and "File too large" in done.stdout, done
    assert list(folder.iterdir()) == []
    KeyPool.create(folder / "pool", KEY).close()
    assert [p.name for p in folder.iterdir()] == ["pool"]


class _FailingDisk:
    """Stands in for ``os.pwrite`` in the pool's module: the ``fail_at``-th write (from 1) raises
    ENOSPC; every write before it is short (at most ``chunk`` bytes, as a nearly full disk gives)."""

    def __init__(self, fail_at: int, chunk: int = 7) -> None:
        self.calls, self.fail_at, self.chunk = 0, fail_at, chunk

    def __call__(self, fd: int, data: Any, offset: int) -> int:
        self.calls += 1
        if self.calls == self.fail_at:
            raise OSError(errno.ENOSPC, "No space left on device")
        return _real_pwrite(fd, memoryview(data)[: self.chunk], offset)


_real_pwrite = os.pwrite


def test_short_and_failed_writes_never_leave_key_in_clear_nor_a_short_pad(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every write of the pool is checked to its last byte; a write that fails at any point of a
    reservation leaves a pool that hands out the right bytes or none, and the file, once reopened,
    holds no used byte in clear (review N2)."""
    from qitcore.qkd import keypool

    for fail_at in itertools.count(1):
        path = tmp_path / f"pool{fail_at}"
        KeyPool.create(path, KEY).close()
        pool = KeyPool(path)
        pool.begin()
        pool.take(0, 8)  # a first reservation, written whole
        disk = _FailingDisk(fail_at)
        monkeypatch.setattr(keypool.os, "pwrite", disk)
        try:
            pad = pool.take(RESERVE + 4, 8)  # the next reservation meets the failing disk
        except KeyPoolError as exc:
            assert "No space left" in str(exc)
            pad = None
        monkeypatch.setattr(keypool.os, "pwrite", _real_pwrite)
        if pad is not None:
            assert bytes(pad) == KEY[RESERVE + 4 : RESERVE + 12]
        # Whatever failed, the pool's state is whole: the next pad is the right bytes, in full.
        at = max(pool.handed_out, RESERVE + 12)
        assert bytes(pool.take(at, 16)) == KEY[at : at + 16]
        pool.close()
        with KeyPool(path) as reopened:
            used = reopened.used
            data = _file(path)[HEADER.size :]
            assert data[:used] == bytes(used), f"used key left in clear (failure at write {fail_at})"
            assert data[used:] == KEY[used:]
            assert used >= at + 16
        if disk.calls < fail_at:  # the failure came after every write: all cases seen
            break


def test_a_failed_create_wipes_every_byte_it_wrote_even_on_short_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A create that fails part way (a full disk) zeroes the partial file before cutting it off,
    checked to the last byte: on a disk that writes a few bytes a call, a wipe of one unchecked
    write would leave the rest of the key in the file's old blocks."""
    from qitcore.qkd import keypool

    key = bytes(range(1, 256)) * 3
    seen: list[bytes] = []
    real_ftruncate = os.ftruncate

    def watching_ftruncate(fd: int, length: int) -> None:
        seen.append(Path(os.readlink(f"/proc/self/fd/{fd}")).read_bytes())  # the fd is write-only
        real_ftruncate(fd, length)

    monkeypatch.setattr(keypool.os, "ftruncate", watching_ftruncate)
    for fail_at in (2, 20, 60):
        seen.clear()
        monkeypatch.setattr(keypool.os, "pwrite", _FailingDisk(fail_at))
        with pytest.raises(KeyPoolError, match="No space left"):
            KeyPool.create(tmp_path / "pool", key)
        monkeypatch.setattr(keypool.os, "pwrite", _real_pwrite)
        assert [len(s) for s in seen] == [7 * (fail_at - 1)], fail_at
        assert seen[0] == bytes(len(seen[0])), f"key left in the wiped file (failure at write {fail_at})"
        assert list(tmp_path.iterdir()) == []


def test_a_crash_between_the_mark_and_the_zeroing_is_repaired_on_open(tmp_path: Path) -> None:
    """The mark is durable before the reserved bytes are zeroed: a process that dies between the
    two leaves them in clear, and the next open zeroes them before anything else."""
    path = tmp_path / "pool"
    KeyPool.create(path, KEY).close()
    with open(path, "r+b") as raw:  # the state such a crash leaves: the mark moved, nothing zeroed
        from qitcore.qkd.keypool import _header

        raw.write(_header(2 * RESERVE, len(KEY)))
    assert _file(path)[HEADER.size :][: 2 * RESERVE] == KEY[: 2 * RESERVE]
    with KeyPool(path) as pool:
        assert pool.begin() == 2 * RESERVE
        assert _file(path)[HEADER.size :] == bytes(2 * RESERVE) + KEY[2 * RESERVE :]


def test_an_interrupted_replenish_is_wiped_before_it_is_cut_off(tmp_path: Path) -> None:
    """Bytes a replenish wrote before it died are not key yet, but they are key material: they are
    overwritten before the file is truncated (a truncated block keeps its old content on the disk)."""
    path = tmp_path / "pool"
    KeyPool.create(path, KEY).close()
    tail = bytes(range(1, 101))
    with open(path, "ab") as raw:
        raw.write(tail)
    seen: list[bytes] = []
    real_ftruncate = os.ftruncate

    def watching_ftruncate(fd: int, length: int) -> None:
        seen.append(os.pread(fd, len(tail), length))
        real_ftruncate(fd, length)

    from qitcore.qkd import keypool

    mp = pytest.MonkeyPatch()
    mp.setattr(keypool.os, "ftruncate", watching_ftruncate)
    try:
        KeyPool(path).close()
    finally:
        mp.undo()
    assert seen == [bytes(len(tail))]
    assert _file(path) == _file(path)[: HEADER.size] + KEY
