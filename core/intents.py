"""Turn what a person typed into ordered steps for the agents, or say clearly why not.

Rule-based on purpose: it is predictable, testable, and costs nothing per message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from decimal import Decimal

from core.money import MAX_AMOUNT, MAX_AMOUNT_CENTS, find_amount, format_money, to_cents

MAX_TEXT_LENGTH = 4000
MAX_STEPS = 10
MAX_QUANTITY = 1000

_TRY = (
    'Try: "research best laptops", "draft email to john@example.com" or "buy 2 monitors for $300".'
)
_TRY_BUY = 'Try: "buy 2 monitors for $300".'


@dataclass(frozen=True)
class Intent:
    agent: str
    text: str
    topic: str
    recipients: tuple[str, ...] = ()
    amount: Decimal | None = None
    currency: str | None = None
    quantity: int = 1


@dataclass(frozen=True)
class ParsedRequest:
    text: str
    intents: tuple[Intent, ...]


#: C0/C1 controls but tab and newline, DEL, and lone surrogates (JSON "\ud800" decodes to
#: one): PostgreSQL refuses NUL in text and no encoder takes a lone surrogate
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def printable(text: str) -> str:
    """`text` as it may be stored and shown: line breaks kept, other controls dropped."""
    return _UNPRINTABLE.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


class NotUnderstood(ValueError):
    """The request cannot be turned into steps; `message` is a short answer for the person."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# "email marketing tools" is a topic, not an instruction to send mail.
_MAIL_AS_NOUN = (
    r"(?!\s+(?:marketing|campaigns?|newsletters?|clients?|providers?|tools?|templates?|"
    r"security|services?|software|apps?|lists?|addresses|etiquette|servers?|automation|"
    r"deliverability|hosting)\b)"
)
_ACTION_VERBS = (
    r"research|find|look\s+(?:up|into|for)|search|investigate|tell\s+me\s+about|summari[sz]e|"
    r"draft|write|send|compose|reply|e-?mail|mail|buy|purchase|order|get\s+me|compare"
)
_CONJUNCTION = r"(?:and|then|after\s+that|afterwards|next|finally)\b[\s,]*"
_SPLIT = re.compile(
    rf"(?:\s*[,;.!?\n]\s*(?:{_CONJUNCTION})*|\s+(?:{_CONJUNCTION})+)"
    rf"(?=(?:(?:please|also)\s+)?(?:{_ACTION_VERBS})\b(?![@\-]){_MAIL_AS_NOUN})",
    re.I,
)

_LEAD = re.compile(
    r"^(?:(?:please|pls|kindly|also|then|and|first|now|next|finally|can\s+you|could\s+you|"
    r"would\s+you|will\s+you|i\s+want\s+you\s+to|i\s*(?:'d|\s+would)\s+like\s+(?:you\s+)?to|"
    r"i\s+want\s+to|i\s+need\s+(?:you\s+)?to|help\s+me|let's|let\s+us|go\s+ahead\s+and)"
    r"\b[\s,]*)+",
    re.I,
)
_RESEARCH_VERB = re.compile(
    r"^(?:research|find\s+out(?:\s+about)?|find(?:\s+me)?|look\s+(?:up|into|for)|"
    r"search(?:\s+for)?|investigate|tell\s+me(?:\s+more)?(?:\s+about)?|what\s+(?:is|are)|"
    r"what's|who\s+is|explain|summari[sz]e|learn\s+about|dig\s+into)\b",
    re.I,
)
_COMPARE_VERB = re.compile(
    r"^(?:compare|(?:(?:do|make|run|get)\s+(?:me\s+)?a\s+)?price\s+comparison"
    r"(?:\s+(?:of|for|on|between))?)\b",
    re.I,
)
_COMPARE_ANYWHERE = re.compile(r"\b(?:price\s+comparison|compare\s+(?:the\s+)?prices?)\b", re.I)
_PURCHASE_VERB = re.compile(r"^(?:buy|purchase|order)(?:\s+(?:me|us))?\b", re.I)
_GET_VERB = re.compile(r"^get(?:\s+(?:me|us))?\b", re.I)
_BUY_ANYWHERE = re.compile(r"\b(?:buy|purchase)\b", re.I)
_UP_TO_BUY = re.compile(r"^.*?\b(?:buy|purchase|order|get)(?:\s+(?:me|us))?\b", re.I | re.S)
_MAIL_VERB = re.compile(rf"^(?:draft|e-?mail|mail|reply)\b{_MAIL_AS_NOUN}", re.I)
_WRITE_VERB = re.compile(r"^(?:write|send|compose|message)(?:\s+(?:me|up|out))?\b", re.I)
_DRAFT_VERB = re.compile(r"^(?:draft|write|send|compose)(?:\s+(?:me|up|out))?\b", re.I)
_MAIL_WORD = re.compile(r"\b(?:e-?mail|mail|message|note|letter|reply|memo)\b", re.I)
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")

