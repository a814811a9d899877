"""Tests of the Slack test doubles themselves: the fake Web API, signing and payloads."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import jsonschema
import pytest
from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from tests.slackfake import payloads
from tests.slackfake.server import (
    OK,
    ApiError,
    ClickRefused,
    Delay,
    Fail,
    FakeSlack,
    Hold,
    RateLimited,
    validate_blocks,
)
from tests.slackfake.signing import SignedSender, sign, signature

TOKEN = "xoxb-test-token"
# slack_sdk warns client-side when blocks are sent without `text`; some tests do it on purpose.
NO_TEXT_WARNING = "ignore:The top-level `text` argument is missing:UserWarning"
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


def section(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}, **extra}


def button(text: str, action_id: str = "approve", value: str = "1") -> dict[str, Any]:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "action_id": action_id,
        "value": value,
    }


def client_for(slack: FakeSlack, token: str | None = TOKEN) -> AsyncWebClient:
    return AsyncWebClient(token=token, base_url=slack.base_url)


def spec_required(method: str) -> list[str]:
    spec = json.loads(
        (payloads.reference_dir() / "specs/slack_web_openapi_v2.json").read_text("utf-8")
    )
    for operation in spec["paths"][f"/{method}"].values():
        required = operation["responses"]["200"]["schema"].get("required", [])
        assert isinstance(required, list)
        return [str(r) for r in required]
    raise AssertionError(method)


# --------------------------------------------------------------------------
# Web API basics
# --------------------------------------------------------------------------


async def test_auth_is_required(fake_slack: FakeSlack) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(fake_slack.base_url + "auth.test") as resp:
            assert resp.status == 200
            assert await resp.json() == {"ok": False, "error": "not_authed"}
        headers = {"Authorization": "Bearer xoxp-user-token"}
        async with http.post(fake_slack.base_url + "auth.test", headers=headers) as resp:
            assert await resp.json() == {"ok": False, "error": "invalid_auth"}

    with pytest.raises(SlackApiError) as missing:
        await client_for(fake_slack, token=None).auth_test()
    assert missing.value.response["error"] == "not_authed"

    result = await client_for(fake_slack).auth_test()
    assert set(spec_required("auth.test")) <= set(result.data)
    assert result["user_id"] == fake_slack.bot_user_id == "UBOT0001"
    assert result["bot_id"] == fake_slack.bot_id == "BBOT0001"
    assert result["team_id"] == fake_slack.team_id == "T0001"
    assert result["is_enterprise_install"] is False
    calls = fake_slack.calls_to("auth.test")
    assert calls[-1].headers["Authorization"] == f"Bearer {TOKEN}"


async def test_unknown_method(fake_slack: FakeSlack) -> None:
    with pytest.raises(SlackApiError) as err:
        await client_for(fake_slack).api_call("chat.scheduleMessage", json={"channel": "C1"})
    assert err.value.response["error"] == "unknown_method"


async def test_post_message_returns_unique_increasing_ts(fake_slack: FakeSlack) -> None:
    client = client_for(fake_slack)
    first = await client.chat_postMessage(channel="C1", text="hello")
    second = await client.chat_postMessage(channel="C1", text="again", thread_ts=first["ts"])
    for result in (first, second):
        assert set(spec_required("chat.postMessage")) <= set(result.data)
        assert result["channel"] == "C1"
        message = result["message"]
        assert message["bot_id"] == fake_slack.bot_id
        assert message["user"] == fake_slack.bot_user_id
        assert message["ts"] == result["ts"]
    assert first["ts"] == "1700000000.000100"
    assert float(second["ts"]) > float(first["ts"])
    assert second["message"]["thread_ts"] == first["ts"]
    assert [m["text"] for m in fake_slack.messages_in("C1")] == ["hello", "again"]
    assert fake_slack.messages_in("C1", thread_ts=first["ts"])[0]["text"] == "again"
    call = fake_slack.calls_to("chat.postMessage")[0]
    assert call.params["channel"] == "C1" and call.params["text"] == "hello"
    assert call.headers["Content-Type"].startswith("application/json")


async def test_form_body_with_json_string_blocks_is_decoded(fake_slack: FakeSlack) -> None:
    blocks = [section("*hi*")]
    form = {"channel": "C1", "text": "hi", "blocks": json.dumps(blocks)}
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(fake_slack.base_url + "chat.postMessage", data=form, headers=headers) as resp,
    ):
        body = await resp.json()
    assert body["ok"] is True
    assert fake_slack.calls_to("chat.postMessage")[0].params["blocks"] == blocks
    assert body["message"]["blocks"] == blocks


@pytest.mark.filterwarnings(NO_TEXT_WARNING)
async def test_post_message_errors(fake_slack: FakeSlack) -> None:
    client = client_for(fake_slack)
    with pytest.raises(SlackApiError) as no_text:
        await client.chat_postMessage(channel="C1")
    assert no_text.value.response["error"] == "no_text"
    fake_slack.unknown_channels.add("CGONE")
    with pytest.raises(SlackApiError) as gone:
        await client.chat_postMessage(channel="CGONE", text="x")
    assert gone.value.response["error"] == "channel_not_found"


async def test_post_message_to_user_id_lands_in_dm(fake_slack: FakeSlack) -> None:
    client = client_for(fake_slack)
    opened = await client.conversations_open(users="U77")
    assert set(spec_required("conversations.open")) <= set(opened.data)
    dm = opened["channel"]["id"]
    assert dm.startswith("D") and dm == fake_slack.dm_channel_for("U77")
    again = await client.conversations_open(users="U77")
    assert again["channel"]["id"] == dm and again["already_open"] is True
    posted = await client.chat_postMessage(channel="U77", text="hi")
    assert posted["channel"] == dm


async def test_update_ephemeral_permalink_users_views(fake_slack: FakeSlack) -> None:
    client = client_for(fake_slack)
    fake_slack.add_channel("C1", {"U1"})
    posted = await client.chat_postMessage(channel="C1", text="before")
    with pytest.raises(SlackApiError) as missing:
        await client.chat_update(channel="C1", ts="1.000001", text="x")
    assert missing.value.response["error"] == "message_not_found"

    updated = await client.chat_update(
        channel="C1", ts=posted["ts"], text="after", blocks=[section("after")]
    )
    assert set(spec_required("chat.update")) <= set(updated.data)
    assert updated["ts"] == posted["ts"] and updated["text"] == "after"
    assert fake_slack.messages[("C1", posted["ts"])]["blocks"] == [section("after")]

    eph = await client.chat_postEphemeral(channel="C1", user="U1", text="only you")
    assert set(spec_required("chat.postEphemeral")) <= set(eph.data)
    assert fake_slack.ephemerals[0]["user"] == "U1"

    with pytest.raises(SlackApiError) as outsider:
        await client.chat_postEphemeral(channel="C1", user="U2", text="not in C1")
    assert outsider.value.response["error"] == "user_not_in_channel"

    link = await client.chat_getPermalink(channel="C1", message_ts=posted["ts"])
    assert set(spec_required("chat.getPermalink")) <= set(link.data)
    with pytest.raises(SlackApiError) as nowhere:
        await client.chat_getPermalink(channel="C1", message_ts="1.000001")
    assert nowhere.value.response["error"] == "message_not_found"
    assert link["permalink"] == (
        f"https://fake.slack.test/archives/C1/p{posted['ts'].replace('.', '')}"
    )

    fake_slack.add_user("U1", real_name="Ada Lovelace", tz="Europe/London")
    info = await client.users_info(user="U1")
    assert info["user"]["id"] == "U1" and info["user"]["real_name"] == "Ada Lovelace"
    assert info["user"]["tz"] == "Europe/London"
    assert {"name", "profile", "tz_offset"} <= set(info["user"])

    view = {"type": "home", "blocks": [section("Your tasks")]}
    published = await client.views_publish(user_id="U1", view=view)
    assert published["view"]["type"] == "home" and published["view"]["blocks"] == view["blocks"]
    assert fake_slack.home_views["U1"]["id"] == published["view"]["id"]


# --------------------------------------------------------------------------
# Block Kit validation
# --------------------------------------------------------------------------


INVALID_PAYLOADS: dict[str, tuple[list[dict[str, Any]], str]] = {
    "section text over 3000": ([section("x" * 3001)], "3000"),
    "button text over 75": ([section("ok", accessory=button("b" * 76))], "75"),
    "51 blocks": ([section(f"{i}") for i in range(51)], "no more than 50"),
    "unknown block type": ([{"type": "sectionz", "text": "x"}], "unsupported type"),
    "unknown element type": (
        [{"type": "actions", "elements": [{"type": "buttonz", "text": "x"}]}],
        "unsupported type",
    ),
    "action_id over 255": ([section("ok", accessory=button("ok", action_id="a" * 256))], "255"),
    "button value over 2000": ([section("ok", accessory=button("ok", value="v" * 2001))], "2000"),
    "empty section text": ([section("")], "more than 0"),
    "image without alt_text": ([{"type": "image", "image_url": "https://x.test/a.png"}], "alt"),
    "duplicate block_id": ([section("a", block_id="b"), section("c", block_id="b")], "duplicate"),
    "mrkdwn button text": (
        [
            {
                "type": "actions",
                "elements": [{**button("ok"), "text": {"type": "mrkdwn", "text": "*ok*"}}],
            }
        ],
        "plain_text",
    ),
}


@pytest.mark.parametrize("name", sorted(INVALID_PAYLOADS))
async def test_invalid_blocks_are_rejected_and_recorded(fake_slack: FakeSlack, name: str) -> None:
    blocks, expected = INVALID_PAYLOADS[name]
    with pytest.raises(SlackApiError) as err:
        await client_for(fake_slack).chat_postMessage(channel="C1", text="fallback", blocks=blocks)
    response = err.value.response
    assert response["error"] == "invalid_blocks"
    assert response["response_metadata"]["messages"][0].startswith("[ERROR] ")
    errors = fake_slack.take_errors()
    assert errors and all(e.startswith("chat.postMessage: ") for e in errors)
    assert any(expected in e for e in errors), errors
    assert fake_slack.messages == {}


@pytest.mark.filterwarnings(NO_TEXT_WARNING)
async def test_blocks_without_text_fallback_are_rejected(fake_slack: FakeSlack) -> None:
    with pytest.raises(SlackApiError) as err:
        await client_for(fake_slack).chat_postMessage(channel="C1", blocks=[section("hi")])
    assert err.value.response["error"] == "invalid_blocks"
    assert any("fallback" in e for e in fake_slack.take_errors())


async def test_invalid_blocks_in_update_ephemeral_and_views(fake_slack: FakeSlack) -> None:
    client = client_for(fake_slack)
    fake_slack.add_channel("C1", {"U1"})
    posted = await client.chat_postMessage(channel="C1", text="ok")
    too_long = [section("x" * 3001)]
    with pytest.raises(SlackApiError):
        await client.chat_update(channel="C1", ts=posted["ts"], text="t", blocks=too_long)
    with pytest.raises(SlackApiError):
        await client.chat_postEphemeral(channel="C1", user="U1", text="t", blocks=too_long)
    home = {"type": "home", "blocks": [section(f"{i}") for i in range(101)]}
    with pytest.raises(SlackApiError) as view_err:
        await client.views_publish(user_id="U1", view=home)
    assert view_err.value.response["error"] == "invalid_blocks"
    # 100 blocks are fine in a view.
    home["blocks"] = home["blocks"][:100]
    await client.views_publish(user_id="U1", view=home)
    methods = {e.split(":")[0] for e in fake_slack.take_errors()}
    assert methods == {"chat.update", "chat.postEphemeral", "views.publish"}


def test_validate_blocks_accepts_slack_samples() -> None:
    sample = payloads.load_sample("interactive_block_actions_button_in_message.json")
    assert validate_blocks(sample["message"]["blocks"]) == []
    changed = payloads.load_sample("event_message_subtype_message_changed.json")
    assert validate_blocks(changed["event"]["message"]["blocks"]) == []
    assert validate_blocks([section("x" * 3000, accessory=button("b" * 75))]) == []
    assert validate_blocks([section(str(i)) for i in range(50)]) == []


async def test_response_url_posts_are_recorded_and_validated(fake_slack: FakeSlack) -> None:
    url = fake_slack.response_url("cmd")
    assert url.startswith("http://127.0.0.1:") and url.endswith("/response/cmd")
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json={"text": "done", "replace_original": True}) as resp:
            assert resp.status == 200
        async with http.post(url, json={"text": "bad", "blocks": [section("x" * 3001)]}) as resp:
            assert resp.status == 400
            assert (await resp.json())["error"] == "invalid_blocks"
    calls = await fake_slack.wait_for("response_url:cmd", count=2)
    assert calls[0].params == {"text": "done", "replace_original": True}
    assert [e.split(":", 2)[:2] for e in fake_slack.take_errors()] == [["response_url", "cmd"]]


# --------------------------------------------------------------------------
# Scripts and waiting
# --------------------------------------------------------------------------


async def test_script_statuses_and_retry_after(fake_slack: FakeSlack) -> None:
    fake_slack.script("chat.postMessage", [Fail(500), Fail(503), RateLimited(retry_after=7), OK()])
    headers = {"Authorization": f"Bearer {TOKEN}"}
    seen: list[tuple[int, str | None, dict[str, Any]]] = []
    async with aiohttp.ClientSession() as http:
        for _ in range(5):
            async with http.post(
                fake_slack.base_url + "chat.postMessage",
                json={"channel": "C1", "text": "hi"},
                headers=headers,
            ) as resp:
                seen.append((resp.status, resp.headers.get("Retry-After"), await resp.json()))
    statuses = [s for s, _, _ in seen]
    assert statuses == [500, 503, 429, 200, 200]
    assert seen[2][1] == "7"
    assert seen[2][2] == {"ok": False, "error": "ratelimited"}
    assert seen[0][2]["ok"] is False
    assert seen[3][2]["ok"] is True and seen[4][2]["ok"] is True
    assert [c.status for c in fake_slack.calls_to("chat.postMessage")] == statuses
    assert fake_slack.pending_script("chat.postMessage") == []


async def test_script_with_slack_sdk_client(fake_slack: FakeSlack) -> None:
    fake_slack.script("chat.postMessage", [RateLimited(retry_after=1), ApiError("not_in_channel")])
    plain = client_for(fake_slack)
    with pytest.raises(SlackApiError) as limited:
        await plain.chat_postMessage(channel="C1", text="x")
    assert limited.value.response.status_code == 429
    assert limited.value.response.headers["retry-after"] == "1"
    with pytest.raises(SlackApiError) as api_error:
        await plain.chat_postMessage(channel="C1", text="x")
    assert api_error.value.response.status_code == 200
    assert api_error.value.response["error"] == "not_in_channel"

    fake_slack.script("chat.postMessage", [RateLimited(retry_after=1)])
    retrying = client_for(fake_slack)
    retrying.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=1))
    started = time.monotonic()
    result = await retrying.chat_postMessage(channel="C1", text="x")
    assert result["ok"] is True
    assert time.monotonic() - started >= 1.0  # Retry-After honoured


async def test_wait_for_and_timeout_dump(fake_slack: FakeSlack) -> None:
    client = client_for(fake_slack)
    fake_slack.script("chat.postMessage", [Delay(0.2)])

    async def post_later() -> None:
        await asyncio.sleep(0.05)
        await client.chat_postMessage(channel="C1", text="one")
        await client.chat_postMessage(channel="C2", text="two")

    task = asyncio.create_task(post_later())
    calls = await fake_slack.wait_for(
        "chat.postMessage", count=1, timeout=5, where=lambda c: c.params["channel"] == "C2"
    )
    await task
    assert [c.params["text"] for c in calls] == ["two"]
    assert calls[0].ok

    with pytest.raises(AssertionError) as err:
        await fake_slack.wait_for("chat.update", timeout=0.2)
    message = str(err.value)
    assert "chat.update" in message and "2 call(s) received" in message
    assert "'one'" in message or '"one"' in message


# --------------------------------------------------------------------------
# Signing
# --------------------------------------------------------------------------


def test_sign_matches_slack_sdk_verifier() -> None:
    body = b'{"type":"event_callback","event":{"type":"app_mention"}}'
    headers = sign(SECRET, body)
    verifier = SignatureVerifier(SECRET)
    assert verifier.is_valid_request(body, headers)
    assert (
        verifier.generate_signature(timestamp=headers["X-Slack-Request-Timestamp"], body=body)
        == headers["X-Slack-Signature"]
    )
    assert not verifier.is_valid_request(body + b" ", headers)
    assert not SignatureVerifier("other-secret").is_valid_request(body, headers)
    stale = sign(SECRET, body, timestamp=int(time.time()) - 600)
    assert not verifier.is_valid_request(body, stale)
    # Slack's documented example (api.slack.com "Verifying requests from Slack").
    example_body = (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
        b"channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&"
        b"command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2F"
        b"commands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
        b"trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    assert (
        signature("8f742231b10e8888abcd99yyyzzz85a5", example_body, 1531420618)
        == "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    )


@pytest.fixture
async def echo_server() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A loopback endpoint that verifies Slack signatures with slack_sdk and records requests."""
    received: list[dict[str, Any]] = []
    verifier = SignatureVerifier(SECRET)

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        valid = verifier.is_valid_request(body, dict(request.headers))
        received.append({"body": body, "headers": dict(request.headers), "valid": valid})
        return web.Response(status=200 if valid else 401, text="ok" if valid else "invalid")

    app = web.Application()
    app.router.add_post("/slack/events", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}", received
    await runner.cleanup()


