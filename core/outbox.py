"""Delivers the notices core wrote to the outbox, at least once, in order per thread."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
from collections.abc import Callable
from datetime import datetime, timedelta

from core.approval_routing import record_copy
from core.clock import Clock
from core.notices import ApprovalNeeded, Notice, RequestStatus, StaleReport
from core.ports import (
    Attempt,
    DeliveryError,
    Notifier,
    OutboxItem,
    Posted,
    UnitOfWork,
    UnitOfWorkFactory,
)
from core.records import ApprovalMessage

log = logging.getLogger(__name__)

#: marking a posted entry sent: the first pause (doubling up to the longest), and the
#: tries after which each failure is logged as an error
MARK_BACKOFF_SECONDS = 0.1
MARK_BACKOFF_MAX_SECONDS = 1.0
MARK_ATTEMPTS = 6
#: tries before a mark is given up (about a minute, MARK_BACKOFF_MAX_SECONDS apart)
MARK_GIVE_UP_AFTER = 64


def backoff_seconds(attempts: int, *, base: float = 1.0, cap: float = 300.0) -> float:
    """Exponential backoff with full jitter (attempts counts failures so far, from 0)."""
    return random.uniform(base / 2, min(cap, base * 2**attempts))


class OutboxDispatcher:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        notifier: Notifier,
        clock: Clock,
        *,
        batch: int = 32,
        concurrency: int = 2,
        lease_seconds: float = 60.0,
        max_attempts: int = 12,
        webhooks: bool = False,
        give_up_after_seconds: float | None = None,
    ) -> None:
        self._uow_factory = uow_factory
        self._notifier = notifier
        self._clock = clock
        self._batch = batch
        #: posts in flight at once: after a crash each one posted but not yet marked
        #: sent is looked for (where the front end can) or sent again, so keep it small
        self._concurrency = concurrency
        self._lease = lease_seconds
        self.mark_backoff_seconds = MARK_BACKOFF_SECONDS
        self.mark_backoff_max_seconds = MARK_BACKOFF_MAX_SECONDS
        self._max_attempts = max_attempts
        #: which lane of the outbox this sender serves (see Outbox.claim_due)
        self._webhooks = webhooks
        self._give_up_after = give_up_after_seconds
        #: called with the item after it is given up (a hook for counters)
        self.on_gave_up: list[Callable[[OutboxItem, str], object]] = []
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._renewals: set[asyncio.Task[None]] = set()
        #: the expiries of claims that may have committed though their commit failed
        self._unsure_claims: list[datetime] = []

    def wake(self) -> None:
        self._wake.set()

    async def drain(self) -> int:
        """Deliver everything due now; returns how many were delivered."""
        delivered = 0
        async with self._lock:
            while True:
                items = await self._claim()
                if not items:
                    return delivered
                done = asyncio.Event()
                renewal = asyncio.get_running_loop().create_task(
                    self._keep_claimed([item.id for item in items], done), name="outbox-claims"
                )
                self._renewals.add(renewal)
                renewal.add_done_callback(self._renewals.discard)
                slots = asyncio.Semaphore(self._concurrency)
                try:
                    results = await asyncio.gather(
                        *(self._deliver_in(slots, item) for item in items)
                    )
                finally:
                    done.set()
                delivered += sum(results)
                if not any(results):
                    return delivered

    async def _claim(self) -> list[OutboxItem]:
        """Claim what is due. A claim whose commit failed may still have been taken
        (the connection dropped during COMMIT): left alone, it would hold its thread
        for a whole lease, so the next claim first lets go of it, by its expiry. Each
        is kept until a claim commits: a release rolled back with its claim is redone."""
        now = self._clock.now()
        self._unsure_claims = [until for until in self._unsure_claims if until > now]  # lapsed
        async with self._uow_factory(first=True) as uow:
            for until in self._unsure_claims:
                await uow.outbox.release_claims(until)
            self._unsure_claims.append(now + timedelta(seconds=self._lease))
            items = await uow.outbox.claim_due(
                now, self._batch, self._lease, webhooks=self._webhooks
            )
        self._unsure_claims.clear()
        return items

    async def _keep_claimed(self, item_ids: list[int], done: asyncio.Event) -> None:
        """Renew the claim until `done`, so the lease can be short: after a crash
        (kill -9) the entries are claimed again within one lease, not minutes later."""
        while True:
            await _until(done, self._lease / 3)
            if done.is_set():
                return
            try:
                # urgent: queued behind background work at the front door, it would let
                # the claim lapse mid-post, and another process would post it again
                async with self._uow_factory(urgent=True) as uow:
                    until = self._clock.now() + timedelta(seconds=self._lease)
                    await uow.outbox.extend_claims(item_ids, until)
            except Exception:
                log.warning("renewing outbox claims failed", exc_info=True)

    async def _deliver_in(self, slots: asyncio.Semaphore, item: OutboxItem) -> bool:
        async with slots:
            # sending waits while requests are answered, but goes before more work
            await self._uow_factory.front_door.turn(first=True)
            return await self._deliver(item)

    async def _deliver(self, item: OutboxItem) -> bool:
        try:
            notice = await self._prepare(item.notice)
            attempt = Attempt(item.id, item.unconfirmed_since)
            posted = await self._notifier.deliver(notice, attempt) if notice is not None else None
        except DeliveryError as exc:
            await self._failed(item, exc)
            return False
        except Exception as exc:
            log.exception("delivering outbox entry %s failed", item.id)
            await self._failed(item, DeliveryError(repr(exc), permanent=False))
            return False
        # Posted but not yet marked is the window in which a crash makes the next attempt
        # look for the post (or, where it can't, repeat it): commit the mark at once,
        # together with whatever else is on the ack path right now (group commit).
        ts = posted.ts if isinstance(posted, Posted) else posted
        channel = posted.channel if isinstance(posted, Posted) else item.notice.destination.channel
        await self._mark_sent_retrying(item, ts, channel)
        return True

    async def _mark_sent_retrying(
        self, item: OutboxItem, ts: str | None, channel: str | None
    ) -> None:
        """A mark that fails (the database away, a pooled connection it dropped) is
        retried a pause of at most MARK_BACKOFF_MAX_SECONDS apart, for about a minute
        (a database restart): left unmarked, the entry would stay claimed for a whole
        lease (and every later reply in its thread wait behind it), then be looked for
        or posted again. A mark that keeps failing past that (a bug, not an outage) is
        given up, so it cannot hold up every other reply this sender has to send."""
        tried = 0
        while True:
            tried += 1
            try:
                # shielded: posted is posted, so a sender cancelled at shutdown still
                # leaves the mark to commit (a cancelled caller's grouped work never does)
                await asyncio.shield(
                    self._uow_factory.together(lambda uow: self._mark_sent(uow, item, ts, channel))
                )
                return
            except Exception:
                if tried >= MARK_GIVE_UP_AFTER:
                    raise
                level = logging.WARNING if tried < MARK_ATTEMPTS else logging.ERROR
                log.log(level, "marking outbox entry %s sent failed (try %d)", item.id, tried)
            await asyncio.sleep(
                min(self.mark_backoff_max_seconds, self.mark_backoff_seconds * 2 ** (tried - 1))
            )

    async def _mark_sent(
        self, uow: UnitOfWork, item: OutboxItem, ts: str | None, channel: str | None
    ) -> None:
        await uow.outbox.mark_sent(item.id, ts, self._clock.now())
        notice = item.notice
        if isinstance(notice, ApprovalNeeded) and ts and channel:
            copy = ApprovalMessage(notice.approval_id, channel, ts, notice.destination.user)
            await record_copy(uow, self._clock, copy)

    async def _prepare(self, notice: Notice) -> Notice | None:
        """A status snapshot or a day's digest replaces the message its lane posted
        first; a final snapshot with nothing posted yet is dropped (the result was
        the answer)."""
        if not isinstance(notice, RequestStatus | StaleReport):
            return notice
        async with self._uow_factory(read_only=True) as uow:
            ts = await uow.outbox.sent_ts(notice.lane)
        if ts is None and isinstance(notice, RequestStatus) and notice.final:
            return None
        return dataclasses.replace(notice, message_ts=ts)

    async def _failed(self, item: OutboxItem, exc: DeliveryError) -> None:
        now = self._clock.now()
        async with self._uow_factory() as uow:
            too_old = (
                self._give_up_after is not None
                and (now - item.created_at).total_seconds() >= self._give_up_after
            )
            if exc.permanent or too_old or item.attempts + 1 >= self._max_attempts:
                log.error(
                    "giving up on %s for task %s: %s", item.notice.kind, item.notice.task_id, exc
                )
                await uow.outbox.mark_failed(item.id, str(exc), now)
                for hook in self.on_gave_up:
                    hook(item, str(exc))
                return
            delay = (
                exc.retry_after if exc.retry_after is not None else backoff_seconds(item.attempts)
            )
            log.warning(
                "will retry %s for task %s in %.1fs: %s",
                item.notice.kind,
                item.notice.task_id,
                delay,
                exc,
            )
            await uow.outbox.retry_later(
                item.id,
                str(exc),
                now + timedelta(seconds=delay),
                maybe_delivered=exc.maybe_delivered,
            )

    async def run_forever(self, poll_seconds: float = 1.0) -> None:
        """Deliver as soon as something is written, and poll for retries that came due."""
        while True:
            try:
                await self.drain()
            except Exception:
                log.exception("outbox drain failed")
            await _until(self._wake, poll_seconds)
            self._wake.clear()


async def _until(event: asyncio.Event, seconds: float) -> None:
    """Wait for `event`, at most `seconds`. Not `asyncio.wait_for`: on Python 3.11 it
    loses a cancellation that lands as the event is set, and a sender cancelled at
    shutdown then runs on while `stop()` waits for it forever (seen under load)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
