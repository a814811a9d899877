"""Two real `python -m bot` processes on one database: each stale report goes out once."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.e2e.process import BotProcess, bot_env, free_port
from tests.slackfake import payloads
from tests.slackfake.server import FakeSlack
from tests.slackfake.signing import SignedSender

SECRET = "two-processes-secret"
STALE = 4  # seconds; escalation steps at 4 s, 8 s, 16 s of age


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    return str(request.getfixturevalue("postgres_url"))


def listed_in_reports(slack: FakeSlack) -> Counter[int]:
    """How many report digests listed each task id."""
    seen: Counter[int] = Counter()
    for call in slack.calls_to("chat.postMessage"):
        if call.ok and call.params["channel"] == "CREPORT":
            ids = set(re.findall(r"`#(\d+)`", json.dumps(call.params["blocks"])))
            seen.update(int(i) for i in ids)
    return seen


async def test_each_stale_task_is_reported_once_per_step_across_processes(
    fake_slack: FakeSlack, shared_database: str, tmp_path: Path
) -> None:
    extra = {
        "TASKBOT_STALE_CHECK_SECONDS": "1",
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
        first = listed_in_reports(fake_slack)
        await until(STALE * 4 - 2)  # past step 2, not yet step 3
        second = listed_in_reports(fake_slack)
        for bot in bots:
            assert bot.proc is not None and bot.proc.poll() is None, bot.log_tail()
    finally:
        codes = [bot.stop() for bot in bots]
    assert sorted(first) == [1, 2, 3, 4], fake_slack.dump_calls()
    assert set(first.values()) == {1}, first
    assert set(second.values()) == {2}, second
    assert codes == [0, 0]
