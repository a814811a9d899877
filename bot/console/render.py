"""Plain-text renderings of notices and history for the terminal front end."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from bot.views.results import key_points
from bot.views.status import headline, step_line
from core.history import HistoryPage
from core.money import format_money
from core.notices import (
    ApprovalAsked,
    ApprovalDecided,
    ApprovalNeeded,
    ApprovalReminder,
    Notice,
    RequestAccepted,
    RequestFinished,
    RequestRefused,
    RequestStatus,
    StaleReport,
    TaskCancelled,
    TaskFailed,
    TaskFinished,
    TaskNeedsAttention,
    TaskRejected,
    TaskRetried,
)
from core.records import BudgetStatus, Task
from core.states import TaskStatus
from core.tasks_command import Done, Help, Invalid, TaskDetail, TaskNotFound, TasksResult

STATUS_MARK = {
    "PENDING": "⏳",
    "IN_PROGRESS": "🔄",
    "COMPLETED": "✅",
    "FAILED": "❌",
    "REJECTED": "🚫",
    "CANCELLED": "⏹",
    "NEEDS_ATTENTION": "⚠",
}


def render_notice(notice: Notice) -> str:
    renderer = RENDERERS.get(type(notice))
    return renderer(notice) if renderer else _generic(notice)


def _generic(notice: Notice) -> str:
    return f"{notice.kind}: task #{notice.task_id}"


def _request_accepted(notice: RequestAccepted) -> str:
    lines = [f"Got it — task #{notice.task_id}: {notice.title}"]
    for step in notice.steps:
        after = f" (after #{', #'.join(map(str, step.depends_on))})" if step.depends_on else ""
        gate = " [needs approval]" if step.needs_approval else ""
        lines.append(f"  #{step.task_id} {step.agent}: {step.title}{after}{gate}")
    return "\n".join(lines)


def _request_refused(notice: RequestRefused) -> str:
    return f"Not accepted: {notice.reason}"


def _approval_needed(notice: ApprovalNeeded) -> str:
    return (
        f"Approval needed for #{notice.task_id} {notice.title}: "
        f"{format_money(notice.amount_cents, notice.currency)} requested by {notice.requester}"
        f" ({format_money(notice.remaining_cents, notice.currency)} left this month). "
        f"Approvers: {', '.join(notice.approvers)}.\n  [a]pprove / [d]eny (d <why> says why)"
    )


def _approval_asked(notice: ApprovalAsked) -> str:
    who = ", ".join(notice.approvers)
    return f"#{notice.task_id} {notice.title} waits for approval from {who}."


def _approval_decided(notice: ApprovalDecided) -> str:
    by = f" by {notice.decided_by}" if notice.decided_by else ""
    extra = "".join(f" · {x}" for x in (notice.reference, notice.reason) if x)
    return f"Approval for #{notice.task_id} {notice.outcome}{by}{extra}."


def _approval_reminder(notice: ApprovalReminder) -> str:
    return f"Reminder: #{notice.task_id} {notice.title} still waits for approval."


def _task_failed(notice: TaskFailed) -> str:
    request = notice.request_id if notice.request_id is not None else notice.task_id
    return (
        f"❌ Failed: {notice.title} — {notice.error}\n"
        f"  You can ask again; if it keeps failing, tell your admin. Request {request}"
    )


def _task_needs_attention(notice: TaskNeedsAttention) -> str:
    return (
        f"#{notice.task_id} {notice.title} needs attention ({notice.reference}): "
        f"{notice.detail} Approvers: {', '.join(notice.approvers)}."
    )


def _task_rejected(notice: TaskRejected) -> str:
    return (
        f"🚫 Denied by {notice.decided_by}: {notice.title}"
        + (f" — {notice.reason}" if notice.reason else "")
        + "\n"
        f"  You can ask again with a different amount or item. Request {notice.task_id}"
    )


def _task_cancelled(notice: TaskCancelled) -> str:
    word = "⌛ Expired" if "expired" in notice.reason.lower() else "⏹ Cancelled"
    return (
        f"{word}: {notice.title} — {notice.reason}\n"
        f"  Nothing more will happen; you can ask again. Request {notice.task_id}"
    )


def _request_finished(notice: RequestFinished) -> str:
    tail = f" {notice.detail}" if notice.detail else ""
    return (
        f"Request #{notice.task_id} {notice.status.lower()}: "
        f"{notice.completed}/{notice.total} steps done.{tail}"
    )


def _stale_report(notice: StaleReport) -> str:
    rows = [
        f"  #{t.task_id} {t.title} ({t.requester}, waiting for {t.waiting_for})"
        for t in notice.tasks
    ]
    return "\n".join([f"{len(notice.tasks)} task(s) waiting too long:", *rows])


def _task_retried(notice: TaskRetried) -> str:
    return f"Retrying #{notice.task_id} {notice.title}: {', '.join(notice.step_titles)}"


def _status(notice: RequestStatus) -> str:
    emoji, word = headline(notice.status)
    lines = [f"{emoji} {word}: {notice.title} · Request {notice.task_id}"]
    if len(notice.steps) > 1:
        lines.append("  " + " · ".join(step_line(s) for s in notice.steps))
    if notice.waiting_on:
        lines.append("  Waiting for " + ", ".join(notice.waiting_on) + " to decide.")
    return "\n".join(lines)


def _finished(notice: TaskFinished) -> str:
    """The deliverable once, as in Slack: findings once, or the draft once."""
    result = notice.result
    request = notice.request_id if notice.request_id is not None else notice.task_id
    lines = [f"✅ {notice.title} — done"]
    email = result.data.get("email")
    points = key_points(result.body)
    if isinstance(email, dict):
        to = email.get("to")
        lines.append("To: " + (", ".join(to) if isinstance(to, list) else str(to or "")))
        lines.append(f"Subject: {email.get('subject') or ''}")
        lines += ["", str(email.get("body") or "").strip()]
        if notice.requester:
            lines.append(notice.requester)
    elif points:
        lines += [f"• {text}" for text, _ in points]
    else:
        lines.append(result.summary)
        if result.body and result.body != result.summary:
            lines.append(result.body)
    sources = result.data.get("sources")
    if sources:
        lines.append("Sources: " + ", ".join(map(str, sources)))
    if notice.cost_cents:
        lines.append("Spent: " + format_money(notice.cost_cents, notice.currency))
    lines.append(f"Request {request} · /tasks {request}")
    return "\n".join(lines)


def render_history(page: HistoryPage, now: datetime) -> str:
    if not page.tasks:
        return "You have no requests yet. Try: research best laptops"
    lines = [f"Your requests ({page.total}):"]
    waiting_first = sorted(page.tasks, key=lambda t: t.status is not TaskStatus.PENDING)
    lines += [render_task_line(t, now) for t in waiting_first]
    if page.has_next:
        lines.append(f"… more: /tasks page {page.page + 2}")
    return "\n".join(lines)


def render_task_line(task: Task, now: datetime) -> str:
    """One row: money called "spent" only when it was, "asks" while it waits."""
    when = task.finished_at or task.created_at
    age = _age(int((now - when).total_seconds()))
    money = ""
    if task.cost_cents > 0 and task.status is TaskStatus.COMPLETED:
        money = f" — spent {format_money(task.cost_cents, task.currency)}"
    elif task.cost_cents > 0 and not task.status.terminal:
        money = f" — asks {format_money(task.cost_cents, task.currency)}"
    return f"  {STATUS_MARK[task.status.value]} #{task.id} {task.title}{money}, {age} ago"


def render_budget(status: BudgetStatus) -> str:
    def fmt(cents: int) -> str:
        return format_money(cents, status.currency)

    return (
        f"Budget {status.month}: spent {fmt(status.spent_cents)}, held "
        f"{fmt(status.held_cents)}, left {fmt(status.remaining_cents)} of "
        f"{fmt(status.limit_cents)}."
    )


def _age(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{max(seconds, 0)} s"


def render_tasks_result(result: TasksResult, now: datetime, help_text: str) -> str:
    """A /tasks answer as console text; core.tasks_command decided what it says."""
    match result:
        case HistoryPage():
            return render_history(result, now)
        case TaskDetail():
            task = result.task
            lines = [render_task_line(t, now) for t in (task, *result.children)]
            if task.result:
                lines.append(task.result.summary)
            if task.error:
                lines.append(f"Error: {task.error}")
            return "\n".join(lines)
        case BudgetStatus():
            return render_budget(result)
        case Help():
            return help_text
        case Invalid():
            return result.message or help_text
        case TaskNotFound() | Done():
            return result.message


#: notice type → its console line(s); the renderer-completeness test checks every Notice has one
RENDERERS: dict[type[Notice], Callable[[Any], str]] = {
    RequestAccepted: _request_accepted,
    RequestStatus: _status,
    RequestRefused: _request_refused,
    ApprovalNeeded: _approval_needed,
    ApprovalAsked: _approval_asked,
    ApprovalDecided: _approval_decided,
    ApprovalReminder: _approval_reminder,
    TaskFinished: _finished,
    TaskFailed: _task_failed,
    TaskNeedsAttention: _task_needs_attention,
    TaskRejected: _task_rejected,
    TaskCancelled: _task_cancelled,
    RequestFinished: _request_finished,
    StaleReport: _stale_report,
    TaskRetried: _task_retried,
}
