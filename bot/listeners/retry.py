"""The Retry button on a failure message: only the requester may re-run their request."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bot.listeners.later import answer_later
from bot.views import escape
from bot.views.buttons import RetryButton
from core.service import TaskService


def register(app: AsyncApp, service: TaskService) -> None:
    @app.action(RetryButton.action_id)
    async def on_retry(
        ack: AsyncAck,
        body: dict[str, Any],
        action: dict[str, Any],
        client: AsyncWebClient,
        context: AsyncBoltContext,
    ) -> None:
        user = body["user"]["id"]
        channel = context.channel_id
        button = RetryButton.unpack(str(action.get("value", "")))
        # core checks the requester (from the signed payload's user, never the button)
        outcome = await service.retry(user, button.task_id) if button is not None else None
        await ack()
        if outcome is not None and outcome.retried:
            return  # the thread hears about it from the TaskRetried notice
        if channel:
            text = outcome.message if outcome is not None else "That button is not valid any more."
            if outcome is not None and outcome.reason == "not_found":
                text = "Only the person who asked for this task can retry it."
            thread_ts = context.thread_ts or (body.get("message") or {}).get("ts")
            answer_later(service, client, channel, user, escape(text), thread_ts)
