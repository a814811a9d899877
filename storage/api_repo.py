"""What the HTTP API keeps besides tasks: bearer tokens (hashed), idempotency keys,
and the webhook target a request was submitted with."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.states import TaskStatus
from storage._sql import NO_SYNC, insert_ignore, rowcount
from storage.models import ApiIdempotencyRow, ApiTokenRow, TaskRow, TaskWebhookRow


@dataclass(frozen=True)
class ApiToken:
    id: int
    user_id: str
    name: str | None
    created_at: datetime
    revoked_at: datetime | None


class SqlApiStore:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add_token(self, user_id: str, name: str | None, token_hash: str, at: datetime) -> int:
        token_id = (
            await self._session.execute(
                insert(ApiTokenRow)
                .values(user_id=user_id, name=name, token_hash=token_hash, created_at=at)
                .returning(ApiTokenRow.id)
            )
        ).scalar_one()
        return int(token_id)

    async def tokens(self) -> list[ApiToken]:
        rows = await self._session.scalars(select(ApiTokenRow).order_by(ApiTokenRow.id))
        return [ApiToken(r.id, r.user_id, r.name, r.created_at, r.revoked_at) for r in rows]

    async def revoke_token(self, token_id: int, at: datetime) -> bool:
        statement = (
            update(ApiTokenRow)
            .where(ApiTokenRow.id == token_id, ApiTokenRow.revoked_at.is_(None))
            .values(revoked_at=at)
            .execution_options(**NO_SYNC)
        )
        return await rowcount(self._session, statement) == 1

    async def live_token(self, token_id: int) -> tuple[str, str] | None:
        """(user id, secret hash) of a token that is not revoked."""
        row = (
            await self._session.execute(
                select(ApiTokenRow.user_id, ApiTokenRow.token_hash).where(
                    ApiTokenRow.id == token_id, ApiTokenRow.revoked_at.is_(None)
                )
            )
        ).first()
        return (row.user_id, row.token_hash) if row is not None else None

    async def claim_idempotency_key(
        self, user_id: str, key: str, body_hash: str, at: datetime
    ) -> str:
        """Insert-if-absent; returns the body hash the key is bound to (ours or an earlier one)."""
        values = {"user_id": user_id, "key": key, "body_hash": body_hash, "created_at": at}
        if await insert_ignore(self._session, ApiIdempotencyRow, values, ["user_id", "key"]):
            return body_hash
        bound = await self._session.scalar(
            select(ApiIdempotencyRow.body_hash).where(
                ApiIdempotencyRow.user_id == user_id, ApiIdempotencyRow.key == key
            )
        )
        assert bound is not None
        return bound

    async def set_webhook(self, task_id: int, url: str) -> None:
        await insert_ignore(
            self._session, TaskWebhookRow, {"task_id": task_id, "url": url}, ["task_id"]
        )

    async def webhook_url(self, task_id: int) -> str | None:
        return await self._session.scalar(
            select(TaskWebhookRow.url).where(TaskWebhookRow.task_id == task_id)
        )

    async def root_ids(
        self, user_id: str, status: TaskStatus | None, before_id: int | None, limit: int
    ) -> list[int]:
        """Ids of a requester's requests, newest first, for keyset pagination."""
        query = select(TaskRow.id).where(TaskRow.requester == user_id, TaskRow.parent_id.is_(None))
        if status is not None:
            query = query.where(TaskRow.status == status.value)
        if before_id is not None:
            query = query.where(TaskRow.id < before_id)
        rows = await self._session.scalars(query.order_by(TaskRow.id.desc()).limit(limit))
        return list(rows)
