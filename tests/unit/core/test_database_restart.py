"""Database restart mid-step, on PostgreSQL: the app reaches the database through a
loopback TCP proxy that the test cuts (every connection dropped, new ones refused)
while an agent runs, then restores. The shared server is never restarted.

A short outage: recording the outcome is retried and the step completes. An outage
longer than the bounded retries: the step is failed with a message as soon as the
database is back. Either way the request ends and its requester is told."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from sqlalchemy.engine import make_url

from bot.container import build_service
from core.agents.registry import AgentRegistry
from core.notices import TaskFailed, TaskFinished
from core.policy import Policy
from core.records import Task
from core.service import TaskService
from core.states import TaskStatus
from storage.engine import create_engine
from storage.migrate import upgrade
from storage.uow import SqlUnitOfWorkFactory
from tests.fakes import FakeClock
from tests.unit.core.helpers import Recorder, agent_registry, notices, submit, task
from tests.unit.core.jobs.conftest import Gate, GatedResearch
from tests.unit.storage.tcp_proxy import TcpProxy


@dataclass
class Rig:
    proxy: TcpProxy
    app: SqlUnitOfWorkFactory  # through the proxy
    probe: SqlUnitOfWorkFactory  # straight to PostgreSQL
    service: TaskService
    gate: Gate


@pytest.fixture
async def rig(postgres_url: str, clock: FakeClock) -> AsyncIterator[Rig]:
    await upgrade(postgres_url)
    url = make_url(postgres_url)
    proxy = await TcpProxy(url.host or "127.0.0.1", url.port or 5432).start()
    via = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    app = SqlUnitOfWorkFactory(create_engine(via, connect_args={"timeout": 5}), clock)
    probe = SqlUnitOfWorkFactory(create_engine(postgres_url), clock)
    recorder, gate = Recorder(), Gate()
    registry: AgentRegistry = agent_registry(recorder)
    registry.register(GatedResearch(recorder, gate), replace=True)
    service = build_service(app, registry, Policy(), clock)
    service.orchestrator.executor.record_backoff_seconds = 0.05
    try:
        yield Rig(proxy, app, probe, service, gate)
    finally:
        gate.release.set()
        proxy.restore()
        await service.close(5)
        await proxy.close()
        await app.dispose()
        await probe.dispose()


async def start_step(rig: Rig) -> Task:
    submission = await submit(rig.service, "research standing desks")
    assert submission.root is not None
    rig.service.start(submission)
    await rig.gate.wait_started()
    return submission.root


async def until(condition: object, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.01)


async def test_database_restart_mid_step_on_postgresql_completes_the_step(rig: Rig) -> None:
    root = await start_step(rig)
    rig.proxy.cut()  # the database goes away while the agent works
    rig.gate.release.set()
    await until(lambda: rig.proxy.refused >= 3)  # recording was tried, and failed
    assert (await task(rig.probe, root.id)).status is TaskStatus.IN_PROGRESS
    rig.proxy.restore()
    await rig.service.idle()

    done = await task(rig.probe, root.id)
    assert done.status is TaskStatus.COMPLETED
    assert done.result is not None and done.result.summary == f"research result #{root.id}"
    assert [n.task_id for n in await notices(rig.probe, TaskFinished)] == [root.id]
    assert await notices(rig.probe, TaskFailed) == []


async def test_database_away_longer_than_the_retries_fails_the_step_once_it_is_back(
    rig: Rig,
) -> None:
    executor = rig.service.orchestrator.executor
    executor.record_attempts = 3
    gave_up = asyncio.Event()
    original = executor._fail

    async def fail(step: Task, reason: str) -> None:
        gave_up.set()
        await original(step, reason)

    executor._fail = fail  # type: ignore[method-assign]
    root = await start_step(rig)
    rig.proxy.cut()
    rig.gate.release.set()
    await asyncio.wait_for(gave_up.wait(), 30)  # bounded retries used up; still away
    await until(lambda: rig.proxy.refused >= executor.record_attempts + 2)
    assert (await task(rig.probe, root.id)).status is TaskStatus.IN_PROGRESS
    rig.proxy.restore()
    await rig.service.idle()

    failed = await task(rig.probe, root.id)
    assert failed.status is TaskStatus.FAILED
    assert failed.error is not None
    assert failed.error.startswith("The research agent finished, but its outcome could not be")
    (told,) = await notices(rig.probe, TaskFailed)
    assert told.task_id == root.id and told.error == failed.error
