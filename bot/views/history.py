"""The /tasks views: history pages, one task in detail, budget, help, plain text."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from bot.views.blocks import (
    Block,
    Message,
    actions,
    button,
    context,
    divider,
    field_sections,
    message,
    section,
    split_sections,
)
from bot.views.buttons import PageButton, RowMenu, RowVerb
from bot.views.escape import escape, mention, one_line, truncate, with_mentions
from bot.views.format import EN_DASH, age, money, status_emoji, status_label, title_mrkdwn
from bot.views.results import result_blocks
from core.records import BudgetStatus, Task
from core.states import TaskStatus

#: each pagination button sits in its own actions block: Slack wants action_ids
#: unique within a block, and both buttons are PageButtons
PREV_BLOCK = "tasks:page:prev"
NEXT_BLOCK = "tasks:page:next"

EMPTY = "You have no requests yet. Try DMing me: research best laptops"
#: subtasks listed under each task on a history page
MAX_CHILDREN_SHOWN = 10


def _children_of(task: Task, children: Mapping[int, Sequence[Task]] | None) -> list[Task]:
    if not children:
        return []
    return sorted(children.get(task.id, ()), key=lambda t: (t.position, t.id))


_WORD = {
    TaskStatus.PENDING: "waiting",
    TaskStatus.IN_PROGRESS: "running",
    TaskStatus.COMPLETED: "done",
    TaskStatus.FAILED: "failed",
    TaskStatus.REJECTED: "denied",
    TaskStatus.CANCELLED: "cancelled",
}


def slack_date(when: datetime, now: datetime) -> str:
    """A time every reader sees in their own time zone; the fallback is an age."""
    fallback = escape(age(now, when)) + " ago"
    return f"<!date^{int(when.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def money_phrase(task: Task) -> str:
    """Money called "spent" only when it was; what a waiting one asks for; else nothing."""
    if task.cost_cents <= 0:
        return ""
    amount = escape(money(task.cost_cents, task.currency))
    if task.status is TaskStatus.COMPLETED:
        return f"spent {amount}"
    if task.status in (TaskStatus.PENDING, TaskStatus.IN_PROGRESS):
        return f"asks {amount}"
    return ""


def _task_line(task: Task, now: datetime, *, amount: bool = True) -> str:
    word = _WORD.get(task.status, status_label(task.status))
    line = f"{status_emoji(task.status)} {word} · `#{task.id}` {title_mrkdwn(task.title)}"
    phrase = money_phrase(task) if amount else ""
    if phrase:
        line += f" · {phrase}"
    when = task.finished_at or task.created_at
    return line + f" · {slack_date(when, now)}"


def _row_menu(task: Task) -> dict[str, object]:
    verbs: list[tuple[str, RowVerb]] = [("View", "view")]
    if not task.status.terminal:
        verbs.append(("Cancel", "cancel"))
    verbs.append(("Open thread", "thread"))
    return {
        "type": "overflow",
        "action_id": RowMenu.action_id,
        "options": [
            {"text": {"type": "plain_text", "text": label}, "value": RowMenu(verb, task.id).pack()}
            for label, verb in verbs
        ],
    }


def _waiting_first(tasks: Sequence[Task]) -> list[Task]:
    return sorted(tasks, key=lambda t: t.status is not TaskStatus.PENDING)


def render_history(
    tasks: Sequence[Task],
    *,
    page: int,
    total: int,
    page_size: int,
    filter_name: str | None,
    now: datetime,
    children: Mapping[int, Sequence[Task]] | None = None,
) -> Message:
    """One page (1-based) of a user's tasks, newest first as given.

    ``total`` counts all tasks matching the filter; Next/Previous buttons carry
    ``{"page": n, "filter": filter_name}`` as JSON in their value."""
    page = max(1, page)
    page_size = max(1, page_size)
    label = escape(one_line(filter_name)) if filter_name else ""
    if total <= 0 and not tasks:
        text = f"You have no {label} requests." if label else EMPTY
        return message(text, [section(text)])

    first = (page - 1) * page_size + 1
    last = first + len(tasks) - 1
    title = f"*Your {label + ' ' if label else ''}requests*"
    if tasks:
        title += f"  ({first}{EN_DASH}{last} of {total})"
    else:
        title += f"  (nothing on page {page}; {total} in all)"

    blocks: list[Block] = [section(title)]
    for task in _waiting_first(tasks):
        subtasks = _children_of(task, children)
        # each amount once: on the request when it has no steps, else on its steps
        lines = [_task_line(task, now, amount=not subtasks)]
        for child in subtasks[:MAX_CHILDREN_SHOWN]:
            lines.append("      ↳ " + _task_line(child, now))
        hidden = len(subtasks) - MAX_CHILDREN_SHOWN
        if hidden > 0:
            lines.append(f"      ↳ …and {hidden} more steps: `/tasks {task.id}`")
        row = split_sections("\n".join(lines))
        row[0]["accessory"] = _row_menu(task)
        blocks += row
    tail: list[Block] = []
    if page > 1:
        prev = button("◀ Previous", PageButton.action_id, PageButton(page - 1, filter_name).pack())
        tail.append(actions([prev], block_id=PREV_BLOCK))
    if page * page_size < total:
        nxt = button("Next ▶", PageButton.action_id, PageButton(page + 1, filter_name).pack())
        tail.append(actions([nxt], block_id=NEXT_BLOCK))
    tail.append(context("`/tasks 5` shows request 5 in full · `/tasks help` for more"))
    waiting = sum(1 for t in tasks if t.status is TaskStatus.PENDING)
    text = f"You have {total} {label + ' ' if label else ''}request{'s' if total != 1 else ''}"
    text += f"; {waiting} waiting on this page." if waiting else "; open one with /tasks <id>."
    return message(escape(text), [*blocks, *tail], keep_tail=len(tail))


def render_task_detail(task: Task, children: Sequence[Task], now: datetime) -> Message:
    """One task with its status, cost, error, subtasks and result."""
    word = _WORD.get(task.status, status_label(task.status))
    head = f"{status_emoji(task.status)} {word} · *#{task.id} {title_mrkdwn(task.title, 150)}*"
    fields = [
        f"*Status*\n{escape(status_label(task.status))}",
        f"*Requested by*\n{mention(task.requester)}",
        f"*Asked*\n{slack_date(task.created_at, now)}",
    ]
    if money_phrase(task):
        fields.append(f"*Money*\n{money_phrase(task)}")
    if task.finished_at is not None:
        fields.append(f"*Finished*\n{slack_date(task.finished_at, now)}")
    if task.parent_id is not None:
        fields.append(f"*Part of*\n`/tasks {task.parent_id}`")
    blocks: list[Block] = field_sections(fields, head)

    if task.error:
        quoted = "\n".join(
            "> " + with_mentions(escape(line)) for line in task.error.strip().split("\n")
        )
        blocks += split_sections("*Error*\n" + quoted)

    subtasks = sorted(children, key=lambda t: (t.position, t.id))
    if subtasks:
        lines = [f"*Steps* ({len(subtasks)})"]
        for child in subtasks:
            line = _task_line(child, now)
            if child.error:
                error = with_mentions(escape(one_line(child.error)))
                line += "\n        Error: " + truncate(error, 300, "…")
            elif child.result is not None and child.result.summary.strip():
                summary = truncate(escape(one_line(child.result.summary)), 300, "…")
                line += f"\n        {summary}"
            lines.append(line)
        blocks += split_sections("\n".join(lines))

    if task.result is not None:
        blocks.append(divider())
        blocks += result_blocks(task.result, currency=task.currency, show_cost=False)

    text = f"Request {task.id} is {word}: {title_mrkdwn(task.title)}"
    return message(text, blocks, more_note="…{n} more blocks not shown (message too long).")


def render_budget(status: BudgetStatus) -> Message:
    cur = status.currency
    limit, spent, held = status.limit_cents, status.spent_cents, status.held_cents
    left = status.remaining_cents
    head = f"💰 *Your budget for {escape(status.month)}*"
    fields = [
        f"*Monthly limit*\n{escape(money(limit, cur))}",
        f"*Spent*\n{escape(money(spent, cur))}",
        f"*Held for pending approvals*\n{escape(money(held, cur))}",
        f"*Left*\n{escape(money(left, cur))}",
    ]
    used = 100 if limit <= 0 else min(100, max(0, (spent + held) * 100 // limit))
    filled = used // 10
    bar = "▓" * filled + "░" * (10 - filled) + f" {used}% used"
    blocks = [*field_sections(fields, head), context(bar)]
    return message(f"Budget {status.month}: {money(left, cur)} left of {money(limit, cur)}", blocks)


#: every "• " example below is run through the parsers by tests/unit/bot/test_messages.py
HELP_REQUESTS = (
    "research best laptops",
    "research standing desks and draft an email about them to team@example.com",
    "compare prices for office chairs",
    "buy a monitor arm for $120",
)
HELP_COMMANDS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("/tasks",), "your recent requests, newest first (`/tasks pending` for all still open)"),
    (("/tasks pending", "/tasks failed", "/tasks completed"), "only those"),
    (("/tasks 5",), "request 5 in detail, with its steps and full result"),
    (("/tasks cancel 5",), "cancel request 5 if it hasn't finished"),
    (("/tasks retry 5",), "re-run request 5 from its failed steps"),
    (("/tasks budget",), "what you've spent this month and what's left"),
    (("/tasks help",), "this message"),
)
HELP = (
    "*Make a request:* DM me, or mention me in a channel, in plain words:\n"
    + "\n".join(f"• {example}" for example in HELP_REQUESTS)
    + "  _(anything that costs money asks for approval)_\n\n"
    "I answer in the thread, and ask approvers before spending money.\n\n"
    "*`/tasks` commands*\n"
    + "\n".join(
        "• " + " · ".join(f"`{c}`" for c in commands) + f" — {what}"
        for commands, what in HELP_COMMANDS
    )
)


def render_help() -> Message:
    # HELP's only control characters are the "<id>" placeholders: escape() keeps
    # them from reaching Slack raw and leaves the *bold* and `code` mrkdwn alone.
    return message(
        "How to use taskbot: ask in plain words (e.g. “research best laptops”), "
        "and see your requests with /tasks.",
        split_sections(escape(HELP)),
    )


def render_text(text: str) -> Message:
    """Plain text (escaped) as a message."""
    body = escape(text)
    return message(body, split_sections(body) or [section("…")])
