"""Runs one task: gate it (budget, approval), execute its agent, record the outcome."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import timedelta
from enum import Enum

from core.agents.base import AgentContext, AgentError, AgentResult, DependencyResult
from core.agents.registry import AgentRegistry
from core.audit import audit
from core.budget import Budgets
from core.clock import Clock
from core.money import format_money
from core.notices import ApprovalNeeded, Destination, TaskFailed, TaskFinished
from core.policy import Policy
from core.ports import UnitOfWork, UnitOfWorkFactory
from core.records import LedgerEntry, Task, TaskChanges
from core.states import ApprovalStatus, TaskStatus
from core.status import DEFAULT_GRACE_SECONDS, write_status
from core.transitions import transition

log = logging.getLogger(__name__)

SYSTEM = "taskbot"


class Gate(Enum):
    READY = "ready"
    WAITING = "waiting"
    REFUSED = "refused"


def destination_of(task: Task) -> Destination:
    if not task.conversation.channel:  # submitted over the HTTP API: tell the requester by DM
        return Destination(user=task.requester)
    return Destination(channel=task.conversation.channel, thread_ts=task.conversation.thread_ts)


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


class TaskExecutor:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        registry: AgentRegistry,
        policy: Policy,
        clock: Clock,
        worker: str = "local",
    ) -> None:
        self.worker = worker
        self._uow = uow
        self._registry = registry
        self._policy = policy
        self._clock = clock
        self._budgets = Budgets(policy, clock)

    def needs_approval(self, task: Task) -> bool:
        return self._registry.get(task.agent).requires_approval

    async def gate(self, task: Task) -> Gate:
        """Decide whether a PENDING task whose dependencies are done may run now."""
        agent = self._registry.get(task.agent)
        async with self._uow() as uow:
            current = await uow.tasks.get(task.id)
            if current is None or current.status is not TaskStatus.PENDING:
                return Gate.WAITING
            if agent.requires_approval:
                approval = await uow.approvals.for_task(task.id)
                if approval is None:
                    return await self._request_approval(uow, current)
                return Gate.READY if approval.status is ApprovalStatus.APPROVED else Gate.WAITING
            if current.cost_cents > 0 and not await self._budgets.hold(uow, current):
                await self._refuse_over_budget(uow, current)
                return Gate.REFUSED
        return Gate.READY

    async def _request_approval(self, uow: UnitOfWork, task: Task) -> Gate:
        if task.cost_cents > 0 and not await self._budgets.hold(uow, task):
            await self._refuse_over_budget(uow, task)
            return Gate.REFUSED
        now = self._clock.now()
        approvers = self._policy.approvers_for(task.requester)
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
        await uow.outbox.add(
            ApprovalNeeded(
                destination=destination_of(task),
                task_id=task.id,
                approval_id=approval.id,
                requester=task.requester,
                title=task.title,
                amount_cents=task.cost_cents,
                currency=task.currency,
                approvers=approvers,
                remaining_cents=budget.remaining_cents,
            ),
            now,
        )
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

    async def execute(self, task: Task, dependencies: Sequence[Task]) -> None:
        """Claim the task (PENDING → IN_PROGRESS), run its agent, record the outcome."""
        async with self._uow() as uow:
            claimed = await transition(
                uow,
                task,
                TaskStatus.IN_PROGRESS,
                actor=SYSTEM,
                clock=self._clock,
                changes=TaskChanges(started_at=self._clock.now(), worker=self.worker),
            )
            if claimed:
                await write_status(uow, self._clock, task, grace=self._grace)
        if not claimed:
            return
        running = await self._reload(task.id)
        agent = self._registry.get(task.agent)
        ctx = AgentContext(
            task_id=task.id,
            title=task.title,
            params=task.params,
            requester=task.requester,
            currency=task.currency,
            dependencies=[
                DependencyResult(d.id, d.agent, d.title, d.result or AgentResult(summary=""))
                for d in dependencies
            ],
        )
        limit = self._policy.agent_timeout_seconds
        try:
            async with asyncio.timeout(limit):
                result = await agent.run(ctx)
        except AgentError as exc:
            await self._finish_failed(running, str(exc))
        except TimeoutError:
            await self._finish_failed(
                running, f"The {task.agent} agent took longer than {limit:g} s and was stopped."
            )
        except Exception as exc:
            log.exception("agent %s failed on task %s", task.agent, task.id)
            await self._finish_failed(running, f"{task.agent} agent crashed ({type(exc).__name__})")
        else:
            await self._finish_completed(running, result)

    async def _reload(self, task_id: int) -> Task:
        async with self._uow(read_only=True) as uow:
            task = await uow.tasks.get(task_id)
        assert task is not None
        return task

    async def _finish_completed(self, task: Task, result: AgentResult) -> None:
        now = self._clock.now()
        async with self._uow() as uow:
            if not await transition(
                uow,
                task,
                TaskStatus.COMPLETED,
                actor=SYSTEM,
                clock=self._clock,
                changes=TaskChanges(result=result, finished_at=now, cost_cents=result.cost_cents),
            ):
                return
            if result.cost_cents > 0:
                await uow.budgets.settle(task.id, result.cost_cents)
            else:
                await uow.budgets.release(task.id)
            await uow.ledger.record(
                LedgerEntry(
                    task.id, task.requester, result.cost_cents, task.currency, task.title, now
                )
            )
            await audit(
                uow,
                self._clock,
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
            await write_status(uow, self._clock, task, grace=self._grace)

    async def _finish_failed(self, task: Task, reason: str) -> None:
        async with self._uow() as uow:
            await fail_task(uow, task, reason, self._clock, grace=self._grace)


async def _feeds_a_later_step(uow: UnitOfWork, task: Task) -> bool:
    """A step whose result only feeds another step (research for an email draft)."""
    if task.is_root:
        return False
    siblings = await uow.tasks.children(task.root_id)
    return any(task.id in s.depends_on for s in siblings)
