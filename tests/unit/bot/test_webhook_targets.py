"""The webhook guard judges an address by where it leads, however it is written."""

from __future__ import annotations

import pytest

from bot.webhooks import is_public


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.5",
        "169.254.169.254",
        "::1",
        "::ffff:127.0.0.1",
        "64:ff9b::a9fe:a9fe",  # NAT64 to 169.254.169.254 (cloud metadata)
        "64:ff9b::a00:5",  # NAT64 to 10.0.0.5
        "2002:a00:5::1",  # 6to4 around 10.0.0.5
        "::10.0.0.5",  # IPv4-compatible
        "::ffff:0:a00:5",  # IPv4-translated
        "fe80::1%eth0",
    ],
)
def test_addresses_leading_inside_are_not_public(address: str) -> None:
    assert not is_public(address)


@pytest.mark.parametrize("address", ["8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_stay_public(address: str) -> None:
    assert is_public(address)
