"""The API's endpoints: parse and authorize, call the same TaskService as Slack, render.

A caller sees only their own tasks: anyone else's task answers 404, exactly like a
task that does not exist, so ids leak nothing. Approvals answer 403 to someone who
may not decide them (the approval is not theirs to see either way; the rules, and
the message, are core's).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import ipaddress
import json
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from bot.api import models as m
from bot.api.auth import authenticate
from bot.api.errors import ApiError
from bot.container import Container
from bot.webhooks import is_public
from core.approvals import Decision, DecisionResult
from core.orchestrator import Outcome, Request
from core.records import Approval, Conversation, Task
from core.task_view import amount_string, iso, task_view

CONTAINER = web.AppKey("container", Container)
#: what the call holds while it is answered (bot.api.answering), entered by `_user`
ANSWERING = web.RequestKey("answering", contextlib.ExitStack)
#: ids fit PostgreSQL's INTEGER: a longer one is simply not found
ROUTE_ID = r"{id:\d{1,9}}"


class _Empty(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Endpoint:
    """One route, described once: aiohttp serves it and openapi.py documents it."""

    method: str
    path: str
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    summary: str
    response: type[BaseModel]
    status: int = 200
    body: type[BaseModel] | None = None
    #: False when the body may be left out (_body then gives the model's defaults)
    body_required: bool = True
    query: type[BaseModel] | None = None
    errors: tuple[int, ...] = (401,)
    headers: tuple[str, ...] = ()
    public: bool = False


def _container(request: web.Request) -> Container:
    return request.app[CONTAINER]


async def _user(request: web.Request) -> str:
    """The caller, once its token checks out: from then on it is being answered."""
    user = await authenticate(_container(request).uow_factory, request)
    if (answering_now := request.get(ANSWERING)) is not None:
        answering_now.enter_context(_container(request).uow_factory.front_door.serving())
    return user


async def _body(request: web.Request, model: type[BaseModel]) -> Any:
    limit = _container(request).settings.api_max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "too_large", f"The request body is over {limit} bytes.")
    chunks: list[bytes] = []
    size = 0
    # the client's pace, not ours: background work need not wait for it meanwhile
    with _container(request).uow_factory.front_door.aside():
        # to the end of the stream: one read() returns only what has arrived so far
        async for chunk in request.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > limit:
                raise ApiError(413, "too_large", f"The request body is over {limit} bytes.")
            chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        if model is _Empty or model is m.DenyBody:
            return model()
        raise ApiError(400, "bad_json", "Send a JSON object as the request body.")
    try:
        parsed = json.loads(raw, parse_constant=_not_json)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "bad_json", "The request body is not valid JSON.") from exc
    if _has_nul(parsed):
        raise ApiError(400, "bad_json", "The request body contains a NUL character.")
    if not isinstance(parsed, dict):
        raise ApiError(400, "bad_json", "The request body must be a JSON object.")
    return model.model_validate(parsed)


def _not_json(constant: str) -> Any:
    """NaN and Infinity: Python reads them, JSON (and PostgreSQL) does not."""
    raise ValueError(f"{constant} is not JSON")


def _has_nul(value: Any) -> bool:
    """PostgreSQL stores no NUL in text or JSON; refused here rather than failing there."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _query(request: web.Request, model: type[BaseModel]) -> Any:
    return model.model_validate(dict(request.query))


def _path_id(request: web.Request) -> int:
    return int(request.match_info["id"])


async def _own_task(request: web.Request, user: str, task_id: int) -> dict[str, Any]:
    """The task as the API shows it; 404 unless it is the caller's."""
    async with _container(request).uow_factory(read_only=True) as uow:
        task = await uow.tasks.get(task_id)
        if task is None or task.requester != user:
            raise ApiError(404, "not_found", f"There is no task {task_id} among your tasks.")
        return await task_view(uow, task)


def _json(model: BaseModel, status: int = 200) -> web.Response:
    return web.json_response(model.model_dump(mode="json"), status=status)


# ----------------------------------------------------------------------------- tasks


