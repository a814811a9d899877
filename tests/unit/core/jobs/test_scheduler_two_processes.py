"""Two app instances on one database (each with its own engine, APScheduler, outbox
sender and worker id, as two processes would have): the stale report is posted once,
not once per instance, and each job's lease has one holder at a time.

Both instances share a FakeClock, so staleness moves only when the test advances it;
the schedulers tick on their own (four times a second) and the test counts their ticks."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator

import pytest

from bot.container import build
from bot.scheduler import JobScheduler
from core.states import TaskStatus
from tests.e2e.conftest import Harness, make_settings
from tests.fakes import FakeClock
from tests.slackfake import payloads
from tests.slackfake.server import Call, FakeSlack
from tests.unit.core.jobs.conftest import AppFactory, TickCounter

STALE = 3600
REPORT = "CREPORT"
JOB = "stale-report"
MORE_TICKS = 3


def digests(fake: FakeSlack) -> list[Call]:
    return [c for c in fake.calls_to("chat.postMessage") if c.params.get("channel") == REPORT]


def listed_ids(call: Call) -> set[int]:
    return {int(n) for n in re.findall(r"`#(\d+)`", json.dumps(call.params["blocks"]))}


async def wait_for_ticks(counters: list[TickCounter], more: int) -> None:
    """Let every instance's stale job tick `more` more times."""
    targets = [c.attempts + more for c in counters]
    for counter, target in zip(counters, targets, strict=True):
        await counter.wait_for(target)


async def stale_purchases(h: Harness, users: list[str]) -> list[int]:
    ids = []
    for user in users:
        envelope = payloads.im_message("buy a monitor for $100", user=user, channel=f"D{user}")
        assert (await h.sender.event(envelope)).status == 200
        await h.settle()
        async with h.running.container.uow_factory() as uow:
            task = await uow.tasks.by_source_event(envelope["event_id"])
        assert task is not None and task.status is TaskStatus.PENDING
        ids.append(task.id)
    return ids


async def test_two_instances_post_one_digest_per_escalation_step(
    clocked_app: AppFactory, database_url: str, fake_slack: FakeSlack
) -> None:
    clock = FakeClock()
    env = {
        "DATABASE_URL": database_url,
        "TASKBOT_STALE_CHECK_SECONDS": "0.25",
        "TASKBOT_STALE_AFTER_SECONDS": str(STALE),
        "TASKBOT_REPORT_CHANNEL": REPORT,
    }
    one = await clocked_app(clock, **env)
    two = await clocked_app(clock, **env)
    assert one.running.container.uow_factory.engine is not two.running.container.uow_factory.engine
    assert one.running.scheduler.worker != two.running.scheduler.worker
    counters = [TickCounter(h.running.scheduler, JOB) for h in (one, two)]

    task_ids = await stale_purchases(one, ["U1", "U2", "U3"])
    await wait_for_ticks(counters, 1)  # both schedulers are ticking…
    assert digests(fake_slack) == []  # …and nothing is stale yet

    clock.advance(STALE + 1)
    await fake_slack.wait_for("chat.postMessage", where=lambda c: c.params["channel"] == REPORT)
    await wait_for_ticks(counters, MORE_TICKS)
    (first,) = digests(fake_slack)
    assert first.ok and listed_ids(first) == set(task_ids)
    assert "3 requests waiting too long" in json.dumps(first.params["blocks"])

    clock.advance(STALE // 2)  # 1.5×: same step, nothing new
    await wait_for_ticks(counters, MORE_TICKS)
    assert len(digests(fake_slack)) == 1

    clock.advance(STALE // 2)  # past 2×: the next escalation step, the same day
    await fake_slack.wait_for("chat.update", where=lambda c: c.params["channel"] == REPORT)
    await wait_for_ticks(counters, MORE_TICKS)
    assert len(digests(fake_slack)) == 1  # the day's one digest, updated in place
    (second,) = [c for c in fake_slack.calls_to("chat.update") if c.params["channel"] == REPORT]
    assert second.ok and second.params["ts"] == first.response["ts"]
    assert listed_ids(second) == set(task_ids)
    # each instance tried every tick; the lease let one act per tick
    assert all(c.attempts >= 2 * MORE_TICKS for c in counters)


# --- the job lease itself ------------------------------------------------------------------


@pytest.fixture
async def two_schedulers(
    tmp_path: object, fake_slack: FakeSlack, database_url: str
) -> AsyncIterator[tuple[JobScheduler, JobScheduler, FakeClock]]:
    clock = FakeClock()
    settings = make_settings(tmp_path, fake_slack, DATABASE_URL=database_url)  # type: ignore[arg-type]
    a = await build(settings, clock=clock)
    b = await build(settings, clock=clock)
    yield JobScheduler(a, settings), JobScheduler(b, settings), clock
    await a.close()
    await b.close()


async def test_the_job_lease_has_one_holder_per_tick_and_is_taken_over(
    two_schedulers: tuple[JobScheduler, JobScheduler, FakeClock],
) -> None:
    a, b, clock = two_schedulers
    assert a.worker != b.worker
    interval = 10  # the lease lasts 0.9 × the job's interval

    # both ask at once, tick after tick: exactly one wins each time
    for _ in range(5):
        results = await asyncio.gather(a.lease(JOB, interval), b.lease(JOB, interval))
        assert sorted(results) == [False, True]
    holder, other = (a, b) if await a.lease(JOB, interval) else (b, a)

    # while the holder renews every tick, the other never gets it
    for _ in range(5):
        clock.advance(interval / 2)  # the other's tick falls between the holder's…
        assert await other.lease(JOB, interval) is False
        clock.advance(interval / 2)  # …or just after it
        assert await holder.lease(JOB, interval) is True
        assert await other.lease(JOB, interval) is False

    # the holder stops renewing: not taken before the lease ends, taken after
    clock.advance(interval * 0.9 - 1)
    assert await other.lease(JOB, interval) is False
    clock.advance(2)
    assert await other.lease(JOB, interval) is True
    assert await holder.lease(JOB, interval) is False  # the old holder has lost it
    assert await other.lease(JOB, interval) is True

    # leases are per job
    assert await holder.lease("approvals", interval) is True
    assert await other.lease("approvals", interval) is False
