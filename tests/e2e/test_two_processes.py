"""Two real `python -m bot` processes on one database: each stale report goes out once."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

import pytest

from tests.e2e.process import BotProcess, bot_env, free_port
from tests.slackfake import payloads
from tests.slackfake.server import FakeSlack
from tests.slackfake.signing import SignedSender

SECRET = "two-processes-secret"
STALE = 3  # seconds; escalation steps at 3 s, 6 s, 12 s of age, checked every 0.25 s


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    return str(request.getfixturevalue("postgres_url"))


def versions(slack: FakeSlack) -> list[set[int]]:
    """The day's digest as it was posted and then updated: the task ids of each version."""
    calls = [
        c
        for c in slack.calls
        if c.method in ("chat.postMessage", "chat.update")
        and c.ok
        and c.params["channel"] == "CREPORT"
    ]
    return [
        {int(i) for i in re.findall(r"`#(\d+)`", json.dumps(c.params["blocks"]))} for c in calls
    ]


async def test_each_stale_task_is_reported_once_per_step_across_processes(
    fake_slack: FakeSlack, shared_database: str, tmp_path: Path
) -> None:
    extra = {
        "TASKBOT_STALE_CHECK_SECONDS": "0.25",
        "TASKBOT_STALE_AFTER_SECONDS": str(STALE),
        "TASKBOT_REPORT_CHANNEL": "CREPORT",
        "TASKBOT_APPROVERS": "UAPPROVER",
    }
    bots = []
    for name in ("a", "b"):
        port = free_port()
        env = bot_env(fake_slack, SECRET, shared_database, port, **extra)
        bots.append(BotProcess(env, port, tmp_path / f"bot-{name}.log"))
    try:
        for bot in bots:
            await bot.start()
        started = time.monotonic()
        for n, bot in enumerate([*bots, *bots]):
            async with SignedSender(bot.url + "/slack/events", SECRET) as sender:
                envelope = payloads.im_message(f"buy {n + 1} chairs for $10", user=f"U{n}")
                assert (await sender.event(envelope)).status == 200

        async def until(age: float) -> None:
            await asyncio.sleep(max(0.0, started + age - time.monotonic()))

        await until(STALE * 2 - 1)  # every task is past step 1, none past step 2
        first = versions(fake_slack)
        await until(STALE * 4 - 2)  # past step 2, not yet step 3
        second = versions(fake_slack)
        for bot in bots:
            assert bot.proc is not None and bot.proc.poll() is None, bot.log_tail()
    finally:
        codes = [bot.stop() for bot in bots]
    # one message for the day, posted once by the two processes together...
    posts = [c for c in fake_slack.calls_to("chat.postMessage") if c.params["channel"] == "CREPORT"]
    assert len(posts) == 1, fake_slack.dump_calls()
    # ...showing every stale task, changed only when a task escalated: at most one
    # version per task and step, so no escalation was reported twice
    assert first and first[-1] == {1, 2, 3, 4}, first
    assert 1 <= len(first) <= 4, first
    assert second[-1] == {1, 2, 3, 4} and 1 <= len(second) - len(first) <= 4, second
    assert codes == [0, 0]
