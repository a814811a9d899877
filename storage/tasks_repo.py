"""Tasks and their dependency edges.

`set_status` is the one conditional UPDATE the state machine relies on: the
WHERE on the expected status makes exactly one of several racing callers win.
Reads select plain columns (no ORM identity map), so a task read after an
UPDATE in the same unit of work always shows the new row.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Executable,
    Select,
    and_,
    bindparam,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from core.agents.base import AgentResult
from core.clock import Clock
from core.ports import TaskCursor
from core.records import Conversation, NewTask, Task, TaskChanges
from core.states import TaskStatus
from storage._sql import NO_SYNC, rowcount, table_of
from storage.deferred import Appends
from storage.models import TaskDependencyRow, TaskRow

_COLUMNS = tuple(TaskRow.__table__.c)
_Q = TypeVar("_Q", bound=Select[Any])

# Built once (SQLAlchemy Core, values given when they run): every request runs each.
_TABLE = table_of(TaskRow)
_EDGES = table_of(TaskDependencyRow)
_INSERT = insert(_TABLE).returning(_TABLE.c.id)
_INSERT_KNOWN_ID = insert(_TABLE)
#: what `add` gives a new row besides id and root_id
_INSERTED = (
    "parent_id",
    "requester",
    "team",
    "channel",
    "thread_ts",
    "source_event_id",
    "agent",
    "title",
    "params",
    "status",
    "cost_cents",
    "currency",
    "position",
    "created_at",
    "updated_at",
)
#: SET takes the columns the parameters name besides these two
_SET_STATUS = update(_TABLE).where(
    _TABLE.c.id == bindparam("_id"), _TABLE.c.status == bindparam("_expected")
)
_BY_ID = select(*_COLUMNS).where(_TABLE.c.id == bindparam("_id"))
_CHILDREN = (
    select(*_COLUMNS)
    .where(_TABLE.c.parent_id == bindparam("_parent"))
    .order_by(_TABLE.c.position, _TABLE.c.id)
)
_FAMILY = (
    select(*_COLUMNS)
    .where(or_(_TABLE.c.id == bindparam("_root"), _TABLE.c.parent_id == bindparam("_root")))
    .order_by(_TABLE.c.parent_id.is_not(None), _TABLE.c.position, _TABLE.c.id)
)
_EDGES_OF = (
    select(_EDGES.c.task_id, _EDGES.c.depends_on_id)
    .where(_EDGES.c.task_id.in_(bindparam("_ids", expanding=True)))
    .order_by(_EDGES.c.task_id, _EDGES.c.depends_on_id)
)


class SqlTaskRepository:
    def __init__(self, session: AsyncSession, clock: Clock, appends: Appends) -> None:
        self._session = session
        self._clock = clock
        self._appends = appends
        #: statuses entered by this transaction's winning set_status calls
        self.entered: list[TaskStatus] = []

    async def add(self, new: NewTask) -> Task:
        if new.depends_on and new.parent_id is None:
            # what lets readers skip the dependency query for requests (_load_rows)
            raise ValueError("only a step (a task with a parent) may depend on others")
        now = self._clock.now()
        root_id = new.root_id
        if root_id is None and new.parent_id is not None:
            root_id = await self._session.scalar(
                select(TaskRow.root_id).where(TaskRow.id == new.parent_id)
            )
        conv = new.conversation
        values = {
            "parent_id": new.parent_id,
            "requester": conv.requester,
            "team": conv.team,
            "channel": conv.channel,
            "thread_ts": conv.thread_ts,
            "source_event_id": new.source_event_id,
            "agent": new.agent,
            "title": new.title,
            "params": dict(new.params),
            "status": TaskStatus.PENDING.value,
            "cost_cents": new.cost_cents,
            "currency": new.currency,
            "position": new.position,
            "created_at": now,
            "updated_at": now,
        }
        statement: Executable
        depends_on = tuple(dict.fromkeys(new.depends_on))
        if new.id is not None:
            values["id"] = task_id = new.id
            values["root_id"] = root_id if root_id is not None else new.id
            if depends_on:
                await self._session.execute(_INSERT, values)
            else:  # its id is known: the row can wait for the batch's one INSERT
                self._appends.add(_INSERT_KNOWN_ID, values)
        else:
            if root_id is None:
                statement = _INSERT_OWN_ROOT[self._session.get_bind().dialect.name]
            else:
                statement, values["root_id"] = _INSERT, root_id
            task_id = (await self._session.execute(statement, values)).scalar_one()
        if depends_on:
            await self._session.execute(
                insert(TaskDependencyRow),
                [{"task_id": task_id, "depends_on_id": d} for d in depends_on],
            )
        # Everything in the row is known: no need to read it back.
        return Task(
            id=task_id,
            root_id=root_id if root_id is not None else task_id,
            parent_id=new.parent_id,
            conversation=conv,
            agent=new.agent,
            title=new.title,
            params=json.loads(json.dumps(dict(new.params))),  # as the JSON column returns it
            status=TaskStatus.PENDING,
            cost_cents=new.cost_cents,
            currency=new.currency,
            created_at=now.astimezone(UTC),
            updated_at=now.astimezone(UTC),
            depends_on=tuple(sorted(depends_on)),
            source_event_id=new.source_event_id,
            position=new.position,
        )

    async def get(self, task_id: int) -> Task | None:
        tasks = await self._load_rows(await self._session.execute(_BY_ID, {"_id": task_id}))
        return tasks[0] if tasks else None

    async def get_many(self, task_ids: Sequence[int]) -> list[Task]:
        if not task_ids:
            return []
        return await self._load(
            select(TaskRow).where(TaskRow.id.in_(list(task_ids))).order_by(TaskRow.id)
        )

    async def children(self, parent_id: int) -> list[Task]:
        return await self._load_rows(await self._session.execute(_CHILDREN, {"_parent": parent_id}))

    async def family(self, root_id: int) -> tuple[Task | None, list[Task]]:
        tasks = await self._load_rows(await self._session.execute(_FAMILY, {"_root": root_id}))
        if not tasks or tasks[0].id != root_id or not tasks[0].is_root:
            return None, tasks
        return tasks[0], tasks[1:]

    async def set_status(
        self,
        task_id: int,
        expected: TaskStatus,
        new: TaskStatus,
        at: datetime,
        changes: TaskChanges,
    ) -> bool:
        values: dict[str, Any] = {
            "_id": task_id,
            "_expected": expected.value,
            "status": new.value,
            "updated_at": at,
        }
        if changes.reset:
            values.update(error=None, finished_at=None, worker=None)
        if changes.result is not None:
            values["result"] = changes.result.to_json()
        if changes.error is not None:
            values["error"] = changes.error
        if changes.started_at is not None:
            values["started_at"] = changes.started_at
        if changes.finished_at is not None:
            values["finished_at"] = changes.finished_at
        if changes.cost_cents is not None:
            values["cost_cents"] = changes.cost_cents
        if changes.worker is not None:
            values["worker"] = changes.worker
        won = await rowcount(self._session, _SET_STATUS, values) == 1
        if won:
            self.entered.append(new)
        return won

    async def history(
        self,
        requester: str,
        statuses: Sequence[TaskStatus] | None,
        limit: int,
        offset: int,
        roots_only: bool = True,
    ) -> list[Task]:
        query = _history_filter(select(TaskRow), requester, statuses, roots_only)
        return await self._load(
            query.order_by(TaskRow.created_at.desc(), TaskRow.id.desc()).limit(limit).offset(offset)
        )

    async def count_history(
        self, requester: str, statuses: Sequence[TaskStatus] | None, roots_only: bool = True
    ) -> int:
        query = _history_filter(select(func.count(TaskRow.id)), requester, statuses, roots_only)
        return int((await self._session.execute(query)).scalar_one())

    async def pending_created_before(self, cutoff: datetime, limit: int) -> list[Task]:
        return await self._load(
            select(TaskRow)
            .where(TaskRow.status == TaskStatus.PENDING.value, TaskRow.created_at < cutoff)
            # never-reported tasks first, so long-stale ones cannot crowd new ones out
            .order_by(TaskRow.stale_step, TaskRow.created_at, TaskRow.id)
            .limit(limit)
        )

    async def record_outcome(self, task_id: int, result: AgentResult) -> bool:
        statement = (
            update(TaskRow)
            .where(TaskRow.id == task_id, TaskRow.status == TaskStatus.IN_PROGRESS.value)
            .values(result=result.to_json())
            .execution_options(**NO_SYNC)
        )
        return await rowcount(self._session, statement) == 1

    async def running_steps(self, limit: int, after: TaskCursor | None = None) -> list[Task]:
        query = select(TaskRow).where(TaskRow.status == TaskStatus.IN_PROGRESS.value, _is_leaf())
        return await self._load(_oldest_first(query, after).limit(limit))

    async def running_since(self, started_before: datetime, limit: int) -> list[Task]:
        return await self._load(
            select(TaskRow)
            .where(
                TaskRow.status == TaskStatus.IN_PROGRESS.value,
                TaskRow.started_at < started_before,
                _is_leaf(),
            )
            .order_by(TaskRow.started_at, TaskRow.id)
            .limit(limit)
        )

    async def unfinished_roots(self, limit: int, after: TaskCursor | None = None) -> list[Task]:
        unfinished = (TaskStatus.PENDING.value, TaskStatus.IN_PROGRESS.value)
        query = select(TaskRow).where(TaskRow.status.in_(unfinished), TaskRow.parent_id.is_(None))
        return await self._load(_oldest_first(query, after).limit(limit))

    async def mark_stale_step(self, task_id: int, step: int) -> bool:
        """Raise the task's reported escalation step; True only for the first to reach it."""
        statement = (
            update(TaskRow)
            .where(
                TaskRow.id == task_id,
                TaskRow.status == TaskStatus.PENDING.value,
                TaskRow.stale_step < step,
            )
            .values(stale_step=step)
            .execution_options(**NO_SYNC)
        )
        return await rowcount(self._session, statement) == 1

    async def by_source_event(self, event_id: str) -> Task | None:
        tasks = await self._load(select(TaskRow).where(TaskRow.source_event_id == event_id))
        return tasks[0] if tasks else None

    async def _load(self, query: Select[TaskRow]) -> list[Task]:
        # Plain rows, not ORM objects: nothing to track, nothing stale to refresh.
        return await self._load_rows(
            await self._session.execute(query.with_only_columns(*_COLUMNS))
        )

    async def _load_rows(self, result: Any) -> list[Task]:
        rows = list(result.all())
        if not rows:
            return []
        depends: dict[int, list[int]] = {}
        steps = [r.id for r in rows if r.parent_id is not None]  # only steps depend (add)
        edges = await self._session.execute(_EDGES_OF, {"_ids": steps}) if steps else ()
        for task_id, depends_on_id in edges:
            depends.setdefault(task_id, []).append(depends_on_id)
        return [_to_task(r, tuple(depends.get(r.id, ()))) for r in rows]


