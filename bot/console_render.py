"""Plain-text renderings of notices and history for the terminal front end."""

from __future__ import annotations

from datetime import datetime

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
    StaleReport,
    TaskCancelled,
    TaskFailed,
    TaskFinished,
    TaskNeedsAttention,
    TaskRejected,
    TaskRetried,
)
from core.records import BudgetStatus, Task

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
    if isinstance(notice, RequestRefused):
        return notice.reason
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
        return f"Approval for #{notice.task_id} {notice.outcome}{by}."
    if isinstance(notice, ApprovalReminder):
        return f"Reminder: #{notice.task_id} {notice.title} still waits for approval."
    if isinstance(notice, TaskFinished):
        return _finished(notice)
    if isinstance(notice, TaskFailed):
        return f"#{notice.task_id} {notice.title} failed: {notice.error}"
    if isinstance(notice, TaskNeedsAttention):
        return (
            f"#{notice.task_id} {notice.title} needs attention ({notice.reference}): "
            f"{notice.detail} Approvers: {', '.join(notice.approvers)}."
        )
    if isinstance(notice, TaskRejected):
        return f"#{notice.task_id} {notice.title} was denied by {notice.decided_by}."
    if isinstance(notice, TaskCancelled):
        return f"#{notice.task_id} {notice.title} was cancelled. {notice.reason}"
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


def _finished(notice: TaskFinished) -> str:
    result = notice.result
    lines = [f"#{notice.task_id} {notice.title} — done", result.summary]
    if result.body and result.body != result.summary:
        lines.append(result.body)
    sources = result.data.get("sources")
    if sources:
        lines.append("Sources: " + ", ".join(map(str, sources)))
    if notice.cost_cents:
        lines.append("Cost: " + format_money(notice.cost_cents, notice.currency))
    return "\n".join(lines)


def render_history(page: HistoryPage, now: datetime) -> str:
    if not page.tasks:
        return "You have no tasks yet. Try: research best laptops"
    lines = [f"Your tasks ({page.total}):"]
    lines += [render_task_line(t, now) for t in page.tasks]
    if page.has_next:
        lines.append(f"… more: /tasks page {page.page + 2}")
    return "\n".join(lines)


def render_task_line(task: Task, now: datetime) -> str:
    age = _age(int((now - task.created_at).total_seconds()))
    cost = format_money(task.cost_cents, task.currency)
    return f"  {STATUS_MARK[task.status.value]} #{task.id} {task.title} — {cost}, {age} ago"


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
