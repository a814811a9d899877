"""Requests are answered before the work they start (core/front_door.py): every front
end holds the front door while it persists and answers, so background work waits."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Iterator
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

    async def together(work: Callable[[Any], Awaitable[Any]], **kwargs: Any) -> Any:
        if not kwargs.get("background"):
            seen.append(factory.front_door.serving_now)
        return await persist(work, **kwargs)

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


async def test_a_slow_upload_does_not_hold_the_front_door(api: Api) -> None:
    """Background work only runs at a trickle while a request is being answered, so a
    call whose body is still arriving (a slow network, or a token holder sending one
    byte a minute on purpose) must not count as one yet: it would slow every request's
    work down for as long as the upload takes."""
    door = api.harness.running.container.uow_factory.front_door
    body = json.dumps({"user_message": "research keyboards"}).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", api.harness.running.port)
    try:
        head = (
            "POST /api/v1/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {api.token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        writer.write(head.encode() + body[:5])
        await writer.drain()
        await asyncio.sleep(0.3)  # the handler has started and waits for the rest
        assert door.serving_now == 0
        writer.write(body[5:])
        await writer.drain()
        async with asyncio.timeout(10):
            status = await reader.readline()
        assert b" 202 " in status
    finally:
        writer.close()


async def test_calls_without_a_valid_token_do_not_hold_the_front_door(api: Api) -> None:
    """Anyone can reach the API: were a refused call counted as one being answered, a
    stranger sending bad tokens back to back would keep all work at the trickle."""
    door = api.harness.running.container.uow_factory.front_door
    entered: list[int] = []
    serving = door.serving

    @contextlib.contextmanager
    def counted() -> Iterator[None]:
        entered.append(1)
        with serving():
            yield

    door.serving = counted  # type: ignore[method-assign]
    assert (await api.call("GET", "/tasks", token="tb_1_wrong"))[0] == 401
    assert (await api.call("GET", "/tasks", token=None))[0] == 401
    assert (await api.call("POST", "/tasks", {"user_message": "x"}, token="nope"))[0] == 401
    assert entered == []
    assert (await api.call("GET", "/tasks"))[0] == 200
    assert entered == [1]
