"""Money in text and on screen: Decimal in, integer cents stored, never float."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_UP, Decimal, localcontext

CURRENCY_SYMBOLS: dict[str, str] = {
    "$": "USD",
    "€": "EUR",
    "£": "GBP",
    "¥": "JPY",
    "₹": "INR",
    "₩": "KRW",
    "₽": "RUB",
    "₪": "ILS",
    "฿": "THB",
    "US$": "USD",
    "CA$": "CAD",
    "C$": "CAD",
    "AU$": "AUD",
    "A$": "AUD",
    "NZ$": "NZD",
    "HK$": "HKD",
    "S$": "SGD",
    "R$": "BRL",
}

CURRENCY_CODES: frozenset[str] = frozenset(
    {
        *CURRENCY_SYMBOLS.values(),
        "CHF",
        "CNY",
        "SEK",
        "NOK",
        "DKK",
        "PLN",
        "CZK",
        "HUF",
        "MXN",
        "ZAR",
    }
)

_CURRENCY_WORDS: dict[str, str] = {
    "dollar": "USD",
    "dollars": "USD",
    "buck": "USD",
    "bucks": "USD",
    "euro": "EUR",
    "euros": "EUR",
    "pounds sterling": "GBP",
    "quid": "GBP",
    "yen": "JPY",
    "rupees": "INR",
}

# Amounts are shown without a fraction in these currencies.
_NO_MINOR_UNITS = frozenset({"JPY", "KRW"})

_DISPLAY_SYMBOLS: dict[str, str] = {}
for _symbol, _code in CURRENCY_SYMBOLS.items():
    if len(_symbol) == 1:
        _DISPLAY_SYMBOLS.setdefault(_code, _symbol)

_MULTIPLIERS = {"k": Decimal(1000), "m": Decimal(1_000_000)}

#: the most one purchase step may spend, in units of its currency: far enough under
#: 2^63 cents that sums over a request's steps and a month still fit a BIGINT
MAX_AMOUNT = Decimal(10_000_000_000)
MAX_AMOUNT_CENTS = int(MAX_AMOUNT) * 100
_TOO_LARGE = Decimal(10) ** 40


def _alternation(options: list[str]) -> str:
    return "|".join(re.escape(o) for o in sorted(options, key=len, reverse=True))


_NUM = r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d{1,3}(?:\.\d{3})+(?:,\d+)?|\d+(?:[.,]\d+)?)"
_SUFFIX = r"(?:(?P<suffix>[kKmM])(?![A-Za-z]))?"
_NEG = r"(?P<neg>(?<![\w.,-])[-\u2212])?"
_NUM_START = r"(?<![\w.,])"
_SYM = rf"(?P<sym>{_alternation(list(CURRENCY_SYMBOLS))})"
_CODE = rf"(?P<code>{_alternation(sorted(CURRENCY_CODES))})"
_WORD = rf"(?P<word>{_alternation(list(_CURRENCY_WORDS))})"

_PATTERNS = [
    re.compile(rf"{_NEG}{_SYM}\s?(?P<neg2>[-\u2212])?{_NUM}{_SUFFIX}(?!\d)"),
    re.compile(rf"{_NEG}(?<![A-Za-z]){_CODE}\s?(?P<neg2>[-\u2212])?{_NUM}{_SUFFIX}(?!\d)", re.I),
    re.compile(rf"{_NEG}{_NUM_START}{_NUM}{_SUFFIX}\s?{_SYM}"),
    re.compile(rf"{_NEG}{_NUM_START}{_NUM}{_SUFFIX}\s?(?:{_CODE}|{_WORD})\b", re.I),
]
# "1e9": an amount written with an exponent, read as "$1" plus a stray "e9" before.
_EXPONENT = re.compile(r"[eE][+-]?\d+")
_EXPONENT_FIRST = re.compile(
    rf"{_NUM_START}\d+(?:\.\d+)?[eE][+-]?\d+\s?(?:{_SYM}|(?:{_CODE}|{_WORD})\b)", re.I
)
_BARE_SCALED = re.compile(rf"{_NEG}{_NUM_START}{_NUM}(?P<suffix>[kKmM])(?![A-Za-z\d])")
# A bare "1.2k" is money only where money is expected, so "a 4k monitor" is not.
_MONEY_CONTEXT = re.compile(
    r"(?:\b(?:for|under|below|budget|of|to|max|maximum|spend|spending|at|around|"
    r"about|costing|cost|price|total|is)|[~≈:])\s*$",
    re.I,
)


@dataclass(frozen=True)
class AmountMatch:
    """A parsed amount plus where it sits in the text, so callers can cut it out."""

    amount: Decimal
    currency: str | None
    start: int
    end: int
    #: written with an exponent ("$1e9"): not an amount a person should be taken at
    exponent: bool = False

    def written(self, text: str) -> str:
        return text[self.start : self.end]


def to_cents(amount: Decimal) -> int:
    """Exact up to 10^40 (the default 28-digit context raises past 26 digits)."""
    if not amount.is_finite():
        raise ValueError(f"not a finite amount: {amount}")
    if abs(amount) >= _TOO_LARGE:
        raise ValueError("amount too large")
    with localcontext() as context:
        context.prec = 84
        return int((amount * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def format_money(cents: int, currency: str) -> str:
    code = currency.upper()
    units = Decimal(abs(cents)) / 100
    if code in _NO_MINOR_UNITS:
        number = f"{units.quantize(Decimal(1), rounding=ROUND_HALF_UP):,}"
    else:
        number = f"{units:,.2f}"
    sign = "-" if cents < 0 else ""
    symbol = _DISPLAY_SYMBOLS.get(code)
    return f"{sign}{symbol}{number}" if symbol else f"{sign}{number} {code}"


def _number(raw: str) -> Decimal:
    if "," in raw and "." in raw:
        decimal_sep = "," if raw.rfind(",") > raw.rfind(".") else "."
        group_sep = "." if decimal_sep == "," else ","
        return Decimal(raw.replace(group_sep, "").replace(decimal_sep, "."))
    if "," in raw:
        if re.fullmatch(r"\d{1,3}(?:,\d{3})+", raw):
            return Decimal(raw.replace(",", ""))
        return Decimal(raw.replace(",", "."))
    if raw.count(".") > 1:
        return Decimal(raw.replace(".", ""))
    return Decimal(raw)


def _to_match(m: re.Match[str], currency: str | None) -> AmountMatch:
    groups = m.groupdict()
    amount = _number(m["num"])
    if groups.get("suffix"):
        amount *= _MULTIPLIERS[m["suffix"].lower()]
        if amount == amount.to_integral_value():
            amount = amount.quantize(Decimal(1))
    if groups.get("neg") or groups.get("neg2"):
        amount = -amount
    return AmountMatch(amount, currency, m.start(), m.end())


def _currency_of(m: re.Match[str]) -> str:
    groups = m.groupdict()
    if groups.get("sym"):
        return CURRENCY_SYMBOLS[m["sym"]]
    if groups.get("code"):
        return str(m["code"]).upper()
    return _CURRENCY_WORDS[str(m["word"]).lower()]


def find_amount(text: str) -> AmountMatch | None:
    """The first amount with a currency; failing that, a bare "1.2k" where money is meant."""
    found = [m for pattern in _PATTERNS for m in pattern.finditer(text)]
    if found:
        first = min(found, key=lambda m: (m.start(), -m.end()))
        match = _to_match(first, _currency_of(first))
        if (exp := _EXPONENT.match(text, first.end())) is not None:
            return replace(match, end=exp.end(), exponent=True)
        if (early := _EXPONENT_FIRST.search(text, 0, first.end())) is not None:
            return AmountMatch(Decimal(0), None, early.start(), early.end(), exponent=True)
        return match
    if (early := _EXPONENT_FIRST.search(text)) is not None:
        return AmountMatch(Decimal(0), None, early.start(), early.end(), exponent=True)
    for m in _BARE_SCALED.finditer(text):
        alone = not text[: m.start()].strip() and not text[m.end() :].strip(" .!?")
        if alone or _MONEY_CONTEXT.search(text[: m.start()]):
            return _to_match(m, None)
    return None
