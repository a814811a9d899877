"""Small statement helpers the repositories share.

`insert_ignore` is INSERT … ON CONFLICT DO NOTHING in the session's dialect, so
"create if absent" is one statement and never a read followed by a write.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import CursorResult, Executable
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

#: ORM-enabled UPDATE/DELETE without touching objects in the session
NO_SYNC = {"synchronize_session": False}

#: the dialects whose INSERT has ON CONFLICT DO NOTHING
_INSERTS: dict[str, Callable[[Any], postgresql.Insert | sqlite.Insert]] = {
    "postgresql": postgresql.insert,
    "sqlite": sqlite.insert,
}


async def rowcount(session: AsyncSession, statement: Executable) -> int:
    """Run an UPDATE/DELETE/INSERT and return how many rows it touched."""
    result = cast(CursorResult[Any], await session.execute(statement))
    return int(result.rowcount)


async def insert_ignore(
    session: AsyncSession,
    entity: Any,
    values: Mapping[str, Any],
    index_elements: Sequence[str],
) -> bool:
    """INSERT … ON CONFLICT (index_elements) DO NOTHING; True when a row was inserted."""
    dialect = session.get_bind().dialect.name
    insert = _INSERTS.get(dialect)
    if insert is None:
        raise NotImplementedError(f"INSERT … ON CONFLICT on {dialect}")
    statement = (
        insert(entity).values(**values).on_conflict_do_nothing(index_elements=list(index_elements))
    )
    return await rowcount(session, statement) == 1
