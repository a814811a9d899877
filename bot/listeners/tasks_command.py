"""/tasks: a person's own history, answered only to them."""

from __future__ import annotations

import json
import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_bolt.context.async_context import AsyncBoltContext

from bot.tasks_command import TasksCommand, parse_tasks_command
from bot.views import (
    render_budget,
    render_help,
    render_history,
    render_task_detail,
    render_text,
)
from core.service import TaskService

log = logging.getLogger(__name__)

PAGE_SIZE = 10


async def answer(service: TaskService, user: str, cmd: TasksCommand) -> dict[str, Any]:
    now = service.clock.now()
    if cmd.action == "list":
        page = await service.history.page(user, cmd.filter_name, cmd.page, PAGE_SIZE)
        return render_history(
            page.tasks,
            page=page.page + 1,
            total=page.total,
            page_size=page.page_size,
            filter_name=page.filter_name,
            now=now,
        )
    if cmd.action == "detail" and cmd.task_id is not None:
        found = await service.history.detail(user, cmd.task_id)
        if found is None:
            return render_text(f"I can't find task #{cmd.task_id} among your tasks.")
        task, children = found
        return render_task_detail(task, children, now)
    if cmd.action == "cancel" and cmd.task_id is not None:
        return render_text((await service.cancel(user, cmd.task_id)).message)
    if cmd.action == "retry" and cmd.task_id is not None:
        return render_text((await service.retry(user, cmd.task_id)).message)
    if cmd.action == "budget":
        return render_budget(await service.history.budget(user))
    if cmd.action == "help":
        return render_help()
    return render_text(cmd.error or "Try `/tasks help`.")


def register(app: AsyncApp, service: TaskService) -> None:
    @app.command("/tasks")
    async def on_tasks(ack: AsyncAck, command: dict[str, Any], context: AsyncBoltContext) -> None:
        cmd = parse_tasks_command(command.get("text") or "")
        context["outcome"] = cmd.action
        context["task_id"] = cmd.task_id
        try:
            message = await answer(service, command["user_id"], cmd)
        except Exception:
            context["outcome"] = "failed"
            log.exception("/tasks failed")
            message = render_text("Sorry, I couldn't load your tasks just now. Please try again.")
        await ack(response_type="ephemeral", **message)

    @app.action("tasks:page")
    async def on_page(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond
    ) -> None:
        # Bolt answers Slack only when this listener returns (process_before_response):
        # the page is loaded and sent after, off the request path, so a slow Web API
        # never delays the ack past Slack's 3 seconds.
        await ack()
        service.background.spawn(_turn_page(service, body, action, respond), "tasks-page")


async def _turn_page(
    service: TaskService, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond
) -> None:
    try:
        value = json.loads(action.get("value") or "{}")
        page = max(1, int(value.get("page", 1))) - 1  # buttons count pages from 1
        filter_name = value.get("filter")
        if filter_name is not None and not isinstance(filter_name, str):
            raise ValueError(filter_name)
    except (ValueError, TypeError, AttributeError):
        await respond(replace_original=False, **render_text("That button is not valid."))
        return
    cmd = TasksCommand("list", filter_name=filter_name, page=page)
    message = await answer(service, body["user"]["id"], cmd)
    await respond(replace_original=True, **message)
