"""GET /healthz: is the database reachable, is the scheduler running, is Slack keeping up,
is any step stuck (running longer than every attempt timing out plus a margin)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from aiohttp import web

from bot.container import Container

#: why the Slack link is down (None while it is up); absent in HTTP mode
LinkProblem = Callable[[], Awaitable[str | None]]


async def health_report(
    container: Container, scheduler_running: bool, link_problem: LinkProblem | None = None
) -> tuple[int, dict[str, Any]]:
    now = container.clock.now()
    report: dict[str, Any] = {"database": "ok", "scheduler": scheduler_running}
    down = await link_problem() if link_problem is not None else None
    if link_problem is not None:
        report["slack_link"] = "ok" if down is None else f"down: {down}"
    try:
        async with container.uow_factory(read_only=True) as uow:
            pending, oldest, failed = await uow.outbox.backlog(now)
            failures = await uow.outbox.recent_failures(5)
            stuck_after = container.policy.stuck_after_seconds
            stuck = await uow.tasks.running_since(now - timedelta(seconds=stuck_after), 20)
    except Exception as exc:
        report["database"] = f"unreachable: {type(exc).__name__}"
        report["status"] = "down"
        return 503, report
    report["outbox"] = {
        "undelivered": pending,
        "oldest_undelivered_seconds": int((now - oldest).total_seconds()) if oldest else None,
        "failed": failed,
        "recent_failures": [{**f, "at": str(f.get("at"))} for f in failures],
    }
    if container.webhooks is not None:
        stats = container.webhooks.stats
        report["webhooks"] = {
            "delivered": stats.delivered,
            "retried": stats.retried,
            "gave_up": stats.gave_up,
            "recent_failures": [
                {**f, "at": str(f.get("at"))} for f in failures if f.get("kind") == "webhook"
            ],
        }
    report["stuck_steps"] = {
        "after_seconds": stuck_after,
        "count": len(stuck),
        "tasks": [
            {
                "id": t.id,
                "agent": t.agent,
                "worker": t.worker,
                "running_seconds": int((now - t.started_at).total_seconds())
                if t.started_at
                else None,
            }
            for t in stuck
        ],
    }
    if down is not None:
        # Slack cannot reach us: nothing anyone says to the bot arrives
        report["status"] = "down"
        return 503, report
    if stuck:
        report["status"] = "stuck"
        return 503, report
    report["status"] = "ok" if scheduler_running else "degraded"
    return 200, report


def health_route(
    container: Container, scheduler_running: Any, link_problem: LinkProblem | None = None
) -> web.RouteDef:
    async def healthz(_request: web.Request) -> web.Response:
        status, body = await health_report(container, bool(scheduler_running()), link_problem)
        return web.json_response(body, status=status)

    return web.get("/healthz", healthz)
