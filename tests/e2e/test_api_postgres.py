"""The API's seed example, idempotency and retry on PostgreSQL (the e2e default is SQLite)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.api_helpers import Api, make_flaky


@pytest.fixture
def settings_overrides(postgres_url: str) -> dict[str, Any]:
    return {"DATABASE_URL": postgres_url}


async def test_seed_idempotency_and_retry_on_postgres(api: Api) -> None:
    assert api.harness.settings.database_url.startswith("postgresql")
    flaky = make_flaky(api.harness, "research", failures=1)
    key = {"Idempotency-Key": "pg-1"}
    body = {"user_message": "research best laptops"}
    s1, first, _ = await api.call("POST", "/tasks", body, headers=key)
    s2, again, _ = await api.call("POST", "/tasks", body, headers=key)
    s3, _conflict, _ = await api.call("POST", "/tasks", {"user_message": "research x"}, headers=key)
    assert (s1, s2, s3) == (202, 202, 409) and first["id"] == again["id"]
    await api.harness.settle()
    assert (await api.task(first["id"]))["status"] == "FAILED"
    status, _b, _ = await api.call("POST", f"/tasks/{first['id']}/retry")
    assert status == 202
    await api.harness.settle()
    task = await api.task(first["id"])
    assert task["status"] == "COMPLETED" and flaky.runs == 2
    assert [t["amount"] for t in task["transactions"]] == ["0.00"]
    _s, page, _ = await api.call("GET", "/tasks?limit=1")
    assert [t["id"] for t in page["tasks"]] == [first["id"]] and page["next_cursor"] is None
