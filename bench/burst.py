"""A burst of signed DMs against taskbot and a bare Bolt app, in one run.

For each database asked for (--db sqlite|postgresql|both) it starts, one after
the other, `python bench/bare_bolt.py` (no storage) and `python -m bot`, each
against its own fake Slack Web API on loopback (tests/slackfake), sends both the
same load (--events signed DMs, --concurrency in flight) and prints, for each:
ack p50/p99/max, acked events/s, time until every reply was delivered, CPU of
the app process per event (utime+stime from /proc/<pid>/stat), its RSS after the
run and database bytes per request — with taskbot's ratio to bare Bolt. Absolute
figures move with the machine's load; the ratios from one run are what to compare.

--two-process additionally drives --two-process-events over two taskbot
processes on one database and prints the slowest ack.
--baseline-root DIR also runs the bot from another checkout (before/after in one run).
--profile DIR records each taskbot run with py-spy (`pip install -e '.[bench]'`)
into DIR/<db>.txt (collapsed stacks) and prints where the time went.

PostgreSQL: a throw-away database is created from --postgres-admin-url and
dropped afterwards. Everything listens on 127.0.0.1 only.

    python bench/burst.py --db both
    python bench/burst.py --db sqlite --events 2000 --two-process --profile /tmp/prof
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import settled_check
from bench.storage_size import postgres_bytes, sqlite_bytes
from tests.e2e.process import process_env
from tests.slackfake import payloads
from tests.slackfake.server import FakeSlack
from tests.slackfake.signing import SignedSender

SECRET = "bench-secret"
TICKS = os.sysconf("SC_CLK_TCK")
REPLIES_PER_EVENT = 1  # bare Bolt: one reply in the thread


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class App:
    """One app process (bare Bolt or taskbot), optionally under `py-spy record`."""

    def __init__(
        self,
        argv: list[str],
        env: dict[str, str],
        log: Path,
        profile: Path | None = None,
        cwd: Path = ROOT,
    ) -> None:
        self.port = int(env["PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        if profile is not None:
            spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
            argv = [spy, "record", "-f", "raw", "-r", "250", "-o", str(profile), "--", *argv]
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out
            )
        self.log = log
        self.profiled = profile is not None
        self.pid = self.proc.pid

    async def ready(self, health: bool, within: float = 60) -> None:
        deadline = time.monotonic() + within
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise SystemExit(f"app exited early:\n{self.log.read_text()[-3000:]}")
                with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError):
                    if health:
                        async with session.get(self.url + "/healthz") as r:
                            if r.status == 200:
                                break
                    else:
                        _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                        writer.close()
                        break
                await asyncio.sleep(0.1)
            else:
                raise SystemExit(f"app not ready:\n{self.log.read_text()[-3000:]}")
        if self.profiled:  # measure the python child, not py-spy
            self.pid = self._child()

    def _child(self) -> int:
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        return int(children.split()[0])

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


@dataclass
class Figures:
    acks_ms: list[float] = field(default_factory=list)
    failed: int = 0
    acked_per_s: float = 0.0
    delivered_s: float = float("nan")
    #: Slack chat.* calls that succeeded (posts and edits)
    delivered: int = 0
    settled: bool = False
    cpu_ms_per_event: float = float("nan")
    rss_mb: float = float("nan")
    db_bytes_per_request: float | None = None
    commits_per_event: float | None = None
    #: this process (load generator + fake Slack): if it nears one core, it is the limit
    harness_cpu_ms_per_event: float = float("nan")


async def burst(
    slack: FakeSlack,
    apps: list[App],
    events: int,
    concurrency: int,
    figures: Figures,
    settled: Callable[[int], Awaitable[bool]] | None = None,
) -> None:
    """Send `events` DMs round-robin over `apps`, wait for every reply, fill `figures`.

    Done when `settled(acked)` says so (taskbot: its database has no unfinished task
    and no unsent reply left), else when Slack accepted REPLIES_PER_EVENT posts per
    acked event (bare Bolt)."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(events):
        queue.put_nowait(n)
    cpu_before = [a.cpu_seconds() for a in apps]
    own_before = sum(os.times()[:2])
    senders = [SignedSender(a.url + "/slack/events", SECRET) for a in apps]
    for s in senders:
        await s.__aenter__()
    try:

        async def worker() -> None:
            while not queue.empty():
                n = queue.get_nowait()
                envelope = payloads.im_message(
                    f"research laptops {n}", user=f"U{n % 50:04d}", channel=f"D{n % 50:04d}"
                )
                start = time.perf_counter()
                try:
                    response = await senders[n % len(senders)].event(envelope)
                except (aiohttp.ClientError, TimeoutError):
                    figures.failed += 1
                    continue
                if response.status == 200:
                    figures.acks_ms.append((time.perf_counter() - start) * 1000)
                else:
                    figures.failed += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        figures.acked_per_s = len(figures.acks_ms) / (time.perf_counter() - started)
    finally:
        for s in senders:
            await s.close()

    acked = len(figures.acks_ms)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        posts = sum(1 for c in slack.calls if c.ok and c.method.startswith("chat."))
        done = await settled(acked) if settled is not None else posts >= REPLIES_PER_EVENT * acked
        if done:
            figures.delivered_s = time.perf_counter() - started
            break
        await asyncio.sleep(0.1)
    figures.settled = figures.delivered_s == figures.delivered_s  # not NaN
    figures.delivered = sum(1 for c in slack.calls if c.ok and c.method.startswith("chat."))
    await asyncio.sleep(0.5)  # let the last sent-marks land before reading CPU
    cpu = sum(a.cpu_seconds() for a in apps) - sum(cpu_before)
    figures.cpu_ms_per_event = cpu * 1000 / events
    figures.harness_cpu_ms_per_event = (sum(os.times()[:2]) - own_before) * 1000 / events
    figures.rss_mb = max(a.rss_mb() for a in apps)


