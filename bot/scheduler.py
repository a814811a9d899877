"""In-process APScheduler jobs, each gated by a database lease so that with several
processes on one database every job acts once per tick in total."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.container import Container
from bot.settings import Settings
from core.approval_timer import ApprovalTimer
from core.recovery import Recovery, worker_lease
from core.stale import StaleReporter

log = logging.getLogger(__name__)

INBOX_KEEP = timedelta(days=7)


class JobScheduler:
    def __init__(self, container: Container, settings: Settings) -> None:
        self._c = container
        self._settings = settings
        self.worker = container.service.worker
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        service = container.service
        self.stale = StaleReporter(
            container.uow, service.policy, container.clock, settings.report_channel
        )
        self.approval_timer = ApprovalTimer(
            container.uow, service.approvals, service.policy, container.clock
        )
        self.recovery = Recovery(container.uow, service.registry, container.clock, service.policy)

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)

    def start(self) -> None:
        s = self._settings
        approval_every = max(5, min(300, s.reminder_after_seconds // 4))
        self._every("heartbeat", max(1, s.worker_ttl_seconds // 3), self.heartbeat, gated=False)
        self._every("stale-report", s.stale_check_seconds, self.stale_report)
        self._every("approvals", approval_every, self.approvals)
        self._every("recovery", s.worker_ttl_seconds, self.recover)
        self._every("housekeeping", 3600, self.housekeeping)
        self._scheduler.start()

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def _every(
        self, name: str, seconds: int, job: Callable[[], Awaitable[object]], gated: bool = True
    ) -> None:
        async def tick() -> None:
            try:
                if gated and not await self.lease(name, seconds):
                    return
                await job()
            except Exception:
                log.exception("scheduled job %s failed", name)

        self._scheduler.add_job(
            tick,
            "interval",
            seconds=seconds,
            id=name,
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now(UTC) + timedelta(seconds=1 if gated else 0),
        )

    async def lease(self, name: str, seconds: int) -> bool:
        """One holder per job per tick; a holder that dies is replaced after one interval."""
        async with self._c.uow() as uow:
            return await uow.leases.acquire(
                f"job:{name}", self.worker, self._c.clock.now(), seconds * 0.9
            )

    async def heartbeat(self) -> None:
        async with self._c.uow() as uow:
            await uow.leases.acquire(
                worker_lease(self.worker),
                self.worker,
                self._c.clock.now(),
                self._settings.worker_ttl_seconds,
            )

    async def stale_report(self) -> int:
        return await self.stale.run()

    async def approvals(self) -> None:
        _reminded, roots = await self.approval_timer.run()
        for root in roots:
            self._c.service.orchestrator.schedule(root)

    async def recover(self) -> None:
        for root in await self.recovery.run():
            self._c.service.orchestrator.schedule(root)

    async def housekeeping(self) -> int:
        async with self._c.uow() as uow:
            return await uow.inbox.prune_before(self._c.clock.now() - INBOX_KEEP)
