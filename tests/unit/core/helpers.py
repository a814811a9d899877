"""Builders and probes shared by the core tests.

The tests drive the real orchestrator against real storage; only agents are
replaced, by small recording agents implementing core.agents.base.Agent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, TypeVar

from sqlalchemy import func, select

from bot.container import build_service
from core.agents.base import AgentContext, AgentError, AgentResult, DependencyResult
from core.agents.purchase import PurchaseAgent, amount_cents
from core.agents.registry import AgentRegistry
from core.clock import Clock, month_key
from core.notices import Destination, Notice, TaskNeedsAttention, notice_from_json
from core.orchestrator import Request, Submission
from core.policy import Policy
from core.ports import UnitOfWork, UnitOfWorkFactory
from core.records import Approval, BudgetStatus, Conversation, LedgerEntry, Task
from core.service import TaskService
from storage.models import OutboxRow, TaskRow
from storage.uow import SqlUnitOfWorkFactory

REQUESTER = "U1"
CHANNEL = "C1"
THREAD = "1700000000.000100"


def conversation(requester: str = REQUESTER, thread_ts: str | None = THREAD) -> Conversation:
    return Conversation(requester=requester, channel=CHANNEL, thread_ts=thread_ts, team="T1")


# --- agents -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    kind: str  # "start" | "finish"
    agent: str
    task_id: int


@dataclass
class Recorder:
    """What the test agents did, in the order it happened (one event loop: a total order)."""

    events: list[Event] = field(default_factory=list)
    contexts: dict[int, AgentContext] = field(default_factory=dict)

    def index(self, kind: str, task_id: int) -> int:
        return next(i for i, e in enumerate(self.events) if e.kind == kind and e.task_id == task_id)

    def started(self) -> list[int]:
        return [e.task_id for e in self.events if e.kind == "start"]


@dataclass(eq=False)
class RecordingAgent:
    """A test agent: records start/finish, optionally sleeps, fails, or crashes."""

    name: str
    recorder: Recorder
    _: KW_ONLY
    delay: float = 0.0
    fail: str | None = None
    crash: bool = False
    requires_approval: bool = False
    safe_to_rerun: bool = True

    def estimate_cost_cents(self, params: Mapping[str, Any]) -> int:
        return amount_cents(params) if "amount_cents" in params else 0

    async def run(self, ctx: AgentContext) -> AgentResult:
        self.recorder.contexts[ctx.task_id] = ctx
        self.recorder.events.append(Event("start", self.name, ctx.task_id))
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.crash:
                raise RuntimeError("boom")
            if self.fail is not None:
                raise AgentError(self.fail)
            return AgentResult(
                summary=f"{self.name} result #{ctx.task_id}: {ctx.title}.",
                data={"used": [d.task_id for d in ctx.dependencies]},
            )
        finally:
            self.recorder.events.append(Event("finish", self.name, ctx.task_id))


class RecordingPurchase(PurchaseAgent):
    """The real purchase agent, recording when it runs (and optionally failing)."""

    def __init__(self, recorder: Recorder, fail: str | None = None) -> None:
        self.recorder = recorder
        self.fail = fail

    async def run(self, ctx: AgentContext) -> AgentResult:
        self.recorder.events.append(Event("start", self.name, ctx.task_id))
        try:
            if self.fail is not None:
                raise AgentError(self.fail)
            return await super().run(ctx)
        finally:
            self.recorder.events.append(Event("finish", self.name, ctx.task_id))


def agent_registry(
    recorder: Recorder, *, purchase_fails: str | None = None, **overrides: RecordingAgent
) -> AgentRegistry:
    """research/communication/compare as recording agents, purchase = the real agent."""
    registry = AgentRegistry()
    for name in ("research", "communication", "compare"):
        registry.register(overrides.get(name) or RecordingAgent(name, recorder))
    registry.register(RecordingPurchase(recorder, purchase_fails))
    return registry


def make_service(
    uow_factory: SqlUnitOfWorkFactory,
    clock: Clock,
    registry: AgentRegistry,
    policy: Policy | None = None,
) -> TaskService:
    # people approve their own requests unless a test configures approvers (as the console)
    return build_service(uow_factory, registry, policy or Policy(allow_self_approval=True), clock)


async def submit(
    service: TaskService,
    text: str,
    *,
    event_id: str | None = None,
    requester: str = REQUESTER,
    thread_ts: str | None = THREAD,
) -> Submission:
    return await service.submit(Request(text, conversation(requester, thread_ts), event_id))


async def submit_and_advance(service: TaskService, text: str, **kwargs: Any) -> Task:
    """Submit, drive the graph until it finishes or waits; returns the root as stored."""
    submission = await submit(service, text, **kwargs)
    assert submission.root is not None, submission
    await service.advance(submission.root.id)
    await service.idle()
    return await task(service.uow_factory, submission.root.id)


# --- probes (read the database through the ports or plain queries) -------------------------


T = TypeVar("T")


def found(value: T | None) -> T:
    assert value is not None
    return value


async def read(uow_factory: UnitOfWorkFactory, query: Callable[[UnitOfWork], Awaitable[T]]) -> T:
    """What `query` finds, in a unit of work of its own."""
    async with uow_factory() as uow:
        return await query(uow)


async def task(uow_factory: UnitOfWorkFactory, task_id: int) -> Task:
    return found(await read(uow_factory, lambda uow: uow.tasks.get(task_id)))


async def children(uow_factory: UnitOfWorkFactory, parent_id: int) -> list[Task]:
    return await read(uow_factory, lambda uow: uow.tasks.children(parent_id))


async def approval_for(uow_factory: UnitOfWorkFactory, task_id: int) -> Approval | None:
    return await read(uow_factory, lambda uow: uow.approvals.for_task(task_id))


async def approval(uow_factory: UnitOfWorkFactory, approval_id: int) -> Approval:
    return found(await read(uow_factory, lambda uow: uow.approvals.get(approval_id)))


async def ledger(uow_factory: UnitOfWorkFactory, task_id: int) -> list[LedgerEntry]:
    return await read(uow_factory, lambda uow: uow.ledger.for_task(task_id))


async def budget(
    uow_factory: UnitOfWorkFactory, clock: Clock, policy: Policy, requester: str = REQUESTER
) -> BudgetStatus:
    async with uow_factory() as uow:
        return await uow.budgets.status(
            requester, month_key(clock.now()), policy.monthly_budget_cents, policy.currency
        )


async def task_count(uow_factory: SqlUnitOfWorkFactory) -> int:
    async with uow_factory() as uow:
        return int(await uow.session.scalar(select(func.count(TaskRow.id))) or 0)


@dataclass(frozen=True)
class OutboxEntry:
    id: int
    notice: Notice
    status: str
    attempts: int
    last_error: str | None
    message_ts: str | None
    next_attempt_at: Any


async def outbox(
    uow_factory: SqlUnitOfWorkFactory, kind: type[Notice] | None = None
) -> list[OutboxEntry]:
    async with uow_factory() as uow:
        rows = (await uow.session.scalars(select(OutboxRow).order_by(OutboxRow.id))).all()
        entries = [
            OutboxEntry(
                r.id,
                notice_from_json(r.payload),
                r.status,
                r.attempts,
                r.last_error,
                r.message_ts,
                r.next_attempt_at,
            )
            for r in rows
        ]
    return [e for e in entries if kind is None or isinstance(e.notice, kind)]


async def notices(uow_factory: SqlUnitOfWorkFactory, kind: type[Notice]) -> list[Any]:
    return [e.notice for e in await outbox(uow_factory, kind)]


async def needs_attention(uow_factory: SqlUnitOfWorkFactory) -> TaskNeedsAttention:
    """The one TaskNeedsAttention notice for the requester's thread, checked to come
    first and to be followed by one to each approver's DM."""
    told, *to_approvers = await notices(uow_factory, TaskNeedsAttention)
    assert isinstance(told, TaskNeedsAttention) and not told.for_approvers
    assert [(n.destination, n.for_approvers) for n in to_approvers] == [
        (Destination(user=a), True) for a in told.approvers
    ]
    return told


def dependency_ids(deps: Sequence[DependencyResult]) -> list[int]:
    return [d.task_id for d in deps]
