"""Outbox entries remember when an attempt whose outcome is unknown began.

Revision ID: 0004_outbox_unconfirmed
Revises: 0003_api
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004_outbox_unconfirmed"
down_revision: str | None = "0003_api"


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("unconfirmed_since", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("unconfirmed_since")
