"""The orchestrator end to end on real storage: plans, graph order, concurrency,
results flowing along edges, failure propagation, dedupe and refusals."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from core.notices import (
    ApprovalNeeded,
    RequestAccepted,
    RequestFinished,
    RequestRefused,
    TaskFailed,
    TaskFinished,
)
from core.orchestrator import GRAPH_AGENT, Outcome
from core.policy import Policy
from core.service import TaskService
from core.states import ApprovalStatus, TaskStatus
from storage.models import InboxRow, TaskRow
from storage.uow import SqlUnitOfWorkFactory
from tests.fakes import FakeClock
from tests.unit.core.helpers import (
    Recorder,
    RecordingAgent,
    agent_registry,
    approval_for,
    children,
    make_service,
    notices,
    outbox,
    submit,
    submit_and_advance,
    task,
    task_count,
)

S = TaskStatus


def _recording(
    uow_factory: SqlUnitOfWorkFactory,
    clock: FakeClock,
    recorder: Recorder,
    agent: str = "research",
    policy: Policy | None = None,
    **options: Any,
) -> TaskService:
    """A service whose `agent` records (and sleeps, fails or crashes: `options`)."""
    registry = agent_registry(recorder)
    registry.register(RecordingAgent(agent, recorder, **options), replace=True)
    return make_service(uow_factory, clock, registry, policy)


# --- plan shapes ----------------------------------------------------------------------------


async def test_research_then_email_plan(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, recorder: Recorder
) -> None:
    service = make_service(uow_factory, clock, agent_registry(recorder))
    text = "research laptops and draft email to bob@example.com"
    submission = await submit(service, text)

    assert submission.outcome is Outcome.ACCEPTED and submission.root is not None
    root = submission.root
    assert (root.agent, root.status, root.parent_id) == (GRAPH_AGENT, S.PENDING, None)
    research, email = await children(uow_factory, root.id)
    assert (research.agent, research.depends_on) == ("research", ())
    assert (email.agent, email.depends_on) == ("communication", (research.id,))
    assert email.params["recipients"] == ["bob@example.com"]
    assert {research.root_id, email.root_id, research.parent_id, email.parent_id} == {root.id}
    assert recorder.events == []  # submit only persists; nothing runs before the ack

    (accepted,) = await notices(uow_factory, RequestAccepted)
    assert accepted.task_id == root.id
    assert [(s.task_id, s.agent, s.depends_on) for s in accepted.steps] == [
        (research.id, "research", ()),
        (email.id, "communication", (research.id,)),
    ]


async def test_research_and_compare_plan(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, recorder: Recorder
) -> None:
    service = make_service(uow_factory, clock, agent_registry(recorder))
    submission = await submit(service, "research products and compare prices")
    assert submission.root is not None
    research, compare = await children(uow_factory, submission.root.id)
    assert (research.agent, research.depends_on) == ("research", ())
    assert (compare.agent, compare.depends_on) == ("compare", (research.id,))


async def test_research_then_purchase_waits_for_approval(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, recorder: Recorder
) -> None:
    service = make_service(uow_factory, clock, agent_registry(recorder))
    root = await submit_and_advance(service, "research monitors then buy 2 monitors for $300")

    research, purchase = await children(uow_factory, root.id)
    assert (purchase.agent, purchase.depends_on, purchase.cost_cents) == (
        "purchase",
        (research.id,),
        30000,
    )
    (accepted,) = await notices(uow_factory, RequestAccepted)
    assert [s.needs_approval for s in accepted.steps] == [False, True]

    assert research.status is S.COMPLETED
    assert purchase.status is S.PENDING  # waiting, not run
    assert root.status is S.IN_PROGRESS
    assert recorder.started() == [research.id]
    pending = await approval_for(uow_factory, purchase.id)
    assert pending is not None and pending.status is ApprovalStatus.PENDING
    assert pending.amount_cents == 30000
    (asked,) = await notices(uow_factory, ApprovalNeeded)
    assert (asked.task_id, asked.approval_id) == (purchase.id, pending.id)
    assert await notices(uow_factory, RequestFinished) == []

    # advancing again while the approval is open neither runs nor re-asks
    await service.advance(root.id)
    assert recorder.started() == [research.id]
    assert len(await notices(uow_factory, ApprovalNeeded)) == 1


# --- execution order ------------------------------------------------------------------------


async def test_dependents_start_only_after_their_dependencies_finished(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, recorder: Recorder
) -> None:
    service = _recording(uow_factory, clock, recorder, delay=0.05)
    root = await submit_and_advance(
        service, "research laptops and research monitors and draft email to bob@example.com"
    )

    first, second, email = await children(uow_factory, root.id)
    assert set(email.depends_on) == {first.id, second.id}
    assert root.status is S.COMPLETED
    start_email = recorder.index("start", email.id)
    assert recorder.index("finish", first.id) < start_email
    assert recorder.index("finish", second.id) < start_email
    stored = [await task(uow_factory, t.id) for t in (first, second, email)]
    assert stored[2].started_at is not None
    assert all(s.finished_at is not None for s in stored)


async def test_independent_steps_run_concurrently(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, recorder: Recorder
) -> None:
    service = _recording(uow_factory, clock, recorder, delay=0.2)
    root = await submit_and_advance(
        service, "research laptops and research monitors and research keyboards"
    )

    steps = await children(uow_factory, root.id)
    assert [s.depends_on for s in steps] == [(), (), ()]
    assert all(s.status is S.COMPLETED for s in steps)
    starts = [recorder.index("start", s.id) for s in steps]
    finishes = [recorder.index("finish", s.id) for s in steps]
    # overlap: every step had started before any of them finished
    assert max(starts) < min(finishes), recorder.events


async def test_dependents_receive_their_dependencies_results(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, recorder: Recorder
) -> None:
    service = make_service(uow_factory, clock, agent_registry(recorder))
    root = await submit_and_advance(
        service, "research laptops and research monitors and draft email to bob@example.com"
    )

    first, second, email = await children(uow_factory, root.id)
    ctx = recorder.contexts[email.id]
    assert [(d.task_id, d.agent, d.title) for d in ctx.dependencies] == [
        (first.id, "research", first.title),
        (second.id, "research", second.title),
    ]
    assert [d.result.summary for d in ctx.dependencies] == [
        f"research result #{first.id}: {first.title}.",
        f"research result #{second.id}: {second.title}.",
    ]
    assert first.result is not None and ctx.dependencies[0].result == first.result
    assert recorder.contexts[first.id].dependencies == []
    assert email.result is not None
    assert email.result.data["used"] == [first.id, second.id]


async def test_real_email_draft_quotes_the_research(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, recorder: Recorder
) -> None:
    from core.agents.communication import CommunicationAgent

    registry = agent_registry(recorder)
    registry.register(CommunicationAgent(), replace=True)
    service = make_service(uow_factory, clock, registry)
    root = await submit_and_advance(service, "research laptops and draft email to bob@example.com")

    research, email = await children(uow_factory, root.id)
    assert email.result is not None and research.result is not None
    assert research.result.summary in email.result.body
    assert email.result.data["email"]["to"] == ["bob@example.com"]


# --- failure --------------------------------------------------------------------------------


async def test_failed_step_fails_its_dependents_and_the_request(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, recorder: Recorder
) -> None:
    service = _recording(uow_factory, clock, recorder, fail="knowledge base offline")
    root = await submit_and_advance(service, "research laptops and draft email to bob@example.com")

    research, email = await children(uow_factory, root.id)
    assert (research.status, research.error) == (S.FAILED, "knowledge base offline")
    assert email.status is S.FAILED
    assert email.error is not None and f"#{research.id}" in email.error
    assert "failed" in email.error
    assert email.id not in recorder.started()  # never ran

    assert root.status is S.FAILED
    assert root.error is not None and "knowledge base offline" in root.error
    assert root.finished_at is not None
    (failed,) = await notices(uow_factory, TaskFailed)
    assert (failed.task_id, failed.error) == (research.id, "knowledge base offline")
    (finished,) = await notices(uow_factory, RequestFinished)
    assert (finished.task_id, finished.status, finished.completed, finished.total) == (
        root.id,
        "FAILED",
        0,
        2,
    )
    assert "knowledge base offline" in finished.detail


async def test_crashing_agent_fails_its_step_with_a_readable_reason(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, recorder: Recorder
) -> None:
    service = _recording(uow_factory, clock, recorder, crash=True)
    root = await submit_and_advance(service, "research laptops")

    assert root.agent == "research"  # one step: the root is the step
    assert root.status is S.FAILED
    assert root.error == "research agent crashed (RuntimeError)"


async def test_a_hanging_agent_is_stopped_and_its_step_fails(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, recorder: Recorder
) -> None:
    # one attempt: retrying timeouts is shown in test_step_retries.py
    policy = Policy(agent_timeout_seconds=0.2, step_max_attempts=1, allow_self_approval=True)
    service = _recording(uow_factory, clock, recorder, policy=policy, delay=30)
    root = await submit_and_advance(service, "research laptops")

    assert root.status is S.FAILED
    assert root.error == "The research agent took longer than 0.2 s and was stopped."
    failed = await notices(uow_factory, TaskFailed)
    assert [n.task_id for n in failed] == [root.id]


async def test_one_failed_branch_does_not_stop_an_independent_one(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, recorder: Recorder
) -> None:
    service = _recording(uow_factory, clock, recorder, "compare", fail="no price list")
    root = await submit_and_advance(service, "compare prices of desks and research chairs")

    compare, research = await children(uow_factory, root.id)
    assert (compare.status, research.status) == (S.FAILED, S.COMPLETED)
    assert root.status is S.FAILED
    assert root.error is not None and "no price list" in root.error
    (finished,) = await notices(uow_factory, RequestFinished)
    assert (finished.completed, finished.total) == (1, 2)


# --- completion -----------------------------------------------------------------------------


async def test_request_completes_when_all_steps_have(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, recorder: Recorder
) -> None:
    service = make_service(uow_factory, clock, agent_registry(recorder))
    root = await submit_and_advance(service, "research laptops and draft email to bob@example.com")

    steps = await children(uow_factory, root.id)
    assert all(s.status is S.COMPLETED for s in steps)
    assert root.status is S.COMPLETED
    assert root.error is None and root.finished_at is not None
    assert len(await notices(uow_factory, TaskFinished)) == 2
    (finished,) = await notices(uow_factory, RequestFinished)
    assert (finished.task_id, finished.status, finished.completed, finished.total) == (
        root.id,
        "COMPLETED",
        2,
        2,
    )

    # advancing a finished request again is harmless: no second run, no second notice
    events = list(recorder.events)
    await service.advance(root.id)
    assert recorder.events == events
    assert len(await notices(uow_factory, RequestFinished)) == 1


async def test_concurrent_advances_run_each_step_once(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, recorder: Recorder
) -> None:
    import asyncio

    service = _recording(uow_factory, clock, recorder, delay=0.05)
    other = _recording(uow_factory, clock, recorder, delay=0.05)  # a second process, same database
    submission = await submit(service, "research laptops and draft email to bob@example.com")
    assert submission.root is not None
    root_id = submission.root.id

    await asyncio.gather(
        service.advance(root_id),
        other.advance(root_id),
        service.advance(root_id),
    )

    steps = await children(uow_factory, root_id)
    assert sorted(recorder.started()) == sorted(s.id for s in steps)
    assert (await task(uow_factory, root_id)).status is S.COMPLETED
    assert len(await notices(uow_factory, RequestFinished)) == 1


# --- dedupe and refusals --------------------------------------------------------------------


async def test_duplicate_event_creates_nothing_new(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, recorder: Recorder
) -> None:
    service = make_service(uow_factory, clock, agent_registry(recorder))
    text = "research laptops and draft email to bob@example.com"
    first = await submit(service, text, event_id="Ev01")
    tasks_before, outbox_before = await task_count(uow_factory), len(await outbox(uow_factory))

    again = await submit(service, text, event_id="Ev01")

    assert first.outcome is Outcome.ACCEPTED and first.root is not None
    assert again.outcome is Outcome.DUPLICATE
    assert again.root is not None and again.root.id == first.root.id
    assert await task_count(uow_factory) == tasks_before == 3
    assert len(await outbox(uow_factory)) == outbox_before == 2  # accepted + status
    # a different event with the same text is a new request
    other = await submit(service, text, event_id="Ev02")
    assert other.outcome is Outcome.ACCEPTED
    assert await task_count(uow_factory) == 6


async def test_concurrent_redeliveries_create_one_request(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, recorder: Recorder
) -> None:
    """Slack retries may reach two replicas at once: one wins, the rest are duplicates."""
    import asyncio

    replica_a = make_service(uow_factory, clock, agent_registry(recorder))
    replica_b = make_service(uow_factory, clock, agent_registry(recorder))
    results = await asyncio.gather(
        *(submit(s, "research laptops", event_id="EvRetry") for s in [replica_a, replica_b] * 3)
    )
    outcomes = sorted(r.outcome.value for r in results)
    assert outcomes == ["accepted"] + ["duplicate"] * 5
    assert len({r.root.id for r in results if r.root is not None}) == 1
    assert all(r.root is not None for r in results)  # duplicates point at the original
    assert await task_count(uow_factory) == 1
    assert len(await notices(uow_factory, RequestAccepted)) == 1


async def test_duplicate_of_a_refused_event_is_not_answered_twice(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, recorder: Recorder
) -> None:
    service = make_service(uow_factory, clock, agent_registry(recorder))
    assert (await submit(service, "???", event_id="Ev9")).outcome is Outcome.REFUSED
    assert (await submit(service, "???", event_id="Ev9")).outcome is Outcome.DUPLICATE
    assert len(await notices(uow_factory, RequestRefused)) == 1


@pytest.mark.parametrize("text", ["???", "hi", "   "])
async def test_unintelligible_text_is_refused_with_a_notice(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, recorder: Recorder, text: str
) -> None:
    service = make_service(uow_factory, clock, agent_registry(recorder))
    submission = await submit(service, text)

    assert submission.outcome is Outcome.REFUSED
    assert submission.root is None
    assert submission.reason and "Try:" in submission.reason
    assert await task_count(uow_factory) == 0
    (refused,) = await notices(uow_factory, RequestRefused)
    assert refused.reason == submission.reason
    assert (refused.destination.channel, refused.destination.thread_ts) == (
        "C1",
        "1700000000.000100",
    )
    assert refused.requester == "U1"


@pytest.mark.parametrize(
    ("text", "currency"),
    [("buy 2 monitors for €300", "EUR"), ("research desks then buy a desk for 300 GBP", "GBP")],
)
async def test_purchase_in_a_foreign_currency_is_refused(
    uow_factory: SqlUnitOfWorkFactory,
    clock: FakeClock,
    recorder: Recorder,
    text: str,
    currency: str,
) -> None:
    service = make_service(uow_factory, clock, agent_registry(recorder))
    submission = await submit(service, text)

    assert submission.outcome is Outcome.REFUSED
    assert submission.reason is not None
    assert currency in submission.reason and "USD" in submission.reason
    assert "$300.00" in submission.reason  # shows how to say it instead
    assert await task_count(uow_factory) == 0
    (refused,) = await notices(uow_factory, RequestRefused)
    assert refused.reason == submission.reason


async def test_inbox_rows_name_the_root_task_of_their_request(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, recorder: Recorder
) -> None:
    """The inbox row carries the id it reserved for the root: one-step, graph, and
    redeliveries within one group-commit batch all agree with the tasks table."""
    import asyncio

    service = make_service(uow_factory, clock, agent_registry(recorder))
    results = await asyncio.gather(
        submit(service, "research laptops", event_id="EvA"),
        submit(service, "research desks and draft email to bob@example.com", event_id="EvB"),
        submit(service, "research laptops", event_id="EvA"),
        submit(service, "research chairs", event_id="EvC"),
    )
    assert [r.outcome for r in results] == [
        Outcome.ACCEPTED,
        Outcome.ACCEPTED,
        Outcome.DUPLICATE,
        Outcome.ACCEPTED,
    ]
    async with uow_factory() as uow:
        inbox = dict((await uow.session.execute(select(InboxRow.event_id, InboxRow.task_id))).all())
        roots = dict(
            (
                await uow.session.execute(
                    select(TaskRow.source_event_id, TaskRow.id).where(TaskRow.root_id == TaskRow.id)
                )
            ).all()
        )
    assert inbox == roots and set(inbox) == {"EvA", "EvB", "EvC"}
    assert {r.root.id for r in results if r.root is not None} == set(roots.values())
    assert await task_count(uow_factory) == 5