_FILLER = re.compile(
    r"^(?:(?:the|some|a|an|about|on|more\s+about|info(?:rmation)?\s+(?:on|about)|"
    r"details\s+(?:on|about))\b\s*)+",
    re.I,
)
_TRAILING = re.compile(r"(?:[\s.?!,;:]|\bplease\b)+$", re.I)
_SMALL_TALK = re.compile(
    r"^\W*(?:hi|hello|hey|yo|thanks|thank\s+you|thx|ok|okay|help|what\s+can\s+you\s+do)"
    r"(?:\s+there|\s+bot)?[\W\s]*$",
    re.I,
)
_PRONOUNS = frozenset({"it", "them", "those", "these", "that", "this", "one", "ones", "some"})

_NUMBER_WORDS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
    "a pair of": 2, "a couple of": 2, "a dozen": 12,
}  # fmt: skip
_QUANTITY = re.compile(
    r"^(?P<q>-?\d[\d,]*|a\s+(?:pair|couple)\s+of|a\s+dozen|"
    + "|".join(sorted((w for w in _NUMBER_WORDS if " " not in w), key=len, reverse=True))
    + r")(?:\s*[x\u00d7](?=\s|$)|(?!\w))\s*(?:of\s+)?",
    re.I,
)
_PER_UNIT = re.compile(
    r"\b(?:each|apiece|a\s+piece|per\s+(?:unit|item|piece|pc|one)|ea)\b"
    r"|/\s*(?:unit|item|piece|pc|ea|each)\b",
    re.I,
)
_IN_TOTAL = re.compile(r"\s*(?:in\s+total|total|altogether|all\s+together)\b", re.I)
_BEFORE_AMOUNT = re.compile(
    r"(?:^|\s+)(?:for|at|under|below|of|costing|around|about|max(?:imum)?|up\s+to|"
    r"budget(?:\s+of)?|with\s+a\s+budget\s+of|each|apiece|total(?:\s+of)?|spending|"
    r"for\s+a\s+total\s+of|[,:~])\s*$",
    re.I,
)
_AFTER_AMOUNT = re.compile(
    r"^\s*(?:each|apiece|a\s+piece|per\s+(?:unit|item|piece|pc|one)|/\s*\w+|ea|in\s+total|"
    r"total|altogether|max(?:imum)?|tops|worth\s+of|of)\b",
    re.I,
)

#: where the item ends and the requester's reason begins: "monitors | for the new hires,
#: need them by Friday" (the reason stays in the request's own words, not in the item)
_REASON = re.compile(
    r"\s*(?:[,;:(]|\s-\s|\s(?:for|because|since|so\s+that|by|before|until|which|that|"
    r"who|need|needed|asap)\b)",
    re.I,
)


