"""The HTTP API over real HTTP on the running app: the engine's seed examples, auth,
idempotency, cancel, retry, approvals, pagination, validation and the OpenAPI document."""

from __future__ import annotations

import json

from openapi_spec_validator import validate

from tests.e2e.api_helpers import Api, make_flaky
from tests.e2e.test_approval_buttons import ask_to_buy
from tests.e2e.test_tasks_command import tasks


def actions(task: dict[str, object]) -> list[str]:
    return [a["action"] for a in task["audit"]]  # type: ignore[index, union-attr]


async def test_seed_simple_research_completes_with_a_zero_transaction_and_audit(
    api: Api,
) -> None:
    created = await api.submit("research best laptops")
    assert created["status"] == "PENDING" and created["agent"] == "research"
    await api.harness.settle()
    task = await api.task(created["id"])
    assert task["status"] == "COMPLETED"
    assert task["result"]["summary"] and isinstance(task["result"]["data"], dict)
    assert task["progress"] == {"done": 1, "total": 1}
    assert [(t["amount"], t["currency"]) for t in task["transactions"]] == [("0.00", "USD")]
    assert actions(task) == ["created", "started", "completed", "transaction_recorded"]
    assert task["subtasks"] == [] and task["parent_id"] is None


async def test_seed_research_and_email_makes_two_steps_and_the_email_quotes_the_research(
    api: Api,
) -> None:
    created = await api.submit("Research best laptops and draft email to john@example.com")
    await api.harness.settle()
    root = await api.task(created["id"])
    assert root["status"] == "COMPLETED" and root["progress"] == {"done": 2, "total": 2}
    research, email = root["subtasks"]
    assert research["agent"] == "research" and email["agent"] == "communication"
    assert email["depends_on"] == [research["id"]] and research["depends_on"] == []
    assert research["parent_id"] == root["id"] == email["parent_id"]
    started = {s["agent"]: s["audit"][1]["at"] for s in (research, email)}
    assert started["research"] <= started["communication"]
    finding = research["result"]["summary"].splitlines()[0]
    assert finding and finding in email["result"]["data"]["email"]["body"]


async def test_auth_failures_are_401_json(api: Api) -> None:
    for token in (
        None,
        "nonsense",
        "tb_1_" + "x" * 43,
        api.token + "x",
        "tb_9" * 9 + "_" + "x" * 43,
    ):
        status, body, _ = await api.call("GET", "/tasks", token=token)
        assert status == 401 and body["error"]["code"] == "unauthorized", token
    async with api.session.get(
        api.harness.url + "/api/v1/tasks", headers={"Authorization": "Basic abc"}
    ) as response:
        assert response.status == 401
    token_id = int(api.token.split("_")[1])
    async with api.harness.running.container.uow_factory() as uow:
        assert await uow.api.revoke_token(token_id, api.harness.running.container.clock.now())
    status, body, _ = await api.call("GET", "/tasks")
    assert status == 401 and "revoked" in body["error"]["message"]


async def test_idempotency_key_same_body_same_task_different_body_409(api: Api) -> None:
    key = {"Idempotency-Key": "order-7"}
    s1, first, _ = await api.call(
        "POST", "/tasks", {"user_message": "research keyboards"}, headers=key
    )
    s2, again, h2 = await api.call(
        "POST", "/tasks", {"user_message": "research keyboards"}, headers=key
    )
    assert (s1, s2) == (202, 202) and first["id"] == again["id"]
    assert h2["Idempotent-Replayed"] == "true"
    s3, conflict, _ = await api.call(
        "POST", "/tasks", {"user_message": "research monitors"}, headers=key
    )
    assert s3 == 409 and conflict["error"]["code"] == "idempotency_conflict"
    await api.harness.settle()
    _s, page, _ = await api.call("GET", "/tasks")
    assert [t["id"] for t in page["tasks"]] == [first["id"]]
    # the key is the caller's own: another user's same key is a different request
    other = await api.as_user("U2")
    s4, theirs, _ = await other.call(
        "POST", "/tasks", {"user_message": "research monitors"}, headers=key
    )
    assert s4 == 202 and theirs["id"] != first["id"]


