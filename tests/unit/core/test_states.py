"""The task state machine: the transition table, terminal states, and transition()
against real storage (conditional UPDATE + audit row in the same transaction)."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import os
import tempfile
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from core.records import Conversation, NewTask, Task, TaskChanges
from core.states import ALLOWED, IllegalTransition, TaskStatus, check_transition, transition
from storage.engine import create_engine
from storage.migrate import upgrade
from storage.uow import SqlUnitOfWorkFactory
from tests.fakes import FakeClock

S = TaskStatus
T = TypeVar("T")

#: The specification, written out independently of core.states.ALLOWED.
LEGAL: set[tuple[TaskStatus, TaskStatus]] = {
    (S.PENDING, S.IN_PROGRESS),
    (S.PENDING, S.REJECTED),
    (S.PENDING, S.CANCELLED),
    (S.PENDING, S.FAILED),  # could not start: over budget, a dependency failed
    (S.IN_PROGRESS, S.COMPLETED),
    (S.IN_PROGRESS, S.FAILED),
    (S.IN_PROGRESS, S.CANCELLED),
    (S.IN_PROGRESS, S.PENDING),  # re-run after a crash
    (S.IN_PROGRESS, S.NEEDS_ATTENTION),  # an order placed whose outcome could not be recorded
    (S.NEEDS_ATTENTION, S.COMPLETED),  # recorded after all
    (S.FAILED, S.PENDING),  # the requester asked to retry it (core/retry.py)
}
TERMINAL = [S.COMPLETED, S.FAILED, S.REJECTED, S.CANCELLED]
ALL_PAIRS = list(itertools.product(TaskStatus, TaskStatus))
ILLEGAL = [pair for pair in ALL_PAIRS if pair not in LEGAL]

#: a legal route from PENDING to each status, used to put a real task there
ROUTE = {
    S.PENDING: [],
    S.IN_PROGRESS: [S.IN_PROGRESS],
    S.COMPLETED: [S.IN_PROGRESS, S.COMPLETED],
    S.FAILED: [S.FAILED],
    S.REJECTED: [S.REJECTED],
    S.CANCELLED: [S.CANCELLED],
    S.NEEDS_ATTENTION: [S.IN_PROGRESS, S.NEEDS_ATTENTION],
}


def new_task(title: str = "t") -> NewTask:
    return NewTask(Conversation("U1", "C1", "1.1"), "research", title, {"topic": title}, "USD")


def test_allowed_matches_the_specification() -> None:
    assert {(a, b) for a, targets in ALLOWED.items() for b in targets} == LEGAL
    assert set(ALLOWED) == set(TaskStatus)


@pytest.mark.parametrize(("current", "target"), ALL_PAIRS, ids=lambda s: str(s))
def test_check_transition_over_all_pairs(current: TaskStatus, target: TaskStatus) -> None:
    if (current, target) in LEGAL:
        check_transition(7, current, target)
        return
    with pytest.raises(IllegalTransition) as raised:
        check_transition(7, current, target)
    assert (raised.value.task_id, raised.value.current, raised.value.target) == (7, current, target)
    assert f"{current} -> {target}" in str(raised.value)


#: the one way out of a terminal state: a person's retry of a failed task
RETRY_EXITS = {S.FAILED: frozenset({S.PENDING})}


@pytest.mark.parametrize("status", TERMINAL)
def test_terminal_states_have_no_exits_but_retry(status: TaskStatus) -> None:
    assert status.terminal
    exits = RETRY_EXITS.get(status, frozenset())
    assert ALLOWED[status] == exits
    for target in TaskStatus:
        if target in exits:
            continue
        with pytest.raises(IllegalTransition):
            check_transition(1, status, target)


def test_only_pending_and_in_progress_are_open() -> None:
    assert [s for s in TaskStatus if not s.terminal] == [S.PENDING, S.IN_PROGRESS]


def test_needs_attention_stops_the_engine_but_may_still_be_completed() -> None:
    assert S.NEEDS_ATTENTION.terminal
    assert ALLOWED[S.NEEDS_ATTENTION] == frozenset({S.COMPLETED})


async def _audit_actions(uow_factory: SqlUnitOfWorkFactory, task_id: int) -> list[str]:
    async with uow_factory() as uow:
        return [e.action for e in await uow.audit.for_task(task_id)]


async def _stored_task(uow_factory: SqlUnitOfWorkFactory) -> Task:
    """A new PENDING task, committed."""
    async with uow_factory() as uow:
        return await uow.tasks.add(new_task())


async def _get(uow_factory: SqlUnitOfWorkFactory, task_id: int) -> Task:
    async with uow_factory() as uow:
        task = await uow.tasks.get(task_id)
    assert task is not None
    return task


async def test_illegal_transitions_raise_and_change_nothing_in_storage(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    for current, target in ILLEGAL:
        async with uow_factory() as uow:
            task = await uow.tasks.add(new_task(f"{current}->{target}"))
        for step in ROUTE[current]:
            async with uow_factory() as uow:
                fresh = await uow.tasks.get(task.id)
                assert fresh is not None
                assert await transition(uow, fresh, step, actor="test", clock=clock)
        before = await _get(uow_factory, task.id)
        audit_before = await _audit_actions(uow_factory, task.id)
        assert before.status is current

        with pytest.raises(IllegalTransition):
            async with uow_factory() as uow:
                await transition(
                    uow,
                    before,
                    target,
                    actor="test",
                    clock=clock,
                    changes=TaskChanges(error="must not be written"),
                )

        after = await _get(uow_factory, task.id)
        assert after.status is current, (current, target)
        assert after.error is None
        assert await _audit_actions(uow_factory, task.id) == audit_before


# --- audit rows share the transition's transaction ------------------------------------------


class Boom(Exception):
    pass


async def test_successful_transition_writes_exactly_one_audit_row(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    task = await _stored_task(uow_factory)
    async with uow_factory() as uow:
        won = await transition(
            uow,
            task,
            S.IN_PROGRESS,
            actor="alice",
            clock=clock,
            changes=TaskChanges(started_at=clock.now()),
            detail={"why": "test"},
        )
    assert won
    stored = await _get(uow_factory, task.id)
    assert stored.status is S.IN_PROGRESS
    assert stored.started_at == clock.now()
    async with uow_factory() as uow:
        entries = await uow.audit.for_task(task.id)
    assert [(e.actor, e.action, dict(e.detail)) for e in entries] == [
        ("alice", "PENDING->IN_PROGRESS", {"why": "test"})
    ]


async def test_rolled_back_transition_leaves_neither_status_nor_audit_row(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    task = await _stored_task(uow_factory)
    with pytest.raises(Boom):
        async with uow_factory() as uow:
            assert await transition(uow, task, S.IN_PROGRESS, actor="alice", clock=clock)
            # visible inside the transaction …
            inside = await uow.tasks.get(task.id)
            assert inside is not None and inside.status is S.IN_PROGRESS
            assert len(await uow.audit.for_task(task.id)) == 1
            raise Boom
    # … and gone together after the rollback
    assert (await _get(uow_factory, task.id)).status is S.PENDING
    assert await _audit_actions(uow_factory, task.id) == []


async def test_lost_conditional_update_writes_no_audit_row(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    task = await _stored_task(uow_factory)
    async with uow_factory() as uow:
        assert await transition(uow, task, S.CANCELLED, actor="alice", clock=clock)
    # `task` still says PENDING: a second writer acting on that stale read loses
    async with uow_factory() as uow:
        assert not await transition(uow, task, S.IN_PROGRESS, actor="bob", clock=clock)
    assert (await _get(uow_factory, task.id)).status is S.CANCELLED
    assert await _audit_actions(uow_factory, task.id) == ["PENDING->CANCELLED"]


async def test_racing_transitions_have_one_winner(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    task = await _stored_task(uow_factory)

    async def claim(actor: str) -> bool:
        async with uow_factory() as uow:
            return await transition(uow, task, S.IN_PROGRESS, actor=actor, clock=clock)

    results = await asyncio.gather(*(claim(f"w{i}") for i in range(8)))
    assert sum(results) == 1
    assert await _audit_actions(uow_factory, task.id) == ["PENDING->IN_PROGRESS"]


# --- a random walk over a real task on SQLite ----------------------------------------------


class TaskStateMachine(RuleBasedStateMachine):
    """Drives one stored task through random moves; the database must follow the model."""

    url: str = ""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = FakeClock()
        self.engine = create_engine(self.url)
        self.uow_factory = SqlUnitOfWorkFactory(self.engine, self.clock)
        self.task_id = self.run(self._add()).id
        self.model = S.PENDING
        self.expected_audit: list[str] = []

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    async def _add(self) -> Task:
        async with self.uow_factory() as uow:
            return await uow.tasks.add(new_task("walk"))

    async def _move(
        self, target: TaskStatus, *, read_as: TaskStatus | None = None, rollback: bool = False
    ) -> bool:
        async with self.uow_factory() as uow:
            task = await uow.tasks.get(self.task_id)
            assert task is not None
            if read_as is not None:
                task = dataclasses.replace(task, status=read_as)
            won = await transition(uow, task, target, actor="walker", clock=self.clock)
            if rollback:
                raise Boom(won)
            return won

    @rule(to=st.sampled_from(list(TaskStatus)))
    def move(self, to: TaskStatus) -> None:
        target = to
        self.clock.advance(1)
        if target in ALLOWED[self.model]:
            assert self.run(self._move(target))
            self.expected_audit.append(f"{self.model}->{target}")
            self.model = target
        else:
            with pytest.raises(IllegalTransition):
                self.run(self._move(target))

    @rule(read_as=st.sampled_from(list(TaskStatus)), to=st.sampled_from(list(TaskStatus)))
    def move_from_a_stale_read(self, read_as: TaskStatus, to: TaskStatus) -> None:
        """A writer whose copy of the task is out of date loses and changes nothing."""
        target = to
        if read_as is self.model or target not in ALLOWED[read_as]:
            return
        assert not self.run(self._move(target, read_as=read_as))

    @rule(to=st.sampled_from(list(TaskStatus)))
    def move_then_roll_back(self, to: TaskStatus) -> None:
        target = to
        if target not in ALLOWED[self.model]:
            return
        with pytest.raises(Boom) as raised:
            self.run(self._move(target, rollback=True))
        assert raised.value.args == (True,)

    @invariant()
    def database_follows_the_model(self) -> None:
        stored = self.run(_get(self.uow_factory, self.task_id))
        assert stored.status is self.model
        assert self.run(_audit_actions(self.uow_factory, self.task_id)) == self.expected_audit

    def teardown(self) -> None:
        try:
            self.run(self.engine.dispose())
        finally:
            self.loop.close()


def test_random_walks_keep_database_and_model_in_step() -> None:
    # Synchronous on purpose: each machine runs its own event loop.
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{os.path.join(tmp, 'walk.db')}"
        asyncio.run(upgrade(url))
        machine = type("Walk", (TaskStateMachine,), {"url": url})
        run_state_machine_as_test(
            machine,
            settings=settings(
                database=None,  # no .hypothesis/ directory in the repository
                max_examples=40,
                stateful_step_count=20,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
