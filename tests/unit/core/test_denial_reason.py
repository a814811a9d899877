"""A denial's reason reaches the requester and the audit log; the approval message
keeps every detail after the decision."""

from __future__ import annotations

from core.approvals import Decision, DecisionResult
from core.notices import ApprovalDecided, ApprovalNeeded, TaskRejected
from core.states import TaskStatus
from storage.uow import SqlUnitOfWorkFactory
from tests.fakes import FakeClock
from tests.unit.core.helpers import Recorder, agent_registry, make_service, notices, task
from tests.unit.core.test_approvals import BOSSES, _deliver_approval_message, _pending_purchase

WORDS = "buy 2 monitors for the new hires, need them by Friday for $300"


async def test_the_reason_reaches_the_requester_and_the_audit(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    service = make_service(uow_factory, clock, agent_registry(Recorder()), BOSSES)
    purchase, pending = await _pending_purchase(service, WORDS)
    (asked, *_) = await notices(uow_factory, ApprovalNeeded)
    assert (asked.item, asked.quantity, asked.request_text) == ("monitors", 2, WORDS)
    assert asked.limit_cents == BOSSES.monthly_budget_cents
    assert asked.remaining_cents == BOSSES.monthly_budget_cents - 30000
    assert asked.expires_at == int(pending.expires_at.timestamp())

    await _deliver_approval_message(uow_factory, clock)  # a copy in each approver's DM
    outcome = await service.decide(pending.id, "UBOSS", Decision.DENY, reason="We have spares")
    assert outcome.result is DecisionResult.DECIDED
    stored = await task(uow_factory, purchase.id)
    assert stored.status is TaskStatus.REJECTED
    assert stored.error == "Denied by UBOSS: We have spares"
    (told,) = await notices(uow_factory, TaskRejected)
    assert (told.decided_by, told.reason) == ("UBOSS", "We have spares")
    async with uow_factory() as u:
        entries = [e for e in await u.audit.for_task(purchase.id) if e.action == "approval_denied"]
    assert [e.detail.get("reason") for e in entries] == ["We have spares"]
    # each copy of the approval message keeps the request's details and shows the reason
    copies = [n for n in await notices(uow_factory, ApprovalDecided) if n.message_ts]
    assert sorted(c.destination.channel for c in copies) == ["DUBOSS", "DUCFO"]
    for copy in copies:
        assert (copy.reason, copy.item, copy.request_text) == ("We have spares", "monitors", WORDS)
        assert copy.limit_cents == BOSSES.monthly_budget_cents and copy.decided_at > 0
