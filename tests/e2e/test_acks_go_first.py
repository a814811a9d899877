"""Requests are answered before the work they start (core/front_door.py): every front
end holds the front door while it persists and answers, so background work waits."""

from __future__ import annotations

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
