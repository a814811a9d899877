"""Audit and ledger rows go in together at commit (storage/append_only.py): one
multi-row INSERT per table, in the order written, read back the same transaction,
and rolled back with it."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import IntegrityError

from core.records import AuditEntry, LedgerEntry
from storage.models import AuditRow
from storage.uow import SqlUnitOfWorkFactory
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
