"""Raise a purchase order. Spends money, so a person approves it first and it
is never re-run blindly after a crash (that could order twice)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from core.agents.base import AgentContext, AgentError, AgentResult
from core.money import format_money


def amount_cents(params: Mapping[str, Any]) -> int:
    """The order total in cents; rejects missing, negative and fractional amounts."""
    raw = params.get("amount_cents")
    if raw is None or isinstance(raw, bool):
        raise AgentError("A purchase needs an amount.")
    try:
        value = Decimal(str(raw).strip())
    except ArithmeticError as exc:
        raise AgentError(f"Not an amount in cents: {raw!r}") from exc
    if not value.is_finite() or value != value.to_integral_value() or value < 0:
        raise AgentError(f"Not an amount in cents: {raw!r}")
    return int(value)


def _quantity(params: Mapping[str, Any]) -> int:
    raw = params.get("quantity", 1)
    if isinstance(raw, bool):
        raise AgentError(f"Not a quantity: {raw!r}")
    try:
        value = int(str(raw).strip())
    except ValueError as exc:
        raise AgentError(f"Not a quantity: {raw!r}") from exc
    if value < 1:
        raise AgentError(f"Quantity must be at least 1, got {value}.")
    return value


class PurchaseAgent:
    """Create a purchase order (params: item, quantity, amount_cents, currency)."""

    name = "purchase"
    requires_approval = True
    safe_to_rerun = False

    def estimate_cost_cents(self, params: Mapping[str, Any]) -> int:
        return amount_cents(params)

    async def run(self, ctx: AgentContext) -> AgentResult:
        item = " ".join(str(ctx.params.get("item") or "").split())
        if not item:
            raise AgentError("A purchase needs an item.")
        quantity = _quantity(ctx.params)
        cents = amount_cents(ctx.params)
        currency = str(ctx.params.get("currency") or ctx.currency).upper()
        number = f"PO-{ctx.task_id}"
        return AgentResult(
            summary=(
                f"Purchase order {number} for {quantity} \u00d7 {item}, "
                f"{format_money(cents, currency)}"
            ),
            data={
                "purchase_order": {
                    "number": number,
                    "item": item,
                    "quantity": quantity,
                    "amount_cents": cents,
                    "currency": currency,
                }
            },
            cost_cents=cents,
        )
