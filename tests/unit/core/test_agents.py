"""Built-in agents against the real offline index and honest fakes for models."""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from core.agents.base import Agent, AgentContext, AgentError, AgentResult, DependencyResult
from core.agents.communication import CommunicationAgent
from core.agents.compare import PriceComparisonAgent, find_prices
from core.agents.purchase import PurchaseAgent
from core.agents.registry import AgentRegistry, builtin_registry
from core.agents.research import ResearchAgent
from core.knowledge import Passage
from storage.knowledge_index import KnowledgeIndex

SAMPLES = KnowledgeIndex()


def ctx(params: Mapping[str, Any], *deps: DependencyResult, task_id: int = 1) -> AgentContext:
    return AgentContext(
        task_id=task_id,
        title=str(params.get("topic", "")),
        params=params,
        requester="U123",
        currency="USD",
        dependencies=deps,
    )


class FixedKnowledge:
    """Returns the same passages for any query: tests what agents do with them."""

    def __init__(self, passages: Sequence[Passage]) -> None:
        self.passages = list(passages)
        self.queries: list[str] = []

    async def search(self, query: str, limit: int = 5) -> list[Passage]:
        self.queries.append(query)
        return self.passages[:limit]


class RecordingModel:
    def __init__(self, answer: str = "", error: Exception | None = None, delay: float = 0) -> None:
        self.answer, self.error, self.delay = answer, error, delay
        self.calls: list[tuple[str, str]] = []

    async def complete(self, system: str, user: str) -> str:
        self.calls.append((system, user))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return self.answer


@pytest.fixture
def desks_kb(tmp_path: Path) -> KnowledgeIndex:
    (tmp_path / "desks.md").write_text(
        "# Standing desks\n\n"
        "A sit-stand desk helps most when people change posture every 30 to 60 minutes. "
        "Standing all day is not the goal.\n\n"
        "Dual motors lift more weight and wobble less than single motors at full height.\n",
        encoding="utf-8",
    )
    (tmp_path / "tea.md").write_text("# Tea\n\nGreen tea brews at 80 degrees.\n", "utf-8")
    return KnowledgeIndex(tmp_path)


# -- research ---------------------------------------------------------------


async def test_research_extractive_answer_cites_its_sources(desks_kb: KnowledgeIndex) -> None:
    agent = ResearchAgent(desks_kb)
    result = await agent.run(ctx({"topic": "standing desk motors"}))
    assert "Dual motors lift more weight" in result.summary
    assert "tea" not in result.summary.lower()
    assert result.data == {"sources": ["desks.md"], "answered_by": "knowledge base"}
    assert "(desks.md)" in result.body
    assert result.cost_cents == 0
    assert agent.estimate_cost_cents({"topic": "x"}) == 0


async def test_research_on_the_samples_answers_from_the_right_file() -> None:
    result = await ResearchAgent(SAMPLES).run(ctx({"topic": "best laptops for travel"}))
    assert result.data["sources"] == ["laptops.md"]
    assert "ThinkPad X1 Carbon" in result.summary
    assert 1 <= len(result.body.splitlines()) <= 6


async def test_research_deduplicates_repeated_sentences() -> None:
    text = "Dual motors are quieter and more stable than single motors in standing desks."
    knowledge = FixedKnowledge([Passage("a.md", "A", text, 2.0), Passage("b.md", "B", text, 1.0)])
    result = await ResearchAgent(knowledge).run(ctx({"topic": "dual motors"}))
    assert result.summary.count("Dual motors") == 1
    assert result.data["sources"] == ["a.md"]


async def test_research_falls_back_when_the_model_raises(desks_kb: KnowledgeIndex) -> None:
    model = RecordingModel(error=RuntimeError("model unavailable"))
    result = await ResearchAgent(desks_kb, model).run(ctx({"topic": "standing desk motors"}))
    plain = await ResearchAgent(desks_kb).run(ctx({"topic": "standing desk motors"}))
    assert len(model.calls) == 1
    assert result.summary == plain.summary
    assert result.data["answered_by"] == "knowledge base"
    assert result.data["sources"] == ["desks.md"]
    assert "model unavailable" in result.data["fallback_reason"]


async def test_research_falls_back_when_the_model_is_too_slow(desks_kb: KnowledgeIndex) -> None:
    model = RecordingModel(answer="late", delay=5)
    agent = ResearchAgent(desks_kb, model, model_timeout=0.01)
    result = await agent.run(ctx({"topic": "standing desk"}))
    assert result.data["answered_by"] == "knowledge base"
    assert "TimeoutError" in result.data["fallback_reason"]


