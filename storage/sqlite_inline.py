"""sqlite3 on the event loop's own thread, shaped like an aiosqlite connection.

SQLAlchemy's aiosqlite dialect awaits every execute, fetch and commit; aiosqlite
answers each from its worker thread, so each is a thread hop, and each lets the
loop run every other ready callback while our unit of work holds SQLite's single
writer lock. This adapter's coroutines finish without suspending, so a whole
transaction runs in one go on the loop (`create_async_engine(...,
async_creator=...)` plugs it in; the URL and dialect stay `sqlite+aiosqlite`).

The loop must not block on another program's lock, so connections get
busy_timeout=0 and a statement that finds the database locked is retried here
with short asyncio sleeps (the only place these coroutines suspend) until
`BUSY_TIMEOUT_SECONDS`, then fails with SQLite's own "database is locked".

Nor on the fsyncs of a WAL checkpoint, which SQLite runs in the commit that
crosses wal_autocheckpoint (measured: up to 42 ms under two-process load). So
loop connections to a file turn that off and `Checkpointer` runs a PASSIVE
checkpoint in a thread, on a connection of its own, at most once a
`CHECKPOINT_SECONDS` while commits come in.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

#: how long a statement keeps retrying a database locked by another connection
BUSY_TIMEOUT_SECONDS = 5.0
#: pauses between retries, the last one repeated (SQLite's own busy handler's)
_BACKOFF = (0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.025)
#: "database is locked" codes worth waiting out; SQLITE_BUSY_SNAPSHOT never clears
_BUSY_CODES = {sqlite3.SQLITE_BUSY, getattr(sqlite3, "SQLITE_BUSY_RECOVERY", 261)}

#: least time between two background checkpoints of one database
CHECKPOINT_SECONDS = 1.0

_T = TypeVar("_T")
log = logging.getLogger(__name__)


def _is_busy(error: sqlite3.OperationalError) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return code in _BUSY_CODES
    return "database is locked" in str(error)


async def _retry_busy(call: Callable[[], _T], patience: float) -> _T:
    deadline: float | None = None
    attempt = 0
    while True:
        try:
            return call()
        except sqlite3.OperationalError as error:
            if not _is_busy(error):
                raise
            now = time.monotonic()
            if deadline is None:
                deadline = now + patience
            if now >= deadline:
                raise
            pause = _BACKOFF[min(attempt, len(_BACKOFF) - 1)]
            attempt += 1
            await asyncio.sleep(min(pause, deadline - now))


class InlineCursor:
    """aiosqlite.Cursor's interface over a sqlite3.Cursor, run in place."""

    def __init__(self, connection: InlineConnection, cursor: sqlite3.Cursor) -> None:
        self._owner = connection
        self._cursor = cursor

    async def __aenter__(self) -> InlineCursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._rows()

    async def _rows(self) -> AsyncIterator[Any]:
        while True:
            rows = self._cursor.fetchmany(self._cursor.arraysize)
            if not rows:
                return
            for row in rows:
                yield row

    async def execute(self, sql: str, parameters: Any = None) -> InlineCursor:
        cursor = self._cursor
        args = (sql,) if parameters is None else (sql, parameters)
        await _retry_busy(lambda: cursor.execute(*args), self._owner.busy_timeout)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> InlineCursor:
        cursor = self._cursor
        rows = list(parameters)  # a retry must see them all again
        await _retry_busy(lambda: cursor.executemany(sql, rows), self._owner.busy_timeout)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(self._cursor.arraysize if size is None else size)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()

    async def setinputsizes(self, *_sizes: Any) -> None:
        return None

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value


class _ImmediateQueue:
    """Stands in for aiosqlite's queue to its thread: SQLAlchemy's isolation_level
    setter puts (future, function) on it; here the function runs at once."""

    @staticmethod
    def put_nowait(item: tuple[asyncio.Future[Any], Callable[[], Any]]) -> None:
        future, function = item
        try:
            result = function()
        except BaseException as error:
            future.set_exception(error)
        else:
            future.set_result(result)


