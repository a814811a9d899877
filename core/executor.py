"""Runs one task: gate it (budget, approval), execute its agent, record the outcome."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from enum import Enum
from typing import Any, TypeVar

from core.agents.base import (
    Agent,
    AgentContext,
    AgentError,
    AgentResult,
    DependencyResult,
    TransientAgentError,
)
from core.agents.registry import AgentRegistry
from core.approval_routing import (
    approval_notices,
    attention_notices,
    record_reference,
    request_words,
)
from core.audit import audit
from core.budget import Budgets
from core.clock import Clock
from core.jsonsafe import NotStorable, storable_result
from core.money import format_money
from core.notices import TaskFailed, TaskFinished, destination_of
from core.policy import NO_APPROVERS, Policy
from core.ports import UnitOfWork, UnitOfWorkFactory
from core.records import GRAPH_AGENT, LedgerEntry, Task, TaskChanges
from core.states import ApprovalStatus, TaskStatus, transition
from core.status import DEFAULT_GRACE_SECONDS, write_status

log = logging.getLogger(__name__)

SYSTEM = "taskbot"

Sleep = Callable[[float], Awaitable[None]]
_T = TypeVar("_T")

#: tries at writing an outcome while the database is away, before falling back
RECORD_ATTEMPTS = 8
RECORD_BACKOFF_SECONDS = 0.25
RECORD_BACKOFF_MAX_SECONDS = 30.0


class Gate(Enum):
    READY = "ready"
    WAITING = "waiting"
    REFUSED = "refused"


async def fail_task(
    uow: UnitOfWork,
    task: Task,
    reason: str,
    clock: Clock,
    *,
    grace: float = DEFAULT_GRACE_SECONDS,
) -> bool:
    """FAILED with the reason told in the task's thread and its money released."""
    now = clock.now()
    if not await transition(
        uow,
        task,
        TaskStatus.FAILED,
        actor=SYSTEM,
        clock=clock,
        changes=TaskChanges(error=reason, finished_at=now),
    ):
        return False
    await uow.budgets.release(task.id)
    await uow.outbox.add(
        TaskFailed(
            destination=destination_of(task),
            task_id=task.id,
            title=task.title,
            error=reason,
            request_id=task.root_id,
        ),
        now,
    )
    await write_status(uow, clock, task, grace=grace)
    return True


def has_effects(agent: Agent) -> bool:
    """Its outcome may have changed the world (an order placed): never re-run, never
    failed with its money released once it has produced a result."""
    return agent.requires_approval or not agent.safe_to_rerun


def outcome_reference(result: Any) -> str:
    """How a person finds what a step did: the purchase order number, else its summary."""
    try:
        data = result.data
        order = data.get("purchase_order") if isinstance(data, Mapping) else None
        if isinstance(order, Mapping) and order.get("number"):
            return str(order["number"])
        if isinstance(data, Mapping) and data.get("reference"):
            return str(data["reference"])
        return " ".join(str(result.summary).split())[:200] or "unknown"
    except Exception:
        return "unknown"


async def complete_task(
    uow: UnitOfWork,
    task: Task,
    result: AgentResult,
    clock: Clock,
    *,
    grace: float = DEFAULT_GRACE_SECONDS,
    maybe_asked: bool = True,
) -> bool:
    """COMPLETED with the result stored, money settled, ledger written, requester told,
    all in the caller's transaction. Also closes a task flagged NEEDS_ATTENTION meanwhile.
    `maybe_asked=False`: its agent never asks for approval (no approval to look up)."""
    now = clock.now()
    changes = TaskChanges(result=result, finished_at=now, cost_cents=result.cost_cents)
    if not await transition(
        uow, task, TaskStatus.COMPLETED, actor=SYSTEM, clock=clock, changes=changes
    ):
        current = await uow.tasks.get(task.id)
        if current is None or current.status is not TaskStatus.NEEDS_ATTENTION:
            return False
        if not await transition(
            uow, current, TaskStatus.COMPLETED, actor=SYSTEM, clock=clock, changes=changes
        ):
            return False
    if result.cost_cents > 0:
        await uow.budgets.settle(task.id, result.cost_cents)
    elif task.cost_cents > 0:  # only a step with a price ever holds money (`gate`)
        await uow.budgets.release(task.id)
    await uow.ledger.record(
        LedgerEntry(task.id, task.requester, result.cost_cents, task.currency, task.title, now)
    )
    await audit(
        uow,
        clock,
        task.id,
        SYSTEM,
        "transaction_recorded",
        {"amount_cents": result.cost_cents, "currency": task.currency},
    )
    await uow.outbox.add(
        TaskFinished(
            destination=destination_of(task),
            task_id=task.id,
            agent=task.agent,
            title=task.title,
            result=result,
            cost_cents=result.cost_cents,
            currency=task.currency,
            intermediate=await _feeds_a_later_step(uow, task),
            requester=task.requester,
            request_id=task.root_id,
        ),
        now,
    )
    await write_status(uow, clock, task, grace=grace, maybe_asked=maybe_asked)
    return True


