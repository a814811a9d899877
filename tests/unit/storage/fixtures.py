"""Database fixtures, reusable by core and end-to-end tests.

- `database_url`: an empty (not yet migrated) database, once per backend:
  `sqlite` (a file in tmp_path) and `postgresql` (a database
  `taskbot_test_<worker>_<random>` of TASKBOT_TEST_POSTGRES_URL's server).
  PostgreSQL unreachable → skipped with the reason, unless CI=true → failure.
- `engine`: an AsyncEngine on `database_url` whose schema was made by the
  Alembic migrations (storage.migrate.upgrade), not by metadata.create_all.
- `clock`: a tests.fakes.FakeClock; `uow_factory`: SqlUnitOfWorkFactory(engine, clock).

Creating and dropping a PostgreSQL database per test, and running Alembic per
test, was most of the suite's time. So each test process keeps a pool of
PostgreSQL databases: after a test, one that is still exactly at the migrated
head is emptied with TRUNCATE, anything else gets a new empty schema, and the
next test gets one in the state it is about to ask for: migrated when it uses
`engine` (whose upgrade is then a no-op), empty otherwise. SQLite tests that
use `engine` get a copy of a file migrated once per session. Each test still
sees a database no other test uses at the same time.

tests/conftest.py registers these once (pytest_plugins) for every test package.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from storage.engine import create_engine
from storage.migrate import upgrade
from storage.uow import SqlUnitOfWorkFactory
from tests.fakes import FakeClock

POSTGRES_ADMIN_URL = os.environ.get(
    "TASKBOT_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
BACKENDS = ["sqlite", "postgresql"]
#: names this process's databases apart from other xdist workers' and other runs'
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")

_pg_problem: list[str] = []  # cached reason PostgreSQL is unusable, checked once per session
_pg_checked: list[bool] = []


def _autocommit_engine(url: str) -> AsyncEngine:
    return create_async_engine(
        url, isolation_level="AUTOCOMMIT", poolclass=NullPool, connect_args={"timeout": 5}
    )


def _admin_engine() -> AsyncEngine:
    return _autocommit_engine(POSTGRES_ADMIN_URL)


async def _as_admin(statement: str, params: dict[str, str] | None = None) -> None:
    """Run one statement on the server's maintenance database."""
    admin = _admin_engine()
    try:
        async with admin.connect() as connection:
            await connection.execute(text(statement), params or {})
    finally:
        await admin.dispose()


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


def _postgres_url(name: str) -> str:
    return make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


#: everything that describes the schema; equal to the head's → TRUNCATE is a full reset
_FINGERPRINT = [
    "SELECT table_name, column_name, data_type, is_nullable, column_default"
    " FROM information_schema.columns WHERE table_schema = 'public'",
    "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'",
    "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
    " WHERE connamespace = 'public'::regnamespace",
    "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'",
    "SELECT typname FROM pg_type WHERE typnamespace = 'public'::regnamespace",
    "SELECT version_num FROM alembic_version",
]


async def _fingerprint(connection: AsyncConnection) -> tuple[tuple[tuple[object, ...], ...], ...]:
    exists = await connection.scalar(text("SELECT to_regclass('public.alembic_version')"))
    if exists is None:
        return ()
    parts = []
    for query in _FINGERPRINT:
        rows = (await connection.execute(text(query))).all()
        parts.append(tuple(sorted(tuple(map(str, row)) for row in rows)))
    return tuple(parts)


async def _delete_all_rows(connection: AsyncConnection) -> None:
    """Back to a freshly migrated state: no rows, sequences from 1. (DELETE, because
    TRUNCATE makes new files for every table and is ten times slower here.)"""
    tables = await connection.scalars(
        text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename <> 'alembic_version'"
        )
    )
    sequences = await connection.scalars(
        text("SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'")
    )
    await connection.execute(text("SET session_replication_role = replica"))  # no FK order
    for table in tables:
        await connection.execute(text(f'DELETE FROM "{table}"'))
    for sequence in sequences:
        await connection.execute(text(f"SELECT setval('\"{sequence}\"', 1, false)"))


@dataclass
class _Database:
    name: str
    migrated: bool  # at the head with no rows (else: an empty public schema)


