"""The HTTP port opens no door: in Socket Mode nothing on it reaches Bolt; in HTTP mode
every request is judged (signature, freshness, shape) before it is parsed; a blank app
token is no token; and the port answers /healthz from the start whatever the link does."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest

from bot.server import Running, start
from core.states import ApprovalStatus
from tests.e2e.conftest import SECRET, make_settings
from tests.slackfake import payloads
from tests.slackfake.server import ApiError, FakeSlack
from tests.slackfake.signing import SignedSender, sign

FORM = "application/x-www-form-urlencoded"


async def post(port: int, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session,
        session.post(f"http://127.0.0.1:{port}/slack/events", data=body, headers=headers) as r,
    ):
        return r.status, await r.text()


async def health(port: int) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session,
        session.get(f"http://127.0.0.1:{port}/healthz") as response,
    ):
        return response.status, await response.json()


async def settle(running: Running) -> None:
    dispatcher = running.container.dispatcher
    assert dispatcher is not None
    while True:
        await running.container.service.idle()
        await dispatcher.drain()
        if not running.container.service.busy:
            return


async def pending_approvals(running: Running) -> list[Any]:
    async with running.container.uow_factory(read_only=True) as uow:
        return await uow.approvals.pending(10)


# --- Socket Mode -------------------------------------------------------------------------------


@pytest.fixture
async def socket_app(tmp_path: Path, fake_slack: FakeSlack) -> AsyncIterator[Running]:
    settings = make_settings(
        tmp_path, fake_slack, SLACK_APP_TOKEN="xapp-1-test", SLACK_SIGNING_SECRET=None
    )
    running = await start(settings)
    await fake_slack.socket_mode.connected()
    yield running
    await running.stop()


async def test_in_socket_mode_an_unsigned_post_reaches_nothing(
    socket_app: Running, fake_slack: FakeSlack
) -> None:
    envelope = payloads.im_message("buy 2 monitors for $300", user="U1", channel="D1")
    await fake_slack.socket_mode.ack_for(await fake_slack.socket_mode.push(envelope))
    await settle(socket_app)
    (pending,) = await pending_approvals(socket_app)
    posts_before = len(fake_slack.calls)

    # what an attacker on the network can send: no signature at all
    click = payloads.block_action(
        "approval:approve", str(pending.id), user="UAPPROVER", channel="DAPPROVER"
    )
    event = payloads.im_message("buy a car for $400", user="U2", channel="D2")
    command = payloads.slash_command("", user="U1")
    attempts = [
        (urlencode({"payload": json.dumps(click)}).encode(), FORM),
        (json.dumps(event).encode(), "application/json"),
        (urlencode(command).encode(), FORM),
    ]
    for body, content_type in attempts:
        status, text = await post(socket_app.port, body, {"Content-Type": content_type})
        assert status in (401, 404), text
        assert "U1" not in text and "task" not in text.lower()
    await settle(socket_app)

    (still,) = await pending_approvals(socket_app)
    assert still.status is ApprovalStatus.PENDING
    async with socket_app.container.uow_factory(read_only=True) as uow:
        assert await uow.tasks.history("U2", None, 10, 0) == []
    assert len(fake_slack.calls) == posts_before  # nothing was said to anyone
    status, body = await health(socket_app.port)
    assert status == 200 and body["slack_link"] == "ok"


async def test_a_blank_app_token_runs_http_mode_with_signatures_checked(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    settings = make_settings(tmp_path, fake_slack, SLACK_APP_TOKEN="  ")
    assert not settings.socket_mode and settings.slack_app_token is None
    running = await start(settings)
    try:
        async with SignedSender(f"http://127.0.0.1:{running.port}/slack/events", SECRET) as s:
            signed = payloads.im_message("research laptops", user="U1", channel="D1")
            assert (await s.event(signed)).status == 200
        unsigned = payloads.im_message("research desks", user="U2", channel="D2")
        status, _ = await post(
            running.port, json.dumps(unsigned).encode(), {"Content-Type": "application/json"}
        )
        assert status == 401
        await settle(running)
        assert fake_slack.calls_to("apps.connections.open") == []
        async with running.container.uow_factory(read_only=True) as uow:
            assert len(await uow.tasks.history("U1", None, 10, 0)) == 1
            assert await uow.tasks.history("U2", None, 10, 0) == []
        status, body = await health(running.port)
        assert status == 200 and "slack_link" not in body
    finally:
        await running.stop()


async def test_a_socket_link_that_cannot_connect_still_serves_healthz_with_503(
    tmp_path: Path, fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    fake_slack.script("apps.connections.open", [ApiError("invalid_auth")] * 2)
    settings = make_settings(
        tmp_path, fake_slack, SLACK_APP_TOKEN="xapp-1-revoked", SLACK_SIGNING_SECRET=None
    )
    with caplog.at_level(logging.WARNING, logger="bot.socket_link"):
        running = await start(settings)  # returns: the port does not wait for the link
        try:
            await fake_slack.wait_for("apps.connections.open", count=1)
            status, body = await health(running.port)
            assert status == 503, body
            assert "invalid_auth" in body["slack_link"] and body["status"] == "down"
            # retried with backoff; one line per failure, naming the cause, no traceback
            await fake_slack.wait_for("apps.connections.open", count=3, timeout=30)
            await fake_slack.socket_mode.connected(timeout=30)
            for _ in range(100):
                status, body = await health(running.port)
                if status == 200:
                    break
                await asyncio.sleep(0.05)
            assert status == 200 and body["slack_link"] == "ok", body
        finally:
            await running.stop()
    failures = [r for r in caplog.records if r.name == "bot.socket_link"]
    assert len([r for r in failures if "invalid_auth" in r.getMessage()]) == 2
    assert all(r.exc_info is None for r in failures)
    assert "xapp-1-revoked" not in caplog.text


# --- HTTP mode: judged before parsed -----------------------------------------------------------


@pytest.fixture
async def http_app(tmp_path: Path, fake_slack: FakeSlack) -> AsyncIterator[Running]:
    running = await start(make_settings(tmp_path, fake_slack))
    yield running
    await running.stop()


async def test_unsigned_stale_or_malformed_requests_get_401_and_one_log_line(
    http_app: Running, caplog: pytest.LogCaptureFixture
) -> None:
    now = str(int(time.time()))
    good_json = json.dumps(payloads.im_message("research laptops")).encode()
    cases: list[tuple[bytes, dict[str, str]]] = [
        (good_json, {"Content-Type": "application/json"}),  # no headers at all
        (
            good_json,
            {
                "Content-Type": "application/json",
                "X-Slack-Request-Timestamp": "not-a-number",
                "X-Slack-Signature": "v0=abc",
            },
        ),
        (
            b"{not json",
            {
                "Content-Type": "application/json",
                "X-Slack-Request-Timestamp": now,
                "X-Slack-Signature": "v0=deadbeef",
            },
        ),
        (b"payload=%7Bbroken", {"Content-Type": FORM, **sign("wrong-secret", b"x")}),
        (good_json, {"Content-Type": "application/json", **sign(SECRET, good_json, 1000)}),
    ]
    with caplog.at_level(logging.DEBUG):
        for body, headers in cases:
            caplog.clear()
            status, _ = await post(http_app.port, body, headers)
            assert status == 401
            refused = [r for r in caplog.records if r.name == "taskbot.requests"]
            assert len(refused) == 1 and refused[0].status == 401  # type: ignore[attr-defined]
            assert refused[0].kind == "unverified" and refused[0].reason  # type: ignore[attr-defined]
            assert not any(r.exc_info for r in caplog.records)
            assert "Traceback" not in caplog.text
    async with http_app.container.uow_factory(read_only=True) as uow:
        assert await uow.tasks.history("U1", None, 10, 0) == []


async def test_a_signed_but_malformed_body_gets_400(
    http_app: Running, caplog: pytest.LogCaptureFixture
) -> None:
    cases = [
        (b"{not json", "application/json"),
        (b"[1, 2]", "application/json"),
        (b"payload=%7Bbroken", FORM),
    ]
    with caplog.at_level(logging.DEBUG):
        for body, content_type in cases:
            status, _ = await post(
                http_app.port, body, {"Content-Type": content_type, **sign(SECRET, body)}
            )
            assert status == 400
    refused = [r for r in caplog.records if r.name == "taskbot.requests"]
    assert [r.status for r in refused] == [400, 400, 400]  # type: ignore[attr-defined]
    assert not any(r.exc_info for r in caplog.records)
    assert "Traceback" not in caplog.text
