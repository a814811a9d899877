"""Counts an operator's dashboard reads at scrape time (GET /metrics)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.states import ApprovalStatus
from storage.models import ApprovalRow


async def pending_approvals(session: AsyncSession) -> int:
    """Uses ix_approvals_status: cheap even with a long history."""
    count = await session.scalar(
        select(func.count(ApprovalRow.id)).where(ApprovalRow.status == ApprovalStatus.PENDING.value)
    )
    return int(count or 0)
