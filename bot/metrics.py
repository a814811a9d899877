"""Prometheus metrics for one running app, served at GET /metrics.

Each app gets its own CollectorRegistry, so tests and two apps in one process
never share counters. Counters are bumped where things happen (Bolt dispatch,
the Web API client, committed transitions, scheduled jobs); the outbox and
approval gauges are read from the database at scrape time, so they are right
whichever process did the work.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from core.states import TaskStatus
from storage.stats import pending_approvals

if TYPE_CHECKING:
    from bot.container import Container

log = logging.getLogger(__name__)

#: Slack wants an ack within 3 s; the buckets resolve that neighbourhood
ACK_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.events_received = self._counter(
            "taskbot_events_received", "Slack requests received (events, commands, clicks)", "kind"
        )
        self.events_acked = self._counter(
            "taskbot_events_acked", "Slack requests answered with HTTP 200", "kind"
        )
        self.events_deduplicated = self._counter(
            "taskbot_events_deduplicated",
            "Slack event deliveries recognised as already accepted (retries)",
            "kind",
        )
        self.ack_latency = Histogram(
            "taskbot_ack_latency_seconds",
            "Time from receiving a Slack request to the ack (listener work included)",
            ["kind"],
            buckets=ACK_BUCKETS,
            registry=self.registry,
        )
        self.transitions = self._counter(
            "taskbot_task_transitions",
            "Committed task status changes, by the status entered",
            "status",
        )
        self.web_api_errors = self._counter(
            "taskbot_slack_api_errors",
            "Slack Web API calls that failed, by method and error code",
            "method",
            "error",
        )
        self.job_runs = self._counter(
            "taskbot_job_runs", "Scheduled job runs this process performed", "job"
        )
        self.job_failures = self._counter(
            "taskbot_job_failures", "Scheduled job runs that raised", "job"
        )
        self.outbox_backlog = self._gauge(
            "taskbot_outbox_backlog", "Replies written but not yet delivered"
        )
        self.outbox_oldest_age = self._gauge(
            "taskbot_outbox_oldest_age_seconds", "Age of the oldest undelivered reply (0 when none)"
        )
        self.outbox_failed = self._gauge(
            "taskbot_outbox_failed", "Replies given up on (permanent errors)"
        )
        self.approvals_pending = self._gauge(
            "taskbot_approvals_pending", "Approvals waiting for a decision"
        )
        self.database_up = self._gauge(
            "taskbot_database_up", "1 when the last scrape could read the database"
        )
        for status in TaskStatus:
            self.transitions.labels(status.value)

    def _counter(self, name: str, documentation: str, *labels: str) -> Counter:
        return Counter(name, documentation, labels, registry=self.registry)

    def _gauge(self, name: str, documentation: str) -> Gauge:
        return Gauge(name, documentation, registry=self.registry)

    def watch_webhooks(self, container: Container) -> None:
        """Count webhook deliveries (delivered, retried, given up) as the sender counts them."""
        self.registry.register(_WebhookDeliveries(container))

    def request(self, kind: str, status: int, outcome: str | None, seconds: float) -> None:
        self.events_received.labels(kind).inc()
        if 200 <= status < 300:
            self.events_acked.labels(kind).inc()
            self.ack_latency.labels(kind).observe(seconds)
        if outcome == "duplicate":
            self.events_deduplicated.labels(kind).inc()

    def task_transitioned(self, status: TaskStatus) -> None:
        self.transitions.labels(status.value).inc()

    def web_api_error(self, method: str, error: str) -> None:
        self.web_api_errors.labels(method, error).inc()

    def job_ran(self, job: str) -> None:
        self.job_runs.labels(job).inc()

    def job_failed(self, job: str) -> None:
        self.job_failures.labels(job).inc()

    async def refresh(self, container: Container) -> None:
        """Set the gauges from the database (at scrape time)."""
        now = container.clock.now()
        try:
            async with container.uow_factory(read_only=True) as uow:
                pending, oldest, failed = await uow.outbox.backlog(now)
                approvals = await pending_approvals(uow.session)
        except Exception:
            log.warning("metrics: database unreachable", exc_info=True)
            self.database_up.set(0)
            return
        self.database_up.set(1)
        self.outbox_backlog.set(pending)
        self.outbox_oldest_age.set(max(0.0, (now - oldest).total_seconds()) if oldest else 0)
        self.outbox_failed.set(failed)
        self.approvals_pending.set(approvals)


class _WebhookDeliveries(Collector):
    """Reads the webhook sender's own counters at scrape time (zero without webhooks)."""

    def __init__(self, container: Container) -> None:
        self._container = container

    def collect(self) -> Any:
        family = CounterMetricFamily(
            "taskbot_webhook_deliveries",
            "Webhook delivery attempts by outcome (delivered, retried, gave_up)",
            labels=["outcome"],
        )
        sender = self._container.webhooks
        for outcome in ("delivered", "retried", "gave_up"):
            family.add_metric([outcome], getattr(sender.stats, outcome) if sender else 0)
        yield family


class WebApiErrors(AsyncRetryHandler):
    """Counts failed Web API calls; never asks for a retry.

    slack_sdk consults every retry handler about every response and every
    exception, and Bolt's per-request clients copy the app client's handlers, so
    this sees the notifier's calls and the listeners' alike. Put it last: it is
    only asked when no earlier handler retried.
    """

    def __init__(self, metrics: Metrics) -> None:
        super().__init__(max_retry_count=1 << 30)
        self._metrics = metrics

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        error_code = _error_code(response, error)
        if error_code is not None:
            self._metrics.web_api_error(_method(request.url), error_code)
        return False


def _method(url: str) -> str:
    return urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1] or "unknown"


def _error_code(response: HttpResponse | None, error: Exception | None) -> str | None:
    if error is not None:
        status = getattr(getattr(error, "response", None), "status", None)
        if isinstance(error, SlackApiError) and isinstance(status, int):
            return f"http_{status}"  # a body that was not JSON (an HTML error page)
        return type(error).__name__
    if response is None:
        return None
    body: Any = response.body
    if isinstance(body, dict) and body.get("ok") is False:
        return str(body.get("error") or f"http_{response.status_code}")
    if response.status_code >= 400:
        return f"http_{response.status_code}"
    return None


def metrics_route(metrics: Metrics, container: Container) -> web.RouteDef:
    """GET /metrics: read-only, for Prometheus; served in HTTP and Socket Mode."""

    async def scrape(request: web.Request) -> web.Response:
        await metrics.refresh(container)
        encode, content_type = choose_encoder(request.headers.get("Accept", ""))
        return web.Response(body=encode(metrics.registry), headers={"Content-Type": content_type})

    return web.get("/metrics", scrape)