async def test_only_the_requester_sees_or_acts_on_a_task(api: Api) -> None:
    created = await api.submit("buy 2 monitors for $300")
    other = await api.as_user("U2")
    for method, path in (
        ("GET", f"/tasks/{created['id']}"),
        ("POST", f"/tasks/{created['id']}/cancel"),
        ("POST", f"/tasks/{created['id']}/retry"),
    ):
        status, body, _ = await other.call(method, path)
        assert status == 404 and body["error"]["code"] == "not_found", path
    status, body, _ = await api.call("GET", "/tasks/999999")
    assert status == 404


async def test_cancel_a_pending_purchase(api: Api) -> None:
    created = await api.submit("buy 2 monitors for $300")
    await api.harness.settle()
    assert (await api.task(created["id"]))["status"] == "PENDING"  # waiting for approval
    status, body, _ = await api.call("POST", f"/tasks/{created['id']}/cancel")
    assert status == 200 and body["task"]["status"] == "CANCELLED"
    assert "cancelled" in actions(body["task"])
    status, body, _ = await api.call("POST", f"/tasks/{created['id']}/cancel")
    assert status == 409 and body["error"]["code"] == "not_cancellable"


async def test_retry_reruns_only_the_failed_step_of_a_request(api: Api) -> None:
    research = make_flaky(api.harness, "research", failures=0)
    email = make_flaky(api.harness, "communication", failures=1)
    created = await api.submit("Research best laptops and draft email to john@example.com")
    await api.harness.settle()
    failed = await api.task(created["id"])
    assert failed["status"] == "FAILED" and failed["progress"] == {"done": 1, "total": 2}
    assert [s["status"] for s in failed["subtasks"]] == ["COMPLETED", "FAILED"]
    research_result = failed["subtasks"][0]["result"]

    status, body, _ = await api.call("POST", f"/tasks/{created['id']}/retry")
    assert status == 202, body
    await api.harness.settle()
    done = await api.task(created["id"])
    assert done["status"] == "COMPLETED" and done["error"] is None
    assert (research.runs, email.runs) == (1, 2)
    assert done["subtasks"][0]["result"] == research_result
    assert "retried" in actions(done) and "retried" in actions(done["subtasks"][1])
    assert "retried" not in actions(done["subtasks"][0])
    retried = next(a for a in done["subtasks"][1]["audit"] if a["action"] == "retried")
    assert retried["actor"] == "U1" and retried["detail"]["change"] == "FAILED->PENDING"

    status, body, _ = await api.call("POST", f"/tasks/{created['id']}/retry")
    assert status == 409 and "only a failed request" in body["error"]["message"]


async def test_retry_of_a_step_that_fails_for_good_fails_again(api: Api) -> None:
    research = make_flaky(api.harness, "research", failures=99)
    created = await api.submit("research best laptops")
    await api.harness.settle()
    assert (await api.task(created["id"]))["status"] == "FAILED"
    for _ in range(2):
        status, body, _ = await api.call("POST", f"/tasks/{created['id']}/retry")
        assert status == 202, body
        await api.harness.settle()
        task = await api.task(created["id"])
        assert task["status"] == "FAILED" and "backend unavailable" in task["error"]
    assert research.runs == 3


async def test_an_approved_purchase_that_failed_is_never_rerun(api: Api) -> None:
    purchase = make_flaky(api.harness, "purchase", failures=1)
    created, _approval = await api.decided_purchase("approve")
    await api.harness.settle()
    assert (await api.task(created["id"]))["status"] == "FAILED" and purchase.runs == 1
    status, body, _ = await api.call("POST", f"/tasks/{created['id']}/retry")
    assert status == 409 and "may have spent money" in body["error"]["message"]
    await api.harness.settle()
    assert purchase.runs == 1


async def test_approve_over_the_api_updates_the_slack_message(api: Api) -> None:
    h = api.harness
    _thread, message = await ask_to_buy(h)  # U1 asks in Slack, as in the button tests
    approver = await api.as_user("UAPPROVER")
    status, body, _ = await approver.call("GET", "/approvals?status=pending")
    assert status == 200
    (approval,) = body["approvals"]
    assert approval["amount"] == "300.00" and approval["approvers"] == ["UAPPROVER"]
    _s, mine, _ = await api.call("GET", "/approvals")
    assert mine["approvals"] == []  # U1 may not decide it

    status, body, _ = await api.call("POST", f"/approvals/{approval['id']}/approve")
    assert status == 403 and body["error"]["code"] == "forbidden"
    status, body, _ = await approver.call("POST", f"/approvals/{approval['id']}/approve")
    assert status == 200 and body["approval"]["status"] == "APPROVED"
    await h.settle()
    # the approval message (the request's status message is updated too)
    # decided, then the purchase order joins the record
    update, with_po = [
        c for c in h.slack.calls_to("chat.update") if c.params["ts"] == message.response["ts"]
    ]
    assert "Approved by" in json.dumps(update.params["blocks"])
    assert "Approved by" in json.dumps(with_po.params["blocks"])
    assert " · PO-" in json.dumps(with_po.params["blocks"], ensure_ascii=False)
    assert len(h.posts(lambda c: "PO-" in json.dumps(c.params.get("blocks")))) == 1
    status, body, _ = await approver.call("POST", f"/approvals/{approval['id']}/deny")
    assert status == 409 and body["error"]["code"] == "already_decided"
    status, body, _ = await approver.call("POST", "/approvals/99999/approve")
    assert status == 404


