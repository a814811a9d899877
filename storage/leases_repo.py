"""Named leases so that one replica of several runs a scheduled job.

APScheduler job stores must not be shared (docs/RELIABILITY.md), so each process
schedules in memory and gates each run here: the lease goes to whoever asks
when it is free or expired, and is renewed only by its holder.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage._sql import NO_SYNC, insert_ignore, rowcount
from storage.models import LeaseRow


class SqlLeases:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def acquire(self, name: str, holder: str, at: datetime, ttl_seconds: float) -> bool:
        expires_at = at + timedelta(seconds=ttl_seconds)
        if await insert_ignore(
            self._session,
            LeaseRow,
            {"name": name, "holder": holder, "expires_at": expires_at},
            ["name"],
        ):
            return True
        taken = await rowcount(
            self._session,
            update(LeaseRow)
            .where(
                LeaseRow.name == name,
                or_(LeaseRow.expires_at < at, LeaseRow.holder == holder),
            )
            .values(holder=holder, expires_at=expires_at)
            .execution_options(**NO_SYNC),
        )
        return taken == 1

    async def alive(self, name: str, at: datetime) -> bool:
        expires_at = await self._session.scalar(
            select(LeaseRow.expires_at).where(LeaseRow.name == name)
        )
        return expires_at is not None and expires_at >= at

    async def prune_expired(self, before: datetime, limit: int) -> int:
        """A lease is renewed by a live holder, so one expired long ago belongs to a
        process that is gone; deleting it reads the same as expired (alive → False)."""
        oldest = (
            select(LeaseRow.name)
            .where(LeaseRow.expires_at < before)
            .order_by(LeaseRow.expires_at)
            .limit(limit)
        )
        return await rowcount(
            self._session,
            delete(LeaseRow)
            .where(LeaseRow.name.in_(oldest.scalar_subquery()), LeaseRow.expires_at < before)
            .execution_options(**NO_SYNC),
        )
