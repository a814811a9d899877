"""Messages people want to read: short results, each finding once, one word per
outcome, no internal ids, help that works, user text that cannot reorder ours."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from bot.views import render, render_help
from bot.views.history import HELP_COMMANDS, HELP_REQUESTS
from core.agents.base import AgentContext
from core.agents.research import ResearchAgent
from core.intents import IntentParser
from core.notices import (
    Destination,
    Notice,
    RequestRefused,
    RequestStatus,
    StepState,
    TaskCancelled,
    TaskFailed,
    TaskFinished,
    TaskRejected,
)
from core.planner import plan
from core.tasks_command import parse_tasks_command
from storage.knowledge_index import KnowledgeIndex
from tests.unit.bot.test_views import assert_valid, every_notice

DEST = Destination(channel="D0123ABCD", thread_ts="1732449600.000100")
#: the agents' internal names, which no one reading a message should meet
AGENT_IDS = ("communication", "_purchase_", "_compare_", "Agent:", "_research_", "_request_")
_RAW_USER_ID = re.compile(r"(?<!<@)\b[UW][A-Z0-9]{8,}\b")
BIDI = "\u202e\u2066\u200f\u200e\u202a\u2069\u061c"


def visible(msg: dict[str, Any]) -> str:
    """What Slack draws: every text of every block, mrkdwn markers and entities aside."""
    texts: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") in ("mrkdwn", "plain_text") and "text" in node:
                texts.append(str(node["text"]))
            for key, value in node.items():
                if key != "confirm":
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(msg["blocks"])
    out = "\n".join(texts)
    out = re.sub(r"<@[UW][A-Z0-9]+>", "@someone", out)
    out = out.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return re.sub(r"[*_`]", "", out)


async def laptop_research() -> TaskFinished:
    """The research agent's real answer about laptops, from the bundled knowledge."""
    agent = ResearchAgent(KnowledgeIndex())
    ctx = AgentContext(
        task_id=3,
        title="Research: best laptops",
        params={"topic": "best laptops"},
        requester="U0ALICE01",
        currency="USD",
    )
    result = await agent.run(ctx)
    return TaskFinished(
        DEST, 3, agent="research", title="Research: best laptops", result=result, request_id=3
    )


async def test_a_research_result_is_short_and_says_each_finding_once() -> None:
    notice = await laptop_research()
    msg = render(notice)
    assert_valid(msg)
    shown = visible(msg)
    assert len(shown) <= 600, (len(shown), shown)
    print(f"\nresearch result: {len(shown)} visible characters\n{shown}")
    # the agent's body has each finding once; the summary repeats them: shown once
    for name in ("MacBook Air", "Dell Latitude", "ThinkPad"):
        if name in notice.result.body:
            assert shown.count(name) == 1, (name, shown)
    assert "laptops.md" in json.dumps(msg["blocks"][-2:])  # sources in a context line
    assert "Request 3 · full text: `/tasks 3`" in json.dumps(msg["blocks"][-1], ensure_ascii=False)
    assert msg["text"].startswith("Done: Research: best laptops")
    assert "/tasks 3" in msg["text"]  # where the full text is


async def test_findings_lead_with_name_and_price() -> None:
    msg = render(await laptop_research())
    findings = next(b for b in msg["blocks"] if "•" in b.get("text", {}).get("text", ""))
    first = findings["text"]["text"].split("\n")[0]
    assert re.match(r"^• \*[^*]+\* · \$[\d,]+", first), first


def test_an_email_draft_is_shown_once_with_to_and_subject_as_fields() -> None:
    body = "Hello,\n\nHere is what I found.\n\nBest regards,"
    draft = f"To: john@example.com\nSubject: Findings: Best laptops\n\n{body}"
    from core.agents.base import AgentResult

    result = AgentResult(
        summary="Drafted an email to john@example.com",
        body=draft,
        data={
            "email": {
                "to": ["john@example.com"],
                "subject": "Findings: Best laptops",
                "body": body,
            }
        },
    )
    msg = render(
        TaskFinished(
            DEST,
            4,
            agent="communication",
            title="Email draft",
            result=result,
            requester="U0ALICE01",
        )
    )
    assert_valid(msg)
    shown = visible(msg)
    assert shown.count("Here is what I found") == 1
    assert shown.count("john@example.com") == 1
    assert shown.count("Findings: Best laptops") == 1
    fields = [f["text"] for b in msg["blocks"] for f in b.get("fields", [])]
    assert fields == ["*To*\njohn@example.com", "*Subject*\nFindings: Best laptops"]
    quote = next(b for b in msg["blocks"] if "Best regards" in b.get("text", {}).get("text", ""))
    assert quote["text"]["text"].endswith("> Best regards,\n> <@U0ALICE01>")  # signed


def outcome_notices() -> list[Notice]:
    return [
        TaskFailed(DEST, 7, title="Research: chairs", error="the index is gone"),
        TaskRejected(DEST, 8, title="Buy 2 × monitors", decided_by="U0APPROVER"),
        TaskCancelled(DEST, 9, title="Buy 2 × monitors", reason="Cancelled by U0123ABCD."),
        TaskCancelled(
            DEST, 9, title="Buy 2 × monitors", reason="No decision within 7 days; it expired."
        ),
    ]


