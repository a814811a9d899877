"""Webhooks on completion, against a local receiver: Standard Webhooks signatures,
retries on 5xx delivered once, non-public targets refused, giving up visible in /healthz."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families
from standardwebhooks import Webhook

from tests.e2e.api_helpers import Api
from tests.local_http import serving

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


@dataclass
class Receiver:
    #: statuses to answer, in order; 200 once they run out
    statuses: list[int] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes, int]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        status = self.statuses.pop(0) if self.statuses else 200
        self.received.append((dict(request.headers), await request.read(), status))
        return web.Response(status=status, text="ok")

    async def wait_for(self, count: int, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            assert time.monotonic() < deadline, f"only {len(self.received)} of {count} arrived"
            await asyncio.sleep(0.05)

    def delivered(self) -> list[dict[str, Any]]:
        verifier = Webhook(SECRET)
        return [
            verifier.verify(body, headers)
            for headers, body, status in self.received
            if 200 <= status < 300
        ]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    async with serving("/hook", rec.handle) as url:
        rec.url = url
        yield rec


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"TASKBOT_WEBHOOK_SECRET": SECRET, "TASKBOT_WEBHOOK_ALLOW_PRIVATE": "true"}


async def test_completion_webhook_is_signed_the_standard_webhooks_way(
    api: Api, receiver: Receiver
) -> None:
    created = await api.submit("research best laptops", webhook_url=receiver.url)
    await api.harness.settle()
    await receiver.wait_for(1)
    (event,) = receiver.delivered()  # verify() raises on a bad signature
    assert event["type"] == "task.completed"
    assert event["data"]["id"] == created["id"] and event["data"]["status"] == "COMPLETED"
    assert event["data"]["transactions"][0]["amount"] == "0.00"
    assert event["data"] == await api.task(created["id"])  # the task as the API shows it
    headers, body, _ = receiver.received[0]
    assert headers["webhook-id"].startswith("msg_")
    assert headers["webhook-signature"].startswith("v1,")
    tampered = body.replace(b"COMPLETED", b"FAILED")
    with pytest.raises(Exception, match=r"(?i)signature"):
        Webhook(SECRET).verify(tampered, headers)


async def test_a_500_is_retried_and_the_event_delivered_once(api: Api, receiver: Receiver) -> None:
    receiver.statuses = [500]
    await api.submit("research best laptops", webhook_url=receiver.url)
    await api.harness.settle()
    await receiver.wait_for(2)
    await asyncio.sleep(1.5)  # one poll interval more: nothing else may arrive
    assert [status for _h, _b, status in receiver.received] == [500, 200]
    first, second = (headers for headers, _b, _s in receiver.received)
    assert first["webhook-id"] == second["webhook-id"]  # the same message, retried
    assert len(receiver.delivered()) == 1
    stats = api.harness.running.container.webhooks
    assert stats is not None and stats.stats.delivered == 1 and stats.stats.retried == 1


async def test_approval_requested_and_cancelled_events(api: Api, receiver: Receiver) -> None:
    created = await api.submit("buy 2 monitors for $300", webhook_url=receiver.url)
    await api.harness.settle()
    await receiver.wait_for(1)
    status, _body, _ = await api.call("POST", f"/tasks/{created['id']}/cancel")
    assert status == 200
    await receiver.wait_for(2)
    types = [e["type"] for e in receiver.delivered()]
    assert types == ["approval.requested", "task.cancelled"]


async def test_failed_request_sends_task_failed(api: Api, receiver: Receiver) -> None:
    from tests.e2e.api_helpers import make_flaky

    make_flaky(api.harness, "communication", failures=1)
    await api.submit(
        "Research best laptops and draft email to john@example.com", webhook_url=receiver.url
    )
    await api.harness.settle()
    await receiver.wait_for(1)
    (event,) = receiver.delivered()
    assert event["type"] == "task.failed" and event["data"]["progress"] == {"done": 1, "total": 2}


class TestWithoutPrivateTargets:
    @pytest.fixture
    def settings_overrides(self, receiver: Receiver) -> dict[str, Any]:
        return {
            "TASKBOT_WEBHOOK_SECRET": SECRET,
            # set for every request; only the per-request URL is checked at submission
            "TASKBOT_WEBHOOK_URL": receiver.url,
            "TASKBOT_WEBHOOK_GIVE_UP_SECONDS": "0",
        }

    async def test_a_loopback_target_is_refused(self, api: Api, receiver: Receiver) -> None:
        status, body, _ = await api.call(
            "POST", "/tasks", {"user_message": "research laptops", "webhook_url": receiver.url}
        )
        assert status == 422 and body["error"]["code"] == "webhook_refused"

        # the global target resolves to loopback too: refused at delivery, after resolution
        await api.submit("research best laptops")
        await api.harness.settle()
        dispatcher = api.harness.running.container.webhook_dispatcher
        assert dispatcher is not None
        await dispatcher.drain()
        assert receiver.received == []
        async with api.session.get(api.harness.url + "/healthz") as response:
            health = await response.json()
        (failure,) = health["webhooks"]["recent_failures"]
        assert "refused" in failure["error"] and "non-public" in failure["error"]
        assert health["webhooks"]["gave_up"] == 1


class TestGivingUp:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {
            "TASKBOT_WEBHOOK_SECRET": SECRET,
            "TASKBOT_WEBHOOK_ALLOW_PRIVATE": "true",
            "TASKBOT_WEBHOOK_GIVE_UP_SECONDS": "0",
        }

    async def test_a_receiver_that_keeps_failing_is_given_up_and_shown(
        self, api: Api, receiver: Receiver
    ) -> None:
        receiver.statuses = [503] * 10
        await api.submit("research best laptops", webhook_url=receiver.url)
        await api.harness.settle()
        await receiver.wait_for(1)
        dispatcher = api.harness.running.container.webhook_dispatcher
        assert dispatcher is not None
        await dispatcher.drain()
        async with api.session.get(api.harness.url + "/healthz") as response:
            health = await response.json()
        assert health["webhooks"]["gave_up"] == 1
        assert "503" in health["webhooks"]["recent_failures"][0]["error"]
        async with api.session.get(api.harness.url + "/metrics") as response:
            exposition = await response.text()
        deliveries = {
            s.labels["outcome"]: s.value
            for family in text_string_to_metric_families(exposition)
            if family.name == "taskbot_webhook_deliveries"
            for s in family.samples
            if s.name.endswith("_total")
        }
        assert deliveries["gave_up"] == 1 and deliveries["delivered"] == 0
        assert len(receiver.received) == 1
        # the Slack replies were not held up by the failing receiver
        assert any(str(c.params.get("text")).startswith("Done:") for c in api.harness.posts())
