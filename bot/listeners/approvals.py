"""Approve/Deny clicks: authorized from the signed payload, decided before the ack."""

from __future__ import annotations

import re
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bot.views import escape, mention
from core.approvals import Decision, DecisionOutcome, DecisionResult
from core.service import TaskService

ACTION = re.compile(r"^approval:(approve|deny)$")


def refusal_text(outcome: DecisionOutcome) -> str:
    approval = outcome.approval
    if outcome.result is DecisionResult.NOT_ALLOWED and approval is not None:
        who = ", ".join(mention(u) for u in approval.approvers)
        return f"You can't approve this request. Approvers: {who}."
    if outcome.result is DecisionResult.ALREADY_DECIDED and approval is not None:
        by = f" by {mention(approval.decided_by)}" if approval.decided_by else ""
        return f"This request was already {approval.status.value.lower()}{by}."
    return escape(outcome.message)


def register(app: AsyncApp, service: TaskService) -> None:
    @app.action(ACTION)
    async def on_decision(
        ack: AsyncAck,
        body: dict[str, Any],
        action: dict[str, Any],
        client: AsyncWebClient,
        context: AsyncBoltContext,
    ) -> None:
        user = body["user"]["id"]
        container = body.get("container") or {}
        message = body.get("message") or {}
        channel = container.get("channel_id") or (body.get("channel") or {}).get("id")
        message_ts = container.get("message_ts") or message.get("ts")
        decision = Decision.APPROVE if action["action_id"].endswith("approve") else Decision.DENY
        value = str(action.get("value", ""))
        if not value.isdigit() or not channel or not message_ts:
            context["outcome"] = "invalid"
            await ack()
            if channel:
                await client.chat_postEphemeral(
                    channel=channel, user=user, text="That button is not valid any more."
                )
            return
        outcome = await service.decide(
            int(value), user, decision, channel=channel, message_ts=message_ts
        )
        context["outcome"] = outcome.result.value
        if outcome.approval is not None:
            context["task_id"] = outcome.approval.task_id
        await ack()
        if outcome.result is not DecisionResult.DECIDED:
            await client.chat_postEphemeral(
                channel=channel,
                user=user,
                text=refusal_text(outcome),
                thread_ts=message.get("thread_ts") or message_ts,
            )
