"""Monthly budgets through the whole flow: refusals, holds, releases, and a race."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from core.approvals import Decision, DecisionResult
from core.notices import ApprovalNeeded, RequestRefused, TaskFailed
from core.orchestrator import Outcome
from core.policy import Policy
from core.records import Task
from core.service import TaskService
from core.states import ApprovalStatus, TaskStatus
from storage.models import InboxRow, TransactionRow
from storage.uow import SqlUnitOfWorkFactory
from tests.fakes import FakeClock
from tests.unit.core.helpers import (
    Recorder,
    agent_registry,
    approval_for,
    budget,
    ledger,
    make_service,
    notices,
    submit,
    submit_and_advance,
    task,
)

S = TaskStatus
HUNDRED = Policy(monthly_budget_cents=10000, allow_self_approval=True)


@pytest.fixture
def service(uow_factory: SqlUnitOfWorkFactory, clock: FakeClock) -> TaskService:
    """The service on a $100 monthly budget, requesters approving their own purchases."""
    return make_service(uow_factory, clock, agent_registry(Recorder()), HUNDRED)


async def _bought(service: TaskService, text: str = "buy 1 chair for $60") -> Task:
    """A purchase asked for and approved, so it has run."""
    purchase = await submit_and_advance(service, text)
    await _approve(service, purchase.id)
    return purchase


async def _approve(service: TaskService, task_id: int, user: str = "U1") -> None:
    pending = await approval_for(service.uow_factory, task_id)
    assert pending is not None
    outcome = await service.decide(pending.id, user, Decision.APPROVE)
    assert outcome.result is DecisionResult.DECIDED, outcome
    await service.idle()


async def test_over_budget_purchase_is_refused_once_before_it_is_accepted(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, service: TaskService
) -> None:
    first = await _bought(service)
    assert (await task(uow_factory, first.id)).status is S.COMPLETED

    second = await submit(service, "buy 1 desk for $50")

    assert second.outcome is Outcome.REFUSED and second.root is None
    assert second.reason is not None
    assert second.reason.startswith("I can't ask for $50.00: you have $40.00 of $100.00 left")
    (refused,) = await notices(uow_factory, RequestRefused)
    assert refused.reason == second.reason
    assert await notices(uow_factory, TaskFailed) == []  # a refusal, not a failure
    status = await budget(uow_factory, clock, HUNDRED)
    assert (status.spent_cents, status.held_cents) == (6000, 0)


async def test_a_purchase_over_budget_by_the_time_it_runs_fails_saying_what_is_left(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, service: TaskService
) -> None:
    """Both fit when asked; the second no longer fits once the first holds its money."""
    first = await submit(service, "buy 1 chair for $60")
    second = await submit(service, "buy 1 desk for $50")
    assert first.root is not None and second.root is not None
    for root in (first.root, second.root):
        await service.advance(root.id)
    await service.idle()

    failed_task = await task(uow_factory, second.root.id)
    assert failed_task.status is S.FAILED
    assert failed_task.error is not None
    assert "$40.00" in failed_task.error  # what is left of the month's $100
    assert "$50.00" in failed_task.error and "$100.00" in failed_task.error
    assert await approval_for(uow_factory, second.root.id) is None  # nobody is asked
    (failed,) = await notices(uow_factory, TaskFailed)
    assert (failed.task_id, failed.error) == (second.root.id, failed_task.error)


async def test_over_budget_step_refuses_its_request(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    recorder = Recorder()
    service = make_service(uow_factory, clock, agent_registry(recorder), HUNDRED)
    refused = await submit(service, "research laptops then buy 1 laptop for $300")

    assert refused.outcome is Outcome.REFUSED and refused.root is None
    assert refused.reason is not None and "$100.00" in refused.reason
    assert recorder.started() == []


async def test_hold_on_approval_request_and_release_on_deny(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, service: TaskService
) -> None:
    purchase = await submit_and_advance(service, "buy 1 chair for $60")

    held = await budget(uow_factory, clock, HUNDRED)
    assert (held.spent_cents, held.held_cents, held.remaining_cents) == (0, 6000, 4000)
    (asked,) = await notices(uow_factory, ApprovalNeeded)
    assert asked.remaining_cents == 4000  # the approver sees what is left after this one

    pending = await approval_for(uow_factory, purchase.id)
    assert pending is not None
    outcome = await service.decide(pending.id, "U1", Decision.DENY)
    assert outcome.result is DecisionResult.DECIDED
    await service.idle()

    assert (await task(uow_factory, purchase.id)).status is S.REJECTED
    released = await budget(uow_factory, clock, HUNDRED)
    assert (released.spent_cents, released.held_cents) == (0, 0)


async def test_hold_released_when_the_purchase_fails(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    registry = agent_registry(Recorder(), purchase_fails="supplier is out of stock")
    service = make_service(uow_factory, clock, registry, HUNDRED)
    purchase = await submit_and_advance(service, "buy 1 chair for $60")
    assert (await budget(uow_factory, clock, HUNDRED)).held_cents == 6000

    await _approve(service, purchase.id)

    failed = await task(uow_factory, purchase.id)
    assert (failed.status, failed.error) == (S.FAILED, "supplier is out of stock")
    status = await budget(uow_factory, clock, HUNDRED)
    assert (status.spent_cents, status.held_cents) == (0, 0)
    assert await ledger(uow_factory, purchase.id) == []


async def test_completed_purchase_turns_its_hold_into_spend(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, service: TaskService
) -> None:
    purchase = await _bought(service)

    status = await budget(uow_factory, clock, HUNDRED)
    assert (status.spent_cents, status.held_cents, status.remaining_cents) == (6000, 0, 4000)
    assert [e.amount_cents for e in await ledger(uow_factory, purchase.id)] == [6000]


async def test_budgets_are_per_requester_and_per_month(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, service: TaskService
) -> None:
    mine = await submit_and_advance(service, "buy 1 chair for $60")
    theirs = await submit_and_advance(service, "buy 1 chair for $60", requester="U2")
    assert await approval_for(uow_factory, mine.id) is not None
    assert await approval_for(uow_factory, theirs.id) is not None  # U2 has their own $100

    clock.advance(40 * 86400)  # next month: a fresh budget
    later = await submit_and_advance(service, "buy 1 desk for $90")
    assert later.status is S.PENDING
    assert await approval_for(uow_factory, later.id) is not None


@pytest.mark.parametrize("budget_row", ["new", "existing"])
async def test_concurrent_purchases_never_overspend(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, service: TaskService, budget_row: str
) -> None:
    if budget_row == "existing":
        # A denied purchase leaves this month's budget row in place with nothing spent, so
        # the race is decided by the conditional hold itself, not by who creates the row.
        denied = await submit_and_advance(service, "buy 1 lamp for $60")
        pending = await approval_for(uow_factory, denied.id)
        assert pending is not None
        await service.decide(pending.id, "U1", Decision.DENY)
        status = await budget(uow_factory, clock, HUNDRED)
        assert (status.spent_cents, status.held_cents) == (0, 0)
    submissions = await asyncio.gather(
        *(submit(service, "buy 1 chair for $60", event_id=f"Ev{i}") for i in range(20))
    )
    roots = [s.root.id for s in submissions if s.root is not None]
    assert len(roots) == 20

    await asyncio.gather(*(service.advance(r) for r in roots))

    tasks = [await task(uow_factory, r) for r in roots]
    waiting = [t for t in tasks if t.status is S.PENDING]
    refused = [t for t in tasks if t.status is S.FAILED]
    assert len(waiting) == 1, [t.status for t in tasks]  # $60 fits once into $100
    assert len(refused) == 19
    assert all(t.error and "Over budget" in t.error for t in refused)
    status = await budget(uow_factory, clock, HUNDRED)
    assert status.held_cents == 6000
    assert status.spent_cents + status.held_cents <= HUNDRED.monthly_budget_cents

    # approve everything that asked; only what was held can be spent
    for t in tasks:
        pending = await approval_for(uow_factory, t.id)
        if pending is not None:
            assert pending.status is ApprovalStatus.PENDING
            await service.decide(pending.id, "U1", Decision.APPROVE)
    await service.idle()

    final = await budget(uow_factory, clock, HUNDRED)
    assert (final.spent_cents, final.held_cents) == (6000, 0)
    async with uow_factory() as uow:
        charged = await uow.session.scalar(select(func.sum(TransactionRow.amount_cents)))
    assert charged == 6000 <= HUNDRED.monthly_budget_cents
    assert (await task(uow_factory, waiting[0].id)).status is S.COMPLETED


async def test_a_refusal_over_budget_leaves_its_reserved_task_id_to_no_one(
    uow_factory: SqlUnitOfWorkFactory, service: TaskService
) -> None:
    """The inbox reserves the root's id before the budget is read: a refusal names no task,
    and the next request still gets a task of its own."""
    await _bought(service)
    refused = await submit(service, "buy 1 desk for $50", event_id="EvDesk")
    accepted = await submit(service, "research desks", event_id="EvNext")

    assert refused.outcome is Outcome.REFUSED
    assert accepted.outcome is Outcome.ACCEPTED and accepted.root is not None
    async with uow_factory() as uow:
        rows = (await uow.session.execute(select(InboxRow.event_id, InboxRow.task_id))).all()
    assert {event: task_id for event, task_id in rows} == {
        "EvDesk": None,
        "EvNext": accepted.root.id,
    }
    assert (await submit(service, "buy 1 desk for $50", event_id="EvDesk")).outcome is (
        Outcome.DUPLICATE
    )
