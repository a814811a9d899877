"""What core tells a front end. Notices are written to the outbox in the same
transaction as the change that caused them and delivered later, so none is lost."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from core.agents.base import AgentResult
from core.records import Task


@dataclass(frozen=True)
class Destination:
    """A channel (and thread), or a user whose DM channel the front end opens."""

    channel: str | None = None
    thread_ts: str | None = None
    user: str | None = None

    @property
    def key(self) -> str:
        return f"{self.channel or '@' + (self.user or '')}:{self.thread_ts or ''}"


def destination_of(task: Task) -> Destination:
    """The task's thread; a request submitted over the HTTP API has none, so its
    requester is told in their DM with the bot."""
    if not task.conversation.channel:
        return Destination(user=task.requester)
    return Destination(channel=task.conversation.channel, thread_ts=task.conversation.thread_ts)


@dataclass(frozen=True)
class PlanStep:
    task_id: int
    agent: str
    title: str
    depends_on: tuple[int, ...] = ()
    needs_approval: bool = False


@dataclass(frozen=True)
class Notice:
    kind: ClassVar[str] = "notice"
    destination: Destination
    task_id: int | None

    @property
    def lane(self) -> str:
        """Entries of one lane are delivered in the order they were written."""
        return self.destination.key

    def to_json(self) -> dict[str, Any]:
        raw = {f.name: _dump(getattr(self, f.name)) for f in dataclasses.fields(self)}
        raw["kind"] = self.kind
        return raw


@dataclass(frozen=True)
class RequestAccepted(Notice):
    kind: ClassVar[str] = "request_accepted"
    requester: str = ""
    title: str = ""
    #: the plan in words, e.g. "research → email draft"
    outline: str = ""
    steps: tuple[PlanStep, ...] = ()


@dataclass(frozen=True)
class RequestRefused(Notice):
    """A request that could not be accepted (not understood, over budget, …)."""

    kind: ClassVar[str] = "request_refused"
    requester: str = ""
    reason: str = ""


@dataclass(frozen=True)
class ApprovalSummary:
    """Fields the notices asking for and deciding an approval share (not a notice)."""

    approval_id: int = 0
    title: str = ""
    amount_cents: int = 0
    currency: str = "USD"


@dataclass(frozen=True)
class ApprovalFacts(ApprovalSummary):
    """What an approver needs to decide alone, kept on the message after the decision
    (core.approval_routing.approval_facts)."""

    requester: str = ""
    #: the request in the requester's own words
    request_text: str = ""
    #: the requester's thread, for a link to it
    request_channel: str | None = None
    request_thread_ts: str | None = None
    #: what is bought, so the message can show the unit price
    item: str = ""
    quantity: int = 1
    remaining_cents: int = 0
    #: the requester's monthly limit (0: unknown)
    limit_cents: int = 0
    #: decide by (seconds since the epoch; 0: unknown)
    expires_at: int = 0


@dataclass(frozen=True)
class ApprovalNeeded(ApprovalFacts, Notice):
    kind: ClassVar[str] = "approval_needed"
    approvers: tuple[str, ...] = ()


@dataclass(frozen=True)
class ApprovalAsked(ApprovalSummary, Notice):
    """Tells the requester's thread who was asked to approve, and where."""

    kind: ClassVar[str] = "approval_asked"
    approvers: tuple[str, ...] = ()
    #: the shared approval channel; None when each approver got a DM
    approval_channel: str | None = None


@dataclass(frozen=True)
class ApprovalDecided(ApprovalFacts, Notice):
    """Replaces the approval message in place: buttons gone, outcome shown."""

    kind: ClassVar[str] = "approval_decided"
    outcome: str = ""
    decided_by: str | None = None
    message_ts: str | None = None
    #: when it was decided (seconds since the epoch; 0: unknown)
    decided_at: int = 0
    #: the approver's reason for a denial
    reason: str = ""
    #: what was done once approved, e.g. the purchase order number (may come later)
    reference: str = ""


@dataclass(frozen=True)
class ApprovalReminder(Notice):
    kind: ClassVar[str] = "approval_reminder"
    approval_id: int = 0
    title: str = ""
    approvers: tuple[str, ...] = ()
    waiting_seconds: int = 0


@dataclass(frozen=True)
class TaskFinished(Notice):
    kind: ClassVar[str] = "task_finished"
    agent: str = ""
    title: str = ""
    result: AgentResult = field(default_factory=lambda: AgentResult(summary=""))
    cost_cents: int = 0
    currency: str = "USD"
    #: the result only feeds a later step of the request (shown there, not on its own)
    intermediate: bool = False
    requester: str = ""
    #: the request this step belongs to (the one number people see)
    request_id: int | None = None


@dataclass(frozen=True)
class TaskFailed(Notice):
    kind: ClassVar[str] = "task_failed"
    title: str = ""
    error: str = ""
    #: the request this step belongs to (the one number people see)
    request_id: int | None = None


@dataclass(frozen=True)
class TaskNeedsAttention(Notice):
    """A step with effects (an order placed) whose outcome could not be recorded:
    the money stays held and the approvers are asked to check it."""

    kind: ClassVar[str] = "task_needs_attention"
    title: str = ""
    #: what was done, e.g. the purchase order number, so a person can find it
    reference: str = ""
    detail: str = ""
    approvers: tuple[str, ...] = ()
    requester: str = ""
    #: the copy sent where the approvers act (their DMs or the approval channel)
    for_approvers: bool = False


