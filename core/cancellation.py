"""Cancelling one's own pending task (or the pending rest of a request)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from core.approvals import Approvals
from core.clock import Clock
from core.executor import flag_task, outcome_reference
from core.notices import TaskCancelled, destination_of
from core.policy import Policy
from core.ports import UnitOfWork, UnitOfWorkFactory
from core.records import Task, TaskChanges
from core.states import ApprovalStatus, TaskMoved, TaskStatus, transition
from core.status import write_status


@dataclass(frozen=True)
class CancelOutcome:
    cancelled: bool
    message: str
    root_id: int | None = None
    #: the task exists but someone else asked for it
    not_yours: bool = False


class Cancellation:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        approvals: Approvals,
        clock: Clock,
        policy: Policy | None = None,
        has_effects: Callable[[str], bool] | None = None,
    ) -> None:
        self._uow_factory = uow_factory
        self._approvals = approvals
        self._clock = clock
        self._policy = policy or Policy()
        self._has_effects = has_effects or (lambda _agent: True)

    def _wedged(self, task: Task) -> bool:
        """Running far longer than any healthy step can (every attempt timing out):
        its worker is stuck, so it no longer blocks a cancel."""
        if task.status is not TaskStatus.IN_PROGRESS or task.started_at is None:
            return False
        age = (self._clock.now() - task.started_at).total_seconds()
        return age > self._policy.stuck_after_seconds

    async def cancel(self, requester: str, task_id: int) -> CancelOutcome:
        try:
            return await self._cancel(requester, task_id)
        except TaskMoved:
            return CancelOutcome(
                False,
                f"Request {task_id} changed while I was cancelling it (a step started or "
                "finished), so nothing was cancelled. Check it and try again.",
            )

    async def _cancel(self, requester: str, task_id: int) -> CancelOutcome:
        async with self._uow_factory(urgent=True) as uow:
            task = await uow.tasks.get(task_id)
            if task is None or task.requester != requester:
                return CancelOutcome(
                    False,
                    f"I can't find request {task_id} among your requests.",
                    not_yours=task is not None,
                )
            children = await uow.tasks.children(task.id)
            running = [c for c in children if c.status is TaskStatus.IN_PROGRESS]
            if not children and task.status is TaskStatus.IN_PROGRESS:
                running = [task]
            if not all(self._wedged(r) for r in running):
                return CancelOutcome(
                    False,
                    f"A step of request {task_id} is running right now; try again when it "
                    "has finished.",
                )
            open_steps = [c for c in children if c.status is TaskStatus.PENDING]
            cancellable = (
                task.status is TaskStatus.PENDING
                or bool(running)
                or (children and task.status is TaskStatus.IN_PROGRESS and open_steps)
            )
            if not cancellable:
                return CancelOutcome(
                    False,
                    f"Request {task_id} is {task.status.value.lower().replace('_', ' ')}; "
                    "only requests that haven't finished can be cancelled.",
                )
            reason = f"Cancelled by {requester}."
            flagged = [r for r in running if self._may_have_effects(r)]
            for stuck in running:
                if not await self._abandon(uow, stuck, requester):
                    raise TaskMoved
            for step in [*open_steps, task]:
                if step is task and task in running:
                    continue  # a single wedged task: abandoned above
                if not await self._cancel_one(uow, step, requester, reason):
                    raise TaskMoved  # claimed or finished since we read it: roll it all back
            if task not in flagged:
                await uow.outbox.add(
                    TaskCancelled(
                        destination=destination_of(task),
                        task_id=task.id,
                        title=task.title,
                        reason=reason,
                    ),
                    self._clock.now(),
                )
            await write_status(uow, self._clock, task)
        if flagged:
            steps = ", ".join(f"#{f.id}" for f in flagged)
            return CancelOutcome(
                True,
                f"Stopped task #{task_id}. Step {steps} had been running far too long and may "
                "have taken effect, so it was not cancelled: the approvers were asked to check "
                "it, and its money stays held until they do.",
                task.root_id,
            )
        return CancelOutcome(True, f"Cancelled request {task_id}.", task.root_id)

    def _may_have_effects(self, task: Task) -> bool:
        return self._has_effects(task.agent) or task.result is not None

    async def _abandon(self, uow: UnitOfWork, task: Task, actor: str) -> bool:
        """A wedged step: cancelled, unless it may have had effects (an order placed),
        then it needs attention instead and keeps its money held."""
        age = int((self._clock.now() - (task.started_at or self._clock.now())).total_seconds())
        if self._may_have_effects(task):
            reference = outcome_reference(task.result) if task.result is not None else "unknown"
            detail = (
                f"Cancelled by {actor} after running for {age} s without finishing; it may "
                "have taken effect, so please check it."
            )
            approvers = self._policy.approvers_for(task.requester)
            return await flag_task(
                uow, task, reference, detail, approvers, self._clock, self._policy.approval_channel
            )
        reason = f"Cancelled by {actor}: it had been running for {age} s without finishing."
        return await self._cancel_one(uow, task, actor, reason)

    async def _cancel_one(self, uow: UnitOfWork, task: Task, actor: str, reason: str) -> bool:
        """Cancel `task` as it was read; False when it moved on since (claimed, finished)."""
        approval = await uow.approvals.for_task(task.id)
        if approval is not None and approval.status is ApprovalStatus.PENDING:
            await self._approvals.close_approval(uow, approval, ApprovalStatus.CANCELLED, actor)
        # Conditional on the status we decided on, not a re-read: a step a worker has
        # just claimed must not be cancelled under its running agent.
        if not await transition(
            uow,
            task,
            TaskStatus.CANCELLED,
            actor=actor,
            clock=self._clock,
            changes=TaskChanges(error=reason, finished_at=self._clock.now()),
        ):
            return False
        await uow.budgets.release(task.id)
        return True
