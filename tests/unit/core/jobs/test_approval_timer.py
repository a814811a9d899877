"""Approval reminders and expiry: at core level on real storage, then end to end through
the real app (scheduler job → outbox → Slack) on a FakeClock."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest

from core.approvals import Decision, DecisionResult
from core.clock import month_key
from core.jobs.approval_timer import ApprovalTimer
from core.notices import (
    ApprovalDecided,
    ApprovalReminder,
    Destination,
    TaskCancelled,
)
from core.policy import Policy
from core.records import ApprovalMessage, BudgetStatus
from core.service import TaskService
from core.states import ApprovalStatus, TaskStatus
from storage.uow import SqlUnitOfWorkFactory
from tests.e2e.conftest import Harness
from tests.fakes import FakeClock
from tests.slackfake import payloads
from tests.slackfake.server import Call
from tests.unit.core.helpers import (
    CHANNEL,
    THREAD,
    Recorder,
    agent_registry,
    approval_for,
    make_service,
    notices,
    submit_and_advance,
    task,
)
from tests.unit.core.jobs.conftest import AppFactory

REMIND = 3600
TTL = 10 * 3600
POLICY = Policy(approvers=("UAPPROVER",), reminder_after_seconds=REMIND, approval_ttl_seconds=TTL)
MESSAGE_TS = "1700000000.000200"


@pytest.fixture
def service(uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, recorder: Recorder) -> TaskService:
    return make_service(uow_factory, clock, agent_registry(recorder), POLICY)


def timer(service: TaskService) -> ApprovalTimer:
    return ApprovalTimer(service.uow_factory, service.approvals, POLICY, service.clock)


async def budget_in(uow_factory: SqlUnitOfWorkFactory, month_of: datetime) -> BudgetStatus:
    """The budget of the month the hold was taken in (the clock may have moved on)."""
    async with uow_factory() as uow:
        return await uow.budgets.status(
            "U1", month_key(month_of), POLICY.monthly_budget_cents, POLICY.currency
        )


async def test_a_reminder_once_per_reminder_interval_in_the_thread(
    service: TaskService, uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    buy = await submit_and_advance(service, "buy 2 monitors for $300")
    approval = await approval_for(uow_factory, buy.id)
    assert approval is not None and approval.status is ApprovalStatus.PENDING
    job = timer(service)

    clock.advance(REMIND - 1)
    assert await job.run() == (0, [])
    assert await notices(uow_factory, ApprovalReminder) == []

    clock.advance(1)
    assert [await job.run() for _ in range(4)] == [(1, []), (0, []), (0, []), (0, [])]
    (reminder,) = await notices(uow_factory, ApprovalReminder)
    # nothing posted yet: to the approver, whose DM the front end opens
    assert reminder.destination == Destination(user="UAPPROVER")
    assert (reminder.task_id, reminder.approval_id) == (buy.id, approval.id)
    assert reminder.approvers == ("UAPPROVER",)
    assert reminder.waiting_seconds == REMIND
    assert reminder.title == buy.title

    clock.advance(REMIND // 2)
    assert await job.run() == (0, [])
    clock.advance(REMIND // 2 - 1)
    assert await job.run() == (0, [])
    assert len(await notices(uow_factory, ApprovalReminder)) == 1

    clock.advance(1)  # another reminder_after since the last reminder
    assert [await job.run() for _ in range(3)] == [(1, []), (0, []), (0, [])]
    reminders = await notices(uow_factory, ApprovalReminder)
    assert [r.waiting_seconds for r in reminders] == [REMIND, 2 * REMIND]


async def test_a_reminder_goes_under_each_posted_copy_of_the_approval(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, recorder: Recorder
) -> None:
    policy = replace(POLICY, approvers=("UA1", "UA2"))
    service = make_service(uow_factory, clock, agent_registry(recorder), policy)
    buy = await submit_and_advance(service, "buy 2 monitors for $300")
    approval = await approval_for(uow_factory, buy.id)
    assert approval is not None
    async with uow_factory() as uow:  # as the outbox sender records after posting them
        await uow.approvals.add_message(
            ApprovalMessage(approval.id, "DUA1", "1.1", "UA1"), clock.now()
        )
        await uow.approvals.add_message(
            ApprovalMessage(approval.id, "DUA2", "1.2", "UA2"), clock.now()
        )
    clock.advance(REMIND)
    job = ApprovalTimer(service.uow_factory, service.approvals, policy, service.clock)
    assert await job.run() == (1, [])
    reminders = await notices(uow_factory, ApprovalReminder)
    assert sorted((r.destination for r in reminders), key=lambda d: d.key) == [
        Destination("DUA1", "1.1"),
        Destination("DUA2", "1.2"),
    ]
    assert (await task(uow_factory, buy.id)).status is TaskStatus.PENDING


async def test_an_undecided_approval_expires_cancels_the_task_and_frees_the_budget(
    service: TaskService,
    uow_factory: SqlUnitOfWorkFactory,
    clock: FakeClock,
    recorder: Recorder,
) -> None:
    started = clock.now()
    buy = await submit_and_advance(service, "buy 2 monitors for $300")
    approval = await approval_for(uow_factory, buy.id)
    assert approval is not None
    copy = ApprovalMessage(approval.id, "DUAPPROVER", MESSAGE_TS, "UAPPROVER")
    async with uow_factory() as uow:  # as the outbox sender records after posting it
        await uow.approvals.add_message(copy, clock.now())
    assert (await budget_in(uow_factory, started)).held_cents == 300_00
    job = timer(service)

    clock.advance(TTL - 1)
    await job.run()
    assert (await approval_for(uow_factory, buy.id)).status is ApprovalStatus.PENDING  # type: ignore[union-attr]
    assert await notices(uow_factory, ApprovalDecided) == []

    clock.advance(1)
    assert (await job.run())[1] == [buy.root_id]
    assert await job.run() == (0, [])  # expired once

    expired = await approval_for(uow_factory, buy.id)
    assert expired is not None and expired.status is ApprovalStatus.EXPIRED
    assert expired.decided_by is None
    stored = await task(uow_factory, buy.id)
    assert stored.status is TaskStatus.CANCELLED
    assert stored.error and "expired" in stored.error
    (cancelled,) = await notices(uow_factory, TaskCancelled)
    assert cancelled.destination == Destination(CHANNEL, THREAD)
    assert cancelled.task_id == buy.id and "expired" in cancelled.reason
    (decided,) = await notices(uow_factory, ApprovalDecided)
    assert decided.outcome == "expired"
    assert decided.approval_id == approval.id and decided.message_ts == MESSAGE_TS
    assert decided.destination == Destination("DUAPPROVER")  # the approver's copy, in place
    status = await budget_in(uow_factory, started)
    assert (status.held_cents, status.spent_cents) == (0, 0)

    # a click after expiry changes nothing
    late = await service.decide(approval.id, "UAPPROVER", Decision.APPROVE)
    assert late.result is DecisionResult.ALREADY_DECIDED
    await service.advance(buy.root_id)
    await service.idle()
    assert (await approval_for(uow_factory, buy.id)).status is ApprovalStatus.EXPIRED  # type: ignore[union-attr]
    assert (await task(uow_factory, buy.id)).status is TaskStatus.CANCELLED
    assert recorder.started() == []  # the purchase never ran
    assert len(await notices(uow_factory, ApprovalDecided)) == 1
    assert len(await notices(uow_factory, TaskCancelled)) == 1
    status = await budget_in(uow_factory, started)
    assert (status.held_cents, status.spent_cents) == (0, 0)


# --- end to end: the approvals job on the real app --------------------------------------------


def _has_actions(params: dict[str, Any]) -> bool:
    """Approve/Deny buttons (a request's status message has a Cancel button of its own)."""
    return '"action_id": "approval:' in json.dumps(params.get("blocks") or [])


async def ask_to_buy(h: Harness) -> tuple[str, Call]:
    envelope = payloads.im_message("buy 2 monitors for $300", user="U1", channel="D1")
    assert (await h.sender.event(envelope)).status == 200
    await h.settle()
    thread = envelope["event"]["ts"]
    (approval,) = [c for c in h.posts() if _has_actions(c.params)]
    # in the approver's DM with the bot, a message of its own
    assert approval.response["channel"] == h.slack.dm_channel_for("UAPPROVER")
    assert not approval.params.get("thread_ts")
    return thread, approval


async def test_expiry_end_to_end_replaces_the_buttons_and_answers_in_the_thread(
    clocked_app: AppFactory,
) -> None:
    clock = FakeClock()
    h = await clocked_app(
        clock,
        TASKBOT_APPROVAL_TTL_SECONDS=str(TTL),
        TASKBOT_REMINDER_AFTER_SECONDS=str(REMIND),
    )
    thread, approval = await ask_to_buy(h)
    posts_before = len(h.posts())

    clock.advance(TTL - 1)  # not yet: a reminder in the thread, the buttons stay
    await h.running.scheduler.approvals()
    await h.settle()
    assert h.slack.calls_to("chat.update") == []
    (reminder,) = h.posts()[posts_before:]
    # under the approval message the approver holds, where its buttons are
    assert reminder.params["channel"] == approval.response["channel"]
    assert reminder.params["thread_ts"] == approval.response["ts"]
    assert "Reminder" in reminder.params["text"]

    clock.advance(1)
    await h.running.scheduler.approvals()
    await h.settle()

    # the approval message (the request's status message is updated too)
    (update,) = [
        c for c in h.slack.calls_to("chat.update") if c.params["ts"] == approval.response["ts"]
    ]
    assert update.ok
    assert update.params["channel"] == approval.response["channel"]
    assert update.params["ts"] == approval.response["ts"]
    assert not _has_actions(update.params)
    assert "Expired" in json.dumps(update.params["blocks"], ensure_ascii=False)
    replies = [c for c in h.posts()[posts_before + 1 :] if c.params.get("thread_ts") == thread]
    assert len(replies) == 1  # one outcome, in its own word
    assert replies[0].params["text"].startswith("Expired: ")
    assert "expired" in json.dumps(replies[0].params["blocks"]).lower()

    # running the job again changes nothing in Slack
    calls = len(h.slack.calls)
    await h.running.scheduler.approvals()
    await h.settle()
    assert len(h.slack.calls) == calls
