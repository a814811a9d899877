"""Reminds approvers of undecided approvals, and expires those left too long."""

from __future__ import annotations

from datetime import timedelta

from core.approval_routing import approver_destinations
from core.approvals import Approvals
from core.clock import Clock
from core.notices import ApprovalReminder, Destination
from core.policy import Policy
from core.ports import UnitOfWork, UnitOfWorkFactory
from core.records import Approval
from core.states import ApprovalStatus


class ApprovalTimer:
    def __init__(
        self, uow_factory: UnitOfWorkFactory, approvals: Approvals, policy: Policy, clock: Clock
    ) -> None:
        self._uow_factory = uow_factory
        self._approvals = approvals
        self._policy = policy
        self._clock = clock

    async def run(self, limit: int = 500) -> tuple[int, list[int]]:
        """Returns (reminders written, root ids whose approval expired and must advance)."""
        now = self._clock.now()
        reminded, expired_roots = 0, []
        async with self._uow_factory(read_only=True) as uow:
            pending = await uow.approvals.pending(limit)
        for approval in pending:
            async with self._uow_factory() as uow:
                if approval.expires_at <= now:
                    hours = self._policy.approval_ttl_seconds // 3600
                    reason = f"No decision within {_span(hours)}; the approval expired."
                    if await self._approvals.close_and_stop(
                        uow, approval, ApprovalStatus.EXPIRED, None, reason
                    ):
                        task = await uow.tasks.get(approval.task_id)
                        if task is not None:
                            expired_roots.append(task.root_id)
                    continue
                due = now - timedelta(seconds=self._policy.reminder_after_seconds)
                if approval.created_at > due:
                    continue
                if await uow.approvals.remind(approval.id, now, due):
                    title = await self._title(uow, approval.task_id)
                    for destination in await self._where(uow, approval):
                        await uow.outbox.add(
                            ApprovalReminder(
                                destination=destination,
                                task_id=approval.task_id,
                                approval_id=approval.id,
                                title=title,
                                approvers=approval.approvers,
                                waiting_seconds=int((now - approval.created_at).total_seconds()),
                            ),
                            now,
                        )
                    reminded += 1
        return reminded, expired_roots

    async def _where(self, uow: UnitOfWork, approval: Approval) -> list[Destination]:
        """Under each posted copy of the approval message, where its buttons are;
        to the approvers themselves if none is recorded yet."""
        copies = await uow.approvals.messages(approval.id)
        if copies:
            return [Destination(c.channel, c.message_ts) for c in copies]
        return approver_destinations(self._policy, approval.approvers)

    @staticmethod
    async def _title(uow: UnitOfWork, task_id: int) -> str:
        task = await uow.tasks.get(task_id)
        return task.title if task is not None else f"task #{task_id}"


def _span(hours: int) -> str:
    return f"{hours // 24} days" if hours >= 48 else f"{hours} hours"
