"""After a crash: steps left IN_PROGRESS by a dead worker are re-run, finished or
failed, never left.

A step whose result was already stored (an order placed) is finished from that
result, never re-run and never failed with its money released; if finishing it
fails, or a money step was cut off mid-call (its order may have gone out), it
needs attention: the hold stays and the approvers are told. Every IN_PROGRESS
task is looked at, page after page, however many requests wait in front of it.
"""

from __future__ import annotations

import logging

from core.agents.base import Agent
from core.agents.registry import AgentRegistry
from core.clock import Clock
from core.executor import SYSTEM, complete_task, fail_task, flag_task, outcome_reference
from core.policy import Policy
from core.ports import TaskCursor, UnitOfWorkFactory, cursor_of
from core.records import Task
from core.states import TaskStatus, transition

log = logging.getLogger(__name__)

PAGE = 200


def worker_lease(worker: str) -> str:
    return f"worker:{worker}"


class Recovery:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        registry: AgentRegistry,
        clock: Clock,
        worker: str | None = None,
        policy: Policy | None = None,
    ) -> None:
        self._uow_factory = uow_factory
        self._registry = registry
        self._clock = clock
        self._policy = policy or Policy()
        #: this process: whatever its lease says, it is not dead while it asks
        self._worker = worker

    async def run(self, page: int = PAGE) -> list[int]:
        """Returns the root ids to advance again."""
        roots: list[int] = []
        after: TaskCursor | None = None
        while True:
            async with self._uow_factory(read_only=True) as uow:
                running = await uow.tasks.running_steps(page, after)
            for task in running:
                try:
                    if await self._recover(task):
                        roots.append(task.root_id)
                except Exception as exc:
                    log.exception("recovering task %s failed", task.id)
                    if task.result is not None and await self._flag_quietly(task, exc):
                        roots.append(task.root_id)
            if len(running) < page:
                return roots
            after = cursor_of(running[-1])

    async def _recover(self, task: Task) -> bool:
        now = self._clock.now()
        if task.worker and task.worker == self._worker:
            return False  # this process: alive while it asks, whatever its lease says
        async with self._uow_factory() as uow:
            if task.worker and await uow.leases.alive(worker_lease(task.worker), now):
                return False
            if task.result is not None:
                # Its outcome was stored before the worker died: record it, do not re-run.
                return await complete_task(uow, task, task.result, self._clock)
            agent = self._agent(task.agent)
            if agent is not None and agent.safe_to_rerun:
                return await transition(
                    uow,
                    task,
                    TaskStatus.PENDING,
                    actor=SYSTEM,
                    clock=self._clock,
                    detail={"reason": "re-run after the worker stopped"},
                )
            if agent is None or agent.requires_approval:
                # Money may have moved: neither re-run nor failed with the hold released.
                detail = (
                    "Interrupted by a restart while it ran, so it was not re-run. The order "
                    "may or may not have been placed: please check before asking again."
                )
                approvers = self._policy.approvers_for(task.requester)
                return await flag_task(
                    uow,
                    task,
                    "unknown",
                    detail,
                    approvers,
                    self._clock,
                    self._policy.approval_channel,
                )
            reason = (
                "Interrupted by a restart before it finished. It was not re-run because "
                "it may have had effects; please check and ask again if needed."
            )
            return await fail_task(uow, task, reason, self._clock)

    async def _flag_quietly(self, task: Task, error: Exception) -> bool:
        """A stored outcome that cannot be recorded: a person has to look at it
        (if even that fails, the task stays IN_PROGRESS for the next run)."""
        reference = outcome_reference(task.result)
        approvers = self._policy.approvers_for(task.requester)
        detail = (
            f"It was done, but recording its outcome after a restart failed "
            f"({type(error).__name__})."
        )
        try:
            async with self._uow_factory() as uow:
                return await flag_task(
                    uow,
                    task,
                    reference,
                    detail,
                    approvers,
                    self._clock,
                    self._policy.approval_channel,
                )
        except Exception:
            log.exception("flagging task %s failed; trying again next run", task.id)
            return False

    def _agent(self, name: str) -> Agent | None:
        try:
            return self._registry.get(name)
        except KeyError:
            return None