#: KEY=VALUE settings given with --env, for the taskbot under test (not the baseline)
EXTRA_ENV: dict[str, str] = {}


def app_env(slack: FakeSlack, port: int, database_url: str | None = None) -> dict[str, str]:
    database = {"DATABASE_URL": database_url} if database_url else {}
    return process_env(slack, SECRET, port, SLACK_BOT_TOKEN="xoxb-bench", **database)


@contextlib.asynccontextmanager
async def database(backend: str, tmp: str, admin_url: str) -> AsyncIterator[str]:
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp}/bench-{secrets.token_hex(3)}.db"
        return
    name = f"taskbot_bench_{secrets.token_hex(4)}"
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


async def pg_commits(url: str) -> int | None:
    """Transactions committed in the database so far (PostgreSQL's own statistics)."""
    if not url.startswith("postgresql"):
        return None
    await asyncio.sleep(1.1)  # backends flush their statistics about once a second
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT pg_stat_force_next_flush()"))
            value = await connection.scalar(
                text("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
            )
            return int(value or 0)
    finally:
        await engine.dispose()


async def db_bytes(url: str) -> int:
    if url.startswith("postgresql"):
        return await postgres_bytes(url, vacuum=False)
    return sqlite_bytes(url.split("///", 1)[1])


async def run_bare(events: int, concurrency: int, tmp: str) -> Figures:
    figures = Figures()
    async with FakeSlack() as slack:
        env = app_env(slack, free_port())
        argv = [sys.executable, str(ROOT / "bench" / "bare_bolt.py")]
        app = App(argv, env, Path(tmp, "bare.log"))
        try:
            await app.ready(health=False)
            await burst(slack, [app], events, concurrency, figures)
        finally:
            app.stop()
    return figures


async def run_taskbot(
    url: str,
    processes: int,
    events: int,
    concurrency: int,
    tmp: str,
    profile: Path | None,
    root: Path = ROOT,
) -> Figures:
    """`python -m bot` from the checkout at `root` (it migrates the database itself)."""
    figures = Figures()
    async with FakeSlack() as slack:
        apps: list[App] = []
        try:
            for i in range(processes):
                apps.append(
                    App(
                        [sys.executable, "-m", "bot"],
                        {**app_env(slack, free_port(), url), **(EXTRA_ENV if root == ROOT else {})},
                        Path(tmp, "taskbot.log"),
                        profile if i == 0 else None,
                        cwd=root,
                    )
                )
                await apps[-1].ready(health=True)
            before = await db_bytes(url)
            commits = await pg_commits(url)
            await burst(slack, apps, events, concurrency, figures, settled_check(url))
            commits_after = await pg_commits(url)
        finally:
            for a in apps:
                a.stop()
        figures.db_bytes_per_request = (await db_bytes(url) - before) / events
        if commits is not None and commits_after is not None:
            figures.commits_per_event = (commits_after - commits) / events
        dupes = Counter(
            (c.params.get("thread_ts"), str(c.params.get("text"))[:6])
            for c in slack.calls_to("chat.postMessage")
            if c.ok
        )
        extra = sum(n - 1 for n in dupes.values() if n > 1)
        if extra:
            print(f"  !! {extra} duplicate replies")
    return figures


def report(title: str, bare: Figures | None, bots: list[tuple[str, Figures]]) -> None:
    """One column per app, then each taskbot's ratio to bare Bolt."""
    columns = ([("bare Bolt", bare)] if bare is not None else []) + bots

    def stat(f: Figures, fn: str) -> float | None:
        if fn in ("p50", "p99", "max"):
            if not f.acks_ms:
                return None
            return {
                "p50": statistics.median(f.acks_ms),
                "p99": pct(f.acks_ms, 99),
                "max": max(f.acks_ms),
            }[fn]
        value: float | None = getattr(f, fn)
        return value

    rows = [
        ("ack p50 ms", "p50", "{:.1f}"),
        ("ack p99 ms", "p99", "{:.1f}"),
        ("ack max ms", "max", "{:.1f}"),
        ("acked events/s", "acked_per_s", "{:.0f}"),
        ("all replies delivered s", "delivered_s", "{:.2f}"),
        ("CPU ms/event", "cpu_ms_per_event", "{:.2f}"),
        ("RSS MB after", "rss_mb", "{:.0f}"),
        ("db bytes/request", "db_bytes_per_request", "{:.0f}"),
        ("commits/event (PostgreSQL)", "commits_per_event", "{:.1f}"),
        ("harness CPU ms/event", "harness_cpu_ms_per_event", "{:.2f}"),
    ]
    print(f"\n{title}")
    head = "".join(f"{name:>14}" for name, _ in columns)
    ratios = "".join(f"{name[-9:] + '/bare':>16}" for name, _ in bots) if bare else ""
    print(f"  {'':<26}{head}{ratios}")
    for label, fn, fmt in rows:
        cells = []
        for _, f in columns:
            v = stat(f, fn)
            cells.append(f"{fmt.format(v) if v is not None else '-':>14}")
        line = "".join(cells)
        if bare is not None:
            b = stat(bare, fn)
            for _, f in bots:
                t = stat(f, fn)
                line += f"{f'{t / b:.1f}x' if b and t is not None else '':>16}"
        print(f"  {label:<26}{line}")
    for name, f in columns:
        if f.failed or not f.settled:
            print(f"  !! {name}: {f.failed} not acked, settled: {f.settled}")
    print(f"  {'Slack chat.* calls':<26}" + "".join(f"{f.delivered:>14}" for _, f in columns))


def summarize_profile(path: Path) -> None:
    """Share of samples whose stack passes through each library (a stack may count twice)."""
    if not path.exists():
        print(f"  (no profile at {path})")
        return
    groups = {
        "sqlalchemy": "sqlalchemy/",
        "aiosqlite": "aiosqlite/",
        "asyncpg": "asyncpg/",
        "slack_bolt": "slack_bolt/",
        "slack_sdk": "slack_sdk/",
        "aiohttp": "aiohttp/",
        "pydantic": "pydantic",
        "logging": "logging/",
        "storage/": "/storage/",
        "core/": "/core/",
        "bot/": "/bot/",
    }
    totals: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        samples += n
        threads[stack.split(";", 1)[0][:40]] += n
        for name, needle in groups.items():
            if needle in stack:
                totals[name] += n
    print(f"  profile {path}: {samples} samples")
    for name, n in threads.most_common(4):
        print(f"    thread {name:<40} {100 * n / samples:5.1f} %")
    for name, n in totals.most_common():
        print(f"    {name:<20} {100 * n / samples:5.1f} %")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--events", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--no-bare", action="store_true", help="skip the bare Bolt baseline")
    parser.add_argument("--two-process", action="store_true")
    parser.add_argument("--two-process-events", type=int, default=2000)
    parser.add_argument("--profile", type=Path, default=None)
    parser.add_argument(
        "--baseline-root",
        type=Path,
        default=None,
        help="also run `python -m bot` from this checkout (e.g. a worktree of main)",
    )
    parser.add_argument(
        "--postgres-admin-url",
        default=os.environ.get(
            "TASKBOT_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument(
        "--env", action="append", default=[], help="KEY=VALUE for the taskbot under test"
    )
    args = parser.parse_args()
    EXTRA_ENV.update(item.split("=", 1) for item in args.env)
    backends = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    with tempfile.TemporaryDirectory() as tmp:
        for backend in backends:
            bare = None if args.no_bare else await run_bare(args.events, args.concurrency, tmp)
            bots: list[tuple[str, Figures]] = []
            if args.baseline_root:
                async with database(backend, tmp, args.postgres_admin_url) as url:
                    base = await run_taskbot(
                        url, 1, args.events, args.concurrency, tmp, None, args.baseline_root
                    )
                bots.append(("baseline", base))
            profile = args.profile / f"{backend}.txt" if args.profile else None
            async with database(backend, tmp, args.postgres_admin_url) as url:
                bot = await run_taskbot(url, 1, args.events, args.concurrency, tmp, profile)
            bots.append(("taskbot", bot))
            report(f"{backend}: {args.events} events, {args.concurrency} in flight", bare, bots)
            if profile:
                summarize_profile(profile)
            if args.two_process:
                async with database(backend, tmp, args.postgres_admin_url) as url:
                    two = await run_taskbot(
                        url, 2, args.two_process_events, args.concurrency, tmp, None
                    )
                report(
                    f"{backend}: {args.two_process_events} events over two processes, "
                    f"{args.concurrency} in flight",
                    None,
                    [("taskbot x2", two)],
                )
        print(f"\nload average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    asyncio.run(main())
