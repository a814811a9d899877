"""The composition root: the one place that wires storage, core and a front end."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.llm_client import ChatCompletionsModel
from bot.settings import Settings
from bot.webhooks import WebhookSender
from core.agents.registry import AgentRegistry, builtin_registry
from core.clock import Clock, SystemClock
from core.knowledge import LanguageModel
from core.outbox import OutboxDispatcher
from core.ports import Notifier
from core.service import TaskService
from core.webhooks import WebhookEmitter
from storage.engine import create_engine
from storage.knowledge_index import KnowledgeIndex
from storage.migrate import upgrade
from storage.uow import SqlUnitOfWorkFactory


@dataclass
class Container:
    settings: Settings
    uow: SqlUnitOfWorkFactory
    service: TaskService
    registry: AgentRegistry
    clock: Clock
    dispatcher: OutboxDispatcher | None = field(default=None)
    #: the webhook lane's sender (None without TASKBOT_WEBHOOK_SECRET)
    webhooks: WebhookSender | None = field(default=None)
    webhook_dispatcher: OutboxDispatcher | None = field(default=None)

    def attach_notifier(self, notifier: Notifier) -> OutboxDispatcher:
        """Deliver the outbox through this front end; writes wake the sender at once."""
        # A claim lives as long as a worker's liveness lease: renewed while delivering,
        # lapsed soon after a crash so another (or the restarted) process sends it.
        self.dispatcher = OutboxDispatcher(
            self.uow,
            notifier,
            self.clock,
            concurrency=self.settings.outbox_concurrency,
            lease_seconds=self.settings.worker_ttl_seconds,
        )
        self.uow.on_outbox_written(self.dispatcher.wake)
        return self.dispatcher

    def attach_webhooks(self) -> OutboxDispatcher | None:
        """Deliver webhook events through their own sender, so they never delay Slack."""
        secret = self.settings.webhook_secret
        if secret is None:
            return None
        self.webhooks = WebhookSender(
            secret.get_secret_value(), allow_private=self.settings.webhook_allow_private
        )
        self.webhook_dispatcher = OutboxDispatcher(
            self.uow,
            self.webhooks,
            self.clock,
            concurrency=4,
            lease_seconds=self.settings.worker_ttl_seconds,
            max_attempts=1000,
            webhooks=True,
            give_up_after_seconds=self.settings.webhook_give_up_seconds,
        )
        self.webhook_dispatcher.on_gave_up.append(self.webhooks.gave_up)
        self.uow.on_outbox_written(self.webhook_dispatcher.wake)
        return self.webhook_dispatcher

    async def close(self) -> None:
        await self.service.background.close(grace=10)
        await self.uow.dispose()


def build_registry(settings: Settings) -> AgentRegistry:
    knowledge = (
        KnowledgeIndex.from_directory(settings.knowledge_dir)
        if settings.knowledge_dir
        else KnowledgeIndex()
    )
    model: LanguageModel | None = None
    if settings.llm_url:
        key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
        model = ChatCompletionsModel(settings.llm_url, settings.llm_model, key)
    registry = builtin_registry(knowledge, model)
    registry.load_entry_points()
    return registry


async def build(settings: Settings, clock: Clock | None = None) -> Container:
    """Upgrade the schema, then wire everything on one engine."""
    await upgrade(settings.database_url)
    clock = clock or SystemClock()
    uow = SqlUnitOfWorkFactory(create_engine(settings.database_url), clock)
    if settings.webhook_secret is not None:  # unsigned webhooks are never sent
        uow.before_commit_with_notices(WebhookEmitter(clock, settings.webhook_url))
    registry = build_registry(settings)
    service = TaskService(uow, registry, settings.policy(), clock)
    return Container(settings, uow, service, registry, clock)
