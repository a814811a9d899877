"""Delivers webhook events (Standard Webhooks signing) from the outbox's webhook lane.

Targets are checked after DNS resolution, by the resolver the connection itself
uses, so a name that resolves to a private, loopback or link-local address is
refused (unless TASKBOT_WEBHOOK_ALLOW_PRIVATE) even if it changes between checks.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import ResolveResult
from aiohttp.resolver import ThreadedResolver

from core.notices import Notice, WebhookEvent
from core.ports import Attempt, DeliveryError

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 10
#: answers worth trying again; any other 4xx means the receiver will never take it
_RETRYABLE_4XX = frozenset({408, 409, 425, 429})


class BlockedTarget(OSError):
    """The target resolves to an address webhooks may not reach."""


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_`-prefixed base64 secret."""
    raw = secret.removeprefix("whsec_")
    return base64.b64decode(raw, validate=True)


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def body_of(event: WebhookEvent) -> bytes:
    stamp = datetime.fromtimestamp(event.timestamp, UTC).isoformat().replace("+00:00", "Z")
    payload = {"type": event.event_type, "timestamp": stamp, "data": event.data}
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def check_url(url: str) -> str | None:
    """Why `url` can never be a webhook target, or None."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return "only http:// and https:// webhook URLs are allowed"
    if not parts.hostname:
        return "the webhook URL has no host"
    if parts.username or parts.password:
        return "the webhook URL must not carry credentials"
    return None


#: IPv6 ranges whose last 32 bits are an IPv4 address a gateway reaches for us:
#: NAT64 (RFC 6052, 8215), IPv4-compatible, and IPv4-translated (RFC 2765)
_EMBEDS_IPV4 = tuple(
    ipaddress.IPv6Network(n) for n in ("64:ff9b::/96", "64:ff9b:1::/48", "::/96", "::ffff:0:0:0/96")
)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if any(ip in net for net in _EMBEDS_IPV4):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public(address: str) -> bool:
    """Public, whatever way the address is written: an IPv6 address that carries an
    IPv4 one (mapped, 6to4, NAT64) is judged by the IPv4 address it leads to."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return embedded.is_global and not embedded.is_multicast
    return ip.is_global and not ip.is_multicast


class GuardedResolver(ThreadedResolver):
    def __init__(self, allow_private: bool) -> None:
        super().__init__()
        self._allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await super().resolve(host, port, family)
        if not self._allow_private:
            blocked = [r["host"] for r in results if not is_public(r["host"])]
            if blocked:
                raise BlockedTarget(f"{host} resolves to a non-public address ({blocked[0]})")
        return results


@dataclass
class WebhookStats:
    """Counters for /healthz and /metrics (process-local; the outbox rows are the record)."""

    delivered: int = 0
    retried: int = 0
    gave_up: int = 0


class WebhookSender:
    """A Notifier for WebhookEvent notices."""

    def __init__(self, secret: str, *, allow_private: bool = False) -> None:
        self._key = secret_key(secret)
        self._resolver = GuardedResolver(allow_private)
        self._session: aiohttp.ClientSession | None = None
        self.stats = WebhookStats()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(resolver=self._resolver, force_close=True),
                timeout=aiohttp.ClientTimeout(total=TIMEOUT_SECONDS),
                auto_decompress=False,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def deliver(self, notice: Notice, attempt: Attempt | None = None) -> str | None:
        """`attempt` is unused: a receiver dedupes on `webhook-id`, so a repeat is harmless."""
        if not isinstance(notice, WebhookEvent):
            raise DeliveryError(f"not a webhook event: {notice.kind}", permanent=True)
        problem = check_url(notice.url)
        if problem:
            raise DeliveryError(problem, permanent=True)
        host = urlsplit(notice.url).hostname or ""
        try:
            await self._resolver.resolve(host, 0, socket.AF_UNSPEC)
        except BlockedTarget as exc:
            raise DeliveryError(f"refused: {exc}", permanent=True) from exc
        except OSError as exc:
            self.stats.retried += 1
            raise DeliveryError(f"cannot resolve {host}: {exc}", permanent=False) from exc
        body = body_of(notice)
        # Signed per attempt (same id, current time), so a retry hours later still falls
        # inside receivers' timestamp tolerance; the body keeps the event's own time.
        sent_at = int(time.time())
        headers = {
            "content-type": "application/json",
            "webhook-id": notice.event_id,
            "webhook-timestamp": str(sent_at),
            "webhook-signature": sign(self._key, notice.event_id, sent_at, body),
            "user-agent": "taskbot-webhooks",
        }
        try:
            async with self._client().post(
                notice.url, data=body, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                retry_after = response.headers.get("Retry-After", "")
        except BlockedTarget as exc:
            raise DeliveryError(f"refused: {exc}", permanent=True) from exc
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, BlockedTarget):
                raise DeliveryError(f"refused: {exc.os_error}", permanent=True) from exc
            self.stats.retried += 1
            raise DeliveryError(f"connect: {exc}", permanent=False) from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            self.stats.retried += 1
            raise DeliveryError(f"network: {type(exc).__name__}", permanent=False) from exc
        if 200 <= status < 300:
            self.stats.delivered += 1
            return None
        if status >= 500 or status in _RETRYABLE_4XX:
            self.stats.retried += 1
            delay = float(retry_after) if retry_after.isdigit() else None
            raise DeliveryError(f"receiver answered {status}", permanent=False, retry_after=delay)
        raise DeliveryError(f"receiver answered {status}", permanent=True)

    def gave_up(self, *_args: Any) -> None:
        self.stats.gave_up += 1
