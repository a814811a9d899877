"""SQLite run on the event loop (storage.sqlite_inline): a transaction does not
yield to the loop between statements, and a lock held by a connection outside our
writer locks is waited out with asyncio sleeps, the loop staying responsive."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

import storage.sqlite_inline
from storage.migrate import upgrade
from storage.uow import SqlUnitOfWorkFactory
from tests.fakes import FakeClock
from tests.unit.storage.helpers import new_task


class Ticker:
    """Counts loop iterations and remembers the longest gap between them."""

    def __init__(self) -> None:
        self.ticks = 0
        self.longest_gap = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0)
            now = time.monotonic()
            self.ticks += 1
            self.longest_gap = max(self.longest_gap, now - last)
            last = now

    def __enter__(self) -> Ticker:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *_exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


@pytest.fixture
async def factory(tmp_path: Path) -> AsyncIterator[SqlUnitOfWorkFactory]:
    url = f"sqlite+aiosqlite:///{tmp_path}/inline.db"
    await upgrade(url)
    factory = SqlUnitOfWorkFactory.from_url(url, FakeClock())
    yield factory
    await factory.dispose()


async def test_a_transaction_runs_without_yielding_to_the_loop(
    factory: SqlUnitOfWorkFactory,
) -> None:
    async with factory() as uow:
        await uow.tasks.add(new_task(title="warm up"))
        with Ticker() as ticker:
            await asyncio.sleep(0)
            before = ticker.ticks
            for n in range(5):
                await uow.tasks.add(new_task(title=f"t{n}"))
                await uow.session.flush()
                assert (await uow.session.execute(text("SELECT count(*) FROM tasks"))).scalar()
            assert ticker.ticks == before


def _hold_write_lock(path: Path, release: threading.Event) -> threading.Thread:
    """A plain sqlite3 connection (as `taskbot token create` or a sqlite3 shell)
    holding the write lock in another thread until `release` is set."""
    locked = threading.Event()

    def hold() -> None:
        connection = sqlite3.connect(path, isolation_level=None)
        try:
            connection.execute("BEGIN IMMEDIATE")
            locked.set()
            release.wait(10)
            connection.execute("COMMIT")
        finally:
            connection.close()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert locked.wait(5)
    return thread


async def test_a_writer_waits_for_a_foreign_lock_while_the_loop_runs(
    factory: SqlUnitOfWorkFactory, tmp_path: Path
) -> None:
    release = threading.Event()
    holder = _hold_write_lock(tmp_path / "inline.db", release)
    asyncio.get_running_loop().call_later(0.3, release.set)
    started = time.monotonic()
    with Ticker() as ticker:
        async with factory() as uow:
            await uow.tasks.add(new_task(title="after the other program"))
    waited = time.monotonic() - started
    holder.join(5)
    assert 0.25 < waited < 2.0, waited
    assert ticker.ticks > 20 and ticker.longest_gap < 0.1, (ticker.ticks, ticker.longest_gap)
    async with factory() as uow:
        assert await uow.tasks.count_history("U1", None) == 1


async def test_a_writer_gives_up_on_a_foreign_lock_after_the_deadline(
    factory: SqlUnitOfWorkFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage.sqlite_inline, "BUSY_TIMEOUT_SECONDS", 0.3)
    await factory.engine.dispose()  # connections made from here take the short deadline
    release = threading.Event()
    holder = _hold_write_lock(tmp_path / "inline.db", release)
    started = time.monotonic()
    try:
        with Ticker() as ticker, pytest.raises(OperationalError, match="database is locked"):
            async with factory() as uow:
                await uow.tasks.add(new_task(title="never"))
    finally:
        release.set()
        holder.join(5)
    assert 0.25 < time.monotonic() - started < 2.0
    assert ticker.ticks > 20 and ticker.longest_gap < 0.1, (ticker.ticks, ticker.longest_gap)
    async with factory() as uow:
        assert await uow.tasks.count_history("U1", None) == 0


async def test_the_wal_is_checkpointed_in_a_thread_not_in_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loop connections never checkpoint (wal_autocheckpoint=0: a checkpoint's
    fsyncs would block the loop); the Checkpointer's thread copies the WAL into
    the database file instead, so a copy of that file alone has the rows."""
    monkeypatch.setattr(storage.sqlite_inline, "CHECKPOINT_SECONDS", 0.0)
    url = f"sqlite+aiosqlite:///{tmp_path}/inline.db"
    await upgrade(url)
    factory = SqlUnitOfWorkFactory.from_url(url, FakeClock())
    try:
        async with factory.engine.connect() as connection:
            autocheckpoint = await connection.exec_driver_sql("PRAGMA wal_autocheckpoint")
            assert autocheckpoint.scalar() == 0
        for n in range(20):
            async with factory() as uow:
                await uow.tasks.add(new_task(title=f"t{n}"))
        await asyncio.sleep(0.2)  # the last checkpoint's thread
        copy = tmp_path / "copy.db"
        copy.write_bytes((tmp_path / "inline.db").read_bytes())  # without the -wal file
        with sqlite3.connect(copy) as db:
            assert db.execute("SELECT count(*) FROM tasks").fetchone()[0] == 20
    finally:
        await factory.dispose()
    assert not (tmp_path / "inline.db-wal").exists()  # disposal waited for the thread
