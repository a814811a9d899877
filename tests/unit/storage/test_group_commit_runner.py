"""GroupCommit's runner, with a stand-in unit of work: whatever ends the runner,
no caller is left waiting for an answer that never comes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from storage.group_commit import OPEN_ATTEMPTS, GroupCommit


class Unavailable(Exception):
    pass


class FailingOpens:
    """A unit of work whose first `failures` opens fail as an unreachable database's do."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.opened = 0

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[None]:
        self.opened += 1
        if self.opened <= self.failures:
            raise Unavailable
        yield


async def test_a_runner_cancelled_after_a_failed_open_answers_every_caller() -> None:
    """The batch failed before it was taken (no connection) and is opened again;
    shutdown cancels the runner while that batch runs."""
    open_unit = FailingOpens(1)

    started = asyncio.Event()

    async def slow(_: None) -> str:
        started.set()
        await asyncio.sleep(3600)
        return "slow"

    async def quick(_: None) -> str:
        return "quick"

    group: GroupCommit[None] = GroupCommit(open_unit)
    first = asyncio.create_task(group.run(slow))
    second = asyncio.create_task(group.run(quick))
    await asyncio.wait_for(started.wait(), timeout=5)
    (runner,) = group._runners
    runner.cancel()

    done, _ = await asyncio.wait({first, second}, timeout=5)
    assert done == {first, second}, "a caller still waits on a runner that has gone"
    for caller in (first, second):
        with pytest.raises(asyncio.CancelledError):
            caller.result()


async def test_a_database_that_cannot_be_reached_fails_every_caller_at_once() -> None:
    """Not one connect timeout per caller: two failed opens answer the whole queue."""
    open_unit = FailingOpens(1_000)

    async def work(_: None) -> str:
        return "never"

    group: GroupCommit[None] = GroupCommit(open_unit)
    callers = [asyncio.create_task(group.run(work)) for _ in range(10)]
    done, _ = await asyncio.wait(callers, timeout=5)
    assert done == set(callers)
    for caller in callers:
        assert isinstance(caller.exception(), Unavailable)
    assert open_unit.opened == OPEN_ATTEMPTS


async def test_one_failed_open_is_tried_again_and_the_batch_commits() -> None:
    """A dead pooled connection after a database restart costs one more open."""
    open_unit = FailingOpens(1)

    async def work(_: None) -> str:
        return "done"

    group: GroupCommit[None] = GroupCommit(open_unit)
    results = await asyncio.wait_for(
        asyncio.gather(*(group.run(work) for _ in range(5))), timeout=5
    )
    assert results == ["done"] * 5
    assert open_unit.opened == 2 and group.batches == 1
