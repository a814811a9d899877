"""Where agents are found by name: the built-ins plus installed plugins.

Plugins are packages declaring an entry point in the "taskbot.agents" group
that names an Agent instance or a zero-argument factory returning one. A
broken plugin must not take the bot down, so failures are logged and skipped.
"""

from __future__ import annotations

import logging
from importlib import metadata

from core.agents.base import Agent
from core.agents.communication import CommunicationAgent
from core.agents.compare import PriceComparisonAgent
from core.agents.purchase import PurchaseAgent
from core.agents.research import ResearchAgent
from core.knowledge import KnowledgeSearch, LanguageModel

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "taskbot.agents"


class AgentRegistry:
    def __init__(self) -> None:
        self._agents: dict[str, Agent] = {}

    def register(self, agent: Agent, *, replace: bool = False) -> None:
        """Add an agent; a second agent with a taken name is refused unless `replace`."""
        if not isinstance(agent, Agent) or isinstance(agent, type):
            raise TypeError(f"{agent!r} is not an Agent instance")
        name = agent.name
        if not isinstance(name, str) or not name:
            raise ValueError(f"agent {agent!r} has no name")
        if name in self._agents and not replace:
            raise ValueError(f"an agent named {name!r} is already registered")
        self._agents[name] = agent

    def get(self, name: str) -> Agent:
        try:
            return self._agents[name]
        except KeyError:
            known = ", ".join(self.names()) or "none"
            raise KeyError(f"no agent named {name!r} (registered: {known})") from None

    def names(self) -> list[str]:
        return sorted(self._agents)

    def __contains__(self, name: object) -> bool:
        return name in self._agents

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> list[str]:
        """Register every plugin agent of `group`; returns the names registered."""
        loaded: list[str] = []
        for ep in metadata.entry_points(group=group):
            try:
                target = ep.load()
                # a class passes isinstance(…, Agent) too: it has the attributes
                is_instance = isinstance(target, Agent) and not isinstance(target, type)
                agent = target if is_instance else target()
                self.register(agent)
            except Exception:
                log.exception("skipping agent plugin %s (%s)", ep.name, ep.value)
                continue
            loaded.append(agent.name)
            log.info("loaded agent plugin %s from %s", agent.name, ep.value)
        return loaded


def builtin_registry(
    knowledge: KnowledgeSearch, model: LanguageModel | None = None
) -> AgentRegistry:
    registry = AgentRegistry()
    registry.register(ResearchAgent(knowledge, model))
    registry.register(CommunicationAgent())
    registry.register(PriceComparisonAgent(knowledge))
    registry.register(PurchaseAgent())
    return registry
