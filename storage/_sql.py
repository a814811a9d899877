"""Small statement helpers the repositories share.

`insert_ignore` is INSERT … ON CONFLICT DO NOTHING in the session's dialect, so
"create if absent" is one statement and never a read followed by a write.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from sqlalchemy import CursorResult, Executable, Table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

#: ORM-enabled UPDATE/DELETE without touching objects in the session
NO_SYNC = {"synchronize_session": False}


def table_of(entity: Any) -> Table:
    """The Core table of a mapped class, for statements built once (no ORM per run)."""
    return cast(Table, entity.__table__)


async def rowcount(
    session: AsyncSession, statement: Executable, params: Mapping[str, Any] | None = None
) -> int:
    """Run an UPDATE/DELETE/INSERT and return how many rows it touched."""
    result = cast(CursorResult[Any], await session.execute(statement, params))
    return int(result.rowcount)


def insert_ignore_statement(dialect: str, table: Any, index_elements: Sequence[str]) -> Executable:
    """INSERT … ON CONFLICT (index_elements) DO NOTHING for `dialect`, its values
    given when it runs: build it once for a hot path."""
    if dialect == "postgresql":
        return pg_insert(table).on_conflict_do_nothing(index_elements=list(index_elements))
    if dialect == "sqlite":
        return sqlite_insert(table).on_conflict_do_nothing(index_elements=list(index_elements))
    raise NotImplementedError(f"INSERT … ON CONFLICT on {dialect}")


async def insert_ignore(
    session: AsyncSession,
    entity: Any,
    values: Mapping[str, Any],
    index_elements: Sequence[str],
) -> bool:
    """INSERT … ON CONFLICT (index_elements) DO NOTHING; True when a row was inserted."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        pg = (
            pg_insert(entity)
            .values(**values)
            .on_conflict_do_nothing(index_elements=list(index_elements))
        )
        return await rowcount(session, pg) == 1
    if dialect == "sqlite":
        lite = (
            sqlite_insert(entity)
            .values(**values)
            .on_conflict_do_nothing(index_elements=list(index_elements))
        )
        return await rowcount(session, lite) == 1
    raise NotImplementedError(f"INSERT … ON CONFLICT on {dialect}")
