"""The "Full text" button on a long result opens a modal with the whole result."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.listeners.clicked import clicked
from bot.listeners.later import answer_later
from bot.views.escape import escape
from bot.views.full_text import FULL_TEXT_ACTION, full_text_modal
from core.service import TaskService

log = logging.getLogger(__name__)


def register(app: AsyncApp, service: TaskService) -> None:
    @app.action(FULL_TEXT_ACTION)
    async def on_full_text(
        ack: AsyncAck,
        body: dict[str, Any],
        action: dict[str, Any],
        client: AsyncWebClient,
        context: AsyncBoltContext,
    ) -> None:
        await ack()
        user = body["user"]["id"]
        where = clicked(body, context)
        channel, thread_ts = where.channel, where.thread_ts
        value = str(action.get("value", ""))
        task = None
        if channel and value.isdigit() and len(value) <= 9:
            task = await service.history.posted_in(int(value), channel)
        if task is None or task.result is None:
            context["outcome"] = "not_found"
            if channel:
                text = "I can't find that result any more; try `/tasks` for your requests."
                answer_later(service, client, channel, user, text, thread_ts)
            return
        text = escape(task.result.body.strip() or task.result.summary)
        try:
            await client.views_open(
                trigger_id=body["trigger_id"], view=full_text_modal(task.title, text)
            )
        except SlackApiError as exc:
            error = exc.response.get("error") if exc.response is not None else None
            log.warning("views.open for a full text failed: %s", error)
            context["outcome"] = "modal_failed"
            if channel:
                text = f"I couldn't open it in time; `/tasks {task.root_id}` shows it too."
                answer_later(service, client, channel, user, text, thread_ts)
