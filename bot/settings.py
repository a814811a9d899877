"""The configuration contract (../shared/design.md), read from the environment."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

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
    default_budget: Decimal = Field(Decimal(500), alias="TASKBOT_DEFAULT_BUDGET", ge=0)
    currency: str = Field("USD", alias="TASKBOT_CURRENCY", pattern=r"^[A-Za-z]{3}$")
    stale_after_seconds: int = Field(86400, alias="TASKBOT_STALE_AFTER_SECONDS", gt=0)
    stale_check_seconds: int = Field(900, alias="TASKBOT_STALE_CHECK_SECONDS", gt=0)
    report_channel: str | None = Field(None, alias="TASKBOT_REPORT_CHANNEL")
    approval_ttl_seconds: int = Field(7 * 86400, alias="TASKBOT_APPROVAL_TTL_SECONDS", gt=0)
    reminder_after_seconds: int = Field(86400, alias="TASKBOT_REMINDER_AFTER_SECONDS", gt=0)
    agent_timeout_seconds: float = Field(300, alias="TASKBOT_AGENT_TIMEOUT_SECONDS", gt=0)
    status_grace_seconds: float = Field(3, alias="TASKBOT_STATUS_GRACE_SECONDS", ge=0)
    worker_ttl_seconds: int = Field(30, alias="TASKBOT_WORKER_TTL_SECONDS", ge=2)
    knowledge_dir: Path | None = Field(None, alias="TASKBOT_KNOWLEDGE_DIR")
    llm_url: str | None = Field(None, alias="TASKBOT_LLM_URL")
    llm_model: str = Field("gpt-4o-mini", alias="TASKBOT_LLM_MODEL")
    llm_api_key: SecretStr | None = Field(None, alias="TASKBOT_LLM_API_KEY")
    log_level: str = Field("INFO", alias="LOG_LEVEL")

    @field_validator("approvers", mode="before")
    @classmethod
    def _split_approvers(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("currency")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    @field_validator("report_channel", "llm_url", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def socket_mode(self) -> bool:
        return self.slack_app_token is not None

    def missing_for_slack(self) -> list[str]:
        missing = [] if self.slack_bot_token else ["SLACK_BOT_TOKEN"]
        if not self.socket_mode and not self.slack_signing_secret:
            missing.append("SLACK_SIGNING_SECRET")
        return missing

    def policy(self) -> Policy:
        return Policy(
            approvers=self.approvers,
            monthly_budget_cents=to_cents(self.default_budget),
            currency=self.currency,
            approval_ttl_seconds=self.approval_ttl_seconds,
            reminder_after_seconds=self.reminder_after_seconds,
            stale_after_seconds=self.stale_after_seconds,
            agent_timeout_seconds=self.agent_timeout_seconds,
            status_grace_seconds=self.status_grace_seconds,
        )
