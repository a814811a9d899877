"""Deny…: the click opens a modal asking for the reason (views.open needs the click's
trigger_id within 3 seconds, so it is opened first); its submission denies, and the
reason goes back to the requester and into the audit log."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext

from bot.listeners.approvals import refusal_text
from bot.listeners.clicked import Click, is_external, on_click
from bot.views.approval import REASON_ACTION, REASON_BLOCK, deny_modal
from bot.views.buttons import DenyButton, DenyForm
from core.approvals import Decision, DecisionResult, deny_reason_error
from core.service import TaskService

_MODAL_FAILED = "I couldn't open the Deny form in time. Please click Deny… again."


def register(app: AsyncApp, service: TaskService) -> None:
    @on_click(app, service, DenyButton)
    async def on_deny_click(click: Click, button: DenyButton) -> str | None:
        refused = await service.approvals.refusal(
            button.approval_id, click.user, external=click.external
        )
        if refused is not None:
            click.outcome(refused.result.value)
            return refusal_text(refused)
        form = DenyForm(button.approval_id, click.channel, click.message_ts)
        if not await click.open_modal(deny_modal(form), "a denial"):
            return _MODAL_FAILED
        return None

    @app.view(DenyForm.callback_id)
    async def on_deny_submit(
        ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        user = body["user"]["id"]
        values = (view.get("state") or {}).get("values") or {}
        reason = str(((values.get(REASON_BLOCK) or {}).get(REASON_ACTION) or {}).get("value") or "")
        if (error := deny_reason_error(reason)) is not None:
            await ack(response_action="errors", errors={REASON_BLOCK: error})
            return
        form = DenyForm.unpack(str(view.get("private_metadata") or ""))
        if form is None:
            await ack(
                response_action="errors", errors={REASON_BLOCK: "This form is not valid any more."}
            )
            return
        outcome = await service.decide(
            form.approval_id,
            user,
            Decision.DENY,
            channel=form.channel,
            message_ts=form.message_ts,
            external=is_external(body),
            reason=reason.strip(),
        )
        context["outcome"] = outcome.result.value
        if outcome.result is not DecisionResult.DECIDED:
            await ack(response_action="errors", errors={REASON_BLOCK: refusal_text(outcome)})
            return
        await ack()
