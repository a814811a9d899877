"""Human decisions: who may decide, what a decision does, and that there is only one."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import replace

import pytest

from core.approvals import Decision, DecisionResult
from core.notices import (
    ApprovalAsked,
    ApprovalDecided,
    ApprovalNeeded,
    Destination,
    Notice,
    RequestFinished,
    TaskCancelled,
    TaskFailed,
    TaskRejected,
)
from core.outbox import OutboxDispatcher
from core.policy import Policy
from core.ports import Posted
from core.records import Approval, ApprovalMessage, Task
from core.service import TaskService
from core.states import ApprovalStatus, TaskStatus
from storage.uow import SqlUnitOfWorkFactory
from tests.fakes import FakeClock
from tests.unit.core.helpers import (
    CHANNEL,
    THREAD,
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
#: nobody configured, people approve their own (the console)
SELF = Policy(allow_self_approval=True)


async def _pending_purchase(
    service: TaskService, text: str = "buy 2 monitors for $300"
) -> tuple[Task, Approval]:
    purchase = await submit_and_advance(service, text)
    pending = await approval_for(service.uow_factory, purchase.id)
    assert pending is not None and pending.status is ApprovalStatus.PENDING
    return purchase, pending


def _service(
    uow_factory: SqlUnitOfWorkFactory,
    clock: FakeClock,
    policy: Policy = BOSSES,
    recorder: Recorder | None = None,
) -> TaskService:
    return make_service(uow_factory, clock, agent_registry(recorder or Recorder()), policy)


async def _asking(
    uow_factory: SqlUnitOfWorkFactory,
    clock: FakeClock,
    policy: Policy = BOSSES,
    recorder: Recorder | None = None,
) -> tuple[TaskService, Task, Approval]:
    """A service on `policy` and the purchase it now waits to have approved."""
    service = _service(uow_factory, clock, policy, recorder)
    return (service, *await _pending_purchase(service))


async def _research_then_buy(service: TaskService) -> tuple[Task, Task, Approval]:
    """A two-step request whose research is done and whose purchase awaits approval:
    the request, the purchase step and its pending approval."""
    root = await submit_and_advance(service, "research monitors then buy 2 monitors for $300")
    _research, purchase = await children(service.uow_factory, root.id)
    pending = await approval_for(service.uow_factory, purchase.id)
    assert pending is not None and pending.status is ApprovalStatus.PENDING
    return root, purchase, pending


async def _decided(
    service: TaskService,
    approval_id: int,
    user: str,
    decision: Decision,
    on: tuple[str, str] | None = None,
    external: bool = False,
) -> None:
    """`user`'s decision (clicked `on` the copy in (channel, ts)) counts, and the work it
    lets go on has run."""
    channel, message_ts = on or (None, None)
    outcome = await service.decide(
        approval_id, user, decision, channel=channel, message_ts=message_ts, external=external
    )
    assert outcome.result is DecisionResult.DECIDED, outcome
    await service.idle()


async def _audit_actions(uow_factory: SqlUnitOfWorkFactory, task_id: int) -> list[str]:
    async with uow_factory() as uow:
        return [e.action for e in await uow.audit.for_task(task_id)]


async def test_approvers_come_from_the_policy(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    _, _, pending = await _asking(uow_factory, clock)
    assert pending.approvers == ("UBOSS", "UCFO")
    asked = await notices(uow_factory, ApprovalNeeded)
    # a DM to each approver: the requester's conversation is no place for the buttons
    assert [n.destination for n in asked] == [Destination(user="UBOSS"), Destination(user="UCFO")]
    for notice in asked:
        assert notice.approvers == ("UBOSS", "UCFO") and notice.requester == "U1"
        assert notice.request_text == "buy 2 monitors for $300"
        assert (notice.request_channel, notice.request_thread_ts) == (CHANNEL, THREAD)
    (told,) = await notices(uow_factory, ApprovalAsked)
    assert told.destination == Destination(CHANNEL, THREAD)
    assert told.approvers == ("UBOSS", "UCFO") and told.approval_channel is None


async def test_with_an_approval_channel_one_message_goes_there(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    policy = replace(BOSSES, approval_channel="CAPPROVALS")
    service = _service(uow_factory, clock, policy)
    await _pending_purchase(service)
    (asked,) = await notices(uow_factory, ApprovalNeeded)
    assert asked.destination == Destination(channel="CAPPROVALS")
    (told,) = await notices(uow_factory, ApprovalAsked)
    assert told.approval_channel == "CAPPROVALS"


async def test_the_requester_is_never_their_own_approver_while_anyone_else_is(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    policy = Policy(approvers=("U1", "UBOSS"))
    service, purchase, pending = await _asking(uow_factory, clock, policy)  # U1 asks
    assert pending.approvers == ("UBOSS",)
    own = await service.decide(pending.id, "U1", Decision.APPROVE)
    assert own.result is DecisionResult.NOT_ALLOWED and own.own_request
    assert "your own request" in own.message
    assert (await task(uow_factory, purchase.id)).status is S.PENDING


async def test_with_no_approvers_a_purchase_is_refused_naming_the_setting(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    service = _service(uow_factory, clock, Policy())
    purchase = await submit_and_advance(service, "buy 2 monitors for $300")
    refused = await task(uow_factory, purchase.id)
    assert refused.status is S.FAILED
    assert refused.error is not None and "TASKBOT_APPROVERS" in refused.error
    assert "TASKBOT_ALLOW_SELF_APPROVAL" in refused.error
    assert await approval_for(uow_factory, purchase.id) is None
    assert (await budget(uow_factory, clock, Policy())).held_cents == 0
    (failed,) = await notices(uow_factory, TaskFailed)
    assert "TASKBOT_APPROVERS" in failed.error


async def test_rights_are_checked_against_the_configuration_at_click_time(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    before = _service(uow_factory, clock, BOSSES)
    purchase, pending = await _pending_purchase(before)
    # restarted with UCFO removed and UNEW added
    after = _service(uow_factory, clock, Policy(approvers=("UBOSS", "UNEW")))
    removed = await after.decide(pending.id, "UCFO", Decision.APPROVE)
    assert removed.result is DecisionResult.NOT_ALLOWED
    assert removed.approvers == ("UBOSS", "UNEW")
    assert (await approval(uow_factory, pending.id)).status is ApprovalStatus.PENDING
    await _decided(after, pending.id, "UNEW", Decision.DENY)
    assert (await task(uow_factory, purchase.id)).status is S.REJECTED


async def test_another_organisation_counts_only_when_configured_by_id(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    service, purchase, pending = await _asking(uow_factory, clock, Policy(allow_self_approval=True))
    assert pending.approvers == ("U1",)  # self-approval allowed, nobody else configured
    foreign = await service.decide(pending.id, "U1", Decision.APPROVE, external=True)
    assert foreign.result is DecisionResult.NOT_ALLOWED
    configured = _service(uow_factory, clock, Policy(approvers=("UEXT",)))
    await _decided(configured, pending.id, "UEXT", Decision.APPROVE, external=True)
    assert (await task(uow_factory, purchase.id)).status is S.COMPLETED


async def test_an_expired_approval_is_refused_at_click_time(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    """Before the expiry job runs: the click itself expires it."""
    policy = replace(BOSSES, approval_ttl_seconds=3600)
    service, purchase, pending = await _asking(uow_factory, clock, policy)
    await _deliver_approval_message(uow_factory, clock)
    clock.advance(3601)
    outcome = await service.decide(pending.id, "UBOSS", Decision.APPROVE)
    await service.idle()
    assert outcome.result is DecisionResult.EXPIRED
    assert "expired" in outcome.message
    assert (await approval(uow_factory, pending.id)).status is ApprovalStatus.EXPIRED
    assert (await task(uow_factory, purchase.id)).status is S.CANCELLED
    assert await ledger(uow_factory, purchase.id) == []
    assert (await budget(uow_factory, clock, policy)).held_cents == 0
    replaced = await notices(uow_factory, ApprovalDecided)
    assert {(n.destination.channel, n.outcome) for n in replaced} == {
        ("DUBOSS", "expired"),
        ("DUCFO", "expired"),
    }


async def test_wrong_approver_is_refused_and_nothing_changes(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    service, purchase, pending = await _asking(uow_factory, clock)
    outbox_before = len(await outbox(uow_factory))

    for user in ("U1", "UINTRUDER"):  # not even the requester, when approvers are configured
        outcome = await service.decide(pending.id, user, Decision.APPROVE)
        await service.idle()
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
    service = _service(uow_factory, clock, BOSSES)
    outcome = await service.decide(424242, "UBOSS", Decision.APPROVE)
    assert outcome.result is DecisionResult.NOT_FOUND
    assert "can't find" in outcome.message


async def test_approve_resumes_the_task_which_completes_with_a_ledger_transaction(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    recorder = Recorder()
    service, purchase, pending = await _asking(uow_factory, clock, recorder=recorder)
    assert recorder.started() == []

    outcome = await service.decide(pending.id, "UBOSS", Decision.APPROVE)
    assert outcome.result is DecisionResult.DECIDED
    assert outcome.resume_root == purchase.id
    assert outcome.message == "Approved."
    await service.idle()  # decide() scheduled the advance

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
    service = _service(uow_factory, clock, SELF)
    root, purchase, pending = await _research_then_buy(service)

    outcome = await service.decide(pending.id, "U1", Decision.APPROVE)  # self-approval
    assert outcome.resume_root == root.id
    await service.idle()

    assert (await task(uow_factory, purchase.id)).status is S.COMPLETED
    assert (await task(uow_factory, root.id)).status is S.COMPLETED
    (finished,) = await notices(uow_factory, RequestFinished)
    assert (finished.status, finished.completed, finished.total) == ("COMPLETED", 2, 2)


async def test_deny_rejects_the_task(uow_factory: SqlUnitOfWorkFactory, clock: FakeClock) -> None:
    recorder = Recorder()
    service, purchase, pending = await _asking(uow_factory, clock, recorder=recorder)
    await _deliver_approval_message(uow_factory, clock)

    outcome = await service.decide(pending.id, "UCFO", Decision.DENY)
    await service.idle()

    assert outcome.result is DecisionResult.DECIDED
    assert outcome.message == "Denied."
    rejected = await task(uow_factory, purchase.id)
    assert rejected.status is S.REJECTED
    assert rejected.error is not None and "UCFO" in rejected.error
    assert recorder.started() == []
    assert await ledger(uow_factory, purchase.id) == []
    (note,) = await notices(uow_factory, TaskRejected)
    assert (note.task_id, note.decided_by) == (purchase.id, "UCFO")
    replaced = await notices(uow_factory, ApprovalDecided)  # each approver's copy
    assert sorted(n.destination.channel for n in replaced) == ["DUBOSS", "DUCFO"]
    assert {(n.outcome, n.decided_by) for n in replaced} == {("denied", "UCFO")}
    assert (await budget(uow_factory, clock, BOSSES)).held_cents == 0


async def test_denied_step_stops_the_rest_of_the_request(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    service = _service(uow_factory, clock, SELF)
    root, purchase, pending = await _research_then_buy(service)

    await service.decide(pending.id, "U1", Decision.DENY)
    await service.idle()

    assert (await task(uow_factory, purchase.id)).status is S.REJECTED
    finished_root = await task(uow_factory, root.id)
    assert finished_root.status is S.FAILED
    assert finished_root.error is not None and "Denied by U1" in finished_root.error


async def test_second_decision_changes_nothing_and_names_the_first_decider(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    service, purchase, pending = await _asking(uow_factory, clock)
    await service.decide(pending.id, "UBOSS", Decision.APPROVE)
    await service.idle()
    outbox_before = len(await outbox(uow_factory))

    for user, decision in (("UCFO", Decision.DENY), ("UBOSS", Decision.APPROVE)):
        late = await service.decide(pending.id, user, decision)
        await service.idle()
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
    await _deliver_approval_message(uow_factory, clock, None)

    for purchase, pending in rounds:
        approve, deny = await asyncio.gather(
            service.decide(pending.id, "UBOSS", Decision.APPROVE),
            service.decide(pending.id, "UCFO", Decision.DENY),
        )
        await service.idle()

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
        every_note = [
            n for n in await notices(uow_factory, ApprovalDecided) if n.approval_id == pending.id
        ]
        decided_notes = [n for n in every_note if not n.reference]
        # each approver's copy replaced once, with the one outcome
        in_place = sorted(n.destination.channel for n in decided_notes if n.message_ts)
        assert in_place == ["DUBOSS", "DUCFO"]
        # once ordered, the purchase order joins the record on each copy
        with_po = sorted(n.destination.channel for n in every_note if n.reference)
        approved = final.status is ApprovalStatus.APPROVED
        assert with_po == (["DUBOSS", "DUCFO"] if approved else [])
        assert {n.outcome for n in decided_notes} == {final.status.value.lower()}
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
    replica_a = _service(uow_factory, clock, BOSSES)
    replica_b = _service(uow_factory, clock, BOSSES)
    for i in range(5):
        submission = await submit(replica_a, f"buy {i + 1} chairs for $10")
        assert submission.root is not None
        await asyncio.gather(
            replica_a.advance(submission.root.id),
            replica_b.advance(submission.root.id),
        )
        asked = [
            n for n in await notices(uow_factory, ApprovalNeeded) if n.task_id == submission.root.id
        ]
        assert sorted(n.destination.user for n in asked) == ["UBOSS", "UCFO"]  # once each
    status = await budget(uow_factory, clock, BOSSES)
    assert status.held_cents == sum(1000 for _ in range(5))


async def _deliver_approval_message(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, ts: str | None = "1700000001.000200"
) -> None:
    """Deliver the outbox as Slack would: a DM per user (D + user id); every message
    gets `ts`, or a ts of its own when None."""
    posted = itertools.count(1)

    class Slackish:
        async def deliver(self, notice: Notice, attempt: object = None) -> Posted:
            where = notice.destination
            return Posted(where.channel or f"D{where.user}", ts or f"1700000100.{next(posted):06d}")

    await OutboxDispatcher(uow_factory, Slackish(), clock).drain()


async def test_every_copy_is_recorded_and_replaced_when_decided(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    service, purchase, pending = await _asking(uow_factory, clock)
    await _deliver_approval_message(uow_factory, clock, "1700000001.000200")
    async with uow_factory() as uow:
        copies = await uow.approvals.messages(pending.id)
    assert sorted(copies, key=lambda c: c.channel) == [
        ApprovalMessage(pending.id, "DUBOSS", "1700000001.000200", "UBOSS"),
        ApprovalMessage(pending.id, "DUCFO", "1700000001.000200", "UCFO"),
    ]
    await _decided(service, pending.id, "UCFO", Decision.APPROVE, ("DUCFO", "1700000001.000200"))
    assert (await task(uow_factory, purchase.id)).status is S.COMPLETED
    every_note = await notices(uow_factory, ApprovalDecided)
    replaced = [n for n in every_note if not n.reference]
    in_place = sorted((n.destination.channel, n.message_ts) for n in replaced if n.message_ts)
    assert in_place == [("DUBOSS", "1700000001.000200"), ("DUCFO", "1700000001.000200")]
    with_po = sorted((n.destination.channel, n.reference) for n in every_note if n.reference)
    assert with_po == [("DUBOSS", f"PO-{purchase.id}"), ("DUCFO", f"PO-{purchase.id}")]
    (told,) = [n for n in replaced if not n.message_ts]  # and the requester's thread
    assert told.destination == Destination(CHANNEL, THREAD)
    assert (told.outcome, told.decided_by) == ("approved", "UCFO")


async def test_a_click_on_a_copy_never_recorded_counts_and_is_replaced_too(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    """Posted just before a crash, its ts never recorded: it is as good as any copy."""
    service, purchase, pending = await _asking(uow_factory, clock)
    await _deliver_approval_message(uow_factory, clock, "1700000002.000200")
    await _decided(service, pending.id, "UBOSS", Decision.APPROVE, ("DUBOSS", "1700000001.000100"))
    assert (await task(uow_factory, purchase.id)).status is S.COMPLETED
    replaced = {
        (n.destination.channel, n.message_ts) for n in await notices(uow_factory, ApprovalDecided)
    }
    assert ("DUBOSS", "1700000001.000100") in replaced  # the pre-crash copy
    assert ("DUBOSS", "1700000002.000200") in replaced


async def test_a_copy_posted_after_the_decision_is_replaced_at_once(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    service, _purchase, pending = await _asking(uow_factory, clock)
    await service.decide(pending.id, "UBOSS", Decision.DENY)  # before any copy was posted
    await service.idle()
    await _deliver_approval_message(uow_factory, clock, "1700000003.000300")
    replaced = await notices(uow_factory, ApprovalDecided)
    assert sorted((n.destination.channel, n.outcome) for n in replaced) == [
        ("DUBOSS", "denied"),
        ("DUCFO", "denied"),
    ]


@pytest.mark.parametrize("cancel_what", ["purchase", "request"])
async def test_cancelling_a_pending_purchase_releases_the_hold_and_closes_the_approval(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, cancel_what: str
) -> None:
    service = _service(uow_factory, clock, BOSSES)
    if cancel_what == "purchase":
        purchase, pending = await _pending_purchase(service)
        target = purchase.id
    else:
        root, purchase, pending = await _research_then_buy(service)
        target = root.id
    assert (await budget(uow_factory, clock, BOSSES)).held_cents == 30000
    await _deliver_approval_message(uow_factory, clock)

    result = await service.cancellation.cancel("U1", target)
    await service.idle()

    assert result.cancelled, result.message
    cancelled = await task(uow_factory, purchase.id)
    assert cancelled.status is S.CANCELLED
    closed = await approval(uow_factory, pending.id)
    assert (closed.status, closed.decided_by) == (ApprovalStatus.CANCELLED, "U1")
    assert (await budget(uow_factory, clock, BOSSES)).held_cents == 0
    replaced = await notices(uow_factory, ApprovalDecided)  # each approver's copy
    assert sorted(n.destination.channel for n in replaced) == ["DUBOSS", "DUCFO"]
    assert {(n.approval_id, n.outcome) for n in replaced} == {(pending.id, "cancelled")}
    assert (await task(uow_factory, target)).status is S.CANCELLED

    # a click that arrives afterwards changes nothing
    late = await service.decide(pending.id, "UBOSS", Decision.APPROVE)
    await service.idle()
    assert late.result is DecisionResult.ALREADY_DECIDED
    assert (await task(uow_factory, purchase.id)).status is S.CANCELLED
    assert await ledger(uow_factory, purchase.id) == []


async def test_only_the_requester_may_cancel(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    service, purchase, pending = await _asking(uow_factory, clock)
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
    from core.states import transition

    service, purchase, pending = await _asking(uow_factory, clock)
    decided = await service.approvals.decide(pending.id, "UBOSS", Decision.APPROVE)
    assert decided.result is DecisionResult.DECIDED  # approved, not yet run

    async with uow_factory() as uow:  # a worker claims the task …
        claimed = await uow.tasks.get(purchase.id)
        assert claimed is not None
        assert await transition(uow, claimed, S.IN_PROGRESS, actor="worker", clock=clock)
        cancelling = asyncio.create_task(service.cancellation.cancel("U1", purchase.id))
        await asyncio.sleep(0.5)  # … and commits only after the cancel has started
    result = await cancelling

    assert not result.cancelled, result.message
    assert (await task(uow_factory, purchase.id)).status is S.IN_PROGRESS
    assert [n for n in await notices(uow_factory, TaskCancelled)] == []
    assert (await budget(uow_factory, clock, BOSSES)).held_cents == 30000  # still held
