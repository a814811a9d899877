"""DMs and mentions: persisted, acked, answered in the asking thread; retries and bots ignored."""

from __future__ import annotations

import json
import logging

import pytest
from sqlalchemy import func, select

from storage.models import TaskRow
from tests.e2e.conftest import Harness
from tests.slackfake import payloads
from tests.slackfake.server import Call


async def count_tasks(h: Harness) -> int:
    async with h.running.container.uow_factory() as uow:
        session = uow.session  # type: ignore[attr-defined]
        return int((await session.execute(select(func.count()).select_from(TaskRow))).scalar_one())


async def test_dm_is_answered_in_its_thread_with_one_result(harness: Harness) -> None:
    """Fast work needs no status message: the email draft (which carries the research)
    is the one reply, in the asking thread."""
    envelope = payloads.im_message(
        "research best laptops and draft email to john@example.com", user="U1", channel="D1"
    )
    ts = envelope["event"]["ts"]
    response = await harness.sender.event(envelope)
    assert response.status == 200
    await harness.settle()

    posts = harness.posts()
    assert posts, harness.slack.dump_calls()
    assert all(c.params["channel"] == "D1" and c.params["thread_ts"] == ts for c in posts)
    (email,) = posts  # the deliverable, once; no "got it", no "completed"
    assert "john@example.com" in email.params["text"]
    assert "mail" in email.params["text"].lower()
    assert "laptops.md" in json.dumps(email.params["blocks"])
    assert "&gt; " in json.dumps(email.params["blocks"]) or "> " in json.dumps(
        email.params["blocks"]
    )
    assert harness.slack.calls_to("chat.update") == []


async def test_mention_inside_a_thread_answers_in_that_thread(harness: Harness) -> None:
    envelope = payloads.app_mention(
        "research standing desks", user="U1", channel="C9", thread_ts="1700000000.000100"
    )
    await harness.sender.event(envelope)
    await harness.settle()
    posts = harness.posts()
    assert posts
    assert {(c.params["channel"], c.params["thread_ts"]) for c in posts} == {
        ("C9", "1700000000.000100")
    }
    assert "UBOT0001" not in json.dumps([c.params for c in posts])


async def test_retried_delivery_creates_nothing_new(harness: Harness) -> None:
    envelope = payloads.im_message("research office chairs")
    first = await harness.sender.event(envelope)
    second = await harness.sender.event(envelope, retry_num=1, retry_reason="http_timeout")
    third = await harness.sender.event(envelope, retry_num=2, retry_reason="http_error")
    assert (first.status, second.status, third.status) == (200, 200, 200)
    await harness.settle()
    assert await count_tasks(harness) == 1
    assert len(harness.posts()) == 1  # one answer, however often Slack delivers


async def test_bot_messages_edits_and_deletions_are_ignored(harness: Harness) -> None:
    for envelope in (
        payloads.bot_message_self(),
        payloads.bot_message_self(classic=True),
        payloads.bot_message_other(),
        payloads.message_changed(),
        payloads.message_deleted(),
    ):
        assert (await harness.sender.event(envelope)).status == 200
    await harness.settle()
    assert harness.posts() == []
    assert await count_tasks(harness) == 0


async def test_mention_injection_is_escaped(harness: Harness) -> None:
    text = "research <!channel> <!here> <@U999> <http://evil.example|click me> & laptops"
    await harness.sender.event(payloads.im_message(text))
    await harness.settle()
    dumped = harness.dump("chat.postMessage")
    assert harness.posts()
    for raw in ("<!channel>", "<!here>", "<@U999>", "<http://evil.example"):
        assert raw not in dumped
    assert "&lt;!channel&gt;" in dumped or "!channel" not in dumped
    for call in harness.posts():
        assert "link_names" not in call.params and "parse" not in call.params


async def test_unintelligible_message_gets_a_clear_answer(harness: Harness) -> None:
    envelope = payloads.im_message("?!?!")
    await harness.sender.event(envelope)
    await harness.settle()
    posts = harness.posts()
    assert len(posts) == 1
    assert posts[0].params["thread_ts"] == envelope["event"]["ts"]
    assert (
        "understand" in posts[0].params["text"].lower() or "try" in posts[0].params["text"].lower()
    )
    assert await count_tasks(harness) == 0


