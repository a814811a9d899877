"""The approval message decidable alone, and its record after the decision."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.views import render
from bot.views.approval import deny_modal
from bot.views.buttons import DenyForm
from bot.views.full_text import full_text_modal
from core.approvals import DENY_REASON_MAX
from core.notices import ApprovalDecided, ApprovalNeeded, ApprovalReminder, Destination
from tests.slackfake.server import validate_view
from tests.unit.bot.test_messages import visible
from tests.unit.bot.test_views import assert_valid

DM = Destination(user="U0APPROVER")
WORDS = "buy 2 monitors for the new hires, need them by Friday for $300"
DECIDE_BY = 1_765_000_000
FACTS: dict[str, Any] = {
    "requester": "U0ALICE01",
    "request_text": WORDS,
    "request_channel": "C0GENERAL1",
    "request_thread_ts": "1732449600.000100",
    "item": "monitors",
    "quantity": 2,
    "remaining_cents": 20000,
    "limit_cents": 50000,
    "expires_at": DECIDE_BY,
}
_RAW_USER_ID = re.compile(r"(?<!<@)\b[UW][A-Z0-9]{8,}\b")


def asked() -> ApprovalNeeded:
    return ApprovalNeeded(
        DM,
        5,
        approval_id=9,
        title="Buy 2 × monitors ($300.00)",
        amount_cents=30000,
        approvers=("U0APPROVER",),
        **FACTS,
    )


def decided(outcome: str, **extra: Any) -> ApprovalDecided:
    return ApprovalDecided(
        Destination(channel="D0APPROVER"),
        5,
        approval_id=9,
        title="Buy 2 × monitors ($300.00)",
        outcome=outcome,
        message_ts="1732449601.000200",
        amount_cents=30000,
        **FACTS,
        **extra,
    )


def test_the_request_has_every_field_an_approver_needs() -> None:
    msg = render(asked(), permalinks={5: "https://fake.slack.test/archives/C0GENERAL1/p1"})
    assert_valid(msg)
    assert msg["blocks"][0] == {
        "type": "header",
        "text": {
            "type": "plain_text",
            "text": "Purchase approval: 2 × monitors, $300.00",
            "emoji": True,
        },
    }
    out = json.dumps(msg, ensure_ascii=False)
    assert f"> {WORDS}".replace("$", "$") in out  # their own words, quoted
    assert "*Item*\\n2 × monitors ($150.00 each)" in out
    assert "$200.00 left of $500.00 this month after this" in out
    assert f"<!date^{DECIDE_BY}^{{date_short_pretty}} at {{time}}|" in out
    assert "Open the request's thread" in out
    approve, deny = msg["blocks"][-1]["elements"]
    assert approve["text"]["text"] == "Approve $300.00" and approve["style"] == "primary"
    assert approve["confirm"]["title"]["text"] == "Spend $300.00?"
    assert deny["text"]["text"] == "Deny…" and "style" not in deny
    assert msg["text"] == "<@U0ALICE01> asks you to approve $300.00 for 2 × monitors"


def test_the_cost_is_said_at_most_twice_and_no_internal_words() -> None:
    msg = render(asked())
    shown = visible(msg)
    assert 1 <= shown.count("$300.00") <= 2, shown
    everything = json.dumps(msg, ensure_ascii=False)
    assert "task #" not in everything.lower()
    assert not _RAW_USER_ID.search(everything), _RAW_USER_ID.findall(everything)
    # the reason is in the quote, not in the item
    assert "monitors for the new hires" not in shown.split("need them")[-1]
    assert shown.count("for the new hires") == 1


@pytest.mark.parametrize(
    ("notice", "record"),
    [
        (
            decided(
                "approved", decided_by="U0PAT0001", decided_at=DECIDE_BY - 60, reference="PO-5"
            ),
            "*✅ Approved by <@U0PAT0001>* · <!date^1764999940^",
        ),
        (
            decided(
                "denied", decided_by="U0PAT0001", decided_at=DECIDE_BY - 60, reason="spares <here>"
            ),
            "*❌ Denied by <@U0PAT0001>* · <!date^1764999940^",
        ),
        (decided("expired"), "*⌛ Expired*"),
        (decided("cancelled"), "*⏹️ Cancelled*"),
    ],
)
def test_after_the_decision_every_detail_stays_and_buttons_become_the_record(
    notice: ApprovalDecided, record: str
) -> None:
    msg = render(notice)
    assert_valid(msg)
    assert not [b for b in msg["blocks"] if b["type"] == "actions"]
    last = msg["blocks"][-1]["text"]["text"]
    assert last.startswith(record), last
    out = json.dumps(msg, ensure_ascii=False)
    for kept in ("2 × monitors ($150.00 each)", "$200.00 left of $500.00", "the new hires"):
        assert kept in out, kept
    assert "<@U0ALICE01>" in out  # the requester stays
    if notice.reference:
        assert last.endswith("· PO-5")
    if notice.reason:
        assert last.endswith("· spares &lt;here&gt;")
    assert "task #" not in out.lower()
    assert not _RAW_USER_ID.search(out)


def test_a_reminder_says_request_not_task() -> None:
    msg = render(
        ApprovalReminder(
            DM,
            5,
            approval_id=9,
            title="Buy 2 × monitors",
            approvers=("U0PAT0001",),
            waiting_seconds=90000,
        )
    )
    assert_valid(msg)
    out = json.dumps(msg, ensure_ascii=False)
    assert "task #" not in out.lower() and "the request" in out


def test_the_deny_modal_asks_for_a_bounded_reason() -> None:
    view = deny_modal(DenyForm(9, "D0APPROVER", "1732449601.000200"))
    assert view["callback_id"] == "approval:deny_reason"  # as in modals already open
    assert json.loads(view["private_metadata"]) == {
        "approval": 9,
        "channel": "D0APPROVER",
        "ts": "1732449601.000200",
    }
    assert view["blocks"][0]["element"]["max_length"] == DENY_REASON_MAX
    assert validate_view(view, expected_type="modal") == []


def test_the_full_text_modal_splits_long_text_within_modal_limits() -> None:
    view = full_text_modal("Laptop research", "word " * 5000)
    assert 3 <= len(view["blocks"]) <= 100
    body = view["blocks"][1:]
    assert all(len(b["text"]["text"]) <= 3000 for b in body)
    assert "".join(b["text"]["text"] for b in body).count("word") == 5000
    assert validate_view(view, expected_type="modal") == []
    huge = full_text_modal("Laptop research", "word " * 200_000)
    assert len(huge["blocks"]) == 100 and "too long" in huge["blocks"][-1]["text"]["text"]


def test_needs_attention_goes_where_the_approvers_act_too() -> None:
    from core.approval_routing import attention_notices
    from core.records import Conversation, Task
    from core.states import TaskStatus

    now = datetime(2026, 11, 24, tzinfo=UTC)
    task = Task(
        id=7, root_id=7, parent_id=None,
        conversation=Conversation(requester="U0ALICE01", channel="D0ALICE01", thread_ts="1.2"),
        agent="purchase", title="Buy 2 × monitors", params={}, status=TaskStatus.NEEDS_ATTENTION,
        cost_cents=30000, currency="USD", created_at=now, updated_at=now,
    )  # fmt: skip
    thread = Destination(channel="D0ALICE01", thread_ts="1.2")
    approvers = ("U0PAT0001", "U0QUINN01")
    dms = attention_notices(task, thread, "PO-5", "not recorded", approvers, None)
    assert [(n.destination, n.for_approvers) for n in dms] == [
        (thread, False),
        (Destination(user="U0PAT0001"), True),
        (Destination(user="U0QUINN01"), True),
    ]
    shared = attention_notices(task, thread, "PO-5", "not recorded", approvers, "C0APPROVE1")
    assert [n.destination for n in shared][1:] == [Destination(channel="C0APPROVE1")]
    in_thread, for_pat = (render(n) for n in dms[:2])
    for msg in (in_thread, for_pat):
        assert_valid(msg)
    assert "I've asked <@U0PAT0001> <@U0QUINN01> to check it" in json.dumps(in_thread)
    out = json.dumps(for_pat, ensure_ascii=False)
    assert "<@U0PAT0001>" in out and "Requested by <@U0ALICE01>" in out and "PO-5" in out
