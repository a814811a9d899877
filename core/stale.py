"""The stale report: PENDING tasks left too long, each reported once per escalation step."""

from __future__ import annotations

import math
from datetime import timedelta

from core.clock import Clock
from core.notices import Destination, StaleReport, StaleTask
from core.policy import Policy
from core.ports import UnitOfWork, UnitOfWorkFactory
from core.records import Task


def escalation_step(age_seconds: float, stale_after: int) -> int:
    """0 before `stale_after`; then 1, 2, 3… at 1×, 2×, 4×… that age."""
    if age_seconds < stale_after:
        return 0
    return 1 + int(math.log2(age_seconds / stale_after))


class StaleReporter:
    def __init__(
        self, uow: UnitOfWorkFactory, policy: Policy, clock: Clock, report_channel: str | None
    ) -> None:
        self._uow = uow
        self._policy = policy
        self._clock = clock
        self._channel = report_channel

    async def run(self, limit: int = 200) -> int:
        """Write one digest of newly stale tasks to the outbox; returns how many it lists."""
        now = self._clock.now()
        cutoff = now - timedelta(seconds=self._policy.stale_after_seconds)
        async with self._uow() as uow:
            candidates = await uow.tasks.pending_created_before(cutoff, limit)
            listed: list[StaleTask] = []
            for task in candidates:
                age = (now - task.created_at).total_seconds()
                step = escalation_step(age, self._policy.stale_after_seconds)
                if await uow.tasks.mark_stale_step(task.id, step):
                    listed.append(await self._describe(uow, task, int(age)))
            if listed:
                for destination in self._destinations():
                    await uow.outbox.add(
                        StaleReport(destination=destination, task_id=None, tasks=tuple(listed)),
                        now,
                    )
        return len(listed)

    def _destinations(self) -> list[Destination]:
        if self._channel:
            return [Destination(channel=self._channel)]
        return [Destination(user=u) for u in self._policy.approvers] or []

    async def _describe(self, uow: UnitOfWork, task: Task, age: int) -> StaleTask:
        approval = await uow.approvals.for_task(task.id)
        if approval is not None:
            waiting = "approval from " + ", ".join(approval.approvers)
        elif task.depends_on:
            waiting = "step " + ", ".join(f"#{d}" for d in task.depends_on)
        else:
            waiting = "a worker to start it"
        return StaleTask(
            task_id=task.id,
            title=task.title,
            requester=task.requester,
            age_seconds=age,
            waiting_for=waiting,
            channel=task.conversation.channel,
            thread_ts=task.conversation.thread_ts,
        )