@pytest.mark.parametrize(
    ("index", "word"), [(0, "Failed"), (1, "Denied"), (2, "Cancelled"), (3, "Expired")]
)
def test_each_outcome_has_its_own_word_beside_its_emoji(index: int, word: str) -> None:
    msg = render(outcome_notices()[index])
    assert_valid(msg)
    head = msg["blocks"][0]["text"]["text"]
    assert re.match(rf"^\S+ {word}: ", head), head
    others = {"Failed", "Denied", "Cancelled", "Expired"} - {word}
    assert not any(o in msg["text"] for o in others)
    assert word in msg["text"].split(":")[0]


def test_a_policy_refusal_is_not_a_failure_and_says_what_to_do() -> None:
    reason = (
        "I can't ask for $5,000.00: you have $579.00 of $1,000.00 left this month. "
        "Ask for less, or ask an approver to raise your limit."
    )
    msg = render(RequestRefused(DEST, None, requester="U0ALICE01", reason=reason))
    assert_valid(msg)
    assert "Failed" not in json.dumps(msg) and "failed" not in json.dumps(msg)
    assert "$579.00 of $1,000.00" in msg["text"]
    assert "U0ALICE01" not in json.dumps(msg)  # her own thread: no mention of her


@pytest.mark.parametrize("notice", [*every_notice(), *outcome_notices()], ids=lambda n: n.kind)
def test_no_agent_ids_or_raw_user_ids_in_any_text(notice: Notice) -> None:
    msg = render(notice)
    if notice.kind in ("request_accepted", "request_finished", "approval_asked"):
        pytest.skip("folded into the status message: never posted to Slack")
    shown = json.dumps(msg, ensure_ascii=False)
    for word in AGENT_IDS:
        assert word not in shown, word
    assert not _RAW_USER_ID.search(shown.replace("<@", "<@")), _RAW_USER_ID.findall(shown)
    assert "task #" not in shown.lower()


@pytest.mark.parametrize("example", HELP_REQUESTS)
def test_every_request_in_help_is_understood(example: str) -> None:
    assert f"• {example}" in visible(render_help())
    parsed = IntentParser(default_currency="USD").parse(example)
    assert plan(parsed, "USD").steps


@pytest.mark.parametrize("command", [c for cs, _ in HELP_COMMANDS for c in cs])
def test_every_command_in_help_is_accepted(command: str) -> None:
    assert f"`{command}`" in json.dumps(render_help(), ensure_ascii=False)
    parsed = parse_tasks_command(command.removeprefix("/tasks"))
    assert parsed.action != "invalid", parsed.error


def _alices_request(
    title: str, status: str, *steps: StepState, amount_cents: int = 0
) -> RequestStatus:
    """The status message of U0ALICE01's request 5."""
    return RequestStatus(
        DEST,
        5,
        requester="U0ALICE01",
        title=title,
        status=status,
        steps=steps,
        amount_cents=amount_cents,
    )


def test_bidi_and_control_characters_are_neutralised() -> None:
    title = f"{BIDI}buy *2* monitors\u202e for me\u0007"
    for notice in (
        TaskFailed(DEST, 7, title=title, error=f"broke {BIDI}"),
        _alices_request(
            title,
            "IN_PROGRESS",
            StepState(title, "IN_PROGRESS"),
            StepState("Email draft", "PENDING"),
        ),
    ):
        msg = render(notice)
        assert_valid(msg)
        out = json.dumps(msg, ensure_ascii=False)
        assert not any(ch in out for ch in BIDI + "\u0007"), notice.kind
        # the user's stars stay stars: the title is plain text, where mrkdwn is not parsed
        head = next(b for b in msg["blocks"] if "monitors" in b.get("text", {}).get("text", ""))
        assert head["text"]["type"] == "plain_text"


def test_the_status_message_states_each_step_with_a_word() -> None:
    msg = render(
        _alices_request(
            "research laptops and draft an email to john@example.com",
            "IN_PROGRESS",
            StepState("Research: laptops", "COMPLETED"),
            StepState("Email draft to john@example.com", "IN_PROGRESS"),
        )
    )
    assert_valid(msg)
    shown = visible(msg)
    assert "✅ Research: laptops (done) · 🔄 Email draft to john@example.com (running)" in shown
    assert "Request 5 · /tasks 5" in shown
    assert [
        e["action_id"] for b in msg["blocks"] if b["type"] == "actions" for e in b["elements"]
    ] == ["status:cancel"]
    assert msg["text"].startswith("Working on it: research laptops")


def test_a_waiting_status_says_for_whom_without_pinging_them() -> None:
    msg = render(
        _alices_request(
            "buy 2 monitors for $300",
            "WAITING",
            StepState("Buy 2 × monitors", "WAITING", ("U0APPROVER",)),
            amount_cents=30000,
        )
    )
    assert_valid(msg)
    assert msg["text"] == (
        "Waiting for approval: buy 2 monitors for $300 ($300.00). "
        "I'll update this message when it's decided."
    )
    # the requester's thread says who was asked (the approval itself went to them)
    assert "waits for approval from <@U0APPROVER>" in json.dumps(msg)


def test_a_finished_status_keeps_no_cancel_button() -> None:
    for status in ("COMPLETED", "FAILED", "CANCELLED", "REJECTED"):
        msg = render(
            RequestStatus(DEST, 5, title="x", status=status, steps=(StepState("x", status),))
        )
        assert_valid(msg)
        assert not [b for b in msg["blocks"] if b["type"] == "actions"]
