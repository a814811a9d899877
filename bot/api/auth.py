"""Bearer tokens: `tb_<id>_<secret>`, shown once; only the secret's SHA-256 is stored.

The id finds the row; the secret's hash is then compared in constant time, so
response timing tells nothing about how much of a guessed secret was right.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from aiohttp import web

from bot.api.errors import ApiError
from storage.uow import SqlUnitOfWorkFactory

_TOKEN = re.compile(r"^tb_(\d{1,9})_([A-Za-z0-9_-]{20,100})$")


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "Send Authorization: Bearer <token>.")
    return token.strip()


async def authenticate(uow_factory: SqlUnitOfWorkFactory, request: web.Request) -> str:
    """The Slack user id the request's token belongs to; 401 for a missing/bad/revoked one."""
    match = _TOKEN.match(bearer(request))
    found = None
    if match:
        async with uow_factory(read_only=True) as uow:
            found = await uow.api.live_token(int(match[1]))
    if match is None or found is None or not hmac.compare_digest(found[1], secret_hash(match[2])):
        raise ApiError(401, "unauthorized", "That token is not valid (unknown or revoked).")
    return found[0]


async def create_token(
    uow_factory: SqlUnitOfWorkFactory, user: str, name: str | None
) -> tuple[int, str]:
    """A new token for `user`: (its id, the token itself, which is never shown again)."""
    secret = secrets.token_urlsafe(32)
    async with uow_factory() as uow:
        token_id = await uow.api.add_token(user, name, secret_hash(secret), uow_factory.clock.now())
    return token_id, f"tb_{token_id}_{secret}"
