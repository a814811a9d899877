"""The outbox: notices written in the same transaction as the change that caused
them, delivered afterwards by a sender (at least once: Slack has no idempotency key).

claim_due hands out only the oldest undelivered entry of each destination (a
channel or thread), so replies in a thread arrive in the order they were
written, even when an earlier one is waiting to be retried. A claim is a lease
(claimed_until): a live sender renews it while it delivers (extend_claims); a
sender that dies lets it lapse and the entry is claimed again.
A claim is also the durable record that an attempt began: it sets
unconfirmed_since (kept from an earlier attempt whose outcome is unknown), which
only a recorded outcome clears. So a claim that finds it set knows an earlier
attempt may have posted, at no extra write per post.
On PostgreSQL the claim uses FOR UPDATE SKIP LOCKED so concurrent senders never
take the same row; on SQLite the transaction already holds the write lock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, exists, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from core.notices import Notice, WebhookEvent, notice_from_json
from core.ports import OutboxItem
from storage._sql import NO_SYNC, rowcount, table_of
from storage.deferred import Appends
from storage.models import OutboxRow

PENDING, SENT, FAILED = "PENDING", "SENT", "FAILED"
#: webhook events have their own sender, so a slow receiver never holds up Slack replies
WEBHOOK = WebhookEvent.kind


_TABLE = table_of(OutboxRow)
#: built once: one entry per reply written, one mark per reply sent
_ADD = insert(_TABLE)
_MARK_SENT = (
    update(_TABLE).where(_TABLE.c.id == bindparam("_id")).values(status=SENT, claimed_until=None)
)


class SqlOutbox:
    """Entries and sent-marks wait in the unit of work's `Appends` and go in together
    (storage/deferred.py): a group commit's replies in one multi-row INSERT, its
    marks in one batch."""

    def __init__(
        self,
        session: AsyncSession,
        appends: Appends,
        unshown: Callable[[Notice], bool] | None = None,
    ) -> None:
        self._session = session
        self._appends = appends
        #: notices the front end never shows on their own: no row (uow.leave_out)
        self._unshown = unshown
        #: set when this unit of work wrote an entry, so the sender is woken after commit
        self.written = False
        #: the notices this unit of work wrote, for pre-commit hooks (webhook events)
        self.added: list[Notice] = []

    async def add(self, notice: Notice, at: datetime) -> None:
        self.written = True
        self.added.append(notice)
        if self._unshown is not None and self._unshown(notice):
            return
        self._appends.add(
            _ADD,
            {
                "kind": notice.kind,
                "payload": notice.to_json(),
                "destination_key": notice.lane,
                "task_id": notice.task_id,
                "status": PENDING,
                "attempts": 0,
                "next_attempt_at": at,
                "created_at": at,
            },
        )

    async def claim_due(
        self, at: datetime, limit: int, lease_seconds: float, *, webhooks: bool = False
    ) -> list[OutboxItem]:
        older = aliased(OutboxRow)
        lane = OutboxRow.kind == WEBHOOK if webhooks else OutboxRow.kind != WEBHOOK
        is_head = ~exists().where(
            older.destination_key == OutboxRow.destination_key,
            older.status == PENDING,
            older.id < OutboxRow.id,
        )
        query = (
            select(OutboxRow.id)
            .where(
                OutboxRow.status == PENDING,
                OutboxRow.next_attempt_at <= at,
                lane,
                or_(OutboxRow.claimed_until.is_(None), OutboxRow.claimed_until < at),
                is_head,
            )
            .order_by(OutboxRow.id)
            .limit(limit)
        )
        if self._session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True, of=OutboxRow)
        ids = list((await self._session.scalars(query)).all())
        if not ids:
            return []
        # Read before the claim marks them: unconfirmed_since as the last attempt left it.
        rows = (
            await self._session.execute(
                select(
                    OutboxRow.id,
                    OutboxRow.payload,
                    OutboxRow.attempts,
                    OutboxRow.created_at,
                    OutboxRow.unconfirmed_since,
                )
                .where(OutboxRow.id.in_(ids))
                .order_by(OutboxRow.id)
            )
        ).all()
        await self._session.execute(
            update(OutboxRow)
            .where(OutboxRow.id.in_(ids))
            .values(
                claimed_until=at + timedelta(seconds=lease_seconds),
                unconfirmed_since=func.coalesce(OutboxRow.unconfirmed_since, at),
            )
            .execution_options(**NO_SYNC)
        )
        return [
            OutboxItem(
                id=r.id,
                notice=notice_from_json(r.payload),
                attempts=r.attempts,
                created_at=r.created_at,
                unconfirmed_since=r.unconfirmed_since,
            )
            for r in rows
        ]

    async def supersede(self, lane: str, at: datetime) -> int:
        """Retire the undelivered entries of `lane` that no sender holds (a newer one
        replaces them); returns how many. An entry being delivered is left alone."""
        result = await self._session.execute(
            update(OutboxRow)
            .where(
                OutboxRow.destination_key == lane,
                OutboxRow.status == PENDING,
                or_(OutboxRow.claimed_until.is_(None), OutboxRow.claimed_until < at),
            )
            .values(status=SENT, sent_at=at, last_error="superseded", claimed_until=None)
            .execution_options(**NO_SYNC)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def sent_ts(self, lane: str) -> str | None:
        """The ts of the first message posted in `lane` (the one later entries replace)."""
        return (
            await self._session.scalars(
                select(OutboxRow.message_ts)
                .where(
                    OutboxRow.destination_key == lane,
                    OutboxRow.status == SENT,
                    OutboxRow.message_ts.is_not(None),
                )
                .order_by(OutboxRow.id)
                .limit(1)
            )
        ).first()

    async def extend_claims(self, item_ids: Sequence[int], until: datetime) -> None:
        if not item_ids:
            return
        await self._session.execute(
            update(OutboxRow)
            .where(
                OutboxRow.id.in_(list(item_ids)),
                OutboxRow.status == PENDING,
                OutboxRow.claimed_until.is_not(None),
            )
            .values(claimed_until=until)
            .execution_options(**NO_SYNC)
        )

    async def release_claims(self, until: datetime) -> int:
        return await rowcount(
            self._session,
            update(OutboxRow)
            .where(OutboxRow.status == PENDING, OutboxRow.claimed_until == until)
            .values(claimed_until=None)
            .execution_options(**NO_SYNC),
        )

    async def mark_sent(self, item_id: int, message_ts: str | None, at: datetime) -> None:
        self._appends.add(_MARK_SENT, {"_id": item_id, "message_ts": message_ts, "sent_at": at})

    async def retry_later(
        self, item_id: int, error: str, next_at: datetime, *, maybe_delivered: bool = True
    ) -> None:
        values: dict[str, Any] = {
            "attempts": OutboxRow.attempts + 1,
            "last_error": error,
            "next_attempt_at": next_at,
            "claimed_until": None,
        }
        if not maybe_delivered:
            values["unconfirmed_since"] = None
        await self._session.execute(
            update(OutboxRow)
            .where(OutboxRow.id == item_id, OutboxRow.status == PENDING)
            .values(**values)
            .execution_options(**NO_SYNC)
        )

    async def prune_sent(self, before: datetime, limit: int) -> int:
        oldest = (
            select(OutboxRow.id)
            .where(OutboxRow.status == SENT, OutboxRow.sent_at < before)
            .order_by(OutboxRow.id)
            .limit(limit)
        )
        return await rowcount(
            self._session,
            delete(OutboxRow)
            .where(OutboxRow.id.in_(oldest.scalar_subquery()))
            .execution_options(**NO_SYNC),
        )

    async def mark_failed(self, item_id: int, error: str, at: datetime) -> None:
        await self._session.execute(
            update(OutboxRow)
            .where(OutboxRow.id == item_id, OutboxRow.status == PENDING)
            .values(
                status=FAILED,
                attempts=OutboxRow.attempts + 1,
                last_error=error,
                failed_at=at,
                claimed_until=None,
            )
            .execution_options(**NO_SYNC)
        )

    async def backlog(self, at: datetime) -> tuple[int, datetime | None, int]:
        rows = await self._session.execute(
            select(OutboxRow.status, func.count(OutboxRow.id), func.min(OutboxRow.created_at))
            # Slack's backlog: webhook events wait on receivers, not on Slack
            .where(OutboxRow.status.in_((PENDING, FAILED)), OutboxRow.kind != WEBHOOK)
            .group_by(OutboxRow.status)
        )
        by_status = {status: (int(count), oldest) for status, count, oldest in rows}
        pending, oldest = by_status.get(PENDING, (0, None))
        failed, _ = by_status.get(FAILED, (0, None))
        return pending, oldest, failed

    async def recent_failures(self, limit: int) -> list[dict[str, Any]]:
        rows = await self._session.execute(
            select(
                OutboxRow.id,
                OutboxRow.kind,
                OutboxRow.task_id,
                OutboxRow.last_error,
                OutboxRow.failed_at,
            )
            .where(OutboxRow.status == FAILED)
            .order_by(OutboxRow.failed_at.desc(), OutboxRow.id.desc())
            .limit(limit)
        )
        return [
            {
                "id": r.id,
                "kind": r.kind,
                "task_id": r.task_id,
                "error": r.last_error,
                "at": r.failed_at,
            }
            for r in rows
        ]
