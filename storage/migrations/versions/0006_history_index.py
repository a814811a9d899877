"""Indexes that serve `/tasks [filter]`: a person's requests, newest first.

Partial (requests only, `parent_id IS NULL`) so steps cost them nothing: one led
by the status (a filter is an equality on it), one without (the unfiltered page
is already in order). The trailing status and parent_id make counts and the
status check index-only (SQLite will not cover a query whose WHERE names a column
the index lacks, even the one in its own predicate).

Revision ID: 0006_history_index
Revises: 0005_approval_messages
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006_history_index"
down_revision: str | None = "0005_approval_messages"

_ROOTS = sa.text("parent_id IS NULL")
_INDEXES = {
    "ix_tasks_history": ["requester", "created_at", "id", "status", "parent_id"],
    "ix_tasks_history_status": ["requester", "status", "created_at", "id", "parent_id"],
}


def upgrade() -> None:
    for name, columns in _INDEXES.items():
        op.create_index(name, "tasks", columns, postgresql_where=_ROOTS, sqlite_where=_ROOTS)


def downgrade() -> None:
    for name in reversed(_INDEXES):
        op.drop_index(name, table_name="tasks")
