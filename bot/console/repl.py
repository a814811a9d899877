"""`taskbot console`: the same core and database, driven from a terminal or a pipe."""

from __future__ import annotations

import asyncio
import sys
from typing import TextIO

from bot.console.render import render_notice, render_tasks_result
from bot.container import Container
from bot.views.status import folded_into_status
from core.approvals import Decision, deny_reason_error
from core.notices import ApprovalDecided, ApprovalNeeded, Notice, RequestStatus
from core.orchestrator import Request
from core.ports import Attempt
from core.records import Conversation
from core.tasks_command import parse_tasks_command

HELP = """Type a request, for example:
  research best laptops and draft email to john@example.com
  buy 2 monitors for $300
Then: a to approve the newest approval, d [why] to deny it (saying why),
/tasks [pending|failed|completed|<id>|cancel <id>|retry <id>|budget|help] for your
history, quit to leave."""


def console_decision(text: str) -> tuple[Decision, str] | None:
    """`a` approves; `d` or `d <why>` denies. "a monitor arm for $120" is a request."""
    verb, _, rest = text.strip().partition(" ")
    if verb.lower() in ("a", "approve") and not rest.strip():
        return Decision.APPROVE, ""
    if verb.lower() in ("d", "deny"):
        return Decision.DENY, rest.strip()
    return None


class ConsoleNotifier:
    """Prints notices; remembers approvals still open so `a`/`d` can answer them."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self.open_approvals: list[int] = []
        self._shown: set[tuple[str, int]] = set()
        self._sent = 0

    async def deliver(self, notice: Notice, attempt: Attempt | None = None) -> str | None:
        if isinstance(notice, ApprovalNeeded | ApprovalDecided):
            # one line per approval, not one per approver's copy
            seen = (notice.kind, notice.approval_id)
            if seen in self._shown:
                return None
            self._shown.add(seen)
        if isinstance(notice, ApprovalNeeded):
            self.open_approvals.append(notice.approval_id)
        if folded_into_status(notice) or (isinstance(notice, RequestStatus) and notice.final):
            return None  # as in Slack: the status and the one result or outcome say it
        print(f"taskbot> {render_notice(notice)}", file=self._out, flush=True)
        self._sent += 1
        return f"console.{self._sent}"


class Console:
    def __init__(self, container: Container, user: str, out: TextIO = sys.stdout) -> None:
        self._c = container
        self._user = user
        self._out = out
        self._notifier = ConsoleNotifier(out)
        self._dispatcher = container.attach_notifier(self._notifier)
        self._approver = (container.service.policy.approvers_for(user) or (user,))[0]

    def say(self, text: str) -> None:
        print(f"taskbot> {text}", file=self._out, flush=True)

    async def settle(self) -> None:
        """Let every started task and every reply finish before the next line."""
        while True:
            await self._c.service.idle()
            await self._dispatcher.drain()
            if not self._c.service.busy:
                return

    async def handle(self, line: str) -> bool:
        text = line.strip()
        if not text:
            return True
        if text.lower() in ("quit", "exit"):
            return False
        if text.lower() in ("help", "?"):
            self.say(HELP)
        elif (decision := console_decision(text)) is not None:
            await self._decide(*decision)
        elif text.lower().startswith("/tasks"):
            await self._tasks(text[len("/tasks") :])
        else:
            conv = Conversation(requester=self._user, channel="console")
            submission = await self._c.service.submit(Request(text, conv))
            self._c.service.start(submission)
        await self.settle()
        return True

    async def _decide(self, decision: Decision, reason: str) -> None:
        """`d <why>` denies saying why, as the Slack form asks; `a` takes no reason."""
        if not self._notifier.open_approvals:
            self.say("Nothing is waiting for approval.")
            return
        if (problem := deny_reason_error(reason, required=False)) is not None:
            self.say(problem)
            return
        approval_id = self._notifier.open_approvals.pop()
        outcome = await self._c.service.decide(approval_id, self._approver, decision, reason=reason)
        self.say(outcome.message)

    async def _tasks(self, args: str) -> None:
        result = await self._c.service.tasks(self._user, parse_tasks_command(args))
        self.say(render_tasks_result(result, self._c.clock.now(), HELP))


async def run_console(container: Container, user: str, stdin: TextIO = sys.stdin) -> None:
    console = Console(container, user)
    interactive = stdin.isatty()
    if interactive:
        console.say(HELP)
    await container.service.resume_unfinished()
    await console.settle()
    while True:
        if interactive:
            print("you> ", end="", flush=True)
        line = await asyncio.to_thread(stdin.readline)
        if not line:
            break
        if not interactive:
            print(f"you> {line.rstrip()}", flush=True)
        if not await console.handle(line):
            break
