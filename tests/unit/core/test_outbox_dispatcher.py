"""The outbox dispatcher against real storage and a scripted fake front end."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest

from core.notices import ApprovalNeeded, Destination, Notice, TaskFailed
from core.outbox import MARK_ATTEMPTS, MARK_GIVE_UP_AFTER, OutboxDispatcher
from core.policy import Policy
from core.ports import Attempt, DeliveryError
from core.records import ApprovalMessage
from storage.uow import SqlUnitOfWorkFactory
from tests.fakes import FakeClock
from tests.unit.core.helpers import (
    CHANNEL,
    Recorder,
    agent_registry,
    approval,
    approval_for,
    make_service,
    outbox,
    submit_and_advance,
)
from tests.unit.storage.helpers import THREAD_A, THREAD_B

Script = Callable[[Notice, int], str | None]  # (notice, how many times tried before) → ts


class FakeNotifier:
    """Delivers notices into a list; `script` may raise DeliveryError to simulate Slack."""

    def __init__(self, script: Script | None = None) -> None:
        self.script = script
        self.calls: list[Notice] = []
        self.attempts: list[Attempt | None] = []
        self.delivered: list[Notice] = []
        self._tries: dict[str, int] = defaultdict(int)

    async def deliver(self, notice: Notice, attempt: Attempt | None = None) -> str | None:
        self.calls.append(notice)
        self.attempts.append(attempt)
        key = _title(notice)
        tried = self._tries[key]
        self._tries[key] += 1
        ts = self.script(notice, tried) if self.script else None
        self.delivered.append(notice)
        return ts or f"1700000999.{len(self.delivered):06d}"

    def titles(self, dest: Destination | None = None) -> list[str]:
        return [_title(n) for n in self.delivered if dest is None or n.destination == dest]


def _title(notice: Notice) -> str:
    return str(getattr(notice, "title", notice.kind))


def note(dest: Destination, title: str) -> TaskFailed:
    return TaskFailed(destination=dest, task_id=None, title=title, error="x")


async def add(uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, *notices: Notice) -> None:
    async with uow_factory() as uow:
        for n in notices:
            await uow.outbox.add(n, clock.now())
            clock.advance(0.001)


async def test_transient_errors_are_retried_until_delivered_once(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    def flaky(notice: Notice, tried: int) -> str | None:
        if tried < 2:
            raise DeliveryError(f"timeout #{tried + 1}", permanent=False)
        return None

    notifier = FakeNotifier(flaky)
    dispatcher = OutboxDispatcher(uow_factory, notifier, clock)
    await add(uow_factory, clock, note(THREAD_A, "hello"))

    assert await dispatcher.drain() == 0
    (entry,) = await outbox(uow_factory)
    assert (entry.status, entry.attempts, entry.last_error) == ("PENDING", 1, "timeout #1")
    assert await dispatcher.drain() == 0  # the retry is not due yet
    assert len(notifier.calls) == 1

    clock.advance(600)
    assert await dispatcher.drain() == 0
    (entry,) = await outbox(uow_factory)
    assert (entry.status, entry.attempts, entry.last_error) == ("PENDING", 2, "timeout #2")

    clock.advance(600)
    assert await dispatcher.drain() == 1
    clock.advance(600)
    assert await dispatcher.drain() == 0  # delivered means done

    assert notifier.titles() == ["hello"]
    assert len(notifier.calls) == 3
    (entry,) = await outbox(uow_factory)
    assert (entry.status, entry.attempts) == ("SENT", 2)
    assert entry.message_ts == "1700000999.000001"
    async with uow_factory() as uow:
        assert await uow.outbox.backlog(clock.now()) == (0, None, 0)


async def test_retry_after_is_honoured(uow_factory: SqlUnitOfWorkFactory, clock: FakeClock) -> None:
    def rate_limited(notice: Notice, tried: int) -> str | None:
        if tried == 0:
            raise DeliveryError("ratelimited", permanent=False, retry_after=30)
        return None

    notifier = FakeNotifier(rate_limited)
    dispatcher = OutboxDispatcher(uow_factory, notifier, clock)
    await add(uow_factory, clock, note(THREAD_A, "hello"))
    failed_at = clock.now()

    await dispatcher.drain()
    (entry,) = await outbox(uow_factory)
    assert entry.next_attempt_at == failed_at + timedelta(seconds=30)

    clock.advance(29.9)
    assert await dispatcher.drain() == 0
    assert len(notifier.calls) == 1  # not before now + Retry-After

    clock.advance(0.1)
    assert await dispatcher.drain() == 1
    assert len(notifier.calls) == 2
    assert notifier.titles() == ["hello"]


async def test_permanent_error_marks_failed_without_retrying(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    def gone(notice: Notice, tried: int) -> str | None:
        if _title(notice) == "doomed":
            raise DeliveryError("channel_not_found", permanent=True)
        return None

    notifier = FakeNotifier(gone)
    dispatcher = OutboxDispatcher(uow_factory, notifier, clock)
    await add(uow_factory, clock, note(THREAD_A, "doomed"), note(THREAD_A, "next"))

    await dispatcher.drain()
    for _ in range(3):
        clock.advance(3600)
        await dispatcher.drain()

    assert [_title(n) for n in notifier.calls].count("doomed") == 1
    assert notifier.titles() == ["next"]  # a dead entry does not block its thread forever
    doomed, nxt = await outbox(uow_factory)
    assert (doomed.status, doomed.attempts, doomed.last_error) == ("FAILED", 1, "channel_not_found")
    assert nxt.status == "SENT"
    async with uow_factory() as uow:
        pending, oldest, failed = await uow.outbox.backlog(clock.now())
        failures = await uow.outbox.recent_failures(10)
    assert (pending, oldest, failed) == (0, None, 1)
    assert [(f["id"], f["kind"], f["error"]) for f in failures] == [
        (doomed.id, "task_failed", "channel_not_found")
    ]


async def test_gives_up_after_max_attempts(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    def always_down(notice: Notice, tried: int) -> str | None:
        raise DeliveryError("service_unavailable", permanent=False, retry_after=1)

    notifier = FakeNotifier(always_down)
    dispatcher = OutboxDispatcher(uow_factory, notifier, clock, max_attempts=3)
    await add(uow_factory, clock, note(THREAD_A, "hello"))
    for _ in range(6):
        await dispatcher.drain()
        clock.advance(5)

    assert len(notifier.calls) == 3
    (entry,) = await outbox(uow_factory)
    assert (entry.status, entry.attempts) == ("FAILED", 3)


async def test_order_is_kept_per_thread_while_an_entry_waits_for_a_retry(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    def first_fails_once(notice: Notice, tried: int) -> str | None:
        if _title(notice) == "a1" and tried == 0:
            raise DeliveryError("timeout", permanent=False, retry_after=10)
        return None

    notifier = FakeNotifier(first_fails_once)
    dispatcher = OutboxDispatcher(uow_factory, notifier, clock)
    await add(
        uow_factory,
        clock,
        note(THREAD_A, "a1"),
        note(THREAD_B, "b1"),
        note(THREAD_A, "a2"),
        note(THREAD_A, "a3"),
        note(THREAD_B, "b2"),
    )

    await dispatcher.drain()
    assert notifier.titles(THREAD_A) == []  # a2, a3 wait behind a1
    assert notifier.titles(THREAD_B) == ["b1", "b2"]  # another thread is not held up

    clock.advance(10)
    await dispatcher.drain()
    assert notifier.titles(THREAD_A) == ["a1", "a2", "a3"]
    assert all(e.status == "SENT" for e in await outbox(uow_factory))


async def test_approval_message_ts_is_stored_on_the_approval(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    """Each posted copy is recorded with where it went, so it can be replaced in place."""
    policy = Policy(approvers=("UBOSS",), approval_channel="CAPPROVALS")
    service = make_service(uow_factory, clock, agent_registry(Recorder()), policy)
    purchase = await submit_and_advance(service, "buy 2 monitors for $300")
    pending = await approval_for(uow_factory, purchase.id)
    assert pending is not None and pending.message_ts is None

    def slack(notice: Notice, tried: int) -> str | None:
        return "1700000123.000456" if isinstance(notice, ApprovalNeeded) else None

    notifier = FakeNotifier(slack)
    await OutboxDispatcher(uow_factory, notifier, clock).drain()

    assert any(isinstance(n, ApprovalNeeded) for n in notifier.delivered)
    async with uow_factory() as uow:
        copies = await uow.approvals.messages(pending.id)
    assert copies == [ApprovalMessage(pending.id, "CAPPROVALS", "1700000123.000456", None)]
    stored = await approval(uow_factory, pending.id)
    assert stored.channel == CHANNEL  # still the requester's conversation
    (entry,) = await outbox(uow_factory, ApprovalNeeded)
    assert (entry.status, entry.message_ts) == ("SENT", "1700000123.000456")


class DroppedMarks:
    """The unit-of-work factory, but the first `failures` sent-marks fail as a pooled
    connection the database dropped would (the post itself went through)."""

    def __init__(self, inner: SqlUnitOfWorkFactory, failures: int) -> None:
        self.inner = inner
        self.front_door = inner.front_door
        self.failures = failures

    def __call__(self, **kwargs: Any) -> Any:
        return self.inner(**kwargs)

    async def together(self, work: Any, **kwargs: Any) -> Any:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionResetError("connection was closed in the middle of operation")
        return await self.inner.together(work, **kwargs)


async def test_a_failed_sent_mark_is_retried_so_the_thread_is_not_held_for_a_lease(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    """Left claimed and unmarked, the entry would block every later reply in its
    thread for a whole lease (60 s): the database restart test caught that, twice.
    So the mark is retried for as long as the database refuses it."""
    notifier = FakeNotifier()
    marks = DroppedMarks(uow_factory, failures=MARK_ATTEMPTS + 4)
    dispatcher = OutboxDispatcher(marks, notifier, clock)  # type: ignore[arg-type]
    dispatcher.mark_backoff_seconds = 0.001
    await add(uow_factory, clock, note(THREAD_A, "accepted"), note(THREAD_A, "result"))

    assert await dispatcher.drain() == 2
    assert notifier.titles() == ["accepted", "result"]  # posted once each, in order
    assert [e.status for e in await outbox(uow_factory)] == ["SENT", "SENT"]
    assert marks.failures == 0


class SlowSlack(FakeNotifier):
    """Slack taking its time over a post: `deliver` waits until `answer` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.posting = asyncio.Event()
        self.answer = asyncio.Event()

    async def deliver(self, notice: Notice, attempt: Attempt | None = None) -> str | None:
        self.posting.set()
        await self.answer.wait()
        return await super().deliver(notice, attempt)


