"""`python -m bot`: serve Slack over HTTP (or Socket Mode) until SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from dataclasses import dataclass
from functools import partial

import aiohttp
from aiohttp import web
from slack_bolt.async_app import AsyncApp

from bot.api import mount_api
from bot.container import Container, build
from bot.health import health_route
from bot.metrics import Metrics, metrics_route
from bot.scheduler import JobScheduler
from bot.settings import Settings
from bot.slack_app import build_app, record_refused, web_client
from bot.slack_gate import slack_events
from bot.slack_notifier import SlackNotifier
from bot.socket_link import SocketLink
from bot.views.status import folded_into_status

log = logging.getLogger(__name__)

#: how long shutdown waits for the cancelled outbox senders before it goes on
STOP_SENDERS_SECONDS = 5.0

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
    socket_link: SocketLink | None = None
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
        if self.socket_link is not None:
            await self.socket_link.close()
        await self.container.service.close(grace=10)
        self.scheduler.shutdown()
        senders = {task for task in (self.sender, self.webhook_sender) if task is not None}
        for task in senders:
            task.cancel()
        if senders:
            _done, stuck = await asyncio.wait(senders, timeout=STOP_SENDERS_SECONDS)
            if stuck:  # what they were sending stays claimed and goes after a restart
                log.error("outbox senders did not stop within %ss", STOP_SENDERS_SECONDS)
        if self.container.webhooks is not None:
            await self.container.webhooks.close()
        if self.container.dispatcher is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.container.dispatcher.drain(), timeout=5)
        await self.container.uow_factory.dispose()
        if self.container.model is not None:
            await self.container.model.close()
        if self.http is not None:
            await self.http.close()


def routes(
    settings: Settings,
    bolt: AsyncApp,
    container: Container,
    scheduler: JobScheduler,
    metrics: Metrics,
    link: SocketLink | None,
) -> list[web.RouteDef]:
    """The port's own routes, by section (the HTTP API is mounted beside them, see
    `web_application`):

    1. read-only operator endpoints (GET /healthz, GET /metrics): both modes;
    2. Slack's request URL, POST /slack/events: HTTP mode only, behind the signature
       check. In Socket Mode Slack talks over the websocket: nothing here reaches Bolt.
    """
    served: list[web.RouteDef] = [
        health_route(container, lambda: scheduler.running, link.problem if link else None),
        metrics_route(metrics, container),
    ]
    if not settings.socket_mode:
        if settings.slack_signing_secret is None:
            raise ValueError("HTTP mode needs SLACK_SIGNING_SECRET to check requests")
        secret = settings.slack_signing_secret.get_secret_value()
        refused = partial(record_refused, metrics)
        served.append(web.post("/slack/events", slack_events(bolt, secret, refused)))
    return served


def web_application(served: list[web.RouteDef], container: Container) -> web.Application:
    application = web.Application(client_max_size=MAX_BODY)
    application.add_routes(served)
    # the HTTP API under /api/v1/, with its own bearer auth: both modes
    mount_api(application, container)
    return application


def _settle_heap() -> None:
    """Move everything start-up made (modules, the app, caches) out of the collector's
    sight: a full collection then looks only at what requests leave behind, and does
    not stop every request in flight for tens of milliseconds under a burst. Once per
    process: what is frozen is never collected, so an app started and stopped again
    (as tests do) must not freeze."""
    gc.collect()
    gc.freeze()


async def start(settings: Settings, container: Container | None = None) -> Running:
    container = container or await build(settings)
    metrics = Metrics()
    metrics.watch_webhooks(container)
    container.uow_factory.on_transition(metrics.task_transitioned)
    http = aiohttp.ClientSession()
    client = web_client(settings, metrics, http)
    dispatcher = container.attach_notifier(SlackNotifier(client), unshown=folded_into_status)
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
        assert settings.slack_app_token is not None
        running.socket_link = SocketLink(bolt, settings.slack_app_token.get_secret_value())
    served = routes(settings, bolt, container, scheduler, metrics, running.socket_link)
    runner = web.AppRunner(web_application(served, container), access_log=None)
    await runner.setup()
    await container.uow_factory.warm_up()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    running.runner = runner
    paths = ", ".join([*(f"{r.method} {r.path}" for r in served), "/api/v1/"])
    log.info("taskbot listening on %s:%s (%s)", settings.host, running.port, paths)
    if running.socket_link is not None:
        # served from the start: /healthz says 503 with the reason while the link is down
        running.socket_link.start()
    return running


async def serve(settings: Settings) -> None:
    """The process's one app, until SIGTERM or SIGINT."""
    running = await start(settings)
    _settle_heap()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await running.stop()
