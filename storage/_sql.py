"""Small statement helpers the repositories share.

`insert_ignore` is INSERT … ON CONFLICT DO NOTHING in the session's dialect, so
"create if absent" is one statement and never a read followed by a write.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import CursorResult, Executable, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

#: ORM-enabled UPDATE/DELETE without touching objects in the session
NO_SYNC = {"synchronize_session": False}

#: the dialects whose INSERT has ON CONFLICT DO NOTHING
_INSERTS: dict[str, Callable[[Any], postgresql.Insert | sqlite.Insert]] = {
    "postgresql": postgresql.insert,
    "sqlite": sqlite.insert,
}


def table_of(entity: Any) -> Table:
    """The Core table of a mapped class, for statements built once (no ORM per run)."""
    return cast(Table, entity.__table__)


async def rowcount(
    session: AsyncSession, statement: Executable, params: Mapping[str, Any] | None = None
) -> int:
    """Run an UPDATE/DELETE/INSERT and return how many rows it touched."""
    result = cast(CursorResult[Any], await session.execute(statement, params))
    return int(result.rowcount)


def insert_ignore_statement(
    dialect: str, table: Any, index_elements: Sequence[str]
) -> postgresql.Insert | sqlite.Insert:
    """INSERT … ON CONFLICT (index_elements) DO NOTHING for `dialect`, its values
    given when it runs: build it once for a hot path."""
    insert = _INSERTS.get(dialect)
    if insert is None:
        raise NotImplementedError(f"INSERT … ON CONFLICT on {dialect}")
    return insert(table).on_conflict_do_nothing(index_elements=list(index_elements))


async def insert_ignore(
    session: AsyncSession,
    entity: Any,
    values: Mapping[str, Any],
    index_elements: Sequence[str],
) -> bool:
    """INSERT … ON CONFLICT (index_elements) DO NOTHING; True when a row was inserted."""
    # on the table, not the mapped class: an ORM insert given its values at run time
    # would be a bulk insert, which reports no rowcount
    table = entity if isinstance(entity, Table) else table_of(entity)
    statement = insert_ignore_statement(session.get_bind().dialect.name, table, index_elements)
    return await rowcount(session, statement, values) == 1
