"""Fault injection for the outcome-recording tests: a unit-of-work factory whose
ledger breaks (or hangs) for chosen tasks, agents that return what a test
scripts, and a sleep that records the backoff instead of waiting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, TypeVar

from core.agents.base import AgentContext, AgentResult
from core.records import LedgerEntry
from storage.uow import SqlUnitOfWork, SqlUnitOfWorkFactory
from tests.unit.core.helpers import Event, Recorder

_T = TypeVar("_T")


class LedgerDown(Exception):
    """What the broken ledger raises (a stand-in for any failure while recording)."""


class BrokenLedger:
    def __init__(self, inner: Any, faults: Faults) -> None:
        self._inner = inner
        self._faults = faults

    async def record(self, entry: LedgerEntry) -> None:
        if entry.task_id in self._faults.hang_for:
            self._faults.hanging.set()
            await asyncio.Event().wait()  # until the "process" is killed
        if entry.task_id in self._faults.broken_for:
            self._faults.breaks += 1
            raise LedgerDown(f"ledger unavailable for task {entry.task_id}")
        await self._inner.record(entry)

    async def for_task(self, task_id: int) -> list[LedgerEntry]:
        result: list[LedgerEntry] = await self._inner.for_task(task_id)
        return result


class Faults:
    """Wraps a real SqlUnitOfWorkFactory; everything else is the real storage."""

    def __init__(self, inner: SqlUnitOfWorkFactory) -> None:
        self.inner = inner
        self.front_door = inner.front_door
        self.broken_for: set[int] = set()
        self.hang_for: set[int] = set()
        self.breaks = 0
        self.hanging = asyncio.Event()

    def __call__(
        self, *, urgent: bool = False, read_only: bool = False, first: bool = False
    ) -> AbstractAsyncContextManager[SqlUnitOfWork]:
        return self._open(urgent, read_only)

    async def together(
        self,
        work: Callable[[SqlUnitOfWork], Awaitable[_T]],
        *,
        background: bool = False,
        first: bool = False,
    ) -> _T:
        async with self._open(not background, False) as uow:
            return await work(uow)

    @asynccontextmanager
    async def _open(self, urgent: bool, read_only: bool) -> AsyncIterator[SqlUnitOfWork]:
        async with self.inner(urgent=urgent, read_only=read_only) as uow:
            uow.ledger = BrokenLedger(uow.ledger, self)
            yield uow


@dataclass(eq=False)
class ScriptedAgent:
    """Returns (or raises) what `script(ctx, attempt)` says; counts attempts per task."""

    name: str
    recorder: Recorder
    script: Callable[[AgentContext, int], Any]
    _: KW_ONLY
    safe_to_rerun: bool = True
    requires_approval: bool = False
    delay: float = 0.0
    attempts: dict[int, int] = field(default_factory=dict, init=False)

    def estimate_cost_cents(self, params: Mapping[str, Any]) -> int:
        return 0

    async def run(self, ctx: AgentContext) -> AgentResult:
        attempt = self.attempts[ctx.task_id] = self.attempts.get(ctx.task_id, 0) + 1
        self.recorder.events.append(Event("start", self.name, ctx.task_id))
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            outcome = self.script(ctx, attempt)
            if asyncio.iscoroutine(outcome):
                outcome = await outcome
            if isinstance(outcome, BaseException):
                raise outcome
            return outcome  # type: ignore[no-any-return]
        finally:
            self.recorder.events.append(Event("finish", self.name, ctx.task_id))


class RecordedSleep:
    """An injectable sleep: remembers each requested delay and only yields."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0)
