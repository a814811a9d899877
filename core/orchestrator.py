"""Accepts requests, persists their plan, and drives each task graph to its end."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import Enum
from typing import Any

from core.agents.registry import AgentRegistry
from core.audit import audit
from core.background import Background
from core.budget import Budgets
from core.clock import Clock
from core.executor import SYSTEM, Gate, Sleep, TaskExecutor
from core.intents import IntentParser, NotUnderstood, printable
from core.money import format_money
from core.notices import (
    Destination,
    PlanStep,
    RequestAccepted,
    RequestFinished,
    RequestRefused,
    destination_of,
)
from core.planner import Plan, plan
from core.policy import Policy
from core.ports import TaskCursor, UnitOfWork, UnitOfWorkFactory, cursor_of
from core.records import GRAPH_AGENT, Conversation, NewTask, Task, TaskChanges
from core.states import TaskStatus, transition
from core.status import write_status

log = logging.getLogger(__name__)

#: the longest wait between tries at advancing a request while the database is away
ADVANCE_BACKOFF_MAX = 30.0


@dataclass(frozen=True)
class Request:
    text: str
    conversation: Conversation
    event_id: str | None = None
    #: the API's TaskCreate extras: a title for the request, the one agent it must
    #: route to (None: the intent parser decides), context kept with the request
    title: str | None = None
    command: str | None = None
    context: Mapping[str, Any] | None = None


@dataclass
class _Moves:
    """What one look at a request's graph did: the steps it claimed (to run now)."""

    graph: bool
    nodes: list[Task]
    claimed: list[Task] = field(default_factory=list)
    progressed: bool = False