class PostgresPool:
    """This process's test databases, reused: CREATE/DROP DATABASE cost more than the tests."""

    def __init__(self) -> None:
        self.free: list[_Database] = []
        self.created: set[str] = set()
        self.head: tuple[tuple[tuple[object, ...], ...], ...] | None = None

    async def take(self, migrated: bool) -> _Database:
        """A database nobody uses, migrated if the test is about to migrate it anyway."""
        for db in self.free:
            if db.migrated == migrated:
                self.free.remove(db)
                return db
        if self.free:
            db = self.free.pop()
            if db.migrated:
                await self._reset(db, keep_schema=False)
            return db
        name = f"taskbot_test_{WORKER}_{secrets.token_hex(5)}"
        await _as_admin(f'CREATE DATABASE "{name}"')
        self.created.add(name)
        return _Database(name, migrated=False)

    async def remember_head(self, url: str) -> None:
        """Record the schema of a freshly migrated database (once per process)."""
        if self.head is not None or make_url(url).database not in self.created:
            return
        engine = create_async_engine(url, poolclass=NullPool)
        try:
            async with engine.connect() as connection:
                self.head = await _fingerprint(connection)
        finally:
            await engine.dispose()

    async def give_back(self, db: _Database) -> None:
        """Empty it for the next test; a database that resists is dropped instead."""
        try:
            await self._reset(db, keep_schema=True)
        except Exception:
            await self._drop(db.name)
        else:
            self.free.append(db)

    async def _reset(self, db: _Database, *, keep_schema: bool) -> None:
        await _as_admin(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = :name AND pid <> pg_backend_pid()",
            {"name": db.name},
        )
        engine = _autocommit_engine(_postgres_url(db.name))
        try:
            async with engine.connect() as connection:
                # Nobody needs this cleanup to survive a power cut; waiting for fsync is slow.
                await connection.execute(text("SET synchronous_commit = off"))
                await connection.execute(text("SET lock_timeout = '10s'"))
                fingerprint = await _fingerprint(connection)
                if keep_schema and fingerprint and fingerprint == self.head:
                    await _delete_all_rows(connection)
                    db.migrated = True
                else:
                    await connection.execute(text("DROP SCHEMA public CASCADE"))
                    await connection.execute(text("CREATE SCHEMA public"))
                    db.migrated = False
        finally:
            await engine.dispose()

    async def _drop(self, name: str) -> None:
        self.created.discard(name)
        await _as_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    async def close(self) -> None:
        for name in sorted(self.created):
            await self._drop(name)
        self.free.clear()


@pytest.fixture(scope="session")
def postgres_pool() -> Iterator[PostgresPool]:
    pool = PostgresPool()
    yield pool
    if pool.created:
        asyncio.run(pool.close())


@pytest.fixture
async def postgres_url(
    request: pytest.FixtureRequest, postgres_pool: PostgresPool
) -> AsyncIterator[str]:
    """A PostgreSQL database for this test alone, empty unless the test uses `engine`."""
    await _require_postgres()
    db = await postgres_pool.take(migrated="engine" in request.fixturenames)
    try:
        yield _postgres_url(db.name)
    finally:
        await postgres_pool.give_back(db)


@pytest.fixture(scope="session")
def migrated_sqlite_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file the migrations brought to the head, once per process."""
    path = tmp_path_factory.mktemp("sqlite-template") / "taskbot.db"
    asyncio.run(upgrade(f"sqlite+aiosqlite:///{path}"))
    # a -wal/-shm left behind would not be copied (the -writer lock file holds no data)
    leftovers = [p.name for p in path.parent.iterdir() if p.name.endswith(("-wal", "-shm"))]
    assert not leftovers, leftovers
    return path


@pytest.fixture
def sqlite_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A SQLite file database in tmp_path (file, not :memory:, so several engines share it);
    a copy of the migrated file when the test uses `engine`."""
    path = tmp_path / "taskbot.db"
    if "engine" in request.fixturenames:
        shutil.copyfile(request.getfixturevalue("migrated_sqlite_file"), path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest) -> str:
    """An empty database, once per backend (test ids [sqlite] and [postgresql])."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
async def engine(request: pytest.FixtureRequest, database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a database whose schema the Alembic migrations created."""
    await upgrade(database_url)
    if database_url.startswith("postgresql"):
        await request.getfixturevalue("postgres_pool").remember_head(database_url)
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