async def test_a_denial_over_the_api_can_say_why_and_the_requester_reads_it(api: Api) -> None:
    """The Slack form asks the approver why; the API takes the same reason, checked the
    same way, and the requester's thread and the audit log both carry it."""
    created = await api.submit("buy 2 monitors for $300")
    await api.harness.settle()
    # no thread to update: the living status message is in the requester's DM
    requester_dm = api.harness.slack.dm_channel_for("U1")
    (_status_post,) = [
        c
        for c in api.harness.posts()
        if c.response["channel"] == requester_dm and "status:cancel" in json.dumps(c.params)
    ]
    approver = await api.as_user("UAPPROVER")
    _s, pending, _ = await approver.call("GET", "/approvals")
    deny = f"/approvals/{pending['approvals'][0]['id']}/deny"
    for bad in ({"reason": ""}, {"reason": "x" * 501}, {"reason": 5}, {"why": "no"}):
        status, body, _ = await approver.call("POST", deny, bad)
        assert status == 422 and body["error"]["code"] == "invalid_request", (bad, body)
    approve = deny.replace("/deny", "/approve")
    status, body, _ = await approver.call("POST", approve, {"reason": "fine"})
    assert status == 422, body  # approving takes no reason: nothing is decided
    status, body, _ = await approver.call("POST", deny, {"reason": "  Over the team budget  "})
    assert status == 200 and body["approval"]["status"] == "DENIED", body
    await api.harness.settle()

    task = await api.task(created["id"])
    assert task["status"] == "REJECTED"
    assert any("Over the team budget" in json.dumps(a) for a in task["audit"]), task["audit"]
    told = api.harness.posts(lambda c: "Over the team budget" in json.dumps(c.params))
    assert told, "the requester is told why"


async def test_a_purchase_submitted_over_the_api_is_approved_with_the_slack_button(
    api: Api,
) -> None:
    """A request from outside Slack has no thread; its approval still reaches the approver's
    DM, a click there counts, and the requester hears in their DM with the bot."""
    h = api.harness
    created = await api.submit("buy 2 monitors for $300")
    await h.settle()
    approver_dm = h.slack.dm_channel_for("UAPPROVER")
    (message,) = [
        c
        for c in h.posts()
        if c.response["channel"] == approver_dm and "approval:approve" in json.dumps(c.params)
    ]
    payload = h.slack.click(approver_dm, message.response["ts"], "approval:approve", "UAPPROVER")
    assert (await h.sender.interaction(payload)).status == 200
    await h.settle()

    assert (await api.task(created["id"]))["status"] == "COMPLETED"
    assert h.slack.calls_to("chat.postEphemeral") == []  # no refusal of any kind
    (po,) = h.posts(lambda c: "PO-" in json.dumps(c.params.get("blocks")))
    assert po.response["channel"] == h.slack.dm_channel_for("U1")


