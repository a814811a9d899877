"""Request and response bodies of the API; the OpenAPI document is generated from these."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from core.approvals import DENY_REASON_MAX
from core.states import ApprovalStatus, TaskStatus


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TaskCreate(_Strict):
    """The engine's TaskCreate: what a request says, and optionally how to route it."""

    user_message: str = Field(min_length=1, max_length=4000, examples=["research best laptops"])
    title: str | None = Field(None, min_length=1, max_length=200)
    command: Literal["research", "communication", "purchase", "orchestrate"] | None = Field(
        None, description="Force the route; orchestrate or null lets the intent parser decide."
    )
    context: dict[str, Any] | None = Field(None, description="Kept with the request's first step.")
    webhook_url: HttpUrl | None = Field(
        None,
        description="Receives task.completed / task.failed / task.cancelled / "
        "approval.requested / task.needs_attention, signed the Standard Webhooks way.",
    )


class Progress(BaseModel):
    done: int
    total: int


class Transaction(BaseModel):
    amount: str = Field(pattern=r"^-?\d+\.\d{2}$", examples=["0.00"])
    currency: str
    kind: str
    description: str
    at: str


class AuditItem(BaseModel):
    action: str = Field(examples=["created", "started", "completed", "transaction_recorded"])
    actor: str
    at: str
    detail: dict[str, Any]


class TaskOut(BaseModel):
    id: int
    title: str
    status: TaskStatus
    agent: str
    result: dict[str, Any] | None
    error: str | None
    parent_id: int | None
    depends_on: list[int]
    subtasks: list[TaskOut]
    progress: Progress
    transactions: list[Transaction]
    audit: list[AuditItem]
    created_at: str
    updated_at: str


class TaskPage(BaseModel):
    tasks: list[TaskOut]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next page; null at the end."
    )


class TaskListQuery(_Strict):
    status: TaskStatus | None = None
    limit: int = Field(20, ge=1, le=100)
    cursor: str | None = Field(None, max_length=200)


class ActionResult(BaseModel):
    """The outcome of cancel/retry, with the task as it is now."""

    message: str
    task: TaskOut


class ApprovalOut(BaseModel):
    id: int
    task_id: int
    requester: str
    approvers: list[str]
    amount: str = Field(pattern=r"^-?\d+\.\d{2}$")
    currency: str
    status: ApprovalStatus
    decided_by: str | None
    created_at: str
    expires_at: str


class ApprovalPage(BaseModel):
    approvals: list[ApprovalOut]


class ApprovalListQuery(_Strict):
    status: Literal["pending"] = "pending"


class DenyBody(_Strict):
    """Why, sent back to the requester and kept in the audit log (the Slack form asks too)."""

    reason: str | None = Field(None, min_length=1, max_length=DENY_REASON_MAX)


class DecisionOut(BaseModel):
    message: str
    approval: ApprovalOut


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail
