"""BudgetRepository: holds that never overspend, idempotent settle/release,
and many concurrent money transactions that lose nothing."""

from __future__ import annotations

import asyncio

from sqlalchemy import select, update

from core.records import BudgetStatus
from storage.models import BudgetHoldRow, BudgetRow
from storage.uow import SqlUnitOfWorkFactory
from tests.fakes import FakeClock
from tests.unit.storage.helpers import new_task

MONTH = "2026-11"


async def _tasks(factory: SqlUnitOfWorkFactory, n: int, requester: str = "U1") -> list[int]:
    async with factory() as uow:
        return [(await uow.tasks.add(new_task(requester))).id for _ in range(n)]


async def _status(factory: SqlUnitOfWorkFactory, limit: int = 10_000) -> BudgetStatus:
    async with factory() as uow:
        return await uow.budgets.status("U1", MONTH, limit, "USD")


async def test_status_of_unknown_requester_is_zero(uow_factory: SqlUnitOfWorkFactory) -> None:
    status = await _status(uow_factory, 500)
    assert (status.spent_cents, status.held_cents, status.remaining_cents) == (0, 0, 500)
    assert status.currency == "USD" and status.month == MONTH


async def test_hold_settle_release(uow_factory: SqlUnitOfWorkFactory, clock: FakeClock) -> None:
    a, b, c = await _tasks(uow_factory, 3)
    async with uow_factory() as uow:
        assert await uow.budgets.hold(a, "U1", MONTH, 3000, 10_000, clock.now())
        assert await uow.budgets.hold(b, "U1", MONTH, 4000, 10_000, clock.now())
        assert not await uow.budgets.hold(c, "U1", MONTH, 3001, 10_000, clock.now())
        assert await uow.session.get(BudgetHoldRow, c) is None  # a refused hold leaves no row
    assert (await _status(uow_factory)).held_cents == 7000

    async with uow_factory() as uow:
        assert await uow.budgets.settle(a, 2500)  # cost less than held
        assert not await uow.budgets.settle(a, 2500)  # idempotent
        assert not await uow.budgets.release(a)  # settled holds stay settled
        assert await uow.budgets.release(b)
        assert not await uow.budgets.release(b)
        assert not await uow.budgets.settle(b, 4000)
        assert not await uow.budgets.settle(c, 1)  # never held
    status = await _status(uow_factory)
    assert (status.spent_cents, status.held_cents, status.remaining_cents) == (2500, 0, 7500)

    async with uow_factory() as uow:  # released money is available again
        assert await uow.budgets.hold(c, "U1", MONTH, 7500, 10_000, clock.now())


async def _hold(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, task_id: int, cents: int
) -> bool:
    """U1 holds `cents` of a 10,000-cent month for `task_id`, in a unit of work of its own."""
    async with uow_factory() as uow:
        return await uow.budgets.hold(task_id, "U1", MONTH, cents, 10_000, clock.now())


async def test_hold_is_idempotent_per_task(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    (t,) = await _tasks(uow_factory, 1)
    assert await _hold(uow_factory, clock, t, 6000)
    assert await _hold(uow_factory, clock, t, 6000)
    assert (await _status(uow_factory)).held_cents == 6000
    async with uow_factory() as uow:
        await uow.budgets.settle(t, 6000)
        assert await uow.budgets.hold(t, "U1", MONTH, 6000, 10_000, clock.now())
    status = await _status(uow_factory)
    assert (status.spent_cents, status.held_cents) == (6000, 0)


async def test_concurrent_holds_of_one_task_hold_once(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    (t,) = await _tasks(uow_factory, 1)

    assert all(await asyncio.gather(*(_hold(uow_factory, clock, t, 1000) for _ in range(10))))
    assert (await _status(uow_factory)).held_cents == 1000


async def test_budget_race_never_exceeds_limit(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    """20 concurrent holds of 6000 against 10000: exactly one fits."""
    ids = await _tasks(uow_factory, 20)

    results = await asyncio.gather(*(_hold(uow_factory, clock, t, 6000) for t in ids))
    assert sum(results) == 1
    status = await _status(uow_factory)
    assert status.held_cents == 6000 <= 10_000
    async with uow_factory() as uow:
        holds = (await uow.session.scalars(select(BudgetHoldRow))).all()
    assert [h.task_id for h in holds] == [ids[results.index(True)]]


async def test_200_concurrent_money_transactions_lose_nothing(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    """Each transaction holds, settles and writes the ledger; every cent arrives."""
    ids = await _tasks(uow_factory, 200)

    async def spend(task_id: int) -> None:
        async with uow_factory() as uow:
            assert await uow.budgets.hold(task_id, "U1", MONTH, 7, 1_000_000, clock.now())
            assert await uow.budgets.settle(task_id, 5)

    results = await asyncio.gather(*(spend(t) for t in ids), return_exceptions=True)
    assert [r for r in results if r is not None] == []
    status = await _status(uow_factory, 1_000_000)
    assert (status.spent_cents, status.held_cents) == (1000, 0)


async def test_200_concurrent_read_modify_writes_on_sqlite(sqlite_url: str) -> None:
    """Plain read-then-write through two engines on one SQLite file (as two processes
    would): BEGIN IMMEDIATE + the writer lock lose no update and never report
    "database is locked"."""
    from storage.migrate import upgrade

    await upgrade(sqlite_url)
    factories = [SqlUnitOfWorkFactory.from_url(sqlite_url) for _ in range(2)]
    try:
        async with factories[0]() as uow:
            uow.session.add(BudgetRow(requester="U1", month=MONTH, spent_cents=0, held_cents=0))

        async def increment(factory: SqlUnitOfWorkFactory) -> None:
            async with factory() as uow:
                spent = await uow.session.scalar(
                    select(BudgetRow.spent_cents).where(BudgetRow.requester == "U1")
                )
                assert spent is not None
                await asyncio.sleep(0)  # invite interleaving between read and write
                await uow.session.execute(
                    update(BudgetRow)
                    .where(BudgetRow.requester == "U1")
                    .values(spent_cents=spent + 1)
                )

        results = await asyncio.gather(
            *(increment(factories[i % 2]) for i in range(200)), return_exceptions=True
        )
        assert [r for r in results if r is not None] == []
        async with factories[0]() as uow:
            total = await uow.session.scalar(select(BudgetRow.spent_cents))
        assert total == 200
    finally:
        for factory in factories:
            await factory.dispose()


async def test_budgets_are_per_requester_and_month(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    (a,) = await _tasks(uow_factory, 1, "U1")
    (b,) = await _tasks(uow_factory, 1, "U2")
    (c,) = await _tasks(uow_factory, 1, "U1")
    async with uow_factory() as uow:
        assert await uow.budgets.hold(a, "U1", MONTH, 10_000, 10_000, clock.now())
        assert await uow.budgets.hold(b, "U2", MONTH, 10_000, 10_000, clock.now())
        assert await uow.budgets.hold(c, "U1", "2026-12", 10_000, 10_000, clock.now())
        assert (await uow.budgets.status("U2", MONTH, 10_000, "USD")).held_cents == 10_000
        assert (await uow.budgets.status("U1", "2026-12", 10_000, "USD")).held_cents == 10_000
