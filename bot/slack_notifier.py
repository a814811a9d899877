"""Delivers core's notices to Slack through the Web API."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.views import render
from bot.views.status import folded_into_status
from core.notices import (
    ApprovalDecided,
    Notice,
    RequestStatus,
    StaleReport,
    StaleTask,
)
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
        if folded_into_status(notice):
            return None
        dest = notice.destination
        channel = dest.channel or await self._open_dm(dest.user)
        permalinks = await self._permalinks(notice) if isinstance(notice, StaleReport) else None
        message = render(notice, permalinks=permalinks)
        options: dict[str, Any] = {"unfurl_links": False, "unfurl_media": False}
        replaces = _replaces(notice)
        if replaces:
            response = await self._client.chat_update(channel=channel, ts=replaces, **message)
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
            channel, ts = link_target(task)
            if not channel or not ts:
                continue
            try:
                response = await self._client.chat_getPermalink(channel=channel, message_ts=ts)
            except SlackApiError as exc:
                log.warning("no permalink for task %s: %s", task.task_id, exc.response.get("error"))
                continue
            if link := response.get("permalink"):
                links[task.task_id] = str(link)
        return links


def link_target(task: StaleTask) -> tuple[str | None, str | None]:
    """Where a digest row links: the approval message (where approvers can act), else
    the request's thread unless it is someone's DM (its readers could not open it).
    Seam: with one approval copy per approver, pick the reader's copy here."""
    if task.approval_channel and task.approval_ts:
        return task.approval_channel, task.approval_ts
    if task.channel.startswith("D"):
        return None, None
    return task.channel, task.thread_ts


def _replaces(notice: Notice) -> str | None:
    """The ts of the message this notice updates in place, if it does."""
    if isinstance(notice, ApprovalDecided | RequestStatus | StaleReport):
        return notice.message_ts
    return None


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
