"""The Retry button on a failure message: the requester re-runs only the failed step;
anyone else is refused privately and nothing runs."""

from __future__ import annotations

import json

from tests.e2e.api_helpers import make_flaky
from tests.e2e.conftest import Harness
from tests.e2e.test_approval_buttons import _button
from tests.slackfake import payloads
from tests.slackfake.server import Call


def _retry_messages(h: Harness) -> list[Call]:
    return h.posts(lambda c: "task:retry" in json.dumps(c.params.get("blocks")))


async def click_retry(h: Harness, message: Call, user: str) -> int:
    button = _button(message, "task:retry")
    response = await h.sender.interaction(
        payloads.block_action(
            "task:retry",
            button["value"],
            user=user,
            channel=message.params["channel"],
            message_ts=message.response["ts"],
            block_id=button["block_id"],
            thread_ts=message.params["thread_ts"],
            message_blocks=message.params["blocks"],
        )
    )
    await h.settle()
    return response.status


async def test_retry_button_reruns_only_the_failed_step(harness: Harness) -> None:
    research = make_flaky(harness, "research", failures=0)
    email = make_flaky(harness, "communication", failures=1)
    # in a channel U1 and U2 are both in: U2 can see the Retry button, and is refused
    harness.slack.add_channel("CTEAM", {"U1", "U2"})
    envelope = payloads.app_mention(
        "<@UBOT0001> Research best laptops and draft email to john@example.com",
        user="U1",
        channel="CTEAM",
    )
    await harness.sender.event(envelope)
    await harness.settle()
    thread = envelope["event"]["ts"]
    failure = _retry_messages(harness)[-1]  # the request's final word: failed, with Retry
    assert failure.params["thread_ts"] == thread
    assert (research.runs, email.runs) == (1, 1)

    assert await click_retry(harness, failure, "U2") == 200
    (refusal,) = harness.slack.calls_to("chat.postEphemeral")
    assert refusal.params["user"] == "U2" and "Only the person" in refusal.params["text"]
    assert (research.runs, email.runs) == (1, 1)

    assert await click_retry(harness, failure, "U1") == 200
    assert (research.runs, email.runs) == (1, 2)  # research kept its result
    texts = [
        str(c.params.get("text"))
        for c in harness.posts(lambda c: c.params.get("thread_ts") == thread)
    ]
    assert any(t.startswith("Retrying:") for t in texts)
    # the final word is the deliverable ("request completed" folds into the status)
    assert texts[-1].startswith("Done: Email draft to john@example.com")
    assert len(harness.slack.calls_to("chat.postEphemeral")) == 1

    # a second click on the old message: the request is done, so nothing runs again
    assert await click_retry(harness, failure, "U1") == 200
    assert (research.runs, email.runs) == (1, 2)
    assert (
        "only a failed request" in harness.slack.calls_to("chat.postEphemeral")[-1].params["text"]
    )
