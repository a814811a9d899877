"""Delivers core's notices to Slack through the Web API."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.views import render
from core.notices import ApprovalDecided, ApprovalNeeded, Notice, StaleReport
from core.ports import DeliveryError, Posted

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

    async def deliver(self, notice: Notice) -> Posted | None:
        try:
            return await self._deliver(notice)
        except SlackApiError as exc:
            raise _classify(exc) from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise DeliveryError(f"network: {exc!r}", permanent=False) from exc

    async def _deliver(self, notice: Notice) -> Posted | None:
        dest = notice.destination
        channel = dest.channel or await self._open_dm(dest.user)
        permalinks: dict[int, str] | None = None
        if isinstance(notice, StaleReport):
            permalinks = await self._permalinks(notice, channel)
        elif isinstance(notice, ApprovalNeeded):
            permalinks = await self._request_link(notice)
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
        return Posted(str(response.get("channel") or channel), str(ts)) if ts else None

    async def _open_dm(self, user: str | None) -> str:
        if not user:
            raise DeliveryError("notice has neither channel nor user", permanent=True)
        response = await self._client.conversations_open(users=user)
        channel = response.get("channel") or {}
        return str(channel["id"])

    async def _permalinks(self, notice: StaleReport, reader_channel: str) -> dict[int, str]:
        """Links its reader can open: a DM is linked only in that same DM (the
        requester reading about their own request, an approver their own copy)."""
        links: dict[int, str] = {}
        for task in notice.tasks:
            if not task.thread_ts or (_is_dm(task.channel) and task.channel != reader_channel):
                continue
            if link := await self._permalink(task.task_id, task.channel, task.thread_ts):
                links[task.task_id] = link
        return links

    async def _request_link(self, notice: ApprovalNeeded) -> dict[int, str]:
        """The requester's thread, unless it is their DM with the bot (no one else can open it)."""
        channel, ts = notice.request_channel, notice.request_thread_ts
        if notice.task_id is None or not channel or not ts or _is_dm(channel):
            return {}
        link = await self._permalink(notice.task_id, channel, ts)
        return {notice.task_id: link} if link else {}

    async def _permalink(self, task_id: int, channel: str, ts: str) -> str | None:
        try:
            response = await self._client.chat_getPermalink(channel=channel, message_ts=ts)
        except SlackApiError as exc:
            log.warning("no permalink for task %s: %s", task_id, exc.response.get("error"))
            return None
        link = response.get("permalink")
        return str(link) if link else None


def _is_dm(channel: str) -> bool:
    return channel.startswith("D")


def _classify(exc: SlackApiError) -> DeliveryError:
    response = exc.response
    status = response.status_code
    error = f"http_{status}"
    if isinstance(response.data, dict) and response.get("error"):
        error = str(response.get("error"))
    if status == 429:
        retry_after = response.headers.get("Retry-After") or response.headers.get("retry-after")
        seconds = float(retry_after) if retry_after and str(retry_after).isdigit() else 1.0
        return DeliveryError(f"rate limited: {error}", permanent=False, retry_after=seconds)
    if status >= 500:
        return DeliveryError(f"slack answered {status}", permanent=False)
    return DeliveryError(error, permanent=error in PERMANENT_ERRORS)
