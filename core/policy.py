"""The business rules an admin configures, as core sees them (no env parsing here)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Policy:
    approvers: tuple[str, ...] = ()
    monthly_budget_cents: int = 500_00
    currency: str = "USD"
    approval_ttl_seconds: int = 7 * 24 * 3600
    reminder_after_seconds: int = 24 * 3600
    stale_after_seconds: int = 24 * 3600
    #: an agent still running after this is stopped and its task fails
    agent_timeout_seconds: float = 300.0
    #: work that finishes within this needs no status message (the result answers)
    status_grace_seconds: float = 3.0

    def approvers_for(self, requester: str) -> tuple[str, ...]:
        """Configured approvers; with none configured people approve their own requests."""
        return self.approvers or (requester,)
