"""Shared pieces for the scheduled-job tests (stale report, approval timer, recovery,
several processes on one database).

Core-level tests use the storage fixtures (real SQLite and PostgreSQL); app-level
tests start the real app in-process against the fake Slack, with a FakeClock
passed to the composition root so time only moves when a test says so.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from bot.container import build
from bot.scheduler import JobScheduler
from bot.server import start
from core.agents.base import AgentContext, AgentResult
from core.agents.purchase import PurchaseAgent
from tests.e2e.conftest import SECRET, Harness, make_settings
from tests.fakes import FakeClock
from tests.slackfake.server import FakeSlack
from tests.slackfake.signing import SignedSender
from tests.unit.core.helpers import Event, Recorder
from tests.unit.storage.fixtures import (  # noqa: F401
    clock,
    database_url,
    engine,
    postgres_url,
    sqlite_url,
    uow_factory,
)

# --- agents that stop half way, so a test can "kill" the worker running them -------------


class Gate:
    """Agents wait on this; `started` is set once one of them is running."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def pass_through(self) -> None:
        self.started.set()
        await self.release.wait()

    async def wait_started(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self.started.wait(), timeout)


class GatedResearch:
    """A research agent that blocks until its gate opens (safe to re-run, like research)."""

    name = "research"
    requires_approval = False
    safe_to_rerun = True

    def __init__(self, recorder: Recorder, gate: Gate) -> None:
        self.recorder = recorder
        self.gate = gate

    def estimate_cost_cents(self, params: Mapping[str, Any]) -> int:
        return 0

    async def run(self, ctx: AgentContext) -> AgentResult:
        self.recorder.events.append(Event("start", self.name, ctx.task_id))
        await self.gate.pass_through()
        self.recorder.events.append(Event("finish", self.name, ctx.task_id))
        return AgentResult(summary=f"research result #{ctx.task_id}")


class GatedPurchase(PurchaseAgent):
    """The real purchase agent (not safe to re-run), blocking until its gate opens."""

    def __init__(self, recorder: Recorder, gate: Gate) -> None:
        self.recorder = recorder
        self.gate = gate

    async def run(self, ctx: AgentContext) -> AgentResult:
        self.recorder.events.append(Event("start", self.name, ctx.task_id))
        await self.gate.pass_through()
        self.recorder.events.append(Event("finish", self.name, ctx.task_id))
        return await super().run(ctx)


# --- the real app on a FakeClock ---------------------------------------------------------

AppFactory = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def clocked_app(tmp_path: Path, fake_slack: FakeSlack) -> AsyncIterator[AppFactory]:
    """`await clocked_app(clock, **env)` starts the real app (HTTP server, scheduler,
    outbox sender) on `clock`; call it twice for two instances on one database."""
    started: list[tuple[Harness, SignedSender]] = []

    async def make(fake_clock: FakeClock, **env: Any) -> Harness:
        settings = make_settings(tmp_path, fake_slack, **env)
        container = await build(settings, clock=fake_clock)
        running = await start(settings, container=container)
        sender = SignedSender(f"http://127.0.0.1:{running.port}/slack/events", SECRET)
        await sender.__aenter__()
        harness = Harness(fake_slack, sender, running, settings)
        started.append((harness, sender))
        return harness

    try:
        yield make
    finally:
        for harness, sender in reversed(started):
            await sender.close()
            await harness.running.stop()


class TickCounter:
    """Counts the ticks of one scheduled job in one JobScheduler (each lease attempt is a
    tick), so a test can wait for a number of ticks instead of a wall-clock duration."""

    def __init__(self, scheduler: JobScheduler, job: str) -> None:
        self.attempts = 0
        self.won = 0
        self._changed = asyncio.Event()
        original = scheduler.lease

        async def lease(name: str, seconds: float) -> bool:
            result = await original(name, seconds)
            if name == job:
                self.attempts += 1
                self.won += int(result)
                self._changed.set()
            return result

        scheduler.lease = lease  # type: ignore[method-assign]

    async def wait_for(self, attempts: int, timeout: float = 20.0) -> None:
        async with asyncio.timeout(timeout):
            while self.attempts < attempts:
                self._changed.clear()
                await self._changed.wait()


@pytest.fixture
async def gate() -> AsyncIterator[Gate]:
    g = Gate()
    yield g
    g.release.set()
