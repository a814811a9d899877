"""What the benchmarks share: a `python -m bot` process on a fake Slack."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from tests.slackfake.server import FakeSlack

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_healthy(url: str, deadline: float) -> None:
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(url + "/healthz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit("the bot did not become healthy")


@asynccontextmanager
async def running_bot(slack: FakeSlack, database_url: str) -> AsyncIterator[str]:
    """Start the bot on `database_url` against `slack`; yields its base URL once healthy."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "SLACK_BOT_TOKEN": "xoxb-bench",
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": slack.base_url,
        "DATABASE_URL": database_url,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "LOG_LEVEL": "WARNING",
    }
    env.pop("SLACK_APP_TOKEN", None)
    bot = subprocess.Popen([sys.executable, "-m", "bot"], cwd=ROOT, env=env)
    try:
        await wait_healthy(url, time.monotonic() + 60)
        yield url
    finally:
        bot.terminate()
        bot.wait(timeout=30)


def settled_check(url: str) -> Callable[[int], Awaitable[bool]]:
    """Every acked request has its task, none unfinished, no reply left unsent."""
    engine = create_async_engine(url, poolclass=NullPool)
    query = text(
        "SELECT (SELECT count(*) FROM tasks WHERE parent_id IS NULL),"
        " (SELECT count(*) FROM tasks WHERE status IN ('PENDING', 'IN_PROGRESS')),"
        " (SELECT count(*) FROM outbox WHERE status = 'PENDING')"
    )

    async def settled(acked: int) -> bool:
        async with engine.connect() as connection:
            requests, unfinished, unsent = (await connection.execute(query)).one()
        return bool(requests >= acked and unfinished == 0 and unsent == 0)

    return settled
