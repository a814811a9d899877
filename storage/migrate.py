"""Bring a database's schema up to date with Alembic, from code.

Used on app start and by `taskbot db upgrade`. Idempotent: at head it does
nothing. Several replicas starting at once are safe: on PostgreSQL they queue
on an advisory lock, on SQLite on the BEGIN IMMEDIATE write lock.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.engine import create_engine, serialized

MIGRATIONS = Path(__file__).with_name("migrations")
#: pg_advisory_xact_lock key: "taskbot" + "mig" as bytes, any constant would do
_PG_LOCK_KEY = 0x7461736B626F74


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


async def upgrade(url: str, revision: str = "head") -> None:
    """Run `alembic upgrade <revision>` on the database at `url`."""
    engine = create_engine(url)
    try:
        await upgrade_engine(engine, revision)
    finally:
        await engine.dispose()


async def upgrade_engine(engine: AsyncEngine, revision: str = "head") -> None:
    """Same, on an engine you already have (needed for in-memory SQLite)."""
    async with serialized(engine), engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
        await connection.run_sync(_upgrade, revision)


def _upgrade(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)
