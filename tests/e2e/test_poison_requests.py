"""Poison DMs through the real app: each gets HTTP 200 and a human reply in its
thread, on SQLite and PostgreSQL (which refuses NUL in text)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Harness
from tests.slackfake import payloads

POISON = [
    ("buy 1 widget for $92233720368547758.08", "at most"),  # 2^63 cents
    ("buy 1 widget for $" + "9" * 28, "at most"),
    ("buy 1 widget for $1e9", "plain digits"),
    ("buy 1 widget for $0.004", "less than one cent"),
    ("research lap\x00tops\x1b[0m", "research — "),  # "Done: Laptops… research — …"
    ("research \ud800 monitors", "Done: Monitor research"),
]


@pytest.fixture(params=["sqlite", "postgresql"])
def settings_overrides(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    if request.param == "sqlite":
        return {}
    return {"DATABASE_URL": request.getfixturevalue("postgres_url")}


async def test_poison_dms_get_200_and_a_threaded_human_reply(harness: Harness) -> None:
    threads = {}
    for n, (text, _) in enumerate(POISON):
        envelope = payloads.im_message(text, user="U1", channel=f"D{n}")
        threads[f"D{n}"] = envelope["event"]["ts"]
        response = await harness.sender.event(envelope)
        assert response.status == 200, (text, response.text)
    await harness.settle()

    for n, (text, answer) in enumerate(POISON):
        posts = harness.posts(
            lambda c, n=n: (
                c.params["channel"] == f"D{n}" and c.params.get("thread_ts") == threads[f"D{n}"]
            )
        )
        said = json.dumps([[c.params["text"], c.params.get("blocks")] for c in posts])
        assert posts and answer in posts[0].params["text"] + said, (text, said)
        assert "\\u0000" not in said and "\\ud800" not in said, said