@dataclass(frozen=True)
class TaskRejected(Notice):
    kind: ClassVar[str] = "task_rejected"
    title: str = ""
    decided_by: str = ""
    #: the approver's reason, sent back to the requester
    reason: str = ""


@dataclass(frozen=True)
class TaskCancelled(Notice):
    kind: ClassVar[str] = "task_cancelled"
    title: str = ""
    reason: str = ""


@dataclass(frozen=True)
class RequestFinished(Notice):
    """The last word on a multi-step request."""

    kind: ClassVar[str] = "request_finished"
    title: str = ""
    status: str = ""
    completed: int = 0
    total: int = 0
    detail: str = ""


@dataclass(frozen=True)
class StepState:
    """One step of a request as its status message shows it."""

    title: str
    status: str
    #: approvers a waiting step needs a decision from
    waiting_on: tuple[str, ...] = ()
    #: who approved the step (its spending), once someone has
    approved_by: str | None = None


@dataclass(frozen=True)
class RequestStatus(Notice):
    """A snapshot of a request for its one living status message.

    The first delivered snapshot is posted; later ones replace it (chat.update).
    Snapshots travel in their own lane so a pending one never holds up the
    thread's replies, and a newer snapshot supersedes older undelivered ones.
    """

    kind: ClassVar[str] = "request_status"
    requester: str = ""
    title: str = ""
    #: the plan in words, e.g. "research → email draft"
    outline: str = ""
    #: the request's status (a TaskStatus value)
    status: str = ""
    steps: tuple[StepState, ...] = ()
    amount_cents: int = 0
    currency: str = "USD"
    #: the status message to replace; filled in at delivery from the first post
    message_ts: str | None = None

    @property
    def lane(self) -> str:
        return f"{self.destination.key}#status:{self.task_id}"

    @property
    def final(self) -> bool:
        """A finished request; with no status message posted yet, none is needed."""
        return self.status in ("COMPLETED", "FAILED", "CANCELLED", "REJECTED")

    @property
    def waiting_on(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(u for s in self.steps for u in s.waiting_on))

    @property
    def approved_by(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.approved_by for s in self.steps if s.approved_by))


@dataclass(frozen=True)
class StaleTask:
    task_id: int
    title: str
    requester: str
    age_seconds: int
    waiting_for: str
    channel: str
    thread_ts: str | None
    #: the people it waits for (approvers), so a front end can mention them
    waiting_on: tuple[str, ...] = ()
    #: where the approval message is, so the digest can link to it (where they can act)
    approval_channel: str | None = None
    approval_ts: str | None = None


@dataclass(frozen=True)
class StaleReport(Notice):
    """Today's digest for one destination: every task still waiting too long there.

    One message a day per destination: later digests of the same day replace it
    (chat.update) instead of posting again."""

    kind: ClassVar[str] = "stale_report"
    tasks: tuple[StaleTask, ...] = ()
    #: the day (YYYY-MM-DD, UTC) this digest belongs to
    day: str = ""
    #: the digest message to replace; filled in at delivery from the day's first post
    message_ts: str | None = None

    @property
    def lane(self) -> str:
        return f"stale:{self.destination.key}:{self.day}" if self.day else self.destination.key


@dataclass(frozen=True)
class WebhookEvent(Notice):
    """One Standard Webhooks message; the body is fixed when the event happens."""

    kind: ClassVar[str] = "webhook"
    url: str = ""
    event_id: str = ""
    event_type: str = ""
    #: seconds since the epoch
    timestamp: int = 0
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskRetried(Notice):
    """A failed request is being re-run from its failed steps."""

    kind: ClassVar[str] = "task_retried"
    title: str = ""
    retried_by: str = ""
    step_titles: tuple[str, ...] = ()


NOTICE_TYPES: dict[str, type[Notice]] = {
    cls.kind: cls
    for cls in (
        RequestAccepted,
        RequestRefused,
        ApprovalNeeded,
        ApprovalAsked,
        ApprovalDecided,
        ApprovalReminder,
        TaskFinished,
        TaskFailed,
        TaskNeedsAttention,
        TaskRejected,
        TaskCancelled,
        RequestFinished,
        RequestStatus,
        StaleReport,
        WebhookEvent,
        TaskRetried,
    )
}


def _dump(value: Any) -> Any:
    if isinstance(value, AgentResult):
        return value.to_json()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _dump(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_dump(v) for v in value]
    return value


def notice_from_json(raw: dict[str, Any]) -> Notice:
    cls = NOTICE_TYPES[raw["kind"]]
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in raw:
            continue
        value = raw[f.name]
        if f.name == "destination":
            value = Destination(**value)
        elif f.name == "result":
            value = AgentResult.from_json(value)
        elif f.name == "steps" and cls is RequestStatus:
            value = tuple(
                StepState(**{**s, "waiting_on": tuple(s.get("waiting_on", ()))}) for s in value
            )
        elif f.name == "steps":
            value = tuple(PlanStep(**{**s, "depends_on": tuple(s["depends_on"])}) for s in value)
        elif f.name == "tasks":
            value = tuple(
                StaleTask(**{**s, "waiting_on": tuple(s.get("waiting_on", ()))}) for s in value
            )
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[f.name] = value
    return cls(**kwargs)
