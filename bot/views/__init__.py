"""Slack messages from core's notices and task records: pure functions returning
``{"text": fallback, "blocks": [...]}`` dicts. No I/O, no Bolt.

All user and agent text is escaped through :func:`bot.views.escape.escape`."""

from bot.views.escape import escape, mention, truncate
from bot.views.history import (
    render_budget,
    render_help,
    render_history,
    render_task_detail,
    render_text,
)
from bot.views.notices import render

__all__ = [
    "escape",
    "mention",
    "render",
    "render_budget",
    "render_help",
    "render_history",
    "render_task_detail",
    "render_text",
    "truncate",
]
