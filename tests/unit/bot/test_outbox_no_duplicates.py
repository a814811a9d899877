"""No duplicate posts where the bot can read the conversation: the real dispatcher,
real storage (SQLite and PostgreSQL) and the real SlackNotifier against the fake
Slack, with faults that leave a post's outcome unknown (Slack took it, the bot did
not learn its ts)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack_notifier import SlackNotifier
from core.notices import Destination, Notice, TaskFailed
from core.outbox import OutboxDispatcher
from core.ports import Attempt
from storage.models import OutboxRow
from storage.uow import SqlUnitOfWorkFactory
from tests.fakes import FakeClock
from tests.slackfake.server import OK, AnswerLate, ApiError, FakeSlack, RateLimited
from tests.unit.storage.helpers import newest_outbox_ids, stored_row

THREAD = "1795000000.000100"
#: the client gives up long before the fake answers a post it has already stored
CLIENT_TIMEOUT = 0.3
LATE = 1.5
LEASE = 10.0


@pytest.fixture
async def slack(clock: FakeClock) -> AsyncIterator[FakeSlack]:
    async with FakeSlack(ts_clock=lambda: clock.now().timestamp()) as fake:
        yield fake
        fake.assert_no_errors()


def notifier(slack: FakeSlack) -> SlackNotifier:
    return SlackNotifier(
        AsyncWebClient(token="xoxb-test", base_url=slack.base_url, timeout=CLIENT_TIMEOUT)
    )


def dispatcher(
    uow_factory: SqlUnitOfWorkFactory, slack: FakeSlack, clock: FakeClock
) -> OutboxDispatcher:
    return OutboxDispatcher(uow_factory, notifier(slack), clock, lease_seconds=LEASE)


def failed(dest: Destination, title: str = "order printer paper") -> TaskFailed:
    return TaskFailed(destination=dest, task_id=7, title=title, error="no stock")


async def add(uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, notice: Notice) -> int:
    async with uow_factory() as uow:
        await uow.outbox.add(notice, clock.now())
    (entry,) = await newest_outbox_ids(uow_factory, 1)
    return entry


async def row(uow_factory: SqlUnitOfWorkFactory, entry: int) -> OutboxRow:
    return await stored_row(uow_factory, OutboxRow, entry)


async def drain_until_sent(
    uow_factory: SqlUnitOfWorkFactory, slack: FakeSlack, clock: FakeClock, entry: int
) -> OutboxRow:
    sender = dispatcher(uow_factory, slack, clock)
    for _ in range(6):
        await sender.drain()
        current = await row(uow_factory, entry)
        if current.status != "PENDING":
            return current
        clock.advance(400)  # past any backoff or Retry-After
    raise AssertionError(f"entry {entry} never left PENDING: {slack.dump_calls()}")


async def test_post_taken_but_answer_timed_out_in_a_dm_thread_is_not_posted_again(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, slack: FakeSlack
) -> None:
    slack.script("chat.postMessage", [AnswerLate(LATE)])
    entry = await add(uow_factory, clock, failed(Destination(channel="D1", thread_ts=THREAD)))

    sent = await drain_until_sent(uow_factory, slack, clock, entry)

    posted = slack.messages_in("D1")
    assert len(posted) == 1, slack.dump_calls()
    assert len(slack.calls_to("chat.postMessage")) == 1
    assert sent.status == "SENT" and sent.message_ts == posted[0]["ts"]
    assert posted[0]["metadata"] == {
        "event_type": "taskbot_outbox",
        "event_payload": {"entry": entry, "kind": "task_failed", "task": 7},
    }
    (lookup,) = slack.calls_to("conversations.replies")
    assert lookup.ok and lookup.params["ts"] == THREAD
    assert lookup.params["include_all_metadata"] in ("1", "true")
    # the window starts shortly before the first attempt, not at the beginning of time
    assert float(lookup.params["oldest"]) > float(THREAD)


async def test_post_taken_but_answer_timed_out_in_a_users_dm_is_not_posted_again(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, slack: FakeSlack
) -> None:
    slack.script("chat.postMessage", [AnswerLate(LATE)])
    entry = await add(uow_factory, clock, failed(Destination(user="U42")))

    sent = await drain_until_sent(uow_factory, slack, clock, entry)

    dm = slack.dm_channel_for("U42")
    assert len(slack.messages_in(dm)) == 1, slack.dump_calls()
    assert sent.message_ts == slack.messages_in(dm)[0]["ts"]
    assert [c.ok for c in slack.calls_to("conversations.history")] == [True]


async def test_dm_open_rate_limited_on_the_retry_still_looks_before_posting(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, slack: FakeSlack
) -> None:
    """A refusal before the lookup settles nothing about the earlier, timed-out post."""
    slack.script("chat.postMessage", [AnswerLate(LATE)])
    slack.script("conversations.open", [OK(), RateLimited(retry_after=5)])
    entry = await add(uow_factory, clock, failed(Destination(user="U43")))

    sent = await drain_until_sent(uow_factory, slack, clock, entry)

    assert [c.status for c in slack.calls_to("conversations.open")] == [200, 429, 200]
    dm = slack.dm_channel_for("U43")
    assert len(slack.messages_in(dm)) == 1, slack.dump_calls()
    assert sent.message_ts == slack.messages_in(dm)[0]["ts"]


async def test_sender_killed_after_slack_took_the_post_is_adopted_not_reposted(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, slack: FakeSlack
) -> None:
    dest = Destination(channel="D2", thread_ts=THREAD)
    entry = await add(uow_factory, clock, failed(dest))
    # A process claims the entry, Slack takes its post, and it dies before recording it.
    async with uow_factory() as uow:
        (item,) = await uow.outbox.claim_due(clock.now(), 10, LEASE)
    assert item.unconfirmed_since is None  # its first attempt: nothing to look for
    posted = await notifier(slack).deliver(item.notice, Attempt(item.id, item.unconfirmed_since))
    assert posted is not None and posted.channel == "D2"
    ts = posted.ts
    clock.advance(LEASE + 1)  # the dead process's claim lapses

    sent = await drain_until_sent(uow_factory, slack, clock, entry)

    assert len(slack.messages_in("D2")) == 1, slack.dump_calls()
    assert sent.message_ts == ts


async def test_several_entries_in_flight_when_killed_each_adopt_their_own_post(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, slack: FakeSlack
) -> None:
    """Two threads of one DM: entry metadata, not the thread, tells the posts apart."""
    first = await add(uow_factory, clock, failed(Destination(channel="D3", thread_ts=THREAD)))
    second = await add(
        uow_factory, clock, failed(Destination(channel="D3", thread_ts="1795000000.000200"))
    )
    never_posted = await add(
        uow_factory, clock, failed(Destination(channel="D3", thread_ts="1795000000.000300"))
    )
    async with uow_factory() as uow:
        items = await uow.outbox.claim_due(clock.now(), 10, LEASE)
    assert [i.id for i in items] == [first, second, never_posted]
    for item in items[:2]:
        await notifier(slack).deliver(item.notice, Attempt(item.id, item.unconfirmed_since))
    clock.advance(LEASE + 1)

    for entry in (first, second, never_posted):
        assert (await drain_until_sent(uow_factory, slack, clock, entry)).status == "SENT"

    assert len(slack.messages_in("D3")) == 3, slack.dump_calls()
    assert len(slack.calls_to("chat.postMessage")) == 3


async def test_post_timed_out_in_a_channel_is_posted_again_without_reading_history(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, slack: FakeSlack
) -> None:
    """Reading a channel needs channels:history, which the bot does not ask for."""
    slack.script("chat.postMessage", [AnswerLate(LATE)])
    entry = await add(uow_factory, clock, failed(Destination(channel="C1", thread_ts=THREAD)))

    await drain_until_sent(uow_factory, slack, clock, entry)

    assert len(slack.messages_in("C1")) == 2  # as before: at least once
    assert slack.calls_to("conversations.replies") == []
    assert slack.calls_to("conversations.history") == []


async def test_dm_history_refused_for_missing_scope_posts_again(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    async with FakeSlack(
        scopes={"chat:write", "im:write"}, ts_clock=lambda: clock.now().timestamp()
    ) as slack:
        slack.script("chat.postMessage", [AnswerLate(LATE)])
        entry = await add(uow_factory, clock, failed(Destination(channel="D4", thread_ts=THREAD)))

        sent = await drain_until_sent(uow_factory, slack, clock, entry)

        (lookup,) = slack.calls_to("conversations.replies")
        assert lookup.response["error"] == "missing_scope"
        assert lookup.response["needed"] == "im:history"
        assert sent.status == "SENT" and len(slack.messages_in("D4")) == 2


async def test_lookup_rate_limited_is_retried_and_never_posts_blind(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, slack: FakeSlack
) -> None:
    slack.script("chat.postMessage", [AnswerLate(LATE)])
    slack.script("conversations.replies", [RateLimited(retry_after=30), RateLimited(30)])
    entry = await add(uow_factory, clock, failed(Destination(channel="D5", thread_ts=THREAD)))

    sent = await drain_until_sent(uow_factory, slack, clock, entry)

    assert [c.status for c in slack.calls_to("conversations.replies")] == [429, 429, 200]
    assert len(slack.messages_in("D5")) == 1, slack.dump_calls()
    assert sent.message_ts == slack.messages_in("D5")[0]["ts"]


async def test_post_refused_by_slack_needs_no_lookup_on_retry(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, slack: FakeSlack
) -> None:
    """An ok:false answer means Slack did not take it: the retry just posts."""
    slack.script("chat.postMessage", [ApiError("internal_error"), RateLimited(retry_after=5)])
    entry = await add(uow_factory, clock, failed(Destination(channel="D6", thread_ts=THREAD)))

    sent = await drain_until_sent(uow_factory, slack, clock, entry)

    assert sent.status == "SENT" and len(slack.messages_in("D6")) == 1
    assert slack.calls_to("conversations.replies") == []
    assert sent.attempts == 2


async def test_unconfirmed_since_survives_a_retry_and_clears_on_a_refusal(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    """Storage: a claim marks the attempt; only a recorded refusal clears it."""
    entry = await add(uow_factory, clock, failed(Destination(channel="D7")))
    started = clock.now()
    async with uow_factory() as uow:
        (item,) = await uow.outbox.claim_due(clock.now(), 10, LEASE)
        assert item.unconfirmed_since is None
        await uow.outbox.retry_later(entry, "timeout", clock.now(), maybe_delivered=True)
    clock.advance(5)
    async with uow_factory() as uow:
        (item,) = await uow.outbox.claim_due(clock.now(), 10, LEASE)
        assert item.unconfirmed_since == started  # the earliest unconfirmed attempt
        await uow.outbox.retry_later(entry, "refused", clock.now(), maybe_delivered=False)
    clock.advance(5)
    async with uow_factory() as uow:
        (item,) = await uow.outbox.claim_due(clock.now(), 10, LEASE)
        assert item.unconfirmed_since is None
    assert (await row(uow_factory, entry)).unconfirmed_since == started + timedelta(seconds=10)
