"""Send requests to the bot exactly as Slack signs and delivers them.

Signature (docs/SLACK.md): ``"v0=" + hex(HMAC-SHA256(secret, f"v0:{ts}:{raw body}"))``
in ``X-Slack-Signature``, with ``X-Slack-Request-Timestamp``; computed over the
raw body bytes.  Events API bodies are JSON; slash commands are form fields;
interactivity is a form with one field ``payload=<json>``.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypedDict, Unpack
from urllib.parse import urlencode, urlsplit

import aiohttp

STALE_SECONDS = 600  # 10 minutes: outside Slack's 5-minute replay window
DEFAULT_PATH = "/slack/events"
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


def signature(secret: str, body: bytes, timestamp: int | str) -> str:
    """The ``X-Slack-Signature`` value for ``body`` sent at ``timestamp``."""
    basestring = b"v0:" + str(timestamp).encode() + b":" + body
    digest = hmac.new(secret.encode(), basestring, hashlib.sha256).hexdigest()
    return f"v0={digest}"


def sign(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Headers Slack adds to a request: timestamp (now by default) and signature.

    The caller sets ``Content-Type``.
    """
    ts = int(time.time()) if timestamp is None else int(timestamp)
    return {
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": signature(secret, body, ts),
    }


class Delivery(TypedDict, total=False):
    """How a request is signed (forged, stale or at a given time) and which headers
    it carries besides Slack's."""

    bad_signature: bool
    stale: bool
    timestamp: int | None
    extra_headers: Mapping[str, str] | None


@dataclass
class SentResponse:
    """What the bot answered."""

    status: int
    text: str
    headers: Mapping[str, str] = field(default_factory=dict)
    elapsed: float = 0.0

    def json(self) -> Any:
        return json.loads(self.text)


def _check_loopback(url: str) -> None:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise ValueError(f"SignedSender only talks to loopback addresses, not {host!r}")


class SignedSender:
    """Posts Slack-signed requests to the bot's endpoint.

    ``url`` is the endpoint (``http://127.0.0.1:3000/slack/events``); a URL
    with no path gets ``/slack/events`` appended.  Use as an async context
    manager to share one connection pool, or call directly (one session per
    request).  Every method takes ``bad_signature=True`` (forged signature),
    ``stale=True`` (timestamp 10 minutes old, correctly signed),
    ``timestamp=...`` and ``extra_headers``.
    """

    def __init__(self, url: str, secret: str, *, timeout: float = 30.0) -> None:
        _check_loopback(url)
        if urlsplit(url).path in ("", "/"):
            url = url.rstrip("/") + DEFAULT_PATH
        self.url = url
        self.secret = secret
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> SignedSender:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ------------------------------------------------------------------ core

    def headers_for(
        self,
        body: bytes,
        content_type: str,
        *,
        bad_signature: bool = False,
        stale: bool = False,
        timestamp: int | None = None,
    ) -> dict[str, str]:
        if timestamp is None:
            timestamp = int(time.time()) - (STALE_SECONDS if stale else 0)
        headers = sign(self.secret, body, timestamp)
        if bad_signature:
            headers["X-Slack-Signature"] = signature(self.secret + "-forged", body, timestamp)
        headers["Content-Type"] = content_type
        return headers

    async def post(
        self, body: bytes, content_type: str, **delivery: Unpack[Delivery]
    ) -> SentResponse:
        """Sign and POST raw ``body``."""
        headers = self.headers_for(
            body,
            content_type,
            bad_signature=delivery.get("bad_signature", False),
            stale=delivery.get("stale", False),
            timestamp=delivery.get("timestamp"),
        )
        headers.update(delivery.get("extra_headers") or {})
        if self._session is not None:
            return await self._send(self._session, body, headers)
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout)
        ) as session:
            return await self._send(session, body, headers)

    async def _send(
        self, session: aiohttp.ClientSession, body: bytes, headers: dict[str, str]
    ) -> SentResponse:
        started = time.monotonic()
        async with session.post(self.url, data=body, headers=headers) as resp:
            text = await resp.text()
            return SentResponse(
                status=resp.status,
                text=text,
                headers=dict(resp.headers),
                elapsed=time.monotonic() - started,
            )

    # ------------------------------------------------------------------ kinds

    async def event(
        self,
        envelope: Mapping[str, Any],
        retry_num: int | None = None,
        retry_reason: str = "http_timeout",
        **delivery: Unpack[Delivery],
    ) -> SentResponse:
        """Deliver an Events API envelope (JSON); ``retry_num`` adds Slack's retry headers."""
        headers = dict(delivery.get("extra_headers") or {})
        if retry_num is not None:
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = retry_reason
        delivery["extra_headers"] = headers
        return await self.post(json.dumps(envelope).encode(), JSON, **delivery)

    async def command(self, form: Mapping[str, str], **delivery: Unpack[Delivery]) -> SentResponse:
        """Deliver a slash command (form-encoded fields)."""
        return await self.post(urlencode(dict(form)).encode(), FORM, **delivery)

    async def interaction(
        self, payload: Mapping[str, Any], **delivery: Unpack[Delivery]
    ) -> SentResponse:
        """Deliver an interactivity payload (form body ``payload=<json>``)."""
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return await self.post(body, FORM, **delivery)

    async def url_verification(self, challenge: str = "challenge-token") -> SentResponse:
        """Slack's request-URL handshake."""
        return await self.event(
            {"token": "verification_token", "challenge": challenge, "type": "url_verification"}
        )

    async def ssl_check(self) -> SentResponse:
        """The ``ssl_check=1`` form post Slack sends to slash-command URLs."""
        return await self.command({"ssl_check": "1", "token": "verification_token"})
