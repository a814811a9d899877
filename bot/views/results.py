"""An AgentResult as blocks: used by the TaskFinished notice and by /tasks <id>.

Agents hand back plain text (core.agents.base.AgentResult); every string from
``summary``, ``body`` and ``data`` is escaped here. Known ``data`` shapes:

- ``sources``: list of str → a context line
- ``email``: {"to", "subject", "body"} (``to`` may be a list) → a quoted block
- ``purchase_order``: mapping → section fields (``*_cents`` values as money)
- ``rows``: list of {"item", "low_cents", "high_cents", "unit", "source",
  "currency"} (the compare agent) → one line per row
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from bot.views.blocks import Block, context, field_sections, split_sections
from bot.views.escape import escape, one_line, safe_cut, truncate
from bot.views.format import EN_DASH, money
from bot.views.limits import SECTION_TEXT
from core.agents.base import AgentResult

#: a single quoted line longer than this is wrapped, so every piece keeps its "> "
_QUOTE_LINE = SECTION_TEXT // 2

#: about this many characters of findings in a message; the full text is in /tasks <id>
FINDINGS_BUDGET = 480

#: "- finding text (source.md)": one key point of the research agent's body
_POINT = re.compile(r"^\s*[-•*]\s+(?P<text>.+?)(?:\s+\((?P<source>[^()]+)\))?\s*$")
#: "Name: $1–$2. The rest": a finding that leads with its name and price
_NAMED_PRICE = re.compile(
    r"^(?P<name>[^:.]{2,60}):\s*"
    r"(?P<price>[$€£][\d,.]*\d(?:\s*[–-]\s*[$€£]?[\d,.]*\d)?)\.?\s*(?P<rest>.*)$"
)


def result_blocks(
    result: AgentResult,
    *,
    currency: str = "USD",
    cost_cents: int = 0,
    summary: bool = True,
    show_cost: bool = True,
    short: bool = False,
    signature: str = "",
) -> list[Block]:
    """Summary, body (split into sections), then whatever ``data`` holds, then a
    context line with sources and cost (``cost_cents``, else the result's own)."""
    data: Mapping[str, Any] = result.data if isinstance(result.data, Mapping) else {}
    blocks: list[Block] = []
    email = data.get("email")
    rows = data.get("rows")
    sources = _strings(data.get("sources"))
    points = [] if isinstance(email, Mapping) else key_points(result.body)
    if points:
        # each finding once: the key points, not also the summary that repeats them
        limit = FINDINGS_BUDGET if short else None
        blocks += split_sections(findings_mrkdwn(points, limit))
    elif summary and result.summary.strip() and not isinstance(email, Mapping):
        blocks += split_sections(escape(result.summary))
    if (
        not points
        and result.body.strip()
        and not _redundant_body(result.body, email, rows, sources)
    ):
        blocks += split_sections(escape(result.body))
    if isinstance(email, Mapping):
        blocks += email_blocks(email, signature)
    order = data.get("purchase_order")
    if isinstance(order, Mapping) and order:
        blocks += purchase_order_blocks(order, currency)
    if isinstance(rows, Sequence) and not isinstance(rows, str) and rows:
        blocks += rows_blocks(rows, currency)

    notes: list[str] = []
    if sources:
        notes.append("Sources: " + " · ".join(escape(one_line(s)) for s in sources))
    cost = cost_cents or result.cost_cents
    if show_cost and cost > 0:
        notes.append(f"Cost: *{escape(money(cost, currency))}*")
    if notes:
        blocks.append(context(*notes))
    return blocks


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, Sequence):
        return [str(v) for v in value if str(v).strip()]
    return []


def key_points(body: str) -> list[tuple[str, str]]:
    """The research agent's "- point (source)" lines as (point, source); [] when the
    body is anything else (then it is shown as it is)."""
    lines = [line for line in body.strip().split("\n") if line.strip()]
    points: list[tuple[str, str]] = []
    for line in lines:
        match = _POINT.match(line)
        if match is None:
            return []
        points.append((match["text"].strip(), (match["source"] or "").strip()))
    return points


def finding_mrkdwn(text: str) -> str:
    """One finding, name and price first: "*MacBook Air* · $999–$1,299: fanless…"."""
    flat = one_line(text)
    match = _NAMED_PRICE.match(flat)
    if match is None:
        return escape(flat)
    rest = match["rest"].strip()
    head = f"*{escape(match['name'].strip())}* · {escape(match['price'])}"
    return head + (f": {escape(rest)}" if rest else "")


