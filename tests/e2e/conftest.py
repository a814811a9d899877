"""Starts the real Bolt app on a local port against a fake Slack Web API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from bot.server import Running, start
from bot.settings import Settings
from tests.slackfake.server import Call, FakeSlack
from tests.slackfake.signing import SignedSender

if TYPE_CHECKING:
    from tests.e2e.api_helpers import Api

SECRET = "e2e-signing-secret"


@dataclass
class Harness:
    slack: FakeSlack
    sender: SignedSender
    running: Running
    settings: Settings

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.running.port}"

    async def settle(self) -> None:
        """Wait until background work and the outbox are both drained."""
        service = self.running.container.service
        dispatcher = self.running.container.dispatcher
        assert dispatcher is not None
        while True:
            await service.idle()
            await dispatcher.drain()
            if not service.busy:
                return

    def posts(self, where: Callable[[Call], bool] = lambda c: True) -> list[Call]:
        return [c for c in self.slack.calls_to("chat.postMessage") if c.ok and where(c)]

    def dump(self, method: str) -> str:
        return json.dumps([c.params for c in self.slack.calls_to(method)])


def make_settings(tmp_path: Path, slack: FakeSlack, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "SLACK_BOT_TOKEN": "xoxb-e2e-test-token",
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": slack.base_url,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'taskbot.db'}",
        "HOST": "127.0.0.1",
        "PORT": 0,
        "TASKBOT_APPROVERS": "UAPPROVER",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {}


@pytest.fixture
async def harness(
    tmp_path: Path, fake_slack: FakeSlack, settings_overrides: dict[str, Any]
) -> AsyncIterator[Harness]:
    settings = make_settings(tmp_path, fake_slack, **settings_overrides)
    running = await start(settings)
    sender = SignedSender(f"http://127.0.0.1:{running.port}/slack/events", SECRET)
    async with sender:
        yield Harness(fake_slack, sender, running, settings)
    await running.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL for a bot process the test starts itself, on either engine."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def api(harness: Harness) -> AsyncIterator[Api]:
    """The HTTP API of the harness's bot, with a token for U1."""
    from bot.api.auth import create_token
    from tests.e2e.api_helpers import Api

    _id, token = await create_token(harness.running.container.uow_factory, "U1", "test")
    async with aiohttp.ClientSession() as session:
        yield Api(harness, session, token)
