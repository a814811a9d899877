"""The unit of work: one transaction, every repository bound to its session.

Commits on clean exit, rolls back on an exception. On SQLite the whole
transaction runs under the engine's writer lock (storage.engine.serialized),
since all our transactions write and SQLite has one writer at a time.
After a commit that wrote outbox rows, registered callbacks run so the outbox
sender wakes at once instead of waiting for its next poll.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import TypeVar, cast

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from core.clock import Clock, SystemClock
from core.front_door import FrontDoor
from core.notices import Notice
from core.ports import (
    ApprovalRepository,
    AuditLog,
    BudgetRepository,
    Inbox,
    Leases,
    Ledger,
    Outbox,
    TaskRepository,
)
from core.states import TaskStatus
from storage.api_repo import SqlApiStore
from storage.approvals_repo import SqlApprovalRepository
from storage.audit_repo import SqlAuditLog
from storage.budgets_repo import SqlBudgetRepository
from storage.deferred import Appends, DeferringSession
from storage.engine import (
    READ_ONLY,
    RESERVED_CONNECTIONS,
    create_engine,
    is_sqlite,
    serialized,
)
from storage.group_commit import GroupCommit
from storage.inbox_repo import SqlInbox
from storage.leases_repo import SqlLeases
from storage.ledger_repo import SqlLedger
from storage.liveness import LivenessLease
from storage.outbox_repo import SqlOutbox
from storage.tasks_repo import SqlTaskRepository

log = logging.getLogger(__name__)


#: what the ack path writes: a new server connection reads each one's catalog entries
#: once (milliseconds apiece), so `warm_up` has it done before the first request
ACK_PATH_TABLES = ("inbox", "tasks", "audit_log", "outbox", "budgets", "budget_holds")

#: the most pieces of background work one transaction holds
BACKGROUND_BATCH = 16

PreCommit = Callable[["SqlUnitOfWork", Sequence[Notice]], Awaitable[None]]
_T = TypeVar("_T")


class SqlUnitOfWork:
    def __init__(
        self,
        session: AsyncSession,
        clock: Clock,
        unshown: Callable[[Notice], bool] | None = None,
    ) -> None:
        #: the session itself, for storage tests and one-off queries; core uses the ports
        self.session = session
        #: rows written together at commit (storage/deferred.py)
        self.appends = Appends(session)
        self._outbox = SqlOutbox(session, self.appends, unshown)
        self._tasks = SqlTaskRepository(session, clock, self.appends)
        self.tasks: TaskRepository = self._tasks
        self.approvals: ApprovalRepository = SqlApprovalRepository(session)
        self.budgets: BudgetRepository = SqlBudgetRepository(session)
        self.ledger: Ledger = SqlLedger(session, self.appends)
        self.audit: AuditLog = SqlAuditLog(session, self.appends)
        self.outbox: Outbox = self._outbox
        self.inbox: Inbox = SqlInbox(session)
        self.leases: Leases = SqlLeases(session)
        #: tokens, idempotency keys and webhook targets of the HTTP API
        self.api = SqlApiStore(session)
        self.webhooks = self.api

    @property
    def wrote_outbox(self) -> bool:
        return self._outbox.written

    @property
    def notices_written(self) -> list[Notice]:
        return self._outbox.added

    @property
    def entered(self) -> list[TaskStatus]:
        """Statuses tasks moved into in this transaction."""
        return self._tasks.entered


class SqlUnitOfWorkFactory:
    """Call it to open a unit of work: `async with factory() as uow: ...`."""

    def __init__(
        self, engine: AsyncEngine, clock: Clock | None = None, front_door: FrontDoor | None = None
    ) -> None:
        self.engine = engine
        self.front_door = front_door or FrontDoor()
        #: stamps created_at of new tasks (the only time storage picks itself)
        self.clock: Clock = clock or SystemClock()
        self._sessions = async_sessionmaker(
            engine, class_=DeferringSession, expire_on_commit=False, autoflush=False
        )
        self._readers = async_sessionmaker(
            engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False, autoflush=False
        )
        self._outbox_callbacks: list[Callable[[], object]] = []
        self._unshown: Callable[[Notice], bool] | None = None
        self._before_commit: list[PreCommit] = []
        self._transition_callbacks: list[Callable[[TaskStatus], object]] = []
        self._side_leases: list[LivenessLease] = []
        #: ack-path work of concurrent callers, committed together
        self.group: GroupCommit[SqlUnitOfWork] = GroupCommit(
            lambda: self._unit_of_work(True),
            runners=1 if is_sqlite(engine) else RESERVED_CONNECTIONS - 1,
        )
        #: background work of concurrent callers (steps claimed, steps ended), likewise;
        #: in smaller batches, as an ack may wait for one on SQLite's writer lock
        self.background_group: GroupCommit[SqlUnitOfWork] = GroupCommit(
            lambda: self._unit_of_work(False),
            runners=1,
            max_batch=BACKGROUND_BATCH,
        )
        #: background work that finishes what was started (a step's outcome): it goes
        #: before work that starts more, so replies go out while later steps wait
        self.finishing_group: GroupCommit[SqlUnitOfWork] = GroupCommit(
            lambda: self._unit_of_work(False, first=True),
            runners=1,
            max_batch=BACKGROUND_BATCH,
        )

    @classmethod
    def from_url(cls, url: str, clock: Clock | None = None) -> SqlUnitOfWorkFactory:
        return cls(create_engine(url), clock)

    def __call__(
        self, *, urgent: bool = False, read_only: bool = False, first: bool = False
    ) -> AbstractAsyncContextManager[SqlUnitOfWork]:
        if read_only:
            return self._reader()
        return self._unit_of_work(urgent, first)

    async def together(
        self,
        work: Callable[[SqlUnitOfWork], Awaitable[_T]],
        *,
        background: bool = False,
        first: bool = False,
    ) -> _T:
        """Run `work(uow)` in one transaction with the work of concurrent callers
        (storage.group_commit), on the ack path or in the background; returns its
        result once that has committed."""
        if not background:
            group = self.group
        else:
            group = self.finishing_group if first else self.background_group
        return cast(_T, await group.run(work))

    @asynccontextmanager
    async def _unit_of_work(
        self, urgent: bool, first: bool = False
    ) -> AsyncIterator[SqlUnitOfWork]:
        # background work waits for requests being answered (core/front_door.py)
        admitted = nullcontext() if urgent else self.front_door.admitted(first)
        async with (
            admitted,
            serialized(self.engine, urgent),
            self._sessions() as session,
            session.begin(),
        ):
            uow = SqlUnitOfWork(session, self.clock, self._unshown)
            yield uow
            if uow.wrote_outbox:
                for hook in self._before_commit:
                    await hook(uow, list(uow.notices_written))
            await uow.appends.flush()
        if uow.wrote_outbox:
            self._outbox_written()
        for status in uow.entered:
            self._transitioned(status)

    @asynccontextmanager
    async def _reader(self) -> AsyncIterator[SqlUnitOfWork]:
        """A transaction that only reads: on SQLite it takes no writer lock."""
        async with self._readers() as session:  # closing rolls the read transaction back
            yield SqlUnitOfWork(session, self.clock)

    def before_commit_with_notices(self, hook: PreCommit) -> None:
        """Run `hook(uow, notices)` inside every transaction that wrote notices, just
        before it commits, so what the hook writes commits (or rolls back) with them."""
        self._before_commit.append(hook)

    def liveness_lease(self, name: str, holder: str, ttl_seconds: float) -> LivenessLease:
        """The lease that says this process is alive, renewed on its own lane
        (storage.liveness); closed with this factory."""
        lease = LivenessLease(self.engine, name, holder, ttl_seconds)
        self._side_leases.append(lease)
        return lease

    def leave_out(self, unshown: Callable[[Notice], bool]) -> None:
        """Write no outbox row for a notice `unshown(notice)` says the front end never
        shows on its own (Slack folds "got it" into the status message): nothing would
        be sent, yet each row cost a claim and a sent-mark, and held up the reply behind
        it in its thread. Pre-commit hooks (webhook events) still see every notice."""
        self._unshown = unshown

    def on_outbox_written(self, callback: Callable[[], object]) -> None:
        """Call `callback()` after every commit whose transaction added outbox rows."""
        self._outbox_callbacks.append(callback)

    def on_transition(self, callback: Callable[[TaskStatus], object]) -> None:
        """Call `callback(status)` for every task status change, once it is committed."""
        self._transition_callbacks.append(callback)

    def _transitioned(self, status: TaskStatus) -> None:
        for callback in self._transition_callbacks:
            try:
                callback(status)
            except Exception:
                log.exception("transition callback %r failed", callback)

    def _outbox_written(self) -> None:
        for callback in self._outbox_callbacks:
            try:
                callback()
            except Exception:
                log.exception("outbox callback %r failed", callback)

    async def warm_up(self) -> None:
        """Open the connections the ack path uses before the first request needs them,
        so the first burst after a start does not wait for connects on Slack's clock."""
        if is_sqlite(self.engine):
            return

        async def touch() -> None:
            async with self.engine.connect() as connection:
                for table in ACK_PATH_TABLES:
                    await connection.exec_driver_sql(f"SELECT * FROM {table} LIMIT 0")

        await asyncio.gather(*(touch() for _ in range(RESERVED_CONNECTIONS)))

    async def dispose(self) -> None:
        for group in (self.group, self.finishing_group, self.background_group):
            await group.finish(grace=5)
        for lease in self._side_leases:
            await lease.close()
        await self.engine.dispose()
