"""Engine setup: one place that knows SQLite and PostgreSQL differ.

SQLite (docs/RELIABILITY.md): aiosqlite's own transaction handling loses updates and
a DEFERRED transaction that reads then writes fails at once with "database is
locked". So SQLAlchemy's documented aiosqlite recipe is applied: the driver's
BEGIN is switched off (`isolation_level = None`) and every transaction starts
with `BEGIN IMMEDIATE` (the write lock up front). SQLite has one writer at a
time, so writers in this process also queue on one lock per engine
(`write_lock`), and across processes on an flock (`FileTurn`), which keeps
worst-case latency low.

The driver underneath is not aiosqlite's thread but sqlite3 run on the event
loop itself (storage/sqlite_inline.py): a transaction holding the write lock no
longer yields to the loop at every statement. Its connections wait for a lock
held elsewhere with asyncio sleeps (up to 5 s) rather than SQLite's busy_timeout,
which would freeze the loop.

In-memory SQLite (`sqlite+aiosqlite://`) works: SQLAlchemy gives it a
StaticPool (one shared connection) and the write lock keeps unit-of-work
transactions from interleaving on it. Migrate it with
`storage.migrate.upgrade_engine(engine)`, since a second engine would see a
different, empty database.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import Any
from urllib.parse import unquote, urlsplit

from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from storage import sqlite_inline

log = logging.getLogger(__name__)

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///taskbot.db"

#: execution option marking a read-only unit of work
READ_ONLY = "taskbot_read_only"

_POSTGRES_NAMES = {"postgres", "postgresql"}
_SQLITE_NAMES = {"sqlite", "sqlite+pysqlite"}


class WriterLock:
    """The in-process SQLite writer lock, with two fast lanes.

    Work on Slack's ack path (persisting a request, recording a click) is
    `urgent` and goes before queued background work, so a busy agent graph or
    outbox cannot push an ack past Slack's 3 seconds. FIFO within each lane.
    After URGENT_RUN urgent hand-offs in a row a waiting background writer gets
    one turn, so a flood of requests delays the work but cannot stop it.
    `critical` (renewing this process's liveness lease: one tiny UPDATE every
    few seconds) goes before both, so a burst cannot make a busy process look
    dead; it waits for the transaction in progress and nothing else.
    """

    URGENT_RUN = 8

    def __init__(self) -> None:
        self._urgent_run = 0
        self._held = False
        self._critical: deque[asyncio.Future[None]] = deque()
        self._urgent: deque[asyncio.Future[None]] = deque()
        self._normal: deque[asyncio.Future[None]] = deque()

    def locked(self) -> bool:
        return self._held

    async def acquire(self, urgent: bool = False, critical: bool = False) -> None:
        if not self._held and not self._critical and not self._urgent and not self._normal:
            self._held = True
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        lane = self._critical if critical else self._urgent if urgent else self._normal
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
        while self._critical:
            waiter = self._critical.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
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


class FileTurn:
    """The writer's turn across processes on one SQLite file: an flock on a file
    beside it. A process waiting for it is woken the moment it is free, where
    SQLite's busy handler polls (every 100 ms once it has waited a while) and can
    lose to a busy neighbour for seconds. The kernel drops it when a process dies."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._fd: int | None = None
        #: the thread's wait for the file, when it could not be had at once
        self.waiting: asyncio.Future[None] | None = None

    async def acquire(self) -> None:
        if self._fd is None:
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            weakref.finalize(self, os.close, self._fd)
        fd = self._fd
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        self.waiting = asyncio.get_running_loop().run_in_executor(
            None, fcntl.flock, fd, fcntl.LOCK_EX
        )
        await asyncio.shield(self.waiting)  # once granted, only release() may let go of it

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)


class _WriterGate:
    """One WriterLock per SQLite engine, remembering which task holds it so a
    nested unit of work fails loudly instead of deadlocking; on a database file
    also the writer's turn among processes (FileTurn)."""

    def __init__(self, turn: FileTurn | None = None) -> None:
        self.lock = WriterLock()
        self.owner: asyncio.Task[Any] | None = None
        self._turn = turn

    @asynccontextmanager
    async def hold(self, urgent: bool = False, critical: bool = False) -> AsyncIterator[None]:
        me = asyncio.current_task()
        if me is not None and self.owner is me:
            raise RuntimeError(
                "nested unit of work on SQLite would deadlock: finish the outer one first"
            )
        await self.lock.acquire(urgent, critical)
        if self._turn is not None:
            try:
                await self._turn.acquire()
            except asyncio.CancelledError:
                self._release_when_granted()
                raise
            except BaseException:
                self.lock.release()
                raise
        self.owner = me
        try:
            yield
        finally:
            self.owner = None
            if self._turn is not None:
                self._turn.release()
            self.lock.release()

    def _release_when_granted(self) -> None:
        """Cancelled while waiting for the file: the turn may still be granted to
        the waiting thread, so both locks are let go only once it has returned."""
        assert self._turn is not None
        turn = self._turn

        async def later() -> None:
            try:
                if turn.waiting is not None:
                    await turn.waiting
                    turn.release()
            except Exception:
                log.warning("waiting for the SQLite writer's file lock failed", exc_info=True)
            finally:
                self.lock.release()

        task = asyncio.get_running_loop().create_task(later())
        _pending.add(task)
        task.add_done_callback(_pending.discard)


