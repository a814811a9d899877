"""After a crash: a step left IN_PROGRESS by a dead worker is re-run when that is safe,
failed with a clear message when it is not (a purchase), and left alone while its
worker's lease is alive.

A "worker" here is a TaskService with its own worker id whose agent blocks half way;
killing it cancels its background work, as a crash would leave the row."""

from __future__ import annotations

from bot.container import build_service
from core.agents.registry import AgentRegistry
from core.approvals import Decision, DecisionResult
from core.clock import month_key
from core.jobs.recovery import Recovery, worker_lease
from core.notices import Destination, TaskFailed, TaskFinished
from core.policy import Policy
from core.service import TaskService
from core.states import TaskStatus
from storage.uow import SqlUnitOfWorkFactory
from tests.fakes import FakeClock
from tests.unit.core.helpers import (
    CHANNEL,
    THREAD,
    Recorder,
    RecordingAgent,
    RecordingPurchase,
    agent_registry,
    needs_attention,
    notices,
    submit,
    task,
)
from tests.unit.core.jobs.conftest import Gate, GatedPurchase, GatedResearch

POLICY = Policy(approvers=("UAPPROVER",))
LEASE_TTL = 30


async def heartbeat(uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, worker: str) -> None:
    """What JobScheduler.heartbeat does for a live process."""
    async with uow_factory() as uow:
        assert await uow.leases.acquire(worker_lease(worker), worker, clock.now(), LEASE_TTL)


def gated_registry(recorder: Recorder, gate: Gate) -> AgentRegistry:
    registry = AgentRegistry()
    registry.register(GatedResearch(recorder, gate))
    registry.register(RecordingAgent("communication", recorder))
    registry.register(RecordingAgent("compare", recorder))
    registry.register(GatedPurchase(recorder, gate))
    return registry


def first_worker(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, recorder: Recorder, gate: Gate
) -> TaskService:
    registry = gated_registry(recorder, gate)
    return build_service(uow_factory, registry, POLICY, clock, worker="worker-1")


class Survivor:
    """The process that runs the recovery job, with well-behaved agents."""

    def __init__(self, uow_factory: SqlUnitOfWorkFactory, clock: FakeClock) -> None:
        self.recorder = Recorder()
        self.registry = agent_registry(self.recorder)
        self.service = build_service(uow_factory, self.registry, POLICY, clock, worker="worker-2")
        self.recovery = Recovery(uow_factory, self.registry, clock, policy=POLICY)

    async def recover(self) -> list[int]:
        roots = await self.recovery.run()
        for root in roots:
            self.service.resume(root)
        await self.service.idle()
        return roots


async def start_research(
    worker: TaskService, uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, gate: Gate
) -> int:
    await heartbeat(uow_factory, clock, worker.worker)
    submission = await submit(worker, "research standing desks")
    assert submission.root is not None
    worker.start(submission)
    await gate.wait_started()
    running = await task(uow_factory, submission.root.id)
    assert (running.status, running.worker) == (TaskStatus.IN_PROGRESS, "worker-1")
    return running.id


async def test_a_research_step_of_a_dead_worker_is_run_again(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, recorder: Recorder, gate: Gate
) -> None:
    worker = first_worker(uow_factory, clock, recorder, gate)
    task_id = await start_research(worker, uow_factory, clock, gate)
    await worker.close(grace=0)  # the process dies mid-step
    assert (await task(uow_factory, task_id)).status is TaskStatus.IN_PROGRESS
    clock.advance(LEASE_TTL + 1)  # and stops renewing its lease

    survivor = Survivor(uow_factory, clock)
    recovery = survivor.recovery
    assert await recovery.run() == [task_id]
    assert (await task(uow_factory, task_id)).status is TaskStatus.PENDING
    assert await recovery.run() == []  # nothing IN_PROGRESS any more

    await survivor.service.advance(task_id)
    done = await task(uow_factory, task_id)
    assert done.status is TaskStatus.COMPLETED
    assert done.worker == "worker-2"
    assert survivor.recorder.started() == [task_id]
    (finished,) = await notices(uow_factory, TaskFinished)
    assert finished.task_id == task_id
    assert finished.destination == Destination(CHANNEL, THREAD)
    assert await notices(uow_factory, TaskFailed) == []


async def test_a_step_whose_worker_lease_is_alive_is_left_alone(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, recorder: Recorder, gate: Gate
) -> None:
    worker = first_worker(uow_factory, clock, recorder, gate)
    task_id = await start_research(worker, uow_factory, clock, gate)
    survivor = Survivor(uow_factory, clock)

    clock.advance(LEASE_TTL - 1)
    assert await survivor.recover() == []
    await heartbeat(uow_factory, clock, worker.worker)  # the worker is still beating
    clock.advance(LEASE_TTL - 1)  # past the first lease, within the renewed one
    assert await survivor.recover() == []
    assert (await task(uow_factory, task_id)).status is TaskStatus.IN_PROGRESS
    assert survivor.recorder.started() == []

    gate.release.set()  # the live worker finishes its own step
    await worker.idle()
    done = await task(uow_factory, task_id)
    assert (done.status, done.worker) == (TaskStatus.COMPLETED, "worker-1")
    assert survivor.recorder.started() == []
    assert len(await notices(uow_factory, TaskFinished)) == 1


async def test_a_purchase_cut_off_mid_order_needs_attention_and_keeps_its_hold(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, recorder: Recorder, gate: Gate
) -> None:
    month = month_key(clock.now())
    worker = first_worker(uow_factory, clock, recorder, gate)
    await heartbeat(uow_factory, clock, worker.worker)
    submission = await submit(worker, "buy 2 monitors for $300")
    assert submission.root is not None
    buy_id = submission.root.id
    await worker.advance(buy_id)  # asks for approval, holds the money
    async with uow_factory() as uow:
        held = await uow.budgets.status("U1", month, POLICY.monthly_budget_cents, POLICY.currency)
    assert held.held_cents == 300_00
    async with uow_factory() as uow:
        approval = await uow.approvals.for_task(buy_id)
    assert approval is not None
    outcome = await worker.decide(approval.id, "UAPPROVER", Decision.APPROVE)
    assert outcome.result is DecisionResult.DECIDED
    await gate.wait_started()  # the purchase is being placed…
    await worker.close(grace=0)  # …when the process dies
    assert (await task(uow_factory, buy_id)).status is TaskStatus.IN_PROGRESS
    clock.advance(LEASE_TTL + 1)

    survivor = Survivor(uow_factory, clock)
    assert isinstance(survivor.registry.get("purchase"), RecordingPurchase)
    assert await survivor.recover() == [buy_id]
    assert await survivor.recover() == []

    flagged = await task(uow_factory, buy_id)
    # The order may have gone out: never re-run, never failed with the money released.
    assert flagged.status is TaskStatus.NEEDS_ATTENTION
    assert flagged.error is not None and "Interrupted by a restart" in flagged.error
    assert survivor.recorder.started() == []  # never ordered a second time
    notice = await needs_attention(uow_factory)
    assert notice.task_id == buy_id and notice.approvers == ("UAPPROVER",)
    assert notice.destination == Destination(CHANNEL, THREAD)
    assert await notices(uow_factory, TaskFinished) == []
    assert await notices(uow_factory, TaskFailed) == []
    async with uow_factory() as uow:
        status = await uow.budgets.status("U1", month, POLICY.monthly_budget_cents, POLICY.currency)
        ledger = await uow.ledger.for_task(buy_id)
    assert (status.held_cents, status.spent_cents) == (300_00, 0)
    assert ledger == []
