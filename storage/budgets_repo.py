"""Monthly budgets per requester: money is reserved (held) before a task runs and
turned into spend (or released) when it ends.

docs/RELIABILITY.md: read-then-write overspent 350 of 300 under concurrency. So every
change here is a conditional UPDATE whose WHERE carries the check, and a hold's
state moves HELD → SPENT | RELEASED only through `WHERE status = 'HELD'`, which
makes settle and release idempotent and mutually exclusive.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.records import BudgetStatus
from core.states import TaskStatus
from storage._sql import NO_SYNC, insert_ignore, rowcount
from storage.models import BudgetHoldRow, BudgetRow, TaskRow

HELD, SPENT, RELEASED = "HELD", "SPENT", "RELEASED"


class SqlBudgetRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def hold(
        self,
        task_id: int,
        requester: str,
        month: str,
        amount_cents: int,
        limit_cents: int,
        at: datetime,
    ) -> bool:
        # The hold row first: its primary key makes a second hold of the same task a no-op,
        # even when two of them race.
        claimed = await insert_ignore(
            self._session,
            BudgetHoldRow,
            {
                "task_id": task_id,
                "requester": requester,
                "month": month,
                "amount_cents": amount_cents,
                "status": HELD,
                "created_at": at,
            },
            ["task_id"],
        )
        if not claimed:
            existing = await self._session.scalar(
                select(BudgetHoldRow.status).where(BudgetHoldRow.task_id == task_id)
            )
            return existing in (HELD, SPENT)
        await insert_ignore(
            self._session,
            BudgetRow,
            {"requester": requester, "month": month, "spent_cents": 0, "held_cents": 0},
            ["requester", "month"],
        )
        fits = await rowcount(
            self._session,
            update(BudgetRow)
            .where(
                BudgetRow.requester == requester,
                BudgetRow.month == month,
                BudgetRow.spent_cents + BudgetRow.held_cents + amount_cents <= limit_cents,
            )
            .values(held_cents=BudgetRow.held_cents + amount_cents)
            .execution_options(**NO_SYNC),
        )
        if fits == 1:
            return True
        await self._session.execute(
            delete(BudgetHoldRow)
            .where(BudgetHoldRow.task_id == task_id)
            .execution_options(**NO_SYNC)
        )
        return False

    async def settle(self, task_id: int, amount_cents: int) -> bool:
        return await self._close_hold(task_id, SPENT, amount_cents)

    async def release(self, task_id: int) -> bool:
        return await self._close_hold(task_id, RELEASED, None)

    async def prune_closed(self, finished_before: datetime, limit: int) -> int:
        ended = [s.value for s in TaskStatus if s.terminal]
        oldest = (
            select(BudgetHoldRow.task_id)
            .join(TaskRow, TaskRow.id == BudgetHoldRow.task_id)
            .where(
                BudgetHoldRow.status.in_((SPENT, RELEASED)),
                TaskRow.status.in_(ended),
                func.coalesce(TaskRow.finished_at, TaskRow.updated_at) < finished_before,
            )
            .order_by(BudgetHoldRow.task_id)
            .limit(limit)
        )
        return await rowcount(
            self._session,
            delete(BudgetHoldRow)
            .where(
                BudgetHoldRow.task_id.in_(oldest.scalar_subquery()),
                BudgetHoldRow.status != HELD,
            )
            .execution_options(**NO_SYNC),
        )

    async def status(
        self, requester: str, month: str, limit_cents: int, currency: str
    ) -> BudgetStatus:
        row = (
            await self._session.execute(
                select(BudgetRow.spent_cents, BudgetRow.held_cents).where(
                    BudgetRow.requester == requester, BudgetRow.month == month
                )
            )
        ).one_or_none()
        spent, held = (row.spent_cents, row.held_cents) if row is not None else (0, 0)
        return BudgetStatus(
            requester=requester,
            month=month,
            limit_cents=limit_cents,
            spent_cents=spent,
            held_cents=held,
            currency=currency,
        )

    async def _close_hold(self, task_id: int, new_status: str, spent_cents: int | None) -> bool:
        """HELD → new_status in one statement and, if this call won, the month's held money
        moves out (to spent when `spent_cents` is given); False when the hold was not HELD."""
        row = (
            await self._session.execute(
                update(BudgetHoldRow)
                .where(BudgetHoldRow.task_id == task_id, BudgetHoldRow.status == HELD)
                .values(status=new_status, settled_cents=spent_cents)
                .returning(BudgetHoldRow.requester, BudgetHoldRow.month, BudgetHoldRow.amount_cents)
                .execution_options(**NO_SYNC)
            )
        ).one_or_none()
        if row is None:
            return False
        moved: dict[str, Any] = {"held_cents": BudgetRow.held_cents - row.amount_cents}
        if spent_cents is not None:
            moved["spent_cents"] = BudgetRow.spent_cents + spent_cents
        await self._session.execute(
            update(BudgetRow)
            .where(BudgetRow.requester == row.requester, BudgetRow.month == row.month)
            .values(**moved)
            .execution_options(**NO_SYNC)
        )
        return True
