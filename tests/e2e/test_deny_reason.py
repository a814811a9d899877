"""Deny…: the modal opens with the click's trigger_id, the reason reaches the
requester's thread and the audit, an empty or too long reason is refused in the
modal, and a click whose trigger expired gets a clear answer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.conftest import Harness
from tests.e2e.test_approval_buttons import (  # noqa: F401  (fixtures)
    DENY,
    app,
    approval_copies,
    apps,
    ask_in_dm,
    click,
    copy_in,
    deny,
    ephemerals_to,
    has_buttons,
    purchase_orders,
    thread_texts,
)
from tests.slackfake.server import FakeSlack


async def test_deny_opens_a_modal_and_the_reason_reaches_the_requester(
    apps: list[Harness],  # noqa: F811
    tmp_path: Path,
    fake_slack: FakeSlack,
) -> None:
    h = await app(apps, tmp_path, fake_slack, TASKBOT_APPROVERS="UA1")
    thread = await ask_in_dm(h, "buy 2 monitors for the new hires, need them by Friday for $300")
    message = copy_in(fake_slack, fake_slack.dm_channel_for("UA1"))
    assert "for 2 × monitors" in message["text"]  # the reason is not in the item
    assert await deny(h, message, "UA1", "We have spares in the store room") == 200
    (opened,) = fake_slack.calls_to("views.open")
    assert opened.ok and opened.params["trigger_id"]
    after = copy_in(fake_slack, fake_slack.dm_channel_for("UA1"))
    record = json.dumps(after["blocks"], ensure_ascii=False)
    assert not has_buttons(after)
    assert "Denied by <@UA1>" in record and "We have spares in the store room" in record
    assert "need them by Friday" in record  # the details stay
    told = thread_texts(fake_slack, fake_slack.dm_channel_for("U1"), thread)
    assert "We have spares in the store room" in told
    assert purchase_orders(fake_slack) == []


@pytest.mark.parametrize(
    ("reason", "error"),
    [("   ", "Please say why"), ("x" * 501, "500 characters")],
    ids=["empty", "too-long"],
)
async def test_a_bad_reason_is_refused_in_the_modal(
    apps: list[Harness],  # noqa: F811
    tmp_path: Path,
    fake_slack: FakeSlack,
    reason: str,
    error: str,
) -> None:
    h = await app(apps, tmp_path, fake_slack, TASKBOT_APPROVERS="UA1")
    await ask_in_dm(h)
    message = copy_in(fake_slack, fake_slack.dm_channel_for("UA1"))
    assert await click(h, message, DENY, "UA1") == 200
    view = fake_slack.opened_views[-1]
    response = await h.sender.interaction(
        fake_slack.submit_view(view, {"reason": {"reason_input": reason}})
    )
    assert response.status == 200
    body = response.json()
    assert body["response_action"] == "errors" and error in body["errors"]["reason"]
    await h.settle()
    assert has_buttons(copy_in(fake_slack, fake_slack.dm_channel_for("UA1")))  # still open


async def test_an_expired_trigger_gets_a_clear_answer(
    apps: list[Harness],  # noqa: F811
    tmp_path: Path,
    fake_slack: FakeSlack,
) -> None:
    h = await app(apps, tmp_path, fake_slack, TASKBOT_APPROVERS="UA1")
    await ask_in_dm(h)
    message = copy_in(fake_slack, fake_slack.dm_channel_for("UA1"))
    payload = fake_slack.click(message["channel"], message["ts"], DENY, "UA1")
    fake_slack.age_trigger(payload["trigger_id"], 10)
    assert (await h.sender.interaction(payload)).status == 200
    await h.settle()
    (opened,) = fake_slack.calls_to("views.open")
    assert not opened.ok and opened.response["error"] == "expired_trigger_id"
    (answer,) = ephemerals_to(fake_slack, "UA1")
    assert "Deny… again" in answer
    assert has_buttons(copy_in(fake_slack, fake_slack.dm_channel_for("UA1")))


async def test_someone_who_may_not_decide_gets_no_modal(
    apps: list[Harness],  # noqa: F811
    tmp_path: Path,
    fake_slack: FakeSlack,
) -> None:
    fake_slack.add_channel("CAPPROVALS", {"UA1", "UX9"})
    h = await app(
        apps, tmp_path, fake_slack, TASKBOT_APPROVERS="UA1", TASKBOT_APPROVAL_CHANNEL="CAPPROVALS"
    )
    await ask_in_dm(h)
    (message,) = approval_copies(fake_slack)
    assert await click(h, message, DENY, "UX9") == 200
    assert fake_slack.calls_to("views.open") == []
    (answer,) = ephemerals_to(fake_slack, "UX9")
    assert "can't approve this request" in answer
    assert has_buttons(approval_copies(fake_slack)[0])
