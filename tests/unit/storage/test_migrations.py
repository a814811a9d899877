"""The Alembic migrations: idempotent, safe to run concurrently, and the schema
they build is exactly the one the models describe."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.engine import create_engine
from storage.migrate import alembic_config, upgrade
from storage.models import Base

ROOT = Path(__file__).resolve().parents[3]
TABLES = {
    "tasks",
    "task_dependencies",
    "approval_messages",
    "approvals",
    "budgets",
    "budget_holds",
    "transactions",
    "audit_log",
    "inbox",
    "outbox",
    "leases",
    "api_tokens",
    "api_idempotency",
    "task_webhooks",
    "alembic_version",
}


def _head() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


async def _version(url: str) -> str | None:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(
                lambda c: MigrationContext.configure(c).get_current_revision()
            )
    finally:
        await engine.dispose()


async def test_upgrade_is_idempotent(database_url: str) -> None:
    await upgrade(database_url)
    await upgrade(database_url)
    assert await _version(database_url) == _head()
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert tables == TABLES
    finally:
        await engine.dispose()


async def test_concurrent_upgrades(database_url: str) -> None:
    await asyncio.gather(*(upgrade(database_url) for _ in range(4)))
    assert await _version(database_url) == _head()


def _diffs(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_migrated_schema_matches_models(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        diffs = await connection.run_sync(_diffs)
    assert diffs == []


async def test_alembic_cli_uses_database_url(sqlite_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": sqlite_url.replace("sqlite+aiosqlite", "sqlite")}
    for _ in range(2):
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "alembic", "-c", "storage/alembic.ini", "upgrade", "head"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    assert await _version(sqlite_url) == _head()


async def test_schema_made_by_migration_enforces_foreign_keys(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        try:
            await connection.execute(
                text("INSERT INTO task_dependencies (task_id, depends_on_id) VALUES (999, 998)")
            )
        except Exception as exc:
            assert "foreign key" in str(exc).lower()
        else:
            raise AssertionError("foreign keys are not enforced")
        finally:
            await connection.rollback()
