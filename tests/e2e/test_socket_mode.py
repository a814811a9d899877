"""Socket Mode: the same app over Slack's websocket, acking by envelope id."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.server import Running, start
from tests.e2e.conftest import make_settings
from tests.e2e.test_acks_go_first import watch_the_ack_path
from tests.slackfake import payloads
from tests.slackfake.server import FakeSlack


@pytest.fixture
async def socket_app(tmp_path: Path, fake_slack: FakeSlack) -> AsyncIterator[Running]:
    settings = make_settings(
        tmp_path, fake_slack, SLACK_APP_TOKEN="xapp-1-test", SLACK_SIGNING_SECRET=None
    )
    assert settings.socket_mode and settings.missing_for_slack() == []
    running = await start(settings)
    await fake_slack.socket_mode.connected()
    yield running
    await running.stop()


async def settle(running: Running) -> None:
    dispatcher = running.container.dispatcher
    assert dispatcher is not None
    await running.container.service.idle()
    await dispatcher.drain()


async def test_a_dm_over_socket_mode_is_acked_and_answered_in_its_thread(
    socket_app: Running, fake_slack: FakeSlack
) -> None:
    envelope = payloads.im_message("research best laptops", user="U1", channel="D1")
    envelope_id = await fake_slack.socket_mode.push(envelope)
    ack = await fake_slack.socket_mode.ack_for(envelope_id)
    assert ack["envelope_id"] == envelope_id
    await settle(socket_app)
    posts = [c for c in fake_slack.calls_to("chat.postMessage") if c.ok]
    assert len(posts) == 1  # the answer (fast work needs no status message)
    assert {c.params["thread_ts"] for c in posts} == {envelope["event"]["ts"]}
    opened = fake_slack.calls_to("apps.connections.open")
    assert opened and opened[0].headers["Authorization"] == "Bearer xapp-1-test"


async def test_an_envelope_holds_the_front_door_until_it_is_acked(
    socket_app: Running, fake_slack: FakeSlack
) -> None:
    """Background work lets requests go first in Socket Mode too (core/front_door.py)."""
    seen = watch_the_ack_path(socket_app)
    envelope_id = await fake_slack.socket_mode.push(payloads.im_message("research desks"))
    await fake_slack.socket_mode.ack_for(envelope_id)
    assert seen == [1]
    assert socket_app.container.uow_factory.front_door.serving_now == 0


async def test_a_redelivered_envelope_creates_nothing_new(
    socket_app: Running, fake_slack: FakeSlack
) -> None:
    envelope = payloads.im_message("research office chairs")
    first = await fake_slack.socket_mode.push(envelope)
    again = await fake_slack.socket_mode.push(envelope, retry_attempt=1)
    await fake_slack.socket_mode.ack_for(first)
    await fake_slack.socket_mode.ack_for(again)
    await settle(socket_app)
    answers = [c for c in fake_slack.calls_to("chat.postMessage") if c.ok]
    assert len(answers) == 1, [c.params["text"] for c in answers]


async def test_slash_command_answers_in_the_ack_payload(
    socket_app: Running, fake_slack: FakeSlack
) -> None:
    form: dict[str, Any] = dict(payloads.slash_command("help", user="U1"))
    envelope_id = await fake_slack.socket_mode.push(form, kind="slash_commands")
    ack = await fake_slack.socket_mode.ack_for(envelope_id)
    assert ack["payload"]["response_type"] == "ephemeral"
    assert "/tasks cancel" in str(ack["payload"])


async def test_the_http_api_is_served_in_socket_mode_too(socket_app: Running) -> None:
    import aiohttp

    from bot.api.auth import create_token

    _id, token = await create_token(socket_app.container.uow_factory, "U1", "test")
    base = f"http://127.0.0.1:{socket_app.port}/api/v1"
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as session:
        async with session.post(
            base + "/tasks", json={"user_message": "research best laptops"}, headers=headers
        ) as response:
            assert response.status == 202
            task = await response.json()
        await settle(socket_app)
        async with session.get(f"{base}/tasks/{task['id']}", headers=headers) as response:
            assert (await response.json())["status"] == "COMPLETED"
        async with session.post(base + "/tasks", json={}) as response:
            assert response.status == 401
