"""The ports core needs. storage/ implements them; front ends implement Notifier."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from core.agents.base import AgentResult
from core.front_door import FrontDoor
from core.notices import Notice
from core.records import (
    Approval,
    ApprovalMessage,
    AuditEntry,
    BudgetStatus,
    Conversation,
    LedgerEntry,
    NewTask,
    Task,
    TaskChanges,
)
from core.states import ApprovalStatus, TaskStatus

#: keyset position in "oldest first" order: (created_at, id) of the last task seen
TaskCursor = tuple[datetime, int]


def cursor_of(task: Task) -> TaskCursor:
    return (task.created_at, task.id)


class TaskRepository(Protocol):
    async def add(self, new: NewTask) -> Task: ...
    async def get(self, task_id: int) -> Task | None: ...
    async def get_many(self, task_ids: Sequence[int]) -> list[Task]: ...
    async def children(self, parent_id: int) -> list[Task]: ...
    async def family(self, root_id: int) -> tuple[Task | None, list[Task]]:
        """The request `root_id` and its steps (`children`) in one read."""
        ...

    async def set_status(
        self,
        task_id: int,
        expected: TaskStatus,
        new: TaskStatus,
        at: datetime,
        changes: TaskChanges,
    ) -> bool:
        """Conditional UPDATE … WHERE status = :expected; True when this call won."""
        ...

    async def history(
        self,
        requester: str,
        statuses: Sequence[TaskStatus] | None,
        limit: int,
        offset: int,
        roots_only: bool = True,
    ) -> list[Task]: ...
    async def count_history(
        self, requester: str, statuses: Sequence[TaskStatus] | None, roots_only: bool = True
    ) -> int: ...
    async def pending_created_before(self, cutoff: datetime, limit: int) -> list[Task]: ...
    async def record_outcome(self, task_id: int, result: AgentResult) -> bool:
        """Store a running task's result without finishing it (conditional on IN_PROGRESS),
        so an outcome with effects is known even if finishing it fails."""
        ...

    async def running_steps(self, limit: int, after: TaskCursor | None = None) -> list[Task]:
        """IN_PROGRESS steps (not requests grouping steps), oldest first, paged."""
        ...

    async def running_since(self, started_before: datetime, limit: int) -> list[Task]:
        """Steps (not requests grouping steps) IN_PROGRESS since before `started_before`."""
        ...

    async def unfinished_roots(self, limit: int, after: TaskCursor | None = None) -> list[Task]:
        """PENDING or IN_PROGRESS requests, oldest first, paged like running_steps."""
        ...

    async def by_source_event(self, event_id: str) -> Task | None: ...
    async def mark_stale_step(self, task_id: int, step: int) -> bool:
        """Conditional: True only for the first report of this task at this step."""
        ...


class ApprovalRepository(Protocol):
    async def add(
        self,
        task: Task,
        approvers: Sequence[str],
        amount_cents: int,
        at: datetime,
        expires_at: datetime,
    ) -> Approval | None:
        """Insert-if-absent: None when the task already has an approval."""
        ...

    async def get(self, approval_id: int) -> Approval | None: ...
    async def for_task(self, task_id: int) -> Approval | None: ...
    async def decide(
        self, approval_id: int, new: ApprovalStatus, user: str | None, at: datetime
    ) -> bool:
        """Conditional UPDATE … WHERE status = 'PENDING'; True when this call decided."""
        ...

    async def add_message(self, message: ApprovalMessage, at: datetime) -> bool:
        """Record a posted copy; False when that (channel, ts) was recorded already."""
        ...

    async def messages(self, approval_id: int) -> list[ApprovalMessage]: ...
    async def pending(self, limit: int) -> list[Approval]: ...
    async def remind(self, approval_id: int, at: datetime, due: datetime) -> bool:
        """Conditional: True when the approval was not reminded since `due`."""
        ...


class BudgetRepository(Protocol):
    async def hold(
        self,
        task_id: int,
        requester: str,
        month: str,
        amount_cents: int,
        limit_cents: int,
        at: datetime,
    ) -> bool:
        """Reserve money with one conditional statement; False when it does not fit."""
        ...

    async def settle(self, task_id: int, amount_cents: int) -> bool:
        """Turn the task's hold into spend."""
        ...

    async def release(self, task_id: int) -> bool: ...
    async def prune_closed(self, finished_before: datetime, limit: int) -> int:
        """Delete up to `limit` spent or released holds of tasks that ended before
        `finished_before` (the ledger keeps what was spent)."""
        ...

    async def status(
        self, requester: str, month: str, limit_cents: int, currency: str
    ) -> BudgetStatus: ...


class Ledger(Protocol):
    async def record(self, entry: LedgerEntry) -> None: ...
    async def for_task(self, task_id: int) -> list[LedgerEntry]: ...


class AuditLog(Protocol):
    async def record(self, entry: AuditEntry) -> None: ...
    async def for_task(self, task_id: int) -> list[AuditEntry]: ...


@dataclass(frozen=True)
class OutboxItem:
    id: int
    notice: Notice
    attempts: int
    created_at: datetime
    #: an earlier attempt that began then may have posted it (no outcome was recorded)
    unconfirmed_since: datetime | None = None


@dataclass(frozen=True)
class Attempt:
    """Which outbox entry a delivery is for. A front end tags the message with it and,
    when an earlier try may already have posted it, looks for that message first."""

    entry: int
    unconfirmed_since: datetime | None = None