class Outcome(Enum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REFUSED = "refused"


@dataclass(frozen=True)
class Submission:
    outcome: Outcome
    root: Task | None = None
    plan: Plan | None = None
    reason: str | None = None


class Orchestrator:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        registry: AgentRegistry,
        policy: Policy,
        clock: Clock,
        executor: TaskExecutor,
        background: Background,
        sleep: Sleep | None = None,
    ) -> None:
        self._uow_factory = uow_factory
        self._registry = registry
        self._policy = policy
        self._clock = clock
        self._sleep: Sleep = sleep or asyncio.sleep
        self._parser = IntentParser(default_currency=policy.currency)
        self.executor = executor
        self.background = background
        self._locks: dict[int, asyncio.Lock] = {}

    async def submit(self, request: Request) -> Submission:
        """Persist the request (event id, tasks, first reply) in one transaction.

        Nothing slow happens here, so a front end can call it before it acks.
        """
        request = replace(request, text=printable(request.text))
        try:
            parsed = self._parser.parse(request.text)
            the_plan = plan(parsed, self._policy.currency)
            self._check_plan(the_plan)
            the_plan = _apply_extras(the_plan, request)
        except NotUnderstood as exc:
            return await self._refuse(request, exc.message)
        now = self._clock.now()
        return await self._uow_factory.together(
            lambda uow: self._accept(uow, request, the_plan, now)
        )

    async def _accept(
        self, uow: UnitOfWork, request: Request, the_plan: Plan, now: datetime
    ) -> Submission:
        """What submit writes: run by the group commit, maybe with other requests."""
        event, reserved = request.event_id, None
        if event:
            reserved = await uow.inbox.claim(event, now)
            if reserved is None:
                return Submission(Outcome.DUPLICATE, await uow.tasks.by_source_event(event))
        refusal = await self._over_budget(uow, request, the_plan)
        if refusal:
            if event:
                await uow.inbox.attach(event, None)  # no task takes the reserved id
            await self._add_refusal(uow, request, refusal)
            return Submission(Outcome.REFUSED, reason=refusal)
        root, children = await self._persist(uow, request, the_plan, reserved)
        for created in [root, *children]:
            await audit(uow, self._clock, created.id, root.requester, "created")
        steps = children or [root]
        await uow.outbox.add(
            RequestAccepted(
                destination=destination_of(root),
                task_id=root.id,
                requester=root.requester,
                title=root.title,
                outline=the_plan.outline,
                steps=tuple(
                    PlanStep(t.id, t.agent, t.title, t.depends_on, self.executor.needs_approval(t))
                    for t in steps
                ),
            ),
            now,
        )
        if children:  # a one-step request has no status message until it waits
            await write_status(uow, self._clock, root, grace=self._policy.status_grace_seconds)
        return Submission(Outcome.ACCEPTED, root, the_plan)

    async def _over_budget(self, uow: UnitOfWork, request: Request, the_plan: Plan) -> str:
        """A purchase the budget can't cover is refused once, before anything is accepted."""
        costs = [
            self._registry.get(s.agent).estimate_cost_cents(s.params)
            for s in the_plan.steps
            if self._registry.get(s.agent).requires_approval
        ]
        if not costs:
            return ""
        budget = await Budgets(self._policy, self._clock).status(
            uow, request.conversation.requester
        )
        if sum(costs) <= budget.remaining_cents:
            return ""
        cur = self._policy.currency
        return (
            f"I can't ask for {format_money(sum(costs), cur)}: you have "
            f"{format_money(budget.remaining_cents, cur)} of "
            f"{format_money(budget.limit_cents, cur)} left this month. "
            "Ask for less, or ask an approver to raise your limit."
        )

    def _check_plan(self, the_plan: Plan) -> None:
        for step in the_plan.steps:
            currency = step.params.get("currency")
            if step.agent == "purchase" and currency != self._policy.currency:
                raise NotUnderstood(
                    f"Budgets are kept in {self._policy.currency}, so I can't approve a purchase "
                    f"in {currency}. Please give the price in {self._policy.currency}, e.g. "
                    f"“buy 2 monitors for {format_money(30000, self._policy.currency)}”."
                )
            try:
                self._registry.get(step.agent)
            except KeyError as exc:
                raise NotUnderstood(f"I don't have a {step.agent} agent installed.") from exc

    async def _refuse(self, request: Request, reason: str) -> Submission:
        async def refuse(uow: UnitOfWork) -> Submission:
            if request.event_id and not await uow.inbox.add(request.event_id, self._clock.now()):
                return Submission(Outcome.DUPLICATE)
            await self._add_refusal(uow, request, reason)
            return Submission(Outcome.REFUSED, reason=reason)

        return await self._uow_factory.together(refuse)

    async def _add_refusal(self, uow: UnitOfWork, request: Request, reason: str) -> None:
        conv = request.conversation
        if not conv.channel:
            return  # over the HTTP API the refusal is the response itself
        await uow.outbox.add(
            RequestRefused(
                destination=Destination(channel=conv.channel, thread_ts=conv.thread_ts),
                task_id=None,
                requester=conv.requester,
                reason=reason,
            ),
            self._clock.now(),
        )

    async def _persist(
        self, uow: UnitOfWork, request: Request, the_plan: Plan, reserved: int | None
    ) -> tuple[Task, list[Task]]:
        """A one-step plan is one task; a graph is a root task grouping its steps.
        The root takes the id the inbox `reserved` for it, if any."""
        conv, currency, event = request.conversation, self._policy.currency, request.event_id
        costs = [self._registry.get(s.agent).estimate_cost_cents(s.params) for s in the_plan.steps]
        if not the_plan.is_graph:
            (step,) = the_plan.steps
            new = NewTask(
                conv,
                step.agent,
                step.title,
                step.params,
                currency,
                costs[0],
                source_event_id=event,
                id=reserved,
            )
            return await uow.tasks.add(new), []
        params = {"text": request.text, "outline": the_plan.outline}
        root = await uow.tasks.add(
            NewTask(
                conv,
                GRAPH_AGENT,
                the_plan.title,
                params,
                currency,
                sum(costs),
                source_event_id=event,
                id=reserved,
            )
        )
        children: list[Task] = []
        for position, (step, cost) in enumerate(zip(the_plan.steps, costs, strict=True)):
            new = NewTask(
                conv,
                step.agent,
                step.title,
                step.params,
                currency,
                cost,
                parent_id=root.id,
                root_id=root.id,
                position=position,
                depends_on=tuple(children[i].id for i in step.depends_on),
            )
            children.append(await uow.tasks.add(new))
        return root, children

    def schedule(self, root_id: int) -> None:
        """Drive the graph in the background (after the front end has acked)."""
        self.background.spawn(self.advance(root_id), name=f"advance-{root_id}")

    async def advance(self, root_id: int) -> None:
        """Run every step that can run now; stop at approvals; finish the root when done.

        Safe to call any number of times, from any process: every step is claimed
        with a conditional transition, and all state is read from the database.
        """
        lock = self._locks.setdefault(root_id, asyncio.Lock())
        failures = 0
        try:
            async with lock:
                while True:
                    try:
                        if not await self._advance_once(root_id):
                            break
                        failures = 0
                    except Exception:
                        # The database briefly away, most likely: every step is claimed
                        # conditionally, so trying again later is always safe.
                        failures += 1
                        log.warning(
                            "advancing request %s failed (try %d)", root_id, failures, exc_info=True
                        )
                        await self._sleep(min(ADVANCE_BACKOFF_MAX, 0.25 * 2.0 ** (failures - 1)))
        finally:
            if not lock.locked() and self._locks.get(root_id) is lock:
                del self._locks[root_id]

    async def _advance_once(self, root_id: int) -> bool:
        """One transaction reads the graph, skips, gates and claims every step that
        can move (grouped with other requests' moves); the claimed steps run after it
        has committed."""
        moves = await self._uow_factory.together(
            lambda uow: self._move(uow, root_id), background=True
        )
        if moves is None:
            return False
        if moves.claimed:
            by_id = {n.id: n for n in moves.nodes}
            # Not a TaskGroup: one step's failure must not cancel its siblings.
            outcomes = await asyncio.gather(
                *(
                    self.executor.run(node, [by_id[d] for d in node.depends_on if d in by_id])
                    for node in moves.claimed
                ),
                return_exceptions=True,
            )
            for node, outcome in zip(moves.claimed, outcomes, strict=True):
                if isinstance(outcome, Exception):
                    log.warning("step %s could not be finished: %r", node.id, outcome)
                elif isinstance(outcome, BaseException):
                    raise outcome
            # A one-step request has ended with its step (`run` always ends it).
            return moves.graph
        if moves.progressed:
            return True
        if moves.graph and all(n.status.terminal for n in moves.nodes):
            await self._finish_root(root_id)
        return False

    async def _move(self, uow: UnitOfWork, root_id: int) -> _Moves | None:
        """What `_advance_once` writes; None when the request has ended."""
        root, nodes = await uow.tasks.family(root_id)
        if root is None or root.status.terminal:
            return None
        if nodes and root.status is TaskStatus.PENDING:
            await transition(
                uow,
                root,
                TaskStatus.IN_PROGRESS,
                actor=SYSTEM,
                clock=self._clock,
                changes=TaskChanges(started_at=self._clock.now()),
            )
            await write_status(uow, self._clock, root, grace=self._policy.status_grace_seconds)
        moves = _Moves(graph=bool(nodes), nodes=nodes or [root])
        by_id = {n.id: n for n in moves.nodes}
        for node in moves.nodes:
            if node.status is not TaskStatus.PENDING:
                continue
            deps = [by_id[d] for d in node.depends_on if d in by_id]
            blocker = next((d for d in deps if d.status in _DEAD), None)
            if blocker is not None:
                await self._skip(uow, node, blocker)
                moves.progressed = True
            elif all(d.status is TaskStatus.COMPLETED for d in deps):
                gate = await self.executor.gate(uow, node)
                running = await self.executor.claim(uow, node) if gate is Gate.READY else None
                if running is not None:
                    moves.claimed.append(running)
                moves.progressed = moves.progressed or gate is Gate.REFUSED
        return moves

    async def _skip(self, uow: UnitOfWork, node: Task, blocker: Task) -> None:
        """A step whose dependency failed fails too; one whose dependency was stopped stops."""
        label = f"#{blocker.id} ({blocker.title})"
        if blocker.status is TaskStatus.FAILED:
            target, reason = TaskStatus.FAILED, f"Not started: step {label} failed."
        else:
            verb = "was denied" if blocker.status is TaskStatus.REJECTED else "was cancelled"
            target, reason = TaskStatus.CANCELLED, f"Not started: step {label} {verb}."
        await transition(
            uow,
            node,
            target,
            actor=SYSTEM,
            clock=self._clock,
            changes=TaskChanges(error=reason, finished_at=self._clock.now()),
        )
        await uow.budgets.release(node.id)
        await write_status(uow, self._clock, node, grace=self._policy.status_grace_seconds)

    async def _finish_root(self, root_id: int) -> None:
        async with self._uow_factory() as uow:
            root = await uow.tasks.get(root_id)
            if root is None or root.status.terminal:
                return
            children = await uow.tasks.children(root_id)
            done = [c for c in children if c.status is TaskStatus.COMPLETED]
            cost = sum(c.cost_cents for c in done)
            now = self._clock.now()
            flagged = [c for c in children if c.status is TaskStatus.NEEDS_ATTENTION]
            if len(done) == len(children):
                target, error = TaskStatus.COMPLETED, None
            else:
                target = TaskStatus.NEEDS_ATTENTION if flagged else TaskStatus.FAILED
                error = "; ".join(
                    f"#{c.id} {c.title}: {c.error or c.status.value.lower()}"
                    for c in children
                    if c.status is not TaskStatus.COMPLETED
                )
            if root.status is TaskStatus.PENDING:
                if not await transition(
                    uow, root, TaskStatus.IN_PROGRESS, actor=SYSTEM, clock=self._clock
                ):
                    return
                root = await uow.tasks.get(root_id)
                assert root is not None
            if not await transition(
                uow,
                root,
                target,
                actor=SYSTEM,
                clock=self._clock,
                changes=TaskChanges(error=error, finished_at=now, cost_cents=cost),
            ):
                return
            await uow.outbox.add(
                RequestFinished(
                    destination=destination_of(root),
                    task_id=root.id,
                    title=root.title,
                    status=target.value,
                    completed=len(done),
                    total=len(children),
                    detail=error or "",
                ),
                now,
            )
            await write_status(uow, self._clock, root, grace=self._policy.status_grace_seconds)

    async def resume_unfinished(self, page: int = 500) -> int:
        """Advance every request that is not finished (on start, and after a crash),
        oldest first, page after page until none are left."""
        count = 0
        after: TaskCursor | None = None
        while True:
            async with self._uow_factory(read_only=True) as uow:
                roots = await uow.tasks.unfinished_roots(page, after)
            for root in roots:
                self.schedule(root.id)
            count += len(roots)
            if len(roots) < page:
                return count
            after = cursor_of(roots[-1])


def _apply_extras(the_plan: Plan, request: Request) -> Plan:
    agents = {s.agent for s in the_plan.steps}
    if request.command and request.command != "orchestrate" and agents != {request.command}:
        found = " → ".join(s.agent for s in the_plan.steps)
        raise NotUnderstood(
            f"You asked for {request.command} only, but I read this request as: {found}. "
            "Reword it, or leave out the command."
        )
    steps = the_plan.steps
    if request.context:
        first = steps[0]
        steps = (replace(first, params={**first.params, "context": dict(request.context)}),)
        steps += the_plan.steps[1:]
    if request.title and not the_plan.is_graph:
        steps = (replace(steps[0], title=request.title),)
    return replace(the_plan, title=request.title or the_plan.title, steps=steps)


_DEAD = frozenset({TaskStatus.FAILED, TaskStatus.REJECTED, TaskStatus.CANCELLED})
