"""Audit rows for events that are not status changes (those come from transition())."""

from __future__ import annotations

from typing import Any

from core.clock import Clock
from core.ports import UnitOfWork
from core.records import AuditEntry


async def audit(
    uow: UnitOfWork,
    clock: Clock,
    task_id: int | None,
    actor: str,
    action: str,
    detail: dict[str, Any] | None = None,
) -> None:
    await uow.audit.record(AuditEntry(task_id, actor, action, clock.now(), detail or {}))
