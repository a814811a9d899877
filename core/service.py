"""The façade front ends call: one object per process, wired by the composition root."""

from __future__ import annotations

import hashlib
import os
import socket
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Unpack

from core.approvals import Approvals, DecidedHow, Decision, DecisionOutcome
from core.background import Background
from core.cancellation import Cancellation, CancelOutcome
from core.clock import Clock
from core.history import History
from core.orchestrator import Orchestrator, Outcome, Request, Submission
from core.policy import Policy
from core.ports import UnitOfWorkFactory
from core.records import Approval
from core.retry import Retrying, RetryOutcome
from core.tasks_command import TasksCommand, TasksResult
from core.tasks_command import answer as answer_tasks


@dataclass(frozen=True, kw_only=True)
class TaskService:
    """Verbs only: bot/container.py builds every collaborator and injects it. Front ends
    call the methods below; the fields are there for the composition root and tests."""

    uow_factory: UnitOfWorkFactory
    orchestrator: Orchestrator
    approvals: Approvals
    history: History
    cancellation: Cancellation
    retrying: Retrying
    background: Background
    policy: Policy
    clock: Clock
    #: this process, as named in task claims and its liveness lease
    worker: str

    def run_in_background(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Run `work` after the front end has answered; close() waits for it."""
        self.background.spawn(work, name)

    def resume(self, root_id: int) -> None:
        """Schedule a request to go on (after recovery or an approval expired)."""
        self.orchestrator.schedule(root_id)

    async def advance(self, root_id: int) -> None:
        """Drive a request as far as it goes now (recovery and tests; start() schedules)."""
        await self.orchestrator.advance(root_id)

    @property
    def busy(self) -> int:
        """How many background tasks are still running."""
        return self.background.busy

    async def idle(self) -> None:
        """Wait until no scheduled or background work is left."""
        await self.background.idle()

    async def close(self, grace: float) -> None:
        await self.background.close(grace=grace)

    async def submit(self, request: Request) -> Submission:
        """Persist only; call start() once the front end has acknowledged."""
        return await self.orchestrator.submit(request)

    def start(self, submission: Submission) -> None:
        if submission.outcome is Outcome.ACCEPTED and submission.root is not None:
            self.orchestrator.schedule(submission.root.id)

    async def decide(
        self, approval_id: int, user: str, decision: Decision, **how: Unpack[DecidedHow]
    ) -> DecisionOutcome:
        """The one way to decide an approval, for every front end (see core.approvals)."""
        outcome = await self.approvals.decide(approval_id, user, decision, **how)
        if outcome.resume_root is not None:
            self.orchestrator.schedule(outcome.resume_root)
        return outcome

    async def cancel(self, requester: str, task_id: int) -> CancelOutcome:
        outcome = await self.cancellation.cancel(requester, task_id)
        if outcome.cancelled and outcome.root_id is not None:
            self.orchestrator.schedule(outcome.root_id)
        return outcome

    async def retry(self, requester: str, task_id: int) -> RetryOutcome:
        """Re-run a failed request from its failed steps (Slack button, /tasks, API)."""
        outcome = await self.retrying.retry(requester, task_id)
        if outcome.retried and outcome.root_id is not None:
            self.orchestrator.schedule(outcome.root_id)
        return outcome

    async def tasks(
        self, requester: str, command: TasksCommand, page_size: int = 10
    ) -> TasksResult:
        """/tasks, for every front end: see core.tasks_command."""
        return await answer_tasks(
            command,
            requester,
            history=self.history,
            cancel=self.cancel,
            retry=self.retry,
            page_size=page_size,
        )

    async def decidable_approvals(self, user: str, limit: int = 100) -> list[Approval]:
        """Pending approvals `user` may decide now (current configuration, not expired),
        oldest first."""
        async with self.uow_factory(read_only=True) as uow:
            pending = await uow.approvals.pending(limit)
        now = self.clock.now()
        return [
            a for a in pending if now < a.expires_at and self.policy.may_approve(user, a.requester)
        ]

    async def resume_unfinished(self) -> int:
        return await self.orchestrator.resume_unfinished()


#: a worker id must fit the lease name column (64 characters) after "worker:"
MAX_WORKER_ID = 57


def new_worker_id(hostname: str | None = None) -> str:
    """`<host>:<pid>:<hex>`, at most MAX_WORKER_ID characters whatever the hostname
    (Linux allows 64, FQDNs are longer): a long one keeps its readable start and
    gets a short hash of the whole, so two long names sharing a prefix stay apart."""
    host = socket.gethostname() if hostname is None else hostname
    host = "".join(c for c in host if c.isprintable() and c != ":") or "host"
    rest = f":{os.getpid()}:{uuid.uuid4().hex[:8]}"
    room = MAX_WORKER_ID - len(rest)
    if len(host) > room:
        digest = hashlib.sha256(host.encode("utf-8", "replace")).hexdigest()[:6]
        host = f"{host[: room - len(digest) - 1]}~{digest}"
    return host + rest
