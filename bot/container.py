"""The composition root: the one place that wires storage, core and a front end."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bot.llm_client import ChatCompletionsModel
from bot.settings import Settings
from bot.webhooks import WebhookSender
from core.agents.registry import AgentRegistry, builtin_registry
from core.approvals import Approvals
from core.background import Background
from core.cancellation import Cancellation
from core.clock import Clock, SystemClock
from core.executor import Sleep, TaskExecutor, has_effects
from core.history import History
from core.jobs.approval_timer import ApprovalTimer
from core.jobs.housekeeping import Housekeeping
from core.jobs.recovery import Recovery
from core.jobs.stale import StaleReporter
from core.knowledge import LanguageModel
from core.notices import Notice
from core.orchestrator import Orchestrator
from core.outbox import OutboxDispatcher
from core.policy import Policy
from core.ports import Notifier, UnitOfWorkFactory
from core.retry import Retrying
from core.service import TaskService, new_worker_id
from core.webhooks import WebhookEmitter
from storage.engine import create_engine
from storage.knowledge_index import KnowledgeIndex
from storage.migrate import upgrade
from storage.uow import SqlUnitOfWorkFactory


@dataclass(frozen=True)
class Jobs:
    """The scheduled jobs bot/scheduler.py runs, built here like everything else."""

    stale: StaleReporter
    approval_timer: ApprovalTimer
    recovery: Recovery
    housekeeping: Housekeeping


@dataclass
class Container:
    settings: Settings
    uow_factory: SqlUnitOfWorkFactory
    service: TaskService
    registry: AgentRegistry
    clock: Clock
    policy: Policy
    jobs: Jobs
    dispatcher: OutboxDispatcher | None = field(default=None)
    #: the webhook lane's sender (None without TASKBOT_WEBHOOK_SECRET)
    webhooks: WebhookSender | None = field(default=None)
    webhook_dispatcher: OutboxDispatcher | None = field(default=None)
    #: the research agent's model client (None without TASKBOT_LLM_URL), closed last
    model: ChatCompletionsModel | None = field(default=None)

    def attach_notifier(
        self, notifier: Notifier, unshown: Callable[[Notice], bool] | None = None
    ) -> OutboxDispatcher:
        """Deliver the outbox through this front end; writes wake the sender at once.
        `unshown`: the notices it never shows on their own, which get no outbox row."""
        if unshown is not None:
            self.uow_factory.leave_out(unshown)
        # A claim lives as long as a worker's liveness lease: renewed while delivering,
        # lapsed soon after a crash so another (or the restarted) process sends it.
        self.dispatcher = OutboxDispatcher(
            self.uow_factory,
            notifier,
            self.clock,
            concurrency=self.settings.outbox_concurrency,
            lease_seconds=self.settings.worker_ttl_seconds,
        )
        self.uow_factory.on_outbox_written(self.dispatcher.wake)
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
            self.uow_factory,
            self.webhooks,
            self.clock,
            concurrency=4,
            lease_seconds=self.settings.worker_ttl_seconds,
            max_attempts=1000,
            webhooks=True,
            give_up_after_seconds=self.settings.webhook_give_up_seconds,
        )
        self.webhook_dispatcher.on_gave_up.append(self.webhooks.gave_up)
        self.uow_factory.on_outbox_written(self.webhook_dispatcher.wake)
        return self.webhook_dispatcher

    async def close(self) -> None:
        await self.service.close(grace=10)
        await self.uow_factory.dispose()
        if self.model is not None:
            await self.model.close()


def build_model(settings: Settings) -> ChatCompletionsModel | None:
    """The research agent's model, when one is configured (TASKBOT_LLM_URL)."""
    if not settings.llm_url:
        return None
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
    return ChatCompletionsModel(settings.llm_url, settings.llm_model, key)


def build_registry(settings: Settings, model: LanguageModel | None = None) -> AgentRegistry:
    knowledge = (
        KnowledgeIndex.from_directory(settings.knowledge_dir)
        if settings.knowledge_dir
        else KnowledgeIndex()
    )
    registry = builtin_registry(knowledge, model or build_model(settings))
    registry.load_entry_points()
    return registry


async def build(settings: Settings, clock: Clock | None = None) -> Container:
    """Upgrade the schema, then wire everything on one engine."""
    await upgrade(settings.database_url)
    clock = clock or SystemClock()
    uow_factory = SqlUnitOfWorkFactory(create_engine(settings.database_url), clock)
    if settings.webhook_secret is not None:  # unsigned webhooks are never sent
        uow_factory.before_commit_with_notices(WebhookEmitter(clock, settings.webhook_url))
    model = build_model(settings)
    registry = build_registry(settings, model)
    policy = settings.policy()
    service = build_service(uow_factory, registry, policy, clock)
    jobs = Jobs(
        stale=StaleReporter(uow_factory, policy, clock, settings.report_channel),
        approval_timer=ApprovalTimer(uow_factory, service.approvals, policy, clock),
        recovery=Recovery(uow_factory, registry, clock, service.worker, policy),
        housekeeping=Housekeeping(uow_factory, clock, settings.retention()),
    )
    return Container(settings, uow_factory, service, registry, clock, policy, jobs, model=model)


def build_service(
    uow_factory: UnitOfWorkFactory,
    registry: AgentRegistry,
    policy: Policy,
    clock: Clock,
    *,
    worker: str | None = None,
    sleep: Sleep | None = None,
) -> TaskService:
    """Wire the core façade and every collaborator behind it (tests call this too)."""
    worker = worker or new_worker_id()
    background = Background()
    executor = TaskExecutor(uow_factory, registry, policy, clock, worker, sleep=sleep)
    orchestrator = Orchestrator(
        uow_factory, registry, policy, clock, executor, background, sleep=sleep
    )
    approvals = Approvals(uow_factory, clock, policy)

    def effects(agent: str) -> bool:
        try:
            return has_effects(registry.get(agent))
        except KeyError:
            return True  # an agent no longer installed: assume the worst

    return TaskService(
        uow_factory=uow_factory,
        orchestrator=orchestrator,
        approvals=approvals,
        history=History(uow_factory, policy, clock),
        cancellation=Cancellation(uow_factory, approvals, clock, policy, effects),
        retrying=Retrying(uow_factory, registry, clock),
        background=background,
        policy=policy,
        clock=clock,
        worker=worker,
    )
