"""The task state machine: which status may follow which, and `transition()`, the one
function through which a task changes status."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.clock import Clock
    from core.ports import UnitOfWork
    from core.records import Task, TaskChanges


class TaskStatus(StrEnum):
    PENDING = "PENDING"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    REJECTED = "REJECTED"
    CANCELLED = "CANCELLED"
    #: its outcome may have had effects (an order was placed) but could not be recorded
    #: in full: the engine stops here, keeps any money held, and asks a person to check
    NEEDS_ATTENTION = "NEEDS_ATTENTION"

    @property
    def terminal(self) -> bool:
        """Nothing more happens to it by itself (a retry is a person's new decision;
        NEEDS_ATTENTION waits for a person to check what was done)."""
        return self in _TERMINAL


ALLOWED: dict[TaskStatus, frozenset[TaskStatus]] = {
    # FAILED straight from PENDING: a step that could not start (over budget, dependency failed).
    TaskStatus.PENDING: frozenset(
        {TaskStatus.IN_PROGRESS, TaskStatus.REJECTED, TaskStatus.CANCELLED, TaskStatus.FAILED}
    ),
    # PENDING again: a crash interrupted a step that is safe to re-run.
    # CANCELLED: a request whose remaining steps were cancelled.
    # NEEDS_ATTENTION: a step with effects whose outcome could not be recorded.
    TaskStatus.IN_PROGRESS: frozenset(
        {
            TaskStatus.COMPLETED,
            TaskStatus.FAILED,
            TaskStatus.CANCELLED,
            TaskStatus.PENDING,
            TaskStatus.NEEDS_ATTENTION,
        }
    ),
    # COMPLETED: the outcome was recorded after all (late, or by a person).
    TaskStatus.NEEDS_ATTENTION: frozenset({TaskStatus.COMPLETED}),
    TaskStatus.COMPLETED: frozenset(),
    # PENDING again: its requester asked to re-run it (core/retry.py). Not terminal
    # in the sense of `terminal`, which is about whether work is left to do.
    TaskStatus.FAILED: frozenset({TaskStatus.PENDING}),
    TaskStatus.REJECTED: frozenset(),
    TaskStatus.CANCELLED: frozenset(),
}


_TERMINAL = frozenset(
    {
        TaskStatus.COMPLETED,
        TaskStatus.FAILED,
        TaskStatus.REJECTED,
        TaskStatus.CANCELLED,
        TaskStatus.NEEDS_ATTENTION,
    }
)


class IllegalTransition(Exception):
    def __init__(self, task_id: int, current: TaskStatus, target: TaskStatus) -> None:
        super().__init__(f"task {task_id}: {current} -> {target} is not allowed")
        self.task_id = task_id
        self.current = current
        self.target = target


class TaskMoved(Exception):
    """A task changed between reading it and moving it (`transition` returned False):
    raised to roll back a unit of work that moves several tasks together."""


def check_transition(task_id: int, current: TaskStatus, target: TaskStatus) -> None:
    if target not in ALLOWED[current]:
        raise IllegalTransition(task_id, current, target)


class ApprovalStatus(StrEnum):
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    DENIED = "DENIED"
    EXPIRED = "EXPIRED"
    CANCELLED = "CANCELLED"


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
    """Move `task` from the status it was read with to `target`: the single function
    through which every task changes status.

    Raises IllegalTransition for a move the state machine forbids; returns False
    when another writer changed the task first (the conditional UPDATE lost).
    The audit row shares the caller's transaction.
    """
    # imported here: core.records imports this module for the status enums
    from core.records import AuditEntry, TaskChanges

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
