"""Builds the Bolt AsyncApp: persist-then-ack, Web API base from configuration."""

from __future__ import annotations

import logging
import time
from typing import Any

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot import log_safety
from bot.listeners import (
    approvals,
    deny_reason,
    full_text,
    messages,
    retry,
    status,
    tasks_command,
)
from bot.metrics import Metrics, WebApiErrors
from bot.settings import Settings
from core.front_door import FrontDoor
from core.service import TaskService

log = logging.getLogger(__name__)
request_log = logging.getLogger("taskbot.requests")


def web_client(
    settings: Settings,
    metrics: Metrics | None = None,
    session: aiohttp.ClientSession | None = None,
) -> AsyncWebClient:
    """Without `session` slack_sdk opens (and closes) an HTTP session per call; the
    server passes one per process so connections to Slack are kept and reused."""
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    client = AsyncWebClient(
        token=token, base_url=settings.slack_api_url, timeout=10, session=session
    )
    if metrics is not None:
        client.retry_handlers.append(WebApiErrors(metrics))
    return client


def request_kind(body: dict[str, Any]) -> str:
    """What Slack sent: the event type, the interaction type, or slash_command."""
    if body.get("command"):
        return "slash_command"
    kind = body.get("type")
    if kind == "event_callback":
        return str((body.get("event") or {}).get("type") or "event")
    return str(kind or "unknown")


class ObservedApp(AsyncApp):
    """Logs one line per Slack request and counts it, over HTTP and Socket Mode alike
    (both adapters go through async_dispatch). Listeners add `task_id` and
    `outcome` to the Bolt context; nothing the user wrote is logged."""

    metrics: Metrics
    #: held while a request is answered, so background work lets it go first
    front_door: FrontDoor

    async def async_dispatch(self, req: AsyncBoltRequest) -> BoltResponse:
        started = time.perf_counter()
        with self.front_door.serving():
            response = await super().async_dispatch(req)
        seconds = time.perf_counter() - started
        # A request that failed signature checks is anyone's text: neither its kind
        # (a metrics label) nor its ids are trusted.
        verified = response.status != 401 and isinstance(req.body, dict)
        body = req.body if verified else {}
        kind = request_kind(body) if verified else "unverified"
        outcome = req.context.get("outcome")
        self.metrics.request(kind, response.status, outcome, seconds)
        retry = next(iter(req.headers.get("x-slack-retry-num") or ()), None)
        fields: dict[str, Any] = {
            "kind": kind,
            "event_id": body.get("event_id"),
            "task_id": req.context.get("task_id"),
            "outcome": outcome or f"http_{response.status}",
            "status": response.status,
            "duration_ms": round(seconds * 1000, 1),
        }
        if retry is not None:
            fields["retry"] = retry
        request_log.info(
            "slack %s handled: %s",
            kind,
            " ".join(f"{k}={v}" for k, v in fields.items() if k != "kind" and v is not None),
            extra=fields,
        )
        return response


def record_refused(metrics: Metrics, status: int, reason: str, seconds: float) -> None:
    """A request refused before Bolt saw it (bot/slack_gate.py), counted and logged in
    one line like every other request. Its body is anyone's text: nothing of it is used."""
    kind = "unverified" if status == 401 else "malformed"
    metrics.request(kind, status, None, seconds)
    fields: dict[str, Any] = {
        "kind": kind,
        "event_id": None,
        "task_id": None,
        "outcome": f"http_{status}",
        "status": status,
        "reason": reason,
        "duration_ms": round(seconds * 1000, 1),
    }
    request_log.info("slack %s refused: status=%s reason=%s", kind, status, reason, extra=fields)


def build_app(
    settings: Settings,
    service: TaskService,
    client: AsyncWebClient,
    metrics: Metrics | None = None,
) -> AsyncApp:
    secret = (
        settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None
    )
    app = ObservedApp(
        client=client,
        signing_secret=secret,
        # The listener persists the request before Bolt sends the ack, so an
        # acknowledged event survives a crash (docs/RELIABILITY.md).
        process_before_response=True,
        request_verification_enabled=not settings.socket_mode,
        logger=log_safety.bolt_logger(),
    )
    app.metrics = metrics or Metrics()
    app.front_door = service.uow_factory.front_door
    messages.register(app, service)
    approvals.register(app, service)
    deny_reason.register(app, service)
    full_text.register(app, service)
    tasks_command.register(app, service)
    retry.register(app, service)
    status.register(app, service)

    @app.error
    async def on_error(error: Exception, body: dict[str, Any]) -> None:
        # Bolt answers 500, so Slack retries an event whose request was not persisted.
        log.error("listener failed for %s: %r", body.get("type"), error, exc_info=error)

    return app