async def test_research_falls_back_on_an_empty_model_answer(desks_kb: KnowledgeIndex) -> None:
    result = await ResearchAgent(desks_kb, RecordingModel(answer="  \n")).run(
        ctx({"topic": "standing desk"})
    )
    assert result.data["answered_by"] == "knowledge base"
    assert "empty" in result.data["fallback_reason"]


async def test_research_uses_the_model_with_passages_as_context(desks_kb: KnowledgeIndex) -> None:
    model = RecordingModel(answer="  Alternate sitting and standing (desks.md).  ")
    result = await ResearchAgent(desks_kb, model).run(ctx({"topic": "how to use a standing desk"}))
    assert result.summary == "Alternate sitting and standing (desks.md)."
    assert result.data == {"sources": ["desks.md"], "answered_by": "model"}
    [(system, user)] = model.calls
    assert "only" in system and "context" in system.lower()
    assert "change posture every 30 to 60 minutes" in user
    assert "desks.md" in user
    assert user.rstrip().endswith("Question: how to use a standing desk")


async def test_research_admits_when_nothing_matches(desks_kb: KnowledgeIndex) -> None:
    model = RecordingModel(answer="Quarks are confined by the strong force.")
    result = await ResearchAgent(desks_kb, model).run(ctx({"topic": "quantum chromodynamics"}))
    assert result.summary == "I found nothing in the knowledge base about quantum chromodynamics."
    assert result.data["sources"] == []
    assert model.calls == []  # the model gets no chance to invent an answer


async def test_research_without_a_topic_is_an_agent_error(desks_kb: KnowledgeIndex) -> None:
    with pytest.raises(AgentError):
        await ResearchAgent(desks_kb).run(ctx({"topic": "  "}))


# -- communication ----------------------------------------------------------


def research_dep() -> DependencyResult:
    return DependencyResult(
        task_id=3,
        agent="research",
        title="Research: standing desks",
        result=AgentResult(
            summary="FlexiSpot E7: $450\u2013$650. Dual motor, stable, strong value.",
            body="- FlexiSpot E7 ... (standing-desks.md)",
            data={"sources": ["standing-desks.md"], "answered_by": "knowledge base"},
        ),
    )


def compare_dep() -> DependencyResult:
    return DependencyResult(
        task_id=4,
        agent="compare",
        title="Compare prices: standing desks",
        result=AgentResult(
            summary="Compared 2 prices for standing desks; lowest: IKEA Trotten at $350\u2013$600.",
            body="IKEA Trotten — $350\u2013$600 (standing-desks.md)\n"
            "Uplift V2 — $600\u2013$1,000 (uplift.md)",
            data={
                "rows": [
                    {
                        "item": "IKEA Trotten",
                        "low_cents": 35000,
                        "high_cents": 60000,
                        "source": "standing-desks.md",
                    },
                    {
                        "item": "Uplift V2",
                        "low_cents": 60000,
                        "high_cents": 100000,
                        "source": "uplift.md",
                    },
                ]
            },
        ),
    )


async def test_communication_drafts_an_email_quoting_dependencies() -> None:
    params = {
        "topic": "standing desks",
        "recipients": ["a@b.com"],
        "request": "research standing desks and email a@b.com",
    }
    result = await CommunicationAgent().run(ctx(params, research_dep(), compare_dep()))
    assert result.summary == "Drafted an email to a@b.com"
    email = result.data["email"]
    assert email["to"] == ["a@b.com"]
    assert "standing desks" in email["subject"].lower()
    body = email["body"]
    assert "> FlexiSpot E7: $450\u2013$650. Dual motor, stable, strong value." in body
    assert "> IKEA Trotten — $350\u2013$600 (standing-desks.md)" in body
    assert "Sources: standing-desks.md" in body
    assert "Sources: standing-desks.md, uplift.md" in body
    assert body.startswith("Hello,")
    assert body.rstrip().endswith("Best regards,")
    assert result.body.startswith("To: a@b.com\nSubject: ")
    assert body in result.body


async def test_communication_normalizes_mailto_and_rejects_bad_addresses() -> None:
    agent = CommunicationAgent()
    result = await agent.run(
        ctx({"topic": "x", "recipients": ["mailto:a@b.com", "c@d.org", "A@B.com"]})
    )
    assert result.data["email"]["to"] == ["a@b.com", "c@d.org"]
    assert result.summary == "Drafted an email to a@b.com, c@d.org"
    with pytest.raises(AgentError, match="not-an-address"):
        await agent.run(ctx({"topic": "x", "recipients": ["not-an-address"]}))


