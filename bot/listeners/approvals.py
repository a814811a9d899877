"""Approve/Deny clicks: authorized from the signed payload, decided before the ack,
answered (ephemeral refusals) after it."""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bot.listeners import deny_reason, full_text
from bot.listeners.clicked import clicked
from bot.listeners.later import answer_later
from bot.views import escape, mention
from core.approvals import Decision, DecisionOutcome, DecisionResult
from core.service import TaskService

log = logging.getLogger(__name__)

#: Deny… opens a reason modal first (bot/listeners/deny_reason.py)
ACTION = re.compile(r"^approval:approve$")


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


def is_external(body: dict[str, Any]) -> bool:
    """The clicking user belongs to another workspace or organisation (a shared channel)."""
    user_team = (body.get("user") or {}).get("team_id")
    team = (body.get("team") or {}).get("id")
    return bool(user_team and team and user_team != team)


def register(app: AsyncApp, service: TaskService) -> None:
    deny_reason.register(app, service)
    full_text.register(app, service)

    @app.action(ACTION)
    async def on_decision(
        ack: AsyncAck,
        body: dict[str, Any],
        action: dict[str, Any],
        client: AsyncWebClient,
        context: AsyncBoltContext,
    ) -> None:
        user = body["user"]["id"]
        where = clicked(body, context)
        channel, message_ts, thread_ts = where.channel, where.message_ts, where.thread_ts
        decision = Decision.APPROVE if action["action_id"].endswith("approve") else Decision.DENY
        value = str(action.get("value", ""))
        if not value.isdigit():
            context["outcome"] = "invalid"
            await ack()
            if channel:
                text = "That button is not valid any more."
                answer_later(service, client, channel, user, text, thread_ts)
            return
        # The button only names the approval: who may decide, and whether it is still
        # open, is judged from the database and the current configuration.
        outcome = await service.decide(
            int(value),
            user,
            decision,
            channel=channel,
            message_ts=message_ts,
            external=is_external(body),
        )
        context["outcome"] = outcome.result.value
        if outcome.approval is not None:
            context["task_id"] = outcome.approval.task_id
        await ack()
        if outcome.result is not DecisionResult.DECIDED and channel:
            answer_later(service, client, channel, user, refusal_text(outcome), thread_ts)
