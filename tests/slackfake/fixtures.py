"""pytest fixtures for the Slack fake (register with
``pytest_plugins = ["tests.slackfake.fixtures"]``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from tests.slackfake.server import FakeSlack


@pytest_asyncio.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    """A started ``FakeSlack``; the test fails if any payload it received was invalid.

    A test that sends invalid payloads on purpose calls ``fake_slack.take_errors()``.
    """
    async with FakeSlack() as slack:
        yield slack
        slack.assert_no_errors()
