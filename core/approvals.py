"""Human decisions on tasks that spend money or reach outside."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from core.audit import audit
from core.clock import Clock
from core.executor import destination_of
from core.notices import ApprovalDecided, Notice, TaskCancelled, TaskRejected
from core.ports import UnitOfWork, UnitOfWorkFactory
from core.records import Approval, TaskChanges
from core.states import ApprovalStatus, TaskStatus
from core.status import write_status
from core.transitions import transition


class Decision(Enum):
    APPROVE = "approve"
    DENY = "deny"


class DecisionResult(Enum):
    DECIDED = "decided"
    NOT_FOUND = "not_found"
    NOT_ALLOWED = "not_allowed"
    ALREADY_DECIDED = "already_decided"
    WRONG_MESSAGE = "wrong_message"


@dataclass(frozen=True)
class DecisionOutcome:
    result: DecisionResult
    approval: Approval | None = None
    #: the root task to advance after an approval
    resume_root: int | None = None

    @property
    def message(self) -> str:
        a = self.approval
        if self.result is DecisionResult.NOT_FOUND or a is None:
            return "I can't find that approval any more."
        if self.result is DecisionResult.NOT_ALLOWED:
            return "You can't approve this request: only the listed approvers can."
        if self.result is DecisionResult.WRONG_MESSAGE:
            return "That button doesn't belong to this approval."
        if self.result is DecisionResult.ALREADY_DECIDED:
            who = f" by {a.decided_by}" if a.decided_by else ""
            return f"This request was already {a.status.value.lower()}{who}."
        return f"{a.status.value.capitalize()}."


_OUTCOME = {
    ApprovalStatus.APPROVED: "approved",
    ApprovalStatus.DENIED: "denied",
    ApprovalStatus.EXPIRED: "expired",
    ApprovalStatus.CANCELLED: "cancelled",
}


class Approvals:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def decide(
        self,
        approval_id: int,
        user: str,
        decision: Decision,
        *,
        channel: str | None = None,
        message_ts: str | None = None,
    ) -> DecisionOutcome:
        """Record one person's decision. The first decision wins; later ones change nothing.

        `channel`/`message_ts` name the message the click came from: a click from
        any other message than the approval's own is refused.
        """
        async with self._uow(urgent=True) as uow:
            approval = await uow.approvals.get(approval_id)
            if approval is None:
                return DecisionOutcome(DecisionResult.NOT_FOUND)
            if message_ts is not None and (
                approval.message_ts != message_ts or approval.channel != channel
            ):
                return DecisionOutcome(DecisionResult.WRONG_MESSAGE, approval)
            if not approval.may_decide(user):
                return DecisionOutcome(DecisionResult.NOT_ALLOWED, approval)
            status = (
                ApprovalStatus.APPROVED if decision is Decision.APPROVE else ApprovalStatus.DENIED
            )
            if not await self.close_approval(uow, approval, status, user):
                current = await uow.approvals.get(approval_id)
                return DecisionOutcome(DecisionResult.ALREADY_DECIDED, current)
            decided = await uow.approvals.get(approval_id)
            task = await uow.tasks.get(approval.task_id)
            assert decided is not None and task is not None
            if status is ApprovalStatus.DENIED:
                await self._stop_task(uow, approval, TaskStatus.REJECTED, user, "")
                return DecisionOutcome(DecisionResult.DECIDED, decided, task.root_id)
        return DecisionOutcome(DecisionResult.DECIDED, decided, task.root_id)

    async def close_and_stop(
        self,
        uow: UnitOfWork,
        approval: Approval,
        status: ApprovalStatus,
        actor: str | None,
        reason: str,
    ) -> bool:
        """Expire or cancel a pending approval and stop its task (used by jobs and /tasks)."""
        if not await self.close_approval(uow, approval, status, actor):
            return False
        await self._stop_task(uow, approval, TaskStatus.CANCELLED, actor or "taskbot", reason)
        return True

    async def close_approval(
        self, uow: UnitOfWork, approval: Approval, status: ApprovalStatus, user: str | None
    ) -> bool:
        """Record the approval's end and replace its message; False if it had ended already."""
        now = self._clock.now()
        if not await uow.approvals.decide(approval.id, status, user, now):
            return False
        await audit(
            uow,
            self._clock,
            approval.task_id,
            user or "taskbot",
            f"approval_{_OUTCOME[status]}",
            {"approval_id": approval.id},
        )
        task = await uow.tasks.get(approval.task_id)
        assert task is not None
        await uow.outbox.add(
            ApprovalDecided(
                destination=destination_of(task),
                task_id=task.id,
                approval_id=approval.id,
                title=task.title,
                outcome=_OUTCOME[status],
                decided_by=user,
                message_ts=approval.message_ts,
                amount_cents=approval.amount_cents,
                currency=approval.currency,
            ),
            now,
        )
        return True

    async def _stop_task(
        self, uow: UnitOfWork, approval: Approval, target: TaskStatus, actor: str, reason: str
    ) -> None:
        task = await uow.tasks.get(approval.task_id)
        if task is None or task.status is not TaskStatus.PENDING:
            return
        now = self._clock.now()
        error = reason or f"Denied by {actor}."
        if await transition(
            uow,
            task,
            target,
            actor=actor,
            clock=self._clock,
            changes=TaskChanges(error=error, finished_at=now),
        ):
            await uow.budgets.release(task.id)
            notice: Notice = (
                TaskRejected(
                    destination=destination_of(task),
                    task_id=task.id,
                    title=task.title,
                    decided_by=actor,
                )
                if target is TaskStatus.REJECTED
                else TaskCancelled(
                    destination=destination_of(task),
                    task_id=task.id,
                    title=task.title,
                    reason=error,
                )
            )
            await uow.outbox.add(notice, now)
            await write_status(uow, self._clock, task)