async def test_communication_without_findings_says_so() -> None:
    result = await CommunicationAgent().run(
        ctx({"topic": "", "recipients": "a@b.com", "request": "email a@b.com hello"})
    )
    assert result.data["email"]["subject"] == "email a@b.com hello"
    assert "do not have any findings" in result.data["email"]["body"]


# -- compare ----------------------------------------------------------------


async def test_compare_finds_prices_in_the_sample_files() -> None:
    result = await PriceComparisonAgent(SAMPLES).run(ctx({"topic": "monitors"}))
    rows = result.data["rows"]
    assert len(rows) >= 5
    assert {r["source"] for r in rows} == {"monitors.md"}
    lows = [r["low_cents"] for r in rows]
    assert lows == sorted(lows)
    assert all(isinstance(r["low_cents"], int) and r["low_cents"] <= r["high_cents"] for r in rows)
    dell = next(r for r in rows if r["item"] == "Dell P2723DE 27-inch 1440p")
    assert (dell["low_cents"], dell["high_cents"]) == (28000, 35000)
    assert "Dell P2723DE 27-inch 1440p — $280\u2013$350 (monitors.md)" in result.body.splitlines()
    assert result.summary.startswith(f"Compared {len(rows)} prices for monitors")


async def test_compare_keeps_units_of_subscription_prices() -> None:
    result = await PriceComparisonAgent(SAMPLES).run(ctx({"topic": "project management tools"}))
    trello = next(r for r in result.data["rows"] if r["item"] == "Trello")
    assert (trello["low_cents"], trello["high_cents"], trello["unit"]) == (
        500,
        1800,
        "per user per month",
    )


async def test_compare_reads_prices_in_dependency_results() -> None:
    dep = DependencyResult(
        7,
        "research",
        "Research: widgets",
        AgentResult(summary="s", body="Widget Pro: $1,299.50 to $999. Widget Mini ($49)."),
    )
    result = await PriceComparisonAgent(FixedKnowledge([])).run(ctx({"topic": "widgets"}, dep))
    assert result.data["rows"] == [
        {
            "item": "Widget Mini",
            "low_cents": 4900,
            "high_cents": 4900,
            "source": "task #7",
            "unit": "",
            "currency": "USD",
        },
        {
            "item": "Widget Pro",
            "low_cents": 99900,
            "high_cents": 129950,
            "source": "task #7",
            "unit": "",
            "currency": "USD",
        },
    ]
    assert result.body.splitlines() == [
        "Widget Mini — $49 (task #7)",
        "Widget Pro — $999\u2013$1,299.50 (task #7)",
    ]


async def test_compare_says_so_when_no_prices_are_found() -> None:
    result = await PriceComparisonAgent(SAMPLES).run(ctx({"topic": "email etiquette"}))
    assert result.summary == "No prices found for email etiquette in the knowledge base."
    assert result.data == {"rows": []}


def test_find_prices_names_items_from_the_sentence() -> None:
    text = (
        "A monitor arm costs $40\u2013$150 and frees space. They cost $150\u2013$400. "
        "An anti-fatigue mat ($40\u2013$100) helps. Big: $1.2k to $2k"
    )
    rows = [(r.item, r.low_cents, r.high_cents) for r in find_prices(text, "s.md", "Fallback")]
    assert rows == [
        ("A monitor arm", 4000, 15000),
        ("Fallback", 15000, 40000),
        ("An anti-fatigue mat", 4000, 10000),
        ("Big", 120000, 200000),
    ]


# -- purchase ---------------------------------------------------------------


async def test_purchase_creates_a_purchase_order() -> None:
    agent = PurchaseAgent()
    params = {"item": "monitors", "quantity": 2, "amount_cents": 30000, "currency": "USD"}
    assert agent.requires_approval is True and agent.safe_to_rerun is False
    assert agent.estimate_cost_cents(params) == 30000
    result = await agent.run(ctx(params, task_id=42))
    assert result.summary == "Purchase order PO-42 for 2 \u00d7 monitors, $300.00"
    assert result.cost_cents == 30000
    assert result.data == {
        "purchase_order": {
            "number": "PO-42",
            "item": "monitors",
            "quantity": 2,
            "amount_cents": 30000,
            "currency": "USD",
        }
    }


