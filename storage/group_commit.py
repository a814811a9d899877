"""Group commit: the ack-path work of concurrent requests in one transaction.

Under a burst every request's few inserts would otherwise pay for a transaction
of their own (a BEGIN, a COMMIT, on SQLite a turn at the writer lock, on
PostgreSQL a pooled connection). Here the callers that arrive while a batch is
being prepared or run are queued, and the next batch runs all of their work in
one unit of work and commits once; each caller gets its own result only after
that commit (so a front end still acks only what is persisted). On a server
database up to `runners` batches run at once, each on its own connection, so
the ack path is not one round trip after another; SQLite has one writer anyway.

If anything in a batch fails (one caller's work raises, or the commit does), or a
caller is cancelled while its work runs, the whole transaction rolls back and
every remaining piece of work runs again in a transaction of its own, so a
failure reaches only the caller it belongs to and a cancelled caller's work
never commits.
If the transaction cannot even be opened twice in a row, every waiting caller
gets that error at once rather than one connect timeout after another.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Generic, TypeVar

_U = TypeVar("_U")

#: the most callers whose work one transaction holds
MAX_BATCH = 64
#: tries to open a transaction before its waiting callers all get the error
OPEN_ATTEMPTS = 2

Work = Callable[[_U], Awaitable[Any]]


class _CallerGone(Exception):
    """A caller was cancelled (shutdown) while its work ran: nothing of it may commit,
    or a step it claimed would stay claimed with no one left to run it."""


class GroupCommit(Generic[_U]):
    def __init__(
        self,
        open_unit: Callable[[], AbstractAsyncContextManager[_U]],
        runners: int = 1,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._open = open_unit
        self._max_runners = runners
        self._max_batch = max_batch
        self._waiting: list[tuple[Work[_U], asyncio.Future[Any]]] = []
        self._runners: set[asyncio.Task[None]] = set()
        #: transactions committed and pieces of work they held (for tests and benchmarks)
        self.batches = 0
        self.pieces = 0

    async def run(self, work: Work[_U]) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append((work, future))
        # A runner that is not done looks at the queue again before it ends (no await
        # in between); one that is done may not have run its done-callback yet.
        self._runners = {r for r in self._runners if not r.done()}
        if len(self._runners) < self._max_runners:
            self._runners.add(
                asyncio.get_running_loop().create_task(self._drain(), name="group-commit")
            )
        return await future

    async def finish(self, grace: float) -> None:
        """Let the batches under way commit (a write shielded from its cancelled caller,
        e.g. a sent-mark at shutdown) before the engine and the loop go; cancel what
        outlasts `grace` seconds."""
        runners = [r for r in self._runners if not r.done()]
        if not runners:
            return
        _done, late = await asyncio.wait(runners, timeout=grace)
        for runner in late:
            runner.cancel()
        await asyncio.gather(*late, return_exceptions=True)

    def _take(self) -> list[tuple[Work[_U], asyncio.Future[Any]]]:
        """The next batch: callers still waiting (a cancelled caller's work is dropped)."""
        live = [(w, f) for w, f in self._waiting if not f.done()]
        batch, self._waiting = live[: self._max_batch], live[self._max_batch :]
        return batch

    async def _drain(self) -> None:
        batch: list[tuple[Work[_U], asyncio.Future[Any]]] = []
        failed_opens = 0
        try:
            while self._waiting:
                await asyncio.sleep(0)  # let the callers of this loop turn join
                batch = []
                opened = False
                try:
                    # Taken once the transaction is open: whoever came while it
                    # waited for the writer lock or a connection rides along.
                    async with self._open() as uow:
                        opened = True
                        batch = self._take()
                        results = [await work(uow) for work, _ in batch]
                        if any(future.done() for _, future in batch):
                            raise _CallerGone  # its work must not commit: redo the rest
                except Exception as exc:
                    if opened:
                        await self._one_by_one(batch)
                        continue
                    failed_opens += 1
                    if failed_opens >= OPEN_ATTEMPTS:
                        # No transaction at all (the database is away): each caller
                        # would fail alike, one connect timeout after another.
                        failed_opens = 0
                        batch = self._take()
                        for _, future in batch:
                            if not future.done():
                                future.set_exception(exc)
                    continue  # else open again: the pool dropped the dead connection
                failed_opens = 0
                self.batches += bool(batch)
                self.pieces += len(batch)
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        except BaseException:  # cancelled (shutdown): no caller may wait forever
            for _, future in [*batch, *self._waiting]:
                if not future.done():
                    future.cancel()
            raise

    async def _one_by_one(self, batch: list[tuple[Work[_U], asyncio.Future[Any]]]) -> None:
        for work, future in batch:
            if future.done():
                continue
            try:
                async with self._open() as uow:
                    result = await work(uow)
                    if future.done():
                        raise _CallerGone
            except _CallerGone:
                continue
            except Exception as exc:
                if not future.done():
                    future.set_exception(exc)
            else:
                self.batches += 1
                self.pieces += 1
                if not future.done():
                    future.set_result(result)
