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
        topic = _PRICES_OF.sub("", intent.topic) or intent.topic
        label = noun_first(topic, "price comparison", "Price comparison of")
        return PlannedStep("compare", label, {"topic": intent.topic}, deps)
    label = noun_first(intent.topic, "research", "Research on")
    return PlannedStep("research", label, {"topic": intent.topic}, deps)


#: words that rank or hedge a topic but do not name it ("best laptops" → "laptop")
_QUALIFIERS = re.compile(
    r"^(?:(?:the|some|a|an|best|top|good|great|cheap|cheapest|latest|new|newest|"
    r"recommended|popular)\s+)+",
    re.IGNORECASE,
)
_NOT_PLURAL = frozenset({"series", "species", "news"})
#: a short topic reads well before its kind: "Laptop research", "Office chair price comparison"
_SHORT_TOPIC = 3


def noun_first(topic: str, kind: str, long_form: str) -> str:
    """ "best laptops" → "Laptop research"; a longer topic → "Research on <topic>"."""
    words = (_QUALIFIERS.sub("", topic.strip()) or topic.strip()).split()
    if not words or topic.strip().lower() == "prices":
        return kind.capitalize()
    if len(words) > _SHORT_TOPIC:
        return f"{long_form} {' '.join(words)}"
    last = words[-1]
    plural = last.endswith("s") and not last.endswith(("ss", "us", "is", "ics", "ews", "ies"))
    if last.lower().endswith(("sses", "shes", "ches", "xes")):
        words[-1] = last[:-2]
    elif last.lower().endswith("ies") and last.lower() not in _NOT_PLURAL:
        words[-1] = last[:-3] + "y"
    elif len(last) > 3 and plural and last.lower() not in _NOT_PLURAL:
        words[-1] = last[:-1]
    label = " ".join(words)
    return f"{label[0].upper()}{label[1:]} {kind}"


#: "prices for office chairs" → "office chairs" (the label already says prices)
_PRICES_OF = re.compile(r"^(?:the\s+)?prices?\s+(?:for|of|on)\s+", re.IGNORECASE)


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
