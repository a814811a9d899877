"""A wedged step (running longer than every attempt timing out plus a margin):
/healthz answers 503 and names it while it lasts, and /tasks cancel no longer
refuses forever — a wedged step without effects is cancelled, one that may have
placed an order needs attention instead (its money stays held)."""

from __future__ import annotations

from typing import Any

import aiohttp

from bot.container import build_service
from core.notices import TaskCancelled
from core.policy import Policy
from core.records import Conversation, NewTask, TaskChanges
from core.service import TaskService
from core.states import TaskStatus, transition
from storage.uow import SqlUnitOfWorkFactory
from tests.fakes import FakeClock
from tests.unit.core.helpers import (
    Recorder,
    agent_registry,
    budget,
    needs_attention,
    notices,
    submit,
    task,
)
from tests.unit.core.jobs.conftest import AppFactory, Gate, GatedPurchase, GatedResearch
from tests.unit.core.test_step_outcomes import approve_purchase

POLICY = Policy(approvers=("UAPPROVER",), agent_timeout_seconds=10, step_max_attempts=2)


async def get_health(port: int) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session,
        session.get(f"http://127.0.0.1:{port}/healthz") as response,
    ):
        return response.status, await response.json()


async def test_healthz_is_503_with_a_step_running_past_the_timeout_and_margin(
    clocked_app: AppFactory,
) -> None:
    clock = FakeClock()
    h = await clocked_app(
        clock,
        TASKBOT_AGENT_TIMEOUT_SECONDS="5",
        TASKBOT_STEP_MAX_ATTEMPTS="1",
        TASKBOT_WORKER_TTL_SECONDS="3600",  # the worker stays alive on the fake clock
    )
    container = h.running.container
    policy = container.service.policy
    assert policy.stuck_after_seconds == 5 + 60
    async with container.uow_factory() as uow:
        step = await uow.tasks.add(
            NewTask(Conversation("U1", "D1"), "research", "research desks", {}, "USD")
        )
        assert await transition(
            uow,
            step,
            TaskStatus.IN_PROGRESS,
            actor="test",
            clock=clock,
            changes=TaskChanges(started_at=clock.now(), worker=container.service.worker),
        )

    status, body = await get_health(h.running.port)
    assert status == 200 and body["stuck_steps"]["count"] == 0, body

    clock.advance(policy.stuck_after_seconds - 1)
    status, body = await get_health(h.running.port)
    assert status == 200, body

    clock.advance(2)
    status, body = await get_health(h.running.port)
    assert status == 503, body
    assert body["status"] == "stuck" and body["database"] == "ok"
    (stuck,) = body["stuck_steps"]["tasks"]
    assert stuck["id"] == step.id and stuck["agent"] == "research"
    assert stuck["running_seconds"] == int(policy.stuck_after_seconds) + 1

    async with container.uow_factory() as uow:
        running = await uow.tasks.get(step.id)
        assert running is not None
        assert await transition(uow, running, TaskStatus.COMPLETED, actor="test", clock=clock)
    status, body = await get_health(h.running.port)
    assert status == 200 and body["stuck_steps"]["count"] == 0, body


def gated_service(
    uow_factory: SqlUnitOfWorkFactory,
    clock: FakeClock,
    gated: type[GatedResearch] | type[GatedPurchase],
) -> tuple[TaskService, Gate]:
    """A service whose `gated` agent stops half way until the test opens its gate."""
    recorder, gate = Recorder(), Gate()
    registry = agent_registry(recorder)
    registry.register(gated(recorder, gate), replace=True)
    return build_service(uow_factory, registry, POLICY, clock), gate


async def test_cancel_does_not_refuse_forever_when_a_step_is_wedged(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    service, gate = gated_service(uow_factory, clock, GatedResearch)
    submission = await submit(service, "research standing desks")
    assert submission.root is not None
    service.start(submission)
    await gate.wait_started()

    refused = await service.cancel("U1", submission.root.id)
    assert not refused.cancelled and "running right now" in refused.message

    clock.advance(POLICY.stuck_after_seconds + 1)  # every attempt would have timed out
    done = await service.cancel("U1", submission.root.id)
    assert done.cancelled, done.message
    cancelled = await task(uow_factory, submission.root.id)
    assert cancelled.status is TaskStatus.CANCELLED
    assert [n.task_id for n in await notices(uow_factory, TaskCancelled)] == [cancelled.id]
    gate.release.set()
    await service.idle()
    assert (await task(uow_factory, cancelled.id)).status is TaskStatus.CANCELLED


async def test_cancelling_a_wedged_purchase_flags_it_and_keeps_the_money_held(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    service, gate = gated_service(uow_factory, clock, GatedPurchase)
    buy_id = await approve_purchase(service, uow_factory)
    await gate.wait_started()

    clock.advance(POLICY.stuck_after_seconds + 1)
    outcome = await service.cancel("U1", buy_id)
    assert outcome.cancelled, outcome.message
    assert "approvers were asked to check" in outcome.message
    assert await notices(uow_factory, TaskCancelled) == []
    flagged = await task(uow_factory, buy_id)
    assert flagged.status is TaskStatus.NEEDS_ATTENTION
    told = await needs_attention(uow_factory)
    assert told.task_id == buy_id and told.approvers == ("UAPPROVER",)
    assert (await budget(uow_factory, clock, POLICY)).held_cents == 300_00

    # the wedged agent finishes after all: its order is recorded, not lost
    gate.release.set()
    await service.idle()
    done = await task(uow_factory, buy_id)
    assert done.status is TaskStatus.COMPLETED
    spent = await budget(uow_factory, clock, POLICY)
    assert (spent.held_cents, spent.spent_cents) == (0, 300_00)
