"""Slack markup becomes plain text in bot/, before core reads it."""

from __future__ import annotations

import pytest

from bot.slack_text import plain_text
from core.intents import IntentParser


@pytest.mark.parametrize(
    ("markup", "plain"),
    [
        ("<@UBOT> research standing desks", "research standing desks"),
        ("<@UBOT|taskbot> research desks", "research desks"),
        (
            "research laptops, then email the summary to <mailto:Bob@x.com|Bob@x.com>",
            "research laptops, then email the summary to Bob@x.com",
        ),
        ("research <https://example.com/a|this page>", "research https://example.com/a"),
        ("ask <@U0ALICE01> about <#C0123ABC|general>", "ask @U0ALICE01 about #general"),
        ("buy 2 pens for $3 &amp; &lt;fast&gt;", "buy 2 pens for $3 & <fast>"),
        ("<!here> :smile: :tada: research desks", "research desks"),
        (":smile: :tada:", ""),
    ],
)
def test_markup_becomes_the_text_a_person_typed(markup: str, plain: str) -> None:
    assert plain_text(markup, "UBOT") == plain


def test_core_reads_the_plain_text_of_a_mailto_link() -> None:
    text = plain_text("research laptops, then email the summary to <mailto:Bob@x.com|Bob@x.com>")
    intent = IntentParser(default_currency="USD").parse(text)
    assert [i.agent for i in intent.intents] == ["research", "communication"]
