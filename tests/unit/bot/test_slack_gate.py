"""The signature gate refuses odd timestamps with a reason instead of raising."""

from __future__ import annotations

import time

import pytest

from bot.slack_gate import unsigned_problem


@pytest.mark.parametrize("timestamp", ["²", "9" * 5000, "-1", "1e9", " ", "١٢٣"])
def test_a_timestamp_int_cannot_read_is_refused_not_raised(timestamp: str) -> None:
    problem = unsigned_problem("secret", b"{}", timestamp, "v0=abc", time.time())
    assert problem == "missing or non-numeric X-Slack-Request-Timestamp"
