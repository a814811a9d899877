"""Requests are answered before the work they start (core/front_door.py): every front
end holds the front door while it persists and answers, so background work waits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bot.server import Running
from tests.e2e.api_helpers import Api
from tests.e2e.conftest import Harness
from tests.slackfake import payloads


def watch_the_ack_path(running: Running) -> list[int]:
    """Requests being answered, as seen each time the ack path persists something."""
    factory = running.container.uow_factory
    seen: list[int] = []
    persist = factory.together

    async def together(work: Callable[[Any], Awaitable[Any]], *, background: bool = False) -> Any:
        if not background:
            seen.append(factory.front_door.serving_now)
        return await persist(work, background=background)

    factory.together = together  # type: ignore[method-assign]
    return seen


async def test_a_slack_request_holds_the_front_door_until_it_is_answered(
    harness: Harness,
) -> None:
    seen = watch_the_ack_path(harness.running)
    door = harness.running.container.uow_factory.front_door
    response = await harness.sender.event(payloads.im_message("research best laptops"))
    assert response.status == 200
    assert seen == [1]
    assert door.serving_now == 0
    await harness.settle()
    assert len(harness.posts()) == 1


async def test_an_api_call_holds_the_front_door_until_it_is_answered(api: Api) -> None:
    seen = watch_the_ack_path(api.harness.running)
    created = await api.submit("research best laptops")
    assert seen == [1]
    assert api.harness.running.container.uow_factory.front_door.serving_now == 0
    await api.harness.settle()
    assert (await api.task(created["id"]))["status"] == "COMPLETED"


#: background pieces queued at the front door: at one per trickle turn (20 ms), what a
#: request waiting behind them all would wait (seconds)
BACKLOG = 150


async def test_an_api_calls_own_writes_do_not_queue_behind_background_work(api: Api) -> None:
    """An API call with an Idempotency-Key writes the key on its own request path:
    while other requests are answered and background work has a backlog, those writes
    go first, not behind every waiting piece at one per trickle turn."""
    door = api.harness.running.container.uow_factory.front_door
    with door.serving():  # Slack requests keep arriving meanwhile
        backlog = [asyncio.create_task(door.turn()) for _ in range(BACKLOG)]
        for _ in range(5):
            await asyncio.sleep(0)
        assert door.waiting_now >= BACKLOG - 1
        started = time.monotonic()
        async with asyncio.timeout(BACKLOG * door.trickle):
            status, body, _ = await api.call(
                "POST",
                "/tasks",
                {"user_message": "research keyboards"},
                headers={"Idempotency-Key": "kb-1"},
            )
        assert status == 202, body
        assert time.monotonic() - started < 1.0
    async with asyncio.timeout(30):
        await asyncio.gather(*backlog)
