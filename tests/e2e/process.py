"""Run `python -m bot` as a real subprocess (for kill -9 tests) and read replies
back from the fake Slack. Everything listens on 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import aiohttp

from tests.slackfake.server import Call, FakeSlack

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A port nothing listens on right now, for a bot started (and restarted) later.

    Taken below Linux's ephemeral range (32768+), from a block of its own per
    pytest-xdist worker: a port the kernel hands out for ``bind(0)`` (fake Slack,
    in-process apps) or another worker picks can never be this one.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    base = 20000 + 1000 * (int(worker) % 12 if worker.isdigit() else 0)
    for port in random.sample(range(base, base + 1000), 1000):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {base}-{base + 999}")


def process_env(slack: FakeSlack, secret: str, port: int, **settings: str) -> dict[str, str]:
    """The environment of a bot process talking to `slack` and listening on `port`: this
    one's without any bot setting of its own, then `settings` (also bench/burst.py)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "TASKBOT_", "DATABASE_URL", "HOST", "PORT", "LOG_LEVEL"))
    }
    env.update(
        SLACK_BOT_TOKEN="xoxb-test",
        SLACK_SIGNING_SECRET=secret,
        SLACK_API_URL=slack.base_url,
        HOST="127.0.0.1",
        PORT=str(port),
        LOG_LEVEL="WARNING",
    )
    env.update(settings)
    return env


def bot_env(
    slack: FakeSlack, secret: str, database_url: str, port: int, **extra: str
) -> dict[str, str]:
    settings = {
        "DATABASE_URL": database_url,
        "TASKBOT_WORKER_TTL_SECONDS": "2",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }
    return process_env(slack, secret, port, **settings)


class BotProcess:
    """One `python -m bot` process; its output goes to `log_path` (appended)."""

    def __init__(self, env: Mapping[str, str], port: int, log_path: Path) -> None:
        self.env = dict(env)
        self.port = port
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, timeout: float = 30.0) -> None:
        assert self.proc is None or self.proc.poll() is not None
        with self.log_path.open("ab") as log:
            log.write(f"\n----- start {time.strftime('%X')} -----\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bot"],
                cwd=REPO,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        await self.wait_healthy(timeout)

    async def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while time.monotonic() < deadline:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise AssertionError(
                        f"bot exited with {self.proc.returncode} before it was healthy:\n"
                        + self.log_tail()
                    )
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.get(self.url + "/healthz") as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.05)
        raise AssertionError(f"bot not healthy after {timeout}s:\n{self.log_tail()}")

    async def health(self) -> tuple[int, dict[str, Any]]:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
            session.get(self.url + "/healthz") as response,
        ):
            return response.status, await response.json()

    def kill(self) -> None:
        """kill -9: no cleanup, no flush, no goodbye."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM (graceful), SIGKILL if it does not exit in time. Safe to call twice."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return None if proc is None else proc.returncode
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
            return None

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no output)"
        return "\n".join(text.splitlines()[-lines:])


# --------------------------------------------------------------------------- replies


def reply_kind(call: Call) -> str:
    """What a chat.postMessage said, from its fallback text (bot/views/notices.py)."""
    text = str(call.params.get("text") or "")
    if " to approve " in text:  # "@Alice asks you to approve $300.00 for 2 × monitors"
        return "approval"
    for prefix, kind in (
        ("Got it", "accepted"),
        ("Done:", "finished"),
        ("Failed:", "failed"),
        ("Needs attention", "attention"),
        ("Approval needed", "approval"),
        ("Sorry", "refused"),
    ):
        if text.startswith(prefix):
            return kind
    return "other"


def replies_by_thread(slack: FakeSlack) -> dict[tuple[str, str], Counter[str]]:
    """(channel, thread_ts) → how many replies of each kind Slack accepted there."""
    threads: dict[tuple[str, str], Counter[str]] = {}
    for call in slack.calls_to("chat.postMessage"):
        if not call.ok:
            continue
        key = (str(call.params.get("channel")), str(call.params.get("thread_ts")))
        threads.setdefault(key, Counter())[reply_kind(call)] += 1
    return threads


def duplicates(threads: Iterable[Counter[str]]) -> int:
    """Replies beyond the first of the same kind in the same thread."""
    return sum(n - 1 for counts in threads for n in counts.values() if n > 1)
