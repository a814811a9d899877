"""Human decisions: who may decide, what a decision does, and that there is only one."""

from __future__ import annotations

import asyncio

import pytest

from core.approvals import Decision, DecisionResult
from core.clock import FakeClock
from core.notices import (
    ApprovalDecided,
    ApprovalNeeded,
    RequestFinished,
    TaskCancelled,
    TaskRejected,
)
from core.outbox import OutboxDispatcher
from core.policy import Policy
from core.records import Approval, Task
from core.service import TaskService
from core.states import ApprovalStatus, TaskStatus
from storage.uow import SqlUnitOfWorkFactory
from tests.core.helpers import (
    CHANNEL,
    Recorder,
    agent_registry,
    approval,
    approval_for,
    budget,
    children,
    ledger,
    make_service,
    notices,
    outbox,
    submit,
    submit_and_advance,
    task,
)

S = TaskStatus
BOSSES = Policy(approvers=("UBOSS", "UCFO"))


async def _pending_purchase(
    service: TaskService, text: str = "buy 2 monitors for $300"
) -> tuple[Task, Approval]:
    purchase = await submit_and_advance(service, text)
    pending = await approval_for(service.uow, purchase.id)
    assert pending is not None and pending.status is ApprovalStatus.PENDING
    return purchase, pending


async def _audit_actions(uow: SqlUnitOfWorkFactory, task_id: int) -> list[str]:
    async with uow() as u:
        return [e.action for e in await u.audit.for_task(task_id)]


