"""Human decisions on tasks that spend money or reach outside.

Every front end (Slack buttons, the HTTP API, the console) decides through
`Approvals.decide`, so the rules are the same everywhere: rights are checked
against the current policy at decision time, an expired approval is refused,
and the first decision wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import TypedDict, Unpack

from core.approval_routing import (
    OUTCOME,
    approval_facts,
    copy_decided,
    record_copy,
    request_words,
)
from core.audit import audit
from core.budget import Budgets
from core.clock import Clock
from core.notices import ApprovalDecided, Notice, TaskCancelled, TaskRejected, destination_of
from core.policy import Policy
from core.ports import UnitOfWork, UnitOfWorkFactory
from core.records import Approval, ApprovalMessage, TaskChanges
from core.states import ApprovalStatus, TaskStatus, transition
from core.status import write_status

#: a denial's reason short enough to read in a thread reply and an audit row
DENY_REASON_MAX = 500


def deny_reason_error(reason: str, *, required: bool = True) -> str | None:
    """What is wrong with a denial's reason, in words for the approver; None if nothing."""
    if required and not reason.strip():
        return "Please say why, so the requester knows what to do next."
    if len(reason) > DENY_REASON_MAX:
        return f"Please keep the reason under {DENY_REASON_MAX} characters."
    return None


class Decision(Enum):
    APPROVE = "approve"
    DENY = "deny"


class DecidedHow(TypedDict, total=False):
    """How a decision was made, for `Approvals.decide`.

    `channel`/`message_ts` name the message a click came from. Any copy of the
    approval's message counts, one posted before a crash (never recorded)
    included: it is recorded then, so the outcome replaces it too. `external`:
    the user belongs to another workspace or organisation. `reason`: a denial's
    reason, sent back to the requester and kept in the audit log.
    """

    channel: str | None
    message_ts: str | None
    external: bool
    reason: str


class DecisionResult(Enum):
    DECIDED = "decided"
    NOT_FOUND = "not_found"
    NOT_ALLOWED = "not_allowed"
    ALREADY_DECIDED = "already_decided"
    EXPIRED = "expired"


@dataclass(frozen=True)
class DecisionOutcome:
    result: DecisionResult
    approval: Approval | None = None
    #: the root task to advance (after an approval, a denial or an expiry)
    resume_root: int | None = None
    #: who may decide now, by the current configuration
    approvers: tuple[str, ...] = ()
    #: the refused user is the requester
    own_request: bool = False

    @property
    def message(self) -> str:
        a = self.approval
        if self.result is DecisionResult.NOT_FOUND or a is None:
            return "I can't find that approval any more."
        if self.result is DecisionResult.NOT_ALLOWED:
            if self.own_request:
                return "You can't approve your own request: the approvers have been asked."
            return "You can't approve this request: only the listed approvers can."
        if self.result is DecisionResult.EXPIRED:
            return f"This request expired on {_when(a.expires_at)} without a decision."
        if self.result is DecisionResult.ALREADY_DECIDED:
            who = f" by {a.decided_by}" if a.decided_by else ""
            return f"This request was already {a.status.value.lower()}{who}."
        return f"{a.status.value.capitalize()}."


def _when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC")


