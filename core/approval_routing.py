"""Where an approval's messages go: to the approvers (a DM each, or one shared channel),
never only to the requester's conversation, which approvers may not be able to see."""

from __future__ import annotations

from core.clock import Clock
from core.notices import ApprovalAsked, ApprovalDecided, ApprovalNeeded, Destination, Notice
from core.policy import Policy
from core.ports import UnitOfWork
from core.records import Approval, ApprovalMessage, Task
from core.states import ApprovalStatus

OUTCOME = {
    ApprovalStatus.APPROVED: "approved",
    ApprovalStatus.DENIED: "denied",
    ApprovalStatus.EXPIRED: "expired",
    ApprovalStatus.CANCELLED: "cancelled",
}


def approver_destinations(policy: Policy, approvers: tuple[str, ...]) -> list[Destination]:
    if policy.approval_channel:
        return [Destination(channel=policy.approval_channel)]
    return [Destination(user=a) for a in approvers]


def approval_notices(
    policy: Policy, task: Task, approval: Approval, request_text: str, remaining_cents: int
) -> list[Notice]:
    """One decidable message per approver destination, and a word in the requester's thread."""
    notices: list[Notice] = [
        ApprovalAsked(
            destination=Destination(task.conversation.channel, task.conversation.thread_ts),
            task_id=task.id,
            approval_id=approval.id,
            title=task.title,
            amount_cents=approval.amount_cents,
            currency=approval.currency,
            approvers=approval.approvers,
            approval_channel=policy.approval_channel,
        )
    ]
    for destination in approver_destinations(policy, approval.approvers):
        notices.append(
            ApprovalNeeded(
                destination=destination,
                task_id=task.id,
                approval_id=approval.id,
                requester=task.requester,
                title=task.title,
                amount_cents=approval.amount_cents,
                currency=approval.currency,
                approvers=approval.approvers,
                remaining_cents=remaining_cents,
                request_text=request_text,
                request_channel=task.conversation.channel,
                request_thread_ts=task.conversation.thread_ts,
            )
        )
    return notices


def copy_decided(approval: Approval, title: str, copy: ApprovalMessage) -> ApprovalDecided:
    """Replaces one copy of the approval message in place: buttons gone, outcome shown."""
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
    )


async def record_copy(uow: UnitOfWork, clock: Clock, copy: ApprovalMessage) -> None:
    """Remember a posted copy. One posted after the approval ended (its post was queued
    or in flight at the decision) is replaced at once, so no live buttons are left."""
    if not await uow.approvals.add_message(copy, clock.now()):
        return
    approval = await uow.approvals.get(copy.approval_id)
    if approval is None or approval.status is ApprovalStatus.PENDING:
        return
    task = await uow.tasks.get(approval.task_id)
    title = task.title if task is not None else f"task #{approval.task_id}"
    await uow.outbox.add(copy_decided(approval, title, copy), clock.now())
