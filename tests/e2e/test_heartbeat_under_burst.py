"""A busy process is not declared dead: a burst against the real `python -m bot`
that keeps its writer saturated for several worker TTLs. Its liveness lease never
lapses while it works, so recovery never re-runs a step that is still running.

Sized by TTLs, not events: DMs keep coming, 48 in flight, for SEND_TTLS lease
TTLs of 3 s or up to MAX_EVENTS, and the test checks that the work they started kept
the writer busy for at least SATURATED_TTLS (a fixed 400 events lasted 4-23 TTLs
under load, but under 2 once the ack path got faster; 800 drained in 1.4 TTLs once
acks went first and 1,600 in 1.5 TTLs once SQLite ran on the loop, so the cap is
3,000). With the renewal moved back onto the main engine's normal lane (or onto
the normal lane with an engine of its
own) the 400-event version failed on both backends: the lease lapsed 14-51 times,
by up to 26 s. After group commit, the same break still fails on SQLite (18 lapses,
by up to 8.8 s, with 800 events) but no longer starves PostgreSQL's renewal at
this load.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

from storage.models import AuditRow, LeaseRow, TaskRow
from storage.uow import SqlUnitOfWorkFactory
from tests.e2e.process import BotProcess, bot_env, free_port
from tests.slackfake import payloads
from tests.slackfake.server import FakeSlack
from tests.slackfake.signing import SignedSender

SECRET = "heartbeat-burst-secret"
IN_FLIGHT = 48
TTL = 3
#: DMs are sent for this many TTLs (or until MAX_EVENTS), then their work drains
SEND_TTLS = 3
MAX_EVENTS = 3000
#: the burst must outlast this many TTLs, or a lapse could not have shown
SATURATED_TTLS = 2
#: a safety net so a broken build fails instead of hanging, not a performance bound
DRAIN_TIMEOUT = 600.0


async def _watch_lease(db: SqlUnitOfWorkFactory, margins: list[float], stop: asyncio.Event) -> None:
    """Read the lease as recovery would: seconds left before it expires (< 0: lapsed)."""
    while not stop.is_set():
        async with db(read_only=True) as unit:
            expiries = (
                await unit.session.execute(
                    select(LeaseRow.expires_at).where(LeaseRow.name.like("worker:%"))
                )
            ).scalars()
            now = datetime.now(UTC)
            margins += [(_utc(at) - now).total_seconds() for at in expiries]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=0.5)


def _utc(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


async def test_heartbeat_under_a_burst_lasting_several_ttls(
    fake_slack: FakeSlack, database: str, tmp_path: Path
) -> None:
    port = free_port()
    env = bot_env(fake_slack, SECRET, database, port, TASKBOT_WORKER_TTL_SECONDS=str(TTL))
    bot = BotProcess(env, port, tmp_path / "bot.log")
    await bot.start()
    margins: list[float] = []
    stop = asyncio.Event()
    db = SqlUnitOfWorkFactory.from_url(database)
    watcher = asyncio.create_task(_watch_lease(db, margins, stop))
    statuses: Counter[int] = Counter()
    began = time.monotonic()
    drained = 0.0
    sent = 0
    try:
        numbers = itertools.count()
        async with SignedSender(bot.url + "/slack/events", SECRET, timeout=30) as sender:

            async def send() -> None:
                while time.monotonic() - began < SEND_TTLS * TTL:
                    if (n := next(numbers)) >= MAX_EVENTS:
                        return
                    envelope = payloads.im_message(
                        f"research laptops {n}", user=f"U{n % 50:03d}", channel=f"D{n:05d}"
                    )
                    statuses[(await sender.event(envelope)).status] += 1

            await asyncio.gather(*(send() for _ in range(IN_FLIGHT)))
        sent = statuses.total()
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while time.monotonic() < deadline:
            done = [c for c in fake_slack.calls_to("chat.postMessage") if c.ok]
            finished = sum(str(c.params.get("text", "")).startswith("Done:") for c in done)
            if finished >= sent:
                drained = time.monotonic() - began
                break
            assert bot.proc is not None and bot.proc.poll() is None, bot.log_tail()
            await asyncio.sleep(0.25)
        # one more TTL of quiet: recovery would now find what a lapse had orphaned
        await asyncio.sleep(TTL * 1.5)
    finally:
        stop.set()
        await watcher
        code = bot.stop()

    try:
        async with db(read_only=True) as unit:
            session = unit.session
            starts = Counter(
                (
                    await session.execute(
                        select(AuditRow.task_id).where(AuditRow.action == "PENDING->IN_PROGRESS")
                    )
                ).scalars()
            )
            reruns = await session.scalar(
                select(func.count())
                .select_from(AuditRow)
                .where(AuditRow.action == "IN_PROGRESS->PENDING")
            )
            counted = await session.execute(
                select(TaskRow.status, func.count()).group_by(TaskRow.status)
            )
            status = {name: int(n) for name, n in counted.all()}
    finally:
        await db.dispose()
    lapses = [-m for m in margins if m < 0]
    run_twice = {task_id: n for task_id, n in starts.items() if n > 1}
    print(
        f"\nheartbeat burst: events={sent} http={dict(statuses)} tasks={status} "
        f"steps-started={len(starts)} run-twice={len(run_twice)} recovery-reruns={reruns} "
        f"busy={drained:.1f}s ({drained / TTL:.1f} TTLs) lease-lapses={len(lapses)} "
        f"closest-to-expiry={min(margins, default=TTL):.1f}s"
    )
    assert code == 0, bot.log_tail()
    assert statuses == Counter({200: sent}), statuses
    assert status == {"COMPLETED": sent}, status
    assert drained >= SATURATED_TTLS * TTL, f"raise SEND_TTLS: busy only {drained:.1f}s"
    assert not lapses, f"the worker lease lapsed {len(lapses)} times, worst {max(lapses):.1f}s"
    assert reruns == 0 and not run_twice, (reruns, run_twice)
