"""The SQLite writer lock's fast lane, and read-only units of work that skip it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from storage.engine import WriterLock, create_engine
from storage.migrate import upgrade_engine
from storage.uow import SqlUnitOfWorkFactory
from tests.fakes import FakeClock

Take = Callable[[str, bool], Coroutine[Any, Any, None]]


async def held_lock() -> tuple[WriterLock, list[str], Take]:
    """A held WriterLock, the order waiters got it in, and `take(name, urgent)` to wait."""
    lock = WriterLock()
    order: list[str] = []
    await lock.acquire()

    async def take(name: str, urgent: bool) -> None:
        await lock.acquire(urgent)
        order.append(name)
        lock.release()

    return lock, order, take


async def test_urgent_waiters_go_before_earlier_normal_ones() -> None:
    lock, order, take = await held_lock()

    waiters = [
        asyncio.create_task(take("normal-1", False)),
        asyncio.create_task(take("normal-2", False)),
    ]
    await asyncio.sleep(0)
    waiters.append(asyncio.create_task(take("urgent", True)))
    await asyncio.sleep(0)
    lock.release()
    await asyncio.gather(*waiters)
    assert order == ["urgent", "normal-1", "normal-2"]
    assert not lock.locked()


async def test_a_flood_of_urgent_writers_cannot_starve_background_work() -> None:
    lock, order, take = await held_lock()

    waiters = [asyncio.create_task(take("background", False))]
    await asyncio.sleep(0)
    waiters += [asyncio.create_task(take(f"ack-{n}", True)) for n in range(20)]
    await asyncio.sleep(0)
    lock.release()
    await asyncio.gather(*waiters)
    assert order.index("background") == WriterLock.URGENT_RUN
    assert not lock.locked()


async def test_a_cancelled_waiter_does_not_keep_the_lock() -> None:
    lock = WriterLock()
    await lock.acquire()
    waiter = asyncio.create_task(lock.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    lock.release()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert not lock.locked()
    await asyncio.wait_for(lock.acquire(urgent=True), timeout=1)


async def test_read_only_unit_of_work_does_not_wait_for_the_writer(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'ro.db'}")
    await upgrade_engine(engine)
    uow_factory = SqlUnitOfWorkFactory(engine, FakeClock())
    try:
        writer_inside = asyncio.Event()
        release_writer = asyncio.Event()

        async def long_writer() -> None:
            async with uow_factory() as uow:
                await uow.inbox.add("evt-1", FakeClock().now())
                writer_inside.set()
                await release_writer.wait()

        task = asyncio.create_task(long_writer())
        await writer_inside.wait()
        async with asyncio.timeout(5), uow_factory(read_only=True) as reader:
            assert await reader.tasks.get(1) is None  # answered while the writer holds the lock
        release_writer.set()
        await task
        async with uow_factory() as uow:
            assert not await uow.inbox.add("evt-1", FakeClock().now())  # the writer committed
    finally:
        await engine.dispose()
