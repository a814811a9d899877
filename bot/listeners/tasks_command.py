"""/tasks: a person's own history, answered only to them."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.views import (
    render_budget,
    render_help,
    render_history,
    render_task_detail,
    render_text,
)
from bot.views.blocks import message, section
from bot.views.buttons import PageButton, RowMenu
from bot.views.escape import link
from core.history import HistoryPage
from core.records import BudgetStatus
from core.service import TaskService
from core.tasks_command import (
    Action,
    Done,
    Help,
    Invalid,
    TaskDetail,
    TaskNotFound,
    TasksCommand,
    TasksResult,
    parse_tasks_command,
)

log = logging.getLogger(__name__)

PAGE_SIZE = 10


async def answer(service: TaskService, user: str, cmd: TasksCommand) -> dict[str, Any]:
    return render(await service.tasks(user, cmd, PAGE_SIZE), service.clock.now())


def render(result: TasksResult, now: datetime) -> dict[str, Any]:
    """Block Kit for a /tasks answer; core.tasks_command decided what it says."""
    match result:
        case HistoryPage():
            return render_history(
                result.tasks,
                page=result.page + 1,
                total=result.total,
                page_size=result.page_size,
                filter_name=result.filter_name,
                now=now,
            )
        case TaskDetail():
            return render_task_detail(result.task, result.children, now)
        case BudgetStatus():
            return render_budget(result)
        case Help():
            return render_help()
        case TaskNotFound() | Done() | Invalid():
            return render_text(result.message)


async def thread_link(
    service: TaskService, client: AsyncWebClient, user: str, task_id: int
) -> dict[str, Any]:
    """A link to the thread a request of the user's was asked in."""
    found = await service.tasks(user, TasksCommand("detail", task_id=task_id))
    if not isinstance(found, TaskDetail):
        return render_text(TaskNotFound(task_id).message)
    conversation = found.task.conversation
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
    choice = RowMenu.unpack(value)
    if choice is None:
        return render_text("That menu is not valid any more.")
    if choice.verb == "thread":
        return await thread_link(service, client, user, choice.task_id)
    action: Action = "detail" if choice.verb == "view" else "cancel"
    return await answer(service, user, TasksCommand(action, task_id=choice.task_id))


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

    @app.action(RowMenu.action_id)
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

    @app.action(PageButton.action_id)
    async def on_page(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond
    ) -> None:
        # Bolt answers Slack only when this listener returns (process_before_response):
        # the page is loaded and sent after, off the request path, so a slow Web API
        # never delays the ack past Slack's 3 seconds.
        await ack()
        service.run_in_background(_turn_page(service, body, action, respond), "tasks-page")


async def _turn_page(
    service: TaskService, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond
) -> None:
    button = PageButton.unpack(str(action.get("value") or ""))
    if button is None:
        await respond(replace_original=False, **render_text("That button is not valid."))
        return
    cmd = TasksCommand("list", filter_name=button.filter_name, page=button.page - 1)
    message = await answer(service, body["user"]["id"], cmd)
    await respond(replace_original=True, **message)
