"""Group commit on the ack path: concurrent callers share one transaction, each
learns its result only once that has committed, and a failure stays with its caller."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.models import InboxRow
from storage.uow import SqlUnitOfWork, SqlUnitOfWorkFactory
from tests.fakes import FakeClock


class Refused(Exception):
    pass


async def committed_event_ids(engine: AsyncEngine) -> set[str]:
    """What another connection sees: only committed rows."""
    async with engine.connect() as connection:
        return set((await connection.scalars(select(InboxRow.event_id))).all())


async def test_concurrent_callers_share_one_transaction_and_see_it_committed(
    uow_factory: SqlUnitOfWorkFactory, engine: AsyncEngine, clock: FakeClock
) -> None:
    async def accept(event_id: str) -> bool:
        added = await uow_factory.together(lambda uow: uow.inbox.add(event_id, clock.now()))
        # persist before ack: by the time a caller has its answer, the row is committed
        assert event_id in await committed_event_ids(engine)
        return added

    results = await asyncio.gather(*(accept(f"Ev{n}") for n in range(20)))

    assert results == [True] * 20
    assert uow_factory.group.pieces == 20
    assert uow_factory.group.batches < 20


async def test_a_redelivery_in_the_same_batch_is_a_duplicate(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    results = await asyncio.gather(
        *(uow_factory.together(lambda uow: uow.inbox.add("Ev1", clock.now())) for _ in range(5))
    )

    assert sorted(results) == [False, False, False, False, True]
    assert uow_factory.group.batches == 1


async def test_a_failing_caller_fails_alone(
    uow_factory: SqlUnitOfWorkFactory, engine: AsyncEngine, clock: FakeClock
) -> None:
    async def work(uow: SqlUnitOfWork, event_id: str) -> str:
        await uow.inbox.add(event_id, clock.now())
        if event_id == "Ev3":
            raise Refused(event_id)
        return event_id

    results = await asyncio.gather(
        *(uow_factory.together(lambda uow, e=f"Ev{n}": work(uow, e)) for n in range(6)),
        return_exceptions=True,
    )

    assert [type(r).__name__ if isinstance(r, Exception) else r for r in results] == [
        "Ev0",
        "Ev1",
        "Ev2",
        "Refused",
        "Ev4",
        "Ev5",
    ]
    assert await committed_event_ids(engine) == {"Ev0", "Ev1", "Ev2", "Ev4", "Ev5"}


async def test_a_cancelled_caller_before_its_turn_writes_nothing(
    uow_factory: SqlUnitOfWorkFactory, engine: AsyncEngine, clock: FakeClock
) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("only SQLite's writer lock holds the ack path back")
    async with uow_factory() as uow:  # holds the writer lock
        waiting = asyncio.create_task(
            uow_factory.together(lambda u: u.inbox.add("Ev9", clock.now()))
        )
        await asyncio.sleep(0.05)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await uow.inbox.add("Ev1", clock.now())
    assert await uow_factory.together(lambda u: u.inbox.add("Ev2", clock.now()))

    async with engine.connect() as connection:
        count = await connection.scalar(select(func.count()).select_from(InboxRow))
    assert await committed_event_ids(engine) == {"Ev1", "Ev2"}
    assert count == 2


async def test_a_caller_right_after_a_batch_is_served(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    """The runner of the last batch may be finished but not yet forgotten."""
    for n in range(3):
        added = uow_factory.together(lambda uow, e=f"Ev{n}": uow.inbox.add(e, clock.now()))
        assert await asyncio.wait_for(added, timeout=10)


async def test_background_callers_are_grouped_too_and_wait_for_requests_answered(
    uow_factory: SqlUnitOfWorkFactory, engine: AsyncEngine, clock: FakeClock
) -> None:
    """Steps claimed and ended by many requests at once share transactions, in their
    own group (never holding the ack path's), behind the front door."""
    uow_factory.front_door.trickle = 3600.0
    with uow_factory.front_door.serving():
        await uow_factory.together(lambda uow: uow.inbox.add("Ev0", clock.now()), background=True)
        waiting = [
            asyncio.create_task(
                uow_factory.together(
                    lambda uow, e=f"Ev{n}": uow.inbox.add(e, clock.now()), background=True
                )
            )
            for n in range(1, 21)
        ]
        for _ in range(20):
            await asyncio.sleep(0)
        assert not any(w.done() for w in waiting)  # a request is being answered
        assert await uow_factory.together(lambda uow: uow.inbox.add("Ack", clock.now()))
    assert await asyncio.gather(*waiting) == [True] * 20
    assert await committed_event_ids(engine) == {"Ack", *(f"Ev{n}" for n in range(21))}
    group = uow_factory.background_group
    assert group.pieces == 21 and group.batches <= 3
    assert uow_factory.group.pieces == 1


async def test_a_caller_cancelled_while_its_batch_runs_commits_nothing(
    uow_factory: SqlUnitOfWorkFactory, engine: AsyncEngine, clock: FakeClock
) -> None:
    """At shutdown a claim must not commit for a caller that will never run its step."""
    gate = asyncio.Event()
    ran: list[str] = []

    async def work(uow: SqlUnitOfWork, event_id: str) -> str:
        await uow.inbox.add(event_id, clock.now())
        ran.append(event_id)
        if event_id == "Ev-slow":
            await gate.wait()  # e.g. a round trip to PostgreSQL
        return event_id

    doomed = asyncio.create_task(uow_factory.together(lambda u: work(u, "Ev-doomed")))
    slow = asyncio.create_task(uow_factory.together(lambda u: work(u, "Ev-slow")))
    while "Ev-slow" not in ran:
        await asyncio.sleep(0)
    assert ran == ["Ev-doomed", "Ev-slow"]  # one batch, the doomed work already done
    doomed.cancel()
    gate.set()
    assert await slow == "Ev-slow"
    with pytest.raises(asyncio.CancelledError):
        await doomed
    assert await committed_event_ids(engine) == {"Ev-slow"}


async def test_disposing_lets_a_batch_under_way_commit_first(
    uow_factory: SqlUnitOfWorkFactory, engine: AsyncEngine, clock: FakeClock
) -> None:
    """A write shielded from its cancelled caller (a sent-mark at shutdown) is still
    committed when the engine goes right after, and the loop with it."""
    gate = asyncio.Event()

    async def work(uow: SqlUnitOfWork) -> bool:
        await gate.wait()
        return await uow.inbox.add("Ev-late", clock.now())

    write = asyncio.ensure_future(uow_factory.together(work))
    await asyncio.sleep(0)
    asyncio.get_running_loop().call_later(0.05, gate.set)
    await uow_factory.dispose()
    assert write.done() and write.result()  # before the loop could end under it
    assert await committed_event_ids(engine) == {"Ev-late"}
