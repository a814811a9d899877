"""Deny…: the click opens a modal asking for the reason (views.open needs the click's
trigger_id within 3 seconds, so it is opened first); its submission denies, and the
reason goes back to the requester and into the audit log."""

from __future__ import annotations

import json
import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.listeners.clicked import clicked
from bot.listeners.later import answer_later
from bot.views.approval import (
    DENY_ACTION,
    DENY_VIEW,
    REASON_ACTION,
    REASON_BLOCK,
    REASON_MAX,
    deny_modal,
)
from core.approvals import Decision, DecisionResult
from core.service import TaskService

log = logging.getLogger(__name__)

_MODAL_FAILED = "I couldn't open the Deny form in time. Please click Deny… again."


def reason_error(reason: str) -> str | None:
    if not reason.strip():
        return "Please say why, so the requester knows what to do next."
    if len(reason) > REASON_MAX:
        return f"Please keep the reason under {REASON_MAX} characters."
    return None


def register(app: AsyncApp, service: TaskService) -> None:
    from bot.listeners.approvals import is_external, refusal_text

    @app.action(DENY_ACTION)
    async def on_deny_click(
        ack: AsyncAck,
        body: dict[str, Any],
        action: dict[str, Any],
        client: AsyncWebClient,
        context: AsyncBoltContext,
    ) -> None:
        await ack()
        user = body["user"]["id"]
        where = clicked(body, context)
        channel, message_ts, thread_ts = where.channel, where.message_ts, where.thread_ts
        value = str(action.get("value", ""))
        if not value.isdigit():
            if channel:
                answer_later(
                    service, client, channel, user, "That button is not valid any more.", thread_ts
                )
            return
        refused = await service.approvals.refusal(int(value), user, external=is_external(body))
        if refused is not None:
            context["outcome"] = refused.result.value
            if channel:
                answer_later(service, client, channel, user, refusal_text(refused), thread_ts)
            return
        try:
            await client.views_open(
                trigger_id=body["trigger_id"], view=deny_modal(int(value), channel, message_ts)
            )
        except SlackApiError as exc:
            error = exc.response.get("error") if exc.response is not None else None
            log.warning("views.open for a denial failed: %s", error)
            context["outcome"] = "modal_failed"
            if channel:
                answer_later(service, client, channel, user, _MODAL_FAILED, thread_ts)

    @app.view(DENY_VIEW)
    async def on_deny_submit(
        ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        user = body["user"]["id"]
        values = (view.get("state") or {}).get("values") or {}
        reason = str(((values.get(REASON_BLOCK) or {}).get(REASON_ACTION) or {}).get("value") or "")
        if (error := reason_error(reason)) is not None:
            await ack(response_action="errors", errors={REASON_BLOCK: error})
            return
        try:
            meta = json.loads(view.get("private_metadata") or "{}")
            approval_id = int(meta["approval"])
        except (ValueError, KeyError, TypeError):
            await ack(
                response_action="errors", errors={REASON_BLOCK: "This form is not valid any more."}
            )
            return
        outcome = await service.decide(
            approval_id,
            user,
            Decision.DENY,
            channel=meta.get("channel"),
            message_ts=meta.get("ts"),
            external=is_external(body),
            reason=reason.strip(),
        )
        context["outcome"] = outcome.result.value
        if outcome.result is not DecisionResult.DECIDED:
            await ack(response_action="errors", errors={REASON_BLOCK: refusal_text(outcome)})
            return
        await ack()
