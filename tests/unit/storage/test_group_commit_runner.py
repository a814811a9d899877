"""GroupCommit's runner, with a stand-in unit of work: whatever ends the runner,
no caller is left waiting for an answer that never comes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from storage.group_commit import GroupCommit


class Unavailable(Exception):
    pass


async def test_a_runner_cancelled_while_retrying_alone_answers_every_caller() -> None:
    """The batch failed before it was taken (no connection), so its callers are
    retried one by one; shutdown cancels the runner during the first retry."""
    opened = 0

    @asynccontextmanager
    async def open_unit() -> AsyncIterator[None]:
        nonlocal opened
        opened += 1
        if opened == 1:
            raise Unavailable
        yield

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
