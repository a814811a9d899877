"""After a crash: steps left IN_PROGRESS by a dead worker are re-run or failed, never left."""

from __future__ import annotations

from core.agents.registry import AgentRegistry
from core.clock import Clock
from core.executor import SYSTEM, fail_task
from core.ports import UnitOfWorkFactory
from core.states import TaskStatus
from core.transitions import transition


def worker_lease(worker: str) -> str:
    return f"worker:{worker}"


class Recovery:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        registry: AgentRegistry,
        clock: Clock,
        worker: str | None = None,
    ) -> None:
        self._uow = uow
        self._registry = registry
        self._clock = clock
        #: this process: whatever its lease says, it is not dead while it asks
        self._worker = worker

    async def run(self, limit: int = 500) -> list[int]:
        """Returns the root ids to advance again."""
        now = self._clock.now()
        roots: list[int] = []
        async with self._uow(read_only=True) as uow:
            running = await uow.tasks.with_status(TaskStatus.IN_PROGRESS, limit)
        for task in running:
            async with self._uow() as uow:
                if await uow.tasks.children(task.id):
                    continue  # a request's own status follows its steps
                if task.worker and task.worker == self._worker:
                    continue
                if task.worker and await uow.leases.alive(worker_lease(task.worker), now):
                    continue
                if self._safe_to_rerun(task.agent):
                    won = await transition(
                        uow,
                        task,
                        TaskStatus.PENDING,
                        actor=SYSTEM,
                        clock=self._clock,
                        detail={"reason": "re-run after the worker stopped"},
                    )
                else:
                    reason = (
                        "Interrupted by a restart before it finished. It was not re-run because "
                        "it may have had effects; please check and ask again if needed."
                    )
                    won = await fail_task(uow, task, reason, self._clock)
                if won:
                    roots.append(task.root_id)
        return roots

    def _safe_to_rerun(self, agent: str) -> bool:
        try:
            return self._registry.get(agent).safe_to_rerun
        except KeyError:
            return False