class InlineConnection:
    """aiosqlite.Connection's interface over a sqlite3.Connection, run in place."""

    def __init__(
        self,
        connection: sqlite3.Connection,
        busy_timeout: float | None = None,
        after_commit: Callable[[], None] | None = None,
    ) -> None:
        self._connection: sqlite3.Connection | None = connection
        self._tx = _ImmediateQueue()
        self.busy_timeout = BUSY_TIMEOUT_SECONDS if busy_timeout is None else busy_timeout
        self._after_commit = after_commit

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._connection is None:
            raise ValueError("no active connection")
        return self._connection

    def cursor(self) -> InlineCursor:
        return InlineCursor(self, self._conn.cursor())

    async def execute(self, sql: str, parameters: Any = None) -> InlineCursor:
        cursor = self.cursor()
        return await cursor.execute(sql, parameters)

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> InlineCursor:
        cursor = self.cursor()
        return await cursor.executemany(sql, parameters)

    async def commit(self) -> None:
        await _retry_busy(self._conn.commit, self.busy_timeout)
        if self._after_commit is not None:
            self._after_commit()

    async def rollback(self) -> None:
        self._conn.rollback()

    async def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def stop(self) -> None:
        """Force-close (SQLAlchemy's terminate); nothing to stop but the connection."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    @isolation_level.setter
    def isolation_level(self, value: Any) -> None:
        self._conn.isolation_level = value

    @property
    def in_transaction(self) -> bool:
        return self._conn.in_transaction

    @property
    def total_changes(self) -> int:
        return self._conn.total_changes


class Checkpointer:
    """WAL checkpoints of one database file, off the event loop: one follows every
    run of commits, at most once a CHECKPOINT_SECONDS and one at a time."""

    def __init__(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        self._database: str = args[0]
        self._uri = bool(kwargs.get("uri", False))
        self._last = time.monotonic()
        self._dirty = False
        self._timer: asyncio.TimerHandle | None = None
        self._running: asyncio.Future[None] | None = None
        self._busy = threading.Lock()
        self.runs = 0

    def committed(self) -> None:
        self._dirty = True
        if self._timer is not None or self._running is not None:
            return  # the one planned or running is followed by another if need be
        delay = max(0.0, self._last + CHECKPOINT_SECONDS - time.monotonic())
        self._timer = asyncio.get_running_loop().call_later(delay, self._start)

    def _start(self) -> None:
        self._timer = None
        self._dirty = False
        self._last = time.monotonic()
        self._running = asyncio.get_running_loop().run_in_executor(None, self.checkpoint)
        self._running.add_done_callback(self._finished)

    def _finished(self, future: asyncio.Future[None]) -> None:
        self._running = None
        if not future.cancelled() and future.exception() is not None:
            log.warning("SQLite WAL checkpoint failed", exc_info=future.exception())
        if self._dirty:
            self.committed()

    def checkpoint(self) -> None:
        """One PASSIVE checkpoint (it waits for no reader or writer), blocking."""
        with self._busy:
            connection = sqlite3.connect(self._database, uri=self._uri, timeout=1.0)
            try:
                connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            finally:
                connection.close()
            self.runs += 1

    def stop(self) -> None:
        """On engine disposal: drop the planned checkpoint (closing the last connection
        checkpoints) and wait for one in progress to close its connection."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._dirty = False
        with self._busy:
            pass


def connector(
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    busy_timeout: float | None = None,
    after_commit: Callable[[], None] | None = None,
) -> Callable[[], Any]:
    """An `async_creator` for `create_async_engine`: sqlite3.connect(*args, **kwargs)
    as an InlineConnection, with SQLite's own busy wait switched off."""

    async def connect() -> InlineConnection:
        options = {**kwargs, "timeout": 0, "check_same_thread": False}
        return InlineConnection(sqlite3.connect(*args, **options), busy_timeout, after_commit)

    return connect
