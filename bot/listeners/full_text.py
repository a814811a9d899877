"""The "Full text" button on a long result opens a modal with the whole result."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.listeners.clicked import Click, on_click
from bot.views.buttons import FullTextButton
from bot.views.escape import escape
from bot.views.full_text import full_text_modal
from core.service import TaskService


def register(app: AsyncApp, service: TaskService) -> None:
    @on_click(app, service, FullTextButton)
    async def on_full_text(click: Click, button: FullTextButton) -> str | None:
        task = None
        if click.channel:
            task = await service.history.posted_in(button.task_id, click.channel)
        if task is None or task.result is None:
            click.outcome("not_found")
            return "I can't find that result any more; try `/tasks` for your requests."
        text = escape(task.result.body.strip() or task.result.summary)
        if not await click.open_modal(full_text_modal(task.title, text), "a full text"):
            return f"I couldn't open it in time; `/tasks {task.root_id}` shows it too."
        return None
