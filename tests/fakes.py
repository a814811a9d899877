"""Test doubles for core's ports that have no place in the product."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class FakeClock:
    """A Clock that moves only when the test advances it."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 11, 24, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