def next_task_id(dialect: str) -> ColumnElement[int]:
    """An id for the next task, drawn inside the statement that needs it.

    PostgreSQL draws it from the column's sequence; SQLite (an INTEGER PRIMARY KEY
    without AUTOINCREMENT) would give the next row max(id) + 1 itself, and the
    statement holds the only writer lock while it reads that maximum, so on SQLite
    the task must be inserted before any other task in the same transaction.
    """
    if dialect == "postgresql":
        return func.nextval(func.pg_get_serial_sequence(_TABLE.name, _TABLE.c.id.name))
    return select(func.coalesce(func.max(_TABLE.c.id), 0) + 1).scalar_subquery()


def _insert_own_root(dialect: str) -> Executable:
    """INSERT of a task that is its own root: id and root_id the same value, so no
    reader ever sees root_id NULL and no UPDATE follows the INSERT."""
    given = [_TABLE.c[name] for name in _INSERTED]
    drawn = select(next_task_id(dialect).label("id")).subquery("drawn")
    values = select(drawn.c.id, drawn.c.id, *(bindparam(c.name, type_=c.type) for c in given))
    return (
        insert(_TABLE)
        .from_select([_TABLE.c.id, _TABLE.c.root_id, *given], values, include_defaults=False)
        .returning(_TABLE.c.id)
    )


