"""Builders shared by the storage tests."""

from __future__ import annotations

from typing import Any

from core.records import Conversation, NewTask


def new_task(
    requester: str = "U1",
    *,
    title: str = "do a thing",
    agent: str = "research",
    channel: str = "C1",
    thread_ts: str | None = "1700000000.000100",
    parent_id: int | None = None,
    depends_on: tuple[int, ...] = (),
    source_event_id: str | None = None,
    position: int = 0,
    cost_cents: int = 0,
    params: dict[str, Any] | None = None,
) -> NewTask:
    return NewTask(
        conversation=Conversation(
            requester=requester, channel=channel, thread_ts=thread_ts, team="T1"
        ),
        agent=agent,
        title=title,
        params=params or {"q": title},
        currency="USD",
        cost_cents=cost_cents,
        parent_id=parent_id,
        depends_on=depends_on,
        source_event_id=source_event_id,
        position=position,
    )
