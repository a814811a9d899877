"""A task as the HTTP API and webhooks show it: one shape, built in one place."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from core.ports import UnitOfWork
from core.records import AuditEntry, Task
from core.states import TaskStatus

#: status changes as the audit trail names them (the raw change stays in `detail`)
_TRANSITION_ACTIONS = {
    TaskStatus.IN_PROGRESS: "started",
    TaskStatus.COMPLETED: "completed",
    TaskStatus.FAILED: "failed",
    TaskStatus.REJECTED: "rejected",
    TaskStatus.CANCELLED: "cancelled",
}


def amount_string(cents: int) -> str:
    """Integer cents as a decimal string with two places ("0.00", "-3.50")."""
    return str((Decimal(cents) / 100).quantize(Decimal("0.01")))


def iso(at: datetime | None) -> str | None:
    return at.isoformat().replace("+00:00", "Z") if at is not None else None


def audit_action(entry: AuditEntry) -> str:
    before, arrow, after = entry.action.partition("->")
    if not arrow:
        return entry.action
    if before == TaskStatus.FAILED and after == TaskStatus.PENDING:
        return "retried"
    if after == TaskStatus.PENDING:
        return "requeued"
    return _TRANSITION_ACTIONS.get(TaskStatus(after), entry.action)


async def task_view(uow: UnitOfWork, task: Task) -> dict[str, Any]:
    """The full shape of GET /api/v1/tasks/{id}, subtasks included (JSON-ready)."""
    children = await uow.tasks.children(task.id)
    subtasks = [await task_view(uow, child) for child in children]
    if children:
        done = sum(1 for c in children if c.status is TaskStatus.COMPLETED)
        total = len(children)
    else:
        done, total = (1 if task.status is TaskStatus.COMPLETED else 0), 1
    ledger = await uow.ledger.for_task(task.id)
    audit = await uow.audit.for_task(task.id)
    return {
        "id": task.id,
        "title": task.title,
        "status": task.status.value,
        "agent": task.agent,
        "result": task.result.to_json() if task.result is not None else None,
        "error": task.error,
        "parent_id": task.parent_id,
        "depends_on": list(task.depends_on),
        "subtasks": subtasks,
        "progress": {"done": done, "total": total},
        "transactions": [
            {
                "amount": amount_string(e.amount_cents),
                "currency": e.currency,
                "kind": "charge",
                "description": e.description,
                "at": iso(e.created_at),
            }
            for e in ledger
        ],
        "audit": [
            {
                "action": audit_action(a),
                "actor": a.actor,
                "at": iso(a.created_at),
                "detail": {**a.detail, **({"change": a.action} if "->" in a.action else {})},
            }
            for a in audit
        ],
        "created_at": iso(task.created_at),
        "updated_at": iso(task.updated_at),
    }
