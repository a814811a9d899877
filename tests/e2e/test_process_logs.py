"""What a running `python -m bot` (and `taskbot console`) writes at INFO with
LOG_FORMAT=json: one JSON object per line, one line per Slack request, no
scheduler ticks, no Alembic set-up chatter, no token, secret or user text."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.server import start
from tests.e2e.conftest import SECRET as E2E_SECRET
from tests.e2e.conftest import make_settings
from tests.e2e.process import REPO, BotProcess, bot_env, free_port
from tests.e2e.test_metrics import scrape, value
from tests.slackfake import payloads
from tests.slackfake.server import FakeSlack
from tests.slackfake.signing import SignedSender

SECRET = "logs-signing-secret-value"
TOKEN = "xoxb-logs-test-token"
USER_TEXT = "research laptops for the zebracorn project"
CHATTER = ("Running job", "executed successfully", "Context impl", "Will assume", "setup plugin")


def records(log: str) -> list[dict[str, Any]]:
    """Every line the process wrote, as JSON (the harness's own start markers aside)."""
    lines = [line for line in log.splitlines() if line and not line.startswith("----- ")]
    parsed = []
    for line in lines:
        record = json.loads(line)  # raises on any line that is not one JSON object
        assert isinstance(record, dict), line
        for key in ("timestamp", "level", "logger", "message"):
            assert key in record, line
        parsed.append(record)
    return parsed


def assert_quiet_and_clean(log: str, parsed: list[dict[str, Any]]) -> None:
    for leaked in (TOKEN, SECRET, "zebracorn"):
        assert leaked not in log
    for record in parsed:
        if record["level"] == "INFO":
            assert not record["logger"].startswith("apscheduler"), record
            assert not record["logger"].startswith("alembic.runtime.plugins"), record
            assert not any(c in record["message"] for c in CHATTER), record


@pytest.fixture
async def bot(tmp_path: Path, fake_slack: FakeSlack) -> AsyncIterator[BotProcess]:
    port = free_port()
    env = bot_env(
        fake_slack,
        SECRET,
        f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
        port,
        SLACK_BOT_TOKEN=TOKEN,
        LOG_FORMAT="json",
        LOG_LEVEL="INFO",
        TASKBOT_STALE_CHECK_SECONDS="0.25",
    )
    process = BotProcess(env, port, tmp_path / "bot.log")
    try:
        yield process
    finally:
        process.stop()


async def test_json_logs_one_line_per_request_and_no_tick_or_migration_chatter(
    bot: BotProcess, fake_slack: FakeSlack
) -> None:
    await bot.start()
    envelope = payloads.im_message(USER_TEXT, user="U1", channel="D1")
    async with SignedSender(bot.url + "/slack/events", SECRET) as sender:
        assert (await sender.event(envelope)).status == 200
        assert (await sender.event(envelope, retry_num=1)).status == 200
        assert (await sender.command(payloads.slash_command("pending"))).status == 200
        assert (await sender.event(envelope, bad_signature=True)).status == 401
    await fake_slack.wait_for("chat.postMessage", count=1, timeout=30)  # the one answer
    # Let the scheduler tick several times (heartbeat every 0.5 s, stale report every 0.25 s).
    for _ in range(400):
        if value(await scrape(bot.port), "taskbot_job_runs_total", job="stale-report") >= 3:
            break
        await asyncio.sleep(0.05)
    assert value(await scrape(bot.port), "taskbot_job_runs_total", job="heartbeat") >= 3
    assert bot.stop() == 0

    log = bot.log_path.read_text()
    parsed = records(log)
    assert_quiet_and_clean(log, parsed)

    requests = [r for r in parsed if r["logger"] == "taskbot.requests"]
    assert [r["level"] for r in requests] == ["INFO"] * 4, requests
    first, retry, command, forged = requests
    assert first["kind"] == "message" and first["outcome"] == "accepted"
    assert first["event_id"] == envelope["event_id"] and isinstance(first["task_id"], int)
    assert retry["outcome"] == "duplicate" and retry["retry"] == "1"
    assert retry["task_id"] == first["task_id"]
    assert command["kind"] == "slash_command" and command["status"] == 200
    assert forged["status"] == 401 and forged["outcome"] == "http_401"
    assert forged["kind"] == "unverified" and forged["event_id"] is None
    for r in requests:
        assert isinstance(r["duration_ms"], int | float)
    # Schema upgrade steps are news; they stay at INFO.
    assert any(r["message"].startswith("Running upgrade") for r in parsed)


def test_console_logs_json_without_migration_chatter(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'console.db'}",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        "SLACK_BOT_TOKEN": TOKEN,
    }
    for _ in range(2):  # a fresh database, then one already at head
        done = subprocess.run(
            [sys.executable, "-c", "from bot.cli import main; main()", "console", "--user", "U1"],
            cwd=REPO,
            env=env,
            input=f"{USER_TEXT}\nquit\n",
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert "Sources:" in done.stdout
        assert_quiet_and_clean(done.stderr, records(done.stderr))
    assert not any(r["logger"].startswith("alembic") for r in records(done.stderr))


async def test_a_job_run_that_did_something_is_one_info_line(
    tmp_path: Path, fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    settings = make_settings(
        tmp_path,
        fake_slack,
        TASKBOT_STALE_AFTER_SECONDS=1,
        TASKBOT_STALE_CHECK_SECONDS=0.25,
        TASKBOT_REPORT_CHANNEL="COPS",
    )
    running = await start(settings)
    runs = 0.0
    try:
        async with SignedSender(f"http://127.0.0.1:{running.port}/slack/events", E2E_SECRET) as s:
            dm = payloads.im_message("buy 2 monitors for $300", user="U1", channel="D1")
            assert (await s.event(dm)).status == 200
        await fake_slack.wait_for("chat.postMessage", where=lambda c: c.params["channel"] == "COPS")
        for _ in range(400):  # several runs, most with nothing (new) to report
            runs = value(await scrape(running.port), "taskbot_job_runs_total", job="stale-report")
            if runs >= 4:
                break
            await asyncio.sleep(0.05)
    finally:
        await running.stop()
    reports = [c for c in fake_slack.calls_to("chat.postMessage") if c.params["channel"] == "COPS"]
    jobs = [r for r in caplog.records if r.name == "bot.scheduler"]
    assert runs >= 4 and 1 <= len(jobs) < runs
    # (a run cut short by the shutdown may have logged a report it could not post)
    assert len(reports) <= len(jobs) <= len(reports) + 1
    for r in jobs:
        assert (r.levelname, r.job, r.count) == ("INFO", "stale-report", 1)  # type: ignore[attr-defined]
