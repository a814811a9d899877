"""This process's liveness lease, renewed on a lane of its own.

Recovery takes a worker for dead once its lease has expired, so the renewal must
not queue behind the process's own writes: under a burst the main pool (or, on
SQLite, the writer lock) is busy for seconds. The renewal therefore runs on a
small engine of its own and, on SQLite, takes the writer lock's critical lane,
which waits for the one transaction in progress and nothing else. It is one
conditional UPDATE; only the first beat (or one after the row was pruned)
inserts.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from storage._sql import NO_SYNC, rowcount
from storage.engine import serialized, side_engine
from storage.leases_repo import SqlLeases
from storage.models import LeaseRow


class LivenessLease:
    def __init__(self, engine: AsyncEngine, name: str, holder: str, ttl_seconds: float) -> None:
        self.name = name
        self.holder = holder
        self.ttl_seconds = ttl_seconds
        self._main = engine
        self.engine = side_engine(engine)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    async def renew(self, at: datetime) -> bool:
        """Push the expiry to `at` + TTL; False only if another holder has the name."""
        expires_at = at + timedelta(seconds=self.ttl_seconds)
        async with (
            serialized(self._main, critical=True),
            self._sessions() as session,
            session.begin(),
        ):
            if await self._extend(session, expires_at):
                return True
            return await SqlLeases(session).acquire(self.name, self.holder, at, self.ttl_seconds)

    async def _extend(self, session: AsyncSession, expires_at: datetime) -> bool:
        statement = (
            update(LeaseRow)
            .where(LeaseRow.name == self.name, LeaseRow.holder == self.holder)
            .values(expires_at=expires_at)
            .execution_options(**NO_SYNC)
        )
        return await rowcount(session, statement) == 1

    async def close(self) -> None:
        if self.engine is not self._main:
            await self.engine.dispose()
