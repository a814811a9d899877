"""Attacks an adversarial review found, as tests: a body that arrives in pieces, JSON
that Python reads but PostgreSQL refuses, and a stranger probing an approval."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlsplit

from tests.e2e.api_helpers import Api


async def test_a_body_that_arrives_in_two_packets_is_read_whole(api: Api) -> None:
    body = json.dumps(
        {"user_message": "research best laptops", "context": {"n": "x" * 3000}}
    ).encode()
    url = urlsplit(api.harness.url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    head = (
        f"POST /api/v1/tasks HTTP/1.1\r\nHost: {url.netloc}\r\n"
        f"Authorization: Bearer {api.token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    writer.write(head + body[:1000])
    await writer.drain()
    await asyncio.sleep(0.3)  # the rest comes in a later packet
    writer.write(body[1000:])
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    assert b" 202 " in status_line, status_line


async def test_nan_and_nul_get_a_json_error_not_a_500(api: Api) -> None:
    for raw in (
        b'{"user_message": "research laptops", "context": {"a": NaN}}',
        b'{"user_message": "research laptops", "context": {"a": Infinity}}',
        b'{"user_message": "research laptops", "title": "a\\u0000b"}',
        b'{"user_message": "research laptops", "context": {"k\\u0000": 1}}',
    ):
        status, body, _ = await api.call(
            "POST", "/tasks", data=raw, headers={"Content-Type": "application/json"}
        )
        assert status == 400 and body["error"]["code"] == "bad_json", (raw, body)


async def test_a_stranger_learns_nothing_of_an_approval_and_cannot_expire_it(api: Api) -> None:
    _created, approval = await api.decided_purchase("deny")

    stranger = await api.as_user("USTRANGER")
    status, body, _ = await stranger.call("POST", f"/approvals/{approval['id']}/approve")
    assert status == 403 and body["error"]["code"] == "forbidden"
    assert "UAPPROVER" not in json.dumps(body) and "denied" not in json.dumps(body).lower()
