"""Rows that wait for their unit of work's end (storage/deferred.py): one multi-row
statement per kind at commit, in the order written, written first whenever a
statement could see them, and rolled back with the rest."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.exc import IntegrityError

from core.records import AuditEntry, LedgerEntry
from storage.models import AuditRow, TaskRow
from storage.uow import SqlUnitOfWork, SqlUnitOfWorkFactory
from tests.fakes import FakeClock
from tests.unit.storage.helpers import new_task


def count_inserts(factory: SqlUnitOfWorkFactory) -> dict[str, int]:
    """Statements that reached the database, by the table they insert into."""
    seen: dict[str, int] = {}

    @event.listens_for(factory.engine.sync_engine, "before_cursor_execute")
    def _count(_c: Any, _cur: Any, statement: str, *_rest: Any) -> None:
        if statement.startswith("INSERT INTO"):
            table = statement.split()[2]
            seen[table] = seen.get(table, 0) + 1

    return seen


async def test_rows_from_many_writes_go_in_one_statement_per_table_at_commit(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    async with uow_factory() as uow:
        ids = [(await uow.tasks.add(new_task(title=f"t{n}"))).id for n in range(30)]
    inserts = count_inserts(uow_factory)
    async with uow_factory() as uow:
        for n, task_id in enumerate(ids):
            await uow.audit.record(AuditEntry(task_id, "U1", f"step-{n}", clock.now(), {"n": n}))
            await uow.ledger.record(LedgerEntry(task_id, "U1", n, "USD", f"t{n}", clock.now()))
        assert inserts == {}  # nothing written yet
    assert inserts == {"audit_log": 1, "transactions": 1}
    async with uow_factory(read_only=True) as uow:
        rows = (await uow.session.scalars(select(AuditRow).order_by(AuditRow.id))).all()
        assert [r.action for r in rows] == [f"step-{n}" for n in range(30)]
        assert [e.amount_cents for e in await uow.ledger.for_task(ids[7])] == [7]
    await uow_factory.dispose()


async def test_a_row_is_read_back_in_the_transaction_that_wrote_it(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    async with uow_factory() as uow:
        await uow.audit.record(AuditEntry(5, "U1", "created", clock.now()))
        await uow.audit.record(AuditEntry(5, "U1", "started", clock.now()))
        assert [e.action for e in await uow.audit.for_task(5)] == ["created", "started"]
        await uow.audit.record(AuditEntry(5, "U1", "completed", clock.now()))
    async with uow_factory(read_only=True) as uow:
        actions = [e.action for e in await uow.audit.for_task(5)]
    assert actions == ["created", "started", "completed"]
    await uow_factory.dispose()


async def test_a_row_the_database_refuses_fails_its_whole_transaction(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    with pytest.raises(IntegrityError):
        async with uow_factory() as uow:
            await uow.inbox.add("Ev1", clock.now())
            await uow.audit.record(AuditEntry(1, "U1", "fine", clock.now()))
            await uow.audit.record(AuditEntry(1, None, "no actor", clock.now()))  # type: ignore[arg-type]
    async with uow_factory(read_only=True) as uow:
        assert await uow.audit.for_task(1) == []
        assert await uow.inbox.claim("Ev1", clock.now()) is not None  # never committed
    await uow_factory.dispose()


async def test_a_request_row_with_a_reserved_id_waits_until_something_could_see_it(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    inserts = count_inserts(uow_factory)
    async with uow_factory() as uow:
        reserved = await uow.inbox.claim("Ev1", clock.now())
        assert reserved is not None
        task = await uow.tasks.add(replace(new_task(title="plan"), id=reserved))
        await uow.audit.record(AuditEntry(task.id, "U1", "created", clock.now()))
        assert "tasks" not in inserts
        assert await uow.tasks.get(task.id) == task  # a read of tasks writes it first
        assert inserts["tasks"] == 1
        step = await uow.tasks.add(new_task(title="step", parent_id=task.id))
        assert step.root_id == task.id
    async with uow_factory(read_only=True) as uow:
        assert [t.title for t in await uow.tasks.children(task.id)] == ["step"]
    await uow_factory.dispose()


@pytest.mark.parametrize("then", ["approval", "raw sql"])
async def test_a_statement_on_a_table_that_points_at_a_waiting_row_writes_it_first(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, then: str
) -> None:
    """An approval's foreign key names the waiting task; raw SQL names no table at all."""
    async with uow_factory() as uow:
        reserved = await uow.inbox.claim("Ev1", clock.now())
        assert reserved is not None
        task = await uow.tasks.add(replace(new_task(title="buy", cost_cents=500), id=reserved))
        if then == "approval":
            approval = await uow.approvals.add(task, ["UA"], 500, clock.now(), clock.now())
            assert approval is not None
        else:
            count = await uow.session.execute(text("SELECT count(*) FROM tasks"))
            assert count.scalar_one() == 1
    async with uow_factory(read_only=True) as uow:
        assert (await uow.session.scalars(select(TaskRow.title))).all() == ["buy"]
    await uow_factory.dispose()


async def test_a_group_commit_of_requests_writes_their_rows_in_one_statement_each(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    """The next request's inbox claim touches no waiting table, so nothing is written
    between two requests of one batch."""
    inserts = count_inserts(uow_factory)

    async def accept(uow: SqlUnitOfWork, n: int) -> int:
        reserved = await uow.inbox.claim(f"Ev{n}", clock.now())
        assert reserved is not None
        task = await uow.tasks.add(replace(new_task(title=f"t{n}"), id=reserved))
        await uow.audit.record(AuditEntry(task.id, "U1", "created", clock.now()))
        return task.id

    ids = await asyncio.gather(
        *(uow_factory.together(lambda u, n=n: accept(u, n)) for n in range(10))
    )
    assert len(set(ids)) == 10
    batches = uow_factory.group.batches
    assert inserts["audit_log"] == batches < 10 and inserts["inbox"] == 10
    if uow_factory.engine.dialect.name == "postgresql":
        assert inserts["tasks"] == batches  # the claim draws the id from a sequence
    else:  # the claim reads max(id) of tasks: the waiting row must be in by then
        assert inserts["tasks"] == 10
    await uow_factory.dispose()
