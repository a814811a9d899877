"""A long result's Full text button opens a modal with the whole result."""

from __future__ import annotations

from bot.views import escape
from tests.e2e.conftest import Harness
from tests.slackfake import payloads
from tests.unit.bot.test_messages import laptop_research

FULL = "result:full_text"


async def _research(h: Harness) -> dict:  # type: ignore[type-arg]
    await h.sender.event(payloads.im_message("research best laptops", user="U1", channel="D1"))
    await h.settle()
    (done,) = [c for c in h.posts() if str(c.params.get("text")).startswith("Done:")]
    return {"channel": str(done.response["channel"]), "ts": str(done.response["ts"])}


async def test_full_text_opens_a_modal_with_the_whole_result(harness: Harness) -> None:
    done = await _research(harness)
    payload = harness.slack.click(done["channel"], done["ts"], FULL, "U1")
    assert (await harness.sender.interaction(payload)).status == 200
    await harness.settle()
    (opened,) = harness.slack.calls_to("views.open")
    assert opened.ok, opened.response
    assert opened.params["trigger_id"] == payload["trigger_id"]
    (view,) = harness.slack.opened_views
    text = "\n".join(b["text"]["text"] for b in view["blocks"])
    body = (await laptop_research()).result.body  # what the agent answered, whole
    for line in filter(None, body.split("\n")):
        assert escape(line) in text, line


async def test_full_text_with_an_expired_trigger_says_where_to_find_it(harness: Harness) -> None:
    done = await _research(harness)
    payload = harness.slack.click(done["channel"], done["ts"], FULL, "U1")
    harness.slack.age_trigger(payload["trigger_id"], 5)
    assert (await harness.sender.interaction(payload)).status == 200
    await harness.settle()
    (opened,) = harness.slack.calls_to("views.open")
    assert opened.response["error"] == "expired_trigger_id"
    (answer,) = [e["text"] for e in harness.slack.ephemerals if e["user"] == "U1"]
    assert "/tasks" in answer
