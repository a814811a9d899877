"""The Cancel button on a request's status message: the requester's alone."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bot.views import escape
from bot.views.buttons import CancelButton
from core.service import TaskService


def register(app: AsyncApp, service: TaskService) -> None:
    @app.action(CancelButton.action_id)
    async def on_cancel(
        ack: AsyncAck,
        body: dict[str, Any],
        action: dict[str, Any],
        client: AsyncWebClient,
        context: AsyncBoltContext,
    ) -> None:
        await ack()
        user = body["user"]["id"]
        channel = context.channel_id
        button = CancelButton.unpack(str(action.get("value", "")))
        if button is None:
            text = "That button is not valid any more."
        else:
            outcome = await service.cancel(user, button.task_id)
            # the status message itself shows the cancellation; say nothing more then
            text = "" if outcome.cancelled else escape(outcome.message)
            if outcome.not_yours:
                text = "Only the person who asked can cancel this request."
        if text and channel:
            await client.chat_postEphemeral(
                channel=channel,
                user=user,
                text=text,
                thread_ts=context.thread_ts or (body.get("container") or {}).get("message_ts"),
            )
