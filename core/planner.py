"""Turns parsed intents into a plan: steps and the dependencies between them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from core.intents import Intent, ParsedRequest
from core.money import format_money, to_cents

#: agents whose output later steps build on
_PRODUCERS = frozenset({"research", "compare"})


@dataclass(frozen=True)
class PlannedStep:
    agent: str
    title: str
    params: dict[str, Any]
    depends_on: tuple[int, ...] = ()  # indices of earlier steps


@dataclass(frozen=True)
class Plan:
    title: str
    steps: tuple[PlannedStep, ...] = field(default_factory=tuple)

    @property
    def is_graph(self) -> bool:
        return len(self.steps) > 1

    @property
    def outline(self) -> str:
        return " → ".join(_AGENT_LABELS.get(s.agent, s.agent) for s in self.steps)


_AGENT_LABELS = {
    "research": "research",
    "communication": "email draft",
    "compare": "price comparison",
    "purchase": "purchase",
}


def plan(request: ParsedRequest, default_currency: str) -> Plan:
    steps: list[PlannedStep] = []
    for index, intent in enumerate(request.intents):
        earlier = request.intents[:index]
        if intent.agent == "research":
            deps: tuple[int, ...] = ()
        elif intent.agent == "communication":
            deps = tuple(range(index))
        else:
            deps = tuple(i for i, e in enumerate(earlier) if e.agent in _PRODUCERS)
        steps.append(_step(intent, request.text, deps, default_currency))
    title = steps[0].title if len(steps) == 1 else _shorten(request.text, 80)
    return Plan(title=title, steps=tuple(steps))


def _step(intent: Intent, text: str, deps: tuple[int, ...], currency: str) -> PlannedStep:
    if intent.agent == "communication":
        to = ", ".join(intent.recipients)
        return PlannedStep(
            "communication",
            f"Email draft to {to}",
            {"topic": intent.topic, "recipients": list(intent.recipients), "request": text},
            deps,
        )
    if intent.agent == "purchase":
        assert intent.amount is not None
        cents = to_cents(intent.amount)
        cur = intent.currency or currency
        return PlannedStep(
            "purchase",
            f"Buy {intent.quantity} × {intent.topic} ({format_money(cents, cur)})",
            {
                "item": intent.topic,
                "quantity": intent.quantity,
                "amount_cents": cents,
                "currency": cur,
                "request": text,
            },
            deps,
        )
    if intent.agent == "compare":
        label = f"Price comparison: {_PRICES_OF.sub('', intent.topic) or intent.topic}"
        return PlannedStep("compare", label, {"topic": intent.topic}, deps)
    return PlannedStep("research", f"Research: {intent.topic}", {"topic": intent.topic}, deps)


#: "prices for office chairs" → "office chairs" (the label already says prices)
_PRICES_OF = re.compile(r"^(?:the\s+)?prices?\s+(?:for|of|on)\s+", re.IGNORECASE)


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
