"""The Cancel button on a request's status message: the requester's alone."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.views import escape
from bot.views.status import CANCEL_ACTION
from core.service import TaskService


def register(app: AsyncApp, service: TaskService) -> None:
    @app.action(CANCEL_ACTION)
    async def on_cancel(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient
    ) -> None:
        await ack()
        user = body["user"]["id"]
        container = body.get("container") or {}
        message = body.get("message") or {}
        channel = container.get("channel_id") or (body.get("channel") or {}).get("id")
        value = str(action.get("value", ""))
        if not value.isdigit():
            text = "That button is not valid any more."
        else:
            outcome = await service.cancel(user, int(value))
            # the status message itself shows the cancellation; say nothing more then
            text = "" if outcome.cancelled else escape(outcome.message)
            if outcome.not_yours:
                text = "Only the person who asked can cancel this request."
        if text and channel:
            await client.chat_postEphemeral(
                channel=channel,
                user=user,
                text=text,
                thread_ts=message.get("thread_ts") or container.get("message_ts"),
            )