_pending: set[asyncio.Task[None]] = set()
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
        database = _database_file(engine.url) if is_sqlite(engine) else None
        turn = None if database is None else FileTurn(f"{database}-writer")
        gate = _gates[engine.sync_engine] = _WriterGate(turn)
    return gate


def _database_file(url: URL) -> str | None:
    """The path of a SQLite database file, None for one in memory; a URI filename
    (`?uri=true`, e.g. `file:/data/taskbot.db`) names its file by its path part."""
    database = url.database
    if database in (None, "", ":memory:") or "mode=memory" in str(url):
        return None
    if url.query.get("uri") == "true" and database.startswith("file:"):
        database = unquote(urlsplit(database).path)
        if database in ("", ":memory:"):
            return None
    return database


def write_lock(engine: AsyncEngine) -> WriterLock | None:
    """The engine's in-process writer lock on SQLite; None on servers that need none."""
    return _gate(engine).lock if is_sqlite(engine) else None


#: pooled connections the ack path (`urgent`) and the liveness lease (`critical`) use;
#: background work keeps to the front door's lanes (core/front_door.py), fewer than
#: the pool holds beyond these
RESERVED_CONNECTIONS = 5


def serialized(
    engine: AsyncEngine, urgent: bool = False, critical: bool = False
) -> AbstractAsyncContextManager[None]:
    """For a whole transaction: on SQLite hold the engine's writer lock. A server
    needs nothing here: background work already keeps to the front door's lanes
    (storage/uow.py), so it cannot crowd the ack path out of the pool."""
    if is_sqlite(engine):
        return _gate(engine).hold(urgent, critical)
    return nullcontext()


def side_engine(engine: AsyncEngine) -> AsyncEngine:
    """A small engine of its own on `engine`'s database, so that work on it never
    waits for a connection from the main pool (on SQLite it still shares the main
    engine's writer lock, through `serialized(engine, ...)`). An in-memory SQLite
    database can only be reached through its one connection: `engine` itself."""
    url = engine.url
    if is_sqlite(engine):
        if url.database in (None, "", ":memory:") or "mode=memory" in str(url):
            return engine
        return create_engine(url.render_as_string(hide_password=False))
    if url.get_backend_name() == "postgresql":
        return create_engine(url.render_as_string(hide_password=False), pool_size=1, max_overflow=1)
    return engine


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An AsyncEngine for `url` (normalized first), set up for this project."""
    url = normalize_database_url(url)
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        parsed = make_url(url)
        args, connect = parsed.get_dialect()().create_connect_args(parsed)
        connect = {**connect, **kwargs.pop("connect_args", {})}
        checkpointer = None
        if _database_file(parsed) is not None:
            checkpointer = sqlite_inline.Checkpointer(args, connect)
        after_commit = checkpointer.committed if checkpointer is not None else None
        creator = sqlite_inline.connector(args, connect, after_commit=after_commit)
        engine = create_async_engine(url, async_creator=creator, **kwargs)
        _configure_sqlite(engine, checkpointer)
        write_lock(engine)
        return engine
    if backend == "postgresql":
        options: dict[str, Any] = {"pool_size": 10, "max_overflow": 10}
        options.update(kwargs)
        engine = create_async_engine(url, **options)
        if not options.get("pool_pre_ping"):
            _ping_when_idle(engine)
        return engine
    return create_async_engine(url, **kwargs)


#: a pooled connection unused this long is pinged before it is handed out
PING_AFTER_IDLE_SECONDS = 1.0


def _ping_when_idle(engine: AsyncEngine) -> None:
    """pool_pre_ping, but only for connections that sat idle: a server restart is
    still noticed before the first statement, while under a burst (connections back
    in the pool for milliseconds) no transaction pays a round trip for the ping."""

    @event.listens_for(engine.sync_engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("checked_in_at")
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            dbapi_connection.ping()
        except Exception as exc:
            # the pool drops this connection and hands out another (or a new one)
            raise DisconnectionError(f"idle connection failed its ping: {exc!r}") from exc


def _configure_sqlite(engine: AsyncEngine, checkpointer: sqlite_inline.Checkpointer | None) -> None:
    if checkpointer is not None:

        @event.listens_for(engine.sync_engine, "engine_disposed")
        def _on_dispose(_engine: Any) -> None:
            checkpointer.stop()

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take BEGIN away from the driver (SQLAlchemy's aiosqlite recipe).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            # Never wait inside SQLite: that would block the loop (sqlite_inline retries).
            cursor.execute("PRAGMA busy_timeout=0")
            # In WAL, NORMAL survives a killed process; only power loss may drop the last commits.
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            if checkpointer is not None:  # it checkpoints in a thread, not in our commits
                cursor.execute("PRAGMA wal_autocheckpoint=0")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Readers need no write lock in WAL: a read-only unit of work begins DEFERRED.
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")
