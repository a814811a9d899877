"""The API's storage on SQLite and PostgreSQL: tokens, idempotency keys, webhook targets,
keyset pages, and the webhook lane kept apart from Slack's in the outbox."""

from __future__ import annotations

from core.notices import Destination, TaskFailed, WebhookEvent
from core.records import TaskChanges
from core.states import TaskStatus
from storage.uow import SqlUnitOfWorkFactory
from tests.fakes import FakeClock
from tests.unit.storage.helpers import new_task


async def test_tokens_are_looked_up_by_id_and_revoked_once(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    async with uow_factory() as uow:
        token_id = await uow.api.add_token("U1", "ci", "a" * 64, clock.now())
    async with uow_factory() as uow:
        assert await uow.api.live_token(token_id) == ("U1", "a" * 64)
        assert await uow.api.revoke_token(token_id, clock.now())
        assert not await uow.api.revoke_token(token_id, clock.now())
        assert await uow.api.live_token(token_id) is None
        (listed,) = await uow.api.tokens()
        assert listed.revoked_at is not None and listed.name == "ci"


async def test_an_idempotency_key_stays_bound_to_its_first_body(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    async with uow_factory() as uow:
        assert await uow.api.claim_idempotency_key("U1", "k", "h1", clock.now()) == "h1"
    async with uow_factory() as uow:
        assert await uow.api.claim_idempotency_key("U1", "k", "h2", clock.now()) == "h1"
        assert await uow.api.claim_idempotency_key("U2", "k", "h2", clock.now()) == "h2"


async def test_root_ids_newest_first_by_status_with_a_cursor(
    uow_factory: SqlUnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        roots = [await uow.tasks.add(new_task("U1", title=f"t{i}")) for i in range(4)]
        await uow.tasks.add(new_task("U1", parent_id=roots[0].id))  # a step, never listed
        await uow.tasks.add(new_task("U2"))
        await uow.api.set_webhook(roots[0].id, "https://example.com/a")
        await uow.api.set_webhook(roots[0].id, "https://example.com/b")  # first one kept
        failed = roots[1]
        assert await uow.tasks.set_status(
            failed.id, TaskStatus.PENDING, TaskStatus.FAILED, failed.created_at, TaskChanges()
        )
    ids = [r.id for r in reversed(roots)]
    async with uow_factory() as uow:
        assert await uow.api.root_ids("U1", None, None, 10) == ids
        assert await uow.api.root_ids("U1", None, ids[1], 10) == ids[2:]
        assert await uow.api.root_ids("U1", TaskStatus.FAILED, None, 10) == [failed.id]
        assert await uow.api.webhook_url(roots[0].id) == "https://example.com/a"
        assert await uow.api.webhook_url(roots[1].id) is None


async def test_webhook_events_have_their_own_outbox_lane(
    uow_factory: SqlUnitOfWorkFactory, clock: FakeClock
) -> None:
    async with uow_factory() as uow:
        hook = WebhookEvent(
            Destination(channel="webhook:1"),
            1,
            url="https://e.x/h",
            event_id="msg_1",
            event_type="task.failed",
            timestamp=1,
        )
        await uow.outbox.add(hook, clock.now())
        await uow.outbox.add(TaskFailed(Destination(channel="C1"), 1, title="t"), clock.now())
    async with uow_factory() as uow:
        slack = await uow.outbox.claim_due(clock.now(), 10, 60)
        webhooks = await uow.outbox.claim_due(clock.now(), 10, 60, webhooks=True)
        pending, _oldest, _failed = await uow.outbox.backlog(clock.now())
    assert [i.notice.kind for i in slack] == ["task_failed"]
    assert [i.notice for i in webhooks] == [hook]
    assert pending == 1  # Slack's backlog only