def _is_leaf() -> ColumnElement[bool]:
    """A task no other task names as its parent: a step, or a one-step request."""
    child = aliased(TaskRow)
    return ~exists().where(child.parent_id == TaskRow.id)


def _oldest_first(query: Select[TaskRow], after: TaskCursor | None) -> Select[TaskRow]:
    """Keyset paging on (created_at, id): each page starts where the last one ended,
    however many rows before it changed status meanwhile."""
    if after is not None:
        at, last_id = after
        query = query.where(
            or_(
                TaskRow.created_at > at,
                and_(TaskRow.created_at == at, TaskRow.id > last_id),
            )
        )
    return query.order_by(TaskRow.created_at, TaskRow.id)


def _history_filter(
    query: _Q, requester: str, statuses: Sequence[TaskStatus] | None, roots_only: bool
) -> _Q:
    query = query.where(TaskRow.requester == requester)
    if roots_only:
        query = query.where(TaskRow.parent_id.is_(None))
    if statuses is not None:
        query = query.where(TaskRow.status.in_([s.value for s in statuses]))
    return query


def _to_task(row: Any, depends_on: tuple[int, ...]) -> Task:
    return Task(
        id=row.id,
        root_id=row.root_id if row.root_id is not None else row.id,
        parent_id=row.parent_id,
        conversation=Conversation(
            requester=row.requester, channel=row.channel, thread_ts=row.thread_ts, team=row.team
        ),
        agent=row.agent,
        title=row.title,
        params=dict(row.params or {}),
        status=TaskStatus(row.status),
        cost_cents=row.cost_cents,
        currency=row.currency,
        created_at=row.created_at,
        updated_at=row.updated_at,
        depends_on=depends_on,
        result=AgentResult.from_json(row.result) if row.result is not None else None,
        error=row.error,
        started_at=row.started_at,
        finished_at=row.finished_at,
        source_event_id=row.source_event_id,
        position=row.position,
        worker=row.worker,
    )


#: built once per dialect: every request without a parent runs it on the ack path
_INSERT_OWN_ROOT = {dialect: _insert_own_root(dialect) for dialect in ("postgresql", "sqlite")}
