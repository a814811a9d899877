"""`/tasks` history query latency with a million tasks.

Fills a migrated database (SQLite file, or a throw-away PostgreSQL database from
--postgres-admin-url, dropped afterwards) with --tasks tasks generated in SQL
(half requests, half their steps; --requesters people; 85 % completed, the rest
failed / cancelled / rejected / pending / running; VACUUM ANALYZE on PostgreSQL as
autovacuum would, nothing on SQLite as in production unless --analyze), then times what `/tasks
[filter]` runs — core.history.History.page: one page of the newest requests and
their count — for random requesters, per filter, and prints p50/p99/max.

    python bench/history_query.py --db both
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from pathlib import Path

from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.burst import database, pct
from core.history import FILTERS, History
from core.policy import Policy
from storage.migrate import upgrade
from storage.uow import SqlUnitOfWorkFactory

# status of request k = (n + 1) / 2: by k * 7919 % 1009 % 100 (independent of the requester)
_STATUS = (
    "CASE WHEN {h} < 85 THEN 'COMPLETED' WHEN {h} < 93 THEN 'FAILED' "
    "WHEN {h} < 96 THEN 'CANCELLED' WHEN {h} < 98 THEN 'REJECTED' "
    "WHEN {h} < 99 THEN 'PENDING' ELSE 'IN_PROGRESS' END"
)


def _fill(*, head: str, created_at: str, numbers: str) -> str:
    """The INSERT … SELECT that makes the tasks; `numbers` yields n = 1 … :tasks."""
    return f"""{head}
INSERT INTO tasks (id, root_id, parent_id, requester, team, channel, thread_ts, agent, title,
                   params, status, cost_cents, currency, position, created_at, updated_at,
                   stale_step)
SELECT n,
       CASE WHEN n % 2 = 1 THEN n ELSE n - 1 END,
       CASE WHEN n % 2 = 1 THEN NULL ELSE n - 1 END,
       'U' || (((n - 1) / 2) % :requesters), 'T0001', 'D' || (((n - 1) / 2) % :requesters),
       '1700000000.' || n, 'research', 'research laptops ' || n, '{{}}',
       {_STATUS.format(h="(((n + 1) / 2) * 7919 % 1009 % 100)")},
       0, 'USD', n % 2, {created_at}, {created_at}, 0
FROM {numbers}
"""


SQLITE_FILL = _fill(
    head="WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < :tasks)",
    created_at="datetime('2026-01-01', '+' || n || ' seconds') || '.000000'",
    numbers="seq",
)
POSTGRES_FILL = _fill(
    head="",
    created_at="timestamptz '2026-01-01 00:00:00+00' + n * interval '1 second'",
    numbers="generate_series(1::bigint, :tasks) AS n",
)


async def fill(url: str, tasks: int, requesters: int, analyze: bool) -> None:
    uow = SqlUnitOfWorkFactory.from_url(url)
    try:
        async with uow.engine.begin() as connection:
            postgres = connection.dialect.name == "postgresql"
            sql = POSTGRES_FILL if postgres else SQLITE_FILL
            await connection.execute(text(sql), {"tasks": tasks, "requesters": requesters})
            if postgres:
                await connection.execute(text("SELECT setval('tasks_id_seq', :n)"), {"n": tasks})
        if postgres or analyze:  # autovacuum would; nothing runs ANALYZE on SQLite
            autocommit = uow.engine.execution_options(isolation_level="AUTOCOMMIT")
            async with autocommit.connect() as connection:
                await connection.execute(text("VACUUM ANALYZE" if postgres else "ANALYZE"))
    finally:
        await uow.dispose()


async def drop_history_indexes(url: str) -> None:
    uow = SqlUnitOfWorkFactory.from_url(url)
    try:
        async with uow.engine.begin() as connection:
            for name in ("ix_tasks_history", "ix_tasks_history_status"):
                await connection.execute(text(f"DROP INDEX IF EXISTS {name}"))
    finally:
        await uow.dispose()


async def measure(url: str, requesters: int, queries: int) -> None:
    uow = SqlUnitOfWorkFactory.from_url(url)
    history = History(uow, Policy(), uow.clock)
    rng = random.Random(12)
    try:
        for name in (None, *FILTERS):
            ms: list[float] = []
            for _ in range(queries):
                requester = f"U{rng.randrange(requesters)}"
                start = time.perf_counter()
                page = await history.page(requester, name)
                ms.append((time.perf_counter() - start) * 1000)
            print(
                f"  /tasks {name or '':<10} p50 {statistics.median(ms):7.2f} ms  "
                f"p99 {pct(ms, 99):7.2f} ms  max {max(ms):7.2f} ms  "
                f"(total {page.total}, {len(page.tasks)} shown)"
            )
    finally:
        await uow.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--requesters", type=int, default=100)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--analyze", action="store_true", help="ANALYZE SQLite too")
    parser.add_argument(
        "--without-index", action="store_true", help="drop the history indexes (as before 0005)"
    )
    parser.add_argument(
        "--postgres-admin-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    )
    args = parser.parse_args()
    import tempfile

    backends = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    with tempfile.TemporaryDirectory() as tmp:
        for backend in backends:
            async with database(backend, tmp, args.postgres_admin_url) as url:
                await upgrade(url)
                start = time.perf_counter()
                await fill(url, args.tasks, args.requesters, args.analyze)
                print(
                    f"{backend}: {args.tasks} tasks, {args.requesters} requesters "
                    f"(filled in {time.perf_counter() - start:.0f} s)"
                )
                if args.without_index:
                    await drop_history_indexes(url)
                    print("  (without the 0006_history_index indexes)")
                await measure(url, args.requesters, args.queries)


if __name__ == "__main__":
    asyncio.run(main())
