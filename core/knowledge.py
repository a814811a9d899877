"""Ports the research and comparison agents read knowledge through.

Core only knows these Protocols; storage/ (or a plugin) supplies the index and
a front end may wire a real language model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


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