async def test_list_is_newest_first_with_cursor_pagination_and_status_filter(api: Api) -> None:
    ids = [(await api.submit(f"research topic number {i}"))["id"] for i in range(5)]
    await api.harness.settle()
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        status, page, _ = await api.call("GET", "/tasks" + query)
        assert status == 200
        seen += [t["id"] for t in page["tasks"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True) and pages == 3
    _s, completed, _ = await api.call("GET", "/tasks?status=COMPLETED&limit=100")
    assert len(completed["tasks"]) == 5
    _s, failed, _ = await api.call("GET", "/tasks?status=FAILED")
    assert failed["tasks"] == [] and failed["next_cursor"] is None


async def test_bad_input_gets_json_errors_never_a_500(api: Api) -> None:
    cases: list[tuple[str, str, dict[str, object]]] = [
        ("POST", "/tasks", {"data": b"{not json"}),
        ("POST", "/tasks", {"data": b"[1, 2]"}),
        ("POST", "/tasks", {"data": b""}),
        ("GET", "/tasks?cursor=%%%", {}),
    ]
    for method, path, kw in cases:
        status, body, _ = await api.call(
            method, path, headers={"Content-Type": "application/json"}, **kw
        )  # type: ignore[arg-type]
        assert status == 400 and body["error"]["code"], (path, kw, body)
    for bad in (
        {"user_message": "research x", "colour": "red"},
        {"user_message": ""},
        {"title": "no message"},
        {"user_message": "research x", "command": "launch"},
        {"user_message": "research x", "webhook_url": "ftp://example.com/x"},
    ):
        status, body, _ = await api.call("POST", "/tasks", bad)
        assert status == 422 and body["error"]["code"] == "invalid_request", bad
    for query in ("?limit=0", "?limit=abc", "?status=DONE", "?colour=red"):
        status, body, _ = await api.call("GET", "/tasks" + query)
        assert status == 422, query
    status, body, _ = await api.call("POST", "/tasks", {"user_message": "hello"})
    assert status == 422 and body["error"]["code"] == "not_understood"
    status, body, _ = await api.call(
        "POST", "/tasks", {"user_message": "research laptops", "command": "purchase"}
    )
    assert status == 422 and "purchase only" in body["error"]["message"]
    big = json.dumps({"user_message": "research " + "x" * 70_000}).encode()
    status, body, _ = await api.call(
        "POST", "/tasks", data=big, headers={"Content-Type": "application/json"}
    )
    assert status == 413 and body["error"]["code"] == "too_large"
    for path in ("/tasks/abc", "/nowhere", "/tasks/1/explode", "/tasks/99999999999999"):
        status, body, _ = await api.call("GET", path)
        assert status == 404 and body["error"]["code"] == "not_found", path
    status, body, _ = await api.call("POST", "/tasks/1/cancel", {"force": True})
    assert status == 422
    assert api.harness.posts(lambda c: "Sorry" in str(c.params.get("text"))) == []


async def test_title_and_context_are_kept(api: Api) -> None:
    created = await api.submit(
        "research standing desks", title="Desk survey", context={"ticket": "OPS-1"}
    )
    assert created["title"] == "Desk survey"
    async with api.harness.running.container.uow_factory(read_only=True) as uow:
        task = await uow.tasks.get(created["id"])
    assert task is not None and task.params["context"] == {"ticket": "OPS-1"}


async def test_openapi_document_is_valid_openapi_3_1(api: Api) -> None:
    status, doc, _ = await api.call("GET", "/openapi.json", token=None)
    assert status == 200 and doc["openapi"] == "3.1.0"
    validate(doc)
    paths = doc["paths"]
    assert set(paths) == {
        "/api/v1/tasks",
        "/api/v1/tasks/{id}",
        "/api/v1/tasks/{id}/cancel",
        "/api/v1/tasks/{id}/retry",
        "/api/v1/approvals",
        "/api/v1/approvals/{id}/approve",
        "/api/v1/approvals/{id}/deny",
    }
    create = paths["/api/v1/tasks"]["post"]
    schema = doc["components"]["schemas"]["TaskCreate"]
    assert schema["additionalProperties"] is False and "user_message" in schema["required"]
    assert set(create["responses"]) >= {"202", "401", "409", "413", "422"}
    assert "TaskOut" in doc["components"]["schemas"]


async def test_requests_from_the_api_are_told_in_the_requesters_dm(api: Api) -> None:
    await api.submit("research best laptops")
    await api.harness.settle()
    opened = api.harness.slack.calls_to("conversations.open")
    assert opened and all(c.params["users"] == "U1" for c in opened)
    assert any(str(c.params.get("text", "")).startswith("Done:") for c in api.harness.posts())


async def test_slash_tasks_retry(api: Api) -> None:
    make_flaky(api.harness, "research", failures=1)
    created = await api.submit("research best laptops")
    await api.harness.settle()
    body = await tasks(api.harness, f"retry {created['id']}")
    assert "Retrying task" in json.dumps(body)
    await api.harness.settle()
    assert (await api.task(created["id"]))["status"] == "COMPLETED"
