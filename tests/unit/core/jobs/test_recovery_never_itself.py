"""A process never declares itself dead: even with its own lease lapsed (a stalled
heartbeat), its recovery job leaves the steps it is running alone; another
process's recovery would take them over."""

from __future__ import annotations

from core.jobs.recovery import Recovery
from core.states import TaskStatus
from storage.uow import SqlUnitOfWorkFactory
from tests.fakes import FakeClock
from tests.unit.core.helpers import Recorder, task
from tests.unit.core.jobs.conftest import Gate
from tests.unit.core.jobs.test_recovery import (
    LEASE_TTL,
    first_worker,
    gated_registry,
    start_research,
)


async def test_a_lapsed_lease_does_not_make_a_process_rerun_its_own_running_step(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, gate: Gate
) -> None:
    recorder = Recorder()
    worker = first_worker(uow_factory, clock, recorder, gate)
    task_id = await start_research(worker, uow_factory, clock, gate)
    clock.advance(LEASE_TTL * 3)  # the heartbeat stalled: the lease has expired

    own = Recovery(uow_factory, gated_registry(recorder, gate), clock, worker.worker)
    assert await own.run() == []
    assert (await task(uow_factory, task_id)).status is TaskStatus.IN_PROGRESS

    other = Recovery(uow_factory, gated_registry(recorder, gate), clock, "another-process")
    assert await other.run() == [task_id]  # to anyone else it does look dead
    gate.release.set()
    await worker.idle()
