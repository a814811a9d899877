from dataclasses import dataclass
from decimal import Decimal

import pytest

from core.intents import Intent, IntentParser, NotUnderstood

AGENTS = ("research", "communication", "purchase", "compare")


@dataclass(frozen=True)
class Step:
    agent: str
    topic: str | None = None
    recipients: tuple[str, ...] = ()
    amount: str | None = None
    currency: str | None = None
    quantity: int = 1

    def check(self, intent: Intent) -> None:
        assert intent.agent == self.agent
        if self.topic is not None:
            assert intent.topic == self.topic
        assert intent.recipients == self.recipients
        assert intent.amount == (Decimal(self.amount) if self.amount is not None else None)
        assert intent.currency == self.currency
        assert intent.quantity == self.quantity


def research(topic: str | None = None) -> Step:
    return Step("research", topic)


def email(*recipients: str, topic: str | None = None) -> Step:
    return Step("communication", topic, recipients)


def buy(topic: str, amount: str, currency: str = "USD", quantity: int = 1) -> Step:
    return Step("purchase", topic, (), amount, currency, quantity)


def compare(topic: str | None = None) -> Step:
    return Step("compare", topic)


UNDERSTOOD = [
    ("research best laptops", [research("best laptops")]),
    ("Research Best Laptops.", [research("Best Laptops")]),
    ("best laptops under 1 kg", [research("best laptops under 1 kg")]),
    ("research pros and cons of standing desks", [research("pros and cons of standing desks")]),
    ("what is the best laptop?", [research("best laptop")]),
    ("Tell me about quantum computing.", [research("quantum computing")]),
    ("can you please look up flights to Paris", [research("flights to Paris")]),
    ("find some ergonomic chairs", [research("ergonomic chairs")]),
    ("get me the latest news on AI", [research("latest news on AI")]),
    ("research email marketing tools", [research("email marketing tools")]),
    (
        "research newsletters and email marketing tools",
        [research("newsletters and email marketing tools")],
    ),
    (
        "research best laptops and draft email to john@example.com",
        [research("best laptops"), email("john@example.com", topic="email to john@example.com")],
    ),
    (
        "Draft an email to ann@x.com about the launch",
        [email("ann@x.com", topic="email to ann@x.com about the launch")],
    ),
    (
        "email John@Example.com and jane@example.com about Q3, cc JOHN@example.com",
        [email("john@example.com", "jane@example.com")],
    ),
    ("send the report to boss@corp.com", [email("boss@corp.com")]),
    (
        "research laptops, then email the summary to Bob@x.com",
        [research("laptops"), email("bob@x.com")],
    ),
    ("buy 2 monitors for $300", [buy("monitors", "300", quantity=2)]),
    ("buy two monitors at $150 each", [buy("monitors", "300", quantity=2)]),
    ("buy 5 chairs each for $100", [buy("chairs", "500", quantity=5)]),
    ("order 3 \u00d7 chairs for £99.99 apiece", [buy("chairs", "299.97", "GBP", 3)]),
    ("buy 2 monitors for $300 per unit", [buy("monitors", "600", quantity=2)]),
    ("buy 2 monitors at $150 each ($300 total)", [buy("monitors", "300", quantity=2)]),
    ("buy 3x keyboards for 2.5K EUR", [buy("keyboards", "2500", "EUR", 3)]),
    ("purchase a laptop for $1.2k", [buy("laptop", "1200")]),
    ("buy a 4k monitor for $300", [buy("4k monitor", "300")]),
    ("buy a monitor for 300 eur", [buy("monitor", "300", "EUR")]),
    ("get me a coffee for 5 bucks", [buy("coffee", "5")]),
    ("order 10 pens for 20 usd", [buy("pens", "20", quantity=10)]),
    ("buy 1,000 pens for USD 300", [buy("pens", "300", quantity=1000)]),
    ("buy a dozen donuts for ¥300", [buy("donuts", "300", "JPY", 12)]),
    ("buy twelve eggs for €1.200,50 in total", [buy("eggs", "1200.50", "EUR", 12)]),
    ("buy 300 USD worth of stickers", [buy("stickers", "300")]),
    ("buy monitors for 1.2k", [buy("monitors", "1200")]),
    ("we should purchase 3 desks for $900", [buy("desks", "900", quantity=3)]),
    (
        "research monitors then buy 2 for $300",
        [research("monitors"), buy("monitors", "300", quantity=2)],
    ),
    (
        "first research desks and after that buy one for $400",
        [research("desks"), buy("desks", "400")],
    ),
    (
        "find and buy a monitor for $300",
        [research("monitor"), buy("monitor", "300")],
    ),
    (
        "buy a monitor for $300 and buy a keyboard for $50",
        [buy("monitor", "300"), buy("keyboard", "50")],
    ),
    ("research products and compare prices", [research("products"), compare("prices")]),
    ("compare prices", [compare("prices")]),
    ("compare iPhone 15 and Pixel 8", [compare("iPhone 15 and Pixel 8")]),
    ("price comparison for monitors", [compare("monitors")]),
    (
        "research laptops and then send an email to a@b.com, then buy 2 monitors for $300 each",
        [research("laptops"), email("a@b.com"), buy("monitors", "600", quantity=2)],
    ),
    (
        "look into standing desks; compare; order 2 for C$900\nemail it to me@x.com",
        [
            research("standing desks"),
            compare("standing desks"),
            buy("standing desks", "900", "CAD", 2),
            email("me@x.com"),
        ],
    ),
]


