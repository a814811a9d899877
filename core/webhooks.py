"""Webhook events: derived from the notices a transaction writes, in that same transaction.

Every path that ends a request (executor, orchestrator, approvals, cancellation,
recovery, expiry jobs) already writes a notice to the outbox. Rather than teach
each of them about webhooks, the emitter runs just before such a transaction
commits, looks at the request's status as it now stands, and adds a signed-later
WebhookEvent to the outbox lane its own sender serves.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Protocol

from core.clock import Clock
from core.notices import (
    ApprovalNeeded,
    Destination,
    Notice,
    RequestFinished,
    TaskCancelled,
    TaskFailed,
    TaskFinished,
    TaskNeedsAttention,
    TaskRejected,
    WebhookEvent,
)
from core.ports import UnitOfWork
from core.states import TaskStatus
from core.task_view import task_view

COMPLETED, FAILED, CANCELLED = "task.completed", "task.failed", "task.cancelled"
APPROVAL_REQUESTED = "approval.requested"
#: an order was placed but its outcome could not be recorded: a person must check it
NEEDS_ATTENTION = "task.needs_attention"

#: a request's final status → its event (a denied request failed: nobody cancelled it)
_ENDINGS = {
    TaskStatus.COMPLETED: COMPLETED,
    TaskStatus.FAILED: FAILED,
    TaskStatus.REJECTED: FAILED,
    TaskStatus.CANCELLED: CANCELLED,
}
_ENDING_NOTICES = (TaskFinished, TaskFailed, TaskRejected, TaskCancelled, RequestFinished)


class WebhookTargets(Protocol):
    async def webhook_url(self, task_id: int) -> str | None: ...


class WebhookUnitOfWork(UnitOfWork, Protocol):
    @property
    def webhooks(self) -> WebhookTargets: ...


class WebhookEmitter:
    def __init__(self, clock: Clock, default_url: str | None = None) -> None:
        self._clock = clock
        self._default_url = default_url

    async def __call__(self, uow: WebhookUnitOfWork, notices: Sequence[Notice]) -> None:
        emitted: set[tuple[int, str]] = set()
        for notice in notices:
            if notice.task_id is None or not isinstance(
                notice, (ApprovalNeeded, TaskNeedsAttention, *_ENDING_NOTICES)
            ):
                continue
            task = await uow.tasks.get(notice.task_id)
            if task is None:
                continue
            root = task if task.is_root else await uow.tasks.get(task.root_id)
            if root is None:
                continue
            if isinstance(notice, ApprovalNeeded):
                event = APPROVAL_REQUESTED
            elif isinstance(notice, TaskNeedsAttention):
                event = NEEDS_ATTENTION
            elif root.status in _ENDINGS:
                event = _ENDINGS[root.status]
            else:
                continue  # one step ended; the request goes on
            if (root.id, event) in emitted:
                continue
            url = await uow.webhooks.webhook_url(root.id) or self._default_url
            if not url:
                continue
            emitted.add((root.id, event))
            now = self._clock.now()
            await uow.outbox.add(
                WebhookEvent(
                    # one lane per request: its events arrive in order, and a dead
                    # receiver of one request holds up no other
                    destination=Destination(channel=f"webhook:{root.id}"),
                    task_id=root.id,
                    url=url,
                    event_id=f"msg_{uuid.uuid4().hex}",
                    event_type=event,
                    timestamp=int(now.timestamp()),
                    data=await task_view(uow, root),
                ),
                now,
            )