class Outbox(Protocol):
    async def add(self, notice: Notice, at: datetime) -> None:
        """Written when the unit of work commits, with everything else it wrote."""
        ...

    async def claim_due(
        self, at: datetime, limit: int, lease_seconds: float, *, webhooks: bool = False
    ) -> list[OutboxItem]:
        """Claim due entries of one lane: webhook events, or everything else."""
        ...

    async def supersede(self, lane: str, at: datetime) -> int:
        """Retire undelivered entries of `lane` no sender holds (a newer one replaces them)."""
        ...

    async def sent_ts(self, lane: str) -> str | None:
        """The ts of the first message posted in `lane` (the one later entries replace)."""
        ...

    async def extend_claims(self, item_ids: Sequence[int], until: datetime) -> None:
        """Keep entries still being delivered claimed (a live sender renews its lease)."""
        ...

    async def release_claims(self, until: datetime) -> int:
        """Let go of the undelivered entries claimed until exactly `until`: a claim
        whose COMMIT may or may not have happened (the connection dropped during it)."""
        ...

    async def mark_sent(self, item_id: int, message_ts: str | None, at: datetime) -> None: ...
    async def retry_later(
        self, item_id: int, error: str, next_at: datetime, *, maybe_delivered: bool = True
    ) -> None:
        """`maybe_delivered`: the attempt may have reached the front end (a timeout), so
        the next one must look for it; False clears that (the front end refused it)."""
        ...

    async def prune_sent(self, before: datetime, limit: int) -> int:
        """Delete up to `limit` entries delivered before `before`; how many went."""
        ...

    async def mark_failed(self, item_id: int, error: str, at: datetime) -> None: ...
    async def backlog(self, at: datetime) -> tuple[int, datetime | None, int]:
        """Slack lane: (undelivered count, oldest undelivered created_at, failed count)."""
        ...

    async def recent_failures(self, limit: int) -> list[dict[str, Any]]: ...


class Inbox(Protocol):
    async def add(self, event_id: str, at: datetime) -> bool:
        """Record a delivered event id; False when it was seen before."""
        ...

    async def claim(self, event_id: str, at: datetime) -> int | None:
        """Record a delivered event id with the id reserved for the task it creates
        (`NewTask.id`, added next in the same unit of work); None when it was seen before."""
        ...

    async def attach(self, event_id: str, task_id: int | None) -> None: ...
    async def prune_before(self, cutoff: datetime, limit: int | None = None) -> int: ...


class Leases(Protocol):
    async def acquire(self, name: str, holder: str, at: datetime, ttl_seconds: float) -> bool: ...
    async def alive(self, name: str, at: datetime) -> bool: ...
    async def prune_expired(self, before: datetime, limit: int) -> int:
        """Delete up to `limit` leases that expired before `before` (their holders are gone)."""
        ...


_T = TypeVar("_T")


class UnitOfWork(Protocol):
    """One database transaction; commits on clean exit, rolls back on error."""

    tasks: TaskRepository
    approvals: ApprovalRepository
    budgets: BudgetRepository
    ledger: Ledger
    audit: AuditLog
    outbox: Outbox
    inbox: Inbox
    leases: Leases


class UnitOfWorkFactory(Protocol):
    #: requests being answered now: background units of work wait for them to go first
    front_door: FrontDoor

    def __call__(
        self, *, urgent: bool = False, read_only: bool = False, first: bool = False
    ) -> AbstractAsyncContextManager[UnitOfWork]:
        """`urgent`: on Slack's ack path, goes before background writers.
        `read_only`: only reads, takes no write lock (nothing it does is committed).
        `first`: background work that goes before other background work at the front
        door (delivering replies that are ready, core/front_door.py)."""
        ...

    async def together(
        self,
        work: Callable[[UnitOfWork], Awaitable[_T]],
        *,
        background: bool = False,
        first: bool = False,
    ) -> _T:
        """Run `work(uow)` on the ack path (`urgent`), possibly in one transaction with
        the work of concurrent callers (group commit): returns `work`'s result once the
        transaction holding it has committed. `work` may run twice (its first
        transaction rolled back), so it must do nothing outside the unit of work.
        `background`: not on the ack path; grouped with other background work, and
        waits at the front door like any background unit of work. `first`: background
        work that finishes what was started, ahead of work that starts more."""
        ...


@dataclass(frozen=True)
class Posted:
    """Where a front end put a message: the conversation it resolved and the message id."""

    channel: str
    ts: str


class Notifier(Protocol):
    """A front end that delivers notices (Slack, the console).

    Returns the id of the message it posted (Slack's ts, or `Posted` when the
    conversation was resolved by the front end, e.g. a DM it opened), if any.
    Raises DeliveryError when it could not deliver.
    """

    async def deliver(
        self, notice: Notice, attempt: Attempt | None = None
    ) -> str | Posted | None: ...


class DeliveryError(Exception):
    """`maybe_delivered`: the message may have arrived anyway (a timeout, a lost
    connection); False when the front end answered that it did not take it."""

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        retry_after: float | None = None,
        maybe_delivered: bool = True,
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after
        self.maybe_delivered = maybe_delivered


__all__ = [
    "ApprovalRepository",
    "Attempt",
    "AuditLog",
    "BudgetRepository",
    "Conversation",
    "DeliveryError",
    "Inbox",
    "Leases",
    "Ledger",
    "Notifier",
    "Outbox",
    "OutboxItem",
    "Posted",
    "TaskCursor",
    "TaskRepository",
    "UnitOfWork",
    "UnitOfWorkFactory",
    "cursor_of",
]
