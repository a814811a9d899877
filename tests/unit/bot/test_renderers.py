"""Every notice type has a renderer in Slack and in the console: a new one cannot
silently fall through to a generic line (like cosmicpython's EVENT_HANDLERS)."""

from __future__ import annotations

import inspect

import pytest

import core.notices
from bot.console.render import RENDERERS as CONSOLE_RENDERERS
from bot.views.notices import RENDERERS as SLACK_RENDERERS
from core.notices import Notice, WebhookEvent

#: notices that never reach a person's screen: bot/webhooks.py posts them as JSON
NOT_SHOWN: frozenset[type[Notice]] = frozenset({WebhookEvent})


def notice_types() -> list[type[Notice]]:
    found = [
        cls
        for _, cls in inspect.getmembers(core.notices, inspect.isclass)
        if issubclass(cls, Notice) and cls is not Notice
    ]
    assert len(found) >= 15, found  # the walk itself works
    return found


@pytest.mark.parametrize("table", [SLACK_RENDERERS, CONSOLE_RENDERERS], ids=["slack", "console"])
def test_every_notice_type_has_a_renderer(table: dict[type[Notice], object]) -> None:
    missing = [t.__name__ for t in notice_types() if t not in NOT_SHOWN and t not in table]
    assert missing == []
    assert not NOT_SHOWN & table.keys()
    assert set(table) <= set(notice_types())
