"""Where a button was clicked, read once for every click listener."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from slack_bolt.context.async_context import AsyncBoltContext


@dataclass(frozen=True)
class Clicked:
    #: the conversation holding the message (Bolt's context has it)
    channel: str | None
    #: the clicked message itself
    message_ts: str | None
    #: where answers go: the message's thread, else the message
    thread_ts: str | None


def clicked(body: dict[str, Any], context: AsyncBoltContext) -> Clicked:
    container = body.get("container") or {}
    message = body.get("message") or {}
    message_ts = container.get("message_ts") or message.get("ts")
    channel = context.channel_id or container.get("channel_id")
    return Clicked(channel, message_ts, message.get("thread_ts") or message_ts)