class Approvals:
    def __init__(self, uow_factory: UnitOfWorkFactory, clock: Clock, policy: Policy) -> None:
        self._uow_factory = uow_factory
        self._clock = clock
        self._policy = policy

    async def decide(
        self, approval_id: int, user: str, decision: Decision, **how: Unpack[DecidedHow]
    ) -> DecisionOutcome:
        """Record one person's decision. The first decision wins; later ones change nothing."""
        now = self._clock.now()
        channel, message_ts = how.get("channel"), how.get("message_ts")
        reason = how.get("reason", "")
        async with self._uow_factory(urgent=True) as uow:
            approval = await uow.approvals.get(approval_id)
            if approval is None:
                return DecisionOutcome(DecisionResult.NOT_FOUND)
            if channel and message_ts:
                copy = ApprovalMessage(approval.id, channel, message_ts)
                await record_copy(uow, self._clock, copy)
            refused = self._refused(approval, user, how.get("external", False))
            if refused is not None:
                return refused
            current = self._policy.approvers_for(approval.requester)
            if now >= approval.expires_at:
                return await self._expire(uow, approval, current)
            status = (
                ApprovalStatus.APPROVED if decision is Decision.APPROVE else ApprovalStatus.DENIED
            )
            if not await self.close_approval(uow, approval, status, user, reason):
                latest = await uow.approvals.get(approval_id)
                return DecisionOutcome(DecisionResult.ALREADY_DECIDED, latest, None, current)
            decided = await uow.approvals.get(approval_id)
            task = await uow.tasks.get(approval.task_id)
            assert decided is not None and task is not None
            if status is ApprovalStatus.DENIED:
                await self._stop_task(uow, approval, TaskStatus.REJECTED, user, reason)
        return DecisionOutcome(DecisionResult.DECIDED, decided, task.root_id, current)

    async def refusal(
        self, approval_id: int, user: str, *, external: bool = False
    ) -> DecisionOutcome | None:
        """Why `user` may not decide now (read only), or None: lets a front end ask
        for a denial's reason only from someone who may deny. decide() checks again."""
        async with self._uow_factory(read_only=True) as uow:
            approval = await uow.approvals.get(approval_id)
        if approval is None:
            return DecisionOutcome(DecisionResult.NOT_FOUND)
        return self._refused(approval, user, external)

    def _refused(self, approval: Approval, user: str, external: bool) -> DecisionOutcome | None:
        """Rights first: someone who may not decide learns nothing of the approval's
        state (who decided it) and cannot be the one whose click expires it."""
        current = self._policy.approvers_for(approval.requester)
        if not self._policy.may_approve(user, approval.requester, external=external):
            own = user == approval.requester
            return DecisionOutcome(DecisionResult.NOT_ALLOWED, approval, None, current, own)
        if approval.status is not ApprovalStatus.PENDING:
            return DecisionOutcome(DecisionResult.ALREADY_DECIDED, approval, None, current)
        return None

    async def _expire(
        self, uow: UnitOfWork, approval: Approval, current: tuple[str, ...]
    ) -> DecisionOutcome:
        """A click after the expiry time: expire it now instead of waiting for the job."""
        reason = f"No decision by {_when(approval.expires_at)}; the approval expired."
        root = None
        if await self.close_and_stop(uow, approval, ApprovalStatus.EXPIRED, None, reason):
            task = await uow.tasks.get(approval.task_id)
            root = task.root_id if task is not None else None
        latest = await uow.approvals.get(approval.id)
        return DecisionOutcome(DecisionResult.EXPIRED, latest or approval, root, current)

    async def close_and_stop(
        self,
        uow: UnitOfWork,
        approval: Approval,
        status: ApprovalStatus,
        actor: str | None,
        reason: str,
    ) -> bool:
        """Expire or cancel a pending approval and stop its task (used by jobs and /tasks)."""
        if not await self.close_approval(uow, approval, status, actor):
            return False
        await self._stop_task(uow, approval, TaskStatus.CANCELLED, actor or "taskbot", reason)
        return True

    async def close_approval(
        self,
        uow: UnitOfWork,
        approval: Approval,
        status: ApprovalStatus,
        user: str | None,
        reason: str = "",
    ) -> bool:
        """Record the approval's end and replace every copy of its message;
        False if it had ended already."""
        now = self._clock.now()
        if not await uow.approvals.decide(approval.id, status, user, now):
            return False
        await audit(
            uow,
            self._clock,
            approval.task_id,
            user or "taskbot",
            f"approval_{OUTCOME[status]}",
            {"approval_id": approval.id, **({"reason": reason} if reason else {})},
        )
        task = await uow.tasks.get(approval.task_id)
        decided = await uow.approvals.get(approval.id)
        assert task is not None and decided is not None
        budget = await Budgets(self._policy, self._clock).status(uow, task.requester)
        facts = approval_facts(task, decided, await request_words(uow, task), budget)
        for copy in await uow.approvals.messages(approval.id):
            await uow.outbox.add(copy_decided(decided, task.title, copy, facts, reason), now)
        if status is ApprovalStatus.APPROVED:
            # denial, expiry and cancellation are told by the task's own notice
            await uow.outbox.add(
                ApprovalDecided(
                    destination=destination_of(task),
                    task_id=task.id,
                    approval_id=approval.id,
                    title=task.title,
                    outcome=OUTCOME[status],
                    decided_by=user,
                    amount_cents=approval.amount_cents,
                    currency=approval.currency,
                ),
                now,
            )
        return True

    async def _stop_task(
        self, uow: UnitOfWork, approval: Approval, target: TaskStatus, actor: str, reason: str
    ) -> None:
        task = await uow.tasks.get(approval.task_id)
        if task is None or task.status is not TaskStatus.PENDING:
            return
        now = self._clock.now()
        error = (
            (reason and f"Denied by {actor}: {reason}") if target is TaskStatus.REJECTED else reason
        )
        error = error or f"Denied by {actor}."
        if await transition(
            uow,
            task,
            target,
            actor=actor,
            clock=self._clock,
            changes=TaskChanges(error=error, finished_at=now),
        ):
            await uow.budgets.release(task.id)
            notice: Notice = (
                TaskRejected(
                    destination=destination_of(task),
                    task_id=task.id,
                    title=task.title,
                    decided_by=actor,
                    reason=reason,
                )
                if target is TaskStatus.REJECTED
                else TaskCancelled(
                    destination=destination_of(task),
                    task_id=task.id,
                    title=task.title,
                    reason=error,
                )
            )
            await uow.outbox.add(notice, now)
            await write_status(uow, self._clock, task)