class IntentParser:
    """Splits a request into clauses at conjunctions that start a new action, then reads each."""

    def __init__(self, default_currency: str = "USD") -> None:
        self.default_currency = default_currency.upper()

    def parse(self, text: str) -> ParsedRequest:
        stripped = text.strip()
        if not stripped:
            raise NotUnderstood(f"I didn't get a request there. {_TRY}")
        if len(stripped) > MAX_TEXT_LENGTH:
            raise NotUnderstood(
                f"That's too long for me (over {MAX_TEXT_LENGTH} characters). "
                f"Please send one shorter request. {_TRY}"
            )
        normalized = _normalize(stripped)
        if not re.search(r"[^\W\d_]{2}", normalized):
            raise NotUnderstood(f"I didn't understand that. {_TRY}")
        if _SMALL_TALK.match(normalized):
            raise NotUnderstood(
                f"I can research, draft emails, compare prices and buy things. {_TRY}"
            )
        clauses = [c for c in (_clean_clause(p) for p in _SPLIT.split(normalized)) if c]
        if len(clauses) > MAX_STEPS:
            raise NotUnderstood(
                f"That's more than {MAX_STEPS} steps at once. "
                "Please split it into smaller requests."
            )
        intents = _fill_topics([self._read(clause) for clause in clauses])
        return ParsedRequest(text=stripped, intents=tuple(intents))

    def _read(self, clause: str) -> Intent:
        body = _LEAD.sub("", clause)
        agent = _agent_of(body)
        if agent == "purchase":
            return self._purchase(clause, body)
        if agent == "communication":
            recipients = tuple(dict.fromkeys(e.lower() for e in _EMAIL.findall(clause)))
            if not recipients:
                raise NotUnderstood(
                    "Who should the email go to? Add an address, e.g. "
                    '"draft email to john@example.com about the launch".'
                )
            return Intent("communication", clause, _topic(_DRAFT_VERB, body), recipients)
        if agent == "compare":
            return Intent("compare", clause, _topic(_COMPARE_VERB, body))
        return Intent("research", clause, _topic(_RESEARCH_VERB, _GET_VERB.sub("", body, count=1)))

    def _purchase(self, clause: str, body: str) -> Intent:
        found = find_amount(body)
        if found is None:
            raise NotUnderstood(
                f"How much may I spend? Give an amount with its currency. {_TRY_BUY}"
            )
        if found.exponent:
            raise NotUnderstood(
                f"I can't read “{found.written(body)}” as an amount: please write it in plain "
                f"digits, e.g. “$1,000,000”. {_TRY_BUY}"
            )
        if found.amount <= 0:
            raise NotUnderstood(f"The amount has to be more than zero. {_TRY_BUY}")
        if found.amount > MAX_AMOUNT:
            raise NotUnderstood(self._too_large(found.currency))
        before = _UP_TO_BUY.sub("", body[: found.start], count=1)
        while (cut := _BEFORE_AMOUNT.search(before)) is not None and cut.group().strip():
            before = before[: cut.start()]
        after = body[found.end :]
        if (later := find_amount(after)) is not None:
            after = after[: later.start]
        while (cut := _AFTER_AMOUNT.search(after)) is not None:
            after = after[cut.end() :]
        quantity, item = _split_quantity(f"{before.strip()} {after.strip()}".strip())
        if not 1 <= quantity <= MAX_QUANTITY:
            raise NotUnderstood(
                f"I can buy between 1 and {MAX_QUANTITY} of something at once. {_TRY_BUY}"
            )
        amount = found.amount
        if _PER_UNIT.search(body) and not _IN_TOTAL.match(body, found.end):
            amount *= quantity
        if amount > MAX_AMOUNT:
            raise NotUnderstood(self._too_large(found.currency))
        if to_cents(amount) < 1:
            raise NotUnderstood(
                f"“{found.written(body)}” is less than one cent: please give the amount "
                f"in whole cents. {_TRY_BUY}"
            )
        consistent = (found.amount, amount, amount / quantity)
        if any(other not in consistent for other in _more_amounts(body, found.end)):
            raise NotUnderstood(
                "I see more than one amount there: which one may I spend? "
                "Give each purchase its own step, e.g. "
                '"buy a monitor for $300 and buy a keyboard for $50".'
            )
        return Intent(
            "purchase",
            clause,
            _tidy(_REASON.split(item, maxsplit=1)[0].rstrip(" (")),
            amount=amount,
            currency=found.currency or self.default_currency,
            quantity=quantity,
        )

    def _too_large(self, currency: str | None) -> str:
        most = format_money(MAX_AMOUNT_CENTS, currency or self.default_currency)
        return (
            f"That's more than I can spend on one purchase: at most {most}. "
            f"Please check the amount. {_TRY_BUY}"
        )


