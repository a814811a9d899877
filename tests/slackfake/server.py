"""A local fake of the Slack Web API that speaks Slack's wire format.

``FakeSlack`` is an aiohttp server on 127.0.0.1 (random free port).  Point an
``AsyncWebClient(base_url=slack.base_url)`` at it.  It:

* requires ``Authorization: Bearer xoxb-...`` (``not_authed`` / ``invalid_auth``),
* accepts form-encoded, JSON and query-string parameters the way slack_sdk
  sends them (``blocks``/``attachments``/``view`` may be JSON strings in a form),
* answers with the response shapes of ``specs/slack_web_openapi_v2.json``,
* validates every Block Kit payload with slack_sdk's own models
  (``Block.parse`` + ``validate_json`` + the recursive ``to_dict``) and a few
  server-side rules slack_sdk does not check; violations are answered with
  ``{"ok": false, "error": "invalid_blocks"}`` and recorded in ``errors``,
* records every request as a ``Call`` and lets tests script failures.

Only the methods taskbot uses are implemented; any other answers
``{"ok": false, "error": "unknown_method"}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from multidict import CIMultiDict
from slack_sdk.models.basic_objects import JsonObject
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

DEFAULT_BOT_USER_ID = "UBOT0001"
DEFAULT_BOT_ID = "BBOT0001"
DEFAULT_TEAM_ID = "T0001"
DEFAULT_APP_ID = "A0001"

MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_MESSAGE_TEXT = 40_000

_JSON_STRING_FIELDS = ("blocks", "attachments", "view", "metadata")


# --------------------------------------------------------------------------
# Script steps
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class OK:
    """Handle the request normally."""


@dataclass(frozen=True)
class Fail:
    """Answer with HTTP ``status`` and a JSON body ``{"ok": false, "error": error}``."""

    status: int = 500
    error: str = "fatal_error"


@dataclass(frozen=True)
class RateLimited:
    """Answer HTTP 429 with ``Retry-After`` and ``{"ok": false, "error": "ratelimited"}``."""

    retry_after: int = 1


@dataclass(frozen=True)
class ApiError:
    """Answer HTTP 200 with ``{"ok": false, "error": error, **extra}``."""

    error: str
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Delay:
    """Sleep ``seconds`` before handling the request normally (client timeouts)."""

    seconds: float


@dataclass(frozen=True)
class NotJson:
    """Answer HTTP ``status`` with a non-JSON body, as a proxy or load balancer in
    front of Slack does (e.g. 502 with an HTML page)."""

    status: int = 502
    body: str = "<html><body><h1>502 Bad Gateway</h1></body></html>"
    content_type: str = "text/html"


@dataclass(frozen=True)
class AnswerLate:
    """Handle the request normally (a post is stored), then hold the answer back
    ``seconds``: the client times out although Slack acted on the request."""

    seconds: float


@dataclass(frozen=True)
class Hold:
    """Hold the request until ``release`` is set, then handle it normally (a slow Web
    API the test controls: it can check what happened while the call was held)."""

    release: asyncio.Event
    #: set by the fake once the held request has arrived
    arrived: asyncio.Event = field(default_factory=asyncio.Event)


ScriptStep = OK | Fail | RateLimited | ApiError | Delay | AnswerLate | NotJson | Hold

#: the bot scopes manifest.yml asks for
DEFAULT_BOT_SCOPES = frozenset(
    {"app_mentions:read", "im:history", "chat:write", "commands", "im:write"}
)


class ClickRefused(AssertionError):
    """Slack would never send this click: the user cannot see that message."""


# --------------------------------------------------------------------------
# Recorded calls
# --------------------------------------------------------------------------


@dataclass
class Call:
    """One request received by the fake, in arrival order.

    ``params`` merges query string, form and JSON body; JSON-string fields
    (``blocks``, ``attachments``, ``view``, ``metadata``) are decoded.
    ``status``/``response`` are filled in once the fake has answered
    (``status == 0`` while the request is still being handled).
    """

    method: str
    params: dict[str, Any]
    headers: CIMultiDict[str]
    http_method: str = "POST"
    body: bytes = b""
    status: int = 0
    response: Any = None
    received_at: float = field(default_factory=time.monotonic)

    @property
    def done(self) -> bool:
        return self.status != 0

    @property
    def ok(self) -> bool:
        return (
            self.status == 200
            and isinstance(self.response, dict)
            and self.response.get("ok") is True
        )

    def summary(self, limit: int = 400) -> str:
        params = json.dumps(self.params, default=str, ensure_ascii=False)
        if len(params) > limit:
            params = params[:limit] + "..."
        answer = json.dumps(self.response, default=str, ensure_ascii=False)
        if len(answer) > limit:
            answer = answer[:limit] + "..."
        return f"{self.method} [{self.status or 'pending'}] params={params} -> {answer}"


class _ApiFailure(Exception):
    def __init__(self, error: str, status: int = 200, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.status = status
        self.extra = extra


# --------------------------------------------------------------------------
# Block Kit validation (usable on its own, e.g. in renderer unit tests)
# --------------------------------------------------------------------------


def _walk_parsed(raw: Any, parsed: Any, pointer: str) -> list[str]:
    """Find children slack_sdk silently dropped (unknown element types parse to None)."""
    errors: list[str] = []
    if not isinstance(raw, dict) or not isinstance(parsed, JsonObject):
        return errors
    for key, raw_value in raw.items():
        if key == "type":
            continue
        attr = getattr(parsed, key, None)
        child = f"{pointer}/{key}"
        if isinstance(raw_value, dict) and "type" in raw_value:
            if attr is None:
                errors.append(f"unsupported type `{raw_value['type']}` [json-pointer:{child}]")
            else:
                errors.extend(_walk_parsed(raw_value, attr, child))
        elif isinstance(raw_value, list) and isinstance(attr, list | tuple):
            if len(attr) != len(raw_value):
                continue
            for j, (raw_item, parsed_item) in enumerate(zip(raw_value, attr, strict=True)):
                if not (isinstance(raw_item, dict) and "type" in raw_item):
                    continue
                if parsed_item is None:
                    errors.append(
                        f"unsupported type `{raw_item['type']}` [json-pointer:{child}/{j}]"
                    )
                else:
                    errors.extend(_walk_parsed(raw_item, parsed_item, f"{child}/{j}"))
    return errors


_PLAIN_TEXT_ONLY = {"button": "text", "header": "text"}


def _walk_raw(node: Any, pointer: str, action_ids: dict[str, str]) -> list[str]:
    """Server-side rules Slack enforces that slack_sdk's models do not."""
    errors: list[str] = []
    if isinstance(node, list):
        for i, item in enumerate(node):
            errors.extend(_walk_raw(item, f"{pointer}/{i}", action_ids))
        return errors
    if not isinstance(node, dict):
        return errors
    node_type = node.get("type")
    if node_type in ("plain_text", "mrkdwn"):
        text = node.get("text")
        if not isinstance(text, str):
            errors.append(f"must provide a string [json-pointer:{pointer}/text]")
        elif not text:
            errors.append(f"must be more than 0 characters [json-pointer:{pointer}/text]")
        return errors
    if node_type in _PLAIN_TEXT_ONLY:
        key = _PLAIN_TEXT_ONLY[node_type]
        value = node.get(key)
        if not (isinstance(value, dict) and value.get("type") == "plain_text"):
            errors.append(f"must be a plain_text text object [json-pointer:{pointer}/{key}]")
    if node_type == "section" and "text" in node and not isinstance(node["text"], dict):
        errors.append(f"must provide an object [json-pointer:{pointer}/text]")
    action_id = node.get("action_id")
    if isinstance(action_id, str) and node_type not in (None, "text"):
        if action_id in action_ids:
            errors.append(
                f"action_id `{action_id}` already exists in this block "
                f"(first at {action_ids[action_id]}) [json-pointer:{pointer}/action_id]"
            )
        else:
            action_ids[action_id] = pointer
    for key, value in node.items():
        if isinstance(value, dict | list):
            errors.extend(_walk_raw(value, f"{pointer}/{key}", action_ids))
    return errors