async def create_task(request: web.Request) -> web.Response:
    user = await _user(request)
    container = _container(request)
    body: m.TaskCreate = await _body(request, m.TaskCreate)
    webhook = str(body.webhook_url) if body.webhook_url is not None else None
    if webhook is not None:
        await _check_webhook(container, webhook)
    key = request.headers.get("Idempotency-Key")
    event_id = None
    if key is not None:
        if not 1 <= len(key) <= 255:
            raise ApiError(400, "bad_idempotency_key", "Idempotency-Key must be 1–255 characters.")
        digest = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
        async with container.uow_factory(urgent=True) as uow:
            bound = await uow.api.claim_idempotency_key(user, key, digest, container.clock.now())
        if bound != digest:
            raise ApiError(
                409,
                "idempotency_conflict",
                "This Idempotency-Key was used with a different request body.",
            )
        event_id = "api:" + hashlib.sha256(f"{user}\0{key}".encode()).hexdigest()[:48]
        async with container.uow_factory(read_only=True) as uow:
            earlier = await uow.tasks.by_source_event(event_id)
        if earlier is not None:
            return await _accepted(request, user, earlier, replayed=True)
    submission = await container.service.submit(
        Request(
            text=body.user_message,
            conversation=Conversation(requester=user, channel=""),
            event_id=event_id,
            title=body.title,
            command=body.command,
            context=body.context,
        )
    )
    if submission.outcome is Outcome.REFUSED or submission.root is None:
        reason = submission.reason or "This request was refused when it was first sent."
        raise ApiError(422, "not_understood", reason)
    if webhook is not None:
        async with container.uow_factory(urgent=True) as uow:
            await uow.api.set_webhook(submission.root.id, webhook)
    container.service.start(submission)
    return await _accepted(
        request, user, submission.root, replayed=submission.outcome is Outcome.DUPLICATE
    )


async def _accepted(request: web.Request, user: str, root: Task, *, replayed: bool) -> web.Response:
    view = await _own_task(request, user, root.id)
    response = _json(m.TaskOut.model_validate(view), 202)
    response.headers["Location"] = f"/api/v1/tasks/{root.id}"
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


async def _check_webhook(container: Container, url: str) -> None:
    if container.settings.webhook_secret is None:
        raise ApiError(
            422,
            "webhooks_unavailable",
            "This server has no TASKBOT_WEBHOOK_SECRET, so it cannot sign webhooks.",
        )
    if container.settings.webhook_allow_private:
        return
    host = urlsplit(url).hostname or ""
    try:
        literal = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    try:
        if literal is not None:
            addresses = [str(literal)]
        else:
            infos = await asyncio.wait_for(
                asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM), 5
            )
            addresses = [str(info[4][0]) for info in infos]
    except (OSError, TimeoutError):
        return  # unresolvable now; checked again (after resolution) on every delivery
    if not all(is_public(a) for a in addresses):
        raise ApiError(
            422,
            "webhook_refused",
            "webhook_url resolves to a private, loopback or link-local address.",
        )


async def get_task(request: web.Request) -> web.Response:
    user = await _user(request)
    return _json(m.TaskOut.model_validate(await _own_task(request, user, _path_id(request))))


def _cursor(task_id: int) -> str:
    return base64.urlsafe_b64encode(f"t{task_id}".encode()).decode().rstrip("=")


