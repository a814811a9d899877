"""Where an approval's messages go: to the approvers (a DM each, or one shared channel),
never only to the requester's conversation, which approvers may not be able to see."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from core.clock import Clock
from core.notices import (
    ApprovalAsked,
    ApprovalDecided,
    ApprovalNeeded,
    Destination,
    Notice,
    TaskNeedsAttention,
)
from core.policy import Policy
from core.ports import UnitOfWork
from core.records import Approval, ApprovalMessage, BudgetStatus, Task
from core.states import ApprovalStatus

OUTCOME = {
    ApprovalStatus.APPROVED: "approved",
    ApprovalStatus.DENIED: "denied",
    ApprovalStatus.EXPIRED: "expired",
    ApprovalStatus.CANCELLED: "cancelled",
}


def approver_destinations(policy: Policy, approvers: tuple[str, ...]) -> list[Destination]:
    return destinations_for(policy.approval_channel, approvers)


def destinations_for(channel: str | None, approvers: tuple[str, ...]) -> list[Destination]:
    if channel:
        return [Destination(channel=channel)]
    return [Destination(user=a) for a in approvers]


def attention_notices(
    task: Task,
    thread: Destination,
    reference: str,
    detail: str,
    approvers: tuple[str, ...],
    approval_channel: str | None,
) -> list[Notice]:
    """A purchase whose outcome needs a person: told in the requester's thread, and
    where the approvers can act (they may not see that thread, e.g. a DM)."""

    def copy(destination: Destination, for_approvers: bool) -> TaskNeedsAttention:
        return TaskNeedsAttention(
            destination=destination,
            task_id=task.id,
            title=task.title,
            reference=reference,
            detail=detail,
            approvers=approvers,
            requester=task.requester,
            for_approvers=for_approvers,
        )

    notices: list[Notice] = [copy(thread, False)]
    notices += [copy(d, True) for d in destinations_for(approval_channel, approvers)]
    return notices


async def request_words(uow: UnitOfWork, task: Task) -> str:
    """The request as the requester typed it (their reason included)."""
    root = task if task.root_id == task.id else await uow.tasks.get(task.root_id)
    params = (root or task).params
    return str(params.get("text") or task.params.get("request") or task.title)


def unix(at: datetime) -> int:
    """Seconds since the epoch; a naive time from storage is UTC."""
    return int((at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp())


def approval_facts(
    task: Task, approval: Approval, request_text: str, budget: BudgetStatus | None
) -> dict[str, Any]:
    """What an approver needs to decide alone; kept on the message after the decision."""
    quantity = task.params.get("quantity")
    return {
        "requester": task.requester,
        "request_text": request_text,
        "request_channel": task.conversation.channel,
        "request_thread_ts": task.conversation.thread_ts,
        "item": str(task.params.get("item") or ""),
        "quantity": quantity if isinstance(quantity, int) and quantity > 0 else 1,
        "remaining_cents": budget.remaining_cents if budget is not None else 0,
        "limit_cents": budget.limit_cents if budget is not None else 0,
        "expires_at": unix(approval.expires_at),
    }


def approval_notices(
    policy: Policy, task: Task, approval: Approval, request_text: str, budget: BudgetStatus
) -> list[Notice]:
    """One decidable message per approver destination, and a word in the requester's thread."""
    about: dict[str, Any] = {
        "task_id": task.id,
        "approval_id": approval.id,
        "title": task.title,
        "amount_cents": approval.amount_cents,
        "currency": approval.currency,
        "approvers": approval.approvers,
    }
    thread = Destination(task.conversation.channel, task.conversation.thread_ts)
    notices: list[Notice] = [
        ApprovalAsked(destination=thread, approval_channel=policy.approval_channel, **about)
    ]
    facts = approval_facts(task, approval, request_text, budget)
    notices += [
        ApprovalNeeded(destination=d, **about, **facts)
        for d in approver_destinations(policy, approval.approvers)
    ]
    return notices


def copy_decided(
    approval: Approval,
    title: str,
    copy: ApprovalMessage,
    facts: dict[str, Any] | None = None,
    reason: str = "",
) -> ApprovalDecided:
    """Replaces one copy of the approval message in place: the details stay, the
    buttons become the record of the decision."""
    decided_at = approval.decided_at
    return ApprovalDecided(
        destination=Destination(channel=copy.channel),
        task_id=approval.task_id,
        approval_id=approval.id,
        title=title,
        outcome=OUTCOME.get(approval.status, approval.status.value.lower()),
        decided_by=approval.decided_by,
        message_ts=copy.message_ts,
        amount_cents=approval.amount_cents,
        currency=approval.currency,
        decided_at=unix(decided_at) if decided_at is not None else 0,
        reason=reason,
        **(facts or {}),
    )


async def record_reference(
    uow: UnitOfWork, clock: Clock, task: Task, reference: str, budget: BudgetStatus
) -> None:
    """The purchase order, known once the approved step ran, joins the record on every
    copy of the approval message ("✅ Approved by @Pat · 3:04 PM · PO-5")."""
    approval = await uow.approvals.for_task(task.id)
    if approval is None or approval.status is not ApprovalStatus.APPROVED:
        return
    facts = approval_facts(task, approval, await request_words(uow, task), budget)
    for copy in await uow.approvals.messages(approval.id):
        notice = copy_decided(approval, task.title, copy, facts)
        await uow.outbox.add(dataclasses.replace(notice, reference=reference), clock.now())


async def record_copy(uow: UnitOfWork, clock: Clock, copy: ApprovalMessage) -> None:
    """Remember a posted copy. One posted after the approval ended (its post was queued
    or in flight at the decision) is replaced at once, so no live buttons are left."""
    if not await uow.approvals.add_message(copy, clock.now()):
        return
    approval = await uow.approvals.get(copy.approval_id)
    if approval is None or approval.status is ApprovalStatus.PENDING:
        return
    task = await uow.tasks.get(approval.task_id)
    if task is None:
        await uow.outbox.add(copy_decided(approval, "this request", copy), clock.now())
        return
    facts = approval_facts(task, approval, await request_words(uow, task), None)
    await uow.outbox.add(copy_decided(approval, task.title, copy, facts), clock.now())