async def test_signed_sender_kinds(echo_server: tuple[str, list[dict[str, Any]]]) -> None:
    url, received = echo_server
    async with SignedSender(url, SECRET) as sender:
        envelope = payloads.im_message("hello")
        assert (await sender.event(envelope)).status == 200
        retried = await sender.event(envelope, retry_num=1)
        assert retried.status == 200 and retried.text == "ok"
        form = payloads.slash_command("pending")
        assert (await sender.command(form)).status == 200
        action = payloads.block_action("approve", "42")
        assert (await sender.interaction(action)).status == 200
        assert (await sender.event(envelope, bad_signature=True)).status == 401
        assert (await sender.event(envelope, stale=True)).status == 401

    assert [r["valid"] for r in received] == [True, True, True, True, False, False]
    event, retry, command, interaction = received[:4]
    assert event["headers"]["Content-Type"] == "application/json"
    assert json.loads(event["body"]) == envelope
    assert "X-Slack-Retry-Num" not in event["headers"]
    assert retry["headers"]["X-Slack-Retry-Num"] == "1"
    assert retry["headers"]["X-Slack-Retry-Reason"] == "http_timeout"
    assert command["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert dict(parse_qsl(command["body"].decode())) == form
    fields = dict(parse_qsl(interaction["body"].decode()))
    assert set(fields) == {"payload"} and json.loads(fields["payload"]) == action
    stale_ts = int(received[5]["headers"]["X-Slack-Request-Timestamp"])
    assert time.time() - stale_ts >= 590

    # Without a context manager: one session per request.
    sender = SignedSender(url + "/slack/events", SECRET)
    assert (await sender.url_verification("abc")).status == 200


def test_signed_sender_only_talks_to_loopback() -> None:
    with pytest.raises(ValueError):
        SignedSender("https://example.com/slack/events", SECRET)
    assert SignedSender("http://localhost:3000", SECRET).url == "http://localhost:3000/slack/events"
    assert SignedSender("http://[::1]:3000/x", SECRET).url == "http://[::1]:3000/x"


# --------------------------------------------------------------------------
# Payload builders
# --------------------------------------------------------------------------


def _wrapper_validator() -> jsonschema.Draft7Validator:
    schema = json.loads(
        (payloads.reference_dir() / "specs/slack_common_event_wrapper_schema.json").read_text(
            "utf-8"
        )
    )
    # authed_users is deprecated in favour of authorizations; current envelopes
    # (and most bolt-python samples) carry authorizations instead.
    schema["required"] = [r for r in schema["required"] if r != "authed_users"]
    return jsonschema.Draft7Validator(schema)


ENVELOPE_CASES: dict[str, tuple[str, Any]] = {
    "im top level": ("event_message_im_top_level.json", lambda: payloads.im_message("hi")),
    "im thread": (
        "event_message_im_thread_reply.json",
        lambda: payloads.im_message("hi", thread_ts="1700000000.000100"),
    ),
    "app_mention": ("event_app_mention.json", lambda: payloads.app_mention("hi", "U1", "C1")),
    "self modern": (
        "event_message_from_other_app_bot_id.json",
        lambda: payloads.bot_message_self("BBOT0001"),
    ),
    "self classic": (
        "event_message_subtype_bot_message_self.json",
        lambda: payloads.bot_message_self("BBOT0001", classic=True),
    ),
    "other modern": ("event_message_from_other_app_bot_id.json", payloads.bot_message_other),
    "other classic": (
        "event_message_subtype_bot_message_classic.json",
        lambda: payloads.bot_message_other(classic=True),
    ),
    "changed": ("event_message_subtype_message_changed.json", payloads.message_changed),
    "deleted": ("event_message_subtype_message_deleted.json", payloads.message_deleted),
}


@pytest.mark.parametrize("name", sorted(ENVELOPE_CASES))
def test_envelopes_keep_the_real_sample_shape(name: str) -> None:
    sample_name, build = ENVELOPE_CASES[name]
    sample = payloads.load_sample(sample_name)
    first, second = build(), build()
    for envelope in (first, second):
        assert _wrapper_validator().iter_errors(envelope) is not None
        assert list(_wrapper_validator().iter_errors(envelope)) == []
        assert envelope["type"] == "event_callback"
        assert set(envelope) == set(sample) - {"enterprise_id"}
        assert set(sample["event"]) <= set(envelope["event"])
        assert envelope["team_id"] == "T0001" and envelope["api_app_id"] == "A0001"
        if "authorizations" in sample:
            (auth,) = envelope["authorizations"]
            assert set(auth) == set(sample["authorizations"][0])
            assert auth["team_id"] == "T0001" and auth["user_id"] == "UBOT0001"
    assert first["event_id"] != second["event_id"]
    assert first["event_id"].startswith("Ev")
    assert first["event"]["event_ts"] != second["event"]["event_ts"]


def test_im_message_and_mention_values() -> None:
    top = payloads.im_message("buy a laptop", user="U9", channel="D9", event_id="EvFIXED")
    event = top["event"]
    assert event["text"] == "buy a laptop" and event["user"] == "U9"
    assert event["channel"] == "D9" and event["channel_type"] == "im"
    assert event["ts"] == event["event_ts"] and top["event_id"] == "EvFIXED"
    assert "thread_ts" not in event
    assert top["event_time"] == int(float(event["ts"]))

    reply = payloads.im_message("and a mouse", thread_ts="1700000000.000100")
    assert reply["event"]["thread_ts"] == "1700000000.000100"
    assert reply["event"]["parent_user_id"] == "U1"

    mention = payloads.app_mention("status?", "U2", "C5", "1700000001.000200")
    assert mention["event"]["text"] == "<@UBOT0001> status?"
    assert mention["event"]["ts"] == "1700000001.000200"
    assert payloads.app_mention("<@UBOT0001> hi")["event"]["text"] == "<@UBOT0001> hi"

    ts = [payloads.new_ts() for _ in range(100)]
    assert ts == sorted(ts, key=float) and len(set(ts)) == 100


def test_block_action_keeps_real_structure() -> None:
    sample = payloads.load_sample("interactive_block_actions_button_in_message.json")
    payload = payloads.block_action(
        "approve",
        "task:42",
        user="U5",
        channel="C7",
        message_ts="1700000000.000100",
        response_url="http://127.0.0.1:1234/response/click",
    )
    assert set(payload) == set(sample)
    assert payload["type"] == "block_actions"
    assert payload["user"]["id"] == "U5"
    assert payload["container"] == {
        "type": "message",
        "message_ts": "1700000000.000100",
        "channel_id": "C7",
        "is_ephemeral": False,
    }
    assert payload["channel"] == {"id": "C7"}
    assert payload["message"]["ts"] == "1700000000.000100"
    assert payload["message"]["bot_id"] == "BBOT0001"
    (action,) = payload["actions"]
    assert set(action) == set(sample["actions"][0])
    assert action["action_id"] == "approve" and action["value"] == "task:42"
    assert action["block_id"] == "b1" and action["type"] == "button"
    assert payload["response_url"] == "http://127.0.0.1:1234/response/click"
    assert payload["trigger_id"] != payloads.block_action("approve", "1")["trigger_id"]
    assert validate_blocks(payload["message"]["blocks"]) == []

    ephemeral = payloads.block_action("approve", "1", is_ephemeral=True)
    assert ephemeral["container"]["is_ephemeral"] is True and "message" not in ephemeral


def test_slash_command_form() -> None:
    sample = payloads.load_form_sample("slash_command_form_body.txt")
    form = payloads.slash_command("pending", user="U3", channel="D3", response_url="http://x")
    assert form["command"] == "/tasks" and form["text"] == "pending"
    assert form["user_id"] == "U3" and form["channel_id"] == "D3"
    assert form["channel_name"] == "directmessage"
    assert form["team_id"] == "T0001" and form["api_app_id"] == "A0001"
    assert form["response_url"] == "http://x"
    assert set(sample) - {"enterprise_id", "enterprise_name"} <= set(form)
    assert all(isinstance(v, str) for v in form.values())


def test_reference_dir_override(monkeypatch: pytest.MonkeyPatch) -> None:
    default = payloads.reference_dir()
    assert (default / "samples/bolt-python-extracted/event_app_mention.json").is_file()
    monkeypatch.setenv("TASKBOT_SLACK_REFERENCE", "/nonexistent/ref")
    assert str(payloads.reference_dir()) == "/nonexistent/ref"


# --------------------------------------------------------------------------
# The whole toolchain with a real Bolt app
# --------------------------------------------------------------------------


async def test_bolt_app_round_trip(fake_slack: FakeSlack) -> None:
    app = AsyncApp(
        client=AsyncWebClient(token=TOKEN, base_url=fake_slack.base_url),
        signing_secret=SECRET,
    )

    @app.event("message")
    async def on_message(event: dict[str, Any], say: Any) -> None:
        await say(text=f"got: {event['text']}", thread_ts=event["ts"])

    @app.command("/tasks")
    async def on_tasks(ack: Any, respond: Any, command: dict[str, Any]) -> None:
        await ack()
        await respond(text=f"tasks {command['text']}")

    @app.action("approve")
    async def on_approve(ack: Any, respond: Any, body: dict[str, Any]) -> None:
        await ack()
        await respond(
            text="approved",
            blocks=[section(f"approved by <@{body['user']['id']}>")],
            replace_original=True,
        )

    runner = web.AppRunner(app.web_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        async with SignedSender(url, SECRET) as sender:
            envelope = payloads.im_message("hello", user="U1", channel="D1")
            assert (await sender.event(envelope)).status == 200
            (reply,) = await fake_slack.wait_for("chat.postMessage")
            assert reply.params["channel"] == "D1"
            assert reply.params["thread_ts"] == envelope["event"]["ts"]

            # Our own message coming back is dropped by Bolt (auth.test's bot_id matches).
            assert (await sender.event(payloads.bot_message_self(fake_slack.bot_id))).status == 200
            assert (await sender.event(payloads.bot_message_self(classic=True))).status == 200

            cmd = payloads.slash_command("pending", response_url=fake_slack.response_url("cmd"))
            assert (await sender.command(cmd)).status == 200
            (cmd_reply,) = await fake_slack.wait_for("response_url:cmd")
            assert cmd_reply.params["text"] == "tasks pending"

            click = payloads.block_action(
                "approve",
                "1",
                message_ts=reply.response["ts"],
                channel="D1",
                response_url=fake_slack.response_url("click"),
            )
            assert (await sender.interaction(click)).status == 200
            (click_reply,) = await fake_slack.wait_for("response_url:click")
            assert click_reply.params["replace_original"] is True

            assert (await sender.event(envelope, bad_signature=True)).status == 401
        await asyncio.sleep(0.2)
        assert len(fake_slack.calls_to("chat.postMessage")) == 1
    finally:
        await runner.cleanup()


# --------------------------------------------------------------------------
# Who can see what
# --------------------------------------------------------------------------


async def test_a_dm_is_its_user_and_the_bot(fake_slack: FakeSlack) -> None:
    client = client_for(fake_slack)
    opened = await client.conversations_open(users="UA")
    dm = opened["channel"]["id"]
    posted = await client.chat_postMessage(channel="UA", text="for UA only")
    assert posted["channel"] == dm
    assert fake_slack.members_of(dm) == {"UA", fake_slack.bot_user_id}
    assert [m["text"] for m in fake_slack.visible_to("UA")] == ["for UA only"]
    assert fake_slack.visible_to("UB") == []
    assert [m["channel"] for m in fake_slack.unseen("UB")] == [dm]
    # an id used in payloads (D1) is the DM of U1
    assert fake_slack.can_see("U1", "D1") and not fake_slack.can_see("U2", "D1")


async def test_the_bot_posts_only_where_it_is_a_member(fake_slack: FakeSlack) -> None:
    client = client_for(fake_slack)
    fake_slack.add_channel("CPRIV", {"U1"}, bot=False)
    with pytest.raises(SlackApiError) as refused:
        await client.chat_postMessage(channel="CPRIV", text="x")
    assert refused.value.response["error"] == "not_in_channel"


async def test_a_click_comes_only_from_someone_who_sees_the_message(
    fake_slack: FakeSlack,
) -> None:
    client = client_for(fake_slack)
    fake_slack.add_channel("C9", {"UA"})
    blocks = [
        {
            "type": "actions",
            "block_id": "approval:7",
            "elements": [button("Approve", action_id="approval:approve", value="7")],
        }
    ]
    posted = await client.chat_postMessage(channel="C9", text="approve?", blocks=blocks)
    payload = fake_slack.click("C9", posted["ts"], "approval:approve", "UA")
    assert payload["actions"][0]["value"] == "7"
    assert payload["actions"][0]["block_id"] == "approval:7"
    assert payload["container"]["message_ts"] == posted["ts"]
    assert payload["user"]["team_id"] == payload["team"]["id"]
    with pytest.raises(ClickRefused):
        fake_slack.click("C9", posted["ts"], "approval:approve", "UB")  # not in C9
    with pytest.raises(ClickRefused):
        fake_slack.click("C9", "1.000001", "approval:approve", "UA")  # no such message
    with pytest.raises(ClickRefused):
        fake_slack.click("C9", posted["ts"], "approval:deny", "UA")  # no such button
    external = fake_slack.click("C9", posted["ts"], "approval:approve", "UA", user_team="TOTHER")
    assert external["user"]["team_id"] == "TOTHER"


async def test_hold_keeps_a_call_until_released(fake_slack: FakeSlack) -> None:
    client = client_for(fake_slack)
    release = asyncio.Event()
    hold = Hold(release)
    fake_slack.script("chat.postMessage", [hold])
    call = asyncio.ensure_future(client.chat_postMessage(channel="C1", text="slow"))
    await asyncio.wait_for(hold.arrived.wait(), 10)
    assert not call.done() and not fake_slack.calls_to("chat.postMessage")[0].done
    release.set()
    assert (await call)["ok"]
