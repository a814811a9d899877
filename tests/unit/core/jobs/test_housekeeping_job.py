"""The housekeeping job of the real app, on a FakeClock: after the configured
retention a request's delivered replies and event id are gone, the request itself,
its audit trail and this live process's lease are not."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import func, select

from core.jobs.recovery import worker_lease
from storage.models import AuditRow, InboxRow, LeaseRow, OutboxRow, TaskRow
from tests.fakes import FakeClock
from tests.slackfake import payloads
from tests.unit.core.jobs.conftest import AppFactory

DAY = 86400


async def test_housekeeping_job_prunes_after_the_configured_retention(
    clocked_app: AppFactory,
) -> None:
    clock = FakeClock()
    h = await clocked_app(clock, TASKBOT_RETENTION_DAYS="2", TASKBOT_INBOX_RETENTION_HOURS="1")
    envelope = payloads.im_message("research laptops", user="U1", channel="D1")
    assert (await h.sender.event(envelope)).status == 200
    await h.settle()
    scheduler = h.running.scheduler

    async def table(model: type) -> int:
        async with h.running.container.uow_factory() as uow:
            return int(await uow.session.scalar(select(func.count()).select_from(model)) or 0)

    clock.advance(1 * DAY)  # past the inbox retention, within the records'
    await scheduler.heartbeat()
    first = await scheduler.housekeeper.run()
    assert first == {"outbox": 0, "holds": 0, "inbox": 1, "leases": 0}

    clock.advance(2 * DAY)
    await scheduler.heartbeat()  # this process is alive: its lease is renewed
    second = await scheduler.housekeeper.run()

    # the answer's entry ("got it" is folded into the status message: it has no row)
    assert second["outbox"] == 1 and second["inbox"] == 0
    assert await table(OutboxRow) == await table(InboxRow) == 0
    assert await table(TaskRow) >= 1 and await table(AuditRow) >= 1
    async with h.running.container.uow_factory() as uow:
        leases = Counter((await uow.session.execute(select(LeaseRow.name))).scalars().all())
    assert worker_lease(scheduler.worker) in leases
