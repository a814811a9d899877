"""The Retry button on a failure message: only the requester may re-run their request."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.listeners.later import answer_later
from bot.views import escape
from bot.views.notices import RETRY_ACTION
from core.service import TaskService


def register(app: AsyncApp, service: TaskService) -> None:
    @app.action(RETRY_ACTION)
    async def on_retry(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient
    ) -> None:
        user = body["user"]["id"]
        container = body.get("container") or {}
        message = body.get("message") or {}
        channel = container.get("channel_id") or (body.get("channel") or {}).get("id")
        value = str(action.get("value", ""))
        # core checks the requester (from the signed payload's user, never the button)
        outcome = (
            await service.retry(user, int(value)) if value.isdigit() and len(value) <= 9 else None
        )
        await ack()
        if outcome is not None and outcome.retried:
            return  # the thread hears about it from the TaskRetried notice
        if channel:
            text = outcome.message if outcome is not None else "That button is not valid any more."
            if outcome is not None and outcome.reason == "not_found":
                text = "Only the person who asked for this task can retry it."
            thread_ts = message.get("thread_ts") or message.get("ts")
            answer_later(service, client, channel, user, escape(text), thread_ts)
