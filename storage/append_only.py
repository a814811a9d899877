"""Tables whose rows are written once and read back by task, never updated: the
audit log and the ledger. Each row has a column of the same name for every field
of its record, and an `id` that keeps the order of writing.

Nothing reads such a row back in the transaction that writes it, so rows wait in
the unit of work's `Appends` and go in together at commit (storage/deferred.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar, Generic, TypeVar

from sqlalchemy import Insert, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage._sql import table_of
from storage.deferred import Appends

EntryT = TypeVar("EntryT")


class AppendOnlyLog(Generic[EntryT]):
    _row: type[Any]
    _entry: type[EntryT]
    #: built once per table: every status change writes an audit row, and building the
    #: ORM statement each time cost more than running it
    _insert: ClassVar[Insert]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._insert = insert(table_of(cls._row))

    def __init__(self, session: AsyncSession, appends: Appends) -> None:
        self._session = session
        self._appends = appends

    async def record(self, entry: EntryT) -> None:
        self._appends.add(self._insert, _fields(self._entry, entry))

    async def for_task(self, task_id: int) -> list[EntryT]:
        rows = await self._session.scalars(
            select(self._row).where(self._row.task_id == task_id).order_by(self._row.id)
        )
        return [self._entry(**_fields(self._entry, r)) for r in rows]


def _fields(record: type[Any], source: Any) -> dict[str, Any]:
    """The fields of `record` read off `source` (an entry or its row); a mapping (a JSON
    column) is copied as a plain dict."""
    values = {f.name: getattr(source, f.name) for f in dataclasses.fields(record)}
    return {k: dict(v) if isinstance(v, Mapping) else v for k, v in values.items()}
