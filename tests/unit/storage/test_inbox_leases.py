"""Inbox deduplication and leases."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import replace
from datetime import timedelta

from sqlalchemy import select

from storage.models import InboxRow
from storage.uow import SqlUnitOfWorkFactory
from tests.fakes import FakeClock
from tests.unit.storage.helpers import new_task


async def test_inbox_add_duplicate_attach_prune(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    async with uow_factory() as uow:
        assert await uow.inbox.add("Ev1", clock.now())
        assert not await uow.inbox.add("Ev1", clock.now())
        task = await uow.tasks.add(new_task(source_event_id="Ev1"))
        await uow.inbox.attach("Ev1", task.id)
    async with uow_factory() as uow:
        assert not await uow.inbox.add("Ev1", clock.now())  # a redelivery, later
        assert (await uow.session.get(InboxRow, "Ev1")) is not None
        row = await uow.session.scalar(select(InboxRow.task_id).where(InboxRow.event_id == "Ev1"))
        assert row == task.id
    clock.advance(3600)
    async with uow_factory() as uow:
        assert await uow.inbox.add("Ev2", clock.now())
        assert await uow.inbox.prune_before(clock.now() - timedelta(seconds=60)) == 1
        assert await uow.inbox.prune_before(clock.now() - timedelta(seconds=60)) == 0
        assert not await uow.inbox.add("Ev2", clock.now())
        assert await uow.inbox.add("Ev1", clock.now())  # pruned ids are forgotten


async def test_inbox_concurrent_duplicates(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    async def deliver() -> bool:
        async with uow_factory() as uow:
            return await uow.inbox.add("Ev-retry", clock.now())

    assert sum(await asyncio.gather(*(deliver() for _ in range(10)))) == 1


async def _acquire(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, name: str, holder: str
) -> bool:
    """Take or renew the lease `name` for 60 s, in a unit of work of its own."""
    async with uow_factory() as uow:
        return await uow.leases.acquire(name, holder, clock.now(), 60)


async def test_lease_exclusive_renewable_and_taken_after_expiry(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    def acquire(holder: str) -> Awaitable[bool]:
        return _acquire(uow_factory, clock, "stale-report", holder)

    assert await acquire("a")
    assert not await acquire("b")
    clock.advance(30)
    assert await acquire("a")  # renewal extends to now + 60
    clock.advance(59)
    assert not await acquire("b")
    clock.advance(2)
    assert await acquire("b")  # a's lease expired
    assert not await acquire("a")
    assert await _acquire(uow_factory, clock, "other", "a")  # other names are independent


async def test_lease_race_has_one_holder(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    replicas = (_acquire(uow_factory, clock, "job", f"replica-{i}") for i in range(10))
    results = await asyncio.gather(*replicas)
    assert sum(results) == 1


async def test_inbox_claim_reserves_the_task_id_once(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    async def deliver() -> int | None:
        async with uow_factory() as uow:
            reserved = await uow.inbox.claim("Ev-claim", clock.now())
            if reserved is not None:
                await uow.tasks.add(replace(new_task(source_event_id="Ev-claim"), id=reserved))
            return reserved

    claimed = [r for r in await asyncio.gather(*(deliver() for _ in range(6))) if r is not None]
    async with uow_factory() as uow:
        named = await uow.session.scalar(select(InboxRow.task_id))
        task = await uow.tasks.by_source_event("Ev-claim")
        later = await uow.tasks.add(new_task())
    assert len(claimed) == 1 and named == claimed[0]
    assert task is not None and task.id == task.root_id == claimed[0]
    assert later.id > claimed[0]
