"""Delivers core's notices to Slack through the Web API.

Every post carries message metadata naming its outbox entry. Slack has no
idempotency key, so when an earlier attempt may have posted (a timeout, a crash
before the ts was recorded) the entry is first looked for where the bot may read
without new scopes: its DMs (im:history). Found → that message's ts is adopted
instead of posting again. Elsewhere (channels) it is posted again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.views import render
from bot.views.status import folded_into_status
from core.notices import ApprovalDecided, ApprovalNeeded, Notice, RequestStatus, StaleReport
from core.ports import Attempt, DeliveryError, Posted

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

#: answers to a history lookup that mean "the bot cannot see there": post as usual
UNREADABLE = frozenset(
    {"missing_scope", "channel_not_found", "not_in_channel", "thread_not_found", "no_permission"}
)

METADATA_EVENT = "taskbot_outbox"
#: the lookup starts this long before the first unconfirmed attempt (clock skew)
LOOKUP_MARGIN = timedelta(minutes=2)
LOOKUP_PAGE = 200
LOOKUP_PAGES = 3


class SlackNotifier:
    def __init__(self, client: AsyncWebClient) -> None:
        self._client = client

    async def deliver(self, notice: Notice, attempt: Attempt | None = None) -> Posted | None:
        doubt = _Doubt(attempt is not None and attempt.unconfirmed_since is not None)
        try:
            return await self._deliver(notice, attempt, doubt)
        except SlackApiError as exc:
            raise _classify(exc, doubt=doubt.open) from exc
        except aiohttp.ClientConnectorError as exc:  # nothing was sent
            raise DeliveryError(
                f"network: {exc!r}", permanent=False, maybe_delivered=doubt.open
            ) from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise DeliveryError(f"network: {exc!r}", permanent=False) from exc

    async def _deliver(
        self, notice: Notice, attempt: Attempt | None, doubt: _Doubt
    ) -> Posted | None:
        if folded_into_status(notice):
            return None
        dest = notice.destination
        channel = dest.channel or await self._open_dm(dest.user)
        if replaces := _replaces(notice):
            links = (
                await self._permalinks(notice, channel) if isinstance(notice, StaleReport) else None
            )
            message = render(notice, permalinks=links)
            response = await self._client.chat_update(
                channel=channel, ts=replaces, **message
            )  # an edit in place: repeating it changes nothing
            ts = response.get("ts")
            return Posted(channel, str(ts)) if ts else None
        if attempt is not None and attempt.unconfirmed_since is not None:
            found = await self._already_posted(channel, dest.thread_ts, notice, attempt)
            if found is not None:
                log.info(
                    "outbox entry %s was already posted as %s: not posting again",
                    attempt.entry,
                    found,
                )
                return Posted(channel, found)
            doubt.open = False  # settled: not there (or not readable), so it is posted
        permalinks: dict[int, str] | None = None
        if isinstance(notice, StaleReport):
            permalinks = await self._permalinks(notice, channel)
        elif isinstance(notice, ApprovalNeeded):
            permalinks = await self._request_link(notice)
        message = render(notice, permalinks=permalinks)
        options: dict[str, Any] = {"unfurl_links": False, "unfurl_media": False}
        if attempt is not None:
            options["metadata"] = _metadata(notice, attempt.entry)
        response = await self._client.chat_postMessage(
            channel=channel, thread_ts=dest.thread_ts, **message, **options
        )
        ts = response.get("ts")
        return Posted(str(response.get("channel") or channel), str(ts)) if ts else None

    async def _already_posted(
        self, channel: str, thread_ts: str | None, notice: Notice, attempt: Attempt
    ) -> str | None:
        """The ts of this entry's message if an earlier attempt posted it, where the bot
        may read the conversation (its DMs); None when not found or not readable."""
        if not channel.startswith("D") or attempt.unconfirmed_since is None:
            return None
        oldest = _slack_ts(attempt.unconfirmed_since - LOOKUP_MARGIN)
        cursor: str | None = None
        try:
            for _page in range(LOOKUP_PAGES):
                page: dict[str, Any] = {
                    "channel": channel,
                    "oldest": oldest,
                    "include_all_metadata": True,
                    "limit": LOOKUP_PAGE,
                    "cursor": cursor,
                }
                if thread_ts:
                    response = await self._client.conversations_replies(ts=thread_ts, **page)
                else:
                    response = await self._client.conversations_history(**page)
                for message in response.get("messages") or []:
                    if _is_entry(message, notice, attempt.entry):
                        return str(message["ts"])
                cursor = (response.get("response_metadata") or {}).get("next_cursor")
                if not response.get("has_more") or not cursor:
                    return None
        except SlackApiError as exc:
            error = exc.response.get("error") if isinstance(exc.response.data, dict) else None
            if error in UNREADABLE:
                log.info(
                    "cannot look for outbox entry %s in %s (%s): posting it",
                    attempt.entry,
                    channel,
                    error,
                )
                return None
            raise _classify(exc, doubt=True) from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            # the earlier attempt is still unconfirmed: keep it so, try again later
            raise DeliveryError(f"looking for an earlier post: {exc!r}", permanent=False) from exc
        log.info(
            "outbox entry %s not found in the last %d messages of %s: posting it",
            attempt.entry,
            LOOKUP_PAGE * LOOKUP_PAGES,
            channel,
        )
        return None

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
            link = response.get("permalink")
        except Exception as exc:
            # A link is a nicety: the message goes out without it rather than not at all,
            # whatever the answer was (slack_sdk raises AttributeError on a text body).
            log.warning("no permalink for task %s: %s", task_id, _error_of(exc))
            return None
        return link if isinstance(link, str) and link else None


def _replaces(notice: Notice) -> str | None:
    """The ts of the message this notice updates in place, if it does."""
    if isinstance(notice, ApprovalDecided | RequestStatus | StaleReport):
        return notice.message_ts
    return None


def _is_dm(channel: str) -> bool:
    return channel.startswith("D")


def _metadata(notice: Notice, entry: int) -> dict[str, Any]:
    payload: dict[str, Any] = {"entry": entry, "kind": notice.kind}
    if notice.task_id is not None:
        payload["task"] = notice.task_id
    return {"event_type": METADATA_EVENT, "event_payload": payload}


def _is_entry(message: Any, notice: Notice, entry: int) -> bool:
    if not isinstance(message, dict) or not message.get("ts"):
        return False
    metadata = message.get("metadata")
    if not isinstance(metadata, dict) or metadata.get("event_type") != METADATA_EVENT:
        return False
    payload = metadata.get("event_payload")
    return isinstance(payload, dict) and payload == _metadata(notice, entry)["event_payload"]


def _slack_ts(at: datetime) -> str:
    return f"{at.timestamp():.6f}"


@dataclass
class _Doubt:
    """Whether an earlier attempt may have posted: until the lookup settles it, no
    failure of this attempt may clear it (the entry would then be posted blind)."""

    open: bool


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


def _classify(exc: SlackApiError, *, doubt: bool) -> DeliveryError:
    """Slack answered, so this request did nothing; an earlier attempt still in
    `doubt` keeps the entry unconfirmed."""
    response = exc.response
    status = int(getattr(response, "status_code", None) or getattr(response, "status", 0) or 0)
    error = _error_of(exc)
    if status == 429:
        retry_after = response.headers.get("Retry-After") or response.headers.get("retry-after")
        seconds = float(retry_after) if retry_after and str(retry_after).isdigit() else 1.0
        return DeliveryError(
            f"rate limited: {error}",
            permanent=False,
            retry_after=seconds,
            maybe_delivered=doubt,
        )
    if status >= 500:  # the post may have been taken before the error
        return DeliveryError(f"slack answered {status}", permanent=False)
    return DeliveryError(error, permanent=error in PERMANENT_ERRORS, maybe_delivered=doubt)
