"""Engine setup: one place that knows SQLite and PostgreSQL differ.

SQLite (docs/RELIABILITY.md): aiosqlite's own transaction handling loses updates and
a DEFERRED transaction that reads then writes fails at once with "database is
locked". So SQLAlchemy's documented aiosqlite recipe is applied: the driver's
BEGIN is switched off (`isolation_level = None`) and every transaction starts
with `BEGIN IMMEDIATE` (the write lock up front, waiting up to busy_timeout).
SQLite has one writer at a time, so writers in this process also queue on one
asyncio.Lock per engine (`write_lock`), which keeps worst-case latency low.

In-memory SQLite (`sqlite+aiosqlite://`) works: SQLAlchemy gives it a
StaticPool (one shared connection) and the write lock keeps unit-of-work
transactions from interleaving on it. Migrate it with
`storage.migrate.upgrade_engine(engine)`, since a second engine would see a
different, empty database.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///taskbot.db"

#: execution option marking a read-only unit of work
READ_ONLY = "taskbot_read_only"

_POSTGRES_NAMES = {"postgres", "postgresql"}
_SQLITE_NAMES = {"sqlite", "sqlite+pysqlite"}


class WriterLock:
    """The in-process SQLite writer lock, with a fast lane.

    Work on Slack's ack path (persisting a request, recording a click) is
    `urgent` and goes before queued background work, so a busy agent graph or
    outbox cannot push an ack past Slack's 3 seconds. FIFO within each lane.
    After URGENT_RUN urgent hand-offs in a row a waiting background writer gets
    one turn, so a flood of requests delays the work but cannot stop it.
    """

    URGENT_RUN = 8

    def __init__(self) -> None:
        self._urgent_run = 0
        self._held = False
        self._urgent: deque[asyncio.Future[None]] = deque()
        self._normal: deque[asyncio.Future[None]] = deque()

    def locked(self) -> bool:
        return self._held

    async def acquire(self, urgent: bool = False) -> None:
        if not self._held and not self._urgent and not self._normal:
            self._held = True
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        lane = self._urgent if urgent else self._normal
        lane.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed over just as we were cancelled: pass it on
            elif waiter in lane:
                lane.remove(waiter)
            raise

    def release(self) -> None:
        starving = self._urgent_run >= self.URGENT_RUN and self._normal
        lanes = (self._normal, self._urgent) if starving else (self._urgent, self._normal)
        for lane in lanes:
            while lane:
                waiter = lane.popleft()
                if not waiter.done():
                    self._urgent_run = self._urgent_run + 1 if lane is self._urgent else 0
                    waiter.set_result(None)  # ownership passes directly; _held stays True
                    return
        self._urgent_run = 0
        self._held = False


class _WriterGate:
    """One WriterLock per SQLite engine, remembering which task holds it so a
    nested unit of work fails loudly instead of deadlocking."""

    def __init__(self) -> None:
        self.lock = WriterLock()
        self.owner: asyncio.Task[Any] | None = None

    @asynccontextmanager
    async def hold(self, urgent: bool = False) -> AsyncIterator[None]:
        me = asyncio.current_task()
        if me is not None and self.owner is me:
            raise RuntimeError(
                "nested unit of work on SQLite would deadlock: finish the outer one first"
            )
        await self.lock.acquire(urgent)
        self.owner = me
        try:
            yield
        finally:
            self.owner = None
            self.lock.release()


_gates: weakref.WeakKeyDictionary[Engine, _WriterGate] = weakref.WeakKeyDictionary()


def normalize_database_url(url: str) -> str:
    """Map the URLs people paste (Heroku's postgres://, sqlite:///) to async drivers."""
    parsed: URL = make_url(url)
    backend, _, driver = parsed.drivername.partition("+")
    if backend in _POSTGRES_NAMES and driver in ("", "psycopg", "psycopg2", "psycopg2cffi"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
        if "sslmode" in parsed.query:  # libpq spelling; asyncpg calls it ssl
            query = dict(parsed.query)
            query["ssl"] = query.pop("sslmode")
            parsed = parsed.set(query=query)
    elif parsed.drivername in _SQLITE_NAMES:
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    else:
        return url
    return parsed.render_as_string(hide_password=False)


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


def _gate(engine: AsyncEngine) -> _WriterGate:
    gate = _gates.get(engine.sync_engine)
    if gate is None:
        gate = _gates[engine.sync_engine] = _WriterGate()
    return gate


def write_lock(engine: AsyncEngine) -> WriterLock | None:
    """The engine's in-process writer lock on SQLite; None on servers that need none."""
    return _gate(engine).lock if is_sqlite(engine) else None


def serialized(engine: AsyncEngine, urgent: bool = False) -> AbstractAsyncContextManager[None]:
    """Hold the engine's writer lock on SQLite (a no-op elsewhere) for a whole transaction."""
    return _gate(engine).hold(urgent) if is_sqlite(engine) else nullcontext()


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An AsyncEngine for `url` (normalized first), set up for this project."""
    url = normalize_database_url(url)
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        engine = create_async_engine(url, **kwargs)
        _configure_sqlite(engine)
        write_lock(engine)
        return engine
    if backend == "postgresql":
        options: dict[str, Any] = {"pool_size": 10, "max_overflow": 10, "pool_pre_ping": True}
        options.update(kwargs)
        return create_async_engine(url, **options)
    return create_async_engine(url, **kwargs)


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take BEGIN away from the driver (SQLAlchemy's aiosqlite recipe).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=5000")
            # In WAL, NORMAL survives a killed process; only power loss may drop the last commits.
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Readers need no write lock in WAL: a read-only unit of work begins DEFERRED.
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")
