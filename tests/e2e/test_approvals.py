"""Approve/Deny buttons: authorized from the signed payload, decided once, updated in place."""

from __future__ import annotations

import json
from typing import Any

from tests.e2e.conftest import Harness
from tests.slackfake import payloads
from tests.slackfake.server import Call


async def ask_to_buy(h: Harness, text: str = "buy 2 monitors for $300") -> tuple[str, Call]:
    envelope = payloads.im_message(text, user="U1", channel="D1")
    await h.sender.event(envelope)
    await h.settle()
    thread = envelope["event"]["ts"]
    approval = next(c for c in h.posts() if _is_approval(c.params))
    assert approval.params["thread_ts"] == thread
    return thread, approval


def _has_buttons(params: dict[str, Any]) -> bool:
    return any(b.get("type") == "actions" for b in params.get("blocks") or [])


def _is_approval(params: dict[str, Any]) -> bool:
    """The approval request (the status message has a Cancel button of its own)."""
    return "approval:approve" in json.dumps(params.get("blocks") or [])


def approval_updates(h: Harness, approval: Call) -> list[Call]:
    """chat.update calls on the approval message (the status message is updated too)."""
    ts = approval.response["ts"]
    return [c for c in h.slack.calls_to("chat.update") if c.params.get("ts") == ts]


def _button(call: Call, action_id: str) -> dict[str, Any]:
    for block in call.params["blocks"]:
        for element in block.get("elements", []) if block.get("type") == "actions" else []:
            if element.get("action_id") == action_id:
                return {**element, "block_id": block["block_id"]}
    raise AssertionError(f"no {action_id} button in {call.params}")


async def click(
    h: Harness, approval: Call, action_id: str, user: str, message_ts: str | None = None
) -> int:
    button = _button(approval, action_id)
    payload = payloads.block_action(
        action_id,
        button["value"],
        user=user,
        channel=approval.params["channel"],
        message_ts=message_ts or approval.response["ts"],
        block_id=button["block_id"],
        thread_ts=approval.params["thread_ts"],
        message_blocks=approval.params["blocks"],
    )
    response = await h.sender.interaction(payload)
    await h.settle()
    return response.status


async def test_approval_message_names_cost_requester_budget_and_approvers(
    harness: Harness,
) -> None:
    _thread, approval = await ask_to_buy(harness)
    dumped = json.dumps(approval.params["blocks"])
    assert "$300.00" in dumped and "<@U1>" in dumped and "<@UAPPROVER>" in dumped
    assert "$200.00" in dumped  # budget left after this purchase
    assert _button(approval, "approval:approve")["style"] == "primary"
    assert _button(approval, "approval:deny")["style"] == "danger"


async def test_approve_resumes_the_task_and_updates_the_message_in_place(
    harness: Harness,
) -> None:
    thread, approval = await ask_to_buy(harness)
    assert await click(harness, approval, "approval:approve", "UAPPROVER") == 200

    updates = approval_updates(harness, approval)
    assert len(updates) == 1
    update = updates[0].params
    assert update["ts"] == approval.response["ts"] and update["channel"] == "D1"
    assert not _has_buttons(update)
    assert "Approved by" in json.dumps(update["blocks"]) and "<@UAPPROVER>" in json.dumps(
        update["blocks"]
    )
    done = harness.posts(lambda c: "PO-" in json.dumps(c.params.get("blocks")))
    assert len(done) == 1 and done[0].params["thread_ts"] == thread


async def test_a_non_approver_is_refused_and_nothing_changes(harness: Harness) -> None:
    _thread, approval = await ask_to_buy(harness)
    before = len(harness.posts())
    assert await click(harness, approval, "approval:approve", "U1") == 200
    assert approval_updates(harness, approval) == []
    assert len(harness.posts()) == before
    ephemerals = harness.slack.calls_to("chat.postEphemeral")
    assert len(ephemerals) == 1
    assert ephemerals[0].params["user"] == "U1"
    assert "can't approve" in ephemerals[0].params["text"]


async def test_a_forged_button_value_or_foreign_message_changes_nothing(
    harness: Harness,
) -> None:
    _thread, approval = await ask_to_buy(harness)
    assert (
        await click(
            harness, approval, "approval:approve", "UAPPROVER", message_ts="1111111111.000001"
        )
        == 200
    )
    assert approval_updates(harness, approval) == []
    assert harness.posts(lambda c: "PO-" in json.dumps(c.params.get("blocks"))) == []


async def test_double_click_changes_nothing_and_says_who_decided(harness: Harness) -> None:
    _thread, approval = await ask_to_buy(harness)
    await click(harness, approval, "approval:approve", "UAPPROVER")
    await click(harness, approval, "approval:deny", "UAPPROVER")
    assert len(approval_updates(harness, approval)) == 1
    assert len(harness.posts(lambda c: "PO-" in json.dumps(c.params.get("blocks")))) == 1
    ephemeral = harness.slack.calls_to("chat.postEphemeral")[-1].params
    assert "already approved" in ephemeral["text"] and "<@UAPPROVER>" in ephemeral["text"]


async def test_deny_answers_in_the_thread(harness: Harness) -> None:
    thread, approval = await ask_to_buy(harness)
    await click(harness, approval, "approval:deny", "UAPPROVER")
    update = approval_updates(harness, approval)[0].params
    assert "Denied by" in json.dumps(update["blocks"]) and not _has_buttons(update)
    denied = harness.posts(lambda c: "denied by" in json.dumps(c.params["blocks"]).lower())
    assert denied and denied[-1].params["thread_ts"] == thread
    assert harness.posts(lambda c: "PO-" in json.dumps(c.params.get("blocks"))) == []
