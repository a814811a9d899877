"""Automatic step retries: a transient failure (TransientAgentError, or a timeout of
an agent that is safe to re-run) is tried again with jittered exponential backoff up
to step_max_attempts, each failed attempt audited; a purchase never is. The backoff
goes through the injected sleep, so nothing here waits for real."""

from __future__ import annotations

import asyncio

from bot.container import build_service
from core.agents.base import AgentContext, AgentError, AgentResult, TransientAgentError
from core.notices import TaskFailed, TaskFinished
from core.policy import Policy
from core.records import Task
from core.service import TaskService
from core.states import TaskStatus
from storage.uow import SqlUnitOfWorkFactory
from tests.fakes import FakeClock
from tests.unit.core.faults import RecordedSleep, ScriptedAgent
from tests.unit.core.helpers import Recorder, agent_registry, notices, submit_and_advance
from tests.unit.core.test_step_outcomes import approve_purchase

S = TaskStatus
POLICY = Policy(approvers=("UAPPROVER",), step_retry_base_seconds=4.0)


async def audit_of(
    uow_factory: SqlUnitOfWorkFactory, task_id: int
) -> list[tuple[str, dict[str, object]]]:
    async with uow_factory() as uow:
        return [(e.action, dict(e.detail)) for e in await uow.audit.for_task(task_id)]


async def failed_attempts(
    uow_factory: SqlUnitOfWorkFactory, task_id: int
) -> list[dict[str, object]]:
    return [d for action, d in await audit_of(uow_factory, task_id) if action == "attempt_failed"]


def with_research(
    uow_factory: SqlUnitOfWorkFactory,
    clock: FakeClock,
    recorder: Recorder,
    agent: ScriptedAgent,
    policy: Policy,
    sleep: RecordedSleep,
) -> TaskService:
    """A service whose research agent is `agent`, the others recording."""
    registry = agent_registry(recorder, research=agent)  # type: ignore[arg-type]
    return build_service(uow_factory, registry, policy, clock, sleep=sleep)


async def run_research(
    uow_factory: SqlUnitOfWorkFactory,
    clock: FakeClock,
    fails: int,
    error: type[Exception] = TransientAgentError,
) -> tuple[Task, ScriptedAgent, RecordedSleep]:
    """Research standing desks with an agent that fails `fails` times first."""
    recorder = Recorder()
    agent = research(recorder, fails=fails, error=error)
    sleep = RecordedSleep()
    service = with_research(uow_factory, clock, recorder, agent, POLICY, sleep)
    return await submit_and_advance(service, "research standing desks"), agent, sleep


def research(
    recorder: Recorder, fails: int, error: type[Exception] = TransientAgentError
) -> ScriptedAgent:
    def script(ctx: AgentContext, attempt: int) -> object:
        if attempt <= fails:
            return error(f"search service busy (try {attempt})")
        return AgentResult(summary=f"found it on try {attempt}")

    return ScriptedAgent("research", recorder, script)


async def test_transient_failure_retried_then_succeeds_with_each_attempt_audited(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    root, agent, sleep = await run_research(uow_factory, clock, fails=2)

    assert root.status is S.COMPLETED
    assert root.result is not None and root.result.summary == "found it on try 3"
    assert agent.attempts == {root.id: 3}
    first, second = sleep.delays
    assert 2.0 <= first <= 4.0 and 4.0 <= second <= 8.0  # base 4 s, doubled, half jitter
    attempts = await failed_attempts(uow_factory, root.id)
    assert attempts == [
        {
            "attempt": 1,
            "reason": "search service busy (try 1)",
            "retry_in_seconds": round(first, 3),
        },
        {
            "attempt": 2,
            "reason": "search service busy (try 2)",
            "retry_in_seconds": round(second, 3),
        },
    ]
    assert len(await notices(uow_factory, TaskFinished)) == 1
    assert await notices(uow_factory, TaskFailed) == []


async def test_permanent_failure_after_max_attempts(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    root, agent, sleep = await run_research(uow_factory, clock, fails=99)

    assert root.status is S.FAILED
    assert root.error == "search service busy (try 3) (gave up after 3 attempts)"
    assert agent.attempts == {root.id: POLICY.step_max_attempts}
    assert len(sleep.delays) == 2
    attempts = await failed_attempts(uow_factory, root.id)
    assert [a["attempt"] for a in attempts] == [1, 2, 3]
    assert attempts[-1] == {"attempt": 3, "reason": "search service busy (try 3)", "final": True}
    (failed,) = await notices(uow_factory, TaskFailed)
    assert failed.error == root.error


async def test_a_timeout_counts_as_transient_for_an_agent_safe_to_rerun(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    recorder = Recorder()

    async def slow_then_fast(_ctx: AgentContext, attempt: int) -> AgentResult:
        if attempt == 1:
            await asyncio.sleep(30)
        return AgentResult(summary=f"answered on try {attempt}")

    agent = ScriptedAgent("research", recorder, slow_then_fast)
    policy = Policy(agent_timeout_seconds=0.2)
    service = with_research(uow_factory, clock, recorder, agent, policy, RecordedSleep())
    root = await submit_and_advance(service, "research standing desks")

    assert root.status is S.COMPLETED
    assert agent.attempts == {root.id: 2}
    (attempt,) = await failed_attempts(uow_factory, root.id)
    assert attempt["reason"] == "The research agent took longer than 0.2 s and was stopped."


async def test_a_plain_agent_error_is_not_retried(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    root, agent, sleep = await run_research(uow_factory, clock, fails=1, error=AgentError)

    assert root.status is S.FAILED and root.error == "search service busy (try 1)"
    assert agent.attempts == {root.id: 1} and sleep.delays == []


async def test_purchase_never_auto_retried(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    recorder = Recorder()

    def busy(_ctx: AgentContext, _attempt: int) -> Exception:
        return TransientAgentError("supplier API busy")

    buyer = ScriptedAgent("purchase", recorder, busy, safe_to_rerun=False, requires_approval=True)
    buyer.estimate_cost_cents = lambda params: int(params["amount_cents"])  # type: ignore[method-assign]
    registry = agent_registry(recorder)
    registry.register(buyer, replace=True)  # type: ignore[arg-type]
    sleep = RecordedSleep()
    service = build_service(uow_factory, registry, POLICY, clock, sleep=sleep)
    buy_id = await approve_purchase(service, uow_factory)
    await service.idle()

    assert buyer.attempts == {buy_id: 1}
    assert sleep.delays == []
    async with uow_factory() as uow:
        done = await uow.tasks.get(buy_id)
    assert done is not None and done.status is S.FAILED and done.error == "supplier API busy"
    actions = [action for action, _ in await audit_of(uow_factory, buy_id)]
    assert "attempt_failed" not in actions
