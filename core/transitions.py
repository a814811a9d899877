"""The single function through which every task changes status."""

from __future__ import annotations

from typing import Any

from core.clock import Clock
from core.ports import UnitOfWork
from core.records import AuditEntry, Task, TaskChanges
from core.states import TaskStatus, check_transition


async def transition(
    uow: UnitOfWork,
    task: Task,
    target: TaskStatus,
    *,
    actor: str,
    clock: Clock,
    changes: TaskChanges | None = None,
    detail: dict[str, Any] | None = None,
) -> bool:
    """Move `task` from the status it was read with to `target`.

    Raises IllegalTransition for a move the state machine forbids; returns False
    when another writer changed the task first (the conditional UPDATE lost).
    The audit row shares the caller's transaction.
    """
    check_transition(task.id, task.status, target)
    now = clock.now()
    won = await uow.tasks.set_status(task.id, task.status, target, now, changes or TaskChanges())
    if won:
        await uow.audit.record(
            AuditEntry(
                task_id=task.id,
                actor=actor,
                action=f"{task.status}->{target}",
                created_at=now,
                detail=detail or {},
            )
        )
    return won