@pytest.mark.parametrize("amount", [None, -1, 12.5, "abc", True, "NaN"])
def test_purchase_rejects_bad_amounts(amount: object) -> None:
    with pytest.raises(AgentError):
        PurchaseAgent().estimate_cost_cents({"item": "x", "quantity": 1, "amount_cents": amount})


async def test_purchase_needs_an_item_and_a_positive_quantity() -> None:
    agent = PurchaseAgent()
    with pytest.raises(AgentError):
        await agent.run(ctx({"item": "", "quantity": 1, "amount_cents": 100}))
    with pytest.raises(AgentError):
        await agent.run(ctx({"item": "pens", "quantity": 0, "amount_cents": 100}))


# -- registry ---------------------------------------------------------------


class EchoAgent:
    name = "echo"
    requires_approval = False
    safe_to_rerun = True

    def estimate_cost_cents(self, params: Mapping[str, Any]) -> int:
        return 0

    async def run(self, ctx: AgentContext) -> AgentResult:
        return AgentResult(summary=str(ctx.params.get("text", "")))


class LoudEchoAgent(EchoAgent):
    name = "loud-echo"


LOUD_ECHO = LoudEchoAgent()
NOT_AN_AGENT = object()


def broken_factory() -> Agent:
    raise RuntimeError("plugin exploded")


def test_builtin_registry_has_the_four_agents() -> None:
    registry = builtin_registry(SAMPLES)
    assert registry.names() == ["communication", "compare", "purchase", "research"]
    assert isinstance(registry.get("research"), ResearchAgent)
    assert registry.get("purchase").requires_approval


def test_registry_unknown_and_duplicate_names() -> None:
    registry = AgentRegistry()
    registry.register(EchoAgent())
    with pytest.raises(KeyError, match=r"no agent named 'nope'.*echo"):
        registry.get("nope")
    with pytest.raises(ValueError, match="already registered"):
        registry.register(EchoAgent())
    with pytest.raises(TypeError):
        registry.register(NOT_AN_AGENT)  # type: ignore[arg-type]


async def test_entry_point_plugins_load_and_broken_ones_are_skipped(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    group = "taskbot.agents"
    here = __name__
    points = [
        importlib.metadata.EntryPoint("echo", f"{here}:EchoAgent", group),
        importlib.metadata.EntryPoint("loud", f"{here}:LOUD_ECHO", group),
        importlib.metadata.EntryPoint("boom", f"{here}:broken_factory", group),
        importlib.metadata.EntryPoint("junk", f"{here}:NOT_AN_AGENT", group),
        importlib.metadata.EntryPoint("gone", "taskbot_missing_plugin:Agent", group),
        importlib.metadata.EntryPoint("dup", f"{here}:EchoAgent", group),
    ]
    asked: list[str] = []

    def fake_entry_points(*, group: str) -> list[importlib.metadata.EntryPoint]:
        asked.append(group)
        return [p for p in points if p.group == group]

    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points)
    registry = builtin_registry(SAMPLES)
    with caplog.at_level(logging.ERROR, logger="core.agents.registry"):
        loaded = registry.load_entry_points()
    assert asked == [group]
    assert loaded == ["echo", "loud-echo"]
    assert "echo" in registry.names() and "loud-echo" in registry.names()
    assert registry.get("loud-echo") is LOUD_ECHO
    assert (await registry.get("echo").run(ctx({"text": "hi"}))).summary == "hi"
    skipped = " ".join(r.getMessage() for r in caplog.records)
    for name in ("boom", "junk", "gone", "dup"):
        assert f"plugin {name} " in skipped


def test_registry_refuses_an_agent_class_instead_of_an_instance() -> None:
    with pytest.raises(TypeError, match="not an Agent instance"):
        AgentRegistry().register(EchoAgent)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("topic", "subject"),
    [
        ("email to john@example.com", "Findings: Best laptops"),
        ("email to john@example.com about the launch plan", "Findings: The launch plan"),
        ("quarterly numbers", "Findings: Quarterly numbers"),
    ],
)
def test_email_subject_says_what_not_whom(topic: str, subject: str) -> None:
    from core.agents.base import AgentResult, DependencyResult
    from core.agents.communication import make_subject

    research = DependencyResult(2, "research", "Research: best laptops", AgentResult("x"))
    assert make_subject(topic, [research], "research best laptops and email john") == subject
