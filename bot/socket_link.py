"""The Socket Mode link, kept up in the background: the HTTP port never waits for it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

import aiohttp
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError

log = logging.getLogger(__name__)

#: seconds to wait for the websocket once Slack handed out its URL
CONNECT_TIMEOUT = 15.0


class _OneLine(logging.Filter):
    """slack_sdk logs a full traceback per failed attempt; we log one line per failure."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info, record.exc_text = None, None
        return True


def _sdk_logger() -> logging.Logger:
    logger = logging.getLogger("bot.socket_link.sdk")
    logger.setLevel(logging.WARNING)
    if not any(isinstance(f, _OneLine) for f in logger.filters):
        logger.addFilter(_OneLine())
    return logger


def describe(exc: BaseException) -> str:
    """The cause of a failed attempt, in words an operator can act on (no secrets)."""
    if isinstance(exc, SlackApiError):
        error = exc.response.get("error") if isinstance(exc.response.data, dict) else None
        return f"Slack refused apps.connections.open: {error or exc.response.status_code}"
    if isinstance(exc, TimeoutError):
        return f"the websocket did not open within {CONNECT_TIMEOUT:.0f}s"
    if isinstance(exc, aiohttp.ClientError | OSError):
        return f"Slack unreachable: {type(exc).__name__}: {exc}"
    return f"{type(exc).__name__}: {exc}"


class SocketLink:
    def __init__(
        self,
        bolt: AsyncApp,
        app_token: str,
        *,
        base_delay: float = 1.0,
        max_delay: float = 60.0,
    ) -> None:
        self.handler = AsyncSocketModeHandler(bolt, app_token, logger=_sdk_logger())
        self._token = app_token
        self._base = base_delay
        self._max = max_delay
        self._problem: str | None = "not connected yet"
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._keep_up(), name="socket-link")

    async def problem(self) -> str | None:
        """None while the link is up; else why it is down."""
        if self._problem is not None:
            return self._problem
        if not await self.handler.client.is_connected():
            return "disconnected from Slack; reconnecting"
        return None

    async def _keep_up(self) -> None:
        attempt = 0
        while True:
            try:
                await self._connect()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                attempt += 1
                self._problem = describe(exc)
                delay = random.uniform(self._base / 2, min(self._max, self._base * 2**attempt))
                log.warning(
                    "Socket Mode link failed (attempt %d): %s; retrying in %.1fs",
                    attempt,
                    self._problem,
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            self._problem = None
            log.info("taskbot connected over Socket Mode")
            return  # from here slack_sdk reconnects by itself; problem() tells how it goes

    async def _connect(self) -> None:
        client = self.handler.client
        # Asked here rather than inside client.connect(), which retries forever on its own.
        response = await client.web_client.apps_connections_open(app_token=self._token)
        client.wss_uri = str(response["url"])
        async with asyncio.timeout(CONNECT_TIMEOUT):  # not wait_for: it can lose a cancel
            await client.connect()  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.handler.close_async()  # type: ignore[no-untyped-call]
