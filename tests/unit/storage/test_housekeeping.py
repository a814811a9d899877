"""Housekeeping on SQLite and PostgreSQL with a fake clock: what is past its
retention goes, what is still needed (undelivered replies, holds of running tasks,
live leases, recent event ids, the audit log and the ledger) stays."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from sqlalchemy import func, select

from core.jobs.housekeeping import Housekeeping, Retention
from core.notices import Destination, TaskFailed
from core.records import AuditEntry, Conversation, LedgerEntry, NewTask, TaskChanges
from core.states import TaskStatus
from storage.models import AuditRow, BudgetHoldRow, InboxRow, LeaseRow, OutboxRow, TransactionRow
from storage.uow import SqlUnitOfWorkFactory
from tests.fakes import FakeClock

DAY = 86400.0
RETENTION = Retention(records=timedelta(days=30), inbox=timedelta(hours=2))


def note(title: str) -> TaskFailed:
    return TaskFailed(destination=Destination(channel="D1", thread_ts=title), task_id=None)


async def counts(uow_factory: SqlUnitOfWorkFactory) -> dict[str, object]:
    async with uow_factory() as uow:
        s = uow.session
        return {
            "outbox": Counter((await s.execute(select(OutboxRow.status))).scalars().all()),
            "holds": sorted((await s.execute(select(BudgetHoldRow.task_id))).scalars().all()),
            "inbox": sorted((await s.execute(select(InboxRow.event_id))).scalars().all()),
            "leases": sorted((await s.execute(select(LeaseRow.name))).scalars().all()),
            "audit": await s.scalar(select(func.count()).select_from(AuditRow)),
            "ledger": await s.scalar(select(func.count()).select_from(TransactionRow)),
        }


async def new_task(uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, n: int) -> int:
    async with uow_factory() as uow:
        task = await uow.tasks.add(
            NewTask(
                conversation=Conversation(requester="U1", channel="D1", thread_ts=f"1.{n}"),
                agent="purchase",
                title=f"buy {n}",
                params={},
                cost_cents=100,
                currency="USD",
            )
        )
        await uow.budgets.hold(task.id, "U1", "2026-11", 100, 10_000, clock.now())
        return task.id


async def finish(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, task_id: int, spend: bool
) -> None:
    async with uow_factory() as uow:
        assert await uow.tasks.set_status(
            task_id, TaskStatus.PENDING, TaskStatus.IN_PROGRESS, clock.now(), TaskChanges()
        )
        end = TaskStatus.COMPLETED if spend else TaskStatus.FAILED
        assert await uow.tasks.set_status(
            task_id, TaskStatus.IN_PROGRESS, end, clock.now(), TaskChanges(finished_at=clock.now())
        )
        if spend:
            assert await uow.budgets.settle(task_id, 100)
            await uow.ledger.record(
                LedgerEntry(
                    task_id=task_id,
                    requester="U1",
                    amount_cents=100,
                    currency="USD",
                    description="po",
                    created_at=clock.now(),
                )
            )
        else:
            assert await uow.budgets.release(task_id)
        await uow.audit.record(
            AuditEntry(
                task_id=task_id,
                actor="system",
                action="finished",
                detail={},
                created_at=clock.now(),
            )
        )


async def outbox_ids(uow_factory: SqlUnitOfWorkFactory) -> list[int]:
    """Entries' ids in the order written (an entry's id is known once it is committed)."""
    async with uow_factory(read_only=True) as uow:
        return list((await uow.session.scalars(select(OutboxRow.id).order_by(OutboxRow.id))).all())


async def test_pruning_deletes_what_is_past_retention_and_keeps_the_rest(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    uow_factory = uow_factory
    # --- 40 days ago: a delivered reply, a given-up reply, finished tasks, a dead process
    old_sent, old_failed, old_pending = note("old-sent"), note("old-failed"), note("old-pending")
    async with uow_factory() as uow:
        await uow.outbox.add(old_sent, clock.now())
        await uow.outbox.add(old_failed, clock.now())
        await uow.outbox.add(old_pending, clock.now())  # Slack down for 40 days: still owed
    sent_id, failed_id, _pending_id = await outbox_ids(uow_factory)
    async with uow_factory() as uow:
        await uow.outbox.mark_sent(sent_id, "1.1", clock.now())
        await uow.outbox.mark_failed(failed_id, "channel_not_found", clock.now())
        await uow.inbox.add("Ev-old", clock.now())
        await uow.leases.acquire("worker:dead-host:1:aa", "dead-host:1:aa", clock.now(), 30)
    spent, released, running = [await new_task(uow_factory, clock, n) for n in (1, 2, 3)]
    await finish(uow_factory, clock, spent, spend=True)
    await finish(uow_factory, clock, released, spend=False)

    # --- 3 hours before now an event id (past the 2 h inbox retention), 1 hour: inside it
    clock.advance(40 * DAY - 3 * 3600)
    async with uow_factory() as uow:
        await uow.inbox.add("Ev-3h", clock.now())
    clock.advance(2 * 3600)
    async with uow_factory() as uow:
        await uow.inbox.add("Ev-1h", clock.now())
        await uow.outbox.add(note("recent"), clock.now())
    recent = (await outbox_ids(uow_factory))[-1]
    async with uow_factory() as uow:
        await uow.outbox.mark_sent(recent, "1.2", clock.now())
    recent_spent = await new_task(uow_factory, clock, 4)
    await finish(uow_factory, clock, recent_spent, spend=True)
    clock.advance(3600)
    async with uow_factory() as uow:
        await uow.leases.acquire("worker:live-host:2:bb", "live-host:2:bb", clock.now(), 30)
        await uow.leases.acquire("job:recovery", "live-host:2:bb", clock.now(), 30)

    before = await counts(uow_factory)
    pruned = await Housekeeping(uow_factory, clock, RETENTION, batch=1).run()
    after = await counts(uow_factory)

    assert pruned == {"outbox": 1, "holds": 2, "inbox": 2, "leases": 1}
    assert after["outbox"] == Counter(SENT=1, FAILED=1, PENDING=1)  # the recent, failed, owed
    assert after["holds"] == sorted([running, recent_spent])  # HELD, and finished recently
    assert after["inbox"] == ["Ev-1h"]
    assert after["leases"] == ["job:recovery", "worker:live-host:2:bb"]
    assert (after["audit"], after["ledger"]) == (before["audit"], before["ledger"]) == (3, 2)

    assert await Housekeeping(uow_factory, clock, RETENTION).run() == dict.fromkeys(pruned, 0)


async def test_event_ids_are_kept_at_least_an_hour_even_when_configured_lower(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    """Slack redelivers for up to about an hour: dedupe must outlive that."""
    async with uow_factory() as uow:
        await uow.inbox.add("Ev-30min", clock.now())
    clock.advance(1800)
    retention = Retention(records=timedelta(days=1), inbox=timedelta(minutes=1))
    assert (await Housekeeping(uow_factory, clock, retention).run())["inbox"] == 0
    async with uow_factory() as uow:
        assert not await uow.inbox.add("Ev-30min", clock.now())  # still a redelivery


async def test_a_big_backlog_is_deleted_in_bounded_batches(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    async with uow_factory() as uow:
        for n in range(25):
            await uow.outbox.add(note(f"n{n}"), clock.now())
    async with uow_factory() as uow:
        for n, entry in enumerate(await outbox_ids(uow_factory)):
            await uow.outbox.mark_sent(entry, f"1.{n}", clock.now())
    clock.advance(31 * DAY)
    statements: list[int] = []

    class Counting(Housekeeping):
        async def _in_batches(self, cutoff, prune):  # type: ignore[no-untyped-def]
            async def counted(uow_factory, at, n):  # type: ignore[no-untyped-def]
                deleted = await prune(uow_factory, at, n)
                statements.append(deleted)
                return deleted

            return await super()._in_batches(cutoff, counted)

    pruned = await Counting(uow_factory, clock, RETENTION, batch=10).run()
    assert pruned["outbox"] == 25
    assert statements[:3] == [10, 10, 5]  # three transactions of at most 10 rows each