async def test_forged_and_stale_signatures_are_refused_and_write_nothing(
    harness: Harness,
) -> None:
    forged = await harness.sender.event(payloads.im_message("research laptops"), bad_signature=True)
    stale = await harness.sender.event(payloads.im_message("research laptops"), stale=True)
    command = await harness.sender.command(payloads.slash_command(""), bad_signature=True)
    assert (forged.status, stale.status, command.status) == (401, 401, 401)
    await harness.settle()
    assert await count_tasks(harness) == 0
    assert harness.posts() == []


async def test_a_rejected_request_leaves_no_body_or_signature_in_the_logs(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    envelope = payloads.im_message("research very-private-topic")
    assert (await harness.sender.event(envelope, bad_signature=True)).status == 401
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "very-private-topic" not in logged
    assert "v0=" not in logged
    assert "xoxb-e2e-test-token" not in logged


async def test_url_verification_and_health(harness: Harness) -> None:
    response = await harness.sender.url_verification("abc123")
    assert response.status == 200 and "abc123" in response.text
    import aiohttp

    async with aiohttp.ClientSession() as session, session.get(harness.url + "/healthz") as r:
        body = await r.json()
    assert r.status == 200
    assert body["database"] == "ok" and body["scheduler"] is True
    assert body["outbox"]["undelivered"] == 0


async def test_a_dm_with_a_file_is_answered_not_dropped(harness: Harness) -> None:
    envelope = payloads.im_message("research standing desks")
    envelope["event"].update(subtype="file_share", files=[{"id": "F1", "name": "notes.pdf"}])
    await harness.sender.event(envelope)
    bare = payloads.im_message("")
    bare["event"].update(subtype="file_share", files=[{"id": "F2", "name": "a.png"}])
    await harness.sender.event(bare)
    await harness.settle()
    threads = {c.params["thread_ts"] for c in harness.posts()}
    assert threads == {envelope["event"]["ts"], bare["event"]["ts"]}
    assert await count_tasks(harness) == 1


def _is_approval(call: Call) -> bool:
    return "approval:approve" in json.dumps(call.params.get("blocks") or [])


async def _decide(h: Harness, approval: Call, action_id: str) -> None:
    """The approver clicks on the approval message as Slack shows it now."""
    payload = h.slack.click(
        approval.response["channel"], approval.response["ts"], action_id, "UAPPROVER"
    )
    await h.sender.interaction(payload)
    await h.settle()
    if action_id == "approval:deny":  # Deny… opened a modal: the approver gives a reason
        view = h.slack.opened_views[-1]
        await h.sender.interaction(h.slack.submit_view(view, {"reason": {"reason_input": "no"}}))
        await h.settle()


async def _requester_posts(h: Harness, text: str, decision: str | None = None) -> list[Call]:
    """Everything posted to the requester's thread for one request, approval aside
    (where approval requests go, and how many, is the approvals' business)."""
    envelope = payloads.im_message(text, user="U1", channel="D1")
    await h.sender.event(envelope)
    await h.settle()
    if decision:
        (approval,) = [c for c in h.posts() if _is_approval(c)]
        await _decide(h, approval, decision)
    thread = envelope["event"]["ts"]
    return h.posts(lambda c: c.params.get("thread_ts") == thread and not _is_approval(c))


@pytest.mark.parametrize(
    ("text", "decision", "expected"),
    [
        ("research best laptops", None, ["Done: Laptop research"]),
        (
            "research best laptops and draft email to john@example.com",
            None,
            ["Done: Email draft to john@example.com"],
        ),
        ("buy 2 monitors for $300", "approval:approve", ["Waiting for approval", "Done: Buy"]),
        ("buy 2 monitors for $300", "approval:deny", ["Waiting for approval", "Denied by"]),
        ("buy 2 laptops for $5000", None, ["Sorry, I can't do that: I can't ask for $5,000.00"]),
    ],
    ids=["research", "research+email", "purchase", "denied", "over-budget"],
)
async def test_notifications_per_request_kind(
    harness: Harness, text: str, decision: str | None, expected: list[str]
) -> None:
    """Research 1 post; research + email 1 (fast work has no status message);
    a purchase 2 (the status message, then one outcome); a refusal 1."""
    posts = await _requester_posts(harness, text, decision)
    said = [c.params["text"] for c in posts]
    assert len(said) == len(expected), said
    for text_sent, start in zip(said, expected, strict=True):
        assert text_sent.startswith(start), said
    if "5000" in text:
        assert "you have $500.00 of $500.00 left this month" in said[0]
