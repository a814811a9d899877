"""The OpenAI-compatible client, against a local fake chat-completions server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from bot.llm_client import ChatCompletionsModel
from core.agents.base import AgentContext
from core.agents.research import ResearchAgent
from storage.knowledge_index import KnowledgeIndex
from tests.local_http import serving


class FakeModelServer:
    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, Any], str | None]] = []
        #: the client address of each request: the same one for a reused connection
        self.peers: list[Any] = []
        self.fail = False
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((await request.json(), request.headers.get("Authorization")))
        self.peers.append(
            request.transport.get_extra_info("peername") if request.transport else None
        )
        if self.fail:
            return web.json_response({"error": {"message": "overloaded"}}, status=503)
        return web.json_response(
            {"choices": [{"message": {"role": "assistant", "content": "  The MacBook Air. "}}]}
        )


@pytest.fixture
async def model_server() -> AsyncIterator[FakeModelServer]:
    fake = FakeModelServer()
    async with serving("/v1/chat/completions", fake.handle) as url:
        fake.url = url.removesuffix("/chat/completions")
        yield fake


async def test_sends_model_messages_and_key(model_server: FakeModelServer) -> None:
    model = ChatCompletionsModel(model_server.url, "tiny-model", api_key="sk-test")
    assert await model.complete("be brief", "which laptop?") == "The MacBook Air."
    body, auth = model_server.requests[0]
    assert body["model"] == "tiny-model" and auth == "Bearer sk-test"
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert body["messages"][1]["content"] == "which laptop?"
    await model.close()


async def test_steps_share_one_connection_until_the_model_is_closed(
    model_server: FakeModelServer,
) -> None:
    model = ChatCompletionsModel(model_server.url, "tiny-model")
    for _ in range(3):
        await model.complete("be brief", "which laptop?")
    assert len(set(model_server.peers)) == 1  # no new connection (nor TLS handshake) per step
    await model.close()
    await model.complete("be brief", "which laptop?")  # a closed client opens a new session
    assert len(set(model_server.peers)) == 2
    await model.close()


async def test_research_uses_the_model_with_passages_and_falls_back_on_error(
    model_server: FakeModelServer,
) -> None:
    model = ChatCompletionsModel(model_server.url, "m")
    agent = ResearchAgent(KnowledgeIndex(), model)
    ctx = AgentContext(1, "Research: laptops", {"topic": "best laptops"}, "U1", "USD")
    answered = await agent.run(ctx)
    assert answered.data["answered_by"] == "model" and "MacBook Air" in answered.summary
    prompt = model_server.requests[0][0]["messages"][1]["content"]
    assert "laptops.md" in prompt or "ThinkPad" in prompt

    model_server.fail = True
    fallback = await agent.run(ctx)
    assert fallback.data["answered_by"] == "knowledge base"
    assert "fallback_reason" in fallback.data and fallback.data["sources"]
    await model.close()
