"""Database fixtures, reusable by core and end-to-end tests.

- `database_url`: an empty (not yet migrated) database, once per backend:
  `sqlite` (a file in tmp_path) and `postgresql` (a fresh database
  `taskbot_test_<random>` created from TASKBOT_TEST_POSTGRES_URL, dropped after).
  PostgreSQL unreachable → skipped with the reason, unless CI=true → failure.
- `engine`: an AsyncEngine on `database_url` whose schema was made by the
  Alembic migrations (storage.migrate.upgrade), not by metadata.create_all.
- `clock`: a core.clock.FakeClock; `uow_factory`: SqlUnitOfWorkFactory(engine, clock).

tests/storage/conftest.py re-exports these; to use them anywhere else, add
"tests.storage.fixtures" to pytest_plugins in tests/conftest.py.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from core.clock import FakeClock
from storage.engine import create_engine
from storage.migrate import upgrade
from storage.uow import SqlUnitOfWorkFactory

POSTGRES_ADMIN_URL = os.environ.get(
    "TASKBOT_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
BACKENDS = ["sqlite", "postgresql"]

_pg_problem: list[str] = []  # cached reason PostgreSQL is unusable, checked once per session
_pg_checked: list[bool] = []


def _admin_engine() -> AsyncEngine:
    return create_async_engine(
        POSTGRES_ADMIN_URL,
        isolation_level="AUTOCOMMIT",
        poolclass=NullPool,
        connect_args={"timeout": 5},
    )


async def _require_postgres() -> None:
    if not _pg_checked:
        _pg_checked.append(True)
        admin = _admin_engine()
        try:
            async with admin.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception as exc:
            _pg_problem.append(f"PostgreSQL at {POSTGRES_ADMIN_URL} unreachable: {exc!r}")
        finally:
            await admin.dispose()
    if _pg_problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{_pg_problem[0]} (CI=true: PostgreSQL tests must run)")
        pytest.skip(_pg_problem[0])


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database for this test, dropped afterwards."""
    await _require_postgres()
    name = f"taskbot_test_{secrets.token_hex(6)}"
    admin = _admin_engine()
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(POSTGRES_ADMIN_URL).set(database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: os.PathLike[str]) -> str:
    """A SQLite file database in tmp_path (file, not :memory:, so several engines share it)."""
    return f"sqlite+aiosqlite:///{os.path.join(tmp_path, 'taskbot.db')}"


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest) -> str:
    """An empty database, once per backend (test ids [sqlite] and [postgresql])."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a database whose schema the Alembic migrations created."""
    await upgrade(database_url)
    engine = create_engine(database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def uow_factory(engine: AsyncEngine, clock: FakeClock) -> SqlUnitOfWorkFactory:
    return SqlUnitOfWorkFactory(engine, clock)