def validate_blocks(
    blocks: Any, *, max_blocks: int = MAX_MESSAGE_BLOCKS, pointer: str = "/blocks"
) -> list[str]:
    """Validate a Block Kit ``blocks`` array; return Slack-style error messages.

    Each block is parsed with ``slack_sdk.models.blocks.Block.parse`` (``None``
    = unknown type = error), then ``validate_json()`` and ``to_dict()`` (which
    runs the validators of nested elements such as a section's button accessory;
    ``validate_json`` alone only checks the top-level block).  Also checks the
    block count, duplicate ``block_id``s, duplicate ``action_id``s inside a
    block, empty text objects and plain_text-only fields.
    """
    if isinstance(blocks, str):
        try:
            blocks = json.loads(blocks)
        except ValueError:
            return [f"invalid_blocks_format: blocks is not valid JSON [json-pointer:{pointer}]"]
    if not isinstance(blocks, list):
        return [f"must provide an array [json-pointer:{pointer}]"]
    errors: list[str] = []
    if len(blocks) > max_blocks:
        errors.append(f"no more than {max_blocks} items allowed [json-pointer:{pointer}]")
    block_ids: dict[str, int] = {}
    for i, raw in enumerate(blocks):
        here = f"{pointer}/{i}"
        if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
            errors.append(f"missing required field: type [json-pointer:{here}]")
            continue
        try:
            parsed = Block.parse(copy.deepcopy(raw))
        except Exception as exc:  # constructor errors: missing/unknown arguments
            errors.append(f"cannot build `{raw['type']}` block: {exc} [json-pointer:{here}]")
            continue
        if parsed is None:
            errors.append(f"unsupported type `{raw['type']}` [json-pointer:{here}/type]")
            continue
        try:
            parsed.validate_json()
            parsed.to_dict()  # recursive: validates nested elements too
        except Exception as exc:
            errors.append(f"{exc} [json-pointer:{here}]")
        errors.extend(_walk_parsed(raw, parsed, here))
        errors.extend(_walk_raw(raw, here, {}))
        block_id = raw.get("block_id")
        if isinstance(block_id, str):
            if block_id in block_ids:
                errors.append(
                    f"duplicate block_id `{block_id}` (also {pointer}/{block_ids[block_id]}) "
                    f"[json-pointer:{here}/block_id]"
                )
            else:
                block_ids[block_id] = i
    return errors


def validate_message(params: Mapping[str, Any], *, require_text: bool = True) -> list[str]:
    """Validate the Block Kit part of a chat.* / response_url message payload."""
    blocks = params.get("blocks")
    if blocks is None:
        return []
    errors = validate_blocks(blocks, max_blocks=MAX_MESSAGE_BLOCKS)
    text = params.get("text")
    if require_text and blocks and not (isinstance(text, str) and text.strip()):
        errors.append(
            "top-level `text` (notification/accessibility fallback) is required "
            "when sending blocks [json-pointer:/text]"
        )
    return errors


#: how long a trigger_id may open a modal (Slack: 3 seconds)
TRIGGER_TTL = 3.0


