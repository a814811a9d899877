"""The schema, as typed SQLAlchemy 2 models.

Alembic migrations (storage/migrations) create the tables; these models are
what the repositories query through, and a test checks the two never drift.
Every datetime goes through `UTCDateTime`, so what comes back is an aware UTC
datetime on SQLite (which stores text without a zone) and on PostgreSQL alike.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC in, aware UTC out. Naive datetimes are refused: they are ambiguous.

    SQLite gets naive UTC text (so string comparison orders correctly);
    PostgreSQL gets TIMESTAMP WITH TIME ZONE.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware (UTC) datetime")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        list[str]: JSON(),
    }


class TaskRow(Base):
    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # never NULL once written: a root task gets its own id in the INSERT itself
    root_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id"))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id"))
    requester: Mapped[str] = mapped_column(String(64))
    team: Mapped[str | None] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(64))
    thread_ts: Mapped[str | None] = mapped_column(String(32))
    source_event_id: Mapped[str | None] = mapped_column(String(128), unique=True)
    agent: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(Text)
    params: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16))
    cost_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    currency: Mapped[str] = mapped_column(String(8))
    result: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(Text)
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    #: the process that claimed it (IN_PROGRESS); its liveness lease tells a crash apart
    worker: Mapped[str | None] = mapped_column(String(128))
    #: the last escalation step a stale report listed this task at
    stale_step: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    __table_args__ = (
        Index("ix_tasks_requester_created_at", "requester", "created_at"),
        Index("ix_tasks_status_created_at", "status", "created_at"),
        Index("ix_tasks_parent_id", "parent_id"),
        # /tasks [filter]: a person's requests (roots), newest first
        Index(
            "ix_tasks_history",
            "requester",
            "created_at",
            "id",
            "status",
            "parent_id",
            postgresql_where=text("parent_id IS NULL"),
            sqlite_where=text("parent_id IS NULL"),
        ),
        Index(
            "ix_tasks_history_status",
            "requester",
            "status",
            "created_at",
            "id",
            "parent_id",
            postgresql_where=text("parent_id IS NULL"),
            sqlite_where=text("parent_id IS NULL"),
        ),
    )


class TaskDependencyRow(Base):
    __tablename__ = "task_dependencies"

    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), primary_key=True)
    depends_on_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), primary_key=True)


class ApprovalRow(Base):
    __tablename__ = "approvals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), unique=True)
    requester: Mapped[str] = mapped_column(String(64))
    approvers: Mapped[list[str]]
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(64))
    thread_ts: Mapped[str | None] = mapped_column(String(32))
    message_ts: Mapped[str | None] = mapped_column(String(32))
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    reminded_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_approvals_status", "status"),)


class ApprovalMessageRow(Base):
    """One posted copy of an approval message (a DM to an approver, or the approval channel)."""

    __tablename__ = "approval_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    approval_id: Mapped[int] = mapped_column(ForeignKey("approvals.id"))
    channel: Mapped[str] = mapped_column(String(64))
    message_ts: Mapped[str] = mapped_column(String(32))
    #: the approver whose DM this is; None for a shared channel
    recipient: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]

    __table_args__ = (
        UniqueConstraint("channel", "message_ts", name="uq_approval_messages_channel_message_ts"),
        Index("ix_approval_messages_approval_id", "approval_id"),
    )


class BudgetRow(Base):
    __tablename__ = "budgets"

    requester: Mapped[str] = mapped_column(String(64), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)  # 'YYYY-MM'
    spent_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    held_cents: Mapped[int] = mapped_column(BigInteger, default=0)


class BudgetHoldRow(Base):
    __tablename__ = "budget_holds"

    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), primary_key=True)
    requester: Mapped[str] = mapped_column(String(64))
    month: Mapped[str] = mapped_column(String(7))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))  # HELD / SPENT / RELEASED
    settled_cents: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime]


class TransactionRow(Base):
    """The ledger: money actually spent, one row per charge."""

    __tablename__ = "transactions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), index=True)
    requester: Mapped[str] = mapped_column(String(64))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(8))
    description: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class AuditRow(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[int | None] = mapped_column(Integer, index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class InboxRow(Base):
    """Slack event ids already accepted: a redelivery finds its id here."""

    __tablename__ = "inbox"

    event_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    task_id: Mapped[int | None] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column(index=True)


class OutboxRow(Base):
    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]]
    destination_key: Mapped[str] = mapped_column(String(128))
    task_id: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))  # PENDING / SENT / FAILED
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    claimed_until: Mapped[datetime | None]
    #: start of the earliest attempt that may have reached Slack without its ts being
    #: recorded (a timeout, a crash): the next attempt looks for that post first
    unconfirmed_since: Mapped[datetime | None]
    message_ts: Mapped[str | None] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    failed_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_outbox_status_next_attempt_at", "status", "next_attempt_at"),
        # "is there an older undelivered entry for this destination?"
        Index("ix_outbox_destination_key_status_id", "destination_key", "status", "id"),
    )


class LeaseRow(Base):
    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime]


class ApiTokenRow(Base):
    """A bearer token for the HTTP API; only its SHA-256 is kept."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class ApiIdempotencyRow(Base):
    """An Idempotency-Key a caller used, with a hash of the body it came with."""

    __tablename__ = "api_idempotency"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    body_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]


class TaskWebhookRow(Base):
    """Where a request's webhook events go (set when it was submitted over the API)."""

    __tablename__ = "task_webhooks"

    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
