"""In-process APScheduler jobs, each gated by a database lease so that with several
processes on one database every job acts once per tick in total."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.container import Container
from bot.metrics import Metrics
from bot.settings import Settings
from core.jobs.recovery import worker_lease

log = logging.getLogger(__name__)


class JobScheduler:
    def __init__(
        self, container: Container, settings: Settings, metrics: Metrics | None = None
    ) -> None:
        self._c = container
        self._settings = settings
        self._metrics = metrics or Metrics()
        self.worker = container.service.worker
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self.stale = container.jobs.stale
        self.approval_timer = container.jobs.approval_timer
        self.recovery = container.jobs.recovery
        self.housekeeper = container.jobs.housekeeping
        self.liveness = container.uow_factory.liveness_lease(
            worker_lease(self.worker), self.worker, settings.worker_ttl_seconds
        )
        self._beating: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)

    def start(self) -> None:
        s = self._settings
        approval_every = max(5, min(300, s.reminder_after_seconds // 4))
        self._beating = asyncio.get_running_loop().create_task(self._beat(), name="heartbeat")
        self._every("stale-report", s.stale_check_seconds, self.stale_report)
        self._every("approvals", approval_every, self.approvals)
        self._every("recovery", s.worker_ttl_seconds, self.recover)
        self._every("housekeeping", 3600, self.housekeeping)
        self._scheduler.start()

    def shutdown(self) -> None:
        if self._beating is not None:
            self._beating.cancel()
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    @property
    def beat_seconds(self) -> float:
        """Four renewals per TTL: three may be lost before the process looks dead."""
        return max(0.5, self._settings.worker_ttl_seconds / 4)

    async def _beat(self) -> None:
        """Renew the liveness lease at a fixed rate, in a task of its own rather than
        an APScheduler job (which skips a run that is late or still running). Each
        renewal is bounded, so one stuck call cannot hold back the next."""
        loop = asyncio.get_running_loop()
        every = self.beat_seconds
        due = loop.time()
        while True:
            due += every
            try:
                async with asyncio.timeout(every):
                    await self.heartbeat()
            except Exception:
                self._metrics.job_failed("heartbeat")
                log.warning("renewing the worker lease failed", exc_info=True)
            else:
                self._metrics.job_ran("heartbeat")
            due = max(due, loop.time())
            await asyncio.sleep(due - loop.time())

    def _every(
        self, name: str, seconds: float, job: Callable[[], Awaitable[int]], gated: bool = True
    ) -> None:
        async def tick() -> None:
            """Counted when this process ran the job; logged at INFO only when it did something."""
            started = time.perf_counter()
            try:
                if gated and not await self.lease(name, seconds):
                    return
                done = await job()
            except Exception:
                self._metrics.job_failed(name)
                log.exception("scheduled job %s failed", name, extra={"job": name})
                return
            self._metrics.job_ran(name)
            if done:
                ms = round((time.perf_counter() - started) * 1000, 1)
                log.info(
                    "job %s: %d done in %s ms",
                    name,
                    done,
                    ms,
                    extra={"job": name, "count": done, "duration_ms": ms},
                )

        self._scheduler.add_job(
            tick,
            "interval",
            seconds=seconds,
            id=name,
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now(UTC) + timedelta(seconds=1 if gated else 0),
        )

    async def lease(self, name: str, seconds: float) -> bool:
        """One holder per job per tick; a holder that dies is replaced after one interval."""
        async with self._c.uow_factory() as uow:
            return await uow.leases.acquire(
                f"job:{name}", self.worker, self._c.clock.now(), seconds * 0.9
            )

    async def heartbeat(self) -> None:
        if not await self.liveness.renew(self._c.clock.now()):
            log.error("worker lease %s is held by another process", self.liveness.name)

    async def stale_report(self) -> int:
        return await self.stale.run()

    async def approvals(self) -> int:
        """Reminders written plus approvals expired."""
        reminded, roots = await self.approval_timer.run()
        for root in roots:
            self._c.service.resume(root)
        return reminded + len(roots)

    async def recover(self) -> int:
        """Workflows taken over from dead processes."""
        roots = await self.recovery.run()
        for root in roots:
            self._c.service.resume(root)
        return len(roots)

    async def housekeeping(self) -> int:
        """Rows pruned, all kinds together."""
        return sum((await self.housekeeper.run()).values())
