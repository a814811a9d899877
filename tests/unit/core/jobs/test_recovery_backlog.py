"""Recovery behind 1,000 waiting requests: with 1,000 requests waiting for approval
in front (each a running request whose purchase step waits), a step left running by
a dead worker is still recovered, and a request acked just before a crash is still
resumed — recovery and start-up resume page through every candidate, oldest first."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import insert, update

from bot.container import build_service
from core.agents.registry import AgentRegistry
from core.jobs.recovery import Recovery
from core.orchestrator import GRAPH_AGENT
from core.policy import Policy
from core.records import NewTask, Task, TaskChanges
from core.states import TaskStatus, transition
from storage.models import ApprovalRow, TaskRow
from storage.uow import SqlUnitOfWorkFactory
from tests.fakes import FakeClock
from tests.unit.core.helpers import Recorder, agent_registry, conversation, submit, task

POLICY = Policy(approvers=("UAPPROVER",))
WAITING = 1000


async def orphaned_step(uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, topic: str) -> Task:
    """A research step left IN_PROGRESS by a worker that is gone."""
    async with uow_factory() as uow:
        orphan = await uow.tasks.add(
            NewTask(conversation(), "research", f"research {topic}", {"topic": topic}, "USD")
        )
        assert await transition(
            uow,
            orphan,
            TaskStatus.IN_PROGRESS,
            actor="test",
            clock=clock,
            changes=TaskChanges(started_at=clock.now(), worker="dead-worker"),
        )
    return orphan


async def waiting_backlog(uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, count: int) -> None:
    """`count` requests as the engine leaves them while a purchase step awaits approval:
    root IN_PROGRESS, purchase step PENDING with a pending approval (bulk-inserted)."""
    now = clock.now()

    def row(n: int, **values: Any) -> dict[str, Any]:
        base: dict[str, Any] = {
            "requester": "U1",
            "team": "T1",
            "channel": "C1",
            "thread_ts": f"1700000000.{n:06d}",
            "cost_cents": 100,
            "currency": "USD",
            "position": 0,
            "created_at": now,
            "updated_at": now,
        }
        return {**base, **values}

    async with uow_factory() as uow:
        roots = (
            await uow.session.scalars(
                insert(TaskRow).returning(TaskRow.id, sort_by_parameter_order=True),
                [
                    row(n, agent=GRAPH_AGENT, title=f"request {n}", params={}, status="IN_PROGRESS")
                    for n in range(count)
                ],
            )
        ).all()
        await uow.session.execute(
            update(TaskRow).where(TaskRow.id.in_(roots)).values(root_id=TaskRow.id)
        )
        steps = (
            await uow.session.scalars(
                insert(TaskRow).returning(TaskRow.id, sort_by_parameter_order=True),
                [
                    row(
                        n,
                        agent="purchase",
                        title=f"buy pen {n}",
                        params={"item": "pen", "quantity": 1, "amount_cents": 100},
                        status="PENDING",
                        root_id=root,
                        parent_id=root,
                    )
                    for n, root in enumerate(roots)
                ],
            )
        ).all()
        await uow.session.execute(
            insert(ApprovalRow),
            [
                {
                    "task_id": step,
                    "requester": "U1",
                    "approvers": ["UAPPROVER"],
                    "amount_cents": 100,
                    "currency": "USD",
                    "status": "PENDING",
                    "channel": "C1",
                    "created_at": now,
                    "expires_at": now + timedelta(days=7),
                }
                for step in steps
            ],
        )
    clock.advance(1)


async def test_recovery_behind_1000_waiting_requests(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    await waiting_backlog(uow_factory, clock, WAITING)

    # an orphan: a research step claimed by a worker that has died (no lease)
    orphan = await orphaned_step(uow_factory, clock, "desks")
    clock.advance(1)

    recorder = Recorder()
    registry: AgentRegistry = agent_registry(recorder)
    service = build_service(uow_factory, registry, POLICY, clock, worker="survivor")
    # a request acked just before the crash: persisted, never advanced
    acked = await submit(service, "research office chairs", event_id="Ev-acked")
    assert acked.root is not None

    recovery = Recovery(uow_factory, registry, clock, policy=POLICY)
    assert await recovery.run(page=200) == [orphan.id]
    assert (await task(uow_factory, orphan.id)).status is TaskStatus.PENDING

    scheduled: list[int] = []
    service.orchestrator.schedule = scheduled.append  # type: ignore[method-assign]
    assert await service.resume_unfinished() == WAITING + 2
    assert scheduled[-2:] == [orphan.id, acked.root.id]  # oldest first, none left out

    for root_id in (orphan.id, acked.root.id):
        await service.advance(root_id)
        assert (await task(uow_factory, root_id)).status is TaskStatus.COMPLETED
    assert sorted(recorder.started()) == sorted([orphan.id, acked.root.id])


async def test_recovery_pages_through_more_orphans_than_a_page(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    orphans = []
    for n in range(5):
        orphans.append((await orphaned_step(uow_factory, clock, str(n))).id)
    registry: AgentRegistry = agent_registry(Recorder())
    assert await Recovery(uow_factory, registry, clock, policy=POLICY).run(page=2) == orphans
