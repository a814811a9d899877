"""Plain-text renderings of notices and history for the terminal front end."""

from __future__ import annotations

from datetime import datetime

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
    if isinstance(notice, RequestAccepted):
        lines = [f"Got it — task #{notice.task_id}: {notice.title}"]
        for step in notice.steps:
            after = f" (after #{', #'.join(map(str, step.depends_on))})" if step.depends_on else ""
            gate = " [needs approval]" if step.needs_approval else ""
            lines.append(f"  #{step.task_id} {step.agent}: {step.title}{after}{gate}")
        return "\n".join(lines)
    if isinstance(notice, RequestStatus):
        return _status(notice)
    if isinstance(notice, RequestRefused):
        return f"Not accepted: {notice.reason}"
    if isinstance(notice, ApprovalNeeded):
        return (
            f"Approval needed for #{notice.task_id} {notice.title}: "
            f"{format_money(notice.amount_cents, notice.currency)} requested by {notice.requester}"
            f" ({format_money(notice.remaining_cents, notice.currency)} left this month). "
            f"Approvers: {', '.join(notice.approvers)}.\n  [a]pprove / [d]eny"
        )
    if isinstance(notice, ApprovalAsked):
        who = ", ".join(notice.approvers)
        return f"#{notice.task_id} {notice.title} waits for approval from {who}."
    if isinstance(notice, ApprovalDecided):
        by = f" by {notice.decided_by}" if notice.decided_by else ""
        extra = "".join(f" · {x}" for x in (notice.reference, notice.reason) if x)
        return f"Approval for #{notice.task_id} {notice.outcome}{by}{extra}."
    if isinstance(notice, ApprovalReminder):
        return f"Reminder: #{notice.task_id} {notice.title} still waits for approval."
    if isinstance(notice, TaskFinished):
        return _finished(notice)
    if isinstance(notice, TaskFailed):
        request = notice.request_id if notice.request_id is not None else notice.task_id
        return (
            f"❌ Failed: {notice.title} — {notice.error}\n"
            f"  You can ask again; if it keeps failing, tell your admin. Request {request}"
        )
    if isinstance(notice, TaskNeedsAttention):
        return (
            f"#{notice.task_id} {notice.title} needs attention ({notice.reference}): "
            f"{notice.detail} Approvers: {', '.join(notice.approvers)}."
        )
    if isinstance(notice, TaskRejected):
        return (
            f"🚫 Denied by {notice.decided_by}: {notice.title}"
            + (f" — {notice.reason}" if notice.reason else "")
            + "\n"
            f"  You can ask again with a different amount or item. Request {notice.task_id}"
        )
    if isinstance(notice, TaskCancelled):
        word = "⌛ Expired" if "expired" in notice.reason.lower() else "⏹ Cancelled"
        return (
            f"{word}: {notice.title} — {notice.reason}\n"
            f"  Nothing more will happen; you can ask again. Request {notice.task_id}"
        )
    if isinstance(notice, RequestFinished):
        tail = f" {notice.detail}" if notice.detail else ""
        return (
            f"Request #{notice.task_id} {notice.status.lower()}: "
            f"{notice.completed}/{notice.total} steps done.{tail}"
        )
    if isinstance(notice, StaleReport):
        rows = [
            f"  #{t.task_id} {t.title} ({t.requester}, waiting for {t.waiting_for})"
            for t in notice.tasks
        ]
        return "\n".join([f"{len(notice.tasks)} task(s) waiting too long:", *rows])
    if isinstance(notice, TaskRetried):
        return f"Retrying #{notice.task_id} {notice.title}: {', '.join(notice.step_titles)}"
    return f"{notice.kind}: task #{notice.task_id}"


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
