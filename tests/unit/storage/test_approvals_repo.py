"""ApprovalRepository: one decision wins, pending ones come oldest first."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from core.records import ApprovalMessage
from core.states import ApprovalStatus
from storage.uow import SqlUnitOfWorkFactory
from tests.fakes import FakeClock
from tests.unit.storage.helpers import new_task


async def test_add_get_message_reminded(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    expires = clock.now() + timedelta(hours=24)
    async with uow_factory() as uow:
        task = await uow.tasks.add(new_task(cost_cents=5000))
        approval = await uow.approvals.add(task, ["UA", "UB"], 5000, clock.now(), expires)
    assert approval.task_id == task.id and approval.requester == "U1"
    assert approval.approvers == ("UA", "UB")
    assert approval.status is ApprovalStatus.PENDING and approval.amount_cents == 5000
    assert approval.channel == "C1" and approval.thread_ts == task.conversation.thread_ts
    assert approval.expires_at == expires and approval.message_ts is None

    first = ApprovalMessage(approval.id, "DUA", "1700000001.000200", "UA")
    second = ApprovalMessage(approval.id, "DUB", "1700000001.000300", "UB")
    async with uow_factory() as uow:
        assert await uow.approvals.add_message(first, clock.now())
        assert await uow.approvals.add_message(second, clock.now())
        assert not await uow.approvals.add_message(first, clock.now())  # recorded once
        assert await uow.approvals.remind(approval.id, clock.now(), clock.now())
        assert not await uow.approvals.remind(approval.id, clock.now(), clock.now() - timedelta(1))
        got = await uow.approvals.get(approval.id)
        assert got == await uow.approvals.for_task(task.id)
        assert await uow.approvals.messages(approval.id) == [first, second]
    assert got is not None
    assert (got.channel, got.reminded_at) == ("C1", clock.now())
    async with uow_factory() as uow:
        assert await uow.approvals.get(999) is None
        assert await uow.approvals.for_task(999) is None


async def test_one_approval_per_task(uow_factory: SqlUnitOfWorkFactory, clock: FakeClock) -> None:
    async with uow_factory() as uow:
        task = await uow.tasks.add(new_task())
        first = await uow.approvals.add(task, ["UA"], 1, clock.now(), clock.now())
    async with uow_factory() as uow:
        assert await uow.approvals.add(task, ["UB"], 2, clock.now(), clock.now()) is None
        kept = await uow.approvals.for_task(task.id)
    assert first is not None and kept == first


async def test_decide_has_one_winner(uow_factory: SqlUnitOfWorkFactory, clock: FakeClock) -> None:
    async with uow_factory() as uow:
        task = await uow.tasks.add(new_task())
        approval = await uow.approvals.add(task, ["UA", "UB"], 100, clock.now(), clock.now())

    async def click(i: int) -> bool:
        outcome = ApprovalStatus.APPROVED if i % 2 else ApprovalStatus.DENIED
        async with uow_factory() as uow:
            return await uow.approvals.decide(approval.id, outcome, f"U{i}", clock.now())

    results = await asyncio.gather(*(click(i) for i in range(20)))
    assert sum(results) == 1
    winner = results.index(True)
    async with uow_factory() as uow:
        decided = await uow.approvals.get(approval.id)
        assert not await uow.approvals.decide(
            approval.id, ApprovalStatus.EXPIRED, None, clock.now()
        )
    assert decided is not None and decided.decided_by == f"U{winner}"
    assert decided.status is (ApprovalStatus.APPROVED if winner % 2 else ApprovalStatus.DENIED)
    assert decided.decided_at == clock.now()


async def test_pending_oldest_first(uow_factory: SqlUnitOfWorkFactory, clock: FakeClock) -> None:
    ids = []
    async with uow_factory() as uow:
        for _ in range(3):
            task = await uow.tasks.add(new_task())
            a = await uow.approvals.add(task, ["UA"], 1, clock.now(), clock.now())
            ids.append(a.id)
            clock.advance(10)
        await uow.approvals.decide(ids[1], ApprovalStatus.CANCELLED, None, clock.now())
    async with uow_factory() as uow:
        assert [a.id for a in await uow.approvals.pending(10)] == [ids[0], ids[2]]
        assert [a.id for a in await uow.approvals.pending(1)] == [ids[0]]
