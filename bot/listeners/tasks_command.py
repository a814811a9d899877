"""/tasks: a person's own history, answered only to them."""

from __future__ import annotations

import json
import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.tasks_command import TasksCommand, parse_tasks_command
from bot.views import (
    render_budget,
    render_help,
    render_history,
    render_task_detail,
    render_text,
)
from bot.views.blocks import message, section
from bot.views.escape import link
from bot.views.history import ROW_ACTION, ROW_VERBS
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
            return render_text(f"I can't find request {cmd.task_id} among your requests.")
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


async def thread_link(
    service: TaskService, client: AsyncWebClient, user: str, task_id: int
) -> dict[str, Any]:
    """A link to the thread a request of the user's was asked in."""
    found = await service.history.detail(user, task_id)
    if found is None:
        return render_text(f"I can't find request {task_id} among your requests.")
    conversation = found[0].conversation
    if not conversation.thread_ts:
        return render_text(f"Request {task_id} has no thread.")
    try:
        response = await client.chat_getPermalink(
            channel=conversation.channel, message_ts=conversation.thread_ts
        )
    except SlackApiError as exc:
        log.info("no permalink for request %s: %s", task_id, exc.response.get("error"))
        return render_text(f"I can't link to the thread of request {task_id} just now.")
    label = f"Open the thread of request {task_id}"
    return message(label, [section(link(str(response.get("permalink") or ""), label))])


async def row_action(
    service: TaskService, client: AsyncWebClient, user: str, value: str
) -> dict[str, Any]:
    verb, _, raw = value.partition(":")
    if verb not in ROW_VERBS or not raw.isdigit():
        return render_text("That menu is not valid any more.")
    task_id = int(raw)
    if verb == "thread":
        return await thread_link(service, client, user, task_id)
    action = "detail" if verb == "view" else "cancel"
    return await answer(service, user, TasksCommand(action, task_id=task_id))


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

    @app.action(ROW_ACTION)
    async def on_row(
        ack: AsyncAck,
        body: dict[str, Any],
        action: dict[str, Any],
        respond: AsyncRespond,
        client: AsyncWebClient,
    ) -> None:
        await ack()
        value = str((action.get("selected_option") or {}).get("value") or "")
        try:
            message = await row_action(service, client, body["user"]["id"], value)
        except Exception:
            log.exception("/tasks row action failed")
            message = render_text("Sorry, that didn't work just now. Please try again.")
        await respond(replace_original=False, **message)

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
