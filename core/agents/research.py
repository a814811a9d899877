"""Answer a question from the knowledge base, with or without a language model.

The extractive path needs nothing but the index, so research works offline and
is the fallback whenever a model fails. With no matching passages the agent
says so instead of letting a model invent an answer.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

from core.agents.base import AgentContext, AgentError, AgentResult
from core.knowledge import KnowledgeAgent, KnowledgeSearch, LanguageModel, Passage

log = logging.getLogger(__name__)

SYSTEM_PROMPT = (
    "You are a careful research assistant for a workplace team. Answer the question "
    "using only the numbered context passages. If they do not contain the answer, say "
    "so plainly. Mention the source file names you relied on. Keep prices exactly as "
    "written. Reply in plain text without Markdown, in at most 150 words."
)

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9$])")
_WORD = re.compile(r"[a-z0-9]+")
_MIN_SENTENCE_WORDS = 6
_SUMMARY_SENTENCES = 6
_SMALL_PASSAGE_WORDS = 50
_KEY_POINTS = 6
_IGNORED_WORDS = (
    "a an and are as at be best by can do does for from good how i in is it me my of on or "
    "our should the to us we what which who why with you your about please find"
)
_IGNORED = frozenset(_IGNORED_WORDS.split())


@dataclass(frozen=True)
class _Sentence:
    text: str
    passage: int  # rank of its passage, 0 = best
    position: int
    score: float


def split_sentences(text: str) -> list[str]:
    """Sentences, with fragments too short to stand alone ("Item: $5.") merged on."""
    out: list[str] = []
    pending = ""
    for piece in _SENTENCE_END.split(" ".join(text.split())):
        pending = f"{pending} {piece}".strip()
        if len(pending.split()) >= _MIN_SENTENCE_WORDS:
            out.append(pending)
            pending = ""
    if pending:
        if out and len(pending.split()) < _MIN_SENTENCE_WORDS:
            out[-1] = f"{out[-1]} {pending}"
        else:
            out.append(pending)
    return out


def _units(text: str) -> list[str]:
    """A small passage (a list item) is one unit, so no point loses its subject."""
    if len(text.split()) <= _SMALL_PASSAGE_WORDS:
        return [" ".join(text.split())]
    return split_sentences(text)


def _stem(word: str) -> str:
    """Crude stemming, enough to match "laptops" with "laptop"."""
    for suffix in ("ies", "es", "s", "ing", "ed"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def _terms(text: str) -> set[str]:
    return {_stem(w) for w in _WORD.findall(text.lower()) if w not in _IGNORED}


def _dedupe_key(text: str) -> frozenset[str]:
    return frozenset(_WORD.findall(text.lower()))


def _is_duplicate(key: frozenset[str], seen: list[frozenset[str]]) -> bool:
    return any(len(key & old) >= 0.8 * max(len(key), len(old), 1) for old in seen)


def pick_sentences(topic: str, passages: Sequence[Passage], limit: int) -> list[_Sentence]:
    """The most relevant distinct sentences (or small passages), in reading order."""
    query = _terms(topic)
    candidates: list[_Sentence] = []
    for rank, passage in enumerate(passages):
        context = _terms(passage.title)
        for pos, text in enumerate(_units(passage.text)):
            words = _terms(text)
            overlap = len(query & words) + 0.5 * len(query & context)
            # earlier passages and sentences lead; overlap with the question leads most
            score = overlap + 1.0 / (1 + rank) + 0.2 / (1 + pos)
            candidates.append(_Sentence(text, rank, pos, score))
    chosen: list[_Sentence] = []
    seen: list[frozenset[str]] = []
    for cand in sorted(candidates, key=lambda s: (-s.score, s.passage, s.position)):
        key = _dedupe_key(cand.text)
        if _is_duplicate(key, seen):
            continue
        seen.append(key)
        chosen.append(cand)
        if len(chosen) == limit:
            break
    return sorted(chosen, key=lambda s: (s.passage, s.position))


def build_prompt(topic: str, passages: Sequence[Passage]) -> str:
    blocks = [f"[{i}] {p.source} — {p.title}\n{p.text}" for i, p in enumerate(passages, start=1)]
    return "Context passages:\n\n" + "\n\n".join(blocks) + f"\n\nQuestion: {topic}"


def _unique_sources(passages: Sequence[Passage]) -> list[str]:
    return list(dict.fromkeys(p.source for p in passages))


class ResearchAgent(KnowledgeAgent):
    """Research a topic in the knowledge base (params: {"topic": str})."""

    name = "research"

    def __init__(
        self,
        knowledge: KnowledgeSearch,
        model: LanguageModel | None = None,
        max_passages: int = 4,
        model_timeout: float | None = 60.0,
    ) -> None:
        super().__init__(knowledge, max_passages)
        self.model = model
        self.model_timeout = model_timeout

    async def run(self, ctx: AgentContext) -> AgentResult:
        topic, passages = await self.passages(ctx, "Research needs a topic.")
        if not passages:
            return AgentResult(
                summary=f"I found nothing in the knowledge base about {topic}.",
                data={"sources": [], "answered_by": "knowledge base"},
            )
        if self.model is None:
            return self.extractive(topic, passages)
        try:
            async with asyncio.timeout(self.model_timeout):
                answer = await self.model.complete(SYSTEM_PROMPT, build_prompt(topic, passages))
            answer = answer.strip()
            if not answer:
                raise AgentError("the model returned an empty answer")
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}".rstrip(": ")
            log.warning("language model failed for %r, answering extractively: %s", topic, reason)
            result = self.extractive(topic, passages)
            return AgentResult(
                summary=result.summary,
                body=result.body,
                data={**result.data, "fallback_reason": reason},
            )
        sources = _unique_sources(passages)
        return AgentResult(
            summary=answer,
            body="Sources: " + ", ".join(sources),
            data={"sources": sources, "answered_by": "model"},
        )

    def extractive(self, topic: str, passages: Sequence[Passage]) -> AgentResult:
        """Summary = the top sentences; body = key points, each with its source."""
        points = pick_sentences(topic, passages, _KEY_POINTS)
        best: list[_Sentence] = []
        sentences = 0
        for point in sorted(points, key=lambda s: -s.score):
            sentences += len(split_sentences(point.text))
            if best and sentences > _SUMMARY_SENTENCES:
                break
            best.append(point)
        summary = " ".join(s.text for s in points if s in best)
        body = "\n".join(f"- {s.text} ({passages[s.passage].source})" for s in points)
        used = _unique_sources([passages[s.passage] for s in points])
        return AgentResult(
            summary=summary,
            body=body,
            data={"sources": used, "answered_by": "knowledge base"},
        )
