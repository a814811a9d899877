"""`python -m bot`: serve Slack over HTTP (or Socket Mode) until SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp

from bot.api import mount_api
from bot.container import Container, build
from bot.health import health_route
from bot.metrics import Metrics, metrics_route
from bot.scheduler import JobScheduler
from bot.settings import Settings
from bot.slack_app import build_app, web_client
from bot.slack_notifier import SlackNotifier

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024


@dataclass
class Running:
    container: Container
    bolt: AsyncApp
    scheduler: JobScheduler
    sender: asyncio.Task[None]
    metrics: Metrics
    webhook_sender: asyncio.Task[None] | None = None
    runner: web.AppRunner | None = None
    socket_handler: object | None = None
    http: aiohttp.ClientSession | None = None

    @property
    def port(self) -> int:
        assert self.runner is not None
        for site in self.runner.sites:
            server = getattr(site, "_server", None)
            if server is not None and server.sockets:
                return int(server.sockets[0].getsockname()[1])
        raise RuntimeError("not listening")

    async def stop(self) -> None:
        """Stop taking requests, let in-flight work finish (or leave it resumable), close."""
        if self.runner is not None:
            await self.runner.cleanup()
        if self.socket_handler is not None:
            await self.socket_handler.close_async()  # type: ignore[attr-defined]
        await self.container.service.background.close(grace=10)
        self.scheduler.shutdown()
        for task in (self.sender, self.webhook_sender):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.container.webhooks is not None:
            await self.container.webhooks.close()
        if self.container.dispatcher is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.container.dispatcher.drain(), timeout=5)
        await self.container.uow.dispose()
        if self.http is not None:
            await self.http.close()


def web_application(
    bolt: AsyncApp, container: Container, scheduler: JobScheduler, metrics: Metrics
) -> web.Application:
    async def slack_events(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await bolt.async_dispatch(await to_bolt_request(request)))

    application = web.Application(client_max_size=MAX_BODY)
    application.add_routes(
        [
            web.post("/slack/events", slack_events),
            health_route(container, lambda: scheduler.running),
            metrics_route(metrics, container),
        ]
    )
    mount_api(application, container)
    return application


async def start(settings: Settings, container: Container | None = None) -> Running:
    container = container or await build(settings)
    metrics = Metrics()
    container.uow.on_transition(metrics.task_transitioned)
    http = aiohttp.ClientSession()
    client = web_client(settings, metrics, http)
    dispatcher = container.attach_notifier(SlackNotifier(client))
    bolt = build_app(settings, container.service, client, metrics)
    scheduler = JobScheduler(container, settings, metrics)
    await scheduler.heartbeat()
    await scheduler.recover()
    scheduler.start()
    await container.service.resume_unfinished()
    sender = asyncio.get_running_loop().create_task(dispatcher.run_forever(), name="outbox")
    running = Running(container, bolt, scheduler, sender, metrics, http=http)
    if (webhooks := container.attach_webhooks()) is not None:
        running.webhook_sender = asyncio.get_running_loop().create_task(
            webhooks.run_forever(), name="webhooks"
        )
    if settings.socket_mode:
        from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler

        assert settings.slack_app_token is not None
        handler = AsyncSocketModeHandler(bolt, settings.slack_app_token.get_secret_value())
        await handler.connect_async()  # type: ignore[no-untyped-call]
        running.socket_handler = handler
        log.info("taskbot connected over Socket Mode")
    runner = web.AppRunner(web_application(bolt, container, scheduler, metrics), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    running.runner = runner
    log.info(
        "taskbot listening on %s:%s (POST /slack/events, GET /healthz, GET /metrics)",
        settings.host,
        running.port,
    )
    return running


async def serve(settings: Settings) -> None:
    running = await start(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await running.stop()
