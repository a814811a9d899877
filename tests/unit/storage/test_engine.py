"""Engine setup, URL normalization, the unit of work's transaction and lock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

import storage.engine
from core.notices import Destination, TaskFailed
from storage.engine import create_engine, normalize_database_url, write_lock
from storage.migrate import upgrade_engine
from storage.models import LeaseRow, TaskRow
from storage.sqlite_inline import InlineConnection
from storage.uow import SqlUnitOfWorkFactory
from tests.fakes import FakeClock
from tests.unit.storage.helpers import new_task


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@db.example:5432/app", "postgresql+asyncpg://u:p@db.example:5432/app"),
        ("postgresql://u:p@h/app", "postgresql+asyncpg://u:p@h/app"),
        ("postgresql+psycopg://u@h/app", "postgresql+asyncpg://u@h/app"),
        ("postgresql+psycopg2://u@h/app", "postgresql+asyncpg://u@h/app"),
        ("postgresql+asyncpg://u@h/app", "postgresql+asyncpg://u@h/app"),
        ("postgres://u:p%40ss@h/app", "postgresql+asyncpg://u:p%40ss@h/app"),
        ("postgres://u@h/app?sslmode=require", "postgresql+asyncpg://u@h/app?ssl=require"),
        ("sqlite:///taskbot.db", "sqlite+aiosqlite:///taskbot.db"),
        ("sqlite:////abs/path.db", "sqlite+aiosqlite:////abs/path.db"),
        ("sqlite://", "sqlite+aiosqlite://"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("mysql+aiomysql://u@h/db", "mysql+aiomysql://u@h/db"),
    ],
)
def test_normalize_database_url(given: str, expected: str) -> None:
    assert normalize_database_url(given) == expected


async def test_sqlite_pragmas_and_begin_immediate(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    try:
        async with engine.connect() as connection:
            assert (await connection.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"
            assert (await connection.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
            # SQLite's own busy wait would block the loop: storage.sqlite_inline waits instead
            assert (await connection.exec_driver_sql("PRAGMA busy_timeout")).scalar() == 0
            driver = (await connection.get_raw_connection()).driver_connection
            assert isinstance(driver, InlineConnection)
            assert driver.busy_timeout == 5.0
        assert write_lock(engine) is write_lock(engine) is not None
    finally:
        await engine.dispose()


async def _pid_of_pooled_connection_after_its_server_side_ends(postgres_url: str) -> int:
    """Take a pooled connection's backend pid, end that backend, then use the pool again."""
    engine = create_engine(postgres_url, pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as connection:
            pid = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        admin = create_async_engine(postgres_url, poolclass=NullPool)
        try:
            async with admin.connect() as connection:
                await connection.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        finally:
            await admin.dispose()
        async with engine.connect() as connection:
            again = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        assert again != pid
        return int(again)
    finally:
        await engine.dispose()


async def test_idle_postgres_connection_is_pinged_and_replaced(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage.engine, "PING_AFTER_IDLE_SECONDS", 0.0)
    await _pid_of_pooled_connection_after_its_server_side_ends(postgres_url)


async def test_busy_postgres_connection_is_not_pinged(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: without the ping, the dead connection is handed out and fails."""
    monkeypatch.setattr(storage.engine, "PING_AFTER_IDLE_SECONDS", 3600.0)
    with pytest.raises(DBAPIError):
        await _pid_of_pooled_connection_after_its_server_side_ends(postgres_url)


async def test_no_writer_lock_on_postgres(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    try:
        assert write_lock(engine) is None
    finally:
        await engine.dispose()


async def test_commit_and_rollback(uow_factory: SqlUnitOfWorkFactory) -> None:
    async with uow_factory() as uow:
        kept = await uow.tasks.add(new_task(title="kept"))
    with pytest.raises(RuntimeError, match="boom"):
        async with uow_factory() as uow:
            await uow.tasks.add(new_task(title="lost"))
            raise RuntimeError("boom")
    async with uow_factory() as uow:
        assert (await uow.session.scalar(select(func.count(TaskRow.id)))) == 1
        assert await uow.tasks.get(kept.id) is not None


async def test_outbox_callback_after_commit_only(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    calls: list[str] = []
    uow_factory.on_outbox_written(lambda: calls.append("woken"))
    notice = TaskFailed(destination=Destination(channel="C1"), task_id=None, title="t", error="e")

    async with uow_factory() as uow:
        await uow.tasks.add(new_task())
    assert calls == []  # no outbox row, no wake-up

    async with uow_factory() as uow:
        await uow.outbox.add(notice, clock.now())
        assert calls == []  # not before the commit
    assert calls == ["woken"]

    with pytest.raises(RuntimeError):
        async with uow_factory() as uow:
            await uow.outbox.add(notice, clock.now())
            raise RuntimeError("rolled back")
    assert calls == ["woken"]


async def test_failing_callback_does_not_break_commit(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    def broken() -> None:
        raise ValueError("callback bug")

    uow_factory.on_outbox_written(broken)
    notice = TaskFailed(destination=Destination(channel="C1"), task_id=None)
    async with uow_factory() as uow:
        await uow.outbox.add(notice, clock.now())
    async with uow_factory() as uow:
        assert (await uow.outbox.backlog(clock.now()))[0] == 1


async def test_nested_unit_of_work_on_sqlite_fails_instead_of_deadlocking(
    sqlite_url: str,
) -> None:
    factory = SqlUnitOfWorkFactory.from_url(sqlite_url)
    await upgrade_engine(factory.engine)
    try:
        async with factory():
            with pytest.raises(RuntimeError, match="nested unit of work"):
                async with factory():
                    pass
    finally:
        await factory.dispose()


async def test_in_memory_sqlite_with_concurrent_units_of_work() -> None:
    factory = SqlUnitOfWorkFactory.from_url("sqlite+aiosqlite://")
    await upgrade_engine(factory.engine)
    try:

        async def add(i: int) -> None:
            async with factory() as uow:
                await uow.tasks.add(new_task(title=f"t{i}"))
                await asyncio.sleep(0)  # let the others try to interleave

        async def fail() -> None:
            async with factory() as uow:
                await uow.tasks.add(new_task(title="rolled back"))
                await asyncio.sleep(0)
                raise RuntimeError("rollback must not take the others with it")

        results = await asyncio.gather(*(add(i) for i in range(20)), fail(), return_exceptions=True)
        assert sum(isinstance(r, RuntimeError) for r in results) == 1
        async with factory() as uow:
            assert await uow.tasks.count_history("U1", None) == 20
    finally:
        await factory.dispose()


async def test_utc_datetimes_round_trip_aware(uow_factory: SqlUnitOfWorkFactory) -> None:
    plus_two = timezone(timedelta(hours=2))
    local = datetime(2026, 3, 1, 14, 30, 15, 123456, tzinfo=plus_two)
    async with uow_factory() as uow:
        assert await uow.leases.acquire("job", "me", local, 0)
    async with uow_factory() as uow:
        expires = await uow.session.scalar(select(LeaseRow.expires_at))
        task = await uow.tasks.add(new_task())
    assert expires == local
    assert expires is not None and expires.tzinfo is not None
    assert expires.utcoffset() == timedelta(0)
    assert expires == datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
    assert task.created_at.tzinfo is not None and task.created_at.utcoffset() == timedelta(0)


async def test_naive_datetimes_are_refused(uow_factory: SqlUnitOfWorkFactory) -> None:
    with pytest.raises(Exception, match="naive datetime"):
        async with uow_factory() as uow:
            await uow.leases.acquire("job", "me", datetime(2026, 1, 1), 10)


async def test_datetimes_compare_in_sql_across_offsets(uow_factory: SqlUnitOfWorkFactory) -> None:
    # 12:00+02:00 is 10:00 UTC: earlier than 11:00 UTC, although "12" > "11" as text.
    early = datetime(2026, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    async with uow_factory() as uow:
        await uow.leases.acquire("job", "me", early, 0)
    async with uow_factory() as uow:
        cutoff = datetime(2026, 3, 1, 11, 0, tzinfo=UTC)
        count = await uow.session.scalar(
            select(func.count()).select_from(LeaseRow).where(LeaseRow.expires_at < cutoff)
        )
        assert count == 1
        assert (await uow.session.execute(text("SELECT 1"))).scalar() == 1
