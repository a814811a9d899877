"""Approvals in a Slack that keeps its rules: a DM is its user and the bot, a channel
has its members, and a click comes only from someone who can see the message.
The approval goes where the approvers are; any copy's buttons work; the signed
payload's user is checked against the current configuration at click time."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, update

from bot.container import build
from bot.server import start
from storage.engine import create_engine
from storage.models import ApprovalMessageRow, OutboxRow
from tests.e2e.conftest import SECRET, Harness, make_settings
from tests.fakes import FakeClock
from tests.slackfake import payloads
from tests.slackfake.server import Call, ClickRefused, FakeSlack, Hold
from tests.slackfake.signing import SignedSender

APPROVE, DENY = "approval:approve", "approval:deny"


# --- helpers -----------------------------------------------------------------------------------


async def started(
    tmp_path: Path, slack: FakeSlack, clock: FakeClock | None = None, **env: Any
) -> Harness:
    settings = make_settings(tmp_path, slack, **env)
    container = await build(settings, clock=clock) if clock else None
    running = await start(settings, container=container)
    sender = SignedSender(f"http://127.0.0.1:{running.port}/slack/events", SECRET)
    await sender.__aenter__()
    return Harness(slack, sender, running, settings)


_STOPPED: set[int] = set()


async def stopped(h: Harness) -> None:
    _STOPPED.add(id(h))
    await h.sender.close()
    await h.running.stop()


@pytest.fixture
async def apps(tmp_path: Path, fake_slack: FakeSlack) -> AsyncIterator[list[Harness]]:
    """Apps a test starts (and restarts) on one database; all stopped at the end."""
    running: list[Harness] = []
    yield running
    for h in reversed(running):
        if id(h) not in _STOPPED:
            await stopped(h)
        _STOPPED.discard(id(h))


async def app(apps: list[Harness], tmp_path: Path, slack: FakeSlack, **env: Any) -> Harness:
    h = await started(tmp_path, slack, **env)
    apps.append(h)
    return h


async def ask_in_dm(h: Harness, text: str = "buy 2 monitors for $300", user: str = "U1") -> str:
    """`user` asks in their DM with the bot; returns the thread (the message's ts)."""
    channel = h.slack.dm_channel_for(user)
    envelope = payloads.im_message(text, user=user, channel=channel)
    h.slack.note_user_message(channel, envelope["event"]["ts"], user)
    assert (await h.sender.event(envelope)).status == 200
    await h.settle()
    return str(envelope["event"]["ts"])


async def asked_in_approval_channel(
    apps: list[Harness], tmp_path: Path, slack: FakeSlack, members: set[str], approvers: str
) -> tuple[Harness, str, dict[str, Any]]:
    """An app whose approvals go to CAPPROVALS (with `members`); U1 asks in their DM.
    Returns the app, U1's thread and the one approval message."""
    slack.add_channel("CAPPROVALS", members)
    h = await app(
        apps, tmp_path, slack, TASKBOT_APPROVERS=approvers, TASKBOT_APPROVAL_CHANNEL="CAPPROVALS"
    )
    thread = await ask_in_dm(h)
    (message,) = approval_copies(slack)
    return h, thread, message


async def ask_in_channel(
    h: Harness, channel: str, text: str = "buy 2 monitors for $300", user: str = "U1"
) -> str:
    envelope = payloads.app_mention(f"<@{h.slack.bot_user_id}> {text}", user=user, channel=channel)
    h.slack.note_user_message(channel, envelope["event"]["ts"], user)
    assert (await h.sender.event(envelope)).status == 200
    await h.settle()
    return str(envelope["event"]["ts"])


async def ask_to_buy(h: Harness, text: str = "buy 2 monitors for $300") -> tuple[str, Call]:
    """U1 asks in their DM; returns the thread and the (one) approval post, which went
    to the configured approver's DM (for tests of other front ends, e.g. the API)."""
    thread = await ask_in_dm(h, text)
    (approval,) = [c for c in h.posts() if has_buttons(c.params)]
    assert approval.response["channel"] != h.slack.dm_channel_for("U1")
    return thread, approval


def _button(call: Call, action_id: str) -> dict[str, Any]:
    """The button `action_id` of a posted message, with its block_id."""
    for block in call.params["blocks"]:
        for element in block.get("elements", []) if block.get("type") == "actions" else []:
            if element.get("action_id") == action_id:
                return {**element, "block_id": block["block_id"]}
    raise AssertionError(f"no {action_id} button in {call.params}")


def has_buttons(message: dict[str, Any]) -> bool:
    """Approve/Deny buttons (a request's status message has a Cancel button of its own)."""
    return '"action_id": "approval:' in json.dumps(message.get("blocks") or [])


def approval_copies(slack: FakeSlack) -> list[dict[str, Any]]:
    """Bot messages that carry (or carried) Approve/Deny, as they are now."""
    return [
        {**m, "channel": ch}
        for (ch, _), m in sorted(slack.messages.items(), key=lambda kv: kv[0][1])
        if "Purchase approval:" in json.dumps(m, ensure_ascii=False)
    ]


def copy_in(slack: FakeSlack, channel: str) -> dict[str, Any]:
    (found,) = [m for m in approval_copies(slack) if m["channel"] == channel]
    return found


async def click(
    h: Harness, message: dict[str, Any] | Call, action: str, user: str, **kw: Any
) -> int:
    """`user` clicks `action` on a bot message (as stored in the fake, or as posted)."""
    if isinstance(message, Call):
        where = (str(message.response["channel"]), str(message.response["ts"]))
    else:
        where = (message["channel"], message["ts"])
    payload = h.slack.click(*where, action, user, **kw)
    response = await h.sender.interaction(payload)
    await h.settle()
    return response.status


async def deny(h: Harness, message: dict[str, Any], user: str, reason: str) -> int:
    """`user` clicks Deny…, the modal opens (views.open), and they submit `reason`."""
    opened = len(h.slack.opened_views)
    assert await click(h, message, DENY, user) == 200
    assert len(h.slack.opened_views) == opened + 1, "views.open was not called"
    view = h.slack.opened_views[-1]
    payload = h.slack.submit_view(view, {"reason": {"reason_input": reason}})
    response = await h.sender.interaction(payload)
    print(f"\nview_submission (deny) answered in {response.elapsed * 1000:.0f} ms")
    await h.settle()
    return response.status


def thread_texts(slack: FakeSlack, channel: str, thread: str) -> str:
    return json.dumps(slack.messages_in(channel, thread), ensure_ascii=False)


def purchase_orders(slack: FakeSlack) -> list[Call]:
    return [
        c
        for c in slack.calls_to("chat.postMessage")
        if c.ok and "PO-" in json.dumps(c.params.get("blocks"))
    ]


def ephemerals_to(slack: FakeSlack, user: str) -> list[str]:
    return [e["text"] for e in slack.ephemerals if e["user"] == user]


# --- where approvals go ------------------------------------------------------------------------


async def test_a_dm_purchase_reaches_each_approvers_dm_and_the_click_resumes_it(
    apps: list[Harness], tmp_path: Path, fake_slack: FakeSlack
) -> None:
    h = await app(apps, tmp_path, fake_slack, TASKBOT_APPROVERS="UA1,UA2")
    thread = await ask_in_dm(h)
    requester_dm = fake_slack.dm_channel_for("U1")

    dm1, dm2 = fake_slack.dm_channel_for("UA1"), fake_slack.dm_channel_for("UA2")
    for approver, dm in (("UA1", dm1), ("UA2", dm2)):
        message = copy_in(fake_slack, dm)
        assert has_buttons(message) and fake_slack.can_see(approver, dm)
        text = json.dumps(message["blocks"], ensure_ascii=False)
        assert "$300.00" in text and "<@U1>" in text  # what, cost, requester
        assert "$200.00" in text  # budget left after it
        assert "buy 2 monitors for $300" in text  # the request's own words
        assert "<@UA1>" in text and "<@UA2>" in text
        buttons = {
            e["action_id"]: e
            for b in message["blocks"]
            if b["type"] == "actions"
            for e in b["elements"]
        }
        assert buttons[APPROVE]["style"] == "primary" and "style" not in buttons[DENY]
    # every message went where someone concerned can read it
    assert fake_slack.unseen("U1", "UA1", "UA2") == []
    # nothing with buttons in the requester's DM, and the requester cannot click a copy
    assert not any(has_buttons(m) for m in fake_slack.messages_in(requester_dm))
    with pytest.raises(ClickRefused):
        fake_slack.click(dm1, copy_in(fake_slack, dm1)["ts"], APPROVE, "U1")
    asked = thread_texts(fake_slack, requester_dm, thread)
    assert "waits for approval from" in asked and "<@UA1>" in asked and "<@UA2>" in asked

    assert await click(h, copy_in(fake_slack, dm2), APPROVE, "UA2") == 200

    for dm in (dm1, dm2):  # every copy updated in place
        message = copy_in(fake_slack, dm)
        assert not has_buttons(message) and "edited" in message
        assert "Approved by <@UA2>" in json.dumps(message["blocks"], ensure_ascii=False)
    (po,) = purchase_orders(fake_slack)
    assert po.response["channel"] == requester_dm and po.params["thread_ts"] == thread
    told = thread_texts(fake_slack, requester_dm, thread)
    assert "Approved by <@UA2>" in told


async def test_a_channel_purchase_reaches_an_approver_who_is_not_in_the_channel(
    apps: list[Harness], tmp_path: Path, fake_slack: FakeSlack
) -> None:
    fake_slack.add_channel("CTEAM", {"U1", "U2"})
    h = await app(apps, tmp_path, fake_slack, TASKBOT_APPROVERS="UAPPROVER")
    thread = await ask_in_channel(h, "CTEAM")
    assert not fake_slack.can_see("UAPPROVER", "CTEAM")

    dm = fake_slack.dm_channel_for("UAPPROVER")
    message = copy_in(fake_slack, dm)
    (link,) = [c for c in fake_slack.calls_to("chat.getPermalink") if c.ok]
    assert (link.params["channel"], link.params["message_ts"]) == ("CTEAM", thread)
    assert link.response["permalink"] in json.dumps(message["blocks"])
    # nobody in CTEAM was shown buttons they could not use
    assert not any(has_buttons(m) for m in fake_slack.messages_in("CTEAM"))
    assert fake_slack.unseen("U1", "UAPPROVER") == []

    assert await click(h, message, APPROVE, "UAPPROVER") == 200
    assert not has_buttons(copy_in(fake_slack, dm))
    (po,) = purchase_orders(fake_slack)
    assert po.params["channel"] == "CTEAM" and po.params["thread_ts"] == thread


async def test_with_an_approval_channel_one_message_goes_there_and_is_updated(
    apps: list[Harness], tmp_path: Path, fake_slack: FakeSlack
) -> None:
    h, thread, message = await asked_in_approval_channel(
        apps, tmp_path, fake_slack, {"UA1", "UA2"}, "UA1,UA2"
    )
    assert message["channel"] == "CAPPROVALS" and has_buttons(message)
    assert "<@UA1>" in message["text"] and "<@UA2>" in message["text"]  # mentioned: notified
    assert fake_slack.calls_to("conversations.open") == [] or all(
        c.params.get("users") == "U1" for c in fake_slack.calls_to("conversations.open")
    )
    told = thread_texts(fake_slack, fake_slack.dm_channel_for("U1"), thread)
    assert "waits for approval from" in told and "<@UA1>" in told and "<@UA2>" in told

    assert await deny(h, message, "UA1", "we have spares") == 200
    (after,) = approval_copies(fake_slack)
    assert not has_buttons(after) and "Denied by <@UA1>" in json.dumps(after["blocks"])
    assert purchase_orders(fake_slack) == []
    assert "denied" in thread_texts(fake_slack, fake_slack.dm_channel_for("U1"), thread).lower()


# --- who may approve ---------------------------------------------------------------------------


async def test_the_requester_cannot_approve_their_own_purchase(
    apps: list[Harness], tmp_path: Path, fake_slack: FakeSlack
) -> None:
    h, _thread, message = await asked_in_approval_channel(
        apps, tmp_path, fake_slack, {"U1", "UA1"}, "U1,UA1"
    )
    assert "<@UA1>" in message["text"] and "<@U1>" not in message["text"].split(" asks ")[-1]
    updates = len(fake_slack.calls_to("chat.update"))

    assert await click(h, message, APPROVE, "U1") == 200
    assert len(fake_slack.calls_to("chat.update")) == updates
    assert purchase_orders(fake_slack) == []
    (refusal,) = ephemerals_to(fake_slack, "U1")
    assert "your own request" in refusal
    (still,) = approval_copies(fake_slack)
    assert has_buttons(still)


async def test_with_no_approvers_configured_a_purchase_is_refused_naming_the_setting(
    apps: list[Harness], tmp_path: Path, fake_slack: FakeSlack
) -> None:
    h = await app(apps, tmp_path, fake_slack, TASKBOT_APPROVERS="")
    thread = await ask_in_dm(h)
    assert approval_copies(fake_slack) == []
    told = thread_texts(fake_slack, fake_slack.dm_channel_for("U1"), thread)
    assert "TASKBOT_APPROVERS" in told
    assert purchase_orders(fake_slack) == []


async def test_a_removed_approver_is_refused_after_a_restart(
    apps: list[Harness], tmp_path: Path, fake_slack: FakeSlack
) -> None:
    first = await app(apps, tmp_path, fake_slack, TASKBOT_APPROVERS="UA1,UA2")
    await ask_in_dm(first)
    await stopped(first)
    second = await app(apps, tmp_path, fake_slack, TASKBOT_APPROVERS="UA2")

    assert (
        await click(second, copy_in(fake_slack, fake_slack.dm_channel_for("UA1")), APPROVE, "UA1")
        == 200
    )
    assert purchase_orders(fake_slack) == []
    (refusal,) = ephemerals_to(fake_slack, "UA1")
    assert "can't approve" in refusal and "<@UA2>" in refusal and "<@UA1>" not in refusal
    assert has_buttons(copy_in(fake_slack, fake_slack.dm_channel_for("UA2")))

    assert (
        await click(second, copy_in(fake_slack, fake_slack.dm_channel_for("UA2")), APPROVE, "UA2")
        == 200
    )
    assert len(purchase_orders(fake_slack)) == 1


async def test_a_user_of_another_organisation_counts_only_if_configured(
    apps: list[Harness], tmp_path: Path, fake_slack: FakeSlack
) -> None:
    fake_slack.add_channel("CSHARED", {"U1", "UEXT", "UA1"})
    h = await app(
        apps,
        tmp_path,
        fake_slack,
        TASKBOT_APPROVERS="UA1",
        TASKBOT_APPROVAL_CHANNEL="CSHARED",
    )
    await ask_in_dm(h)
    (message,) = approval_copies(fake_slack)
    assert await click(h, message, APPROVE, "UEXT", user_team="TOTHER") == 200
    assert purchase_orders(fake_slack) == []
    assert "can't approve" in ephemerals_to(fake_slack, "UEXT")[0]
    assert await click(h, message, APPROVE, "UA1") == 200
    assert len(purchase_orders(fake_slack)) == 1


async def test_an_expired_approval_is_refused_at_click_time(
    apps: list[Harness], tmp_path: Path, fake_slack: FakeSlack
) -> None:
    clock = FakeClock()
    h = await started(
        tmp_path, fake_slack, clock, TASKBOT_APPROVERS="UA1", TASKBOT_APPROVAL_TTL_SECONDS="3600"
    )
    apps.append(h)
    thread = await ask_in_dm(h)
    clock.advance(3601)  # past expiry; the expiry job has not run
    dm = fake_slack.dm_channel_for("UA1")
    assert await click(h, copy_in(fake_slack, dm), APPROVE, "UA1") == 200

    assert purchase_orders(fake_slack) == []
    (refusal,) = ephemerals_to(fake_slack, "UA1")
    assert "expired" in refusal
    after = copy_in(fake_slack, dm)
    assert not has_buttons(after) and "Expired" in json.dumps(after["blocks"], ensure_ascii=False)
    told = thread_texts(fake_slack, fake_slack.dm_channel_for("U1"), thread).lower()
    assert "cancelled" in told and "expired" in told


# --- any copy works ----------------------------------------------------------------------------


async def test_a_click_on_a_copy_posted_before_a_crash_counts(
    apps: list[Harness], tmp_path: Path, fake_slack: FakeSlack
) -> None:
    first = await app(apps, tmp_path, fake_slack, TASKBOT_APPROVERS="UA1")
    await ask_in_dm(first)
    dm = fake_slack.dm_channel_for("UA1")
    (before_crash,) = approval_copies(fake_slack)
    await stopped(first)
    # the crash: Slack had the message, but its ts was never recorded as sent
    engine = create_engine(first.settings.database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(delete(ApprovalMessageRow))
            await connection.execute(
                update(OutboxRow)
                .where(OutboxRow.kind == "approval_needed")
                .values(status="PENDING", message_ts=None, sent_at=None, claimed_until=None)
            )
    finally:
        await engine.dispose()
    second = await app(apps, tmp_path, fake_slack, TASKBOT_APPROVERS="UA1")
    await second.settle()
    first_copy, second_copy = [m for m in approval_copies(fake_slack) if m["channel"] == dm]
    assert first_copy["ts"] == before_crash["ts"] and second_copy["ts"] != first_copy["ts"]

    assert await click(second, first_copy, APPROVE, "UA1") == 200
    assert ephemerals_to(fake_slack, "UA1") == []  # no "wrong message" refusal
    assert len(purchase_orders(fake_slack)) == 1
    for message in approval_copies(fake_slack):  # both copies now say so
        assert not has_buttons(message)
        assert "Approved by <@UA1>" in json.dumps(message["blocks"], ensure_ascii=False)


async def test_double_click_changes_nothing_and_says_who_decided(
    apps: list[Harness], tmp_path: Path, fake_slack: FakeSlack
) -> None:
    h, _thread, message = await asked_in_approval_channel(
        apps, tmp_path, fake_slack, {"UA1", "UA2"}, "UA1,UA2"
    )
    payload_a = fake_slack.click("CAPPROVALS", message["ts"], APPROVE, "UA1")
    payload_b = fake_slack.click("CAPPROVALS", message["ts"], DENY, "UA2")  # same old buttons
    assert (await h.sender.interaction(payload_a)).status == 200
    assert (await h.sender.interaction(payload_b)).status == 200
    await h.settle()
    updates = [c for c in fake_slack.calls_to("chat.update") if c.params["ts"] == message["ts"]]
    # decided once; the second update only adds the purchase order to the record
    assert len(updates) == 2
    first, second = (json.dumps(u.params["blocks"], ensure_ascii=False) for u in updates)
    assert "Approved by <@UA1>" in first and "PO-" not in first
    assert "Approved by <@UA1>" in second and " · PO-" in second
    assert len(purchase_orders(fake_slack)) == 1
    (late,) = ephemerals_to(fake_slack, "UA2")
    assert "already approved" in late and "<@UA1>" in late


async def test_a_button_naming_an_unknown_approval_changes_nothing(
    apps: list[Harness], tmp_path: Path, fake_slack: FakeSlack
) -> None:
    h = await app(apps, tmp_path, fake_slack, TASKBOT_APPROVERS="UA1")
    await ask_in_dm(h)
    message = copy_in(fake_slack, fake_slack.dm_channel_for("UA1"))
    payload = fake_slack.click(message["channel"], message["ts"], APPROVE, "UA1")
    payload["actions"][0]["value"] = "424242"
    assert (await h.sender.interaction(payload)).status == 200
    await h.settle()
    assert purchase_orders(fake_slack) == []
    assert "can't find" in ephemerals_to(fake_slack, "UA1")[0]


# --- acked before the Web API answers ----------------------------------------------------------


async def test_a_refusal_is_acked_before_the_slow_web_api_answers(
    apps: list[Harness], tmp_path: Path, fake_slack: FakeSlack
) -> None:
    h, _thread, message = await asked_in_approval_channel(
        apps, tmp_path, fake_slack, {"UA1", "UOTHER"}, "UA1"
    )
    hold = Hold(asyncio.Event())
    fake_slack.script("chat.postEphemeral", [hold])
    payload = fake_slack.click("CAPPROVALS", message["ts"], APPROVE, "UOTHER")
    try:
        response = await h.sender.interaction(payload)
        assert response.status == 200  # Slack has its ack …
        await asyncio.wait_for(hold.arrived.wait(), 10)
        (ephemeral,) = fake_slack.calls_to("chat.postEphemeral")
        assert not ephemeral.done  # … while the Web API has not answered yet
    finally:
        hold.release.set()
    await h.settle()
    assert "can't approve" in ephemerals_to(fake_slack, "UOTHER")[0]


async def test_the_tasks_next_button_is_acked_before_the_page_is_sent(
    apps: list[Harness], tmp_path: Path, fake_slack: FakeSlack
) -> None:
    h = await app(apps, tmp_path, fake_slack)
    hold = Hold(asyncio.Event())
    fake_slack.script("response_url:page", [hold])
    payload = payloads.block_action(
        "tasks:page",
        json.dumps({"page": 2, "filter": None}),
        user="U1",
        channel="D1",
        response_url=fake_slack.response_url("page"),
        is_ephemeral=True,
    )
    try:
        response = await h.sender.interaction(payload)
        assert response.status == 200
        await asyncio.wait_for(hold.arrived.wait(), 10)
        (page,) = fake_slack.calls_to("response_url:page")
        assert not page.done
    finally:
        hold.release.set()
    await h.settle()
    (page,) = fake_slack.calls_to("response_url:page")
    assert page.status == 200