def _after(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if raw.startswith("t") and raw[1:].isdigit() and len(raw) <= 10:
            return int(raw[1:])
    except (ValueError, UnicodeDecodeError):
        pass
    raise ApiError(400, "bad_cursor", "That cursor is not one this API handed out.")


async def list_tasks(request: web.Request) -> web.Response:
    user = await _user(request)
    query: m.TaskListQuery = _query(request, m.TaskListQuery)
    before = _after(query.cursor)
    async with _container(request).uow_factory(read_only=True) as uow:
        ids = await uow.api.root_ids(user, query.status, before, query.limit + 1)
        tasks = await uow.tasks.get_many(ids[: query.limit])
        views = [await task_view(uow, t) for t in sorted(tasks, key=lambda t: -t.id)]
    more = len(ids) > query.limit
    page = m.TaskPage(
        tasks=[m.TaskOut.model_validate(v) for v in views],
        next_cursor=_cursor(views[-1]["id"]) if more and views else None,
    )
    return _json(page)


async def cancel_task(request: web.Request) -> web.Response:
    user = await _user(request)
    await _body(request, _Empty)
    task_id = _path_id(request)
    await _own_task(request, user, task_id)
    outcome = await _container(request).service.cancel(user, task_id)
    if not outcome.cancelled:
        raise ApiError(409, "not_cancellable", outcome.message)
    view = await _own_task(request, user, task_id)
    return _json(m.ActionResult(message=outcome.message, task=m.TaskOut.model_validate(view)))


async def retry_task(request: web.Request) -> web.Response:
    user = await _user(request)
    await _body(request, _Empty)
    task_id = _path_id(request)
    outcome = await _container(request).service.retry(user, task_id)
    if not outcome.retried:
        status = 404 if outcome.reason == "not_found" else 409
        raise ApiError(status, outcome.reason or "not_retryable", outcome.message)
    assert outcome.root_id is not None
    view = await _own_task(request, user, outcome.root_id)
    return _json(m.ActionResult(message=outcome.message, task=m.TaskOut.model_validate(view)), 202)


# ------------------------------------------------------------------------- approvals


def _approval(a: Approval) -> m.ApprovalOut:
    return m.ApprovalOut(
        id=a.id,
        task_id=a.task_id,
        requester=a.requester,
        approvers=list(a.approvers),
        amount=amount_string(a.amount_cents),
        currency=a.currency,
        status=a.status,
        decided_by=a.decided_by,
        created_at=iso(a.created_at) or "",
        expires_at=iso(a.expires_at) or "",
    )


async def list_approvals(request: web.Request) -> web.Response:
    user = await _user(request)
    _query(request, m.ApprovalListQuery)
    approvals = await _container(request).service.decidable_approvals(user)
    return _json(m.ApprovalPage(approvals=[_approval(a) for a in approvals]))


_DECISION_STATUS = {
    DecisionResult.NOT_FOUND: (404, "not_found"),
    DecisionResult.NOT_ALLOWED: (403, "forbidden"),
    DecisionResult.ALREADY_DECIDED: (409, "already_decided"),
    DecisionResult.EXPIRED: (409, "expired"),
}


def _decide(decision: Decision) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        user = await _user(request)
        body = await _body(request, m.DenyBody if decision is Decision.DENY else _Empty)
        reason = (getattr(body, "reason", None) or "").strip()
        # The same core decision the Slack buttons make: same rules, same audit, and the
        # same ApprovalDecided notice, which updates the Slack approval message in place.
        outcome = await _container(request).service.decide(
            _path_id(request), user, decision, reason=reason
        )
        if outcome.result is not DecisionResult.DECIDED or outcome.approval is None:
            status, code = _DECISION_STATUS.get(outcome.result, (409, "not_decided"))
            raise ApiError(status, code, outcome.message)
        return _json(m.DecisionOut(message=outcome.message, approval=_approval(outcome.approval)))

    # the operationId (openapi.py): generated clients call it approve() / deny()
    handler.__name__ = decision.value
    return handler


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "POST",
        "/tasks",
        create_task,
        "Submit a request",
        m.TaskOut,
        202,
        body=m.TaskCreate,
        errors=(400, 401, 409, 413, 422),
        headers=("Idempotency-Key",),
    ),
    Endpoint(
        "GET",
        "/tasks",
        list_tasks,
        "The caller's requests, newest first",
        m.TaskPage,
        query=m.TaskListQuery,
        errors=(400, 401, 422),
    ),
    Endpoint("GET", f"/tasks/{ROUTE_ID}", get_task, "One task", m.TaskOut, errors=(401, 404)),
    Endpoint(
        "POST",
        f"/tasks/{ROUTE_ID}/cancel",
        cancel_task,
        "Cancel a pending request",
        m.ActionResult,
        errors=(401, 404, 409, 422),
    ),
    Endpoint(
        "POST",
        f"/tasks/{ROUTE_ID}/retry",
        retry_task,
        "Re-run a failed request from its failed steps",
        m.ActionResult,
        202,
        errors=(401, 404, 409, 422),
    ),
    Endpoint(
        "GET",
        "/approvals",
        list_approvals,
        "Pending approvals the caller may decide",
        m.ApprovalPage,
        query=m.ApprovalListQuery,
        errors=(401, 422),
    ),
    Endpoint(
        "POST",
        f"/approvals/{ROUTE_ID}/approve",
        _decide(Decision.APPROVE),
        "Approve",
        m.DecisionOut,
        errors=(401, 403, 404, 409, 422),
    ),
    Endpoint(
        "POST",
        f"/approvals/{ROUTE_ID}/deny",
        _decide(Decision.DENY),
        "Deny, optionally saying why",
        m.DecisionOut,
        body=m.DenyBody,
        body_required=False,
        errors=(401, 403, 404, 409, 422),
    ),
)
