"""The one living status message of a request: snapshots written to the outbox.

Every change of a request (accepted, a step finished, waiting for approval,
decided, cancelled, done) writes a snapshot in the same transaction as the
change. A newer snapshot supersedes the older undelivered ones, so Slack sees
at most one post and one update per change that reaches it.

Work that finishes within the grace period needs no status message at all:
snapshots of running work are due only ``grace`` seconds after the request
was made, and a final snapshot with no status message posted yet is dropped
at delivery (the result is the answer).
"""

from __future__ import annotations

from datetime import timedelta

from core.clock import Clock
from core.notices import RequestStatus, StepState, destination_of
from core.ports import UnitOfWork
from core.records import GRAPH_AGENT, Task
from core.states import ApprovalStatus, TaskStatus

#: seconds of work that need no status message (the result answers quickly enough)
DEFAULT_GRACE_SECONDS = 3.0

#: a step waiting for someone's decision (its task is still PENDING)
WAITING = "WAITING"


async def write_status(
    uow: UnitOfWork,
    clock: Clock,
    task: Task,
    *,
    grace: float = DEFAULT_GRACE_SECONDS,
    maybe_asked: bool = True,
) -> bool:
    """Write a snapshot of the request `task` belongs to; False when it needs no status
    message (a single step that never waits for anyone). `maybe_asked=False`: the
    caller knows no approval was ever asked for `task` (its agent never asks)."""
    if (
        task.is_root
        and task.agent != GRAPH_AGENT
        and (not maybe_asked or await uow.approvals.for_task(task.id) is None)
    ):
        return False  # a one-step request (no children) that no one was asked to approve
    root = await uow.tasks.get(task.id if task.is_root else task.root_id)
    if root is None:
        return False
    children = await uow.tasks.children(root.id)
    steps = [await _step(uow, t) for t in children or [root]]
    waits = any(s.status == WAITING for s in steps)
    if not children and not waits and await uow.approvals.for_task(root.id) is None:
        return False
    status = root.status.value
    if not root.status.terminal and waits:
        status = WAITING
    snapshot = RequestStatus(
        destination=destination_of(root),
        task_id=root.id,
        requester=root.requester,
        title=root.title,
        outline=str(root.params.get("outline") or ""),
        status=status,
        steps=tuple(steps),
        amount_cents=sum(t.cost_cents for t in children or [root]),
        currency=root.currency,
    )
    now = clock.now()
    due = now if snapshot.final or waits else max(now, root.created_at + timedelta(seconds=grace))
    await uow.outbox.supersede(snapshot.lane, now)
    await uow.outbox.add(snapshot, due)
    return True


async def _step(uow: UnitOfWork, task: Task) -> StepState:
    approval = await uow.approvals.for_task(task.id)
    approved_by = (
        approval.decided_by
        if approval is not None and approval.status is ApprovalStatus.APPROVED
        else None
    )
    if task.status is not TaskStatus.PENDING:
        return StepState(task.title, task.status.value, approved_by=approved_by)
    if approval is not None and approval.status is ApprovalStatus.PENDING:
        return StepState(task.title, WAITING, tuple(approval.approvers))
    return StepState(task.title, task.status.value, approved_by=approved_by)
