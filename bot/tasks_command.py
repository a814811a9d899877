"""Parses the arguments of /tasks (shared by Slack and the console)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.history import FILTERS


@dataclass(frozen=True)
class TasksCommand:
    action: str  # list | detail | cancel | retry | budget | help | invalid
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
        if len(rest) == 1 and (m := _ID.match(rest[0])):
            return _with_task(head, m.group(1))
        return TasksCommand("invalid", error=f"Which task? Try `/tasks {head} 42`.")
    if not rest and (m := _ID.match(head)):
        return _with_task("detail", m.group(1))
    return TasksCommand(
        "invalid",
        error=f"I don't know `/tasks {text.strip()[:50]}`. Try `/tasks help`.",
    )


def _with_task(action: str, digits: str) -> TasksCommand:
    if len(digits) > 10 or not 0 < int(digits) <= MAX_TASK_ID:
        shown = digits if len(digits) <= 12 else digits[:12] + "…"
        return TasksCommand(
            "invalid", error=f"There's no task #{shown}. Try `/tasks` to list yours."
        )
    return TasksCommand(action, task_id=int(digits))
