"""Delivers core's notices to Slack through the Web API."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.views import render
from core.notices import ApprovalDecided, Notice, StaleReport
from core.ports import DeliveryError

log = logging.getLogger(__name__)

#: errors that will not go away by trying again
PERMANENT_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_blocks",
        "invalid_blocks_format",
        "msg_too_long",
        "no_text",
        "too_many_attachments",
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "missing_scope",
        "no_permission",
        "cant_update_message",
        "message_not_found",
        "edit_window_closed",
        "user_not_found",
        "user_disabled",
        "invalid_arguments",
        "restricted_action",
        "ekm_access_denied",
        "team_access_not_granted",
        "invalid_arg_name",
        "invalid_array_arg",
        "invalid_charset",
        "invalid_form_data",
        "invalid_post_type",
        "missing_post_type",
        "cannot_dm_bot",
    }
)


class SlackNotifier:
    def __init__(self, client: AsyncWebClient) -> None:
        self._client = client

    async def deliver(self, notice: Notice) -> str | None:
        try:
            return await self._deliver(notice)
        except SlackApiError as exc:
            raise _classify(exc) from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise DeliveryError(f"network: {exc!r}", permanent=False) from exc

    async def _deliver(self, notice: Notice) -> str | None:
        dest = notice.destination
        channel = dest.channel or await self._open_dm(dest.user)
        permalinks = await self._permalinks(notice) if isinstance(notice, StaleReport) else None
        message = render(notice, permalinks=permalinks)
        options: dict[str, Any] = {"unfurl_links": False, "unfurl_media": False}
        if isinstance(notice, ApprovalDecided) and notice.message_ts:
            response = await self._client.chat_update(
                channel=channel, ts=notice.message_ts, **message
            )
        else:
            response = await self._client.chat_postMessage(
                channel=channel, thread_ts=dest.thread_ts, **message, **options
            )
        ts = response.get("ts")
        return str(ts) if ts else None

    async def _open_dm(self, user: str | None) -> str:
        if not user:
            raise DeliveryError("notice has neither channel nor user", permanent=True)
        response = await self._client.conversations_open(users=user)
        channel = response.get("channel") or {}
        return str(channel["id"])

    async def _permalinks(self, notice: StaleReport) -> dict[int, str]:
        links: dict[int, str] = {}
        for task in notice.tasks:
            if not task.thread_ts:
                continue
            try:
                response = await self._client.chat_getPermalink(
                    channel=task.channel, message_ts=task.thread_ts
                )
                link = response.get("permalink")
            except Exception as exc:
                # A link is a nicety: the digest goes out without it rather than not at all,
                # whatever the answer was (slack_sdk raises AttributeError on a text body).
                log.warning("no permalink for task %s: %s", task.task_id, _error_of(exc))
                continue
            if isinstance(link, str) and link:
                links[task.task_id] = link
        return links


def _error_of(exc: Exception) -> str:
    """Slack's error code, or the HTTP status when the body was not Slack's JSON
    (a proxy's HTML page; slack_sdk then hands over the raw aiohttp response)."""
    if not isinstance(exc, SlackApiError):
        return type(exc).__name__
    response = exc.response
    data = getattr(response, "data", None)
    if isinstance(data, dict) and data.get("error"):
        return str(data["error"])
    status = getattr(response, "status_code", None) or getattr(response, "status", 0)
    return f"http_{status}"


def _classify(exc: SlackApiError) -> DeliveryError:
    response = exc.response
    status = int(getattr(response, "status_code", None) or getattr(response, "status", 0) or 0)
    error = _error_of(exc)
    if status == 429:
        retry_after = response.headers.get("Retry-After") or response.headers.get("retry-after")
        seconds = float(retry_after) if retry_after and str(retry_after).isdigit() else 1.0
        return DeliveryError(f"rate limited: {error}", permanent=False, retry_after=seconds)
    if status >= 500:
        return DeliveryError(f"slack answered {status}", permanent=False)
    return DeliveryError(error, permanent=error in PERMANENT_ERRORS)
