"""GET /metrics on the real app: signed events in, Prometheus text out, parsed with
prometheus_client's own parser and checked against what the database recorded."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from bot.server import Running, start
from core.states import TaskStatus
from storage.models import AuditRow
from tests.e2e.conftest import SECRET, Harness, make_settings
from tests.e2e.test_approval_buttons import click
from tests.slackfake import payloads
from tests.slackfake.server import ApiError, Fail, FakeSlack
from tests.slackfake.signing import SignedSender

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(port: int) -> Samples:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain;")
        text = await response.text()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def audited_transitions(running: Running) -> Counter[str]:
    """Statuses entered according to the audit log (one row per committed transition)."""
    async with running.container.uow_factory(read_only=True) as uow:
        actions = (await uow.session.execute(select(AuditRow.action))).scalars()
        return Counter(a.split("->", 1)[1] for a in actions if "->" in a)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"TASKBOT_STALE_CHECK_SECONDS": 1}


async def test_metrics_count_events_retries_clicks_transitions_and_approvals(
    harness: Harness,
) -> None:
    port = harness.running.port
    envelope = payloads.im_message("buy 2 monitors for $300", user="U1", channel="D1")
    assert (await harness.sender.event(envelope)).status == 200
    assert (await harness.sender.event(envelope, retry_num=1)).status == 200
    forged = payloads.im_message("research laptops", user="U1", channel="D1")
    assert (await harness.sender.event(forged, bad_signature=True)).status == 401
    await harness.settle()

    m = await scrape(port)
    assert value(m, "taskbot_events_received_total", kind="message") == 2
    assert value(m, "taskbot_events_received_total", kind="unverified") == 1
    assert value(m, "taskbot_events_acked_total", kind="unverified") == 0
    assert value(m, "taskbot_events_acked_total", kind="message") == 2
    assert value(m, "taskbot_events_deduplicated_total", kind="message") == 1
    assert value(m, "taskbot_ack_latency_seconds_count", kind="message") == 2
    assert value(m, "taskbot_ack_latency_seconds_bucket", kind="message", le="+Inf") == 2
    assert value(m, "taskbot_approvals_pending") == 1

    approval = next(c for c in harness.posts() if "to approve" in str(c.params.get("text")))
    assert await click(harness, approval, "approval:approve", "UAPPROVER") == 200
    assert (await harness.sender.command(payloads.slash_command("pending"))).status == 200
    await harness.settle()

    m = await scrape(port)
    assert value(m, "taskbot_approvals_pending") == 0
    assert value(m, "taskbot_events_acked_total", kind="block_actions") == 1
    assert value(m, "taskbot_events_acked_total", kind="slash_command") == 1
    assert value(m, "taskbot_events_deduplicated_total", kind="block_actions") == 0

    audited = await audited_transitions(harness.running)
    assert audited[TaskStatus.COMPLETED] >= 1
    for status in TaskStatus:
        assert value(m, "taskbot_task_transitions_total", status=status.value) == audited[status], (
            status
        )
    assert value(m, "taskbot_outbox_backlog") == 0
    assert not any(name == "taskbot_slack_api_errors_total" for name, _ in m)


async def test_metrics_count_web_api_errors_and_show_the_outbox_backlog(
    harness: Harness,
) -> None:
    port = harness.running.port
    harness.slack.script("chat.postMessage", [ApiError("channel_not_found")])
    dm = payloads.im_message("research laptops", user="U1", channel="D2")
    assert (await harness.sender.event(dm)).status == 200
    await harness.settle()

    m = await scrape(port)
    errors = {
        labels: v for (name, labels), v in m.items() if name == "taskbot_slack_api_errors_total"
    }
    assert errors == {(("error", "channel_not_found"), ("method", "chat.postMessage")): 1}
    assert value(m, "taskbot_outbox_failed") == 1
    assert value(m, "taskbot_outbox_backlog") == 0
    assert value(m, "taskbot_outbox_oldest_age_seconds") == 0

    # Slack down: replies queue up, and the scrape reads the backlog from the database.
    harness.slack.script("chat.postMessage", [Fail(503)] * 200)
    dm = payloads.im_message("research monitors", user="U1", channel="D3")
    assert (await harness.sender.event(dm)).status == 200
    await harness.slack.wait_for("chat.postMessage", where=lambda c: c.status == 503)
    await harness.running.container.service.idle()

    m = await scrape(port)
    assert value(m, "taskbot_outbox_backlog") >= 1
    assert value(m, "taskbot_outbox_oldest_age_seconds") >= 0
    assert value(
        m, "taskbot_slack_api_errors_total", method="chat.postMessage", error="fatal_error"
    )
    assert value(m, "taskbot_database_up") == 1


async def test_metrics_count_job_runs_and_failures(harness: Harness) -> None:
    scheduler = harness.running.scheduler

    async def broken() -> int:
        raise RuntimeError("stale report broke")

    m = await scrape(harness.running.port)
    assert value(m, "taskbot_job_failures_total", job="stale-report") == 0
    scheduler.stale.run = broken  # type: ignore[method-assign]
    for _ in range(300):
        m = await scrape(harness.running.port)
        if value(m, "taskbot_job_failures_total", job="stale-report") and value(
            m, "taskbot_job_runs_total", job="recovery"
        ):
            break
        await asyncio.sleep(0.05)
    assert value(m, "taskbot_job_failures_total", job="stale-report") >= 1
    assert value(m, "taskbot_job_runs_total", job="recovery") >= 1
    assert value(m, "taskbot_job_runs_total", job="heartbeat") >= 1
    assert value(m, "taskbot_job_failures_total", job="recovery") == 0


async def test_two_apps_in_one_process_keep_their_own_counts(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = await start(make_settings(tmp_path / "a", fake_slack))
    second = await start(make_settings(tmp_path / "b", fake_slack))
    try:
        async with SignedSender(f"http://127.0.0.1:{first.port}/slack/events", SECRET) as s:
            assert (await s.event(payloads.im_message("research desks"))).status == 200
        a, b = await scrape(first.port), await scrape(second.port)
        assert value(a, "taskbot_events_received_total", kind="message") == 1
        assert value(b, "taskbot_events_received_total", kind="message") == 0
    finally:
        await first.stop()
        await second.stop()


async def test_metrics_are_served_and_counted_in_socket_mode(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    settings = make_settings(
        tmp_path, fake_slack, SLACK_APP_TOKEN="xapp-1-test", SLACK_SIGNING_SECRET=None
    )
    running = await start(settings)
    try:
        await fake_slack.socket_mode.connected()
        envelope = payloads.im_message("research office chairs", user="U1", channel="D1")
        first = await fake_slack.socket_mode.push(envelope)
        again = await fake_slack.socket_mode.push(envelope, retry_attempt=1)
        await fake_slack.socket_mode.ack_for(first)
        await fake_slack.socket_mode.ack_for(again)
        m = await scrape(running.port)
        assert value(m, "taskbot_events_received_total", kind="message") == 2
        assert value(m, "taskbot_events_acked_total", kind="message") == 2
        assert value(m, "taskbot_events_deduplicated_total", kind="message") == 1
    finally:
        await running.stop()
