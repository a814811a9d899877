from decimal import Decimal

import pytest

from core.money import (
    CURRENCY_SYMBOLS,
    find_amount,
    format_money,
    to_cents,
)


@pytest.mark.parametrize(
    ("amount", "cents"),
    [
        ("300", 30000),
        ("0.01", 1),
        ("1.005", 101),
        ("1.004", 100),
        ("-1.005", -101),
        ("1200.50", 120050),
        ("0", 0),
    ],
)
def test_to_cents_rounds_half_up(amount: str, cents: int) -> None:
    assert to_cents(Decimal(amount)) == cents


def test_to_cents_refuses_nan() -> None:
    with pytest.raises(ValueError):
        to_cents(Decimal("NaN"))


@pytest.mark.parametrize(
    ("cents", "currency", "shown"),
    [
        (30000, "USD", "$300.00"),
        (120050, "EUR", "€1,200.50"),
        (9999, "GBP", "£99.99"),
        (30000, "JPY", "¥300"),
        (30050, "JPY", "¥301"),
        (30000, "CHF", "300.00 CHF"),
        (30000, "cad", "300.00 CAD"),
        (-30000, "USD", "-$300.00"),
        (-5, "CHF", "-0.05 CHF"),
        (0, "USD", "$0.00"),
        (123456789, "usd", "$1,234,567.89"),
    ],
)
def test_format_money(cents: int, currency: str, shown: str) -> None:
    assert format_money(cents, currency) == shown


def test_symbols_map_to_iso_codes() -> None:
    assert CURRENCY_SYMBOLS["$"] == "USD"
    assert CURRENCY_SYMBOLS["€"] == "EUR"
    assert CURRENCY_SYMBOLS["£"] == "GBP"
    assert CURRENCY_SYMBOLS["¥"] == "JPY"


@pytest.mark.parametrize(
    ("text", "amount", "currency"),
    [
        ("$300", "300", "USD"),
        ("$ 300", "300", "USD"),
        ("300 USD", "300", "USD"),
        ("USD 300", "300", "USD"),
        ("usd300", "300", "USD"),
        ("300 dollars", "300", "USD"),
        ("5 bucks", "5", "USD"),
        ("€1,200.50", "1200.50", "EUR"),
        ("1.200,50 €", "1200.50", "EUR"),
        ("12,50 €", "12.50", "EUR"),
        ("1,000,000.5 USD", "1000000.5", "USD"),
        ("1.000.000 EUR", "1000000", "EUR"),
        ("$1.2k", "1200", "USD"),
        ("1.2k", "1200", None),
        ("2.5K EUR", "2500", "EUR"),
        ("£99.99", "99.99", "GBP"),
        ("300 eur", "300", "EUR"),
        ("¥300", "300", "JPY"),
        ("US$50", "50", "USD"),
        ("C$20", "20", "CAD"),
        ("300 CHF", "300", "CHF"),
        ("-$300", "-300", "USD"),
        ("$-300", "-300", "USD"),
        ("$0", "0", "USD"),
        ("a monitor - $300", "300", "USD"),
        ("buy 2 monitors for $300", "300", "USD"),
        ("buy a 4k monitor for $300", "300", "USD"),
        ("a budget of 2k", "2000", None),
        ("spend up to 1.5k on it", "1500", None),
        ("between 300-400 USD", "400", "USD"),
        ("$100 or €90", "100", "USD"),
    ],
)
def test_find_amount_finds_the_first_amount(text: str, amount: str, currency: str | None) -> None:
    match = find_amount(text)
    assert match is not None and (match.amount, match.currency) == (Decimal(amount), currency)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "buy 2 monitors",
        "300",
        "buy 2 monitors for 300",
        "buy a 4k monitor",
        "2k monitors",
        "A300 USD",
        "20 eurosx",
        "call me at 555-1234",
    ],
)
def test_find_amount_ignores_numbers_without_currency(text: str) -> None:
    assert find_amount(text) is None


def test_to_cents_is_exact_past_the_default_decimal_precision() -> None:
    assert to_cents(Decimal("9" * 30)) == int("9" * 30) * 100
    with pytest.raises(ValueError, match="too large"):
        to_cents(Decimal("1e400"))


@pytest.mark.parametrize(
    ("text", "written"),
    [("for $1e9", "$1e9"), ("for $1.5e-3 now", "$1.5e-3"), ("1E6 USD", "1E6 USD")],
)
def test_an_exponent_form_is_flagged_not_read_as_its_mantissa(text: str, written: str) -> None:
    found = find_amount(text)
    assert found is not None and found.exponent
    assert found.written(text) == written
