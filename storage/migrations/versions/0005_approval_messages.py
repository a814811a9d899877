"""Every posted copy of an approval message, so each can be updated in place.

Revision ID: 0005_approval_messages
Revises: 0004_outbox_unconfirmed
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005_approval_messages"
down_revision: str | None = "0004_outbox_unconfirmed"


def upgrade() -> None:
    op.create_table(
        "approval_messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("approval_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("message_ts", sa.String(length=32), nullable=False),
        sa.Column("recipient", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["approval_id"],
            ["approvals.id"],
            name=op.f("fk_approval_messages_approval_id_approvals"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approval_messages")),
        sa.UniqueConstraint(
            "channel", "message_ts", name="uq_approval_messages_channel_message_ts"
        ),
    )
    op.create_index("ix_approval_messages_approval_id", "approval_messages", ["approval_id"])


def downgrade() -> None:
    op.drop_index("ix_approval_messages_approval_id", table_name="approval_messages")
    op.drop_table("approval_messages")
