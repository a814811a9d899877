"""The façade front ends call: one object per process, wired by the composition root."""

from __future__ import annotations

import hashlib
import os
import socket
import uuid

from core.agents.registry import AgentRegistry
from core.approvals import Approvals, Decision, DecisionOutcome
from core.background import Background
from core.cancellation import Cancellation, CancelOutcome
from core.clock import Clock
from core.executor import Sleep, has_effects
from core.history import History
from core.orchestrator import Orchestrator, Outcome, Request, Submission
from core.policy import Policy
from core.ports import UnitOfWorkFactory
from core.records import Approval
from core.retry import Retrying, RetryOutcome


class TaskService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        registry: AgentRegistry,
        policy: Policy,
        clock: Clock,
        background: Background | None = None,
        worker: str | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        #: this process, as named in task claims and its liveness lease
        self.worker = worker or new_worker_id()
        self.uow = uow
        self.policy = policy
        self.clock = clock
        self.registry = registry
        self.orchestrator = Orchestrator(
            uow, registry, policy, clock, background, self.worker, sleep=sleep
        )
        self.background = self.orchestrator.background
        self.approvals = Approvals(uow, clock, policy)
        self.history = History(uow, policy, clock)
        self.cancellation = Cancellation(uow, self.approvals, clock, policy, self._has_effects)
        self.retrying = Retrying(uow, registry, clock)

    def _has_effects(self, agent: str) -> bool:
        try:
            return has_effects(self.registry.get(agent))
        except KeyError:
            return True  # an agent no longer installed: assume the worst

    async def submit(self, request: Request) -> Submission:
        """Persist only; call start() once the front end has acknowledged."""
        return await self.orchestrator.submit(request)

    def start(self, submission: Submission) -> None:
        if submission.outcome is Outcome.ACCEPTED and submission.root is not None:
            self.orchestrator.schedule(submission.root.id)

    async def decide(
        self,
        approval_id: int,
        user: str,
        decision: Decision,
        *,
        channel: str | None = None,
        message_ts: str | None = None,
        external: bool = False,
        reason: str = "",
    ) -> DecisionOutcome:
        """The one way to decide an approval, for every front end (see core.approvals)."""
        outcome = await self.approvals.decide(
            approval_id,
            user,
            decision,
            channel=channel,
            message_ts=message_ts,
            external=external,
            reason=reason,
        )
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

    async def decidable_approvals(self, user: str, limit: int = 100) -> list[Approval]:
        """Pending approvals `user` may decide now (current configuration, not expired),
        oldest first."""
        async with self.uow(read_only=True) as uow:
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
