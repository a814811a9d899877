"""Turn what an agent hands back into plain JSON before it is stored.

Plugins naturally return Decimals (money), dates, UUIDs, sets, enums,
dataclasses or pydantic models; a JSON column accepts none of them, and a
failure to store an outcome must never be discovered inside the transaction
that records it. Anything that has no faithful JSON form is refused here, with
where it was and what it was, so the step fails with a reason a person can act on.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

from core.agents.base import AgentResult

MAX_DEPTH = 64


class NotStorable(ValueError):
    """A value with no faithful JSON form; the message names where it is."""

    def __init__(self, path: str, what: str) -> None:
        super().__init__(f"{path} is {what}, which cannot be stored as JSON")
        self.path = path


def json_safe(value: Any, path: str = "result", _depth: int = 0) -> Any:
    """A JSON-ready copy of `value`: Decimal → str (exact), date/time → ISO 8601,
    UUID → str, set/tuple → list, Enum → its value, dataclass/pydantic → dict."""
    if _depth > MAX_DEPTH:
        raise NotStorable(path, f"nested deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise NotStorable(path, f"the number {value!r}")
        return value
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise NotStorable(path, f"the number {value!r}")
        return str(value)
    if isinstance(value, Enum):
        return json_safe(value.value, path, _depth + 1)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, AgentResult):
        return json_safe(value.to_json(), path, _depth + 1)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: json_safe(getattr(value, f.name), f"{path}.{f.name}", _depth + 1)
            for f in dataclasses.fields(value)
        }
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):
        return json_safe(dump(), path, _depth + 1)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = _key(key, path)
            out[name] = json_safe(item, f"{path}[{name!r}]", _depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [json_safe(v, f"{path}[{i}]", _depth + 1) for i, v in enumerate(value)]
    if isinstance(value, set | frozenset):
        items = [json_safe(v, f"{path}[…]", _depth + 1) for v in value]
        try:
            return sorted(items)
        except TypeError:
            return sorted(items, key=repr)
    raise NotStorable(path, f"a {type(value).__name__}")


def _key(key: Any, path: str) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, Enum):
        key = key.value
    if key is None or isinstance(key, bool | int | float | Decimal | UUID | date):
        return str(key) if not isinstance(key, date) else key.isoformat()
    raise NotStorable(f"{path} key {key!r}", f"a {type(key).__name__} key")


def storable_result(result: Any) -> AgentResult:
    """`result` as an AgentResult whose every field is plain JSON; NotStorable if not."""
    if not isinstance(result, AgentResult):
        raise NotStorable("the agent's answer", f"a {type(result).__name__}, not an AgentResult")
    cost = result.cost_cents
    if isinstance(cost, Decimal) and cost.is_finite() and cost == cost.to_integral_value():
        cost = int(cost)
    if isinstance(cost, bool) or not isinstance(cost, int):
        raise NotStorable("result.cost_cents", f"{cost!r} (not a whole number of cents)")
    data = json_safe(result.data, "result.data")
    if not isinstance(data, dict):
        raise NotStorable("result.data", f"a {type(result.data).__name__}, not a mapping")
    return AgentResult(
        summary=_text(result.summary, "result.summary"),
        body=_text(result.body, "result.body"),
        data=data,
        cost_cents=cost,
    )


def _text(value: Any, path: str) -> str:
    safe = json_safe(value, path)
    if isinstance(safe, dict | list):
        raise NotStorable(path, f"a {type(value).__name__}, not text")
    return "" if safe is None else str(safe)