async def test_approvers_come_from_the_policy(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    service = make_service(uow_factory, clock, agent_registry(Recorder()), BOSSES)
    _, pending = await _pending_purchase(service)
    assert pending.approvers == ("UBOSS", "UCFO")
    (asked,) = await notices(uow_factory, ApprovalNeeded)
    assert asked.approvers == ("UBOSS", "UCFO")


async def test_wrong_approver_is_refused_and_nothing_changes(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    service = make_service(uow_factory, clock, agent_registry(Recorder()), BOSSES)
    purchase, pending = await _pending_purchase(service)
    outbox_before = len(await outbox(uow_factory))

    for user in ("U1", "UINTRUDER"):  # not even the requester, when approvers are configured
        outcome = await service.decide(pending.id, user, Decision.APPROVE)
        await service.background.idle()
        assert outcome.result is DecisionResult.NOT_ALLOWED
        assert "approvers" in outcome.message

    after = await approval(uow_factory, pending.id)
    assert (after.status, after.decided_by) == (ApprovalStatus.PENDING, None)
    assert (await task(uow_factory, purchase.id)).status is S.PENDING
    assert len(await outbox(uow_factory)) == outbox_before
    assert await ledger(uow_factory, purchase.id) == []


async def test_unknown_approval_is_reported(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    service = make_service(uow_factory, clock, agent_registry(Recorder()), BOSSES)
    outcome = await service.decide(424242, "UBOSS", Decision.APPROVE)
    assert outcome.result is DecisionResult.NOT_FOUND
    assert "can't find" in outcome.message


async def test_approve_resumes_the_task_which_completes_with_a_ledger_transaction(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    recorder = Recorder()
    service = make_service(uow_factory, clock, agent_registry(recorder), BOSSES)
    purchase, pending = await _pending_purchase(service)
    assert recorder.started() == []

    outcome = await service.decide(pending.id, "UBOSS", Decision.APPROVE)
    assert outcome.result is DecisionResult.DECIDED
    assert outcome.resume_root == purchase.id
    assert outcome.message == "Approved."
    await service.background.idle()  # decide() scheduled the advance

    done = await task(uow_factory, purchase.id)
    assert done.status is S.COMPLETED
    assert recorder.started() == [purchase.id]
    assert done.result is not None
    assert done.result.data["purchase_order"]["number"] == f"PO-{purchase.id}"
    (entry,) = await ledger(uow_factory, purchase.id)
    assert (entry.amount_cents, entry.currency, entry.requester) == (30000, "USD", "U1")
    decided = await approval(uow_factory, pending.id)
    assert (decided.status, decided.decided_by) == (ApprovalStatus.APPROVED, "UBOSS")
    (note,) = await notices(uow_factory, ApprovalDecided)
    assert (note.approval_id, note.outcome, note.decided_by) == (pending.id, "approved", "UBOSS")
    assert "approval_approved" in await _audit_actions(uow_factory, purchase.id)


async def test_approving_one_step_of_a_request_completes_the_request(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    service = make_service(uow_factory, clock, agent_registry(Recorder()))
    root = await submit_and_advance(service, "research monitors then buy 2 monitors for $300")
    _research, purchase = await children(uow_factory, root.id)
    pending = await approval_for(uow_factory, purchase.id)
    assert pending is not None

    outcome = await service.decide(pending.id, "U1", Decision.APPROVE)  # self-approval
    assert outcome.resume_root == root.id
    await service.background.idle()

    assert (await task(uow_factory, purchase.id)).status is S.COMPLETED
    assert (await task(uow_factory, root.id)).status is S.COMPLETED
    (finished,) = await notices(uow_factory, RequestFinished)
    assert (finished.status, finished.completed, finished.total) == ("COMPLETED", 2, 2)


async def test_deny_rejects_the_task(uow_factory: SqlUnitOfWorkFactory, clock: FakeClock) -> None:
    recorder = Recorder()
    service = make_service(uow_factory, clock, agent_registry(recorder), BOSSES)
    purchase, pending = await _pending_purchase(service)

    outcome = await service.decide(pending.id, "UCFO", Decision.DENY)
    await service.background.idle()

    assert outcome.result is DecisionResult.DECIDED
    assert outcome.message == "Denied."
    rejected = await task(uow_factory, purchase.id)
    assert rejected.status is S.REJECTED
    assert rejected.error is not None and "UCFO" in rejected.error
    assert recorder.started() == []
    assert await ledger(uow_factory, purchase.id) == []
    (note,) = await notices(uow_factory, TaskRejected)
    assert (note.task_id, note.decided_by) == (purchase.id, "UCFO")
    (decided,) = await notices(uow_factory, ApprovalDecided)
    assert (decided.outcome, decided.decided_by) == ("denied", "UCFO")
    assert (await budget(uow_factory, clock, BOSSES)).held_cents == 0


async def test_denied_step_stops_the_rest_of_the_request(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    service = make_service(uow_factory, clock, agent_registry(Recorder()))
    root = await submit_and_advance(service, "research monitors then buy 2 monitors for $300")
    _research, purchase = await children(uow_factory, root.id)
    pending = await approval_for(uow_factory, purchase.id)
    assert pending is not None

    await service.decide(pending.id, "U1", Decision.DENY)
    await service.background.idle()

    assert (await task(uow_factory, purchase.id)).status is S.REJECTED
    finished_root = await task(uow_factory, root.id)
    assert finished_root.status is S.FAILED
    assert finished_root.error is not None and "Denied by U1" in finished_root.error


async def test_second_decision_changes_nothing_and_names_the_first_decider(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    service = make_service(uow_factory, clock, agent_registry(Recorder()), BOSSES)
    purchase, pending = await _pending_purchase(service)
    await service.decide(pending.id, "UBOSS", Decision.APPROVE)
    await service.background.idle()
    outbox_before = len(await outbox(uow_factory))

    for user, decision in (("UCFO", Decision.DENY), ("UBOSS", Decision.APPROVE)):
        late = await service.decide(pending.id, user, decision)
        await service.background.idle()
        assert late.result is DecisionResult.ALREADY_DECIDED
        assert late.approval is not None and late.approval.decided_by == "UBOSS"
        assert late.message == "This request was already approved by UBOSS."

    assert (await task(uow_factory, purchase.id)).status is S.COMPLETED
    assert (await approval(uow_factory, pending.id)).status is ApprovalStatus.APPROVED
    assert len(await outbox(uow_factory)) == outbox_before
    assert len(await ledger(uow_factory, purchase.id)) == 1


async def test_two_approvers_at_once_give_exactly_one_outcome(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    recorder = Recorder()
    service = make_service(uow_factory, clock, agent_registry(recorder), BOSSES)
    rounds = []
    for i in range(6):
        purchase, pending = await _pending_purchase(service, f"buy {i + 1} mice for $10")
        rounds.append((purchase, pending))

    for purchase, pending in rounds:
        approve, deny = await asyncio.gather(
            service.decide(pending.id, "UBOSS", Decision.APPROVE),
            service.decide(pending.id, "UCFO", Decision.DENY),
        )
        await service.background.idle()

        results = sorted([approve.result.value, deny.result.value])
        assert results == ["already_decided", "decided"], (approve, deny)
        winner, loser = (
            (approve, deny) if approve.result is DecisionResult.DECIDED else (deny, approve)
        )
        final = await approval(uow_factory, pending.id)
        assert winner.approval is not None and loser.approval is not None
        assert final.status is winner.approval.status
        assert final.decided_by == winner.approval.decided_by == loser.approval.decided_by
        stored = await task(uow_factory, purchase.id)
        charges = await ledger(uow_factory, purchase.id)
        if final.status is ApprovalStatus.APPROVED:
            assert (stored.status, len(charges)) == (S.COMPLETED, 1)
        else:
            assert final.status is ApprovalStatus.DENIED
            assert (stored.status, charges) == (S.REJECTED, [])
        decided_notes = [
            n for n in await notices(uow_factory, ApprovalDecided) if n.approval_id == pending.id
        ]
        assert len(decided_notes) == 1
        actions = await _audit_actions(uow_factory, purchase.id)
        assert len([a for a in actions if a.startswith("approval_")]) == 2  # requested + one

    status = await budget(uow_factory, clock, BOSSES)
    assert status.held_cents == 0


async def test_two_workers_gating_one_purchase_ask_once(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, request: pytest.FixtureRequest
) -> None:
    """Two processes advancing the same request at once must ask for approval once.

    On PostgreSQL both workers can find no approval and both try to insert one; the
    insert is insert-if-absent, so the second worker just waits (no IntegrityError).
    """
    replica_a = make_service(uow_factory, clock, agent_registry(Recorder()), BOSSES)
    replica_b = make_service(uow_factory, clock, agent_registry(Recorder()), BOSSES)
    for i in range(5):
        submission = await submit(replica_a, f"buy {i + 1} chairs for $10")
        assert submission.root is not None
        await asyncio.gather(
            replica_a.orchestrator.advance(submission.root.id),
            replica_b.orchestrator.advance(submission.root.id),
        )
        asked = [
            n for n in await notices(uow_factory, ApprovalNeeded) if n.task_id == submission.root.id
        ]
        assert len(asked) == 1
    status = await budget(uow_factory, clock, BOSSES)
    assert status.held_cents == sum(1000 for _ in range(5))


async def _deliver_approval_message(
    uow: SqlUnitOfWorkFactory, clock: FakeClock, ts: str = "1700000001.000200"
) -> None:
    class Slackish:
        async def deliver(self, notice: object, attempt: object = None) -> str:
            return ts

    await OutboxDispatcher(uow, Slackish(), clock).drain()


async def test_click_from_another_message_is_refused(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    service = make_service(uow_factory, clock, agent_registry(Recorder()), BOSSES)
    purchase, pending = await _pending_purchase(service)
    await _deliver_approval_message(uow_factory, clock, "1700000001.000200")
    assert (await approval(uow_factory, pending.id)).message_ts == "1700000001.000200"

    for channel, ts in ((CHANNEL, "1700000009.000900"), ("C_OTHER", "1700000001.000200")):
        outcome = await service.decide(
            pending.id, "UBOSS", Decision.APPROVE, channel=channel, message_ts=ts
        )
        await service.background.idle()
        assert outcome.result is DecisionResult.WRONG_MESSAGE
        assert "doesn't belong" in outcome.message
    assert (await approval(uow_factory, pending.id)).status is ApprovalStatus.PENDING
    assert (await task(uow_factory, purchase.id)).status is S.PENDING

    ok = await service.decide(
        pending.id, "UBOSS", Decision.APPROVE, channel=CHANNEL, message_ts="1700000001.000200"
    )
    await service.background.idle()
    assert ok.result is DecisionResult.DECIDED
    assert (await task(uow_factory, purchase.id)).status is S.COMPLETED


async def test_click_before_the_message_was_posted_is_refused(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    service = make_service(uow_factory, clock, agent_registry(Recorder()), BOSSES)
    _purchase, pending = await _pending_purchase(service)
    outcome = await service.decide(
        pending.id, "UBOSS", Decision.APPROVE, channel=CHANNEL, message_ts="1700000001.000200"
    )
    assert outcome.result is DecisionResult.WRONG_MESSAGE


@pytest.mark.parametrize("cancel_what", ["purchase", "request"])
async def test_cancelling_a_pending_purchase_releases_the_hold_and_closes_the_approval(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, cancel_what: str
) -> None:
    service = make_service(uow_factory, clock, agent_registry(Recorder()), BOSSES)
    if cancel_what == "purchase":
        purchase, pending = await _pending_purchase(service)
        target = purchase.id
    else:
        root = await submit_and_advance(service, "research monitors then buy 2 monitors for $300")
        _research, purchase = await children(uow_factory, root.id)
        found = await approval_for(uow_factory, purchase.id)
        assert found is not None
        pending, target = found, root.id
    assert (await budget(uow_factory, clock, BOSSES)).held_cents == 30000

    result = await service.cancellation.cancel("U1", target)
    await service.background.idle()

    assert result.cancelled, result.message
    cancelled = await task(uow_factory, purchase.id)
    assert cancelled.status is S.CANCELLED
    closed = await approval(uow_factory, pending.id)
    assert (closed.status, closed.decided_by) == (ApprovalStatus.CANCELLED, "U1")
    assert (await budget(uow_factory, clock, BOSSES)).held_cents == 0
    (note,) = await notices(uow_factory, ApprovalDecided)
    assert (note.approval_id, note.outcome) == (pending.id, "cancelled")
    assert (await task(uow_factory, target)).status is S.CANCELLED

    # a click that arrives afterwards changes nothing
    late = await service.decide(pending.id, "UBOSS", Decision.APPROVE)
    await service.background.idle()
    assert late.result is DecisionResult.ALREADY_DECIDED
    assert (await task(uow_factory, purchase.id)).status is S.CANCELLED
    assert await ledger(uow_factory, purchase.id) == []


async def test_only_the_requester_may_cancel(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    service = make_service(uow_factory, clock, agent_registry(Recorder()), BOSSES)
    purchase, pending = await _pending_purchase(service)
    result = await service.cancellation.cancel("UBOSS", purchase.id)
    assert not result.cancelled
    assert (await task(uow_factory, purchase.id)).status is S.PENDING
    assert (await approval(uow_factory, pending.id)).status is ApprovalStatus.PENDING


async def test_cancel_racing_a_worker_that_claims_the_task_does_not_report_success(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    """An approved purchase is claimed by a worker while the requester cancels it.

    The claim's transaction is still open when the cancel reads the task (so on
    PostgreSQL the cancel sees PENDING), and commits while the cancel waits on the
    row: the cancel loses the conditional UPDATE and must say so, not "Cancelled".
    """
    from core.transitions import transition

    service = make_service(uow_factory, clock, agent_registry(Recorder()), BOSSES)
    purchase, pending = await _pending_purchase(service)
    decided = await service.approvals.decide(pending.id, "UBOSS", Decision.APPROVE)
    assert decided.result is DecisionResult.DECIDED  # approved, not yet run

    async with uow_factory() as u:  # a worker claims the task …
        claimed = await u.tasks.get(purchase.id)
        assert claimed is not None
        assert await transition(u, claimed, S.IN_PROGRESS, actor="worker", clock=clock)
        cancelling = asyncio.create_task(service.cancellation.cancel("U1", purchase.id))
        await asyncio.sleep(0.5)  # … and commits only after the cancel has started
    result = await cancelling

    assert not result.cancelled, result.message
    assert (await task(uow_factory, purchase.id)).status is S.IN_PROGRESS
    assert [n for n in await notices(uow_factory, TaskCancelled)] == []
    assert (await budget(uow_factory, clock, BOSSES)).held_cents == 30000  # still held
