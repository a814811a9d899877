"""A button click, read once for every click listener, and the steps they all take:
ack, unpack the button, answer privately after the ack ("Ack first"), open a modal.
A listener states only what is special to it (see `on_click`)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, Self, TypeVar

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.listeners.later import answer_later
from core.service import TaskService

log = logging.getLogger(__name__)

#: the answer to a button whose value does not unpack (old, edited or forged)
NOT_VALID = "That button is not valid any more."


def is_external(body: dict[str, Any]) -> bool:
    """The clicking user belongs to another workspace or organisation (a shared channel)."""
    user_team = (body.get("user") or {}).get("team_id")
    team = (body.get("team") or {}).get("id")
    return bool(user_team and team and user_team != team)


@dataclass(frozen=True)
class Click:
    """Who clicked (from the signed payload, never the button) and where."""

    user: str
    #: the conversation holding the message (Bolt's context has it)
    channel: str | None
    #: the clicked message itself
    message_ts: str | None
    #: where answers go: the message's thread, else the message
    thread_ts: str | None
    #: from another workspace or organisation (a shared channel)
    external: bool
    trigger_id: str
    client: AsyncWebClient
    context: AsyncBoltContext

    @classmethod
    def read(cls, body: dict[str, Any], context: AsyncBoltContext) -> Click:
        container = body.get("container") or {}
        message = body.get("message") or {}
        message_ts = container.get("message_ts") or message.get("ts")
        return cls(
            user=body["user"]["id"],
            channel=context.channel_id or container.get("channel_id"),
            message_ts=message_ts,
            thread_ts=message.get("thread_ts") or message_ts,
            external=is_external(body),
            trigger_id=str(body.get("trigger_id") or ""),
            client=context.client,
            context=context,
        )

    def outcome(self, outcome: str) -> None:
        """What became of the click, for the request log line."""
        self.context["outcome"] = outcome

    async def open_modal(self, view: dict[str, Any], what: str) -> bool:
        """views.open, which needs the click's trigger_id within 3 seconds; False
        (and the outcome "modal_failed") when Slack refused it."""
        try:
            await self.client.views_open(trigger_id=self.trigger_id, view=view)
        except SlackApiError as exc:
            error = exc.response.get("error") if exc.response is not None else None
            log.warning("views.open for %s failed: %s", what, error)
            self.outcome("modal_failed")
            return False
        return True


class Button(Protocol):
    action_id: ClassVar[str]

    @classmethod
    def unpack(cls, value: str) -> Self | None: ...


B = TypeVar("B", bound=Button)
#: the listener's own part: returns what to tell the clicking user privately, if anything
OnClick = Callable[[Click, B], Awaitable[str | None]]


def on_click(
    app: AsyncApp, service: TaskService, kind: type[B], *, decides_before_ack: bool = False
) -> Callable[[OnClick[B]], OnClick[B]]:
    """Registers a listener for `kind`'s clicks. It is given the unpacked button (a
    value that does not unpack is answered NOT_VALID, outcome "invalid"). The ack
    comes first, unless the listener `decides_before_ack`; its answer always after."""

    def register(listener: OnClick[B]) -> OnClick[B]:
        @app.action(kind.action_id)
        async def on_action(
            ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], context: AsyncBoltContext
        ) -> None:
            if not decides_before_ack:
                await ack()
            click = Click.read(body, context)
            button = kind.unpack(str(action.get("value", "")))
            answer: str | None
            if button is None:
                click.outcome("invalid")
                answer = NOT_VALID
            else:
                answer = await listener(click, button)
            if decides_before_ack:
                await ack()
            if answer and click.channel:
                answer_later(
                    service, click.client, click.channel, click.user, answer, click.thread_ts
                )

        return listener

    return register
