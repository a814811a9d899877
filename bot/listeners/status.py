"""The Cancel button on a request's status message: the requester's alone."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.listeners.clicked import Click, on_click
from bot.views import escape
from bot.views.buttons import CancelButton
from core.service import TaskService


def register(app: AsyncApp, service: TaskService) -> None:
    @on_click(app, service, CancelButton)
    async def on_cancel(click: Click, button: CancelButton) -> str | None:
        outcome = await service.cancel(click.user, button.task_id)
        if outcome.not_yours:
            return "Only the person who asked can cancel this request."
        # the status message itself shows the cancellation; say nothing more then
        return None if outcome.cancelled else escape(outcome.message)
