"""A restart between the approval request and the decision: all state is in the
database, so a new process (new engine, new service) picks the graph up."""

from __future__ import annotations

from core.approvals import Decision, DecisionResult
from core.notices import ApprovalNeeded, RequestFinished
from core.states import ApprovalStatus, TaskStatus
from storage.engine import create_engine
from storage.migrate import upgrade
from storage.uow import SqlUnitOfWorkFactory
from tests.fakes import FakeClock
from tests.unit.core.helpers import (
    Recorder,
    agent_registry,
    children,
    ledger,
    make_service,
    notices,
    submit,
    task,
)

S = TaskStatus


async def test_new_engine_on_the_same_database_resumes_an_approved_graph(
    database_url: str, clock: FakeClock
) -> None:
    await upgrade(database_url)

    # --- process A: accepts the request, runs the research, asks for approval, stops
    recorder_a = Recorder()
    uow_a = SqlUnitOfWorkFactory(create_engine(database_url), clock)
    service_a = make_service(uow_a, clock, agent_registry(recorder_a))
    try:
        submission = await submit(service_a, "research laptops then buy 1 laptop for $100")
        assert submission.root is not None
        root_id = submission.root.id
        await service_a.advance(root_id)
        await service_a.idle()
        research, purchase = await children(uow_a, root_id)
        assert (research.status, purchase.status) == (S.COMPLETED, S.PENDING)
        (asked,) = await notices(uow_a, ApprovalNeeded)
        assert asked.task_id == purchase.id
    finally:
        await service_a.close(5)
        await uow_a.dispose()

    # --- process B: a new engine and service on the same database
    clock.advance(3600)
    recorder_b = Recorder()
    uow_b = SqlUnitOfWorkFactory(create_engine(database_url), clock)
    service_b = make_service(uow_b, clock, agent_registry(recorder_b))
    try:
        outcome = await service_b.decide(asked.approval_id, "U1", Decision.APPROVE)
        assert outcome.result is DecisionResult.DECIDED
        assert outcome.resume_root == root_id
        await service_b.advance(root_id)
        await service_b.idle()

        done = await task(uow_b, purchase.id)
        assert done.status is S.COMPLETED
        assert done.result is not None
        assert done.result.data["purchase_order"]["amount_cents"] == 10000
        assert [e.amount_cents for e in await ledger(uow_b, purchase.id)] == [10000]
        root = await task(uow_b, root_id)
        assert root.status is S.COMPLETED
        (finished,) = await notices(uow_b, RequestFinished)
        assert (finished.task_id, finished.status, finished.completed) == (root_id, "COMPLETED", 2)
        # B ran only what was left: the research finished in A is not repeated
        assert recorder_b.started() == [purchase.id]
        assert recorder_a.started() == [research.id]
        async with uow_b() as uow:
            decided = await uow.approvals.get(asked.approval_id)
        assert decided is not None and decided.status is ApprovalStatus.APPROVED
    finally:
        await service_b.close(5)
        await uow_b.dispose()


async def test_resume_unfinished_after_restart_finishes_what_was_running(
    database_url: str, clock: FakeClock
) -> None:
    """A request accepted by A but never advanced is finished by B on start-up."""
    await upgrade(database_url)
    uow_a = SqlUnitOfWorkFactory(create_engine(database_url), clock)
    service_a = make_service(uow_a, clock, agent_registry(Recorder()))
    try:
        submission = await submit(service_a, "research laptops and draft email to bob@example.com")
        assert submission.root is not None
        root_id = submission.root.id
    finally:
        await uow_a.dispose()

    recorder_b = Recorder()
    uow_b = SqlUnitOfWorkFactory(create_engine(database_url), clock)
    service_b = make_service(uow_b, clock, agent_registry(recorder_b))
    try:
        assert await service_b.resume_unfinished() >= 1
        await service_b.idle()
        assert (await task(uow_b, root_id)).status is S.COMPLETED
        assert len(recorder_b.started()) == 2
    finally:
        await service_b.close(5)
        await uow_b.dispose()
