"""/tasks in one place: parse the words into a typed command and answer it with a typed
result. The Slack listener and the console only render the result."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from core.history import FILTERS, HistoryPage
from core.records import BudgetStatus, Task

Action = Literal["list", "detail", "cancel", "retry", "budget", "help", "invalid"]


@dataclass(frozen=True)
class TasksCommand:
    action: Action
    filter_name: str | None = None
    task_id: int | None = None
    page: int = 0
    error: str | None = None


_ID = re.compile(r"^#?(\d+)$")
#: task ids are INTEGER columns; a larger number names no task (and would not fit a query)
MAX_TASK_ID = 2**31 - 1
MAX_PAGE = 100_000


def parse_tasks_command(text: str) -> TasksCommand:
    words = text.strip().lower().split()
    if not words:
        return TasksCommand("list")
    head, rest = words[0], words[1:]
    if head in FILTERS and not rest:
        return TasksCommand("list", filter_name=head)
    if head in ("help", "?") and not rest:
        return TasksCommand("help")
    if head == "budget" and not rest:
        return TasksCommand("budget")
    if head == "page" and len(rest) == 1 and rest[0].isdecimal():
        if not 0 < int(rest[0]) <= MAX_PAGE:
            return TasksCommand("invalid", error="There's no such page. Try `/tasks page 2`.")
        return TasksCommand("list", page=int(rest[0]) - 1)
    if head in ("cancel", "retry"):
        verb: Literal["cancel", "retry"] = "cancel" if head == "cancel" else "retry"
        if len(rest) == 1 and (m := _ID.match(rest[0])):
            return _with_task(verb, m.group(1))
        return TasksCommand("invalid", error=f"Which task? Try `/tasks {head} 42`.")
    if not rest and (m := _ID.match(head)):
        return _with_task("detail", m.group(1))
    return TasksCommand(
        "invalid",
        error=f"I don't know `/tasks {text.strip()[:50]}`. Try `/tasks help`.",
    )


def _with_task(action: Literal["detail", "cancel", "retry"], digits: str) -> TasksCommand:
    if len(digits) > 10 or not 0 < int(digits) <= MAX_TASK_ID:
        shown = digits if len(digits) <= 12 else digits[:12] + "…"
        return TasksCommand(
            "invalid", error=f"There's no task #{shown}. Try `/tasks` to list yours."
        )
    return TasksCommand(action, task_id=int(digits))


@dataclass(frozen=True)
class TaskDetail:
    task: Task
    children: list[Task]


@dataclass(frozen=True)
class TaskNotFound:
    task_id: int

    @property
    def message(self) -> str:
        return f"I can't find request {self.task_id} among your requests."


@dataclass(frozen=True)
class Done:
    """A cancel or retry, answered by its outcome's sentence."""

    message: str


@dataclass(frozen=True)
class Help:
    pass


@dataclass(frozen=True)
class Invalid:
    message: str


TasksResult = HistoryPage | TaskDetail | TaskNotFound | Done | BudgetStatus | Help | Invalid


class _Outcome(Protocol):
    @property
    def message(self) -> str: ...


class HistoryReader(Protocol):
    async def page(
        self, requester: str, filter_name: str | None = None, page: int = 0, page_size: int = 10
    ) -> HistoryPage: ...
    async def detail(self, requester: str, task_id: int) -> tuple[Task, list[Task]] | None: ...
    async def budget(self, requester: str) -> BudgetStatus: ...


Act = Callable[[str, int], Awaitable[_Outcome]]


async def answer(
    command: TasksCommand,
    requester: str,
    *,
    history: HistoryReader,
    cancel: Act,
    retry: Act,
    page_size: int = 10,
) -> TasksResult:
    """Answer `command` for `requester`; only their own tasks are ever read or changed."""
    task_id = command.task_id
    match command.action:
        case "list":
            return await history.page(requester, command.filter_name, command.page, page_size)
        case "detail" if task_id is not None:
            found = await history.detail(requester, task_id)
            return TaskNotFound(task_id) if found is None else TaskDetail(*found)
        case "cancel" if task_id is not None:
            return Done((await cancel(requester, task_id)).message)
        case "retry" if task_id is not None:
            return Done((await retry(requester, task_id)).message)
        case "budget":
            return await history.budget(requester)
        case "help":
            return Help()
    return Invalid(command.error or "Try `/tasks help`.")
