"""The contract every agent (built-in or plugin) fulfils."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class AgentResult:
    """What an agent hands back. Text is plain (no markup): renderers escape it."""

    summary: str
    body: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)
    cost_cents: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "summary": self.summary,
            "body": self.body,
            "data": dict(self.data),
            "cost_cents": self.cost_cents,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> AgentResult:
        return cls(
            summary=str(raw.get("summary", "")),
            body=str(raw.get("body", "")),
            data=dict(raw.get("data") or {}),
            cost_cents=int(raw.get("cost_cents", 0)),
        )


@dataclass(frozen=True)
class DependencyResult:
    """A finished task this one depends on, as the dependent agent sees it."""

    task_id: int
    agent: str
    title: str
    result: AgentResult


@dataclass(frozen=True)
class AgentContext:
    task_id: int
    title: str
    params: Mapping[str, Any]
    requester: str
    currency: str
    dependencies: Sequence[DependencyResult] = ()


class AgentError(Exception):
    """An agent could not do its work; the message is shown to the user."""


class TransientAgentError(AgentError):
    """A failure worth trying again (a service briefly down, a rate limit).

    The step is retried with backoff up to the configured attempts, unless the
    agent has effects (needs approval, or is not safe to re-run): those never are.
    """


@runtime_checkable
class Agent(Protocol):
    name: str
    #: a person must approve before it runs (money or outside effects)
    requires_approval: bool
    #: may be run again after a crash left it half done
    safe_to_rerun: bool

    def estimate_cost_cents(self, params: Mapping[str, Any]) -> int: ...

    async def run(self, ctx: AgentContext) -> AgentResult: ...


class FreeAgent:
    """An agent that spends nothing and reaches nothing outside: it needs no approval
    and may run again."""

    requires_approval = False
    safe_to_rerun = True

    def estimate_cost_cents(self, params: Mapping[str, Any]) -> int:
        return 0
