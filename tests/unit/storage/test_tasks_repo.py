"""TaskRepository: graph, history queries and the conditional status UPDATE."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from core.agents.base import AgentResult
from core.records import TaskChanges
from core.states import TaskStatus
from storage.models import TaskRow
from storage.uow import SqlUnitOfWorkFactory
from tests.fakes import FakeClock
from tests.unit.storage.helpers import new_task

P, IP, DONE, FAIL = (
    TaskStatus.PENDING,
    TaskStatus.IN_PROGRESS,
    TaskStatus.COMPLETED,
    TaskStatus.FAILED,
)


async def test_add_root_and_children(uow_factory: SqlUnitOfWorkFactory, clock: FakeClock) -> None:
    async with uow_factory() as uow:
        root = await uow.tasks.add(new_task(title="plan", source_event_id="Ev1"))
        first = await uow.tasks.add(new_task(title="first", parent_id=root.id, position=1))
        zeroth = await uow.tasks.add(new_task(title="zeroth", parent_id=root.id, position=0))
        last = await uow.tasks.add(
            new_task(title="last", parent_id=root.id, position=2, depends_on=(first.id, zeroth.id))
        )
    assert root.root_id == root.id and root.is_root
    assert root.status is P and root.created_at == clock.now() == root.updated_at
    assert root.conversation.team == "T1" and root.requester == "U1"
    assert root.params == {"q": "plan"} and root.result is None
    assert first.root_id == root.id and first.parent_id == root.id and not first.is_root
    assert last.depends_on == tuple(sorted((first.id, zeroth.id)))

    async with uow_factory() as uow:
        assert await uow.tasks.get(root.id) == root
        assert await uow.tasks.get(10_000) is None
        children = await uow.tasks.children(root.id)
        assert [t.title for t in children] == ["zeroth", "first", "last"]
        many = await uow.tasks.get_many([last.id, root.id])
        assert [t.id for t in many] == [root.id, last.id]
        assert many[1].depends_on == last.depends_on
        assert await uow.tasks.get_many([]) == []
        assert await uow.tasks.by_source_event("Ev1") == root
        assert await uow.tasks.by_source_event("nope") is None
        assert await uow.tasks.family(root.id) == (root, children)  # in one read
        assert await uow.tasks.family(10_000) == (None, [])
        alone = await uow.tasks.add(new_task(title="alone"))
        assert await uow.tasks.family(alone.id) == (alone, [])
        assert (await uow.tasks.family(first.id))[0] is None  # a step is no request


async def test_only_steps_depend_so_requests_load_without_the_edge_query(
    uow_factory: SqlUnitOfWorkFactory,
) -> None:
    """Readers skip the dependency query for requests; add() keeps that true."""
    async with uow_factory() as uow:
        root = await uow.tasks.add(new_task(title="plan"))
        step = await uow.tasks.add(new_task(title="step", parent_id=root.id))
        with pytest.raises(ValueError, match="only a step"):
            await uow.tasks.add(new_task(title="odd", depends_on=(step.id,)))
        second = await uow.tasks.add(
            new_task(title="second", parent_id=root.id, depends_on=(step.id,))
        )
    async with uow_factory() as uow:
        (request,) = await uow.tasks.history("U1", None, 10, 0)
        assert request.id == root.id and request.depends_on == ()
        loaded = {t.title: t.depends_on for t in await uow.tasks.children(root.id)}
        assert loaded == {"step": (), "second": (step.id,)} and second.depends_on == (step.id,)


async def test_source_event_id_is_unique(uow_factory: SqlUnitOfWorkFactory) -> None:
    async with uow_factory() as uow:
        await uow.tasks.add(new_task(source_event_id="Ev1"))
    with pytest.raises(IntegrityError):
        async with uow_factory() as uow:
            await uow.tasks.add(new_task(source_event_id="Ev1"))


async def test_set_status_conditional_with_changes(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    async with uow_factory() as uow:
        task = await uow.tasks.add(new_task())
    clock.advance(5)
    started = clock.now()
    async with uow_factory() as uow:
        assert await uow.tasks.set_status(task.id, P, IP, started, TaskChanges(started_at=started))
        assert not await uow.tasks.set_status(task.id, P, IP, started, TaskChanges())
        # read-your-writes inside the same unit of work
        seen = await uow.tasks.get(task.id)
        assert seen is not None and seen.status is IP and seen.started_at == started
    clock.advance(5)
    result = AgentResult(summary="found 3", body="long", data={"items": [1, 2]}, cost_cents=42)
    async with uow_factory() as uow:
        assert await uow.tasks.set_status(
            task.id,
            IP,
            DONE,
            clock.now(),
            TaskChanges(result=result, finished_at=clock.now(), cost_cents=42),
        )
    async with uow_factory() as uow:
        done = await uow.tasks.get(task.id)
    assert done is not None
    assert done.status is DONE and done.result == result and done.cost_cents == 42
    assert done.started_at == started and done.finished_at == clock.now()
    assert done.updated_at == clock.now() and done.created_at == task.created_at
    assert done.error is None


async def test_set_status_has_one_winner_among_20(uow_factory: SqlUnitOfWorkFactory) -> None:
    async with uow_factory() as uow:
        task = await uow.tasks.add(new_task())

    async def attempt(i: int) -> bool:
        async with uow_factory() as uow:
            return await uow.tasks.set_status(
                task.id, P, IP, uow_factory.clock.now(), TaskChanges(error=f"by {i}")
            )

    results = await asyncio.gather(*(attempt(i) for i in range(20)))
    assert sum(results) == 1
    async with uow_factory() as uow:
        final = await uow.tasks.get(task.id)
    assert final is not None and final.status is IP
    assert final.error == f"by {results.index(True)}"


async def test_history_order_filters_and_paging(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    ids = []
    async with uow_factory() as uow:
        for i in range(5):
            root = await uow.tasks.add(new_task(title=f"r{i}"))
            ids.append(root.id)
            await uow.tasks.add(new_task(title=f"r{i}.child", parent_id=root.id))
            clock.advance(60)
        await uow.tasks.add(new_task("U2", title="someone else"))
        await uow.tasks.set_status(ids[1], P, FAIL, clock.now(), TaskChanges(error="x"))
        await uow.tasks.set_status(ids[3], P, IP, clock.now(), TaskChanges())

    async with uow_factory() as uow:
        newest_first = await uow.tasks.history("U1", None, limit=10, offset=0)
        assert [t.title for t in newest_first] == ["r4", "r3", "r2", "r1", "r0"]
        page = await uow.tasks.history("U1", None, limit=2, offset=2)
        assert [t.title for t in page] == ["r2", "r1"]
        assert await uow.tasks.count_history("U1", None) == 5
        everything = await uow.tasks.history("U1", None, limit=20, offset=0, roots_only=False)
        assert len(everything) == 10
        assert await uow.tasks.count_history("U1", None, roots_only=False) == 10
        unfinished = await uow.tasks.history("U1", [P, IP], limit=10, offset=0)
        assert [t.title for t in unfinished] == ["r4", "r3", "r2", "r0"]
        assert await uow.tasks.count_history("U1", [FAIL]) == 1
        assert await uow.tasks.count_history("U1", []) == 0
        assert await uow.tasks.count_history("nobody", None) == 0


async def test_pending_and_unfinished_queries(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    async with uow_factory() as uow:
        old = await uow.tasks.add(new_task(title="old"))
        child = await uow.tasks.add(new_task(title="old.child", parent_id=old.id))
        clock.advance(3600)
        running = await uow.tasks.add(new_task(title="running"))
        await uow.tasks.set_status(running.id, P, IP, clock.now(), TaskChanges())
        clock.advance(3600)
        done = await uow.tasks.add(new_task(title="done"))
        await uow.tasks.set_status(done.id, P, FAIL, clock.now(), TaskChanges())
        clock.advance(3600)
        await uow.tasks.add(new_task(title="new"))

    async with uow_factory() as uow:
        cutoff = clock.now()
        stale = await uow.tasks.pending_created_before(cutoff, 10)
        assert [t.title for t in stale] == ["old", "old.child"]
        assert await uow.tasks.pending_created_before(cutoff, 1) == [stale[0]]
        roots = await uow.tasks.unfinished_roots(10)
        assert [t.title for t in roots] == ["old", "running", "new"]
        assert child.id not in [t.id for t in roots]


async def test_root_id_stored_in_the_insert_itself(uow_factory: SqlUnitOfWorkFactory) -> None:
    """Readers that query the column (not `Task.root_id`, which maps NULL to the id)
    see every root as its own root, including ids drawn after a rollback."""
    async with uow_factory() as uow:
        first = await uow.tasks.add(new_task(title="a"))
        second = await uow.tasks.add(new_task(title="b"))
        child = await uow.tasks.add(new_task(title="c", parent_id=second.id))
    with pytest.raises(RuntimeError):
        async with uow_factory() as uow:
            await uow.tasks.add(new_task(title="rolled back"))
            raise RuntimeError
    async with uow_factory() as uow:
        third = await uow.tasks.add(new_task(title="d"))
        rows = (await uow.session.execute(select(TaskRow.id, TaskRow.root_id))).all()
        stored = {task_id: root_id for task_id, root_id in rows}
    assert len({first.id, second.id, child.id, third.id}) == 4 and third.id > child.id
    assert stored == {
        first.id: first.id,
        second.id: second.id,
        child.id: second.id,
        third.id: third.id,
    }
    assert (first.root_id, second.root_id, third.root_id) == (first.id, second.id, third.id)
