"""A small client for the API over real HTTP, and agents that fail on purpose."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bot.api.auth import create_token
from core.agents.base import Agent, AgentContext, AgentError, AgentResult
from tests.e2e.conftest import Harness


@dataclass
class Api:
    harness: Harness
    session: aiohttp.ClientSession
    token: str

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = "",
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
    ) -> tuple[int, Any, Mapping[str, str]]:
        sent = dict(headers or {})
        token = self.token if token == "" else token
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        async with self.session.request(
            method, self.harness.url + "/api/v1" + path, json=body, data=data, headers=sent
        ) as response:
            assert response.content_type == "application/json", await response.text()
            return response.status, await response.json(), response.headers

    async def submit(self, text: str, **extra: Any) -> dict[str, Any]:
        status, body, _ = await self.call("POST", "/tasks", {"user_message": text, **extra})
        assert status == 202, body
        return dict(body)

    async def task(self, task_id: int) -> dict[str, Any]:
        status, body, _ = await self.call("GET", f"/tasks/{task_id}")
        assert status == 200, body
        return dict(body)

    async def as_user(self, user: str) -> Api:
        _id, token = await create_token(self.harness.running.container.uow_factory, user, "test")
        return Api(self.harness, self.session, token)

    async def decided_purchase(self, verb: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """Ask for "buy 2 monitors for $300" and have UAPPROVER `verb` (approve or
        deny) the one approval now pending: the request as created, the approval as
        it was listed."""
        created = await self.submit("buy 2 monitors for $300")
        await self.harness.settle()
        approver = await self.as_user("UAPPROVER")
        _s, pending, _ = await approver.call("GET", "/approvals?status=pending")
        (approval,) = pending["approvals"]
        status, _b, _ = await approver.call("POST", f"/approvals/{approval['id']}/{verb}")
        assert status == 200
        return created, dict(approval)


@dataclass
class Flaky:
    """Wraps a real agent: fails its first `failures` runs, then does the real work."""

    inner: Agent
    failures: int
    runs: int = 0
    seen: list[int] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def requires_approval(self) -> bool:
        return self.inner.requires_approval

    @property
    def safe_to_rerun(self) -> bool:
        return self.inner.safe_to_rerun

    def estimate_cost_cents(self, params: Mapping[str, Any]) -> int:
        return self.inner.estimate_cost_cents(params)

    async def run(self, ctx: AgentContext) -> AgentResult:
        self.runs += 1
        self.seen.append(ctx.task_id)
        if self.runs <= self.failures:
            raise AgentError(f"{self.name} backend unavailable (run {self.runs})")
        return await self.inner.run(ctx)


def make_flaky(harness: Harness, agent: str, failures: int) -> Flaky:
    registry = harness.running.container.registry
    flaky = Flaky(registry.get(agent), failures)
    registry.register(flaky, replace=True)
    return flaky
