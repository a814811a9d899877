"""Builders shared by the storage tests."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import select

from core.notices import Destination
from core.records import Conversation, NewTask
from storage.models import Base, OutboxRow
from storage.uow import SqlUnitOfWorkFactory

#: two threads in one channel: the outbox keeps order within each, not across them
THREAD_A = Destination(channel="C1", thread_ts="1700000000.000100")
THREAD_B = Destination(channel="C1", thread_ts="1700000000.000200")


Row = TypeVar("Row", bound=Base)


async def stored_row(uow_factory: SqlUnitOfWorkFactory, model: type[Row], row_id: int) -> Row:
    """The row as stored now, detached so it can be read after its unit of work."""
    async with uow_factory() as uow:
        found = await uow.session.get(model, row_id)
        assert found is not None, (model.__name__, row_id)
        uow.session.expunge(found)
        return found


def new_task(
    requester: str = "U1",
    *,
    title: str = "do a thing",
    agent: str = "research",
    channel: str = "C1",
    thread_ts: str | None = "1700000000.000100",
    parent_id: int | None = None,
    depends_on: tuple[int, ...] = (),
    source_event_id: str | None = None,
    position: int = 0,
    cost_cents: int = 0,
    params: dict[str, Any] | None = None,
) -> NewTask:
    return NewTask(
        conversation=Conversation(
            requester=requester, channel=channel, thread_ts=thread_ts, team="T1"
        ),
        agent=agent,
        title=title,
        params=params or {"q": title},
        currency="USD",
        cost_cents=cost_cents,
        parent_id=parent_id,
        depends_on=depends_on,
        source_event_id=source_event_id,
        position=position,
    )


async def newest_outbox_ids(uow_factory: SqlUnitOfWorkFactory, count: int) -> list[int]:
    """The ids of the last `count` outbox entries, oldest first (an entry gets its id
    when its unit of work commits: storage/append_only.py)."""
    async with uow_factory(read_only=True) as uow:
        newest = await uow.session.scalars(
            select(OutboxRow.id).order_by(OutboxRow.id.desc()).limit(count)
        )
        return sorted(newest.all())
