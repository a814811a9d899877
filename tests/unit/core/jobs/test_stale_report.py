"""The stale report: PENDING tasks older than stale_after, listed in one digest per
escalation step (1×, 2×, 4×… stale_after), to the report channel or to each approver;
then the same digest through the Slack notifier, with permalinks to each thread."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import select

from bot.slack_notifier import SlackNotifier
from core.approvals import Decision, DecisionResult
from core.jobs.stale import StaleReporter, escalation_step
from core.notices import Destination, StaleReport, StaleTask
from core.outbox import OutboxDispatcher
from core.policy import Policy
from core.service import TaskService
from core.states import TaskStatus
from storage.models import OutboxRow
from storage.uow import SqlUnitOfWorkFactory
from tests.fakes import FakeClock
from tests.slackfake.server import FakeSlack, NotJson
from tests.unit.core.helpers import (
    CHANNEL,
    Recorder,
    agent_registry,
    children,
    make_service,
    notices,
    submit,
    submit_and_advance,
    task,
)
from tests.unit.core.jobs.conftest import Gate, GatedResearch

STALE = 3600
REPORT = "CREPORT"
POLICY = Policy(approvers=("UAPPROVER",), stale_after_seconds=STALE)

THREAD_BUY_A = "1700000001.000100"
THREAD_BUY_B = "1700000002.000100"
THREAD_GRAPH = "1700000003.000100"


# --- escalation steps ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("age", "step"),
    [
        (0, 0),
        (STALE - 1, 0),
        (STALE, 1),
        (STALE + 1, 1),
        (1.5 * STALE, 1),
        (2 * STALE - 1, 1),
        (2 * STALE, 2),
        (3 * STALE, 2),
        (4 * STALE - 1, 2),
        (4 * STALE, 3),
        (8 * STALE, 4),
        (1024 * STALE, 11),
    ],
)
def test_escalation_step(age: float, step: int) -> None:
    assert escalation_step(age, STALE) == step


def test_escalation_step_with_a_one_second_threshold() -> None:
    assert [escalation_step(a, 1) for a in (0, 1, 2, 3, 4, 7, 8, 16)] == [0, 1, 2, 2, 3, 3, 4, 5]


# --- a scenario: two purchases waiting for approval, a step waiting for another -------------


class Scenario:
    def __init__(self, uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, policy: Policy) -> None:
        self.uow_factory = uow_factory
        self.clock = clock
        self.recorder = Recorder()
        self.gate = Gate()
        registry = agent_registry(
            self.recorder,
            research=GatedResearch(self.recorder, self.gate),  # type: ignore[arg-type]
        )
        self.service: TaskService = make_service(uow_factory, clock, registry, policy)

    async def build(self) -> None:
        s = self.service
        # U1 and U3 each wait for an approval
        self.buy_a = await submit_and_advance(
            s, "buy 2 monitors for $100", requester="U1", thread_ts=THREAD_BUY_A
        )
        self.buy_b = await submit_and_advance(
            s, "buy a keyboard for $50", requester="U3", thread_ts=THREAD_BUY_B
        )
        assert self.buy_a.status is self.buy_b.status is TaskStatus.PENDING
        # U2's email waits for a research step that is running (IN_PROGRESS, not stale)
        graph = await submit(
            s,
            "research laptops and draft email to bob@example.com",
            requester="U2",
            thread_ts=THREAD_GRAPH,
        )
        assert graph.root is not None
        self.root = graph.root
        s.start(graph)
        await self.gate.wait_started()
        self.research, self.email = await children(self.uow_factory, self.root.id)
        assert self.research.status is TaskStatus.IN_PROGRESS
        assert self.email.status is TaskStatus.PENDING

    async def finish_research(self) -> None:
        self.gate.release.set()
        await self.service.idle()

    async def close(self) -> None:
        self.gate.release.set()
        await self.service.idle()


@pytest.fixture
async def scenario(uow_factory: SqlUnitOfWorkFactory, clock: FakeClock) -> AsyncIterator[Scenario]:
    sc = Scenario(uow_factory, clock, POLICY)
    await sc.build()
    yield sc
    await sc.close()


async def reports(uow_factory: SqlUnitOfWorkFactory) -> list[StaleReport]:
    return list(await notices(uow_factory, StaleReport))


def by_id(report: StaleReport) -> dict[int, StaleTask]:
    return {t.task_id: t for t in report.tasks}


async def test_one_digest_to_the_report_channel_once_per_escalation_step(
    scenario: Scenario, uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    sc = scenario
    reporter = StaleReporter(uow_factory, POLICY, clock, REPORT)

    clock.advance(STALE - 1)  # not stale yet
    assert await reporter.run() == 0
    assert await reports(uow_factory) == []

    clock.advance(2)  # STALE + 1: stale, step 1
    assert [await reporter.run() for _ in range(5)] == [3, 0, 0, 0, 0]
    (digest,) = await reports(uow_factory)
    assert digest.destination == Destination(channel=REPORT)
    assert digest.task_id is None
    listed = by_id(digest)
    assert set(listed) == {sc.buy_a.id, sc.buy_b.id, sc.email.id}  # not the running step/root
    buy_a = listed[sc.buy_a.id]
    assert (buy_a.requester, buy_a.age_seconds) == ("U1", STALE + 1)
    assert buy_a.waiting_for == "approval from UAPPROVER"
    assert (buy_a.channel, buy_a.thread_ts) == (CHANNEL, THREAD_BUY_A)
    assert buy_a.title == sc.buy_a.title
    assert listed[sc.buy_b.id].requester == "U3"
    assert listed[sc.buy_b.id].thread_ts == THREAD_BUY_B
    email = listed[sc.email.id]
    assert email.requester == "U2"
    assert email.waiting_for == f"step #{sc.research.id}"
    assert (email.channel, email.thread_ts) == (CHANNEL, THREAD_GRAPH)

    clock.advance(STALE // 2 - 1)  # 1.5×: still step 1, nothing new
    assert await reporter.run() == 0
    assert len(await reports(uow_factory)) == 1

    clock.advance(STALE // 2 + 1)  # 2× + 1: step 2, reported again, once
    assert [await reporter.run() for _ in range(4)] == [3, 0, 0, 0]
    first, second = await reports(uow_factory)
    assert set(by_id(second)) == set(by_id(first))
    assert by_id(second)[sc.buy_a.id].age_seconds == 2 * STALE + 1

    # tasks that stop being PENDING drop out: U3's purchase is denied, the email runs
    denied = await sc.service.approvals.decide(
        (await _approval_id(uow_factory, sc.buy_b.id)), "UAPPROVER", Decision.DENY
    )
    assert denied.result is DecisionResult.DECIDED
    await sc.finish_research()
    assert (await task(uow_factory, sc.email.id)).status is TaskStatus.COMPLETED
    assert (await task(uow_factory, sc.buy_b.id)).status is TaskStatus.REJECTED

    clock.advance(2 * STALE)  # 4× + 1: step 3, only the one still waiting
    assert [await reporter.run() for _ in range(3)] == [1, 0, 0]
    *_, third = await reports(uow_factory)
    assert len(await reports(uow_factory)) == 3
    assert list(by_id(third)) == [sc.buy_a.id]


async def _approval_id(uow_factory: SqlUnitOfWorkFactory, task_id: int) -> int:
    async with uow_factory() as uow:
        approval = await uow.approvals.for_task(task_id)
    assert approval is not None
    return approval.id


async def test_without_a_report_channel_each_approver_gets_the_digest(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    policy = Policy(approvers=("UA1", "UA2"), stale_after_seconds=STALE)
    service = make_service(uow_factory, clock, agent_registry(Recorder()), policy)
    a = await submit_and_advance(service, "buy a monitor for $100", requester="U1")
    b = await submit_and_advance(service, "buy a chair for $100", requester="U2")
    clock.advance(STALE + 60)

    assert await StaleReporter(uow_factory, policy, clock, None).run() == 2
    digests = await reports(uow_factory)
    assert [d.destination for d in digests] == [
        Destination(user="UA1"),
        Destination(user="UA2"),
    ]
    for digest in digests:
        assert set(by_id(digest)) == {a.id, b.id}
        assert by_id(digest)[a.id].waiting_for == "approval from UA1, UA2"
    assert await StaleReporter(uow_factory, policy, clock, None).run() == 0
    assert len(await reports(uow_factory)) == 2


async def test_with_no_approvers_configured_each_requester_hears_of_their_own(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    """With self-approval allowed, people approve their own requests, so the digest goes
    to them (it used to go nowhere while the tasks were still marked reported)."""
    policy = Policy(approvers=(), allow_self_approval=True, stale_after_seconds=STALE)
    service = make_service(uow_factory, clock, agent_registry(Recorder()), policy)
    a = await submit_and_advance(service, "buy a monitor for $100", requester="U1")
    b = await submit_and_advance(service, "buy a chair for $100", requester="U2")
    # U2 approved but nothing has run the purchase yet: it waits for a worker, not approval
    approval_b = await _approval_id(uow_factory, b.id)
    outcome = await service.approvals.decide(approval_b, "U2", Decision.APPROVE)
    assert outcome.result is DecisionResult.DECIDED
    clock.advance(STALE + 60)

    assert await StaleReporter(uow_factory, policy, clock, None).run() == 2
    to_u1, to_u2 = await reports(uow_factory)
    assert to_u1.destination == Destination(user="U1")
    assert [(t.task_id, t.waiting_for) for t in to_u1.tasks] == [(a.id, "approval from U1")]
    assert to_u2.destination == Destination(user="U2")
    assert [(t.task_id, t.waiting_for) for t in to_u2.tasks] == [(b.id, "a worker to start it")]


# --- through the Slack notifier to the fake Slack ------------------------------------------


async def report_three_stale(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, fake_slack: FakeSlack
) -> None:
    """The scenario's threads are real Slack threads, its approval DMs went out long ago,
    and now its three requests are stale: the reporter reports them."""
    for thread, user in ((THREAD_BUY_A, "U1"), (THREAD_BUY_B, "U3"), (THREAD_GRAPH, "U2")):
        fake_slack.note_user_message(CHANNEL, thread, user)
    await deliver_all(uow_factory, clock, fake_slack)
    fake_slack.calls.clear()
    clock.advance(STALE + 120)
    assert await StaleReporter(uow_factory, POLICY, clock, REPORT).run() == 3


async def deliver_all(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, fake_slack: FakeSlack
) -> None:
    client = AsyncWebClient(base_url=fake_slack.base_url, token="xoxb-x")
    await OutboxDispatcher(uow_factory, SlackNotifier(client), clock).drain()


async def test_the_digest_in_slack_links_each_thread(
    scenario: Scenario,
    uow_factory: SqlUnitOfWorkFactory,
    clock: FakeClock,
    fake_slack: FakeSlack,
) -> None:
    sc = scenario
    await report_three_stale(uow_factory, clock, fake_slack)
    await deliver_all(uow_factory, clock, fake_slack)

    asked = sorted(
        (c.params["channel"], c.params["message_ts"])
        for c in fake_slack.calls_to("chat.getPermalink")
    )
    assert asked == sorted(
        [(CHANNEL, THREAD_BUY_A), (CHANNEL, THREAD_BUY_B), (CHANNEL, THREAD_GRAPH)]
    )
    permalinks = {
        c.params["message_ts"]: c.response["permalink"]
        for c in fake_slack.calls_to("chat.getPermalink")
    }
    (post,) = [c for c in fake_slack.calls_to("chat.postMessage") if c.params["channel"] == REPORT]
    assert post.ok
    assert not post.params.get("thread_ts")  # a digest of its own, not a reply
    blocks = json.dumps(post.params["blocks"])
    assert "3 requests waiting too long" in blocks
    for thread in (THREAD_BUY_A, THREAD_BUY_B, THREAD_GRAPH):
        assert f"<{permalinks[thread]}|thread>" in blocks
    for t in (sc.buy_a, sc.buy_b, sc.email):
        assert f"`#{t.id}`" in blocks
    # only those who can unblock are mentioned, not the requesters
    for requester in ("U1", "U2", "U3"):
        assert f"<@{requester}>" not in blocks
    assert "waiting 1 h" in blocks
    assert "approval from <@UAPPROVER>" in blocks and f"step #{sc.research.id}" in blocks
    assert fake_slack.calls_to("conversations.open") == []


async def test_a_days_digests_are_one_message_updated_in_place_linking_the_approval(
    uow_factory: SqlUnitOfWorkFactory,
    clock: FakeClock,
    fake_slack: FakeSlack,
) -> None:
    # approvals go to a shared channel, so the report's readers can open them there
    fake_slack.add_channel("CAPPROVALS", {"UAPPROVER"})
    policy = replace(POLICY, approval_channel="CAPPROVALS")
    sc = Scenario(uow_factory, clock, policy)
    await sc.build()  # two purchases waiting for approval, an email waiting for research
    await deliver_all(uow_factory, clock, fake_slack)  # the approval messages are posted
    approvals = {
        c.params["metadata"]["event_payload"]["task"]: c.response["ts"]
        for c in fake_slack.calls_to("chat.postMessage")
        if "approval:approve" in json.dumps(c.params.get("blocks"))
    }
    assert {c.params["channel"] for c in fake_slack.calls_to("chat.postMessage")} >= {"CAPPROVALS"}
    reporter = StaleReporter(uow_factory, policy, clock, REPORT)
    clock.advance(STALE + 120)  # step 1
    assert await reporter.run() == 3
    await deliver_all(uow_factory, clock, fake_slack)
    clock.advance(STALE)  # 2× + 120: step 2, the same day
    assert await reporter.run() == 3
    await deliver_all(uow_factory, clock, fake_slack)

    (post,) = [c for c in fake_slack.calls_to("chat.postMessage") if c.params["channel"] == REPORT]
    (update,) = [c for c in fake_slack.calls_to("chat.update") if c.params["channel"] == REPORT]
    assert update.ok and update.params["ts"] == post.response["ts"]
    assert "waiting 2 h" in json.dumps(update.params["blocks"])
    # the purchases link to their approval message, where the approver can act
    linked = [c.params["message_ts"] for c in fake_slack.calls_to("chat.getPermalink")]
    assert approvals[sc.buy_a.id] in linked and approvals[sc.buy_b.id] in linked
    assert "|approval>" in json.dumps(update.params["blocks"])

    clock.advance(24 * 3600)  # the next day: a new message
    assert await reporter.run() == 3
    await deliver_all(uow_factory, clock, fake_slack)
    posts = [c for c in fake_slack.calls_to("chat.postMessage") if c.params["channel"] == REPORT]
    assert len(posts) == 2
    await sc.close()


async def test_without_a_report_channel_slack_opens_a_dm_to_each_approver(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock, fake_slack: FakeSlack
) -> None:
    policy = Policy(approvers=("UA1", "UA2"), stale_after_seconds=STALE)
    service = make_service(uow_factory, clock, agent_registry(Recorder()), policy)
    buy = await submit_and_advance(
        service, "buy a monitor for $100", requester="U1", thread_ts=THREAD_BUY_A
    )
    await deliver_all(uow_factory, clock, fake_slack)  # each approver's approval DM
    approval_dms = {
        c.response["channel"]: c.response["ts"]
        for c in fake_slack.calls_to("chat.postMessage")
        if c.ok and " to approve " in c.params["text"]
    }
    fake_slack.calls.clear()
    clock.advance(STALE + 60)
    assert await StaleReporter(uow_factory, policy, clock, None).run() == 1
    await deliver_all(uow_factory, clock, fake_slack)

    opened = [c.params["users"] for c in fake_slack.calls_to("conversations.open")]
    assert sorted(opened) == ["UA1", "UA2"]
    for approver in ("UA1", "UA2"):
        dm = fake_slack.dm_channel_for(approver)
        (post,) = [c for c in fake_slack.calls_to("chat.postMessage") if c.params["channel"] == dm]
        assert post.ok
        blocks = json.dumps(post.params["blocks"])
        assert f"`#{buy.id}`" in blocks and "|approval>" in blocks
        # the link is to the approval message in this approver's own DM, which they can open
        (link,) = fake_slack.calls_to("chat.getPermalink")[
            [c.params["channel"] for c in fake_slack.calls_to("chat.getPermalink")].index(dm) :
        ][:1]
        assert link.params["message_ts"] == approval_dms[dm]
        assert link.response["permalink"] in blocks


async def test_long_stale_tasks_do_not_crowd_out_newly_stale_ones(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    policy = Policy(approvers=("UA1",), stale_after_seconds=STALE)
    service = make_service(uow_factory, clock, agent_registry(Recorder()), policy)
    reporter = StaleReporter(uow_factory, policy, clock, "CREPORT")
    old = [await submit_and_advance(service, f"buy a mouse {n} for $10") for n in range(3)]
    clock.advance(STALE + 60)
    assert await reporter.run(limit=3) == 3
    clock.advance(STALE // 2)
    newer = await submit_and_advance(service, "buy a keyboard for $20")
    clock.advance(STALE + 60)  # the old ones are past 2x now, but were reported at step 1 first
    await reporter.run(limit=1)
    async with uow_factory() as uow:
        reported = await uow.tasks.get(newer.id)
    assert reported is not None and newer.id not in {t.id for t in old}
    async with uow_factory() as uow:
        assert not await uow.tasks.mark_stale_step(newer.id, 1)  # already reported at step 1


@pytest.mark.parametrize(
    ("status", "content_type"),
    [
        (502, "text/html"),
        (502, "text/plain"),
        (502, "application/json"),  # labelled JSON, an HTML page inside
        (200, "text/plain"),
    ],
)
async def test_a_permalink_call_answering_502_with_html_leaves_out_that_link_not_the_digest(
    scenario: Scenario,
    uow_factory: SqlUnitOfWorkFactory,
    clock: FakeClock,
    fake_slack: FakeSlack,
    status: int,
    content_type: str,
) -> None:
    await report_three_stale(uow_factory, clock, fake_slack)
    # the first link answers a proxy's error page instead of JSON; the others work
    fake_slack.script("chat.getPermalink", [NotJson(status=status, content_type=content_type)])
    await deliver_all(uow_factory, clock, fake_slack)

    asked = fake_slack.calls_to("chat.getPermalink")
    assert len(asked) == 3 and asked[0].status == status
    (post,) = [c for c in fake_slack.calls_to("chat.postMessage") if c.params["channel"] == REPORT]
    assert post.ok
    blocks = json.dumps(post.params["blocks"])
    assert "3 requests waiting too long" in blocks
    assert blocks.count("|thread>") == 2
    assert asked[0].params["message_ts"] not in blocks.replace(".", "")
    for call in asked[1:]:
        assert f"<{call.response['permalink']}|thread>" in blocks
    async with uow_factory(read_only=True) as uow:
        statuses = (await uow.session.execute(select(OutboxRow.status))).scalars().all()
    assert set(statuses) == {"SENT"}, statuses  # delivered once, not retried
