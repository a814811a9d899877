"""Plain records that cross the port boundary between core and storage."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.agents.base import AgentResult
from core.states import ApprovalStatus, TaskStatus


@dataclass(frozen=True)
class Conversation:
    """Where a request came from and where its answers go."""

    requester: str
    channel: str
    thread_ts: str | None = None
    team: str | None = None


@dataclass(frozen=True)
class NewTask:
    conversation: Conversation
    agent: str
    title: str
    params: Mapping[str, Any]
    currency: str
    cost_cents: int = 0
    parent_id: int | None = None
    root_id: int | None = None
    depends_on: tuple[int, ...] = ()
    source_event_id: str | None = None
    position: int = 0
    #: reserved beforehand (`Inbox.claim`); None: the database gives it one
    id: int | None = None


@dataclass(frozen=True)
class Task:
    id: int
    root_id: int
    parent_id: int | None
    conversation: Conversation
    agent: str
    title: str
    params: Mapping[str, Any]
    status: TaskStatus
    cost_cents: int
    currency: str
    created_at: datetime
    updated_at: datetime
    depends_on: tuple[int, ...] = ()
    result: AgentResult | None = None
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    source_event_id: str | None = None
    position: int = 0
    worker: str | None = None

    @property
    def requester(self) -> str:
        return self.conversation.requester

    @property
    def is_root(self) -> bool:
        return self.parent_id is None


#: the agent name of a task that only groups the steps of a multi-step request
GRAPH_AGENT = "request"


@dataclass(frozen=True)
class TaskChanges:
    """Columns a transition may set together with the status."""

    result: AgentResult | None = None
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    cost_cents: int | None = None
    worker: str | None = None
    #: clear the last attempt's error and finish time (a retried task starts afresh)
    reset: bool = False


@dataclass(frozen=True)
class Approval:
    id: int
    task_id: int
    requester: str
    approvers: tuple[str, ...]
    amount_cents: int
    currency: str
    status: ApprovalStatus
    channel: str
    thread_ts: str | None
    created_at: datetime
    expires_at: datetime
    message_ts: str | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    reminded_at: datetime | None = None


@dataclass(frozen=True)
class ApprovalMessage:
    """One posted copy of an approval's message: where its buttons are."""

    approval_id: int
    channel: str
    message_ts: str
    #: the approver whose DM holds it; None for a shared channel
    recipient: str | None = None


@dataclass(frozen=True)
class BudgetStatus:
    requester: str
    month: str
    limit_cents: int
    spent_cents: int
    held_cents: int
    currency: str

    @property
    def remaining_cents(self) -> int:
        return max(0, self.limit_cents - self.spent_cents - self.held_cents)


@dataclass(frozen=True)
class LedgerEntry:
    task_id: int
    requester: str
    amount_cents: int
    currency: str
    description: str
    created_at: datetime


@dataclass(frozen=True)
class AuditEntry:
    task_id: int | None
    actor: str
    action: str
    created_at: datetime
    detail: Mapping[str, Any] = field(default_factory=dict)
