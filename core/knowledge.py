"""Ports the research and comparison agents read knowledge through, and their base.

Core only knows these Protocols; storage/ (or a plugin) supplies the index and
a front end may wire a real language model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from core.agents.base import AgentContext, AgentError, FreeAgent


@dataclass(frozen=True)
class Passage:
    """One ranked piece of a knowledge document; higher score = more relevant."""

    source: str
    title: str
    text: str
    score: float


class KnowledgeSearch(Protocol):
    async def search(self, query: str, limit: int = 5) -> list[Passage]: ...


class LanguageModel(Protocol):
    async def complete(self, system: str, user: str) -> str:
        """Return the model's answer; raises on any failure."""
        ...


class KnowledgeAgent(FreeAgent):
    """What the research and comparison agents share: they answer a topic from the
    knowledge base."""

    def __init__(self, knowledge: KnowledgeSearch, max_passages: int) -> None:
        self.knowledge = knowledge
        self.max_passages = max_passages

    async def passages(self, ctx: AgentContext, no_topic: str) -> tuple[str, list[Passage]]:
        """The step's topic and the passages found on it. AgentError (shown to the
        person): `no_topic` when the step has none, or the search failed."""
        topic = str(ctx.params.get("topic") or ctx.title or "").strip()
        if not topic:
            raise AgentError(no_topic)
        try:
            return topic, await self.knowledge.search(topic, limit=self.max_passages)
        except Exception as exc:
            raise AgentError(f"Could not search the knowledge base: {exc}") from exc
