"""Button payloads, typed once: each kind owns its action_id, pack() and unpack()
(like aiogram's CallbackData). Views pack, listeners unpack. A value that does not
unpack (an old, edited or forged button) gives None, never an exception."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import ClassVar, Literal, Self

from core.tasks_command import MAX_TASK_ID

#: a filter name longer than any real one is cut, so the value stays small
_FILTER_IN_VALUE = 100


def _task_id(raw: str) -> int | None:
    if not raw.isdecimal() or len(raw) > 10 or not 0 < int(raw) <= MAX_TASK_ID:
        return None
    return int(raw)


@dataclass(frozen=True)
class _TaskButton:
    """A button whose value is the id of the task it acts on."""

    task_id: int

    def pack(self) -> str:
        return str(self.task_id)

    @classmethod
    def unpack(cls, value: str) -> Self | None:
        task_id = _task_id(value)
        return None if task_id is None else cls(task_id)


@dataclass(frozen=True)
class CancelButton(_TaskButton):
    """Cancel request, on a request's status message."""

    action_id: ClassVar[str] = "status:cancel"


@dataclass(frozen=True)
class RetryButton(_TaskButton):
    """Retry, on a failure message."""

    action_id: ClassVar[str] = "task:retry"


@dataclass(frozen=True)
class PageButton:
    """◀ Previous / Next ▶ on a /tasks page; `page` counts from 1, as people do."""

    action_id: ClassVar[str] = "tasks:page"
    page: int
    filter_name: str | None = None

    def pack(self) -> str:
        name = self.filter_name[:_FILTER_IN_VALUE] if self.filter_name else None
        return json.dumps({"page": self.page, "filter": name}, separators=(",", ":"))

    @classmethod
    def unpack(cls, value: str) -> PageButton | None:
        try:
            data = json.loads(value or "{}")
            page = max(1, int(data.get("page", 1)))
            filter_name = data.get("filter")
        except (ValueError, TypeError, AttributeError):
            return None
        if filter_name is not None and not isinstance(filter_name, str):
            return None
        return cls(page, filter_name)


RowVerb = Literal["view", "cancel", "thread"]


@dataclass(frozen=True)
class RowMenu:
    """The overflow menu on a /tasks row: one option per verb ("view:5", "cancel:5")."""

    action_id: ClassVar[str] = "tasks:row"
    verbs: ClassVar[tuple[RowVerb, ...]] = ("view", "cancel", "thread")
    verb: RowVerb
    task_id: int

    def pack(self) -> str:
        return f"{self.verb}:{self.task_id}"

    @classmethod
    def unpack(cls, value: str) -> RowMenu | None:
        verb, _, raw = value.partition(":")
        task_id = _task_id(raw)
        for known in cls.verbs:
            if verb == known and task_id is not None:
                return cls(known, task_id)
        return None