def _normalize(text: str) -> str:
    """Curly apostrophes as straight ones. Slack markup never gets here: bot/slack_text.py
    turned it into plain text before core saw it."""
    return text.replace("\u2019", "'").replace("\u2018", "'")


def _clean_clause(part: str) -> str:
    return re.sub(r"\s+", " ", part).strip(" ,;")


def _agent_of(body: str) -> str:
    if _RESEARCH_VERB.match(body):
        return "research"
    if _COMPARE_VERB.match(body):
        return "compare"
    if _PURCHASE_VERB.match(body):
        return "purchase"
    has_amount = find_amount(body) is not None
    if _GET_VERB.match(body) and has_amount:
        return "purchase"
    if _MAIL_VERB.match(body):
        return "communication"
    is_mail = _MAIL_WORD.search(body) is not None
    has_address = _EMAIL.search(body) is not None
    if _WRITE_VERB.match(body) and (is_mail or has_address):
        return "communication"
    if _COMPARE_ANYWHERE.search(body):
        return "compare"
    if is_mail and (has_address or re.search(r"\bdraft\b", body, re.I)):
        return "communication"
    if _BUY_ANYWHERE.search(body) and has_amount:
        return "purchase"
    return "research"


def _topic(verb: re.Pattern[str], body: str) -> str:
    return _tidy(verb.sub("", body, count=1))


def _tidy(topic: str) -> str:
    topic = _FILLER.sub("", topic.strip(" \t,;:.-"))
    return re.sub(r"\s+", " ", _TRAILING.sub("", topic)).strip()


def _more_amounts(text: str, start: int) -> list[Decimal]:
    amounts = []
    while (found := find_amount(text[start:])) is not None:
        amounts.append(found.amount)
        start += found.end
    return amounts


def _split_quantity(item: str) -> tuple[int, str]:
    found = _QUANTITY.match(item)
    if found is None:
        return 1, item
    word = re.sub(r"\s+", " ", found["q"].lower())
    quantity = _NUMBER_WORDS.get(word)
    if quantity is None:
        quantity = int(word.replace(",", ""))
    return quantity, item[found.end() :]


def _is_topic(topic: str) -> bool:
    return bool(topic) and topic.lower() not in _PRONOUNS


def _fill_topics(intents: list[Intent]) -> list[Intent]:
    """Give "research and buy 2 for $300" or "buy them" the topic of a neighbouring step."""
    filled: list[Intent] = []
    for index, intent in enumerate(intents):
        if _is_topic(intent.topic):
            filled.append(intent)
            continue
        earlier = [i.topic for i in filled]
        later = [i.topic for i in intents[index + 1 :] if _is_topic(i.topic)]
        topic = (earlier[-1:] or later[:1] or [""])[0]
        if not topic and intent.agent == "compare":
            topic = "prices"
        if not topic:
            raise NotUnderstood(_ASK_TOPIC[intent.agent])
        filled.append(replace(intent, topic=topic))
    return filled


_ASK_TOPIC = {
    "research": 'What should I look into? Try: "research best laptops".',
    "purchase": f"What should I buy? {_TRY_BUY}",
    "communication": 'What should the email say? Try: "draft email to john@example.com".',
    "compare": 'What should I compare? Try: "compare prices of standing desks".',
}
