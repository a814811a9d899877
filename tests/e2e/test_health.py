"""GET /healthz: database, scheduler and outbox backlog as JSON; 503 when the
database cannot be reached (checked on a real PostgreSQL made unreachable)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from bot.server import Running, start
from tests.e2e.conftest import Harness, make_settings
from tests.slackfake import payloads
from tests.slackfake.server import Fail, FakeSlack
from tests.unit.storage.fixtures import POSTGRES_ADMIN_URL


async def get_health(port: int) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session,
        session.get(f"http://127.0.0.1:{port}/healthz") as response,
    ):
        assert response.content_type == "application/json"
        return response.status, await response.json()


async def test_health_reports_database_scheduler_and_outbox_backlog(harness: Harness) -> None:
    status, body = await get_health(harness.running.port)
    assert status == 200, body
    assert body["database"] == "ok" and body["scheduler"] is True and body["status"] == "ok"
    outbox = body["outbox"]
    assert outbox["undelivered"] == 0 and outbox["oldest_undelivered_seconds"] is None
    assert outbox["failed"] == 0 and outbox["recent_failures"] == []

    # Slack down: the replies wait in the outbox, and health says how many and how old.
    harness.slack.script("chat.postMessage", [Fail(503)] * 200)
    for n in range(3):
        envelope = payloads.im_message(f"research laptops {n}", user="U1", channel=f"D5{n}")
        assert (await harness.sender.event(envelope)).status == 200
    await harness.slack.wait_for("chat.postMessage", timeout=10, where=lambda c: c.status == 503)
    await asyncio.sleep(1.1)
    status, body = await get_health(harness.running.port)
    assert status == 200, body
    assert body["database"] == "ok" and body["scheduler"] is True
    assert body["outbox"]["undelivered"] >= 3
    assert isinstance(body["outbox"]["oldest_undelivered_seconds"], int)
    assert body["outbox"]["oldest_undelivered_seconds"] >= 1


async def _admin(sql: str, **params: Any) -> None:
    admin = create_async_engine(
        POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool
    )
    try:
        async with admin.connect() as connection:
            await connection.execute(text(sql), params)
    finally:
        await admin.dispose()


async def test_health_is_503_while_the_database_is_unreachable(
    tmp_path: Path, fake_slack: FakeSlack, postgres_url: str
) -> None:
    name = make_url(postgres_url).database
    assert name and name.startswith("taskbot_test_")
    running: Running = await start(make_settings(tmp_path, fake_slack, DATABASE_URL=postgres_url))
    try:
        status, body = await get_health(running.port)
        assert status == 200 and body["database"] == "ok", body

        await _admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        try:
            await _admin(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :name AND pid <> pg_backend_pid()",
                name=name,
            )
            status, body = await get_health(running.port)
            assert status == 503, body
            assert body["database"] != "ok" and body["status"] == "down", body
        finally:
            await _admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')

        # and it comes back by itself once the database does
        status, body = await get_health(running.port)
        assert status == 200 and body["database"] == "ok", body
    finally:
        await running.stop()
