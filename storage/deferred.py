"""Writes that wait for the end of their unit of work and then go in together.

A row nothing reads back in the transaction that writes it (an audit or ledger
row, an outbox entry or sent-mark, a request's task row whose id the inbox has
already reserved) waits in the unit of work's `Appends`; all of them go in just
before the transaction commits, one multi-row statement per statement kind. A
group commit of thirty requests sends three multi-row INSERTs instead of ninety
statements, and on PostgreSQL each statement saved is a round trip.

So that deferring never changes what a statement sees, `DeferringSession` writes
the waiting rows first whenever a statement touches one of their tables, or a
table whose foreign keys point at one (an approval for a task still waiting), or
a table it cannot name (raw SQL). Statements on other tables (the inbox claim of
the next request in the batch) run without waiting for them.
"""

from __future__ import annotations

import contextlib
import weakref
from typing import Any

from sqlalchemy import Insert, Update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.util import find_tables

from storage.models import Base

#: the key of a session's Appends in `session.info`
APPENDS = "taskbot_appends"

_TABLES: weakref.WeakKeyDictionary[Any, frozenset[str]] = weakref.WeakKeyDictionary()
_REACH: dict[str, frozenset[str]] = {}


def _tables_of(statement: Any) -> frozenset[str]:
    """The tables a statement reads or writes; empty when it cannot tell (raw SQL)."""
    try:
        return _TABLES[statement]
    except (KeyError, TypeError):
        pass
    try:
        tables = frozenset(t.name for t in find_tables(statement, include_crud=True))
    except Exception:  # not a clause SQLAlchemy can walk
        tables = frozenset()
    with contextlib.suppress(TypeError):  # a statement that takes no weak reference
        _TABLES[statement] = tables
    return tables


def _reach(table: str) -> frozenset[str]:
    """`table` and every table with a foreign key to it."""
    if not _REACH:
        for name in Base.metadata.tables:
            _REACH[name] = frozenset(
                {name}
                | {
                    other.name
                    for other in Base.metadata.tables.values()
                    for fk in other.foreign_keys
                    if fk.column.table.name == name
                }
            )
    return _REACH.get(table, frozenset({table}))


class Appends:
    """Rows waiting for their statements, per statement, in the order first written."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._rows: dict[Insert | Update, list[dict[str, Any]]] = {}
        session.info[APPENDS] = self

    def add(self, statement: Insert | Update, row: dict[str, Any]) -> None:
        self._rows.setdefault(statement, []).append(row)

    def due_before(self, statement: Any) -> list[Insert | Update]:
        """The waiting statements to write before `statement` runs: those whose rows it
        could see, and those whose rows these point at (foreign keys), in the order
        first written."""
        if not self._rows:
            return []
        tables = _tables_of(statement)
        if not tables:
            return list(self._rows)
        due = {w for w in self._rows if not tables.isdisjoint(_reach(_table(w)))}
        for waiting in reversed(list(self._rows)):  # what a due row points at is due too
            if waiting not in due and any(_table(d) in _reach(_table(waiting)) for d in due):
                due.add(waiting)
        return [w for w in self._rows if w in due]

    async def flush(self, due: list[Insert | Update] | None = None) -> None:
        """Write the waiting statements `due` (all of them by default)."""
        for statement in list(self._rows) if due is None else due:
            rows = self._rows.pop(statement, None)
            if rows:
                await self._session.execute(statement, rows)


def _table(statement: Insert | Update) -> str:
    return str(statement.table.name)  # type: ignore[union-attr]


class DeferringSession(AsyncSession):
    """An AsyncSession that writes its unit of work's waiting rows before any statement
    that could see them (see the module docstring)."""

    async def _write_waiting(self, statement: Any) -> None:
        appends: Appends | None = self.info.get(APPENDS)
        if appends is not None and (due := appends.due_before(statement)):
            await appends.flush(due)

    async def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        await self._write_waiting(statement)
        return await super().execute(statement, *args, **kwargs)

    async def scalar(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        await self._write_waiting(statement)
        return await super().scalar(statement, *args, **kwargs)

    async def scalars(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        await self._write_waiting(statement)
        return await super().scalars(statement, *args, **kwargs)
