"""Button payloads, typed once: each kind owns its action_id, pack() and unpack()
(like aiogram's CallbackData). Views pack, listeners unpack. A value that does not
unpack (an old, edited or forged button) gives None, never an exception. The wire
values never change: buttons already posted in Slack must keep working."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Self

from core.tasks_command import MAX_TASK_ID

#: a filter name longer than any real one is cut, so the value stays small
_FILTER_IN_VALUE = 100


def _row_id(raw: str) -> int | None:
    """A task's or an approval's id: both are INTEGER columns, so a larger number
    names nothing (and would not fit a query). ASCII digits only, as pack() writes."""
    if not (raw.isascii() and raw.isdecimal()) or len(raw) > 10 or not 0 < int(raw) <= MAX_TASK_ID:
        return None
    return int(raw)


@dataclass(frozen=True)
class _IdButton:
    """A button whose value is the id of the one row it acts on. Each kind names its
    action_id where it is declared: `class CancelButton(_TaskButton, action_id=…)`."""

    action_id: ClassVar[str]
    id: int

    def __init_subclass__(cls, action_id: str = "", **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if action_id:
            cls.action_id = action_id

    def pack(self) -> str:
        return str(self.id)

    @classmethod
    def unpack(cls, value: str) -> Self | None:
        row_id = _row_id(value)
        return None if row_id is None else cls(row_id)


class _TaskButton(_IdButton):
    @property
    def task_id(self) -> int:
        return self.id


class CancelButton(_TaskButton, action_id="status:cancel"):
    """Cancel request, on a request's status message."""


class RetryButton(_TaskButton, action_id="task:retry"):
    """Retry, on a failure message."""


class FullTextButton(_TaskButton, action_id="result:full_text"):
    """Full text, beside a long result's heading: opens the whole result."""


class _ApprovalButton(_IdButton):
    """It names the approval, never who may decide: that is judged from the
    database and the current configuration when it is clicked."""

    @property
    def approval_id(self) -> int:
        return self.id


class ApproveButton(_ApprovalButton, action_id="approval:approve"):
    """Approve, decided on the click (after Slack's confirm dialog)."""


class DenyButton(_ApprovalButton, action_id="approval:deny"):
    """Deny…, which first opens the reason modal (DenyForm)."""


@dataclass(frozen=True)
class DenyForm:
    """The Deny… modal's private_metadata: the approval and the clicked message,
    which the view_submission payload does not carry."""

    callback_id: ClassVar[str] = "approval:deny_reason"
    approval_id: int
    channel: str | None
    message_ts: str | None

    def pack(self) -> str:
        return json.dumps(
            {"approval": self.approval_id, "channel": self.channel, "ts": self.message_ts}
        )

    @classmethod
    def unpack(cls, metadata: str) -> DenyForm | None:
        try:
            data = json.loads(metadata or "{}")
        except (ValueError, RecursionError):  # RecursionError: nested too deep
            return None
        if not isinstance(data, dict):
            return None
        approval_id, channel, ts = data.get("approval"), data.get("channel"), data.get("ts")
        if isinstance(approval_id, bool) or not isinstance(approval_id, int):
            return None
        if _row_id(str(approval_id)) is None:
            return None
        if not all(v is None or isinstance(v, str) for v in (channel, ts)):
            return None
        return cls(approval_id, channel, ts)


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
        except (ValueError, TypeError, AttributeError, RecursionError):
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
        task_id = _row_id(raw)
        for known in cls.verbs:
            if verb == known and task_id is not None:
                return cls(known, task_id)
        return None
