"""One living status message per request: posted once, updated in place, cancellable."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.conftest import Harness
from tests.slackfake import payloads
from tests.slackfake.server import Call

CANCEL = "status:cancel"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"TASKBOT_STATUS_GRACE_SECONDS": 0}


def _actions(params: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {**e, "block_id": b.get("block_id")}
        for b in params.get("blocks") or []
        if b.get("type") == "actions"
        for e in b["elements"]
    ]


def _is_status(params: dict[str, Any]) -> bool:
    return any(b.get("block_id") == "status" for b in params["blocks"])


def _is_approval(params: dict[str, Any]) -> bool:
    return any(a["action_id"].startswith("approval:") for a in _actions(params))


async def ask(h: Harness, text: str, user: str = "U1") -> str:
    envelope = payloads.im_message(text, user=user, channel="D1")
    await h.sender.event(envelope)
    await h.settle()
    return str(envelope["event"]["ts"])


def status_post(h: Harness) -> Call:
    (status,) = h.posts(lambda c: _is_status(c.params) and not _is_approval(c.params))
    return status


def status_updates(h: Harness, status: Call) -> list[Call]:
    ts = status.response["ts"]
    return [c for c in h.slack.calls_to("chat.update") if c.ok and c.params["ts"] == ts]


async def click(h: Harness, on: Call, action_id: str, user: str) -> None:
    """`user` clicks on the bot message as Slack shows it now (the fake refuses a
    click by someone who is not in that conversation)."""
    payload = h.slack.click(on.response["channel"], on.response["ts"], action_id, user)
    response = await h.sender.interaction(payload)
    assert response.status == 200
    await h.settle()


def requester_posts(h: Harness, thread: str) -> list[Call]:
    """What notifies the requester: posts in her thread, approval requests aside
    (where those go and how many there are is the approvals' business)."""
    return h.posts(lambda c: c.params.get("thread_ts") == thread and not _is_approval(c.params))


async def test_a_purchase_posts_one_status_and_updates_it_once_per_change(
    harness: Harness,
) -> None:
    thread = await ask(harness, "buy 2 monitors for $300")
    status = status_post(harness)
    assert "Waiting for approval" in status.params["text"]
    assert [a["action_id"] for a in _actions(status.params)] == [CANCEL]
    approval = next(c for c in harness.posts() if _is_approval(c.params))
    await click(harness, approval, "approval:approve", "UAPPROVER")

    updates = status_updates(harness, status)
    assert updates, harness.slack.dump_calls()
    shown = [json.dumps(u.params["blocks"], ensure_ascii=False) for u in updates]
    assert len(set(shown)) == len(shown)  # no update without a change
    assert len(updates) <= 2  # running, then done
    final = updates[-1].params
    assert "Done" in final["text"] and _actions(final) == []
    # the requester: one status message, one purchase order
    posts = requester_posts(harness, thread)
    assert len(posts) == 2, [p.params["text"] for p in posts]
    assert sum("PO-" in json.dumps(p.params["blocks"]) for p in posts) == 1


async def test_the_requester_cancels_from_the_status_message(harness: Harness) -> None:
    thread = await ask(harness, "buy 2 monitors for $300")
    status = status_post(harness)
    await click(harness, status, CANCEL, "U1")

    (update,) = status_updates(harness, status)
    assert "Cancelled" in update.params["text"] and _actions(update.params) == []
    assert harness.slack.calls_to("chat.postEphemeral") == []
    assert harness.posts(lambda c: "PO-" in json.dumps(c.params["blocks"])) == []
    approval = next(c for c in harness.posts() if _is_approval(c.params))
    approval_updates = [
        c
        for c in harness.slack.calls_to("chat.update")
        if c.params["ts"] == approval.response["ts"]
    ]
    assert len(approval_updates) == 1 and not _is_approval(approval_updates[0].params)
    assert len(requester_posts(harness, thread)) == 2  # status + one "cancelled" outcome


async def test_someone_else_cannot_cancel_and_is_told_so_privately(harness: Harness) -> None:
    harness.slack.add_channel("CTEAM", {"U1", "U2"})  # a channel both can see
    envelope = payloads.app_mention("buy 2 monitors for $300", user="U1", channel="CTEAM")
    await harness.sender.event(envelope)
    await harness.settle()
    status = status_post(harness)
    before = len(harness.slack.calls)
    await click(harness, status, CANCEL, "U2")

    assert status_updates(harness, status) == []
    (ephemeral,) = harness.slack.calls_to("chat.postEphemeral")
    assert ephemeral.params["user"] == "U2"
    assert "Only the person who asked" in ephemeral.params["text"]
    assert [c.method for c in harness.slack.calls[before:]] == ["chat.postEphemeral"]


async def test_research_and_email_show_one_status_and_one_draft(harness: Harness) -> None:
    thread = await ask(harness, "research best laptops and draft email to john@example.com")
    posts = requester_posts(harness, thread)
    assert len(posts) == 2, [p.params["text"] for p in posts]  # status + email draft
    status = status_post(harness)
    updates = status_updates(harness, status)
    shown = [json.dumps(u.params["blocks"], ensure_ascii=False) for u in updates]
    assert len(set(shown)) == len(shown)
    assert "Done" in updates[-1].params["text"]
    assert "✅" in shown[-1] and "(done)" in shown[-1]
