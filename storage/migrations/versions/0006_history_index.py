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

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_history_index"
down_revision: str | None = "0005_approval_messages"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ROOTS = sa.text("parent_id IS NULL")


def upgrade() -> None:
    op.create_index(
        "ix_tasks_history",
        "tasks",
        ["requester", "created_at", "id", "status", "parent_id"],
        postgresql_where=_ROOTS,
        sqlite_where=_ROOTS,
    )
    op.create_index(
        "ix_tasks_history_status",
        "tasks",
        ["requester", "status", "created_at", "id", "parent_id"],
        postgresql_where=_ROOTS,
        sqlite_where=_ROOTS,
    )


def downgrade() -> None:
    op.drop_index("ix_tasks_history_status", table_name="tasks")
    op.drop_index("ix_tasks_history", table_name="tasks")
