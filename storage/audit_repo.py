"""The audit log: append-only, written in the same transaction as the change it
records, so the log and the state never disagree."""

from __future__ import annotations

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.records import AuditEntry
from storage._sql import table_of
from storage.models import AuditRow

#: built once: the hottest insert there is (every status change writes one)
_INSERT = insert(table_of(AuditRow))


class SqlAuditLog:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def record(self, entry: AuditEntry) -> None:
        await self._session.execute(
            _INSERT,
            {
                "task_id": entry.task_id,
                "actor": entry.actor,
                "action": entry.action,
                "detail": dict(entry.detail),
                "created_at": entry.created_at,
            },
        )

    async def for_task(self, task_id: int) -> list[AuditEntry]:
        rows = await self._session.scalars(
            select(AuditRow).where(AuditRow.task_id == task_id).order_by(AuditRow.id)
        )
        return [
            AuditEntry(
                task_id=r.task_id,
                actor=r.actor,
                action=r.action,
                created_at=r.created_at,
                detail=dict(r.detail or {}),
            )
            for r in rows
        ]
