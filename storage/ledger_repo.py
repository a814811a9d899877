"""The ledger (table `transactions`): one append-only row per charge, never updated."""

from __future__ import annotations

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.records import LedgerEntry
from storage.models import TransactionRow


class SqlLedger:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def record(self, entry: LedgerEntry) -> None:
        await self._session.execute(
            insert(TransactionRow).values(
                task_id=entry.task_id,
                requester=entry.requester,
                amount_cents=entry.amount_cents,
                currency=entry.currency,
                description=entry.description,
                created_at=entry.created_at,
            )
        )

    async def for_task(self, task_id: int) -> list[LedgerEntry]:
        rows = await self._session.execute(
            select(TransactionRow)
            .where(TransactionRow.task_id == task_id)
            .order_by(TransactionRow.id)
        )
        return [
            LedgerEntry(
                task_id=r.task_id,
                requester=r.requester,
                amount_cents=r.amount_cents,
                currency=r.currency,
                description=r.description,
                created_at=r.created_at,
            )
            for r in rows.scalars()
        ]