def validate_view(view: Any, *, expected_type: str | None = None) -> list[str]:
    """Validate a view (modal / Home tab) with slack_sdk's ``View`` and the block rules."""
    if isinstance(view, str):
        try:
            view = json.loads(view)
        except ValueError:
            return ["view is not valid JSON [json-pointer:/view]"]
    if not isinstance(view, dict):
        return ["must provide an object [json-pointer:/view]"]
    errors: list[str] = []
    if expected_type is not None and view.get("type") != expected_type:
        errors.append(
            f"view type must be `{expected_type}`, got `{view.get('type')}` "
            "[json-pointer:/view/type]"
        )
    blocks = view.get("blocks")
    if blocks is None:
        errors.append("missing required field: blocks [json-pointer:/view/blocks]")
    else:
        errors.extend(validate_blocks(blocks, max_blocks=MAX_VIEW_BLOCKS, pointer="/view/blocks"))
    try:
        View(**copy.deepcopy(view)).validate_json()
    except Exception as exc:
        errors.append(f"{exc} [json-pointer:/view]")
    return errors


# --------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------

Handler = Callable[[Call], Awaitable[dict[str, Any]]]


from tests.slackfake.socket_mode import SocketModeLink  # noqa: E402


class FakeSlack:
    """Local fake Slack Web API; use as ``async with FakeSlack() as slack``."""

    def __init__(
        self,
        *,
        bot_user_id: str = DEFAULT_BOT_USER_ID,
        bot_id: str = DEFAULT_BOT_ID,
        team_id: str = DEFAULT_TEAM_ID,
        app_id: str = DEFAULT_APP_ID,
        team_name: str = "Fake Workspace",
        bot_name: str = "taskbot",
        valid_tokens: Iterable[str] | None = None,
        scopes: Iterable[str] = DEFAULT_BOT_SCOPES,
        ts_clock: Callable[[], float] | None = None,
    ) -> None:
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.team_id = team_id
        self.app_id = app_id
        self.team_name = team_name
        self.bot_name = bot_name
        # None: any ``xoxb-...`` token is accepted.
        self.valid_tokens: set[str] | None = set(valid_tokens) if valid_tokens else None

        self.calls: list[Call] = []
        self.errors: list[str] = []
        self.unknown_channels: set[str] = set()
        self.unknown_users: set[str] = set()
        # (channel, ts) -> message dict as Slack would return it
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        self.ephemerals: list[dict[str, Any]] = []
        self.home_views: dict[str, dict[str, Any]] = {}
        #: modals opened with views.open, in order
        self.opened_views: list[dict[str, Any]] = []
        #: trigger_id -> (user, monotonic time issued): valid for TRIGGER_TTL seconds, once
        self.triggers: dict[str, tuple[str, float]] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.dm_channels: dict[str, str] = {}
        #: conversation id -> who is in it (a DM: its user and the bot)
        self.members: dict[str, set[str]] = {}
        #: (channel, ts) of messages people posted (the bot's own are in ``messages``)
        self.user_messages: set[tuple[str, str]] = set()
        #: the bot token's scopes (conversations.history/replies check them)
        self.scopes: set[str] = set(scopes)
        #: DMs between other people: the bot is not in them (history: channel_not_found)
        self.foreign_dms: set[str] = set()
        #: channels (C…/G…) the bot is a member of, for conversations.history/replies
        self.history_channels: set[str] = set()

        self._scripts: dict[str, deque[ScriptStep]] = {}
        self._next_ts = 1_700_000_000_000_100
        #: Slack's ts is the posting time (epoch seconds): with a clock, new ts follow it
        #: (history's oldest/latest then mean what they mean); without, a counter
        self._ts_clock = ts_clock
        self._view_seq = 0
        self._changed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._handlers: dict[str, Handler] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "conversations.open": self._conversations_open,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "users.info": self._users_info,
            "views.publish": self._views_publish,
            "views.open": self._views_open,
            "apps.connections.open": self._apps_connections_open,
        }
        #: Socket Mode: the websocket that apps.connections.open hands out
        self.socket_mode = SocketModeLink()

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> FakeSlack:
        if self._runner is not None:
            return self
        self._stopping.clear()
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_post("/response/{name}", self._handle_response_url)
        app.router.add_get("/link", self.socket_mode.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        address = runner.addresses[0]
        self._port = int(address[1])
        return self

    async def stop(self) -> None:
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _pause(self, seconds: float) -> None:
        """Sleep, but not past `stop`: shutting down would otherwise wait for every
        late answer still held back, long after the client gave up on it."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def __aenter__(self) -> FakeSlack:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---------------------------------------------------------------- addresses

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeSlack is not started")
        return self._port

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """Web API base URL for ``AsyncWebClient(base_url=...)``."""
        return f"{self.root_url}/api/"

    def response_url(self, name: str = "default") -> str:
        """A response_url whose posts are recorded as method ``response_url:<name>``."""
        return f"{self.root_url}/response/{name}"

    # ---------------------------------------------------------------- test API

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def script(self, method: str, steps: Iterable[ScriptStep]) -> None:
        """Queue the next answers for ``method`` (or ``response_url:<name>``)."""
        self._scripts.setdefault(method, deque()).extend(steps)

    def pending_script(self, method: str) -> list[ScriptStep]:
        return list(self._scripts.get(method, ()))

    async def wait_for(
        self,
        method: str,
        count: int = 1,
        timeout: float = 10.0,
        where: Callable[[Call], bool] | None = None,
    ) -> list[Call]:
        """Wait until ``count`` answered calls to ``method`` (matching ``where``) arrived.

        Returns all matching calls so far.  Raises ``AssertionError`` with a
        dump of every received call on timeout.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            matching = [
                c
                for c in self.calls
                if c.method == method and c.done and (where is None or where(c))
            ]
            if len(matching) >= count:
                return matching
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(
                    f"timed out after {timeout}s waiting for {count} call(s) to {method}"
                    f"{' matching the predicate' if where else ''}; got {len(matching)}.\n"
                    f"{self.dump_calls()}"
                )
            event = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout=remaining)

    def dump_calls(self) -> str:
        if not self.calls:
            return "no calls received"
        lines = [f"{len(self.calls)} call(s) received:"]
        lines += [f"  {i}: {c.summary()}" for i, c in enumerate(self.calls)]
        if self.errors:
            lines.append("validation errors:")
            lines += [f"  - {e}" for e in self.errors]
        return "\n".join(lines)

    def take_errors(self) -> list[str]:
        """Return and clear the recorded validation errors (for tests expecting them)."""
        errors, self.errors = self.errors, []
        return errors

    def assert_no_errors(self) -> None:
        if self.errors:
            raise AssertionError(
                "FakeSlack received invalid payloads:\n"
                + "\n".join(f"  - {e}" for e in self.errors)
            )

    def add_user(self, user_id: str, **fields: Any) -> dict[str, Any]:
        """Register a user for users.info (fields override the generated profile)."""
        user = self._default_user(user_id)
        profile_fields = fields.pop("profile", {})
        user.update(fields)
        user["profile"].update(profile_fields)
        self.users[user_id] = user
        return user

    def dm_channel_for(self, user_id: str) -> str:
        """The DM channel id conversations.open returns for ``user_id`` (stable)."""
        channel = self.dm_channels.get(user_id)
        if channel is None:
            suffix = user_id[1:] if user_id[:1] in ("U", "W") else user_id
            channel = f"D{suffix}"
            taken = set(self.dm_channels.values())
            n = 2
            while channel in taken:
                channel = f"D{suffix}{n}"
                n += 1
            self.dm_channels[user_id] = channel
        self.members.setdefault(channel, {user_id, self.bot_user_id})
        return channel

    # ------------------------------------------------------------ who sees what

    def add_channel(self, channel: str, members: Iterable[str], *, bot: bool = True) -> None:
        """A channel (or private group) with these members; the bot is in it unless told."""
        self.members[channel] = set(members) | ({self.bot_user_id} if bot else set())

    def join(self, channel: str, *users: str) -> None:
        self.members_of(channel).update(users)

    def members_of(self, channel: str) -> set[str]:
        """Who is in a conversation. A DM (``D…``) is its user and the bot; a channel a
        test never set up has only the bot in it."""
        if channel not in self.members:
            if channel.startswith("D"):
                owner = next((u for u, d in self.dm_channels.items() if d == channel), None)
                if owner is None:
                    owner = "U" + channel[1:]
                    self.dm_channels.setdefault(owner, channel)
                self.members[channel] = {owner, self.bot_user_id}
            else:
                self.members[channel] = {self.bot_user_id}
        return self.members[channel]

    def can_see(self, user: str, channel: str) -> bool:
        return user in self.members_of(channel)

    def visible_to(self, user: str) -> list[dict[str, Any]]:
        """The bot's messages ``user`` can see (each with its ``channel``), in order."""
        found = [
            {**m, "channel": ch} for (ch, _ts), m in self.messages.items() if self.can_see(user, ch)
        ]
        return sorted(found, key=lambda m: m["ts"])

    def unseen(self, *users: str) -> list[dict[str, Any]]:
        """The bot's messages in conversations none of ``users`` is in (for assertions)."""
        return [
            {**m, "channel": ch}
            for (ch, _ts), m in sorted(self.messages.items())
            if not any(self.can_see(u, ch) for u in users)
        ]

    def note_user_message(self, channel: str, ts: str, user: str) -> None:
        """A person's message (an event the test sent), so permalinks to it resolve."""
        self.members_of(channel).add(user)
        self.user_messages.add((channel, ts))

    def click(
        self,
        channel: str,
        message_ts: str,
        action_id: str,
        user: str,
        *,
        user_team: str | None = None,
    ) -> dict[str, Any]:
        """The ``block_actions`` payload Slack sends when ``user`` clicks ``action_id`` on
        the bot message ``(channel, message_ts)`` as it is now. Refuses a click Slack
        could not send: on a message that does not exist or no longer has that button,
        or by someone who is not in the conversation holding it."""
        from tests.slackfake import payloads

        message = self.messages.get((channel, message_ts))
        if message is None:
            raise ClickRefused(f"no message {message_ts} in {channel}")
        if not self.can_see(user, channel):
            raise ClickRefused(f"{user} is not in {channel} and cannot see {message_ts}")
        for block in message.get("blocks") or []:
            elements = block.get("elements", []) if block.get("type") == "actions" else []
            if isinstance(block.get("accessory"), dict):
                elements = [block["accessory"]]  # a section's button
            for element in elements:
                if element.get("action_id") == action_id:
                    payload = payloads.block_action(
                        action_id,
                        str(element.get("value", "")),
                        user=user,
                        channel=channel,
                        message_ts=message_ts,
                        block_id=str(block.get("block_id", "")),
                        message_blocks=message["blocks"],
                        message_text=str(message.get("text", "")),
                        thread_ts=message.get("thread_ts"),
                        team=self.team_id,
                    )
                    if user_team is not None:
                        payload["user"]["team_id"] = user_team
                    self.triggers[payload["trigger_id"]] = (user, time.monotonic())
                    return payload
        raise ClickRefused(f"message {message_ts} in {channel} has no {action_id} button")

    def messages_in(self, channel: str, thread_ts: str | None = None) -> list[dict[str, Any]]:
        """Messages the bot posted in ``channel`` (in a thread if ``thread_ts``), in order."""
        found = [
            m
            for (ch, _ts), m in self.messages.items()
            if ch == channel and (thread_ts is None or m.get("thread_ts") == thread_ts)
        ]
        return sorted(found, key=lambda m: m["ts"])

    def new_ts(self) -> str:
        value = self._next_ts
        if self._ts_clock is not None:
            value = max(value, int(self._ts_clock() * 1_000_000))
        self._next_ts = value + 100
        return f"{value // 1_000_000}.{value % 1_000_000:06d}"

    # ---------------------------------------------------------------- HTTP layer

    @staticmethod
    def _decode_json_fields(params: dict[str, Any]) -> None:
        for key in _JSON_STRING_FIELDS:
            value = params.get(key)
            if isinstance(value, str) and value.strip()[:1] in ("[", "{"):
                with contextlib.suppress(ValueError):
                    params[key] = json.loads(value)

    async def _read_params(self, request: web.Request) -> tuple[dict[str, Any], bytes]:
        params: dict[str, Any] = dict(request.query)
        body = b""
        if request.body_exists:
            body = await request.read()
            ctype = request.content_type
            if ctype == "application/json":
                try:
                    data = json.loads(body or b"{}")
                except ValueError as exc:
                    raise _ApiFailure("invalid_json") from exc
                if not isinstance(data, dict):
                    raise _ApiFailure("invalid_json")
                params.update(data)
            elif ctype == "multipart/form-data":
                form = await request.post()
                for key, value in form.items():
                    params[key] = (
                        value if isinstance(value, str) else getattr(value, "filename", "")
                    )
            else:  # x-www-form-urlencoded (also Slack's default for unlabeled bodies)
                params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        self._decode_json_fields(params)
        return params, body

    def _next_step(self, method: str) -> ScriptStep:
        queue = self._scripts.get(method)
        if queue:
            return queue.popleft()
        return OK()

    def _finish(self, call: Call, status: int, body: Any) -> None:
        call.status = status
        call.response = body
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    async def _play_script(self, call: Call) -> tuple[ScriptStep, web.Response | None]:
        """Take the call's next scripted step and play it: a Delay or Hold waits here,
        a step that decides the answer (a failure, a rate limit...) returns it."""
        step = self._next_step(call.method)
        if isinstance(step, Delay):
            await self._pause(step.seconds)
        if isinstance(step, Hold):
            step.arrived.set()
            await step.release.wait()
        return step, self._scripted_response(call, step)

    def _scripted_response(self, call: Call, step: ScriptStep) -> web.Response | None:
        if isinstance(step, Fail):
            body: dict[str, Any] = {"ok": False, "error": step.error}
            self._finish(call, step.status, body)
            return web.json_response(body, status=step.status)
        if isinstance(step, RateLimited):
            body = {"ok": False, "error": "ratelimited"}
            self._finish(call, 429, body)
            return web.json_response(
                body, status=429, headers={"Retry-After": str(step.retry_after)}
            )
        if isinstance(step, NotJson):
            self._finish(call, step.status, step.body)
            return web.Response(text=step.body, status=step.status, content_type=step.content_type)
        if isinstance(step, ApiError):
            body = {"ok": False, "error": step.error, **step.extra}
            self._finish(call, 200, body)
            return web.json_response(body)
        return None

    def _check_auth(self, call: Call) -> None:
        header = call.headers.get("Authorization")
        if not header:
            raise _ApiFailure("not_authed")
        scheme, _, token = header.partition(" ")
        prefix = "xapp-" if call.method == "apps.connections.open" else "xoxb-"
        if scheme.lower() != "bearer" or not token.startswith(prefix) or len(token) <= 5:
            raise _ApiFailure("invalid_auth")
        if self.valid_tokens is not None and token not in self.valid_tokens:
            raise _ApiFailure("invalid_auth")

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        call = Call(
            method=method,
            params={},
            headers=CIMultiDict(request.headers),
            http_method=request.method,
        )
        self.calls.append(call)
        try:
            call.params, call.body = await self._read_params(request)
        except _ApiFailure as failure:
            body = {"ok": False, "error": failure.error}
            self._finish(call, 200, body)
            return web.json_response(body)
        step, scripted = await self._play_script(call)
        if scripted is not None:
            return scripted
        try:
            self._check_auth(call)
            handler = self._handlers.get(method)
            if handler is None:
                raise _ApiFailure("unknown_method")
            result = await handler(call)
            status = 200
            if isinstance(step, AnswerLate):
                await self._pause(step.seconds)
        except _ApiFailure as failure:
            result = {"ok": False, "error": failure.error, **failure.extra}
            status = failure.status
        except Exception as exc:  # a bug in the fake: make the test fail loudly
            self.errors.append(f"{method}: FakeSlack crashed: {exc!r}")
            result, status = {"ok": False, "error": "fatal_error"}, 500
        self._finish(call, status, result)
        return web.json_response(result, status=status)

    async def _handle_response_url(self, request: web.Request) -> web.Response:
        method = f"response_url:{request.match_info['name']}"
        call = Call(method=method, params={}, headers=CIMultiDict(request.headers))
        self.calls.append(call)
        try:
            call.params, call.body = await self._read_params(request)
        except _ApiFailure:
            body: dict[str, Any] = {"ok": False, "error": "invalid_payload"}
            self._finish(call, 400, body)
            return web.json_response(body, status=400)
        _, scripted = await self._play_script(call)
        if scripted is not None:
            return scripted
        params = call.params
        status = 200
        if not (params.get("text") or params.get("blocks") or params.get("delete_original")):
            status, body = 400, {"ok": False, "error": "no_text"}
        else:
            errors = self._record(method, validate_message(params, require_text=False))
            if errors:
                status, body = 400, self._invalid_blocks(errors)
            else:
                body = {"ok": True}
        self._finish(call, status, body)
        return web.json_response(body, status=status)

    # ---------------------------------------------------------------- helpers

    def _record(self, method: str, errors: list[str]) -> list[str]:
        self.errors.extend(f"{method}: {e}" for e in errors)
        return errors

    @staticmethod
    def _invalid_blocks_details(errors: list[str]) -> dict[str, Any]:
        return {
            "errors": errors,
            "response_metadata": {"messages": [f"[ERROR] {e}" for e in errors]},
        }

    @classmethod
    def _invalid_blocks(cls, errors: list[str]) -> dict[str, Any]:
        return {"ok": False, "error": "invalid_blocks", **cls._invalid_blocks_details(errors)}

    def _resolve_channel(self, params: Mapping[str, Any], key: str = "channel") -> str:
        channel = params.get(key)
        if not isinstance(channel, str) or not channel:
            raise _ApiFailure("channel_not_found")
        if channel in self.unknown_channels:
            raise _ApiFailure("channel_not_found")
        if channel[:1] in ("U", "W"):  # posting to a user id posts in the DM with them
            if channel in self.unknown_users:
                raise _ApiFailure("channel_not_found")
            return self.dm_channel_for(channel)
        return channel

    def _validate_chat(self, method: str, params: Mapping[str, Any]) -> None:
        if not (params.get("text") or params.get("blocks") or params.get("attachments")):
            raise _ApiFailure("no_text")
        errors = self._record(method, validate_message(params, require_text=True))
        if errors:
            raise _ApiFailure("invalid_blocks", **self._invalid_blocks_details(errors))

    def _bot_profile(self) -> dict[str, Any]:
        return {
            "id": self.bot_id,
            "deleted": False,
            "name": self.bot_name,
            "updated": 1700000000,
            "app_id": self.app_id,
            "icons": {"image_36": "https://fake.slack.test/bot_36.png"},
            "team_id": self.team_id,
        }

    @staticmethod
    def _text_and_warnings(params: Mapping[str, Any]) -> tuple[str, list[str]]:
        text = params.get("text") or ""
        if not isinstance(text, str):
            text = str(text)
        if len(text) > MAX_MESSAGE_TEXT:
            return text[:MAX_MESSAGE_TEXT], ["message_truncated"]
        return text, []

    def _default_user(self, user_id: str) -> dict[str, Any]:
        name = f"user{user_id.lower()}"
        real_name = f"User {user_id}"
        return {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "deleted": False,
            "color": "9f69e7",
            "real_name": real_name,
            "tz": "America/Los_Angeles",
            "tz_label": "Pacific Standard Time",
            "tz_offset": -28800,
            "profile": {
                "real_name": real_name,
                "real_name_normalized": real_name,
                "display_name": name,
                "display_name_normalized": name,
                "team": self.team_id,
            },
            "is_admin": False,
            "is_owner": False,
            "is_primary_owner": False,
            "is_restricted": False,
            "is_ultra_restricted": False,
            "is_bot": user_id == self.bot_user_id,
            "is_app_user": False,
            "updated": 1700000000,
        }

    # ---------------------------------------------------------------- methods

    async def _apps_connections_open(self, call: Call) -> dict[str, Any]:
        return {"ok": True, "url": f"ws://127.0.0.1:{self.port}/link"}

    async def _auth_test(self, call: Call) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://fake.slack.test/",
            "team": self.team_name,
            "user": self.bot_name,
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    async def _chat_post_message(self, call: Call) -> dict[str, Any]:
        params = call.params
        channel = self._resolve_channel(params)
        if not self.can_see(self.bot_user_id, channel):
            raise _ApiFailure("not_in_channel")
        self._validate_chat(call.method, params)
        text, warnings = self._text_and_warnings(params)
        ts = self.new_ts()
        message: dict[str, Any] = {
            "user": self.bot_user_id,
            "type": "message",
            "ts": ts,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "text": text,
            "team": self.team_id,
            "bot_profile": self._bot_profile(),
        }
        if params.get("blocks"):
            message["blocks"] = params["blocks"]
        if params.get("attachments"):
            message["attachments"] = params["attachments"]
        thread_ts = params.get("thread_ts")
        if thread_ts:
            message["thread_ts"] = str(thread_ts)
            parent = self.messages.get((channel, str(thread_ts)))
            message["parent_user_id"] = parent["user"] if parent else self.bot_user_id
        if params.get("metadata"):
            message["metadata"] = self._checked_metadata(params["metadata"])
        self.messages[(channel, ts)] = message
        result: dict[str, Any] = {"ok": True, "channel": channel, "ts": ts, "message": message}
        if warnings:
            result["warning"] = ",".join(warnings)
            result["response_metadata"] = {"warnings": warnings}
        return result

    async def _chat_update(self, call: Call) -> dict[str, Any]:
        params = call.params
        channel = self._resolve_channel(params)
        ts = params.get("ts")
        if not isinstance(ts, str) or (channel, ts) not in self.messages:
            raise _ApiFailure("message_not_found")
        self._validate_chat(call.method, params)
        message = self.messages[(channel, ts)]
        text, warnings = self._text_and_warnings(params)
        if "text" in params:
            message["text"] = text
        if "blocks" in params:
            if params["blocks"]:
                message["blocks"] = params["blocks"]
            else:
                message.pop("blocks", None)
        if "attachments" in params:
            message["attachments"] = params["attachments"]
        message["edited"] = {"user": self.bot_user_id, "ts": self.new_ts()}
        result: dict[str, Any] = {
            "ok": True,
            "channel": channel,
            "ts": ts,
            "text": message.get("text", ""),
            "message": {k: v for k, v in message.items() if k != "ts"},
        }
        if warnings:
            result["response_metadata"] = {"warnings": warnings}
        return result

    async def _chat_post_ephemeral(self, call: Call) -> dict[str, Any]:
        params = call.params
        channel = self._resolve_channel(params)
        user = params.get("user")
        if not isinstance(user, str) or not user or user in self.unknown_users:
            raise _ApiFailure("user_not_in_channel")
        if not self.can_see(user, channel):
            raise _ApiFailure("user_not_in_channel")
        self._validate_chat(call.method, params)
        text, _ = self._text_and_warnings(params)
        ts = self.new_ts()
        self.ephemerals.append(
            {
                "channel": channel,
                "user": user,
                "message_ts": ts,
                "text": text,
                "blocks": params.get("blocks"),
                "thread_ts": params.get("thread_ts"),
            }
        )
        return {"ok": True, "message_ts": ts}

    async def _chat_get_permalink(self, call: Call) -> dict[str, Any]:
        params = call.params
        channel = self._resolve_channel(params)
        ts = params.get("message_ts")
        if not isinstance(ts, str) or not ts or not self._message_exists(channel, ts):
            raise _ApiFailure("message_not_found")
        permalink = f"https://fake.slack.test/archives/{channel}/p{ts.replace('.', '')}"
        stored = self.messages.get((channel, ts))
        if stored and stored.get("thread_ts"):
            permalink += f"?thread_ts={stored['thread_ts']}&cid={channel}"
        return {"ok": True, "channel": channel, "permalink": permalink}

    def _message_exists(self, channel: str, ts: str) -> bool:
        """A bot message, a person's message a test noted, or a thread the bot replied in."""
        if (channel, ts) in self.messages or (channel, ts) in self.user_messages:
            return True
        return any(
            ch == channel and m.get("thread_ts") == ts for (ch, _), m in self.messages.items()
        )

    async def _conversations_open(self, call: Call) -> dict[str, Any]:
        params = call.params
        if params.get("channel"):
            channel = self._resolve_channel(params)
            return {"ok": True, "channel": {"id": channel}}
        users_param = params.get("users")
        if isinstance(users_param, list):
            users = [str(u) for u in users_param]
        elif isinstance(users_param, str):
            users = [u.strip() for u in users_param.split(",") if u.strip()]
        else:
            users = []
        if not users:
            raise _ApiFailure("users_list_not_supplied")
        for user in users:
            if user in self.unknown_users:
                raise _ApiFailure("user_not_found")
        if len(users) > 8:
            raise _ApiFailure("too_many_users")
        if len(users) == 1:
            already = users[0] in self.dm_channels
            channel_id = self.dm_channel_for(users[0])
        else:
            already = False
            channel_id = "G" + "".join(u[1:] for u in sorted(users))
        result: dict[str, Any] = {"ok": True, "channel": {"id": channel_id}}
        if already:
            result["no_op"] = True
            result["already_open"] = True
        return result

    # ---------------------------------------------------------------- history

    @staticmethod
    def _checked_metadata(metadata: Any) -> dict[str, Any]:
        """Message metadata as chat.postMessage accepts it: an event_type and an object."""
        if not isinstance(metadata, dict):
            raise _ApiFailure("invalid_metadata_format")
        event_type = metadata.get("event_type")
        payload = metadata.get("event_payload")
        if not isinstance(event_type, str) or not event_type or not isinstance(payload, dict):
            raise _ApiFailure("invalid_metadata_schema")
        return {"event_type": event_type, "event_payload": copy.deepcopy(payload)}

    def _readable_channel(self, params: Mapping[str, Any]) -> str:
        """Refuse history as Slack does: the history scope of that conversation type,
        then membership (a DM between others or a private channel is not found)."""
        channel = params.get("channel")
        if not isinstance(channel, str) or not channel or channel in self.unknown_channels:
            raise _ApiFailure("channel_not_found")
        needed = {"D": "im:history", "C": "channels:history", "G": "groups:history"}.get(
            channel[:1]
        )
        if needed is None:
            raise _ApiFailure("channel_not_found")
        if needed not in self.scopes:
            raise _ApiFailure(
                "missing_scope", needed=needed, provided=",".join(sorted(self.scopes))
            )
        if channel[:1] == "D":
            if channel in self.foreign_dms:
                raise _ApiFailure("channel_not_found")
        elif channel not in self.history_channels:
            raise _ApiFailure("not_in_channel" if channel[:1] == "C" else "channel_not_found")
        return channel

    @staticmethod
    def _ts_window(params: Mapping[str, Any]) -> Callable[[str], bool]:
        def number(key: str, default: float) -> float:
            value = params.get(key)
            if value in (None, ""):
                return default
            try:
                return float(str(value))
            except ValueError:
                raise _ApiFailure(f"invalid_ts_{key}") from None

        oldest, latest = number("oldest", 0.0), number("latest", float("inf"))
        inclusive = str(params.get("inclusive", "")).lower() in ("1", "true")

        def inside(ts: str) -> bool:
            t = float(ts)
            if inclusive:
                return oldest <= t <= latest
            return oldest < t < latest

        return inside

    @staticmethod
    def _page(
        params: Mapping[str, Any], messages: list[dict[str, Any]], default_limit: int
    ) -> dict[str, Any]:
        """Cursor pagination; metadata only with include_all_metadata, as Slack does."""
        try:
            limit = int(params.get("limit") or default_limit)
            start = int(str(params.get("cursor") or "0").removeprefix("offset:"))
        except ValueError:
            raise _ApiFailure("invalid_arguments") from None
        limit = max(1, min(limit, 999))
        page = messages[start : start + limit]
        with_metadata = str(params.get("include_all_metadata", "")).lower() in ("1", "true")
        shown = []
        for message in page:
            shown_message = copy.deepcopy(message)
            if not with_metadata:
                shown_message.pop("metadata", None)
            shown.append(shown_message)
        has_more = start + limit < len(messages)
        return {
            "ok": True,
            "messages": shown,
            "has_more": has_more,
            "response_metadata": {"next_cursor": f"offset:{start + limit}" if has_more else ""},
        }

    async def _conversations_history(self, call: Call) -> dict[str, Any]:
        """Top-level messages (and thread parents), newest first."""
        channel = self._readable_channel(call.params)
        inside = self._ts_window(call.params)
        found = [
            m
            for (ch, ts), m in self.messages.items()
            if ch == channel and m.get("thread_ts") in (None, ts) and inside(ts)
        ]
        found.sort(key=lambda m: float(m["ts"]), reverse=True)
        return {**self._page(call.params, found, 100), "pin_count": 0}

    async def _conversations_replies(self, call: Call) -> dict[str, Any]:
        """A thread, oldest first. The fake knows only the bot's own posts: a thread whose
        parent someone else wrote is answered with its known replies."""
        channel = self._readable_channel(call.params)
        ts = call.params.get("ts")
        if not isinstance(ts, str) or not ts:
            raise _ApiFailure("thread_not_found")
        parent = self.messages.get((channel, ts))
        if parent is not None and parent.get("thread_ts") not in (None, ts):
            ts = str(parent["thread_ts"])
            parent = self.messages.get((channel, ts))
        replies = [
            m
            for (ch, m_ts), m in self.messages.items()
            if ch == channel and m.get("thread_ts") == ts and m_ts != ts
        ]
        if parent is None and not replies:
            raise _ApiFailure("thread_not_found")
        inside = self._ts_window(call.params)
        replies = sorted((m for m in replies if inside(m["ts"])), key=lambda m: float(m["ts"]))
        thread = ([parent] if parent is not None else []) + replies
        return self._page(call.params, thread, 1000)

    async def _users_info(self, call: Call) -> dict[str, Any]:
        user_id = call.params.get("user")
        if not isinstance(user_id, str) or not user_id or user_id in self.unknown_users:
            raise _ApiFailure("user_not_found")
        user = self.users.get(user_id) or self._default_user(user_id)
        return {"ok": True, "user": copy.deepcopy(user)}

    def age_trigger(self, trigger_id: str, seconds: float) -> None:
        """Make a click's trigger_id older (e.g. past Slack's 3 seconds) without waiting."""
        user, issued = self.triggers[trigger_id]
        self.triggers[trigger_id] = (user, issued - seconds)

    async def _views_open(self, call: Call) -> dict[str, Any]:
        """A modal needs a trigger_id from an interaction of the last 3 seconds, used once."""
        trigger = call.params.get("trigger_id")
        if not isinstance(trigger, str) or trigger not in self.triggers:
            raise _ApiFailure("invalid_trigger_id")
        user, issued = self.triggers.pop(trigger)
        if time.monotonic() - issued > TRIGGER_TTL:
            raise _ApiFailure("expired_trigger_id")
        view = call.params.get("view")
        errors = self._record(call.method, validate_view(view, expected_type="modal"))
        if errors:
            raise _ApiFailure("invalid_blocks", **self._invalid_blocks_details(errors))
        if isinstance(view, str):
            view = json.loads(view)
        assert isinstance(view, dict)
        self._view_seq += 1
        opened = {
            **copy.deepcopy(view),
            "id": f"V{self._view_seq:08d}",
            "team_id": self.team_id,
            "user": user,
            "state": {"values": {}},
            "hash": f"{int(time.time())}.{self._view_seq:08x}",
            "app_id": self.app_id,
            "bot_id": self.bot_id,
        }
        self.opened_views.append(opened)
        return {"ok": True, "view": opened}

    def submit_view(
        self, view: dict[str, Any], values: dict[str, dict[str, str]]
    ) -> dict[str, Any]:
        """The ``view_submission`` payload Slack sends when the modal's user submits
        ``values`` (block_id -> action_id -> typed text)."""
        from tests.slackfake import payloads

        return payloads.view_submission(
            view, user=str(view["user"]), values=values, team=self.team_id
        )

    async def _views_publish(self, call: Call) -> dict[str, Any]:
        params = call.params
        user_id = params.get("user_id")
        if not isinstance(user_id, str) or not user_id:
            raise _ApiFailure(
                "invalid_arguments",
                response_metadata={"messages": ["[ERROR] missing required field: user_id"]},
            )
        if user_id in self.unknown_users:
            raise _ApiFailure("user_not_found")
        view = params.get("view")
        errors = self._record(call.method, validate_view(view, expected_type="home"))
        if errors:
            raise _ApiFailure("invalid_blocks", **self._invalid_blocks_details(errors))
        assert isinstance(view, dict)
        self._view_seq += 1
        view_id = f"V{self._view_seq:08d}"
        published: dict[str, Any] = {
            "id": view_id,
            "team_id": self.team_id,
            "type": view["type"],
            "blocks": view["blocks"],
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "state": {"values": {}},
            "hash": f"{int(time.time())}.{self._view_seq:08x}",
            "title": {"type": "plain_text", "text": "View Title", "emoji": True},
            "clear_on_close": False,
            "notify_on_close": False,
            "close": None,
            "submit": None,
            "previous_view_id": None,
            "root_view_id": view_id,
            "app_id": self.app_id,
            "external_id": view.get("external_id", ""),
            "app_installed_team_id": self.team_id,
            "bot_id": self.bot_id,
        }
        self.home_views[user_id] = published
        return {"ok": True, "view": published}
