"""Outbox: per-destination order, claim leases, retries, failures, backlog."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from core.agents.base import AgentResult
from core.notices import (
    Destination,
    Notice,
    PlanStep,
    RequestAccepted,
    StaleReport,
    StaleTask,
    TaskFailed,
    TaskFinished,
)
from core.ports import OutboxItem
from storage.uow import SqlUnitOfWorkFactory
from tests.fakes import FakeClock
from tests.unit.storage.helpers import THREAD_A, THREAD_B, newest_outbox_ids

DM = Destination(user="U1")


def failed(dest: Destination, title: str) -> TaskFailed:
    return TaskFailed(destination=dest, task_id=None, title=title, error="x")


async def _add(factory: SqlUnitOfWorkFactory, clock: FakeClock, *notices: Notice) -> list[int]:
    async with factory() as uow:
        for n in notices:
            await uow.outbox.add(n, clock.now())
    return await newest_outbox_ids(factory, len(notices))


async def _claim(
    factory: SqlUnitOfWorkFactory, clock: FakeClock, limit: int = 10, lease: float = 30
) -> list[OutboxItem]:
    async with factory() as uow:
        return await uow.outbox.claim_due(clock.now(), limit, lease)


def _titles(items: list[OutboxItem]) -> list[str]:
    return [getattr(i.notice, "title", "") for i in items]


async def test_notices_round_trip(uow_factory: SqlUnitOfWorkFactory, clock: FakeClock) -> None:
    notices: list[Notice] = [
        TaskFinished(
            destination=THREAD_A,
            task_id=None,
            agent="research",
            title="t",
            result=AgentResult(summary="s", body="b", data={"k": [1, "2"]}, cost_cents=3),
            cost_cents=3,
        ),
        RequestAccepted(
            destination=THREAD_B,
            task_id=None,
            requester="U1",
            title="plan",
            steps=(PlanStep(1, "research", "look", ()), PlanStep(2, "purchase", "buy", (1,), True)),
        ),
        StaleReport(
            destination=DM,
            task_id=None,
            tasks=(StaleTask(1, "t", "U1", 90_000, "approval", "C1", None),),
        ),
    ]
    await _add(uow_factory, clock, *notices)
    items = await _claim(uow_factory, clock)
    assert [i.notice for i in items] == notices
    assert all(i.attempts == 0 and i.created_at == clock.now() for i in items)


async def test_one_per_destination_in_order(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    a1, a2, b1, a3 = await _add(
        uow_factory,
        clock,
        failed(THREAD_A, "a1"),
        failed(THREAD_A, "a2"),
        failed(THREAD_B, "b1"),
        failed(THREAD_A, "a3"),
    )
    first = await _claim(uow_factory, clock)
    assert [i.id for i in first] == [a1, b1]
    assert await _claim(uow_factory, clock) == []  # heads in flight, followers wait

    async with uow_factory() as uow:
        await uow.outbox.mark_sent(a1, "1700000001.000001", clock.now())
    assert [i.id for i in await _claim(uow_factory, clock)] == [a2]
    async with uow_factory() as uow:
        await uow.outbox.mark_sent(a2, None, clock.now())
        await uow.outbox.mark_sent(b1, "ts", clock.now())
    assert [i.id for i in await _claim(uow_factory, clock)] == [a3]


async def test_limit(uow_factory: SqlUnitOfWorkFactory, clock: FakeClock) -> None:
    await _add(
        uow_factory, clock, *(failed(Destination(channel=f"C{i}"), f"{i}") for i in range(5))
    )
    assert _titles(await _claim(uow_factory, clock, limit=2)) == ["0", "1"]
    assert _titles(await _claim(uow_factory, clock, limit=10)) == ["2", "3", "4"]


async def test_claim_lease_lapses(uow_factory: SqlUnitOfWorkFactory, clock: FakeClock) -> None:
    (a1,) = await _add(uow_factory, clock, failed(THREAD_A, "a1"))
    assert [i.id for i in await _claim(uow_factory, clock, lease=30)] == [a1]
    clock.advance(29)
    assert await _claim(uow_factory, clock) == []
    clock.advance(2)  # the sender died: its claim lapsed
    assert [i.id for i in await _claim(uow_factory, clock)] == [a1]


async def test_retry_later_keeps_followers_waiting(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    a1, a2, b1 = await _add(
        uow_factory, clock, failed(THREAD_A, "a1"), failed(THREAD_A, "a2"), failed(THREAD_B, "b1")
    )
    await _claim(uow_factory, clock)
    async with uow_factory() as uow:
        await uow.outbox.retry_later(a1, "429 rate limited", clock.now() + timedelta(seconds=60))
        await uow.outbox.mark_sent(b1, "ts", clock.now())
    clock.advance(30)
    assert await _claim(uow_factory, clock) == []  # a1 not due, a2 must not overtake it
    clock.advance(30)
    (again,) = await _claim(uow_factory, clock)
    assert again.id == a1 and again.attempts == 1
    async with uow_factory() as uow:
        await uow.outbox.mark_sent(a1, "ts", clock.now())
    assert [i.id for i in await _claim(uow_factory, clock)] == [a2]


async def test_failures_backlog(uow_factory: SqlUnitOfWorkFactory, clock: FakeClock) -> None:
    async with uow_factory() as uow:
        assert await uow.outbox.backlog(clock.now()) == (0, None, 0)
        assert await uow.outbox.recent_failures(10) == []
    first_at = clock.now()
    a1, a2 = await _add(uow_factory, clock, failed(THREAD_A, "a1"), failed(THREAD_A, "a2"))
    clock.advance(10)
    (b1,) = await _add(uow_factory, clock, failed(THREAD_B, "b1"))
    async with uow_factory() as uow:
        assert await uow.outbox.backlog(clock.now()) == (3, first_at, 0)
    await _claim(uow_factory, clock)
    clock.advance(5)
    async with uow_factory() as uow:
        await uow.outbox.mark_failed(a1, "channel_not_found", clock.now())
        await uow.outbox.mark_sent(b1, "ts", clock.now())
        await uow.outbox.mark_failed(b1, "too late", clock.now())  # SENT stays SENT
    # a permanent failure no longer holds back the thread
    assert [i.id for i in await _claim(uow_factory, clock)] == [a2]
    async with uow_factory() as uow:
        pending, oldest, failures = await uow.outbox.backlog(clock.now())
        recent = await uow.outbox.recent_failures(10)
    assert (pending, oldest, failures) == (1, first_at, 1)
    assert recent == [
        {
            "id": a1,
            "kind": "task_failed",
            "task_id": None,
            "error": "channel_not_found",
            "at": clock.now(),
        }
    ]


async def test_concurrent_claimers_never_share_and_keep_order(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    ids = await _add(
        uow_factory,
        clock,
        *(failed(Destination(channel=f"C{i % 40}"), f"{i}") for i in range(200)),
    )
    destination = {item_id: n % 40 for n, item_id in enumerate(ids)}
    sent: list[int] = []

    async def sender() -> None:
        while True:
            async with uow_factory() as uow:
                items = await uow.outbox.claim_due(clock.now(), 7, 60)
                pending = (await uow.outbox.backlog(clock.now()))[0]
            if not items:
                if pending == 0:
                    return
                await asyncio.sleep(0.001)  # others hold the heads in flight
                continue
            for item in items:
                sent.append(item.id)
                async with uow_factory() as uow:
                    await uow.outbox.mark_sent(item.id, "ts", clock.now())

    await asyncio.wait_for(asyncio.gather(*(sender() for _ in range(8))), 60)
    assert sorted(sent) == sorted(ids)  # each exactly once
    for d in range(40):
        order = [i for i in sent if destination[i] == d]
        assert order == sorted(order)


async def test_a_notice_the_front_end_never_shows_gets_no_row_but_hooks_see_it(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    """Slack folds "got it" into the status message: a row for it would only cost a
    claim and a sent-mark, and hold up the answer behind it in its thread."""
    seen: list[str] = []

    async def hook(_uow: object, notices: object) -> None:
        seen.extend(n.kind for n in notices)  # type: ignore[attr-defined]

    uow_factory.before_commit_with_notices(hook)
    uow_factory.leave_out(lambda n: isinstance(n, RequestAccepted))
    got_it = RequestAccepted(destination=THREAD_A, task_id=1, requester="U1", title="t")
    async with uow_factory() as uow:
        await uow.outbox.add(got_it, clock.now())
        await uow.outbox.add(failed(THREAD_A, "answer"), clock.now())
    assert seen == ["request_accepted", "task_failed"]
    (claimed,) = await _claim(uow_factory, clock)
    assert claimed.notice.kind == "task_failed"  # first in its thread, nothing before it
