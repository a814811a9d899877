"""The stale report: PENDING tasks left too long, each escalating at 1×, 2×, 4×… the
threshold; an escalation brings a destination today's digest of all its waiting tasks."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import timedelta

from core.clock import Clock
from core.notices import Destination, StaleReport, StaleTask
from core.policy import Policy
from core.ports import UnitOfWork, UnitOfWorkFactory
from core.records import ApprovalMessage, Task
from core.states import ApprovalStatus, TaskStatus


def escalation_step(age_seconds: float, stale_after: int) -> int:
    """0 before `stale_after`; then 1, 2, 3… at 1×, 2×, 4×… that age."""
    if age_seconds < stale_after:
        return 0
    return 1 + int(math.log2(age_seconds / stale_after))


class StaleReporter:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        policy: Policy,
        clock: Clock,
        report_channel: str | None,
    ) -> None:
        self._uow_factory = uow_factory
        self._policy = policy
        self._clock = clock
        self._channel = report_channel

    async def run(self, limit: int = 200) -> int:
        """Write one digest of newly stale tasks to the outbox; returns how many it lists."""
        now = self._clock.now()
        cutoff = now - timedelta(seconds=self._policy.stale_after_seconds)
        async with self._uow_factory() as uow:
            candidates = await uow.tasks.pending_created_before(cutoff, limit)
            stale: list[_Listed] = []
            escalated: set[int] = set()
            for task in candidates:
                age = (now - task.created_at).total_seconds()
                step = escalation_step(age, self._policy.stale_after_seconds)
                if await uow.tasks.mark_stale_step(task.id, step):
                    escalated.add(task.id)
                stale.append(await self._describe(uow, task, int(age)))
            day = now.date().isoformat()
            for destination, tasks in self._digests(stale):
                # a destination hears again only when one of its tasks escalated, and
                # then sees all of its waiting tasks, in the day's one message
                if escalated & {t.task_id for t in tasks}:
                    await uow.outbox.add(
                        StaleReport(destination=destination, task_id=None, tasks=tasks, day=day),
                        now,
                    )
        return len(escalated)

    def _digests(self, listed: list[_Listed]) -> list[tuple[Destination, tuple[StaleTask, ...]]]:
        """One digest to the report channel; without one, a DM to each approver listing
        the tasks they approve. Each task links to a message its reader can open."""
        if not listed:
            return []
        if self._channel:
            return [
                (
                    Destination(channel=self._channel),
                    tuple(_linked(t, copies, None) for t, _, copies in listed),
                )
            ]
        by_user: dict[str, list[StaleTask]] = {}
        for stale, approvers, copies in listed:
            for user in approvers:
                by_user.setdefault(user, []).append(_linked(stale, copies, user))
        return [(Destination(user=u), tuple(tasks)) for u, tasks in by_user.items()]

    async def _describe(self, uow: UnitOfWork, task: Task, age: int) -> _Listed:
        approval = await uow.approvals.for_task(task.id)
        copies: list[ApprovalMessage] = []
        approvers = approval.approvers if approval else self._policy.approvers_for(task.requester)
        unfinished = [
            d.id
            for d in await uow.tasks.get_many(task.depends_on)
            if d.status is not TaskStatus.COMPLETED
        ]
        waiting_on: tuple[str, ...] = ()
        if approval is not None and approval.status is ApprovalStatus.PENDING:
            waiting = "approval from " + ", ".join(approval.approvers)
            waiting_on = approval.approvers
            copies = await uow.approvals.messages(approval.id)
        elif unfinished:
            waiting = "step " + ", ".join(f"#{d}" for d in sorted(unfinished))
        else:
            waiting = "a worker to start it"
        stale = StaleTask(
            task_id=task.id,
            title=task.title,
            requester=task.requester,
            age_seconds=age,
            waiting_for=waiting,
            channel=task.conversation.channel,
            thread_ts=task.conversation.thread_ts,
            waiting_on=waiting_on,
        )
        return stale, approvers, copies


_Listed = tuple[StaleTask, tuple[str, ...], list[ApprovalMessage]]


def _linked(stale: StaleTask, copies: list[ApprovalMessage], reader: str | None) -> StaleTask:
    """Point a task waiting for approval at the copy of the approval message its reader
    holds (their DM, or the shared approval channel): the requester's thread may be a DM
    or a channel the reader is not in. Other tasks keep the requester's thread."""
    mine = [c for c in copies if reader is not None and c.recipient == reader]
    shared = [c for c in copies if c.recipient is None]
    for copy in mine or shared:
        return replace(
            stale,
            channel=copy.channel,
            thread_ts=copy.message_ts,
            approval_channel=copy.channel,
            approval_ts=copy.message_ts,
        )
    return stale
