"""DMs and @mentions become requests: persisted before the ack, worked on after."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext

from bot.slack_text import plain_text
from core.orchestrator import Request
from core.records import Conversation
from core.service import TaskService

log = logging.getLogger(__name__)


#: subtypes that are still a person writing to us (with a file, or also sent to the channel)
PERSON_SUBTYPES = frozenset({None, "file_share", "thread_broadcast"})


def _is_from_a_person(event: dict[str, Any]) -> bool:
    """Edits, deletions, joins and every bot (ours included) are not requests."""
    return (
        event.get("subtype") in PERSON_SUBTYPES
        and not event.get("bot_id")
        and not event.get("bot_profile")
        and bool(event.get("user"))
    )


def register(app: AsyncApp, service: TaskService) -> None:
    async def handle(
        event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        if not _is_from_a_person(event) or not context.channel_id:
            context["outcome"] = "ignored"
            return
        conversation = Conversation(
            requester=event["user"],
            channel=context.channel_id,
            thread_ts=context.thread_ts or event["ts"],
            team=body.get("team_id") or event.get("team"),
        )
        text = plain_text(event.get("text") or "", context.bot_user_id)
        submission = await service.submit(
            Request(text=text, conversation=conversation, event_id=body.get("event_id"))
        )
        context["outcome"] = submission.outcome.value
        if submission.root is not None:
            context["task_id"] = submission.root.id
        service.start(submission)

    @app.event("message")
    async def on_message(
        event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        if event.get("channel_type") not in (None, "im"):
            context["outcome"] = "ignored"
            return  # channels reach us as app_mention; answering both would answer twice
        await handle(event, body, context)

    @app.event("app_mention")
    async def on_mention(
        event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        await handle(event, body, context)
