"""Slack event ids already accepted. Slack delivers at least once; the primary key
plus INSERT … ON CONFLICT DO NOTHING turns a redelivery into a cheap no-op."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage._sql import NO_SYNC, insert_ignore_statement, rowcount, table_of
from storage.models import InboxRow
from storage.tasks_repo import next_task_id

_TABLE = table_of(InboxRow)
#: built once per dialect: both run on the ack path of every request
_ADD = {
    dialect: insert_ignore_statement(dialect, _TABLE, ["event_id"])
    for dialect in ("postgresql", "sqlite")
}
#: the row names the task id it reserves, so it needs no UPDATE once the task exists
_CLAIM = {
    dialect: statement.values(task_id=next_task_id(dialect)).returning(_TABLE.c.task_id)
    for dialect, statement in _ADD.items()
}
_ATTACH = (
    update(_TABLE)
    .where(_TABLE.c.event_id == bindparam("_event_id"))
    .values(task_id=bindparam("_task_id"))
)


class SqlInbox:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, event_id: str, at: datetime) -> bool:
        statement = _ADD[self._session.get_bind().dialect.name]
        return (
            await rowcount(self._session, statement, {"event_id": event_id, "received_at": at}) == 1
        )

    async def claim(self, event_id: str, at: datetime) -> int | None:
        statement = _CLAIM[self._session.get_bind().dialect.name]
        result = await self._session.execute(statement, {"event_id": event_id, "received_at": at})
        reserved: int | None = result.scalar()
        return reserved

    async def attach(self, event_id: str, task_id: int | None) -> None:
        await self._session.execute(_ATTACH, {"_event_id": event_id, "_task_id": task_id})

    async def prune_before(self, cutoff: datetime, limit: int | None = None) -> int:
        """Forget event ids received before `cutoff` (at most `limit` of them, oldest first)."""
        if limit is None:
            doomed = InboxRow.received_at < cutoff
        else:
            oldest = (
                select(InboxRow.event_id)
                .where(InboxRow.received_at < cutoff)
                .order_by(InboxRow.received_at)
                .limit(limit)
            )
            doomed = InboxRow.event_id.in_(oldest.scalar_subquery())
        return await rowcount(
            self._session, delete(InboxRow).where(doomed).execution_options(**NO_SYNC)
        )
