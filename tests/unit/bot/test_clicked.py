"""What every click listener shares: the ack, the unpacked button, answers after the ack."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.listeners.clicked import NOT_VALID, Click, on_click
from bot.views.buttons import CancelButton

Listener = Callable[..., Coroutine[Any, Any, None]]


class FakeApp:
    """Keeps the listener Bolt would call for each action_id."""

    def __init__(self) -> None:
        self.listeners: dict[str, Listener] = {}

    def action(self, action_id: str) -> Callable[[Listener], Listener]:
        def keep(listener: Listener) -> Listener:
            self.listeners[action_id] = listener
            return listener

        return keep


class FakeService:
    def __init__(self, events: list[str]) -> None:
        self.events = events
        self.background: list[Coroutine[Any, Any, None]] = []

    def run_in_background(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self.events.append(name)
        self.background.append(coro)


class FakeClient:
    def __init__(self, refuse_views: bool = False) -> None:
        self.ephemerals: list[dict[str, Any]] = []
        self.refuse_views = refuse_views

    async def chat_postEphemeral(self, **params: Any) -> None:
        self.ephemerals.append(params)

    async def views_open(self, **params: Any) -> None:
        if self.refuse_views:
            response = AsyncSlackResponse(
                client=None,
                http_verb="POST",
                api_url="views.open",
                req_args={},
                data={"ok": False, "error": "expired_trigger_id"},
                headers={},
                status_code=200,
            )
            raise SlackApiError("expired", response)


def click_body(user: str = "U1") -> dict[str, Any]:
    return {
        "user": {"id": user, "team_id": "T1"},
        "team": {"id": "T1"},
        "trigger_id": "trig",
        "container": {"channel_id": "C1", "message_ts": "1.000100"},
        "message": {"ts": "1.000100", "thread_ts": "0.000900"},
    }


async def press(
    decides_before_ack: bool, value: str, answer: str | None = "no", refuse_views: bool = False
) -> tuple[list[str], FakeService, FakeClient, AsyncBoltContext, list[Click]]:
    events: list[str] = []
    app, service, client = FakeApp(), FakeService(events), FakeClient(refuse_views)
    clicks: list[Click] = []

    @on_click(app, service, CancelButton, decides_before_ack=decides_before_ack)
    async def on_cancel(click: Click, button: CancelButton) -> str | None:
        events.append(f"listener {button.task_id}")
        clicks.append(click)
        return answer

    async def ack() -> None:
        events.append("ack")

    context = AsyncBoltContext({"channel_id": "C1", "client": client})
    await app.listeners[CancelButton.action_id](
        ack=ack, body=click_body(), action={"value": value}, context=context
    )
    for coro in service.background:
        await coro
    return events, service, client, context, clicks


@pytest.mark.parametrize(
    ("decides_before_ack", "order"),
    [
        (False, ["ack", "listener 7", "ephemeral-answer"]),
        (True, ["listener 7", "ack", "ephemeral-answer"]),
    ],
)
async def test_the_answer_always_comes_after_the_ack(
    decides_before_ack: bool, order: list[str]
) -> None:
    events, _service, client, _context, (click,) = await press(decides_before_ack, "7")
    assert events == order
    assert client.ephemerals == [
        {"channel": "C1", "user": "U1", "text": "no", "thread_ts": "0.000900"}
    ]
    assert (click.user, click.channel, click.message_ts) == ("U1", "C1", "1.000100")
    assert not click.external


async def test_nothing_is_said_when_the_listener_has_nothing_to_say() -> None:
    events, _service, client, _context, _clicks = await press(False, "7", answer=None)
    assert events == ["ack", "listener 7"]
    assert client.ephemerals == []


@pytest.mark.parametrize("decides_before_ack", [False, True])
@pytest.mark.parametrize("value", ["", "x", "0", "7:8"])
async def test_a_button_that_does_not_unpack_never_reaches_the_listener(
    decides_before_ack: bool, value: str
) -> None:
    events, _service, client, context, clicks = await press(decides_before_ack, value)
    assert clicks == [] and events == ["ack", "ephemeral-answer"]
    assert context["outcome"] == "invalid"
    assert [e["text"] for e in client.ephemerals] == [NOT_VALID]


async def test_a_refused_modal_is_the_outcome_and_false() -> None:
    _events, _service, _client, context, (click,) = await press(False, "7", refuse_views=True)
    assert await click.open_modal({"type": "modal"}, "a test") is False
    assert context["outcome"] == "modal_failed"


async def test_an_opened_modal_is_true() -> None:
    _events, _service, _client, context, (click,) = await press(False, "7")
    assert await click.open_modal({"type": "modal"}, "a test") is True
    assert "outcome" not in context
