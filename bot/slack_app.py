"""Builds the Bolt AsyncApp: persist-then-ack, Web API base from configuration."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot import log_safety
from bot.listeners import approvals, messages, status, tasks_command
from bot.settings import Settings
from core.service import TaskService

log = logging.getLogger(__name__)


def web_client(settings: Settings) -> AsyncWebClient:
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    return AsyncWebClient(token=token, base_url=settings.slack_api_url, timeout=10)


def build_app(settings: Settings, service: TaskService, client: AsyncWebClient) -> AsyncApp:
    secret = (
        settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None
    )
    app = AsyncApp(
        client=client,
        signing_secret=secret,
        # The listener persists the request before Bolt sends the ack, so an
        # acknowledged event survives a crash (shared/reliability.md).
        process_before_response=True,
        request_verification_enabled=not settings.socket_mode,
        logger=log_safety.bolt_logger(),
    )
    messages.register(app, service)
    approvals.register(app, service)
    tasks_command.register(app, service)
    status.register(app, service)

    @app.error
    async def on_error(error: Exception, body: dict[str, Any]) -> None:
        # Bolt answers 500, so Slack retries an event whose request was not persisted.
        log.error("listener failed for %s: %r", body.get("type"), error, exc_info=error)

    return app
