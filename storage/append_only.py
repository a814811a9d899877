"""Tables whose rows are written once and read back by task, never updated: the
audit log and the ledger. Each row has a column of the same name for every field
of its record, and an `id` that keeps the order of writing.

Nothing reads such a row back in the transaction that writes it, so rows wait in
the unit of work's `Appends` and go in together, one multi-row INSERT per table,
just before the transaction commits (or before a read of them): a group commit of
thirty requests writes their thirty audit rows in one round trip, not thirty."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar, Generic, TypeVar

from sqlalchemy import Insert, Update, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage._sql import table_of

EntryT = TypeVar("EntryT")


class Appends:
    """Rows waiting for their multi-row INSERTs (or a batch of one UPDATE that nothing
    reads back), per statement, in the order written."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._rows: dict[Insert | Update, list[dict[str, Any]]] = {}

    def add(self, statement: Insert | Update, row: dict[str, Any]) -> None:
        self._rows.setdefault(statement, []).append(row)

    async def flush(self) -> None:
        while self._rows:
            rows, self._rows = self._rows, {}
            for statement, values in rows.items():
                await self._session.execute(statement, values)


class AppendOnlyLog(Generic[EntryT]):
    _row: type[Any]
    _entry: type[EntryT]
    #: built once per table: every status change writes an audit row, and building the
    #: ORM statement each time cost more than running it
    _insert: ClassVar[Insert]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._insert = insert(table_of(cls._row))

    def __init__(self, session: AsyncSession, appends: Appends | None = None) -> None:
        self._session = session
        self._appends = appends or Appends(session)

    async def record(self, entry: EntryT) -> None:
        self._appends.add(self._insert, _fields(self._entry, entry))

    async def for_task(self, task_id: int) -> list[EntryT]:
        await self._appends.flush()
        rows = await self._session.scalars(
            select(self._row).where(self._row.task_id == task_id).order_by(self._row.id)
        )
        return [self._entry(**_fields(self._entry, r)) for r in rows]


def _fields(record: type[Any], source: Any) -> dict[str, Any]:
    """The fields of `record` read off `source` (an entry or its row); a mapping (a JSON
    column) is copied as a plain dict."""
    values = {f.name: getattr(source, f.name) for f in dataclasses.fields(record)}
    return {k: dict(v) if isinstance(v, Mapping) else v for k, v in values.items()}
