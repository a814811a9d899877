"""Database restart mid-step, end to end on PostgreSQL: the real app (HTTP, outbox
sender, scheduler) reaches PostgreSQL through a loopback TCP proxy that is cut
while the research agent runs a DM request, then restored. The requester still
gets the answer in Slack. The shared PostgreSQL server is never restarted."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from sqlalchemy.engine import make_url

from bot.container import build
from bot.server import start
from core.states import TaskStatus
from tests.e2e.conftest import SECRET, Harness, make_settings
from tests.slackfake import payloads
from tests.slackfake.server import FakeSlack
from tests.slackfake.signing import SignedSender
from tests.unit.core.helpers import Recorder
from tests.unit.core.jobs.conftest import Gate, GatedResearch
from tests.unit.storage.tcp_proxy import TcpProxy


async def test_database_restart_mid_step_the_requester_still_gets_the_answer(
    tmp_path: Path, fake_slack: FakeSlack, postgres_url: str
) -> None:
    url = make_url(postgres_url)
    proxy = await TcpProxy(url.host or "127.0.0.1", url.port or 5432).start()
    via = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    settings = make_settings(tmp_path, fake_slack, DATABASE_URL=via)
    container = await build(settings)
    gate = Gate()
    container.registry.register(GatedResearch(Recorder(), gate), replace=True)
    container.service.orchestrator.executor.record_backoff_seconds = 0.05
    running = await start(settings, container=container)
    sender = SignedSender(f"http://127.0.0.1:{running.port}/slack/events", SECRET)
    try:
        async with sender:
            h = Harness(fake_slack, sender, running, settings)
            envelope = payloads.im_message("research standing desks", user="U1", channel="D1")
            assert (await h.sender.event(envelope)).status == 200
            await gate.wait_started()

            proxy.cut()  # the database goes away while the agent works
            gate.release.set()
            async with asyncio.timeout(30):
                while proxy.refused < 3:
                    await asyncio.sleep(0.01)
            proxy.restore()
            await h.settle()

            async with container.uow_factory() as uow:
                done = await uow.tasks.by_source_event(envelope["event_id"])
            assert done is not None and done.status is TaskStatus.COMPLETED
            answers = await fake_slack.wait_for(
                "chat.postMessage",
                timeout=30,
                where=lambda c: (
                    c.params.get("channel") == "D1" and "research result" in json.dumps(c.params)
                ),
            )
            assert len(answers) == 1
    finally:
        gate.release.set()
        proxy.restore()
        await running.stop()
        await proxy.close()