def findings_mrkdwn(points: Sequence[tuple[str, str]], limit: int | None = None) -> str:
    """The findings as bullets, each once; with `limit`, each is cut to its share."""
    seen: set[str] = set()
    texts: list[str] = []
    for text, _source in points:
        key = one_line(text).lower()
        if key and key not in seen:
            seen.add(key)
            texts.append(one_line(text))
    if limit is not None and texts:
        share = max(60, limit // len(texts))
        texts = [t if len(t) <= share else t[: share - 1].rsplit(" ", 1)[0] + "…" for t in texts]
    return "\n".join("• " + finding_mrkdwn(t) for t in texts)


def _redundant_body(body: str, email: object, rows: object, sources: list[str]) -> bool:
    """Skip a body that only repeats what the structured data shows anyway."""
    text = body.strip()
    if sources and text == "Sources: " + ", ".join(sources):
        return True
    if isinstance(email, Mapping):
        return True  # the agent's draft as text: To, Subject and body, shown from the data
    # the compare agent's body is its rows, one per line
    return isinstance(rows, Sequence) and not isinstance(rows, str) and len(rows) > 0


def quote(text: str) -> str:
    """Escaped text as a Slack quote: every line prefixed with "> "."""
    lines: list[str] = []
    for line in text.split("\n"):
        line = escape(line.rstrip())
        while len(line) > _QUOTE_LINE:
            cut = line.rfind(" ", _QUOTE_LINE // 2, _QUOTE_LINE)
            if cut <= 0:
                cut = safe_cut(line, _QUOTE_LINE) or _QUOTE_LINE
            lines.append("> " + line[:cut])
            line = line[cut:].lstrip()
        lines.append("> " + line if line else ">")
    return "\n".join(lines)


def email_blocks(email: Mapping[str, Any], signature: str = "") -> list[Block]:
    """The draft once: To, Cc and Subject as fields, the body as a quote, signed with
    ``signature`` (mrkdwn, e.g. a mention)."""
    fields: list[str] = []
    for key, label in (("to", "To"), ("cc", "Cc"), ("subject", "Subject")):
        value = email.get(key)
        shown = ", ".join(_strings(value)) if not isinstance(value, str) else value
        if shown.strip():
            fields.append(f"*{label}*\n{escape(one_line(shown))}")
    body = str(email.get("body") or "").strip("\n")
    blocks = field_sections(fields)
    if body:
        signed = quote(body) + (f"\n> {signature}" if signature.strip() else "")
        blocks += split_sections(signed)
    return blocks


def _label(key: str) -> str:
    base = key.removesuffix("_cents").replace("_", " ").strip()
    return base[:1].upper() + base[1:] if base else key


def _value(key: str, value: Any, currency: str) -> str:
    if key.endswith("_cents") and isinstance(value, int) and not isinstance(value, bool):
        return money(value, currency)
    if isinstance(value, Mapping):
        return "; ".join(
            f"{_label(str(k))}: {_value(str(k), v, currency)}" for k, v in value.items()
        )
    if isinstance(value, Sequence) and not isinstance(value, str):
        return ", ".join(_value(key, v, currency) for v in value)
    return str(value)


def purchase_order_blocks(order: Mapping[str, Any], currency: str) -> list[Block]:
    cur = str(order.get("currency") or currency)
    fields = [
        f"*{escape(_label(str(k)))}*\n{escape(_value(str(k), v, cur))}"
        for k, v in order.items()
        if v is not None and v != "" and k != "currency"
    ]
    return field_sections(fields, "*🧾 Purchase order*")


def _price(row: Mapping[str, Any], currency: str) -> str:
    cur = str(row.get("currency") or currency)
    low, high = row.get("low_cents"), row.get("high_cents", row.get("low_cents"))
    if not isinstance(low, int) or isinstance(low, bool):
        return ""
    if not isinstance(high, int) or isinstance(high, bool) or high == low:
        return money(low, cur)
    return f"{money(low, cur)}{EN_DASH}{money(high, cur)}"


def rows_blocks(rows: Sequence[Any], currency: str) -> list[Block]:
    lines = ["*Price comparison*"]
    for row in rows:
        if not isinstance(row, Mapping):
            lines.append("• " + truncate(escape(one_line(row)), 500, "…"))
            continue
        parts = [truncate(escape(one_line(row.get("item") or "item")), 200, "…")]
        price = _price(row, currency)
        if price:
            unit = one_line(row.get("unit") or "")
            parts.append(f"*{escape(price)}*" + (f" {escape(unit)}" if unit else ""))
        line = "• " + " — ".join(parts)
        source = one_line(row.get("source") or "")
        if source:
            line += f" ({truncate(escape(source), 200, '…')})"
        lines.append(line)
    return split_sections("\n".join(lines))
