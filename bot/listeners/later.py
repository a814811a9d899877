"""Private answers to clicks, sent after the ack."""

from __future__ import annotations

import logging

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from core.service import TaskService

log = logging.getLogger(__name__)


def answer_later(
    service: TaskService,
    client: AsyncWebClient,
    channel: str,
    user: str,
    text: str,
    thread_ts: str | None,
) -> None:
    """Tell `user` privately, after the ack: with process_before_response Bolt answers
    Slack only once the listener returns, so a slow Web API must not be awaited there."""

    async def send() -> None:
        try:
            await client.chat_postEphemeral(
                channel=channel, user=user, text=text, thread_ts=thread_ts
            )
        except SlackApiError as exc:
            log.warning("could not answer %s privately: %s", user, exc.response.get("error"))
        except (TimeoutError, aiohttp.ClientError) as exc:
            log.warning("could not answer %s privately: %r", user, exc)

    service.run_in_background(send(), "ephemeral-answer")
