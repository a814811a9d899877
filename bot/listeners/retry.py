"""The Retry button on a failure message: only the requester may re-run their request."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.listeners.clicked import Click, on_click
from bot.views import escape
from bot.views.buttons import RetryButton
from core.service import TaskService


def register(app: AsyncApp, service: TaskService) -> None:
    @on_click(app, service, RetryButton, decides_before_ack=True)
    async def on_retry(click: Click, button: RetryButton) -> str | None:
        # core checks the requester (from the signed payload's user, never the button)
        outcome = await service.retry(click.user, button.task_id)
        if outcome.retried:
            return None  # the thread hears about it from the TaskRetried notice
        if outcome.reason == "not_found":
            return "Only the person who asked for this task can retry it."
        return escape(outcome.message)
