"""Injectable time, so expiry and staleness are testable without sleeping."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def month_key(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m")
