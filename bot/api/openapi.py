"""The OpenAPI 3.1 document, assembled by code from the endpoint table and the pydantic
models' JSON Schemas (JSON Schema 2020-12 is OpenAPI 3.1's schema dialect)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from bot.api.models import ErrorBody
from bot.api.routes import Endpoint

REF = "#/components/schemas/{model}"
_PARAM = re.compile(r"\{(\w+)(?::(?:[^{}]|\{[^{}]*\})*)?\}")
_REASONS = {
    400: "Malformed request (bad JSON, bad cursor)",
    401: "Missing, unknown or revoked bearer token",
    403: "Not allowed",
    404: "Not found among the caller's tasks",
    409: "Conflict with the current state",
    413: "Request body too large",
    422: "The body or query failed validation, or the request was not understood",
}


def openapi_document(endpoints: tuple[Endpoint, ...], prefix: str, version: str) -> dict[str, Any]:
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ErrorBody, "serialization")]
    for e in endpoints:
        wanted.append((e.response, "serialization"))
        if e.body is not None:
            wanted.append((e.body, "validation"))
    refs, defs = models_json_schema(wanted, ref_template=REF)
    paths: dict[str, dict[str, Any]] = {}
    for e in endpoints:
        path = prefix + _PARAM.sub(r"{\1}", e.path)
        operation: dict[str, Any] = {
            "summary": e.summary,
            "operationId": e.handler.__name__ if e.handler.__name__ != "handler" else None,
            "parameters": _parameters(e),
            "responses": {
                str(e.status): {
                    "description": e.summary,
                    "content": {
                        "application/json": {"schema": refs[(e.response, "serialization")]}
                    },
                },
                **{
                    str(code): {
                        "description": _REASONS[code],
                        "content": {
                            "application/json": {"schema": refs[(ErrorBody, "serialization")]}
                        },
                    }
                    for code in e.errors
                },
            },
        }
        if operation["operationId"] is None:
            operation["operationId"] = e.summary.lower().replace(" ", "_")
        if not e.public:
            operation["security"] = [{"bearer": []}]
        if e.body is not None:
            operation["requestBody"] = {
                "required": e.body_required,
                "content": {"application/json": {"schema": refs[(e.body, "validation")]}},
            }
        paths.setdefault(path, {})[e.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "taskbot API",
            "version": version,
            "description": "The orchestrator's own API: the same engine as the Slack bot.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _parameters(e: Endpoint) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "integer"}}
        for name in _PARAM.findall(e.path)
    ]
    if e.query is not None:
        schema = e.query.model_json_schema(ref_template=REF)
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            params.append(
                {"name": name, "in": "query", "required": name in required, "schema": prop}
            )
    params.extend(
        {"name": header, "in": "header", "required": False, "schema": {"type": "string"}}
        for header in e.headers
    )
    return params
