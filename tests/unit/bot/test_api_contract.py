"""The OpenAPI document is a contract: generated clients name their methods by
operationId, and a body marked required must be sent."""

from __future__ import annotations

from typing import Any

from bot.api.openapi import openapi_document
from bot.api.routes import ENDPOINTS


def _operation(path: str) -> dict[str, Any]:
    doc = openapi_document(ENDPOINTS, "/api/v1", "1")
    operation: dict[str, Any] = doc["paths"][f"/api/v1{path}"]["post"]
    return operation


def test_the_decisions_keep_their_operation_ids() -> None:
    assert _operation("/approvals/{id}/approve")["operationId"] == "approve"
    assert _operation("/approvals/{id}/deny")["operationId"] == "deny"


def test_a_denial_without_a_body_is_as_valid_as_the_server_says() -> None:
    """POST …/deny with no body denies without a reason (as before the reason existed)."""
    body = _operation("/approvals/{id}/deny")["requestBody"]
    assert body["required"] is False
    assert body["content"]["application/json"]["schema"]["$ref"].endswith("/DenyBody")
