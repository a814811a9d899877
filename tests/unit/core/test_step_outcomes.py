"""Every step ends: results are stored JSON-safe, one step's failure leaves its
siblings alone, and a purchase whose order was placed is never failed with its
hold released — when its outcome cannot be recorded it needs attention, and
recovery after a restart respects that (or finishes it from the stored result)."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from bot.container import build_service
from core.agents.base import AgentContext, AgentResult
from core.agents.registry import AgentRegistry
from core.approvals import Decision, DecisionOutcome, DecisionResult
from core.executor import fail_task
from core.jobs.recovery import Recovery, worker_lease
from core.notices import RequestFinished, TaskFailed, TaskFinished, WebhookEvent
from core.policy import Policy
from core.service import TaskService
from core.states import TaskStatus
from core.webhooks import WebhookEmitter
from storage.uow import SqlUnitOfWorkFactory
from tests.fakes import FakeClock
from tests.unit.core.faults import Faults, RecordedSleep, ScriptedAgent
from tests.unit.core.helpers import (
    Recorder,
    RecordingAgent,
    agent_registry,
    approval_for,
    budget,
    children,
    ledger,
    needs_attention,
    notices,
    submit,
    submit_and_advance,
    task,
)
from tests.unit.core.jobs.conftest import Gate, GatedPurchase

S = TaskStatus
POLICY = Policy(approvers=("UAPPROVER",))


class Tier(enum.Enum):
    GOLD = "gold"


@dataclasses.dataclass(frozen=True)
class Quote:
    vendor: str
    price: Decimal


class Unstorable:
    """Something with no JSON form (think: an open socket a plugin forgot in its data)."""


def money_result(ctx: AgentContext, _attempt: int) -> AgentResult:
    return AgentResult(
        summary="Best price found",
        data={
            "price": Decimal("1299.99"),
            "tax_rate": Decimal("0.0825"),
            "checked_on": date(2026, 11, 24),
            "checked_at": datetime(2026, 11, 24, 12, 30),
            "quote_id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
            "sizes": {"M", "L", "S"},
            "dims": (60, Decimal("120.5")),
            "tier": Tier.GOLD,
            "quote": Quote("Acme", Decimal("10.50")),
            7: "an int key",
        },
    )


async def test_a_decimal_result_is_stored_json_safe_and_the_task_completes(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    recorder = Recorder()
    registry = agent_registry(
        recorder,
        research=ScriptedAgent("research", recorder, money_result),  # type: ignore[arg-type]
    )
    service = build_service(uow_factory, registry, POLICY, clock)
    root = await submit_and_advance(service, "research standing desks")

    assert root.status is S.COMPLETED, root.error
    assert root.result is not None
    assert root.result.data == {
        "price": "1299.99",
        "tax_rate": "0.0825",
        "checked_on": "2026-11-24",
        "checked_at": "2026-11-24T12:30:00",
        "quote_id": "12345678-1234-5678-1234-567812345678",
        "sizes": ["L", "M", "S"],
        "dims": [60, "120.5"],
        "tier": "gold",
        "quote": {"vendor": "Acme", "price": "10.50"},
        "7": "an int key",
    }
    (finished,) = await notices(uow_factory, TaskFinished)
    assert finished.task_id == root.id and finished.result.data["price"] == "1299.99"


async def test_an_unserialisable_result_fails_that_step_only(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    recorder = Recorder()

    def broken(_ctx: AgentContext, _attempt: int) -> AgentResult:
        return AgentResult(summary="prices", data={"rows": [1, 2, Unstorable()]})

    registry = agent_registry(
        recorder,
        compare=ScriptedAgent("compare", recorder, broken),  # type: ignore[arg-type]
    )
    service = build_service(uow_factory, registry, POLICY, clock)
    root = await submit_and_advance(service, "compare prices of desks and research chairs")

    compare, research = await children(uow_factory, root.id)
    assert (compare.status, research.status) == (S.FAILED, S.COMPLETED)
    assert compare.error == (
        "The compare agent's result could not be stored: result.data['rows'][2] is a "
        "Unstorable, which cannot be stored as JSON."
    )
    assert research.result is not None and research.result.summary.startswith("research result")
    (failed,) = await notices(uow_factory, TaskFailed)
    assert failed.task_id == compare.id and failed.error == compare.error
    (finished,) = await notices(uow_factory, RequestFinished)
    assert (finished.status, finished.completed, finished.total) == ("FAILED", 1, 2)


async def test_a_sibling_still_completing_when_one_step_fails(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    """The compare step's outcome cannot be written at all (every write raises) while
    the research step is still running: research still completes and is stored."""
    recorder = Recorder()
    faults = Faults(uow_factory)
    sleep = RecordedSleep()
    registry = agent_registry(recorder, research=RecordingAgent("research", recorder, delay=0.3))
    service = build_service(faults, registry, POLICY, clock, sleep=sleep)  # type: ignore[arg-type]
    submission = await submit(service, "compare prices of desks and research chairs")
    assert submission.root is not None
    compare_id, research_id = (c.id for c in await children(uow_factory, submission.root.id))
    faults.broken_for.add(compare_id)

    await service.advance(submission.root.id)
    await service.idle()

    compare, research = await task(uow_factory, compare_id), await task(uow_factory, research_id)
    assert faults.breaks == service.orchestrator.executor.record_attempts  # retried, then gave up
    assert compare.status is S.FAILED
    assert compare.error == (
        "The compare agent finished, but its outcome could not be recorded (LedgerDown)."
    )
    assert recorder.index("finish", research_id) > recorder.index("finish", compare_id)
    assert research.status is S.COMPLETED
    assert research.result is not None and research.result.summary.startswith("research result")
    assert [n.task_id for n in await notices(uow_factory, TaskFinished)] == [research_id]
    assert [n.task_id for n in await notices(uow_factory, TaskFailed)] == [compare_id]
    root = await task(uow_factory, submission.root.id)
    assert root.status is S.FAILED  # the request ended, and its requester was told
    assert len(await notices(uow_factory, RequestFinished)) == 1


# --- money: an order placed is never failed with its hold released ---------------------------


def faulty_worker(
    faults: Faults, recorder: Recorder, clock: FakeClock, sleep: RecordedSleep | None = None
) -> TaskService:
    """worker-1, on a database whose ledger writes fail as `faults` says."""
    registry = agent_registry(recorder)
    return build_service(faults, registry, POLICY, clock, worker="worker-1", sleep=sleep)  # type: ignore[arg-type]


async def submit_purchase(service: TaskService) -> int:
    submission = await submit(service, "buy 2 monitors for $300")
    assert submission.root is not None
    return submission.root.id


async def approve(
    service: TaskService, uow_factory: SqlUnitOfWorkFactory, buy_id: int
) -> DecisionOutcome:
    """Run the purchase up to its approval, then approve it as UAPPROVER."""
    await service.advance(buy_id)
    asked = await approval_for(uow_factory, buy_id)
    assert asked is not None
    return await service.decide(asked.id, "UAPPROVER", Decision.APPROVE)


async def approve_purchase(service: TaskService, uow_factory: SqlUnitOfWorkFactory) -> int:
    buy_id = await submit_purchase(service)
    outcome = await approve(service, uow_factory, buy_id)
    assert outcome.result is DecisionResult.DECIDED
    return buy_id


async def test_purchase_order_placed_then_recording_fails_needs_attention_not_failure(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    recorder = Recorder()
    faults = Faults(uow_factory)
    service = faulty_worker(faults, recorder, clock, RecordedSleep())
    buy_id = await submit_purchase(service)
    faults.broken_for.add(buy_id)
    await approve(service, uow_factory, buy_id)
    await service.idle()

    flagged = await task(uow_factory, buy_id)
    assert flagged.status is S.NEEDS_ATTENTION
    assert flagged.error is not None and "PO-" in flagged.error
    assert flagged.result is not None  # the order is on record even though finishing failed
    assert flagged.result.data["purchase_order"]["number"] == f"PO-{buy_id}"
    told = await needs_attention(uow_factory)
    assert told.task_id == buy_id and told.reference == f"PO-{buy_id}"
    assert told.approvers == ("UAPPROVER",)
    assert await notices(uow_factory, TaskFailed) == []
    held = await budget(uow_factory, clock, POLICY)
    assert (held.held_cents, held.spent_cents) == (300_00, 0)  # kept, not released

    # --- the process restarts: recovery and resume leave the flagged order alone
    clock.advance(3600)
    survivor_recorder = Recorder()
    registry: AgentRegistry = agent_registry(survivor_recorder)
    survivor = build_service(uow_factory, registry, POLICY, clock, worker="worker-2")
    assert await Recovery(uow_factory, registry, clock, policy=POLICY).run() == []
    await survivor.resume_unfinished()
    await survivor.idle()
    after = await task(uow_factory, buy_id)
    assert after.status is S.NEEDS_ATTENTION
    assert survivor_recorder.started() == []  # never ordered twice
    held = await budget(uow_factory, clock, POLICY)
    assert (held.held_cents, held.spent_cents) == (300_00, 0)
    assert await notices(uow_factory, TaskFailed) == []


async def test_purchase_order_placed_then_process_dies_is_finished_by_recovery(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    """The worker dies after the order was placed but before it was recorded: recovery
    finishes it from the stored result (spent, on the ledger), never fails it."""
    recorder = Recorder()
    faults = Faults(uow_factory)
    worker = faulty_worker(faults, recorder, clock)
    async with uow_factory() as uow:
        await uow.leases.acquire(worker_lease("worker-1"), "worker-1", clock.now(), 30)
    buy_id = await submit_purchase(worker)
    faults.hang_for.add(buy_id)
    await approve(worker, uow_factory, buy_id)
    await faults.hanging.wait()  # order placed, its recording under way…
    await worker.close(grace=0)  # …when the process dies
    placed = await task(uow_factory, buy_id)
    assert placed.status is S.IN_PROGRESS and placed.result is not None

    clock.advance(31)
    survivor_recorder = Recorder()
    registry = agent_registry(survivor_recorder)
    assert await Recovery(uow_factory, registry, clock, policy=POLICY).run() == [buy_id]
    done = await task(uow_factory, buy_id)
    assert done.status is S.COMPLETED
    assert survivor_recorder.started() == []  # not ordered a second time
    assert [e.amount_cents for e in await ledger(uow_factory, buy_id)] == [300_00]
    spent = await budget(uow_factory, clock, POLICY)
    assert (spent.held_cents, spent.spent_cents) == (0, 300_00)
    (finished,) = await notices(uow_factory, TaskFinished)
    assert finished.result.data["purchase_order"]["number"] == f"PO-{buy_id}"
    assert await notices(uow_factory, TaskFailed) == []


async def test_an_unstorable_purchase_result_needs_attention_with_its_reference(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    recorder = Recorder()

    def placed(ctx: AgentContext, _attempt: int) -> AgentResult:
        order: dict[str, Any] = {"number": f"PO-{ctx.task_id}", "receipt": Unstorable()}
        return AgentResult(summary="ordered", data={"purchase_order": order}, cost_cents=300_00)

    buyer = ScriptedAgent("purchase", recorder, placed, safe_to_rerun=False, requires_approval=True)
    buyer.estimate_cost_cents = lambda params: int(params["amount_cents"])  # type: ignore[method-assign]
    registry = agent_registry(recorder)
    registry.register(buyer, replace=True)  # type: ignore[arg-type]
    uow_factory.before_commit_with_notices(WebhookEmitter(clock, "https://hooks.example/x"))
    service = build_service(uow_factory, registry, POLICY, clock)
    buy_id = await approve_purchase(service, uow_factory)
    await service.idle()

    flagged = await task(uow_factory, buy_id)
    assert flagged.status is S.NEEDS_ATTENTION
    events = [e.event_type for e in await notices(uow_factory, WebhookEvent)]
    assert events == ["approval.requested", "task.needs_attention"]  # once, not per approver
    told = await needs_attention(uow_factory)
    assert told.reference == f"PO-{buy_id}" and "cannot be stored as JSON" in told.detail
    held = await budget(uow_factory, clock, POLICY)
    assert held.held_cents == 300_00
    assert await notices(uow_factory, TaskFailed) == []


async def test_a_purchase_stopped_by_its_timeout_needs_attention_not_failure(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    """Stopped mid-call, the order may have gone out: the hold is kept for a person."""
    recorder = Recorder()

    async def hangs(_ctx: AgentContext, _attempt: int) -> AgentResult:
        await asyncio.sleep(30)
        raise AssertionError("unreachable")

    buyer = ScriptedAgent("purchase", recorder, hangs, safe_to_rerun=False, requires_approval=True)
    buyer.estimate_cost_cents = lambda params: int(params["amount_cents"])  # type: ignore[method-assign]
    registry = agent_registry(recorder)
    registry.register(buyer, replace=True)  # type: ignore[arg-type]
    policy = Policy(approvers=("UAPPROVER",), agent_timeout_seconds=0.2)
    service = build_service(uow_factory, registry, policy, clock, sleep=RecordedSleep())
    buy_id = await approve_purchase(service, uow_factory)
    await service.idle()

    flagged = await task(uow_factory, buy_id)
    assert flagged.status is S.NEEDS_ATTENTION
    assert buyer.attempts == {buy_id: 1}
    told = await needs_attention(uow_factory)
    assert told.detail.startswith("The purchase agent took longer than 0.2 s")
    assert (await budget(uow_factory, clock, policy)).held_cents == 300_00
    assert await notices(uow_factory, TaskFailed) == []


async def test_an_order_placed_after_its_step_was_failed_elsewhere_is_not_lost(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    """Another process's recovery failed the step (its lease lapsed) while the agent
    was still placing the order: the approvers still hear about the order."""
    recorder, gate = Recorder(), Gate()
    registry = agent_registry(recorder)
    registry.register(GatedPurchase(recorder, gate), replace=True)
    service = build_service(uow_factory, registry, POLICY, clock)
    buy_id = await approve_purchase(service, uow_factory)
    await gate.wait_started()
    async with uow_factory() as uow:
        running = await uow.tasks.get(buy_id)
        assert running is not None
        assert await fail_task(uow, running, "Interrupted by a restart", clock)

    gate.release.set()
    await service.idle()
    assert (await task(uow_factory, buy_id)).status is S.FAILED
    told = await needs_attention(uow_factory)
    assert told.reference == f"PO-{buy_id}" and told.approvers == ("UAPPROVER",)
    assert "not on the ledger" in told.detail
    async with uow_factory() as uow:
        actions = [e.action for e in await uow.audit.for_task(buy_id)]
    assert "outcome_after_end" in actions


class HeldAckPath:
    """The real storage, but ack-path work (`together` without `background`) waits for
    `release` first: a batch still running when the caller is cancelled."""

    def __init__(self, inner: SqlUnitOfWorkFactory) -> None:
        self.inner = inner
        self.front_door = inner.front_door
        self.armed = False
        self.waiting = asyncio.Event()
        self.release = asyncio.Event()

    def __call__(self, **kwargs: Any) -> Any:
        return self.inner(**kwargs)

    async def together(self, work: Any, *, background: bool = False, first: bool = False) -> Any:
        if self.armed and not background:
            self.waiting.set()
            await self.release.wait()
        return await self.inner.together(work, background=background, first=first)


async def test_an_order_placed_is_on_record_though_shutdown_cancels_its_step(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    """Shutdown (close's grace over) cancels a purchase step while its placed order's
    outcome is being written: the outcome still commits, or after the restart nobody
    knows whether the order was placed."""
    held = HeldAckPath(uow_factory)
    worker = build_service(held, agent_registry(Recorder()), POLICY, clock, worker="worker-1")  # type: ignore[arg-type]
    buy_id = await submit_purchase(worker)
    await worker.advance(buy_id)
    asked = await approval_for(uow_factory, buy_id)
    assert asked is not None
    await worker.decide(asked.id, "UAPPROVER", Decision.APPROVE)
    held.armed = True
    await asyncio.wait_for(held.waiting.wait(), 10)  # the order is placed; its outcome waits
    await worker.close(grace=0)
    held.release.set()
    for _ in range(50):
        await asyncio.sleep(0.01)
    placed = await task(uow_factory, buy_id)
    assert placed.result is not None
    assert placed.result.data["purchase_order"]["number"] == f"PO-{buy_id}"
