"""Approval requests. `decide` is a conditional UPDATE on status PENDING, so two
approvers clicking at once (or a click racing the expiry job) yield one decision."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.records import Approval, ApprovalMessage, Task
from core.states import ApprovalStatus
from storage._sql import NO_SYNC, insert_ignore, rowcount
from storage.models import ApprovalMessageRow, ApprovalRow

_FRESH = {"populate_existing": True}


class SqlApprovalRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(
        self,
        task: Task,
        approvers: Sequence[str],
        amount_cents: int,
        at: datetime,
        expires_at: datetime,
    ) -> Approval | None:
        """None when the task already has an approval (another worker asked first)."""
        inserted = await insert_ignore(
            self._session,
            ApprovalRow,
            {
                "task_id": task.id,
                "requester": task.requester,
                "approvers": list(approvers),
                "amount_cents": amount_cents,
                "currency": task.currency,
                "status": ApprovalStatus.PENDING.value,
                "channel": task.conversation.channel,
                "thread_ts": task.conversation.thread_ts,
                "created_at": at,
                "expires_at": expires_at,
            },
            ["task_id"],
        )
        return await self.for_task(task.id) if inserted else None

    async def get(self, approval_id: int) -> Approval | None:
        row = await self._session.scalar(
            select(ApprovalRow).where(ApprovalRow.id == approval_id).execution_options(**_FRESH)
        )
        return _to_approval(row) if row is not None else None

    async def for_task(self, task_id: int) -> Approval | None:
        row = await self._session.scalar(
            select(ApprovalRow).where(ApprovalRow.task_id == task_id).execution_options(**_FRESH)
        )
        return _to_approval(row) if row is not None else None

    async def decide(
        self, approval_id: int, new: ApprovalStatus, user: str | None, at: datetime
    ) -> bool:
        statement = (
            update(ApprovalRow)
            .where(
                ApprovalRow.id == approval_id,
                ApprovalRow.status == ApprovalStatus.PENDING.value,
            )
            .values(status=new.value, decided_by=user, decided_at=at)
            .execution_options(**NO_SYNC)
        )
        return await rowcount(self._session, statement) == 1

    async def add_message(self, message: ApprovalMessage, at: datetime) -> bool:
        return await insert_ignore(
            self._session,
            ApprovalMessageRow,
            {
                "approval_id": message.approval_id,
                "channel": message.channel,
                "message_ts": message.message_ts,
                "recipient": message.recipient,
                "created_at": at,
            },
            ["channel", "message_ts"],
        )

    async def messages(self, approval_id: int) -> list[ApprovalMessage]:
        rows = await self._session.scalars(
            select(ApprovalMessageRow)
            .where(ApprovalMessageRow.approval_id == approval_id)
            .order_by(ApprovalMessageRow.id)
        )
        return [ApprovalMessage(r.approval_id, r.channel, r.message_ts, r.recipient) for r in rows]

    async def pending(self, limit: int) -> list[Approval]:
        rows = await self._session.scalars(
            select(ApprovalRow)
            .where(ApprovalRow.status == ApprovalStatus.PENDING.value)
            .order_by(ApprovalRow.created_at, ApprovalRow.id)
            .limit(limit)
            .execution_options(**_FRESH)
        )
        return [_to_approval(r) for r in rows]

    async def remind(self, approval_id: int, at: datetime, due: datetime) -> bool:
        """Mark a pending approval reminded unless it was reminded since `due`."""
        statement = (
            update(ApprovalRow)
            .where(
                ApprovalRow.id == approval_id,
                ApprovalRow.status == ApprovalStatus.PENDING.value,
                or_(ApprovalRow.reminded_at.is_(None), ApprovalRow.reminded_at <= due),
            )
            .values(reminded_at=at)
            .execution_options(**NO_SYNC)
        )
        return await rowcount(self._session, statement) == 1


def _to_approval(row: ApprovalRow) -> Approval:
    return Approval(
        id=row.id,
        task_id=row.task_id,
        requester=row.requester,
        approvers=tuple(row.approvers or ()),
        amount_cents=row.amount_cents,
        currency=row.currency,
        status=ApprovalStatus(row.status),
        channel=row.channel,
        thread_ts=row.thread_ts,
        created_at=row.created_at,
        expires_at=row.expires_at,
        message_ts=row.message_ts,
        decided_by=row.decided_by,
        decided_at=row.decided_at,
        reminded_at=row.reminded_at,
    )
