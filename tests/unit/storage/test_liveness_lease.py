"""The liveness lease renews on a lane of its own: not behind queued writes (the
SQLite writer lock's critical lane) nor behind a busy pool (its own engine)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select, text

from storage.engine import WriterLock, is_sqlite
from storage.models import LeaseRow
from storage.uow import SqlUnitOfWorkFactory
from tests.fakes import FakeClock


async def test_critical_waiter_goes_before_queued_urgent_and_normal_writers() -> None:
    lock = WriterLock()
    order: list[str] = []
    await lock.acquire()

    async def take(name: str, urgent: bool = False, critical: bool = False) -> None:
        await lock.acquire(urgent, critical)
        order.append(name)
        lock.release()

    waiters = [asyncio.create_task(take(f"normal-{n}")) for n in range(3)]
    waiters += [asyncio.create_task(take(f"urgent-{n}", urgent=True)) for n in range(3)]
    await asyncio.sleep(0)
    waiters.append(asyncio.create_task(take("heartbeat", critical=True)))
    await asyncio.sleep(0)
    lock.release()
    await asyncio.gather(*waiters)
    assert order[0] == "heartbeat"
    assert order[1:] == ["urgent-0", "urgent-1", "urgent-2", "normal-0", "normal-1", "normal-2"]
    assert not lock.locked()


async def _expiry(uow_factory: SqlUnitOfWorkFactory, name: str) -> object:
    async with uow_factory(read_only=True) as unit:
        return await unit.session.scalar(select(LeaseRow.expires_at).where(LeaseRow.name == name))


async def test_renewal_is_one_conditional_update_and_keeps_other_holders_out(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    lease = uow_factory.liveness_lease("worker:h:1:aa", "h:1:aa", 10)
    assert await lease.renew(clock.now())  # first beat inserts
    clock.advance(3)
    assert await lease.renew(clock.now())
    async with uow_factory(read_only=True) as unit:
        assert await unit.leases.alive("worker:h:1:aa", clock.now() + timedelta(seconds=9))
    other = uow_factory.liveness_lease("worker:h:1:aa", "someone-else", 10)
    assert not await other.renew(clock.now())
    async with uow_factory() as unit:  # pruned by housekeeping: the next beat puts it back
        await unit.session.execute(text("DELETE FROM leases"))
    assert await lease.renew(clock.now())
    assert await _expiry(uow_factory, "worker:h:1:aa") is not None
    await uow_factory.dispose()


async def test_a_queue_of_writers_does_not_delay_the_heartbeat(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    """Fifty writers queue (on SQLite for the writer lock; on PostgreSQL they fill
    background work's lanes, core/front_door.py, and queue for more); the renewal,
    and on PostgreSQL an urgent unit of work (an ack), still complete while they wait."""
    lease = uow_factory.liveness_lease("worker:busy", "busy", 10)
    release = asyncio.Event()
    holding = 0

    async def writer(n: int) -> None:
        nonlocal holding
        async with uow_factory() as unit:
            await unit.inbox.add(f"evt-{n}", clock.now())
            holding += 1
            await release.wait()

    writers = [asyncio.create_task(writer(n)) for n in range(50)]
    sqlite = is_sqlite(uow_factory.engine)
    inside = 1 if sqlite else uow_factory.front_door.lanes
    async with asyncio.timeout(60):
        while holding < inside:
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    assert holding == inside
    renewal = asyncio.create_task(lease.renew(clock.now()))
    if sqlite:
        await asyncio.sleep(0.05)
        release.set()  # the writer in progress ends; the heartbeat is next, before the queue
        assert await renewal
        assert holding < 5, holding
    else:
        assert await asyncio.wait_for(renewal, timeout=30)  # while every writer still waits
        async with asyncio.timeout(30), uow_factory(urgent=True) as unit:
            assert await unit.inbox.add("evt-ack", clock.now())
        assert holding == inside
        release.set()
    await asyncio.gather(*writers)
    await uow_factory.dispose()
