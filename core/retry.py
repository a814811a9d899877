"""Re-running a failed request from its failed steps.

Completed steps keep their results and are not run again; each failed step (and
the request itself) goes FAILED → PENDING through the state machine, audited
with the person who asked, and the orchestrator drives the graph again.

Money: a failed step that needs approval is retried only if it never got one
(it failed before asking, e.g. over budget): the retry then asks again and holds
the budget again. One that was approved has run, or was about to, and may have
spent: it is never re-run; the person is told to check and send a new request.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.agents.registry import AgentRegistry
from core.clock import Clock
from core.notices import TaskRetried, destination_of
from core.ports import UnitOfWork, UnitOfWorkFactory
from core.records import Task, TaskChanges
from core.states import TaskMoved, TaskStatus, transition


@dataclass(frozen=True)
class RetryOutcome:
    retried: bool
    message: str
    root_id: int | None = None
    #: the steps put back to PENDING
    steps: tuple[int, ...] = ()
    #: why not, for front ends that map it (HTTP status): not_found / conflict
    reason: str | None = None


class Retrying:
    def __init__(
        self, uow_factory: UnitOfWorkFactory, registry: AgentRegistry, clock: Clock
    ) -> None:
        self._uow_factory = uow_factory
        self._registry = registry
        self._clock = clock

    async def retry(self, requester: str, task_id: int) -> RetryOutcome:
        try:
            return await self._retry(requester, task_id)
        except TaskMoved:
            return RetryOutcome(
                False,
                f"Task #{task_id} changed while I was retrying it, so nothing was retried. "
                "Check it and try again.",
                reason="conflict",
            )

    async def _retry(self, requester: str, task_id: int) -> RetryOutcome:
        async with self._uow_factory(urgent=True) as uow:
            task = await uow.tasks.get(task_id)
            if task is None or task.requester != requester:
                return RetryOutcome(
                    False, f"I can't find task #{task_id} among your tasks.", reason="not_found"
                )
            root = task if task.is_root else await uow.tasks.get(task.root_id)
            assert root is not None
            if root.status is not TaskStatus.FAILED:
                state = root.status.value.lower().replace("_", " ")
                return RetryOutcome(
                    False,
                    f"Task #{root.id} is {state}; only a failed request can be retried.",
                    reason="conflict",
                )
            children = await uow.tasks.children(root.id)
            failed = [s for s in (children or [root]) if s.status is TaskStatus.FAILED]
            if not failed:
                return RetryOutcome(
                    False,
                    f"No step of task #{root.id} failed (it was denied or cancelled), "
                    "so there is nothing to retry.",
                    reason="conflict",
                )
            refusal = await self._spent_already(uow, failed)
            if refusal is not None:
                return RetryOutcome(False, refusal, reason="conflict")
            for step in [*failed, *([root] if children else [])]:
                if not await transition(
                    uow,
                    step,
                    TaskStatus.PENDING,
                    actor=requester,
                    clock=self._clock,
                    changes=TaskChanges(reset=True),
                    detail={"retry": True},
                ):
                    raise TaskMoved
            await uow.outbox.add(
                TaskRetried(
                    destination=destination_of(root),
                    task_id=root.id,
                    title=root.title,
                    retried_by=requester,
                    step_titles=tuple(f"#{s.id} {s.title}" for s in failed),
                ),
                self._clock.now(),
            )
        return RetryOutcome(
            True,
            f"Retrying task #{root.id}: {len(failed)} failed step(s) will run again.",
            root.id,
            tuple(s.id for s in failed),
        )

    async def _spent_already(self, uow: UnitOfWork, failed: list[Task]) -> str | None:
        for step in failed:
            agent = self._registry.get(step.agent) if step.agent in self._registry else None
            if agent is not None and not agent.requires_approval:
                continue
            if await uow.approvals.for_task(step.id) is not None:
                return (
                    f"Step #{step.id} ({step.title}) was already approved and may have spent "
                    "money, so I won't run it again. Please check it and send a new request."
                )
        return None
