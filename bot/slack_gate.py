"""POST /slack/events, judged before it is parsed: a request must carry a valid, fresh
Slack signature over its raw body before anything reads that body as JSON or a form."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_sdk.signature import SignatureVerifier

#: ASCII digits only (str.isdigit() admits "²", which int() refuses), and few of them
_UNIX_SECONDS = re.compile(r"[0-9]{1,12}")

#: how old a signed request may be (Slack's own rule: five minutes)
MAX_AGE_SECONDS = 60 * 5

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def unsigned_problem(
    secret: str, body: bytes, timestamp: str, signature: str, now: float
) -> str | None:
    """Why a request is not a genuine, fresh request from Slack; None when it is."""
    if not _UNIX_SECONDS.fullmatch(timestamp.strip()):
        return "missing or non-numeric X-Slack-Request-Timestamp"
    if not signature:
        return "missing X-Slack-Signature"
    if abs(now - int(timestamp)) > MAX_AGE_SECONDS:
        return "stale X-Slack-Request-Timestamp"
    verifier = SignatureVerifier(secret)
    if not verifier.is_valid(body, timestamp.strip(), signature):
        return "signature does not match"
    return None


def malformed_problem(content_type: str, body: bytes) -> str | None:
    """Why a signed body is not one Bolt can read; None when it is."""
    try:
        text = body.decode("utf-8")
        if content_type == "application/json":
            if not isinstance(json.loads(text), dict):
                return "JSON body is not an object"
            return None
        if content_type == "application/x-www-form-urlencoded":
            form = parse_qs(text, keep_blank_values=True)
            if "payload" in form and not isinstance(json.loads(form["payload"][0]), dict):
                return "payload is not a JSON object"
            return None
    except (UnicodeDecodeError, ValueError):
        return f"body is not valid {content_type or 'data'}"
    return f"unsupported content type {content_type or '(none)'}"


#: told of each refused request: (HTTP status, why, seconds spent); it logs the one line
Refused = Callable[[int, str, float], None]


def slack_events(
    bolt: AsyncApp,
    signing_secret: str,
    refused: Refused,
    clock: Callable[[], float] = time.time,
) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        body = await request.read()
        problem = unsigned_problem(
            signing_secret,
            body,
            request.headers.get("X-Slack-Request-Timestamp", ""),
            request.headers.get("X-Slack-Signature", ""),
            clock(),
        )
        if problem is not None:
            refused(401, problem, time.perf_counter() - started)
            return web.json_response({"ok": False, "error": "invalid_signature"}, status=401)
        problem = malformed_problem(request.content_type, body)
        if problem is not None:
            refused(400, problem, time.perf_counter() - started)
            return web.json_response({"ok": False, "error": "malformed_request"}, status=400)
        return await to_aiohttp_response(await bolt.async_dispatch(await to_bolt_request(request)))

    return handle
