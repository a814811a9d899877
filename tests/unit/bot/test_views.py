"""bot.views: every message validates with slack_sdk, stays within Block Kit
limits, and shows user/agent text escaped."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from slack_sdk.models.blocks import Block

from bot.views import (
    escape,
    limits,
    render,
    render_budget,
    render_help,
    render_history,
    render_task_detail,
    render_text,
)
from bot.views.buttons import ApproveButton, DenyButton, PageButton
from bot.views.escape import link, mention, truncate
from bot.views.history import EMPTY
from bot.views.limits import chunk_text, fit_blocks, split_sections
from core.agents.base import AgentResult
from core.money import format_money
from core.notices import (
    ApprovalAsked,
    ApprovalDecided,
    ApprovalNeeded,
    ApprovalReminder,
    Destination,
    Notice,
    PlanStep,
    RequestAccepted,
    RequestFinished,
    RequestRefused,
    RequestStatus,
    StaleReport,
    StaleTask,
    StepState,
    TaskCancelled,
    TaskFailed,
    TaskFinished,
    TaskNeedsAttention,
    TaskRejected,
    TaskRetried,
    WebhookEvent,
    notice_from_json,
)
from core.records import BudgetStatus, Conversation, Task
from core.states import TaskStatus

EVIL = "<!channel> <@U999> <http://evil.example|click> & stuff <!here> <!everyone>"
RAW_TOKENS = ("<!channel>", "<!here>", "<!everyone>", "<@U999>", "<http://evil", "& stuff")
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
DEST = Destination(channel="C0123ABCD", thread_ts="1732449600.000100")


# --- validation ------------------------------------------------------------------


def assert_valid(msg: dict[str, Any]) -> list[dict[str, Any]]:
    assert set(msg) == {"text", "blocks"}
    text = msg["text"]
    assert isinstance(text, str) and text.strip()
    assert len(text) <= limits.MESSAGE_TEXT
    blocks: list[dict[str, Any]] = msg["blocks"]
    assert 1 <= len(blocks) <= limits.MAX_BLOCKS
    block_ids = [b["block_id"] for b in blocks if "block_id" in b]
    assert len(block_ids) == len(set(block_ids))
    for d in blocks:
        parsed = Block.parse(d)
        assert parsed is not None
        parsed.validate_json()
        assert parsed.to_dict() == d  # nothing slack_sdk does not know about
        check_limits(d)
    json.dumps(msg)
    return blocks


def check_limits(d: dict[str, Any]) -> None:
    if "block_id" in d:
        assert len(d["block_id"]) <= limits.BLOCK_ID
    if d["type"] == "section":
        if "text" in d:
            assert 0 < len(d["text"]["text"]) <= limits.SECTION_TEXT
        for f in d.get("fields", ()):
            assert 0 < len(f["text"]) <= limits.FIELD_TEXT
        assert len(d.get("fields", ())) <= limits.SECTION_FIELDS
    if d["type"] == "context":
        assert 1 <= len(d["elements"]) <= limits.CONTEXT_ELEMENTS
        for e in d["elements"]:
            assert 0 < len(e["text"]) <= limits.CONTEXT_TEXT
    if d["type"] == "actions":
        ids = [e["action_id"] for e in d["elements"]]
        assert len(ids) == len(set(ids))
        for e in d["elements"]:
            assert len(e["action_id"]) <= limits.ACTION_ID
            assert len(e["value"]) <= limits.BUTTON_VALUE
            assert len(e["text"]["text"]) <= limits.BUTTON_TEXT


def dump(msg: dict[str, Any]) -> str:
    return json.dumps(msg, ensure_ascii=False)


def assert_no_raw_injection(msg: dict[str, Any]) -> None:
    out = dump(msg)
    for token in RAW_TOKENS:
        assert token not in out, token
    assert "&lt;!channel&gt;" in out


def actions_blocks(msg: dict[str, Any]) -> list[dict[str, Any]]:
    return [b for b in msg["blocks"] if b["type"] == "actions"]


def all_text(msg: dict[str, Any]) -> str:
    return dump(msg)


# --- builders ---------------------------------------------------------------------


def task(
    id: int,
    title: str = "Research best laptops",
    *,
    status: TaskStatus = TaskStatus.COMPLETED,
    agent: str = "research",
    cost_cents: int = 0,
    parent_id: int | None = None,
    age: timedelta = timedelta(minutes=5),
    result: AgentResult | None = None,
    error: str | None = None,
    position: int = 0,
) -> Task:
    created = NOW - age
    return Task(
        id=id,
        root_id=parent_id or id,
        parent_id=parent_id,
        conversation=Conversation(requester="U0123ABCD", channel="D0123ABCD"),
        agent=agent,
        title=title,
        params={"topic": title},
        status=status,
        cost_cents=cost_cents,
        currency="USD",
        created_at=created,
        updated_at=created,
        result=result,
        error=error,
        finished_at=created + timedelta(seconds=30) if status.terminal else None,
        position=position,
    )


def research_result(extra: str = "") -> AgentResult:
    return AgentResult(
        summary="The Dell XPS 13 and MacBook Air are the best laptops for most people. " + extra,
        body="- Battery life matters most (laptops.md)\n- 16 GB of RAM is the sweet spot "
        "(laptops.md)\n" + extra,
        data={"sources": ["laptops.md", "monitors.md"], "answered_by": "knowledge base"},
    )


def every_notice(text: str = "Research best laptops") -> list[Notice]:
    result = AgentResult(
        summary=f"Draft ready: {text}",
        body=f"Here is the draft.\n\n{text}",
        data={
            "sources": ["laptops.md", f"notes about {text}"],
            "email": {
                "to": ["team@example.com"],
                "subject": f"Laptops {text}",
                "body": f"Hi team,\n\n{text}\n\nBest,\nAda",
            },
            "purchase_order": {
                "vendor": f"ACME {text}",
                "item": "Monitor arm",
                "quantity": 2,
                "amount_cents": 24000,
                "currency": "USD",
            },
            "rows": [
                {
                    "item": f"Chair {text}",
                    "low_cents": 19900,
                    "high_cents": 29900,
                    "source": "office-chairs.md",
                    "unit": "",
                    "currency": "USD",
                },
                {
                    "item": "Desk",
                    "low_cents": 45000,
                    "high_cents": 45000,
                    "source": "standing-desks.md",
                    "unit": "per seat",
                    "currency": "USD",
                },
            ],
        },
        cost_cents=150,
    )
    return [
        RequestAccepted(
            DEST,
            12,
            requester="U0123ABCD",
            title=f"research → email draft: {text}",
            steps=(
                PlanStep(13, "research", f"Research {text}"),
                PlanStep(14, "email", f"Email the team about {text}", (13,), True),
            ),
        ),
        RequestRefused(DEST, None, requester="U0123ABCD", reason=f"I don't understand {text}"),
        ApprovalNeeded(
            DEST,
            15,
            approval_id=42,
            requester="U0123ABCD",
            title=f"Buy a monitor arm {text}",
            amount_cents=30000,
            currency="USD",
            approvers=("U0APPROVER", "W0ENTERPRISE"),
            remaining_cents=20000,
            request_text=f"please buy a monitor arm {text}",
            request_channel="C0123ABCD",
            request_thread_ts="1732449600.000100",
        ),
        ApprovalDecided(
            DEST,
            15,
            approval_id=42,
            title=f"Buy a monitor arm {text}",
            outcome="APPROVED",
            decided_by="U0APPROVER",
            message_ts="1732449601.000200",
            amount_cents=30000,
        ),
        ApprovalReminder(
            DEST,
            15,
            approval_id=42,
            title=f"Buy {text}",
            approvers=("U0APPROVER",),
            waiting_seconds=7300,
        ),
        TaskFinished(DEST, 16, agent="email", title=f"Email {text}", result=result, cost_cents=150),
        TaskFailed(DEST, 17, title=f"Research {text}", error=f"Could not search: {text}"),
        TaskRejected(DEST, 18, title=f"Buy {text}", decided_by="U0APPROVER"),
        TaskCancelled(DEST, 19, title=f"Buy {text}", reason=f"cancelled by requester {text}"),
        RequestFinished(
            DEST, 12, title=f"research → email {text}", status="COMPLETED", completed=2, total=2
        ),
        StaleReport(
            Destination(channel="C0REPORTS"),
            None,
            tasks=(
                StaleTask(
                    20,
                    f"Buy {text}",
                    "U0123ABCD",
                    3 * 3600,
                    "approval",
                    "C0123ABCD",
                    "1732449600.000100",
                ),
                StaleTask(21, "Old one", "U0OTHER", 2 * 86400, "U0APPROVER", "D0123ABCD", None),
            ),
        ),
        TaskRetried(
            DEST,
            12,
            title=f"Research {text}",
            retried_by="U0123ABCD",
            step_titles=(f"#14 Email the team about {text}",),
        ),
        ApprovalAsked(
            DEST,
            15,
            approval_id=42,
            title=f"Buy a monitor arm {text}",
            amount_cents=30000,
            approvers=("U0APPROVER", "W0ENTERPRISE"),
            approval_channel="C0APPROVALS",
        ),
        TaskNeedsAttention(
            DEST,
            19,
            title=f"Buy {text}",
            reference=f"PO-19 {text}",
            detail=f"The purchase step was done, but {text}.",
            approvers=("U0APPROVER",),
        ),
        RequestStatus(
            DEST,
            12,
            requester="U0123ABCD",
            title=f"research and buy {text}",
            outline="research → purchase",
            status="WAITING",
            steps=(
                StepState(f"Research {text}", "COMPLETED"),
                StepState(f"Buy {text}", "WAITING", ("U0APPROVER",)),
            ),
            amount_cents=30000,
        ),
    ]


# --- escape ------------------------------------------------------------------------


def test_escape_exactly_three_characters_in_order() -> None:
    assert escape("a & b < c > d") == "a &amp; b &lt; c &gt; d"
    assert escape("&lt;") == "&amp;lt;"  # & first, so existing entities stay visible as typed
    assert escape("*bold* _it_ `code` ~s~ :smile: | \"q\" 'q'") == (
        "*bold* _it_ `code` ~s~ :smile: | \"q\" 'q'"
    )
    assert escape(EVIL) == (
        "&lt;!channel&gt; &lt;@U999&gt; &lt;http://evil.example|click&gt; &amp; stuff "
        "&lt;!here&gt; &lt;!everyone&gt;"
    )


def test_mention_only_for_user_ids() -> None:
    assert mention("U0123ABCD") == "<@U0123ABCD>"
    assert mention("W0123ABCD") == "<@W0123ABCD>"
    assert mention("U123>|<!channel") == "U123&gt;|&lt;!channel"
    assert mention("!channel") == "!channel"
    assert mention("C0123") == "C0123"
    assert mention("u0123abc") == "u0123abc"
    assert mention("U") == "U"


def test_link_only_for_plain_http_urls() -> None:
    assert link("https://x.slack.com/archives/C1/p1?a=1&b=2", "thread") == (
        "<https://x.slack.com/archives/C1/p1?a=1&amp;b=2|thread>"
    )
    assert link("javascript:alert(1)", "thread") == "thread"
    assert link("https://evil|<!channel>", "x") == "x"


def test_truncate_never_splits_entities_or_tokens() -> None:
    assert truncate("short", 10) == "short"
    text = escape("a" * 8 + "&&&&")  # aaaaaaaa&amp;&amp;…
    for limit in range(3, len(text)):
        out = truncate(text, limit, "…")
        assert len(out) <= limit
        body = out.removesuffix("…")
        assert body.count("&") == body.count(";"), out
    tok = "x" * 10 + " <@U123> tail"
    assert truncate(tok, 15, "…") == "x" * 10 + "…"


# --- limits -------------------------------------------------------------------------


def test_chunk_text_prefers_paragraphs_and_keeps_everything() -> None:
    paras = [f"para {i} " + "word " * 300 for i in range(10)]
    text = "\n\n".join(paras)
    chunks = chunk_text(text, 3000)
    assert all(len(c) <= 3000 for c in chunks)
    assert " ".join(" ".join(chunks).split()) == " ".join(text.split())
    assert all(c.startswith("para ") for c in chunks)


def test_chunk_text_hard_cut_respects_entities() -> None:
    text = escape("&" * 10000)
    chunks = chunk_text(text, 3000)
    assert all(len(c) <= 3000 for c in chunks)
    assert "".join(chunks) == text
    assert all(c.startswith("&amp;") and c.endswith("&amp;") for c in chunks)


def test_split_sections_and_fit_blocks() -> None:
    sections = split_sections("x" * 20000)
    assert len(sections) == 7
    assert all(len(s["text"]["text"]) <= 3000 for s in sections)
    blocks = [{"type": "divider"}] * 80 + [{"type": "actions", "elements": []}]
    fitted = fit_blocks(blocks, "…{n} more, see `/tasks 5`", keep_tail=1)
    assert len(fitted) == 50
    assert fitted[-1]["type"] == "actions"
    assert fitted[-2]["type"] == "context"
    assert fitted[-2]["elements"][0]["text"] == "…32 more, see `/tasks 5`"
    assert fit_blocks(blocks[:10]) == blocks[:10]


# --- notices --------------------------------------------------------------------------


@pytest.mark.parametrize("notice", every_notice(), ids=lambda n: n.kind)
def test_every_notice_renders_valid(notice: Notice) -> None:
    msg = render(notice)
    assert_valid(msg)
    # also after the outbox's JSON round trip
    again = notice_from_json(json.loads(json.dumps(notice.to_json())))
    assert render(again) == msg


@pytest.mark.parametrize("notice", every_notice(EVIL), ids=lambda n: n.kind)
def test_every_notice_escapes_injection(notice: Notice) -> None:
    msg = render(notice, {20: "https://acme.slack.com/archives/C0123ABCD/p1732449600000100"})
    assert_valid(msg)
    assert_no_raw_injection(msg)


def test_every_notice_type_is_covered() -> None:
    from core.notices import NOTICE_TYPES

    # webhook events never reach Slack: the outbox's webhook lane has its own sender
    assert {n.kind for n in every_notice()} == set(NOTICE_TYPES) - {WebhookEvent.kind}


def test_request_accepted_lists_plan() -> None:
    out = all_text(render(every_notice()[0]))
    assert "Got it — task #12" in out
    assert "research → email" in out
    assert "`#13`" in out and "`#14`" in out
    assert "needs approval" in out
    assert "(after #13)" in out


def test_request_refused_shows_reason() -> None:
    msg = render(RequestRefused(DEST, None, requester="U0123ABCD", reason="Over budget: $5 left"))
    assert_valid(msg)
    assert "Over budget: $5 left" in all_text(msg)
    # said to the requester in her own thread: no @-mention of her
    assert "U0123ABCD" not in all_text(msg)


def test_approval_needed_has_two_buttons_with_approval_id() -> None:
    notice = every_notice()[2]
    assert isinstance(notice, ApprovalNeeded)
    msg = render(notice)
    assert_valid(msg)
    (block,) = actions_blocks(msg)
    assert block["block_id"] == "approval:42"
    approve, deny = block["elements"]
    assert (approve["action_id"], approve["value"], approve["style"]) == (
        ApproveButton.action_id,
        "42",
        "primary",
    )
    # Deny… opens a modal asking for a reason: unstyled, no confirm
    assert (deny["action_id"], deny["value"]) == (DenyButton.action_id, "42")
    assert "style" not in deny and "confirm" not in deny
    assert "confirm" in approve
    out = all_text(msg)
    assert format_money(30000, "USD") in out
    assert format_money(20000, "USD") in out  # budget left after the purchase
    assert "<@U0123ABCD>" in out  # requester
    assert "<@U0APPROVER>" in out and "<@W0ENTERPRISE>" in out  # approvers
    assert "please buy a monitor arm" in out  # the request in its own words
    assert msg["blocks"][-1]["type"] == "actions"


def test_approval_needed_links_the_requesters_thread_and_escapes_their_words() -> None:
    notice = every_notice(EVIL)[2]
    assert isinstance(notice, ApprovalNeeded)
    link = "https://fake.slack.test/archives/C0123ABCD/p1732449600000100"
    msg = render(notice, permalinks={15: link})
    assert_valid(msg)
    out = all_text(msg)
    assert f"<{link}|Open the request's thread>" in out
    assert "<!channel>" not in out and "&lt;!channel&gt;" in out
    assert "Open the request" not in all_text(render(notice))  # no link, no line


def test_approval_asked_tells_the_requester_who_decides_and_where() -> None:
    notice = next(n for n in every_notice() if isinstance(n, ApprovalAsked))
    msg = render(notice)
    assert_valid(msg)
    out = all_text(msg)
    assert "<@U0APPROVER>" in out and "<@W0ENTERPRISE>" in out
    assert "<#C0APPROVALS>" in out and format_money(30000, "USD") in out
    assert actions_blocks(msg) == []
    dm = render(replace(notice, approval_channel=None))
    assert "sent to them directly" in all_text(dm)


def test_approval_needed_buttons_survive_a_huge_title() -> None:
    msg = render(
        ApprovalNeeded(
            DEST,
            1,
            approval_id=2**62,
            title="t" * 50000,
            amount_cents=1,
            approvers=("U1",),
            requester="U2",
        )
    )
    assert_valid(msg)
    assert actions_blocks(msg)[0]["block_id"] == f"approval:{2**62}"


@pytest.mark.parametrize(
    ("outcome", "by", "expected"),
    [
        ("APPROVED", "U0APPROVER", "✅ Approved by <@U0APPROVER>"),
        ("DENIED", "U0APPROVER", "❌ Denied by <@U0APPROVER>"),
        ("EXPIRED", None, "⌛ Expired"),
        ("CANCELLED", None, "Cancelled"),
        ("approved", "U0APPROVER", "✅ Approved by <@U0APPROVER>"),
        (EVIL, "U1", "&lt;!channel&gt;"),
    ],
)
def test_approval_decided_has_no_actions(outcome: str, by: str | None, expected: str) -> None:
    msg = render(
        ApprovalDecided(
            DEST,
            15,
            approval_id=42,
            title="Buy a chair",
            outcome=outcome,
            decided_by=by,
            amount_cents=30000,
        )
    )
    assert_valid(msg)
    assert actions_blocks(msg) == []
    assert expected in all_text(msg)
    assert "Buy a chair" in all_text(msg)
    assert format_money(30000, "USD") in all_text(msg)
    assert "<!channel>" not in all_text(msg)


def test_approval_reminder_mentions_approvers_without_buttons() -> None:
    msg = render(every_notice()[4])
    assert_valid(msg)
    assert actions_blocks(msg) == []
    assert "<@U0APPROVER>" in all_text(msg)
    assert "2 h" in all_text(msg)


def test_task_finished_renders_result_parts() -> None:
    msg = render(every_notice()[5])
    blocks = assert_valid(msg)
    out = all_text(msg)
    # email draft once: To and Subject as fields, the body quoted line by line
    head = next(b for b in blocks if "To*" in json.dumps(b.get("fields", [])))
    assert [f["text"].split("\n")[0] for f in head["fields"]] == ["*To*", "*Subject*"]
    email = next(b for b in blocks if "Hi team," in b.get("text", {}).get("text", ""))
    lines = email["text"]["text"].split("\n")
    assert all(line.startswith(">") for line in lines)
    assert "> Hi team," in lines
    assert out.count("Hi team,") == 1 and out.count("team@example.com") == 1
    # purchase order as fields, money formatted
    po = next(b for b in blocks if "Purchase order" in b.get("text", {}).get("text", ""))
    fields = " ".join(f["text"] for f in po["fields"])
    assert "ACME" in fields and format_money(24000, "USD") in fields
    # comparison rows as lines
    assert format_money(19900, "USD") in out and format_money(45000, "USD") in out
    assert "per seat" in out
    # sources and cost in a context block
    ctx = " ".join(e["text"] for b in blocks if b["type"] == "context" for e in b["elements"])
    assert "laptops.md" in ctx
    assert format_money(150, "USD") in ctx


def test_task_finished_without_cost_shows_no_cost() -> None:
    msg = render(TaskFinished(DEST, 3, agent="research", title="Laptops", result=research_result()))
    assert_valid(msg)
    assert "Cost" not in all_text(msg)
    assert "Battery life" in all_text(msg)


def test_task_finished_huge_result_splits_and_fits() -> None:
    body = "\n\n".join(f"Paragraph {i}: " + "lorem ipsum & <dolor> " * 40 for i in range(25))
    assert len(body) > 20000
    msg = render(
        TaskFinished(
            DEST,
            7,
            agent="research",
            title="Big",
            result=AgentResult(summary="s" * 20000, body=body),
        )
    )
    blocks = assert_valid(msg)
    sections = [b for b in blocks if b["type"] == "section"]
    assert len(sections) > 10
    assert "<dolor>" not in dump(msg)


def test_task_finished_enormous_result_is_cut_with_note() -> None:
    body = "\n".join(f"line {i} " + "x" * 2900 for i in range(200))
    msg = render(
        TaskFinished(
            DEST, 7, agent="research", title="Enormous", result=AgentResult(summary="ok", body=body)
        )
    )
    blocks = assert_valid(msg)
    assert len(blocks) == 50
    assert blocks[-1]["type"] == "context"
    assert "/tasks 7" in blocks[-1]["elements"][0]["text"]


def test_task_failed_rejected_cancelled_finished() -> None:
    notices = every_notice()
    failed = render(notices[6])
    assert failed["text"].startswith("Failed: ") and "Could not search" in all_text(failed)
    denied = render(notices[7])
    assert denied["text"].startswith("Denied by <@U0APPROVER>")
    cancelled = render(notices[8])
    assert cancelled["text"].startswith("Cancelled: ")
    assert "cancelled by requester" in all_text(cancelled)
    # each outcome has one word and says what to do next, in the same footer as its id
    for msg, request in ((failed, 17), (denied, 18), (cancelled, 19)):
        footer = msg["blocks"][-1]
        assert footer["type"] == "context"
        assert "ask again" in footer["elements"][0]["text"]
        assert f"Request {request} · `/tasks {request}`" in footer["elements"][0]["text"]
    finished = all_text(render(notices[9]))
    assert "2 of 2 steps" in finished  # (folded into the status message in Slack)


def test_stale_report_with_permalinks() -> None:
    notice = every_notice()[10]
    url = "https://acme.slack.com/archives/C0123ABCD/p1732449600000100?thread_ts=1&cid=C1"
    msg = render(notice, permalinks={20: url})
    assert_valid(msg)
    out = all_text(msg)
    assert "`#20`" in out and "`#21`" in out
    assert "3 h" in out and "2 d" in out
    assert "<@U0123ABCD>" not in out and "U0OTHER" not in out  # requesters: not pinged
    assert "for approval" in out and "for <@U0APPROVER>" in out
    assert "|thread>" in out and out.count("|thread>") == 1
    assert_valid(render(notice))


def test_stale_report_many_tasks_and_empty() -> None:
    tasks = tuple(
        StaleTask(i, f"Task {i} {EVIL}", "U0123ABCD", 90000, "approval", "C1", None)
        for i in range(500)
    )
    msg = render(StaleReport(DEST, None, tasks=tasks))
    assert_valid(msg)
    assert_no_raw_injection(msg)
    assert_valid(render(StaleReport(DEST, None, tasks=())))


def test_unknown_notice_falls_back() -> None:
    assert_valid(render(Notice(DEST, 5)))


# --- history ------------------------------------------------------------------------


def history(tasks: Sequence[Task], **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "page": 1,
        "total": len(tasks),
        "page_size": 10,
        "filter_name": None,
        "now": NOW,
    }
    args.update(kw)
    return render_history(tasks, **args)


def test_history_lines() -> None:
    tasks = [
        task(1, status=TaskStatus.PENDING, age=timedelta(minutes=5)),
        task(2, status=TaskStatus.IN_PROGRESS, age=timedelta(hours=3)),
        task(
            3,
            "Buy a monitor arm",
            status=TaskStatus.COMPLETED,
            cost_cents=12000,
            age=timedelta(days=2),
        ),
        task(4, status=TaskStatus.FAILED),
        task(5, status=TaskStatus.REJECTED),
        task(6, "A" * 200, status=TaskStatus.CANCELLED),
    ]
    msg = history(tasks)
    assert_valid(msg)
    out = all_text(msg)
    for emoji in ("⏳", "🔄", "✅", "❌", "🚫", "⏹️"):
        assert emoji in out
    for ref in ("`#1`", "`#6`"):
        assert ref in out
    # times in each reader's own zone, with the age as the fallback
    assert "<!date^" in out and "|5 min ago>" in out and "|3 h ago>" in out
    assert "|1 d ago>" in out  # the finished one: when it finished, not when it was asked
    assert f"spent {format_money(12000, 'USD')}" in out
    assert out.count(format_money(12000, "USD")) == 1
    assert "A" * 60 not in out  # long titles shortened
    assert actions_blocks(msg) == []
    # the one waiting comes first, every row has its menu
    rows = [b for b in msg["blocks"] if "accessory" in b]
    assert len(rows) == 6 and "`#1`" in rows[0]["text"]["text"]
    assert all(r["accessory"]["action_id"] == "tasks:row" for r in rows)
    assert [o["value"] for o in rows[0]["accessory"]["options"]] == [
        "view:1",
        "cancel:1",
        "thread:1",
    ]
    assert [o["value"] for o in rows[2]["accessory"]["options"]] == ["view:3", "thread:3"]


def test_history_calls_only_spent_money_spent() -> None:
    tasks = [
        task(1, "Buy a desk", status=TaskStatus.REJECTED, cost_cents=20000),
        task(2, "Buy a chair", status=TaskStatus.PENDING, cost_cents=15000),
    ]
    out = all_text(history(tasks))
    assert format_money(20000, "USD") not in out  # denied: nothing was spent
    assert f"asks {format_money(15000, 'USD')}" in out and "spent" not in out


def test_history_empty_state() -> None:
    msg = history([], total=0)
    assert_valid(msg)
    assert EMPTY in all_text(msg)
    assert actions_blocks(msg) == []
    msg = history([], total=0, filter_name="failed")
    assert_valid(msg)
    assert "failed" in all_text(msg)


def test_history_pagination_buttons() -> None:
    tasks = [task(i) for i in range(11, 21)]
    first = history(tasks, page=1, total=35, filter_name="pending")
    assert_valid(first)
    (nxt,) = actions_blocks(first)
    (button,) = nxt["elements"]
    assert button["action_id"] == PageButton.action_id == "tasks:page"
    assert json.loads(button["value"]) == {"page": 2, "filter": "pending"}
    assert button["text"]["text"].startswith("Next")

    middle = history(tasks, page=2, total=35, filter_name=None)
    assert_valid(middle)
    prev, nxt = actions_blocks(middle)
    assert json.loads(prev["elements"][0]["value"]) == {"page": 1, "filter": None}
    assert json.loads(nxt["elements"][0]["value"]) == {"page": 3, "filter": None}
    assert prev["elements"][0]["text"]["text"].endswith("Previous")

    last = history(tasks[:5], page=4, total=35)
    assert_valid(last)
    (prev,) = actions_blocks(last)
    assert json.loads(prev["elements"][0]["value"])["page"] == 3


def test_history_200_steps_within_limits() -> None:
    roots = [task(i, f"Request {i} {EVIL}") for i in range(1, 51)]
    children = {
        r.id: [
            task(
                1000 + r.id * 10 + j,
                f"Step {j} {EVIL}",
                parent_id=r.id,
                position=j,
                status=TaskStatus.PENDING,
                cost_cents=99,
            )
            for j in range(200)
        ]
        for r in roots
    }
    msg = history(roots, page=2, page_size=50, total=500, children=children)
    blocks = assert_valid(msg)
    assert_no_raw_injection(msg)
    assert [b["block_id"] for b in blocks if b["type"] == "actions"] == [
        "tasks:page:prev",
        "tasks:page:next",
    ]
    assert "more steps" in all_text(msg)


def test_history_huge_page_keeps_buttons() -> None:
    roots = [task(i, "t" * 500) for i in range(1, 1001)]
    msg = history(roots, page=1, page_size=1000, total=5000)
    blocks = assert_valid(msg)
    assert len(blocks) <= 50
    assert any(b["type"] == "actions" for b in blocks)


def test_history_filter_in_button_value_is_bounded() -> None:
    msg = history([task(1)], total=100, page_size=1, filter_name="x" * 5000)
    assert_valid(msg)


def test_task_detail_with_subtasks_and_result() -> None:
    root = task(
        30,
        "research → email: laptops",
        status=TaskStatus.COMPLETED,
        agent="plan",
        cost_cents=500,
        result=research_result(),
    )
    children = [
        task(31, "Research laptops", parent_id=30, position=0, result=research_result()),
        task(
            32,
            "Email team",
            parent_id=30,
            position=1,
            agent="email",
            status=TaskStatus.FAILED,
            error="SMTP said no",
        ),
    ]
    msg = render_task_detail(root, children, NOW)
    assert_valid(msg)
    out = all_text(msg)
    assert "#30" in out and "`#31`" in out and "`#32`" in out
    assert "SMTP said no" in out
    assert "Battery life" in out
    assert format_money(500, "USD") in out
    assert "laptops.md" in out


def test_task_detail_200_steps_and_injection() -> None:
    big = AgentResult(summary=EVIL, body=(EVIL + "\n") * 2000, data={"sources": [EVIL] * 50})
    root = task(40, EVIL, status=TaskStatus.FAILED, error=EVIL * 3, result=big)
    children = [
        task(
            100 + i,
            f"Step {i} {EVIL}",
            parent_id=40,
            position=i,
            result=AgentResult(summary=EVIL * 10),
            error=EVIL if i % 7 == 0 else None,
        )
        for i in range(200)
    ]
    msg = render_task_detail(root, children, NOW)
    assert_valid(msg)
    assert_no_raw_injection(msg)


def test_task_detail_naive_datetimes() -> None:
    t = task(50)
    naive = Task(**{**t.__dict__, "created_at": (NOW - timedelta(hours=5)).replace(tzinfo=None)})
    msg = render_task_detail(naive, [], NOW)
    assert_valid(msg)
    assert "5 h" in all_text(msg)


def test_budget() -> None:
    msg = render_budget(BudgetStatus("U0123ABCD", "2026-11", 50000, 12000, 30000, "USD"))
    assert_valid(msg)
    out = all_text(msg)
    for cents in (50000, 12000, 30000, 8000):
        assert format_money(cents, "USD") in out
    assert "2026-11" in out
    assert_valid(render_budget(BudgetStatus("U1", "2026-11", 0, 0, 0, "EUR")))
    assert_valid(render_budget(BudgetStatus("U1", "2026-11", 100, 500, 0, "JPY")))


def test_help_lists_commands() -> None:
    msg = render_help()
    assert_valid(msg)
    out = all_text(msg)
    for cmd in (
        "/tasks pending",
        "/tasks failed",
        "/tasks completed",
        "/tasks 5",
        "/tasks cancel 5",
        "/tasks budget",
        "/tasks help",
        "DM",
        "mention",
    ):
        assert cmd in out
    assert "<id>" not in out


def test_render_text() -> None:
    msg = render_text(EVIL)
    assert_valid(msg)
    assert_no_raw_injection(msg)
    assert_valid(render_text(""))
    assert_valid(render_text("y" * 100000))


def test_needs_attention_names_the_order_and_the_approvers() -> None:
    (notice,) = [n for n in every_notice() if isinstance(n, TaskNeedsAttention)]
    assert isinstance(notice, TaskNeedsAttention)
    out = all_text(render(notice))
    assert "needs attention" in out.lower() and "PO-19" in out and "<@U0APPROVER>" in out
    assert "money stays held" in out
