"""Monthly spending limits per requester, enforced by conditional holds."""

from __future__ import annotations

from core.clock import Clock, month_key
from core.policy import Policy
from core.ports import UnitOfWork
from core.records import BudgetStatus, Task


class Budgets:
    def __init__(self, policy: Policy, clock: Clock) -> None:
        self._policy = policy
        self._clock = clock

    async def hold(self, uow: UnitOfWork, task: Task) -> bool:
        return await uow.budgets.hold(
            task.id,
            task.requester,
            month_key(self._clock.now()),
            task.cost_cents,
            self._policy.monthly_budget_cents,
            self._clock.now(),
        )

    async def status(self, uow: UnitOfWork, requester: str) -> BudgetStatus:
        return await uow.budgets.status(
            requester,
            month_key(self._clock.now()),
            self._policy.monthly_budget_cents,
            self._policy.currency,
        )
