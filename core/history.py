"""What a person may see of their own tasks (/tasks)."""

from __future__ import annotations

from dataclasses import dataclass

from core.budget import Budgets
from core.clock import Clock
from core.policy import Policy
from core.ports import UnitOfWorkFactory
from core.records import BudgetStatus, Task
from core.states import TaskStatus

FILTERS: dict[str, tuple[TaskStatus, ...]] = {
    "pending": (TaskStatus.PENDING, TaskStatus.IN_PROGRESS, TaskStatus.NEEDS_ATTENTION),
    "failed": (TaskStatus.FAILED, TaskStatus.REJECTED, TaskStatus.CANCELLED),
    "completed": (TaskStatus.COMPLETED,),
}


@dataclass(frozen=True)
class HistoryPage:
    tasks: list[Task]
    total: int
    page: int
    page_size: int
    filter_name: str | None

    @property
    def has_next(self) -> bool:
        return (self.page + 1) * self.page_size < self.total


class History:
    def __init__(self, uow_factory: UnitOfWorkFactory, policy: Policy, clock: Clock) -> None:
        self._uow_factory = uow_factory
        self._budgets = Budgets(policy, clock)

    async def page(
        self, requester: str, filter_name: str | None = None, page: int = 0, page_size: int = 10
    ) -> HistoryPage:
        statuses = FILTERS.get(filter_name) if filter_name else None
        page = max(0, page)
        async with self._uow_factory(read_only=True) as uow:
            tasks = await uow.tasks.history(requester, statuses, page_size, page * page_size)
            total = await uow.tasks.count_history(requester, statuses)
        return HistoryPage(tasks, total, page, page_size, filter_name)

    async def detail(self, requester: str, task_id: int) -> tuple[Task, list[Task]] | None:
        """One of the requester's tasks and its steps; None for anyone else's."""
        async with self._uow_factory(read_only=True) as uow:
            task = await uow.tasks.get(task_id)
            if task is None or task.requester != requester:
                return None
            return task, await uow.tasks.children(task.id)

    async def posted_in(self, task_id: int, channel: str) -> Task | None:
        """The task if its result was posted in `channel` (whoever sees the message
        may read it whole); None otherwise."""
        async with self._uow_factory(read_only=True) as uow:
            task = await uow.tasks.get(task_id)
        if task is None or task.conversation.channel != channel:
            return None
        return task

    async def budget(self, requester: str) -> BudgetStatus:
        async with self._uow_factory(read_only=True) as uow:
            return await self._budgets.status(uow, requester)