async def _feeds_a_later_step(uow: UnitOfWork, task: Task) -> bool:
    """A step whose result only feeds another step (research for an email draft)."""
    if task.is_root:
        return False
    siblings = await uow.tasks.children(task.root_id)
    return any(task.id in s.depends_on for s in siblings)


async def flag_task(
    uow: UnitOfWork,
    task: Task,
    reference: str,
    detail: str,
    approvers: Sequence[str],
    clock: Clock,
    approval_channel: str | None = None,
) -> bool:
    """NEEDS_ATTENTION: the money stays held, the approvers are told with the reference
    where they act (their DMs or the approval channel) and the requester in the thread."""
    if not await transition(
        uow,
        task,
        TaskStatus.NEEDS_ATTENTION,
        actor=SYSTEM,
        clock=clock,
        changes=TaskChanges(error=f"{detail} (reference: {reference})"),
        detail={"reference": reference},
    ):
        return False
    for notice in attention_notices(
        task, destination_of(task), reference, detail, tuple(approvers), approval_channel
    ):
        await uow.outbox.add(notice, clock.now())
    return True


class TaskExecutor:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        registry: AgentRegistry,
        policy: Policy,
        clock: Clock,
        worker: str = "local",
        sleep: Sleep | None = None,
        jitter: Callable[[], float] | None = None,
    ) -> None:
        self.worker = worker
        self._uow_factory = uow_factory
        self._registry = registry
        self._policy = policy
        self._clock = clock
        self._budgets = Budgets(policy, clock)
        self._sleep: Sleep = sleep or asyncio.sleep
        self._jitter = jitter or random.random
        self.record_attempts = RECORD_ATTEMPTS
        self.record_backoff_seconds = RECORD_BACKOFF_SECONDS

    def needs_approval(self, task: Task) -> bool:
        return self._registry.get(task.agent).requires_approval

    async def gate(self, uow: UnitOfWork, task: Task) -> Gate:
        """Decide, in the caller's transaction, whether a PENDING task whose
        dependencies are done may run now (`task` as read in that transaction)."""
        agent = self._registry.get(task.agent)
        if task.status is not TaskStatus.PENDING:
            return Gate.WAITING
        if agent.requires_approval:
            approval = await uow.approvals.for_task(task.id)
            if approval is None:
                return await self._request_approval(uow, task)
            return Gate.READY if approval.status is ApprovalStatus.APPROVED else Gate.WAITING
        if task.cost_cents > 0 and not await self._budgets.hold(uow, task):
            await self._refuse_over_budget(uow, task)
            return Gate.REFUSED
        return Gate.READY

    async def _request_approval(self, uow: UnitOfWork, task: Task) -> Gate:
        approvers = self._policy.approvers_for(task.requester)
        if not approvers:
            await fail_task(uow, task, NO_APPROVERS, self._clock)
            return Gate.REFUSED
        if task.cost_cents > 0 and not await self._budgets.hold(uow, task):
            await self._refuse_over_budget(uow, task)
            return Gate.REFUSED
        now = self._clock.now()
        approval = await uow.approvals.add(
            task,
            approvers,
            task.cost_cents,
            now,
            now + timedelta(seconds=self._policy.approval_ttl_seconds),
        )
        if approval is None:
            return Gate.WAITING  # another worker asked first
        budget = await self._budgets.status(uow, task.requester)
        words = await request_words(uow, task)
        for notice in approval_notices(self._policy, task, approval, words, budget):
            await uow.outbox.add(notice, now)
        await audit(
            uow,
            self._clock,
            task.id,
            SYSTEM,
            "approval_requested",
            {"approval_id": approval.id, "approvers": list(approvers)},
        )
        await write_status(uow, self._clock, task, grace=self._grace)
        return Gate.WAITING

    async def _refuse_over_budget(self, uow: UnitOfWork, task: Task) -> None:
        budget = await self._budgets.status(uow, task.requester)
        reason = (
            f"Over budget: this costs {format_money(task.cost_cents, task.currency)} but only "
            f"{format_money(budget.remaining_cents, budget.currency)} of your monthly "
            f"{format_money(budget.limit_cents, budget.currency)} is left."
        )
        await fail_task(uow, task, reason, self._clock, grace=self._grace)

    @property
    def _grace(self) -> float:
        return self._policy.status_grace_seconds

    async def claim(self, uow: UnitOfWork, task: Task) -> Task | None:
        """PENDING → IN_PROGRESS in the caller's transaction, so gating, claiming and
        the status snapshot commit together; the running task, or None if another
        worker got it first. Run it with `run` once that transaction has committed."""
        now = self._clock.now()
        changes = TaskChanges(started_at=now, worker=self.worker)
        if not await transition(
            uow, task, TaskStatus.IN_PROGRESS, actor=SYSTEM, clock=self._clock, changes=changes
        ):
            return None
        if not task.is_root or task.agent == GRAPH_AGENT or self.needs_approval(task):
            await write_status(uow, self._clock, task, grace=self._grace)
        return dataclasses.replace(
            task, status=TaskStatus.IN_PROGRESS, started_at=now, worker=self.worker
        )

    async def run(self, running: Task, dependencies: Sequence[Task]) -> None:
        """Run a claimed task's agent and record the outcome.

        The step always ends (COMPLETED, FAILED or NEEDS_ATTENTION) and its
        requester is told, whatever fails on the way; nothing is raised.
        """
        agent = self._registry.get(running.agent)
        try:
            await self._run(running, agent, dependencies)
        except Exception as exc:  # a bug of ours, not the agent's: still end the step
            log.exception("step %s (%s) went wrong outside its agent", running.id, running.agent)
            reason = f"Something went wrong while finishing it ({type(exc).__name__})."
            if has_effects(agent):
                await self._flag(running, "unknown", reason)
            else:
                await self._fail(running, reason)

    async def _run(self, running: Task, agent: Agent, dependencies: Sequence[Task]) -> None:
        ctx = AgentContext(
            task_id=running.id,
            title=running.title,
            params=running.params,
            requester=running.requester,
            currency=running.currency,
            dependencies=[
                DependencyResult(d.id, d.agent, d.title, d.result or AgentResult(summary=""))
                for d in dependencies
            ],
        )
        limit = self._policy.agent_timeout_seconds
        retryable = not has_effects(agent)
        attempt = 0
        while True:
            attempt += 1
            # `uncertain`: the agent was stopped or broke mid-way, so it may have acted
            uncertain = False
            try:
                async with asyncio.timeout(limit):
                    raw = await agent.run(ctx)
            except TransientAgentError as exc:
                reason, transient = str(exc) or "a temporary failure", True
            except AgentError as exc:
                reason, transient = str(exc), False
            except TimeoutError:
                reason = f"The {agent.name} agent took longer than {limit:g} s and was stopped."
                transient, uncertain = agent.safe_to_rerun, True
            except Exception as exc:
                log.exception("agent %s failed on task %s", agent.name, running.id)
                reason, transient = f"{agent.name} agent crashed ({type(exc).__name__})", False
                uncertain = True
            else:
                await self._record_result(running, agent, raw)
                return
            if uncertain and has_effects(agent):
                await self._flag(running, "unknown", f"{reason} It may have taken effect.")
                return
            if not (transient and retryable) or self._policy.step_max_attempts <= 1:
                await self._fail(running, reason)
                return
            final = attempt >= self._policy.step_max_attempts
            delay = 0.0 if final else self._retry_delay(attempt)
            await self._write_until_done(
                functools.partial(
                    self._attempt_failed,
                    task=running,
                    attempt=attempt,
                    reason=reason,
                    wait=delay,
                    final=final,
                )
            )
            if final:
                return
            await self._sleep(delay)

    def _retry_delay(self, attempt: int) -> float:
        """Exponential backoff with jitter: between half and all of the ceiling."""
        ceiling = self._policy.retry_delay(attempt)
        return ceiling / 2 + ceiling / 2 * self._jitter()

    async def _attempt_failed(
        self, uow: UnitOfWork, task: Task, attempt: int, reason: str, wait: float, final: bool
    ) -> bool:
        await audit(
            uow,
            self._clock,
            task.id,
            SYSTEM,
            "attempt_failed",
            {"attempt": attempt, "reason": reason, "retry_in_seconds": round(wait, 3)}
            if not final
            else {"attempt": attempt, "reason": reason, "final": True},
        )
        if final:
            await fail_task(uow, task, f"{reason} (gave up after {attempt} attempts)", self._clock)
        return True

    async def _record_result(self, running: Task, agent: Agent, raw: Any) -> None:
        effects = has_effects(agent)
        reference = outcome_reference(raw) if effects else ""
        try:
            result = storable_result(raw)
        except NotStorable as exc:
            log.warning("task %s: result of %s not storable: %s", running.id, agent.name, exc)
            if effects:
                await self._flag(running, reference, f"The {agent.name} agent finished, but {exc}.")
            else:
                await self._fail(
                    running, f"The {agent.name} agent's result could not be stored: {exc}."
                )
            return
        if effects:
            # Known before anything else is written, so neither a failure below nor
            # recovery after a crash can fail the step and release its money.
            # An order placed and not yet on record is the window a crash turns into
            # "it may or may not have been placed": keep it as short as an ack's.
            await self._write(
                lambda uow: uow.tasks.record_outcome(running.id, result), None, urgent=True
            )
        try:
            done = await self._write(
                lambda uow: self._complete(uow, running, result, reference),
                attempts=self.record_attempts,
            )
            if not done and effects:
                await self._write_until_done(
                    lambda uow: self._outcome_after_end(uow, running, result, reference)
                )
        except Exception as exc:
            log.exception("task %s: could not record its outcome", running.id)
            what = f"its outcome could not be recorded ({type(exc).__name__})"
            if effects:
                await self._flag(running, reference, f"The {agent.name} step was done, but {what}.")
            else:
                await self._fail(running, f"The {agent.name} agent finished, but {what}.")

    async def _complete(
        self, uow: UnitOfWork, task: Task, result: AgentResult, reference: str
    ) -> bool:
        maybe_asked = self.needs_approval(task)
        if not await complete_task(
            uow, task, result, self._clock, grace=self._grace, maybe_asked=maybe_asked
        ):
            return False
        if reference.startswith("PO-"):
            budget = await self._budgets.status(uow, task.requester)
            await record_reference(uow, self._clock, task, reference, budget)
        return True

    async def _outcome_after_end(
        self, uow: UnitOfWork, task: Task, result: AgentResult, reference: str
    ) -> bool:
        """The step was ended by someone else (recovery, a cancel) while its agent was
        still placing the order: the status can't change any more, so make sure a
        person hears about the order rather than let it go unrecorded."""
        current = await uow.tasks.get(task.id)
        if current is None or current.status is TaskStatus.COMPLETED:
            return False
        log.error(
            "task %s ended as %s but its order %s was placed", task.id, current.status, reference
        )
        await audit(
            uow,
            self._clock,
            task.id,
            SYSTEM,
            "outcome_after_end",
            {"status": current.status.value, "reference": reference, "result": result.to_json()},
        )
        notices = attention_notices(
            task,
            destination_of(task),
            reference,
            f"The {task.agent} step was done after it had been marked "
            f"{current.status.value.lower()}, so it is not on the ledger; please reconcile it.",
            self._policy.approvers_for(task.requester),
            self._policy.approval_channel,
        )
        for notice in notices:
            await uow.outbox.add(notice, self._clock.now())
        return True

    async def _fail(self, task: Task, reason: str) -> None:
        await self._write_until_done(
            lambda uow: fail_task(uow, task, reason, self._clock, grace=self._grace)
        )

    async def _flag(self, task: Task, reference: str, detail: str) -> None:
        approvers = self._policy.approvers_for(task.requester)
        await self._write_until_done(
            lambda uow: flag_task(
                uow, task, reference, detail, approvers, self._clock, self._policy.approval_channel
            )
        )

    async def _write(
        self,
        write: Callable[[UnitOfWork], Awaitable[_T]],
        attempts: int | None,
        *,
        urgent: bool = False,
    ) -> _T:
        """Run `write` in its own unit of work, retried with capped exponential backoff
        while it fails (the database briefly away); `attempts=None` tries until it works.
        `urgent`: on the ack path's group, never waiting behind background work."""
        tried = 0
        while True:
            tried += 1
            try:
                if urgent:
                    # shielded: a step cancelled at shutdown must still leave a placed
                    # order on record (a cancelled caller's grouped work never commits)
                    return await asyncio.shield(self._uow_factory.together(write))
                # a step's outcome goes before other requests' next steps: replies first
                return await self._uow_factory.together(write, background=True, first=True)
            except Exception:
                if attempts is not None and tried >= attempts:
                    raise
                level = logging.WARNING if tried < self.record_attempts else logging.ERROR
                log.log(level, "recording a step outcome failed (try %d)", tried, exc_info=True)
            await self._sleep(
                min(RECORD_BACKOFF_MAX_SECONDS, self.record_backoff_seconds * 2 ** (tried - 1))
            )

    async def _write_until_done(self, write: Callable[[UnitOfWork], Awaitable[_T]]) -> _T:
        return await self._write(write, attempts=None)
