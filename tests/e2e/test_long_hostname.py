"""The real `python -m bot` on a host with a 63-character hostname (set in a UTS
namespace of its own with `unshare --uts`): it starts, holds its liveness lease
and runs a request, on PostgreSQL (which enforces VARCHAR(64)) and SQLite."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from storage.models import LeaseRow, TaskRow
from storage.uow import SqlUnitOfWorkFactory
from tests.e2e.process import REPO, BotProcess, bot_env, free_port
from tests.slackfake import payloads
from tests.slackfake.server import FakeSlack
from tests.slackfake.signing import SignedSender

SECRET = "long-hostname-secret"
HOSTNAME = "ip-172-31-20-51.eu-west-2.compute.internal.build-runner-0042abc"
assert len(HOSTNAME) == 63


def _can_unshare() -> str | None:
    if shutil.which("unshare") is None:
        return "no unshare binary"
    probe = subprocess.run(
        ["unshare", "--uts", "sh", "-c", f"hostname {HOSTNAME} && hostname"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0 or probe.stdout.strip() != HOSTNAME:
        return f"unshare --uts not permitted here: {probe.stderr.strip()}"
    return None


class LongHostnameBot(BotProcess):
    """`python -m bot` in a UTS namespace whose hostname is HOSTNAME."""

    async def start(self, timeout: float = 30.0) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    "unshare",
                    "--uts",
                    "sh",
                    "-c",
                    'hostname "$0" && exec "$1" -m bot',
                    HOSTNAME,
                    sys.executable,
                ],
                cwd=REPO,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        await self.wait_healthy(timeout)


async def test_a_63_character_hostname_starts_and_works(
    fake_slack: FakeSlack, database: str, tmp_path: Path
) -> None:
    if (problem := _can_unshare()) is not None:
        pytest.skip(problem)
    port = free_port()
    bot = LongHostnameBot(bot_env(fake_slack, SECRET, database, port), port, tmp_path / "bot.log")
    try:
        await bot.start()
        async with SignedSender(bot.url + "/slack/events", SECRET) as sender:
            envelope = payloads.im_message("research laptops", user="U1", channel="D1")
            assert (await sender.event(envelope)).status == 200
        await fake_slack.wait_for(
            "chat.postMessage",
            timeout=30,
            where=lambda c: c.ok and str(c.params.get("text", "")).startswith("Done:"),
        )
        uow_factory = SqlUnitOfWorkFactory.from_url(database)
        try:
            async with uow_factory(read_only=True) as unit:
                leases = (await unit.session.execute(select(LeaseRow))).scalars().all()
                workers = (await unit.session.execute(select(TaskRow.worker))).scalars().all()
        finally:
            await uow_factory.dispose()
        assert bot.proc is not None and bot.proc.poll() is None, bot.log_tail()
    finally:
        code = bot.stop()
    assert code == 0, bot.log_tail()
    (lease,) = [row for row in leases if row.name.startswith("worker:")]
    assert len(lease.name) <= 64
    assert lease.name.startswith("worker:ip-172-31-20-51.eu-west-2.compute.")  # still readable
    assert workers == [lease.holder]
    assert "Traceback" not in bot.log_tail(400), bot.log_tail()
