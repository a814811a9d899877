"""Slack payload builders that start from Slack's real sample payloads.

Every builder loads a sample from ``tests/fixtures/slack/samples/
bolt-python-extracted/`` (or ``$TASKBOT_SLACK_REFERENCE``), keeps its
structure and keys, and fills in our values.  Event ids, message
timestamps and trigger ids are unique per call.

Defaults match ``FakeSlack``: team ``T0001``, app ``A0001``, bot user
``UBOT0001``, bot id ``BBOT0001``.  The workspace is not an Enterprise Grid
org, so the samples' ``enterprise_id`` is dropped unless one is given.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from tests.slackfake.server import (
    DEFAULT_APP_ID,
    DEFAULT_BOT_ID,
    DEFAULT_BOT_USER_ID,
    DEFAULT_TEAM_ID,
)

TEAM_ID = DEFAULT_TEAM_ID
API_APP_ID = DEFAULT_APP_ID
BOT_USER_ID = DEFAULT_BOT_USER_ID
BOT_ID = DEFAULT_BOT_ID

# A loopback URL nothing listens on: a response_url nobody configured can
# never reach real Slack.  Pass ``FakeSlack.response_url(name)`` instead.
UNSET_RESPONSE_URL = "http://127.0.0.1:9/response/unset"

SAMPLES = "samples/bolt-python-extracted"


# --------------------------------------------------------------------------
# Reference files
# --------------------------------------------------------------------------


def reference_dir() -> Path:
    """``tests/fixtures/slack`` (override with ``$TASKBOT_SLACK_REFERENCE``)."""
    override = os.environ.get("TASKBOT_SLACK_REFERENCE")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[1] / "fixtures" / "slack"


@cache
def _read_sample(name: str) -> str:
    return (reference_dir() / SAMPLES / name).read_text(encoding="utf-8")


def load_sample(name: str) -> dict[str, Any]:
    """A fresh copy of a JSON sample from ``samples/bolt-python-extracted``."""
    data = json.loads(_read_sample(name))
    if not isinstance(data, dict):
        raise TypeError(f"sample {name} is not a JSON object")
    return data


def load_form_sample(name: str) -> dict[str, str]:
    """A form-encoded sample (``slash_command_form_body.txt``) as an ordered dict."""
    return dict(parse_qsl(_read_sample(name).strip(), keep_blank_values=True))


# --------------------------------------------------------------------------
# Unique ids
# --------------------------------------------------------------------------

_RUN = secrets.token_hex(2).upper()  # distinct across test runs sharing a database
_counter = itertools.count(1)
_lock = threading.Lock()
_last_ts_us = 0


def new_event_id() -> str:
    """A unique ``event_id`` (Slack's look: ``Ev`` + uppercase alphanumerics)."""
    return f"Ev{_RUN}{next(_counter):08d}"


def new_ts() -> str:
    """A unique, increasing message ts close to now (``"1700000000.000100"`` style)."""
    global _last_ts_us
    with _lock:
        now = time.time_ns() // 1000
        _last_ts_us = max(now, _last_ts_us + 1)
        value = _last_ts_us
    return f"{value // 1_000_000}.{value % 1_000_000:06d}"


def new_trigger_id() -> str:
    return f"{next(_counter)}.{int(time.time())}.{secrets.token_hex(16)}"


def channel_type(channel: str) -> str:
    """``channel_type`` Slack reports for a conversation id."""
    if channel.startswith("D"):
        return "im"
    if channel.startswith("G"):
        return "group"
    return "channel"


# --------------------------------------------------------------------------
# Envelope
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Workspace:
    """Where an event is delivered: the workspace, our app and its bot user, and an
    Enterprise Grid org (None: a plain workspace, the samples' org dropped)."""

    team: str = TEAM_ID
    api_app_id: str = API_APP_ID
    bot_user_id: str = BOT_USER_ID
    enterprise_id: str | None = None


WORKSPACE = Workspace()


def _fill_envelope(
    envelope: dict[str, Any],
    event: dict[str, Any],
    ts: str,
    event_id: str | None,
    workspace: Workspace,
) -> dict[str, Any]:
    team, enterprise_id = workspace.team, workspace.enterprise_id
    envelope["team_id"] = team
    envelope["api_app_id"] = workspace.api_app_id
    envelope["event"] = event
    envelope["event_id"] = event_id or new_event_id()
    envelope["event_time"] = int(float(ts))
    if enterprise_id is None:
        envelope.pop("enterprise_id", None)
    else:
        envelope["enterprise_id"] = enterprise_id
    if "authorizations" in envelope:
        envelope["authorizations"] = [
            {
                "enterprise_id": enterprise_id,
                "team_id": team,
                "user_id": workspace.bot_user_id,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ]
    if "authed_users" in envelope:
        envelope["authed_users"] = [workspace.bot_user_id]
    if "event_context" in envelope:
        envelope["event_context"] = f"1-{event.get('type', 'message')}-{team}-{event['channel']}"
    return envelope


def envelope_for(
    event: dict[str, Any],
    *,
    sample: str = "event_message_im_top_level.json",
    event_id: str | None = None,
    workspace: Workspace = WORKSPACE,
) -> dict[str, Any]:
    """Wrap any inner ``event`` in the ``event_callback`` envelope of ``sample``."""
    ts = event.get("event_ts") or event.get("ts") or new_ts()
    return _fill_envelope(load_sample(sample), event, ts, event_id, workspace)


# --------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------


def im_message(
    text: str,
    user: str = "U1",
    channel: str = "D1",
    ts: str | None = None,
    thread_ts: str | None = None,
    event_id: str | None = None,
    *,
    parent_user_id: str | None = None,
    workspace: Workspace = WORKSPACE,
) -> dict[str, Any]:
    """A ``message.im`` delivery: a person's DM to the bot (top level or in a thread).

    From ``event_message_im_top_level.json`` / ``event_message_im_thread_reply.json``.
    """
    ts = ts or new_ts()
    sample = (
        "event_message_im_thread_reply.json" if thread_ts else "event_message_im_top_level.json"
    )
    envelope = load_sample(sample)
    event = envelope["event"]
    event.update(user=user, ts=ts, text=text, channel=channel, event_ts=ts)
    event["channel_type"] = channel_type(channel)
    if thread_ts:
        team = workspace.team
        event.update(
            team=team,
            user_team=team,
            source_team=team,
            thread_ts=thread_ts,
            parent_user_id=parent_user_id or user,
        )
    return _fill_envelope(envelope, event, ts, event_id, workspace)


def app_mention(
    text: str,
    user: str = "U1",
    channel: str = "C1",
    ts: str | None = None,
    thread_ts: str | None = None,
    event_id: str | None = None,
    *,
    workspace: Workspace = WORKSPACE,
    mention: bool = True,
) -> dict[str, Any]:
    """An ``app_mention`` delivery (``event_app_mention.json``).

    Slack's text contains the mention; with ``mention=True`` (default)
    ``"<@BOT_USER_ID> "`` is prepended unless ``text`` already mentions the bot.
    """
    ts = ts or new_ts()
    tag = f"<@{workspace.bot_user_id}>"
    if mention and tag not in text:
        text = f"{tag} {text}"
    envelope = load_sample("event_app_mention.json")
    event = envelope["event"]
    event.update(
        client_msg_id=str(uuid.uuid4()),
        text=text,
        user=user,
        ts=ts,
        team=workspace.team,
        channel=channel,
        event_ts=ts,
    )
    if thread_ts:
        event["thread_ts"] = thread_ts
    return _fill_envelope(envelope, event, ts, event_id, workspace)


@dataclass(frozen=True)
class _BotMessage:
    """A ``message`` event posted by an app (ours or another one)."""

    bot_id: str
    bot_user_id: str
    text: str
    channel: str
    ts: str
    classic_sample: str
    classic: bool

    def event(self, envelope: dict[str, Any], team: str) -> dict[str, Any]:
        """Modern: no subtype, ``bot_id``/``bot_profile`` and ``user`` (the app's bot
        user). Classic: ``subtype: bot_message`` without ``user``."""
        event: dict[str, Any] = envelope["event"]
        event.update(bot_id=self.bot_id, text=self.text, ts=self.ts)
        event.update(channel=self.channel, event_ts=self.ts)
        if not self.classic:
            event.update(user=self.bot_user_id, team=team)
            event["bot_profile"].update(id=self.bot_id, team_id=team)
        event["channel_type"] = channel_type(self.channel)
        return event

    def sample(self) -> dict[str, Any]:
        modern = "event_message_from_other_app_bot_id.json"
        return load_sample(self.classic_sample if self.classic else modern)


def bot_message_self(
    bot_id: str = BOT_ID,
    *,
    text: str = "A reply from taskbot",
    channel: str = "D1",
    ts: str | None = None,
    thread_ts: str | None = None,
    event_id: str | None = None,
    workspace: Workspace = WORKSPACE,
    classic: bool = False,
) -> dict[str, Any]:
    """The bot's own message coming back as a ``message`` event (must be ignored).

    Modern (default): the shape of ``event_message_from_other_app_bot_id.json`` with
    our bot user.  ``classic``: ``event_message_subtype_bot_message_self.json``
    (how response_url posts come back).
    """
    ts = ts or new_ts()
    message = _BotMessage(
        bot_id,
        workspace.bot_user_id,
        text,
        channel,
        ts,
        "event_message_subtype_bot_message_self.json",
        classic,
    )
    envelope = message.sample()
    event = message.event(envelope, workspace.team)
    if not classic:
        event["bot_profile"].update(name="taskbot", app_id=workspace.api_app_id)
    if thread_ts:
        event["thread_ts"] = thread_ts
    return _fill_envelope(envelope, event, ts, event_id, workspace)


def bot_message_other(
    bot_id: str = "B999",
    *,
    bot_user_id: str = "UB111",
    text: str = "Hi there! Thanks for sharing the info!",
    channel: str = "C1",
    ts: str | None = None,
    event_id: str | None = None,
    workspace: Workspace = WORKSPACE,
    classic: bool = False,
) -> dict[str, Any]:
    """A message from another app (its own ``bot_id`` and bot user): modern
    (``event_message_from_other_app_bot_id.json``) or legacy ``subtype: bot_message``
    (``event_message_subtype_bot_message_classic.json``).
    """
    ts = ts or new_ts()
    message = _BotMessage(
        bot_id,
        bot_user_id,
        text,
        channel,
        ts,
        "event_message_subtype_bot_message_classic.json",
        classic,
    )
    envelope = message.sample()
    return _fill_envelope(
        envelope, message.event(envelope, workspace.team), ts, event_id, workspace
    )


def _rich_text_blocks(blocks: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    blocks = copy.deepcopy(blocks)
    for block in blocks:
        for section in block.get("elements", []):
            for element in section.get("elements", []):
                if element.get("type") == "text":
                    element["text"] = text
    return blocks


def message_changed(
    text: str = "updated message",
    *,
    previous_text: str = "original message",
    user: str = "U1",
    channel: str = "D1",
    message_ts: str | None = None,
    ts: str | None = None,
    event_id: str | None = None,
    workspace: Workspace = WORKSPACE,
) -> dict[str, Any]:
    """``subtype: message_changed`` (``event_message_subtype_message_changed.json``)."""
    ts = ts or new_ts()
    message_ts = message_ts or new_ts()
    team = workspace.team
    envelope = load_sample("event_message_subtype_message_changed.json")
    event = envelope["event"]
    message = event["message"]
    message.update(text=text, user=user, team=team, ts=message_ts)
    message["edited"] = {"user": user, "ts": ts}
    message["blocks"] = _rich_text_blocks(message["blocks"], text)
    previous = event["previous_message"]
    previous.update(text=previous_text, user=user, team=team, ts=message_ts)
    previous["blocks"] = _rich_text_blocks(previous["blocks"], previous_text)
    event.update(channel=channel, ts=ts, event_ts=ts, channel_type=channel_type(channel))
    return _fill_envelope(envelope, event, ts, event_id, workspace)


def message_deleted(
    *,
    previous_text: str = "Delete this message",
    user: str = "U1",
    channel: str = "D1",
    deleted_ts: str | None = None,
    ts: str | None = None,
    event_id: str | None = None,
    workspace: Workspace = WORKSPACE,
) -> dict[str, Any]:
    """``subtype: message_deleted`` (``event_message_subtype_message_deleted.json``)."""
    ts = ts or new_ts()
    deleted_ts = deleted_ts or new_ts()
    envelope = load_sample("event_message_subtype_message_deleted.json")
    event = envelope["event"]
    previous = event["previous_message"]
    previous.update(text=previous_text, user=user, team=workspace.team, ts=deleted_ts)
    event.update(
        channel=channel,
        deleted_ts=deleted_ts,
        ts=ts,
        event_ts=ts,
        channel_type=channel_type(channel),
    )
    return _fill_envelope(envelope, event, ts, event_id, workspace)


def url_verification(challenge: str | None = None) -> dict[str, Any]:
    """The request-URL handshake (``url_verification.json``)."""
    body = load_sample("url_verification.json")
    if challenge is not None:
        body["challenge"] = challenge
    return body


# --------------------------------------------------------------------------
# Interactivity and slash commands
# --------------------------------------------------------------------------


def block_action(
    action_id: str,
    value: str,
    user: str = "U1",
    channel: str = "C1",
    message_ts: str | None = None,
    block_id: str = "b1",
    response_url: str = UNSET_RESPONSE_URL,
    *,
    is_ephemeral: bool = False,
    button_text: str = "Click Me",
    message_text: str = "This is a section block with a button.",
    message_blocks: list[dict[str, Any]] | None = None,
    thread_ts: str | None = None,
    user_name: str | None = None,
    team: str = TEAM_ID,
    api_app_id: str = API_APP_ID,
    bot_id: str = BOT_ID,
    bot_user_id: str = BOT_USER_ID,
    trigger_id: str | None = None,
) -> dict[str, Any]:
    """A ``block_actions`` payload: a button click in a bot message.

    From ``interactive_block_actions_button_in_message.json``.  ``message_blocks``
    replaces the clicked message's blocks (default: the sample's section with a
    button, carrying this action).  Ephemeral messages have no ``message`` key.
    Send with ``SignedSender.interaction(payload)``.
    """
    message_ts = message_ts or new_ts()
    payload = load_sample("interactive_block_actions_button_in_message.json")
    name = user_name or f"user{user.lower()}"
    payload["user"] = {"id": user, "username": name, "name": name, "team_id": team}
    payload["api_app_id"] = api_app_id
    payload["container"].update(
        message_ts=message_ts, channel_id=channel, is_ephemeral=is_ephemeral
    )
    payload["trigger_id"] = trigger_id or new_trigger_id()
    payload["team"] = {"id": team}
    payload["channel"] = {"id": channel}
    payload["response_url"] = response_url

    message = payload["message"]
    if message_blocks is None:
        block = message["blocks"][0]
        block["block_id"] = block_id
        block["text"]["text"] = message_text
        block["accessory"].update(action_id=action_id, value=value)
        block["accessory"]["text"]["text"] = button_text
    else:
        message["blocks"] = copy.deepcopy(message_blocks)
    message.update(
        bot_id=bot_id,
        text=message_text,
        user=bot_user_id,
        ts=message_ts,
        app_id=api_app_id,
        team=team,
    )
    if thread_ts:
        message["thread_ts"] = thread_ts
    if is_ephemeral:
        del payload["message"]

    action = payload["actions"][0]
    action.update(action_id=action_id, block_id=block_id, value=value, action_ts=new_ts())
    action["text"]["text"] = button_text
    return payload


def view_submission(
    view: dict[str, Any],
    user: str,
    values: dict[str, dict[str, str]],
    *,
    team: str = TEAM_ID,
    api_app_id: str = API_APP_ID,
) -> dict[str, Any]:
    """A ``view_submission`` payload: ``user`` submits the opened modal ``view`` with
    plain-text inputs ``values`` (block_id -> action_id -> text). Shaped like the
    block_actions sample's user/team (Slack sends no channel or message with it)."""
    sample = load_sample("interactive_block_actions_button_in_message.json")
    name = f"user{user.lower()}"
    state = {
        block: {
            action: {"type": "plain_text_input", "value": text} for action, text in actions.items()
        }
        for block, actions in values.items()
    }
    submitted = {**copy.deepcopy(view), "state": {"values": state}}
    return {
        "type": "view_submission",
        "team": {"id": team, "domain": sample["team"].get("domain", "fake-workspace")},
        "user": {"id": user, "username": name, "name": name, "team_id": team},
        "api_app_id": api_app_id,
        "token": sample.get("token", ""),
        "trigger_id": new_trigger_id(),
        "view": submitted,
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }


def slash_command(
    text: str,
    user: str = "U1",
    channel: str = "C1",
    command: str = "/tasks",
    response_url: str = UNSET_RESPONSE_URL,
    *,
    user_name: str | None = None,
    channel_name: str | None = None,
    team: str = TEAM_ID,
    team_domain: str = "fake-workspace",
    api_app_id: str = API_APP_ID,
    trigger_id: str | None = None,
    enterprise_id: str | None = None,
    enterprise_name: str | None = None,
) -> dict[str, str]:
    """A slash-command form (``slash_command_form_body.txt``) as a dict of fields.

    Send with ``SignedSender.command(form)``, which form-encodes it.
    """
    form = load_form_sample("slash_command_form_body.txt")
    if channel_name is None:
        channel_name = "directmessage" if channel.startswith("D") else "general"
    form.update(
        team_id=team,
        team_domain=team_domain,
        channel_id=channel,
        channel_name=channel_name,
        user_id=user,
        user_name=user_name or f"user{user.lower()}",
        command=command,
        text=text,
        response_url=response_url,
        trigger_id=trigger_id or new_trigger_id(),
    )
    if enterprise_id is None:
        form.pop("enterprise_id", None)
        form.pop("enterprise_name", None)
    else:
        form["enterprise_id"] = enterprise_id
        form["enterprise_name"] = enterprise_name or "Fake Org"
    # Current Slack also sends these (docs/SLACK.md, slash commands); the older sample lacks them.
    form["api_app_id"] = api_app_id
    form["is_enterprise_install"] = "false"
    return form
