"""Background units of work let requests being answered go first (core/front_door.py);
the ack path (urgent units, group commit) never waits for them."""

from __future__ import annotations

import asyncio

import pytest

from storage.engine import RESERVED_CONNECTIONS
from storage.uow import SqlUnitOfWorkFactory
from tests.fakes import FakeClock

#: no trickle turn comes during a test
NEVER = 3600.0


async def test_background_writes_wait_while_a_request_is_answered(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    door = uow_factory.front_door
    door.trickle = NEVER
    written: list[str] = []

    async def background(event: str) -> None:
        async with uow_factory() as uow:
            await uow.inbox.add(event, clock.now())
        written.append(event)

    with door.serving():
        await background("evt-first")  # the one trickle turn
        held = asyncio.create_task(background("evt-held"))
        for _ in range(20):
            await asyncio.sleep(0)
        assert not held.done() and door.waiting_now == 1
        async with asyncio.timeout(30), uow_factory(urgent=True) as uow:
            assert await uow.inbox.add("evt-ack", clock.now())
        assert await uow_factory.together(lambda uow: uow.inbox.add("evt-grouped", clock.now()))
        async with uow_factory(read_only=True) as uow:
            assert await uow.tasks.get(1) is None  # reads never wait
        assert written == ["evt-first"]
    async with asyncio.timeout(30):
        await held
    assert written == ["evt-first", "evt-held"]
    await uow_factory.dispose()


async def test_warm_up_opens_the_ack_paths_connections_before_a_request_does(
    uow_factory: SqlUnitOfWorkFactory,
) -> None:
    if uow_factory.engine.dialect.name != "postgresql":
        pytest.skip("a SQLite connection is a file opened: nothing to warm")
    pool = uow_factory.engine.sync_engine.pool
    assert pool.checkedin() == 0  # type: ignore[attr-defined]
    await uow_factory.warm_up()
    assert pool.checkedin() == RESERVED_CONNECTIONS  # type: ignore[attr-defined]
    await uow_factory.dispose()
