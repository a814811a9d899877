"""Database bytes per request: run N requests through the real bot, then measure.

Starts a fake Slack and `python -m bot` on a fresh SQLite file (or a fresh
PostgreSQL database created from --postgres-admin-url), sends N signed DM
requests, waits until every reply was delivered, stops the bot and prints the
database size per request: as the run left it, and after housekeeping with a
clock moved past the retention (what is kept for good: tasks, audit, ledger).

SQLite: (page_count - freelist_count) * page_size after a WAL checkpoint.
PostgreSQL: sum of pg_total_relation_size over the tables (after VACUUM FULL for
the pruned figure, since PostgreSQL does not shrink files on DELETE).

    python bench/storage_size.py --requests 500
    python bench/storage_size.py --requests 500 \
        --postgres-admin-url postgresql+asyncpg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sqlite3
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import SECRET, running_bot, settled_check
from core.clock import SystemClock
from core.jobs.housekeeping import Housekeeping, Retention
from storage.migrate import upgrade
from storage.uow import SqlUnitOfWorkFactory
from tests.fakes import FakeClock
from tests.slackfake import payloads
from tests.slackfake.server import FakeSlack
from tests.slackfake.signing import SignedSender


async def drive(
    slack: FakeSlack, url: str, database_url: str, requests: int, concurrency: int
) -> None:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(requests):
        queue.put_nowait(n)
    async with SignedSender(url + "/slack/events", SECRET) as sender:

        async def worker() -> None:
            while not queue.empty():
                n = queue.get_nowait()
                envelope = payloads.im_message(
                    f"research laptops {n}", user=f"U{n % 50}", channel=f"D{n % 50}"
                )
                response = await sender.event(envelope)
                if response.status != 200:
                    raise SystemExit(f"request {n} answered {response.status}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    deadline = time.monotonic() + 600
    settled = settled_check(database_url)
    while not await settled(requests):  # every request answered, every reply sent
        if time.monotonic() > deadline:
            raise SystemExit("replies were not all delivered")
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)  # the last ts recorded


def sqlite_bytes(path: str) -> int:
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
        size = db.execute("PRAGMA page_size").fetchone()[0]
    return int((pages - free) * size)


async def postgres_bytes(url: str, vacuum: bool) -> int:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            if vacuum:
                await connection.execute(text("VACUUM FULL"))
            total = await connection.scalar(
                text(
                    "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = 'public' AND c.relkind = 'r'"
                )
            )
            return int(total or 0)
    finally:
        await engine.dispose()


async def prune_as_if_retention_passed(database_url: str) -> dict[str, int]:
    retention = Retention()
    later = FakeClock(SystemClock().now() + retention.records + timedelta(days=1))
    uow_factory = SqlUnitOfWorkFactory.from_url(database_url, later)
    try:
        return await Housekeeping(uow_factory, later, retention).run()
    finally:
        await uow_factory.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--postgres-admin-url", default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        admin_url = args.postgres_admin_url
        pg_name = f"taskbot_bench_{secrets.token_hex(4)}"
        if admin_url:
            database_url = make_url(admin_url).set(database=pg_name).render_as_string(False)
            admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
            async with admin.connect() as connection:
                await connection.execute(text(f'CREATE DATABASE "{pg_name}"'))
        else:
            database_url = f"sqlite+aiosqlite:///{tmp}/bench.db"
        try:
            await measure(database_url, args.requests, args.concurrency, f"{tmp}/bench.db")
        finally:
            if admin_url:
                async with admin.connect() as connection:
                    await connection.execute(
                        text(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
                    )
                await admin.dispose()


async def measure(database_url: str, requests: int, concurrency: int, sqlite_path: str) -> None:
    postgres = database_url.startswith("postgresql")

    async def size(vacuum: bool) -> int:
        if postgres:
            return await postgres_bytes(database_url, vacuum)
        return sqlite_bytes(sqlite_path)

    await upgrade(database_url)
    empty = await size(vacuum=False)  # the schema's fixed cost, not counted per request
    async with FakeSlack() as slack, running_bot(slack, database_url) as url:
        await drive(slack, url, database_url, requests, concurrency)

    after_run = await size(vacuum=postgres)
    pruned = await prune_as_if_retention_passed(database_url)
    after_prune = await size(vacuum=postgres)
    backend = "PostgreSQL" if postgres else "SQLite"
    print(f"{backend}: {requests} requests, every reply delivered")
    print(f"empty schema           {empty} bytes")
    print(
        f"after the run          {after_run} bytes: "
        f"{(after_run - empty) / requests:.0f} bytes/request"
    )
    print(f"pruned past retention  {pruned}")
    print(
        f"kept for good          {after_prune} bytes: "
        f"{(after_prune - empty) / requests:.0f} bytes/request (tasks, audit log, ledger)"
    )


if __name__ == "__main__":
    asyncio.run(main())
