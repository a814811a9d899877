"""Housekeeping: delete what is no longer needed so storage stays bounded.

Pruned after their retention: delivered outbox entries (full payloads), spent or
released budget holds of finished tasks, inbox event ids, and leases that expired
long ago (processes that are gone). Kept for good: tasks, the audit log and the
ledger (they are the record), and outbox entries not delivered yet or given up
on (health reports those). Deletes go in small batches, each its own
transaction, so a big backlog never holds the (SQLite) writer for long.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.clock import Clock
from core.ports import UnitOfWork, UnitOfWorkFactory

log = logging.getLogger(__name__)

#: Slack redelivers an event for up to about an hour; its id must outlive that
MIN_INBOX_KEEP = timedelta(hours=1)


@dataclass(frozen=True)
class Retention:
    #: delivered outbox entries, closed holds of finished tasks, long-expired leases
    records: timedelta = timedelta(days=30)
    #: inbox event ids (never below MIN_INBOX_KEEP)
    inbox: timedelta = timedelta(days=7)


Prune = Callable[[UnitOfWork, datetime, int], Awaitable[int]]


class Housekeeping:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        clock: Clock,
        retention: Retention,
        *,
        batch: int = 500,
    ) -> None:
        self._uow_factory = uow_factory
        self._clock = clock
        self._retention = retention
        self._batch = batch

    async def run(self) -> dict[str, int]:
        """Prune everything past its retention; returns how many rows went, per kind."""
        now = self._clock.now()
        records = now - self._retention.records
        inbox = now - max(self._retention.inbox, MIN_INBOX_KEEP)
        jobs: list[tuple[str, datetime, Prune]] = [
            ("outbox", records, lambda uow, at, n: uow.outbox.prune_sent(at, n)),
            ("holds", records, lambda uow, at, n: uow.budgets.prune_closed(at, n)),
            ("inbox", inbox, lambda uow, at, n: uow.inbox.prune_before(at, n)),
            ("leases", records, lambda uow, at, n: uow.leases.prune_expired(at, n)),
        ]
        pruned: dict[str, int] = {}
        for kind, cutoff, prune in jobs:
            pruned[kind] = await self._in_batches(cutoff, prune)
        if any(pruned.values()):
            log.info("housekeeping pruned %s", pruned)
        return pruned

    async def _in_batches(self, cutoff: datetime, prune: Prune) -> int:
        total = 0
        while True:
            async with self._uow_factory() as uow:
                deleted = await prune(uow, cutoff, self._batch)
            total += deleted
            if deleted < self._batch:
                return total
            await asyncio.sleep(0)  # let queued writers (acks first) in between batches
