"""The fake's conversations.history / conversations.replies and message metadata
behave as Slack's do: metadata only on include_all_metadata, history refused
without the conversation type's scope or membership, oldest/latest and cursors."""

from __future__ import annotations

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from tests.slackfake.server import FakeSlack

META = {"event_type": "taskbot_outbox", "event_payload": {"entry": 1, "kind": "x"}}


def client_for(slack: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token="xoxb-test", base_url=slack.base_url)


async def test_metadata_is_returned_only_with_include_all_metadata(fake_slack: FakeSlack) -> None:
    client = client_for(fake_slack)
    posted = await client.chat_postMessage(channel="D1", text="hi", metadata=META)

    plain = await client.conversations_history(channel="D1")
    full = await client.conversations_history(channel="D1", include_all_metadata=True)

    assert [m["ts"] for m in plain["messages"]] == [posted["ts"]]
    assert "metadata" not in plain["messages"][0]
    assert full["messages"][0]["metadata"] == META


async def test_malformed_metadata_is_refused(fake_slack: FakeSlack) -> None:
    with pytest.raises(SlackApiError) as err:
        await client_for(fake_slack).chat_postMessage(
            channel="D1", text="hi", metadata={"event_type": "x", "event_payload": "nope"}
        )
    assert err.value.response["error"] == "invalid_metadata_schema"
    assert fake_slack.messages_in("D1") == []


async def test_history_lists_top_level_newest_first_and_replies_oldest_first(
    fake_slack: FakeSlack,
) -> None:
    client = client_for(fake_slack)
    parent = (await client.chat_postMessage(channel="D1", text="parent"))["ts"]
    first = (await client.chat_postMessage(channel="D1", text="r1", thread_ts=parent))["ts"]
    second = (await client.chat_postMessage(channel="D1", text="r2", thread_ts=parent))["ts"]
    later = (await client.chat_postMessage(channel="D1", text="later"))["ts"]

    history = await client.conversations_history(channel="D1")
    replies = await client.conversations_replies(channel="D1", ts=parent)
    window = await client.conversations_replies(channel="D1", ts=parent, oldest=first)

    assert [m["ts"] for m in history["messages"]] == [later, parent]
    assert [m["ts"] for m in replies["messages"]] == [parent, first, second]
    assert [m["ts"] for m in window["messages"]] == [parent, second]


async def test_history_pages_with_a_cursor(fake_slack: FakeSlack) -> None:
    client = client_for(fake_slack)
    for n in range(5):
        await client.chat_postMessage(channel="D1", text=f"m{n}")
    page = await client.conversations_history(channel="D1", limit=2)
    seen = [m["text"] for m in page["messages"]]
    while page["has_more"]:
        cursor = page["response_metadata"]["next_cursor"]
        page = await client.conversations_history(channel="D1", limit=2, cursor=cursor)
        seen += [m["text"] for m in page["messages"]]
    assert seen == ["m4", "m3", "m2", "m1", "m0"]


@pytest.mark.parametrize(
    ("channel", "error"),
    [("C1", "missing_scope"), ("G1", "missing_scope"), ("DOTHERS", "channel_not_found")],
)
async def test_history_is_refused_where_the_bot_may_not_read(
    fake_slack: FakeSlack, channel: str, error: str
) -> None:
    fake_slack.foreign_dms.add("DOTHERS")
    with pytest.raises(SlackApiError) as err:
        await client_for(fake_slack).conversations_history(channel=channel)
    assert err.value.response["error"] == error
    if error == "missing_scope":
        assert err.value.response["needed"] in ("channels:history", "groups:history")


async def test_channel_history_with_the_scope_needs_membership() -> None:
    async with FakeSlack(scopes={"chat:write", "channels:history"}) as slack:
        client = client_for(slack)
        with pytest.raises(SlackApiError) as err:
            await client.conversations_history(channel="C1")
        assert err.value.response["error"] == "not_in_channel"
        slack.history_channels.add("C1")
        assert (await client.conversations_history(channel="C1"))["messages"] == []


async def test_dm_history_without_im_history_is_missing_scope() -> None:
    async with FakeSlack(scopes={"chat:write"}) as slack:
        with pytest.raises(SlackApiError) as err:
            await client_for(slack).conversations_replies(channel="D1", ts="1.000100")
        assert err.value.response["error"] == "missing_scope"
        assert err.value.response["needed"] == "im:history"


async def test_replies_of_an_unknown_thread_is_thread_not_found(fake_slack: FakeSlack) -> None:
    with pytest.raises(SlackApiError) as err:
        await client_for(fake_slack).conversations_replies(channel="D1", ts="1.000100")
    assert err.value.response["error"] == "thread_not_found"
