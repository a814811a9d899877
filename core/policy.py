"""The business rules an admin configures, as core sees them (no env parsing here)."""

from __future__ import annotations

from dataclasses import dataclass

#: what a purchase is refused with when nobody may approve it
NO_APPROVERS = (
    "No one can approve purchases yet: an admin must set TASKBOT_APPROVERS "
    "(comma-separated Slack user ids), or TASKBOT_ALLOW_SELF_APPROVAL=true to let "
    "people approve their own."
)


@dataclass(frozen=True)
class Policy:
    approvers: tuple[str, ...] = ()
    #: with no other approver, people may approve their own requests (the console)
    allow_self_approval: bool = False
    #: one shared place for approval messages; None sends each approver a DM
    approval_channel: str | None = None
    monthly_budget_cents: int = 500_00
    currency: str = "USD"
    approval_ttl_seconds: int = 7 * 24 * 3600
    reminder_after_seconds: int = 24 * 3600
    stale_after_seconds: int = 24 * 3600
    #: an agent still running after this is stopped and its task fails
    agent_timeout_seconds: float = 300.0
    #: a step that fails transiently is tried this many times in all before it fails
    step_max_attempts: int = 3
    #: the wait before the second attempt; doubled for each later one (plus jitter)
    step_retry_base_seconds: float = 2.0
    step_retry_max_seconds: float = 60.0
    #: slack beyond the longest a healthy step can take before it counts as stuck
    stuck_margin_seconds: float = 60.0
    #: work that finishes within this needs no status message (the result answers)
    status_grace_seconds: float = 3.0

    def retry_delay(self, attempt: int) -> float:
        """The ceiling of the wait after failed `attempt` (1-based); jitter picks below it."""
        return min(self.step_retry_max_seconds, self.step_retry_base_seconds * 2.0 ** (attempt - 1))

    @property
    def stuck_after_seconds(self) -> float:
        """Longer than every attempt timing out plus the waits between them, plus a margin."""
        waits = sum(self.retry_delay(n) for n in range(1, self.step_max_attempts))
        return (
            self.agent_timeout_seconds * self.step_max_attempts + waits + self.stuck_margin_seconds
        )

    def approvers_for(self, requester: str) -> tuple[str, ...]:
        """Who may decide on `requester`'s spending; empty when nobody may.

        The requester is never among them while anyone else is: only a sole
        configured approver, or self-approval when it is allowed, approves their own.
        """
        others = tuple(a for a in self.approvers if a != requester)
        if others:
            return others
        if requester in self.approvers or self.allow_self_approval:
            return (requester,)
        return ()

    def may_approve(self, user: str, requester: str, *, external: bool = False) -> bool:
        """Checked at click time against the current configuration. A user of another
        workspace or organisation counts only when their id is configured by name."""
        if external and user not in self.approvers:
            return False
        return user in self.approvers_for(requester)
