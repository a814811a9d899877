"""Commits and statements one request costs, counted on the engine.

Runs the real core and storage in-process (no Slack, no HTTP): submits
--requests DMs ("research laptops"), drives each to its end, delivers its
replies through a notifier that accepts everything, and prints per request the
transactions committed and the statements executed, split into the ack path
(submit) and the rest. Counts do not depend on the machine's load, so they
compare before/after exactly.

    python bench/statements.py --db sqlite
    python bench/statements.py --db postgresql --requests 20
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import event

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.burst import database
from bot.container import build_registry, build_service
from bot.settings import Settings
from core.clock import SystemClock
from core.notices import Notice
from core.orchestrator import Request
from core.outbox import OutboxDispatcher
from core.ports import Attempt
from core.records import Conversation
from storage.migrate import upgrade
from storage.uow import SqlUnitOfWorkFactory


class Accepting:
    """A notifier that takes every notice at once."""

    def __init__(self) -> None:
        self.delivered = 0

    async def deliver(self, notice: Notice, attempt: Attempt | None = None) -> str:
        self.delivered += 1
        return f"{1700000000 + self.delivered}.000100"


class Counts:
    def __init__(self) -> None:
        self.commits = 0
        self.statements = 0
        self.kinds: Counter[str] = Counter()

    def snapshot(self) -> tuple[int, int]:
        return self.commits, self.statements


def count_on(engine: Any, counts: Counts) -> None:
    @event.listens_for(engine.sync_engine, "commit")
    def _commit(_conn: Any) -> None:
        counts.commits += 1

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _statement(*args: Any) -> None:
        counts.statements += 1
        counts.kinds[str(args[2]).split(None, 1)[0].upper()] += 1


async def measure(url: str, requests: int) -> None:
    await upgrade(url)
    os.environ.setdefault("SLACK_BOT_TOKEN", "xoxb-statements")
    os.environ.setdefault("SLACK_SIGNING_SECRET", "statements")
    settings = Settings(DATABASE_URL=url)  # type: ignore[call-arg]
    clock = SystemClock()
    factory = SqlUnitOfWorkFactory.from_url(url, clock)
    service = build_service(factory, build_registry(settings), settings.policy(), clock)
    notifier = Accepting()
    outbox = OutboxDispatcher(factory, notifier, clock)
    counts = Counts()
    count_on(factory.engine, counts)
    ack = [0, 0]
    try:
        for n in range(requests):
            conv = Conversation(requester=f"U{n:04d}", channel=f"D{n:04d}", thread_ts=f"{n}.1")
            before = counts.snapshot()
            submission = await service.submit(
                Request(text=f"research laptops {n}", conversation=conv, event_id=f"Ev{n}")
            )
            after = counts.snapshot()
            ack[0] += after[0] - before[0]
            ack[1] += after[1] - before[1]
            assert submission.root is not None
            await service.orchestrator.advance(submission.root.id)
            await outbox.drain()
    finally:
        await factory.dispose()
    print(
        f"{factory.engine.dialect.name}: {requests} requests, {notifier.delivered} replies\n"
        f"  per request: {counts.commits / requests:.1f} commits, "
        f"{counts.statements / requests:.1f} statements\n"
        f"  of which the ack path: {ack[0] / requests:.1f} commits, "
        f"{ack[1] / requests:.1f} statements\n"
        "  statements by kind: "
        + ", ".join(f"{k} {v / requests:.1f}" for k, v in counts.kinds.most_common())
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument(
        "--postgres-admin-url",
        default=os.environ.get(
            "TASKBOT_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
        ),
    )
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    with tempfile.TemporaryDirectory() as tmp:
        for backend in backends:
            async with database(backend, tmp, args.postgres_admin_url) as url:
                await measure(url, args.requests)


if __name__ == "__main__":
    asyncio.run(main())
