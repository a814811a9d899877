"""Replies go through the outbox: Slack's 5xx and 429 are retried (after Retry-After)
until each reply arrives exactly once; a permanent error is given up at once, logged
and shown in /healthz; and a failing Slack never holds up the acks."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select

from storage.models import TaskRow
from tests.e2e.conftest import Harness
from tests.e2e.process import reply_kind
from tests.slackfake import payloads
from tests.slackfake.server import ApiError, Delay, Fail, RateLimited


async def health(h: Harness) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.get(h.url + "/healthz") as response:
        return response.status, await response.json()


async def task_id_of(h: Harness, event_id: str) -> int:
    async with h.running.container.uow_factory() as uow:
        session = uow.session
        return int(
            (
                await session.execute(select(TaskRow.id).where(TaskRow.source_event_id == event_id))
            ).scalar_one()
        )


async def count_tasks(h: Harness) -> int:
    async with h.running.container.uow_factory() as uow:
        session = uow.session
        return int((await session.execute(select(func.count()).select_from(TaskRow))).scalar_one())


async def test_500_503_and_429_are_retried_and_every_reply_arrives_once(
    harness: Harness,
) -> None:
    slack = harness.slack
    slack.script(
        "chat.postMessage",
        [Fail(500), Fail(503), RateLimited(retry_after=1), RateLimited(retry_after=2)],
    )
    envelope = payloads.im_message("research laptops", user="U1", channel="D1")
    thread = envelope["event"]["ts"]
    assert (await harness.sender.event(envelope)).status == 200
    # a second request in the same thread while the first answer is being retried
    await slack.wait_for("chat.postMessage", timeout=20, where=lambda c: c.status == 500)
    follow_up = payloads.im_message("research monitors", user="U1", channel="D1", thread_ts=thread)
    assert (await harness.sender.event(follow_up)).status == 200

    await slack.wait_for("chat.postMessage", count=2, timeout=20, where=lambda c: c.ok)
    await harness.settle()

    calls = slack.calls_to("chat.postMessage")
    assert [c.status for c in calls[:4]] == [500, 503, 429, 429], slack.dump_calls()
    delivered = [c for c in calls if c.ok]
    assert Counter(reply_kind(c) for c in delivered) == Counter(finished=2)
    # thread order kept: the first answer first, though the second waited behind its retries
    assert ["Laptop" in c.params["text"] for c in delivered] == [True, False]
    assert len(calls) == 6, slack.dump_calls()  # four failures, two deliveries, nothing more
    assert {(c.params["channel"], c.params["thread_ts"]) for c in calls} == {("D1", thread)}
    assert [m["text"] for m in slack.messages_in("D1", thread)] == [
        c.params["text"] for c in delivered
    ]

    # the failures were retries of the first reply, with backoff, not a tight loop...
    assert all("Laptop" in c.params["text"] for c in calls[:5])
    assert calls[1].received_at - calls[0].received_at >= 0.5
    # ...and after a 429 nothing was sent before its Retry-After (1 s, then 2 s) had passed
    assert calls[3].received_at - calls[2].received_at >= 1.0
    assert calls[4].received_at - calls[3].received_at >= 2.0

    status, body = await health(harness)
    assert status == 200
    assert body["outbox"]["undelivered"] == 0 and body["outbox"]["failed"] == 0


async def test_a_permanent_error_is_tried_once_logged_and_reported_in_health(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="core.outbox")
    slack = harness.slack
    slack.script("chat.postMessage", [ApiError("channel_not_found")])
    envelope = payloads.im_message("research laptops", user="U2", channel="D2")
    thread = envelope["event"]["ts"]
    assert (await harness.sender.event(envelope)).status == 200
    await slack.wait_for("chat.postMessage", timeout=10, where=lambda c: c.done)
    follow_up = payloads.im_message("research monitors", user="U2", channel="D2", thread_ts=thread)
    assert (await harness.sender.event(follow_up)).status == 200

    # the reply after the lost one is not held up behind it
    await slack.wait_for("chat.postMessage", count=1, timeout=10, where=lambda c: c.ok)
    await harness.settle()
    task_id = await task_id_of(harness, envelope["event_id"])

    status, body = await health(harness)
    assert status == 200, body
    outbox = body["outbox"]
    assert outbox["failed"] >= 1 and outbox["undelivered"] == 0, body
    failures = outbox["recent_failures"]
    assert any(
        f["task_id"] == task_id and "channel_not_found" in (f["error"] or "") for f in failures
    ), failures

    given_up = [
        r
        for r in caplog.records
        if r.name == "core.outbox"
        and r.levelno >= logging.ERROR
        and f"task {task_id}" in r.getMessage()
        and "channel_not_found" in r.getMessage()
    ]
    assert given_up, [r.getMessage() for r in caplog.records]

    # a poll and a full backoff later, still exactly one attempt at the lost reply
    await asyncio.sleep(1.5)
    await harness.settle()
    lost = [c for c in slack.calls_to("chat.postMessage") if "Laptop" in c.params["text"]]
    assert len(lost) == 1, slack.dump_calls()
    assert lost[0].response["error"] == "channel_not_found"
    later = [c for c in slack.calls_to("chat.postMessage") if "Monitor" in c.params["text"]]
    assert len(later) == 1 and later[0].ok and later[0].params["thread_ts"] == thread
    assert not [r for r in caplog.records if "will retry" in r.getMessage()]


async def test_acks_are_not_held_up_while_slack_keeps_failing(harness: Harness) -> None:
    slack = harness.slack
    slack.script("chat.postMessage", [Fail(503)] * 500)
    first = payloads.im_message("research laptops", user="U3", channel="D3")
    assert (await harness.sender.event(first)).status == 200
    await slack.wait_for("chat.postMessage", timeout=10, where=lambda c: c.status == 503)

    envelopes = [
        payloads.im_message(f"research laptops {n}", user=f"U3{n:02d}", channel=f"D3{n:02d}")
        for n in range(24)
    ]
    responses = await asyncio.gather(*(harness.sender.event(e) for e in envelopes))
    assert [r.status for r in responses] == [200] * len(envelopes)

    # every acknowledged request was persisted, though Slack is still failing
    assert await count_tasks(harness) == 1 + len(envelopes)
    assert slack.pending_script("chat.postMessage"), "Slack should still be failing"
    assert not [c for c in slack.calls_to("chat.postMessage") if c.ok]
    # once the work is done every answer waits in the outbox (there is no "got it" post)
    await harness.running.container.service.idle()
    status, body = await health(harness)
    assert status == 200 and body["outbox"]["undelivered"] >= 1 + len(envelopes)


@pytest.mark.parametrize("settings_overrides", [{"TASKBOT_WORKER_TTL_SECONDS": 2}])
async def test_a_slow_post_keeps_its_claim_so_no_other_sender_takes_it(harness: Harness) -> None:
    """Claims last one worker TTL (2 s here) so a crashed sender's entries come back
    soon; a live sender renews them, so a post slower than that is not sent twice."""
    slack = harness.slack
    slack.script("chat.postMessage", [Delay(4)])
    envelope = payloads.im_message("research laptops", user="U4", channel="D4")
    assert (await harness.sender.event(envelope)).status == 200
    for _ in range(100):
        if slack.calls_to("chat.postMessage"):
            break
        await asyncio.sleep(0.05)
    assert slack.calls_to("chat.postMessage"), "the reply was never posted"
    await asyncio.sleep(2.5)  # past the lease the claim was taken with
    assert not slack.calls_to("chat.postMessage")[0].done

    # another process's sender, on the same database, finds nothing to take
    container = harness.running.container
    async with container.uow_factory() as uow:
        stolen = await uow.outbox.claim_due(container.clock.now(), 10, 2)
    assert stolen == []

    await slack.wait_for("chat.postMessage", count=1, timeout=15, where=lambda c: c.ok)
    await harness.settle()
    calls = slack.calls_to("chat.postMessage")
    assert Counter(reply_kind(c) for c in calls) == Counter(finished=1)  # posted once
