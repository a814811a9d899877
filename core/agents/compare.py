"""Compare prices quoted in the knowledge base (and in earlier tasks' results).

Prices are parsed straight into integer cents with Decimal: money never goes
through float. Only "$" amounts are read, so every row is in USD.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from core.agents.base import AgentContext, AgentResult
from core.knowledge import KnowledgeAgent, KnowledgeSearch

EN_DASH = "\u2013"
_NUMBER = r"(\d{1,3}(?:,\d{3})+|\d+)(\.\d{1,2})?(?:\s?([kK])\b)?"
_PRICE = re.compile(
    r"\$\s?"
    + _NUMBER
    + r"(?:\s?(?:\u2013|\u2014|-|to)\s?(?:\$\s?)?"
    + _NUMBER
    + r")?"
    + r"(?P<unit>\s+per\s+[a-z]+(?:\s+per\s+[a-z]+)?)?"
)
_CLAUSE_BREAK = re.compile(r"[.!?;,]\s")
_DELIMITED = re.compile(r"[:\u2013\u2014(]\s*$|\s-\s*$")
_FILLER = re.compile(
    r"(?:\s*\b(?:costs?|is|are|at|around|about|from|only|roughly|for|under|over|between|"
    r"expect to pay|pay|priced|runs?|starts?|or|and|to)\b)+\s*$",
    re.IGNORECASE,
)
_PRONOUNS = frozenset({"they", "it", "this", "these", "those", "that", "which"})
_MAX_ITEM_WORDS = 10


@dataclass(frozen=True)
class PriceRow:
    item: str
    low_cents: int
    high_cents: int
    source: str
    unit: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "item": self.item,
            "low_cents": self.low_cents,
            "high_cents": self.high_cents,
            "source": self.source,
            "unit": self.unit,
            "currency": "USD",
        }


def to_cents(whole: str, fraction: str | None = None, thousands: str | None = None) -> int:
    """Cents from regex groups: ("1,299", ".50") is 129950, ("1.2", None, "k") 120000."""
    try:
        amount = Decimal(whole.replace(",", "") + (fraction or ""))
    except InvalidOperation as exc:  # pragma: no cover - the regex only passes digits
        raise ValueError(f"not an amount: {whole}{fraction or ''}") from exc
    if thousands:
        amount *= 1000
    return int((amount * 100).to_integral_value())


def dollars(cents: int) -> str:
    """$1,299 for whole dollars, $9.99 otherwise — how the sources write prices."""
    whole, part = divmod(cents, 100)
    return f"${whole:,}" if part == 0 else f"${whole:,}.{part:02d}"


def price_range(low_cents: int, high_cents: int) -> str:
    if low_cents == high_cents:
        return dollars(low_cents)
    return f"{dollars(low_cents)}{EN_DASH}{dollars(high_cents)}"


def _item_before(text: str, floor: int, start: int, fallback: str) -> str:
    """Name the thing a price belongs to: "Item: $5", "an arm ($5)", "a mat costs $5".

    Only text after `floor` (the previous price) and in the same sentence counts.
    """
    prefix = text[:start]
    clause_start = floor
    for brk in _CLAUSE_BREAK.finditer(prefix, floor):
        if prefix[brk.start()] in ".!?":
            clause_start = brk.end()
    clause = prefix[clause_start:]
    if _DELIMITED.search(clause):
        item = _DELIMITED.sub("", clause).strip()
        min_words = 1
    else:
        # "…, a monitor arm costs" → "a monitor arm": keep the last clause, drop the verb
        parts = re.split(r"[;,]\s", clause)
        item = _FILLER.sub("", parts[-1]).strip()
        min_words = 2
    item = item.strip(f" -:({EN_DASH}\u2014")
    words = item.split()
    if not (min_words <= len(words) <= _MAX_ITEM_WORDS) or item.lower() in _PRONOUNS:
        return fallback
    return item[0].upper() + item[1:]


def find_prices(text: str, source: str, fallback_item: str) -> Iterator[PriceRow]:
    """Every "$X" or "$X-$Y" in text as a row; ranges written high-to-low are fixed."""
    text = " ".join(text.split())
    floor = 0
    for match in _PRICE.finditer(text):
        low = to_cents(match.group(1), match.group(2), match.group(3))
        high = low
        if match.group(4):
            high = to_cents(match.group(4), match.group(5), match.group(6) or match.group(3))
        low, high = min(low, high), max(low, high)
        unit = " ".join((match.group("unit") or "").split())
        item = _item_before(text, floor, match.start(), fallback_item)
        floor = match.end()
        yield PriceRow(item=item, low_cents=low, high_cents=high, source=source, unit=unit)


class PriceComparisonAgent(KnowledgeAgent):
    """Compare prices for a topic (params: {"topic": str})."""

    name = "compare"

    def __init__(
        self,
        knowledge: KnowledgeSearch,
        max_passages: int = 12,
        min_relative_score: float = 0.65,
    ) -> None:
        super().__init__(knowledge, max_passages)
        #: passages scoring below this share of the best one are off-topic
        #: (a keyboard tray mentioned on a desk page is not a keyboard price)
        self.min_relative_score = min_relative_score

    async def run(self, ctx: AgentContext) -> AgentResult:
        topic, passages = await self.passages(ctx, "A price comparison needs a topic.")
        rows: list[PriceRow] = []
        floor = max((p.score for p in passages), default=0.0) * self.min_relative_score
        for passage in passages:
            if passage.score < floor:
                continue
            section = passage.title.split(" — ")[-1]
            rows.extend(find_prices(passage.text, passage.source, section))
        for dep in ctx.dependencies:
            source = f"task #{dep.task_id}"
            rows.extend(find_prices(dep.result.body, source, dep.title or source))
        rows = _dedupe(rows)
        rows.sort(key=lambda r: (r.low_cents, r.high_cents, r.item.lower()))
        if not rows:
            return AgentResult(
                summary=f"No prices found for {topic} in the knowledge base.",
                data={"rows": []},
            )
        lines = [
            f"{r.item} — {price_range(r.low_cents, r.high_cents)}"
            + (f" {r.unit}" if r.unit else "")
            + f" ({r.source})"
            for r in rows
        ]
        cheapest = rows[0]
        summary = (
            f"Compared {len(rows)} price{'s' if len(rows) != 1 else ''} for {topic}; "
            f"lowest: {cheapest.item} at {price_range(cheapest.low_cents, cheapest.high_cents)}"
            + (f" {cheapest.unit}" if cheapest.unit else "")
            + "."
        )
        return AgentResult(
            summary=summary,
            body="\n".join(lines),
            data={"rows": [r.to_json() for r in rows]},
        )


def _dedupe(rows: list[PriceRow]) -> list[PriceRow]:
    """The same item and price seen twice (index and a research result) is one row."""
    seen: set[tuple[str, int, int]] = set()
    out: list[PriceRow] = []
    for row in rows:
        key = (row.item.lower(), row.low_cents, row.high_cents)
        if key not in seen:
            seen.add(key)
            out.append(row)
    return out