@pytest.mark.parametrize(("text", "steps"), UNDERSTOOD, ids=[t for t, _ in UNDERSTOOD])
def test_understood(text: str, steps: list[Step]) -> None:
    parsed = IntentParser().parse(text)
    assert parsed.text == text.strip()
    assert len(parsed.intents) == len(steps), parsed.intents
    for intent, step in zip(parsed.intents, steps, strict=True):
        assert intent.agent in AGENTS
        assert intent.text
        step.check(intent)


NOT_UNDERSTOOD = [
    ("", "Try:"),
    ("buy 1 widget for $1e9", "“$1e9”"),
    ("buy 1 widget for $2.5E+3", "plain digits"),
    ("buy 1 widget for 1e9 dollars", "“1e9 dollars”"),
    ("buy 1 widget for 1e9$", "plain digits"),
    ("buy 1 widget for $0.004", "less than one cent"),
    ("buy 3 stickers for $0.001 each", "less than one cent"),
    ("buy 1 yacht for $10,000,000,001", "at most $10,000,000,000.00"),
    ("buy 1 yacht for $" + "9" * 28, "at most"),
    ("buy 1000 yachts for $20,000,000 each", "at most"),
    ("   \n\t", "Try:"),
    ("???!!! 🙂", "didn't understand"),
    ("12345 !!", "didn't understand"),
    ("hi", "Try:"),
    ("research", "What should I look into?"),
    ("buy 2 monitors", "How much may I spend?"),
    ("buy 2 monitors for 300", "How much may I spend?"),
    ("buy a monitor for $0", "more than zero"),
    ("buy 2 monitors for -$300", "more than zero"),
    ("buy 0 pens for $300", "between 1 and 1000"),
    ("buy 2000 pens for $300", "between 1 and 1000"),
    ("buy -2 monitors for $300", "between 1 and 1000"),
    ("buy them for $300", "What should I buy?"),
    ("buy 2 monitors for $300 and a keyboard for $50", "more than one amount"),
    ("draft email about the launch", "Who should the email go to?"),
    ("research laptops and email the summary to John", "Who should the email go to?"),
    ("research " + "laptops " * 600, "too long"),
    ("research a, " * 11 + "research b", "steps"),
]


@pytest.mark.parametrize(
    ("text", "answer"), NOT_UNDERSTOOD, ids=[t[:40] for t, _ in NOT_UNDERSTOOD]
)
def test_not_understood(text: str, answer: str) -> None:
    with pytest.raises(NotUnderstood) as caught:
        IntentParser().parse(text)
    assert answer in caught.value.message
    assert str(caught.value) == caught.value.message
    assert len(caught.value.message) < 300
    assert isinstance(caught.value, ValueError)


def test_default_currency_applies_only_when_none_is_typed() -> None:
    parser = IntentParser(default_currency="eur")
    (bare,) = parser.parse("buy a chair for 1.2k").intents
    (dollars,) = parser.parse("buy a chair for $120").intents
    (research_step,) = parser.parse("research chairs").intents
    assert (bare.amount, bare.currency) == (Decimal("1200"), "EUR")
    assert (dollars.amount, dollars.currency) == (Decimal("120"), "USD")
    assert (research_step.amount, research_step.currency) == (None, None)


def test_every_answer_offers_examples() -> None:
    for text, _ in NOT_UNDERSTOOD:
        with pytest.raises(NotUnderstood) as caught:
            IntentParser().parse(text)
        assert '"' in caught.value.message or "split" in caught.value.message
