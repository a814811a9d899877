"""Small text formatters shared by the views. Outputs are plain text unless the
name says mrkdwn; plain text still goes through escape() before use."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.views.escape import escape, one_line, truncate
from core.money import format_money
from core.states import TaskStatus

STATUS_EMOJI: dict[TaskStatus, str] = {
    TaskStatus.PENDING: "⏳",
    TaskStatus.IN_PROGRESS: "🔄",
    TaskStatus.COMPLETED: "✅",
    TaskStatus.FAILED: "❌",
    TaskStatus.REJECTED: "🚫",
    TaskStatus.CANCELLED: "⏹️",
    TaskStatus.NEEDS_ATTENTION: "⚠️",
}

STATUS_LABEL: dict[TaskStatus, str] = {
    TaskStatus.PENDING: "pending",
    TaskStatus.IN_PROGRESS: "in progress",
    TaskStatus.COMPLETED: "completed",
    TaskStatus.FAILED: "failed",
    TaskStatus.REJECTED: "rejected",
    TaskStatus.CANCELLED: "cancelled",
    TaskStatus.NEEDS_ATTENTION: "needs attention",
}

SHORT_TITLE = 60
EN_DASH = "\u2013"


def status_of(value: object) -> TaskStatus | None:
    try:
        return TaskStatus(str(value).upper())
    except ValueError:
        return None


def status_emoji(value: object) -> str:
    status = status_of(value)
    return STATUS_EMOJI[status] if status else "•"


def status_label(value: object) -> str:
    status = status_of(value)
    return STATUS_LABEL[status] if status else str(value).lower()


def humanize_age(seconds: float) -> str:
    """Age as "<1 min", "5 min", "3 h", "2 d" (plain text: escape it)."""
    s = max(0, int(seconds))
    if s < 60:
        return "<1 min"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h"
    return f"{s // 86400} d"


def seconds_between(now: datetime, then: datetime) -> float:
    """now - then in seconds; a naive datetime (as SQLite gives them) is taken as UTC."""
    if (now.tzinfo is None) != (then.tzinfo is None):
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        else:
            then = then.replace(tzinfo=UTC)
    return (now - then).total_seconds()


def age(now: datetime, then: datetime) -> str:
    return humanize_age(seconds_between(now, then))


def money(cents: int, currency: str) -> str:
    return format_money(cents, currency)


def title_mrkdwn(title: str, limit: int = SHORT_TITLE) -> str:
    """A title on one line, escaped and shortened to about ``limit`` characters."""
    return truncate(escape(one_line(title)) or "(untitled)", limit, "…")
