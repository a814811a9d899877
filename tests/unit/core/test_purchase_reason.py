"""The requester's reason stays in their words, out of the item's name."""

from __future__ import annotations

import pytest

from core.intents import IntentParser
from core.planner import plan


@pytest.mark.parametrize(
    ("text", "item", "quantity"),
    [
        ("buy 2 monitors for the new hires, need them by Friday for $300", "monitors", 2),
        ("buy 2 monitors for $300 for the two new hires starting Monday", "monitors", 2),
        ("buy a standing desk for $450 because my back hurts", "standing desk", 1),
        ("buy 3 usb-c to hdmi adapters for $60", "usb-c to hdmi adapters", 3),
    ],
)
def test_the_reason_is_not_glued_to_the_item(text: str, item: str, quantity: int) -> None:
    intent = IntentParser().parse(text).intents[0]
    assert (intent.topic, intent.quantity) == (item, quantity)
    step = plan(IntentParser().parse(text), "USD").steps[0]
    assert step.params["item"] == item
    assert step.params["request"] == text  # the reason stays in the request's words


@pytest.mark.parametrize(
    ("text", "labels"),
    [
        ("research best laptops", ["Laptop research"]),
        ("compare prices for office chairs", ["Office chair price comparison"]),
        (
            "research best laptops and draft email to john@example.com",
            ["Laptop research", "Email draft to john@example.com"],
        ),
        ("research the history of the roman empire", ["Research on history of the roman empire"]),
    ],
)
def test_step_names_put_the_noun_first(text: str, labels: list[str]) -> None:
    steps = plan(IntentParser().parse(text), "USD").steps
    assert [s.title for s in steps] == labels