async def test_claims_are_renewed_while_requests_are_answered_and_work_is_queued(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    """The claim on entries being posted is short (a crash frees them within a lease)
    and renewed meanwhile. While Slack keeps the front door busy and background work
    queues at it (core/front_door.py), that renewal must not wait in line behind it
    all: the claim would lapse mid-post and another process would post them again."""
    lease = 0.3
    notifier = SlowSlack()
    door = uow_factory.front_door
    dispatcher = OutboxDispatcher(uow_factory, notifier, clock, lease_seconds=lease)
    await add(uow_factory, clock, note(THREAD_A, "result"))
    draining = asyncio.create_task(dispatcher.drain())
    async with asyncio.timeout(10):
        await notifier.posting.wait()
    with door.serving():
        backlog = [asyncio.create_task(door.turn()) for _ in range(200)]  # ≥ 4 s of turns
        clock.advance(10 * lease)  # the first claim is long over: only renewals hold it
        await asyncio.sleep(4 * lease)
        async with uow_factory(urgent=True) as uow:  # another process looks for work
            stolen = await uow.outbox.claim_due(clock.now(), 10, lease)
        notifier.answer.set()
    async with asyncio.timeout(30):
        assert await draining == 1
        await asyncio.gather(*backlog)
    assert stolen == []


class ClaimsGoWrong:
    """The unit-of-work factory, but claims go wrong as scripted, one per claim:
    "lost" (COMMIT happens, its answer is lost), "aborted" (rolled back, no commit)."""

    def __init__(self, inner: SqlUnitOfWorkFactory, script: list[str]) -> None:
        self.inner = inner
        self.front_door = inner.front_door
        self.script = script

    @asynccontextmanager
    async def _wrong(self, how: str, **kwargs: Any) -> AsyncIterator[Any]:
        async with self.inner(**kwargs) as uow:
            yield uow
            if how == "aborted":
                raise ConnectionResetError("connection was closed before COMMIT")
        raise ConnectionResetError("connection was closed in the middle of operation")

    def __call__(self, **kwargs: Any) -> Any:
        if kwargs.get("first") and self.script:
            return self._wrong(self.script.pop(0), **kwargs)
        return self.inner(**kwargs)

    async def together(self, work: Any, **kwargs: Any) -> Any:
        return await self.inner.together(work, **kwargs)


async def test_a_claim_whose_commit_answer_was_lost_does_not_hold_its_thread_for_a_lease(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    notifier = FakeNotifier()
    wire = ClaimsGoWrong(uow_factory, ["lost"])
    dispatcher = OutboxDispatcher(wire, notifier, clock, lease_seconds=60)  # type: ignore[arg-type]
    await add(uow_factory, clock, note(THREAD_A, "accepted"), note(THREAD_A, "result"))

    with pytest.raises(ConnectionResetError):
        await dispatcher.drain()
    assert wire.script == [] and notifier.titles() == []  # the claim's answer was lost
    assert await dispatcher.drain() == 2  # at once, not a minute later
    assert notifier.titles() == ["accepted", "result"]


async def test_a_lost_claim_is_let_go_though_the_next_claim_failed_too(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    """The release rides in the next claim's transaction: when that one rolls back,
    the lost claim must still be let go by the one after."""
    notifier = FakeNotifier()
    wire = ClaimsGoWrong(uow_factory, ["lost", "aborted"])
    dispatcher = OutboxDispatcher(wire, notifier, clock, lease_seconds=60)  # type: ignore[arg-type]
    await add(uow_factory, clock, note(THREAD_A, "accepted"), note(THREAD_A, "result"))

    for _ in range(2):
        with pytest.raises(ConnectionResetError):
            await dispatcher.drain()
        clock.advance(1)
    assert notifier.titles() == []
    assert await dispatcher.drain() == 2  # at once, not when the lost claim lapses
    assert notifier.titles() == ["accepted", "result"]


class HeldMarks:
    """The unit-of-work factory, but grouped work (the sent-marks) waits for `release`."""

    def __init__(self, inner: SqlUnitOfWorkFactory) -> None:
        self.inner = inner
        self.front_door = inner.front_door
        self.waiting = asyncio.Event()
        self.release = asyncio.Event()

    def __call__(self, **kwargs: Any) -> Any:
        return self.inner(**kwargs)

    async def together(self, work: Any, **kwargs: Any) -> Any:
        self.waiting.set()
        await self.release.wait()
        return await self.inner.together(work, **kwargs)


async def test_a_posted_entry_is_marked_sent_though_shutdown_cancels_the_sender(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    """Stopping cancels the sender between the post and its mark: the mark must still
    commit, or the restarted sender looks for the post (or posts it again)."""
    notifier = FakeNotifier()
    held = HeldMarks(uow_factory)
    dispatcher = OutboxDispatcher(held, notifier, clock)  # type: ignore[arg-type]
    await add(uow_factory, clock, note(THREAD_A, "result"))
    draining = asyncio.create_task(dispatcher.drain())
    await asyncio.wait_for(held.waiting.wait(), 10)
    assert notifier.titles() == ["result"]
    draining.cancel()
    with pytest.raises(asyncio.CancelledError):
        await draining
    held.release.set()
    for _ in range(50):
        await asyncio.sleep(0.01)
    assert [e.status for e in await outbox(uow_factory)] == ["SENT"]


async def test_a_mark_that_keeps_failing_is_given_up_so_other_replies_still_go(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    """Past an outage's length a failing mark is a bug: retried forever, it would hold
    the sender (and every other thread's replies) for good."""
    notifier = FakeNotifier()
    marks = DroppedMarks(uow_factory, failures=10_000)
    dispatcher = OutboxDispatcher(marks, notifier, clock)  # type: ignore[arg-type]
    dispatcher.mark_backoff_seconds = dispatcher.mark_backoff_max_seconds = 0.0001
    await add(uow_factory, clock, note(THREAD_A, "doomed"))
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(dispatcher.drain(), timeout=30)
    assert marks.failures == 10_000 - MARK_GIVE_UP_AFTER


async def test_a_sender_cancelled_as_it_is_woken_stops(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    """Shutdown cancels the sender; a write that wakes it in the same moment must not
    swallow that cancellation (asyncio.wait_for does on Python 3.11), or `stop()`
    waits for it forever: seen under load as a bot that would not exit."""
    dispatcher = OutboxDispatcher(uow_factory, FakeNotifier(), clock)
    sender = asyncio.create_task(dispatcher.run_forever(poll_seconds=3600))
    for _ in range(50):
        await asyncio.sleep(0)  # drained: now waiting to be woken
    dispatcher.wake()
    sender.cancel()
    done, _ = await asyncio.wait({sender}, timeout=5)
    assert sender in done and sender.cancelled()
