"""/tasks: a person's own history, ephemeral, filtered, paginated, private."""

from __future__ import annotations

import json
from typing import Any

from tests.e2e.conftest import Harness
from tests.slackfake import payloads


async def ask(h: Harness, text: str, user: str = "U1") -> None:
    await h.sender.event(payloads.im_message(text, user=user, channel=f"D{user}"))
    await h.settle()


async def tasks(h: Harness, text: str = "", user: str = "U1") -> dict[str, Any]:
    response = await h.sender.command(
        payloads.slash_command(
            text, user=user, channel="C1", response_url=h.slack.response_url(f"tasks-{user}")
        )
    )
    assert response.status == 200
    body = response.json()
    assert isinstance(body, dict)
    return body


def dumped(body: dict[str, Any]) -> str:
    return json.dumps(body, ensure_ascii=False)


async def test_history_is_ephemeral_with_status_cost_and_age(harness: Harness) -> None:
    await ask(harness, "research best laptops")
    await ask(harness, "buy 2 monitors for $300")
    body = await tasks(harness)
    assert body["response_type"] == "ephemeral"
    text = dumped(body)
    assert "#1" in text and "#2" in text
    assert "✅" in text and "⏳" in text
    assert "$300.00" in text
    assert "Laptop research" in text


async def test_filters_detail_cancel_budget_and_help(harness: Harness) -> None:
    await ask(harness, "research best laptops")
    await ask(harness, "buy 2 monitors for $300")
    pending = dumped(await tasks(harness, "pending"))
    assert "#2" in pending and "#1" not in pending
    completed = dumped(await tasks(harness, "completed"))
    assert "#1" in completed and "#2" not in completed
    detail = dumped(await tasks(harness, "1"))
    assert "laptops.md" in detail
    budget = dumped(await tasks(harness, "budget"))
    assert "$300.00" in budget and "$200.00" in budget  # held, and left of $500
    cancelled = dumped(await tasks(harness, "cancel 2"))
    assert "Cancelled request 2" in cancelled
    await harness.settle()
    budget = dumped(await tasks(harness, "budget"))
    assert "$500.00" in budget  # the hold was released
    update = harness.slack.calls_to("chat.update")
    assert update and not any(b["type"] == "actions" for b in update[-1].params["blocks"])
    assert "/tasks cancel" in dumped(await tasks(harness, "help"))
    unknown = dumped(await tasks(harness, "frobnicate"))
    assert "/tasks help" in unknown


async def test_other_peoples_tasks_are_never_shown(harness: Harness) -> None:
    await ask(harness, "research best laptops", user="U1")
    await ask(harness, "research office chairs", user="U2")
    mine = dumped(await tasks(harness, user="U2"))
    assert "Office chair research" in mine and "aptop" not in mine
    assert "can't find request 1" in dumped(await tasks(harness, "1", user="U2"))
    assert "can't find request 1" in dumped(await tasks(harness, "cancel 1", user="U2"))


async def test_long_history_paginates_with_a_next_button(harness: Harness) -> None:
    for n in range(12):
        await ask(harness, f"research keyboards number {n}")
    first = await tasks(harness)
    buttons = [e for b in first["blocks"] if b["type"] == "actions" for e in b["elements"]]
    next_button = next(e for e in buttons if e["action_id"] == "tasks:page")
    assert "`#12`" in dumped(first) and "`#2`" not in dumped(first)
    payload = payloads.block_action(
        "tasks:page",
        next_button["value"],
        user="U1",
        channel="C1",
        is_ephemeral=True,
        response_url=harness.slack.response_url("page"),
    )
    assert (await harness.sender.interaction(payload)).status == 200
    (call,) = await harness.slack.wait_for("response_url:page")
    assert call.params["replace_original"] is True
    page_two = dumped(call.params)
    assert "`#1`" in page_two and "`#2`" in page_two
    assert "`#12`" not in page_two


async def choose(h: Harness, value: str, user: str = "U1") -> dict[str, Any]:
    """Pick an entry of a row's overflow menu in the (ephemeral) /tasks answer."""
    payload = payloads.block_action(
        "tasks:row",
        "",
        user=user,
        channel="C1",
        is_ephemeral=True,
        response_url=h.slack.response_url(f"row-{user}"),
    )
    payload["actions"][0] = {
        "type": "overflow",
        "action_id": "tasks:row",
        "block_id": "row",
        "selected_option": {"text": {"type": "plain_text", "text": value}, "value": value},
        "action_ts": payloads.new_ts(),
    }
    response = await h.sender.interaction(payload)
    assert response.status == 200
    await h.settle()
    (answer,) = h.slack.calls_to(f"response_url:row-{user}")[-1:]
    return answer.params


async def test_row_menu_views_cancels_and_links_to_the_thread(harness: Harness) -> None:
    await ask(harness, "buy 2 monitors for $300")
    body = await tasks(harness)
    (row,) = [b for b in body["blocks"] if "accessory" in b]
    values = [o["value"] for o in row["accessory"]["options"]]
    assert values == ["view:1", "cancel:1", "thread:1"]

    view = await choose(harness, "view:1")
    assert "Request 1 is waiting" in view["text"] and view.get("replace_original") is False
    thread = await choose(harness, "thread:1")
    assert "https://fake.slack.test/archives/DU1/p" in dumped(thread)
    assert "can't find" in (await choose(harness, "view:1", user="U2"))["text"]
    assert "can't find" in (await choose(harness, "cancel:1", user="U2"))["text"]
    cancelled = await choose(harness, "cancel:1")
    assert "Cancelled" in cancelled["text"]
    assert "not valid" in (await choose(harness, "drop:1"))["text"]
