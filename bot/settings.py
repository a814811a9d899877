"""The configuration contract (README.md, Configuration), read from the environment."""

from __future__ import annotations

import base64
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from core.jobs.housekeeping import Retention
from core.money import to_cents
from core.policy import Policy


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    slack_bot_token: SecretStr | None = Field(None, alias="SLACK_BOT_TOKEN")
    slack_signing_secret: SecretStr | None = Field(None, alias="SLACK_SIGNING_SECRET")
    slack_app_token: SecretStr | None = Field(None, alias="SLACK_APP_TOKEN")
    slack_api_url: str = Field("https://slack.com/api/", alias="SLACK_API_URL")
    database_url: str = Field("sqlite+aiosqlite:///taskbot.db", alias="DATABASE_URL")
    host: str = Field("0.0.0.0", alias="HOST")
    port: int = Field(3000, alias="PORT", ge=0, le=65535)
    approvers: Annotated[tuple[str, ...], NoDecode] = Field((), alias="TASKBOT_APPROVERS")
    allow_self_approval: bool = Field(False, alias="TASKBOT_ALLOW_SELF_APPROVAL")
    approval_channel: str | None = Field(None, alias="TASKBOT_APPROVAL_CHANNEL")
    default_budget: Decimal = Field(Decimal(500), alias="TASKBOT_DEFAULT_BUDGET", ge=0)
    currency: str = Field("USD", alias="TASKBOT_CURRENCY", pattern=r"^[A-Za-z]{3}$")
    stale_after_seconds: int = Field(86400, alias="TASKBOT_STALE_AFTER_SECONDS", gt=0)
    stale_check_seconds: float = Field(900, alias="TASKBOT_STALE_CHECK_SECONDS", gt=0)
    report_channel: str | None = Field(None, alias="TASKBOT_REPORT_CHANNEL")
    approval_ttl_seconds: int = Field(7 * 86400, alias="TASKBOT_APPROVAL_TTL_SECONDS", gt=0)
    reminder_after_seconds: int = Field(86400, alias="TASKBOT_REMINDER_AFTER_SECONDS", gt=0)
    agent_timeout_seconds: float = Field(300, alias="TASKBOT_AGENT_TIMEOUT_SECONDS", gt=0)
    status_grace_seconds: float = Field(3, alias="TASKBOT_STATUS_GRACE_SECONDS", ge=0)
    step_max_attempts: int = Field(3, alias="TASKBOT_STEP_MAX_ATTEMPTS", ge=1, le=20)
    step_retry_seconds: float = Field(2.0, alias="TASKBOT_STEP_RETRY_SECONDS", gt=0)
    worker_ttl_seconds: int = Field(30, alias="TASKBOT_WORKER_TTL_SECONDS", ge=2)
    outbox_concurrency: int = Field(2, alias="TASKBOT_OUTBOX_CONCURRENCY", ge=1, le=32)
    retention_days: float = Field(30, alias="TASKBOT_RETENTION_DAYS", gt=0)
    inbox_retention_hours: float = Field(168, alias="TASKBOT_INBOX_RETENTION_HOURS", ge=1)
    knowledge_dir: Path | None = Field(None, alias="TASKBOT_KNOWLEDGE_DIR")
    llm_url: str | None = Field(None, alias="TASKBOT_LLM_URL")
    llm_model: str = Field("gpt-4o-mini", alias="TASKBOT_LLM_MODEL")
    llm_api_key: SecretStr | None = Field(None, alias="TASKBOT_LLM_API_KEY")
    log_level: str = Field("INFO", alias="LOG_LEVEL")
    webhook_url: str | None = Field(None, alias="TASKBOT_WEBHOOK_URL")
    webhook_secret: SecretStr | None = Field(None, alias="TASKBOT_WEBHOOK_SECRET")
    webhook_allow_private: bool = Field(False, alias="TASKBOT_WEBHOOK_ALLOW_PRIVATE")
    webhook_give_up_seconds: float = Field(3600, alias="TASKBOT_WEBHOOK_GIVE_UP_SECONDS", ge=0)
    api_max_body_bytes: int = Field(65536, alias="TASKBOT_API_MAX_BODY_BYTES", gt=0)
    log_format: Literal["text", "json"] = Field("text", alias="LOG_FORMAT")

    @field_validator("approvers", mode="before")
    @classmethod
    def _split_approvers(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("currency")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    @field_validator("webhook_secret")
    @classmethod
    def _whsec(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        raw = value.get_secret_value()
        try:
            ok = raw.startswith("whsec_") and len(base64.b64decode(raw[6:], validate=True)) >= 16
        except ValueError:
            ok = False
        if not ok:
            raise ValueError("must be whsec_ followed by base64 of at least 16 random bytes")
        return value

    @model_validator(mode="after")
    def _webhooks_are_signed(self) -> Settings:
        if self.webhook_url and self.webhook_secret is None:
            raise ValueError("TASKBOT_WEBHOOK_URL needs TASKBOT_WEBHOOK_SECRET to sign with")
        return self

    @field_validator(
        "report_channel",
        "llm_url",
        "webhook_url",
        "approval_channel",
        "slack_app_token",
        "slack_bot_token",
        "slack_signing_secret",
        mode="before",
    )
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def socket_mode(self) -> bool:
        """A blank SLACK_APP_TOKEN is unset: HTTP mode, with signatures checked."""
        return self.slack_app_token is not None

    def missing_for_slack(self) -> list[str]:
        missing = [] if self.slack_bot_token else ["SLACK_BOT_TOKEN"]
        if not self.socket_mode and not self.slack_signing_secret:
            missing.append("SLACK_SIGNING_SECRET")
        return missing

    def retention(self) -> Retention:
        return Retention(
            records=timedelta(days=self.retention_days),
            inbox=timedelta(hours=self.inbox_retention_hours),
        )

    def policy(self) -> Policy:
        return Policy(
            approvers=self.approvers,
            allow_self_approval=self.allow_self_approval,
            approval_channel=self.approval_channel,
            monthly_budget_cents=to_cents(self.default_budget),
            currency=self.currency,
            approval_ttl_seconds=self.approval_ttl_seconds,
            reminder_after_seconds=self.reminder_after_seconds,
            stale_after_seconds=self.stale_after_seconds,
            agent_timeout_seconds=self.agent_timeout_seconds,
            status_grace_seconds=self.status_grace_seconds,
            step_max_attempts=self.step_max_attempts,
            step_retry_base_seconds=self.step_retry_seconds,
        )
