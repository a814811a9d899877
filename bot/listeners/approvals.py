"""Approve clicks: authorized from the signed payload, decided before the ack,
answered (ephemeral refusals) after it. Deny… opens a reason modal first
(bot/listeners/deny_reason.py)."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.listeners.clicked import Click, on_click
from bot.views import escape, mention
from bot.views.buttons import ApproveButton
from core.approvals import Decision, DecisionOutcome, DecisionResult
from core.service import TaskService


def refusal_text(outcome: DecisionOutcome) -> str:
    approval = outcome.approval
    if outcome.result is DecisionResult.NOT_ALLOWED and approval is not None:
        if outcome.own_request:
            return "You can't approve your own request: the approvers have been asked."
        if not outcome.approvers:
            return "You can't approve this request: no approvers are configured."
        who = ", ".join(mention(u) for u in outcome.approvers)
        return f"You can't approve this request. Approvers: {who}."
    if outcome.result is DecisionResult.ALREADY_DECIDED and approval is not None:
        by = f" by {mention(approval.decided_by)}" if approval.decided_by else ""
        return f"This request was already {approval.status.value.lower()}{by}."
    return escape(outcome.message)


def register(app: AsyncApp, service: TaskService) -> None:
    @on_click(app, service, ApproveButton, decides_before_ack=True)
    async def on_approve(click: Click, button: ApproveButton) -> str | None:
        # The button only names the approval: who may decide, and whether it is still
        # open, is judged from the database and the current configuration.
        outcome = await service.decide(
            button.approval_id,
            click.user,
            Decision.APPROVE,
            channel=click.channel,
            message_ts=click.message_ts,
            external=click.external,
        )
        click.outcome(outcome.result.value)
        if outcome.approval is not None:
            click.context["task_id"] = outcome.approval.task_id
        return None if outcome.result is DecisionResult.DECIDED else refusal_text(outcome)
