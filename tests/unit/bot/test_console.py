"""`taskbot console` and `python -m bot` as a person runs them: real processes,
real database file, real built-in agents and knowledge base."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from bot.console.repl import console_decision
from core.approvals import Decision

REPO = Path(__file__).resolve().parents[3]

SCRIPT = (
    "research best laptops and draft email to john@example.com\n"
    "buy 2 monitors for $300\n"
    "a\n"
    "/tasks\n"
)


def _env(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "TASKBOT_", "DATABASE_URL", "LOG_LEVEL"))
    }
    env["DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 't.db'}"
    return env


def _run(args: list[str], tmp_path: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPO,
        env=_env(tmp_path),
        timeout=120,
        check=False,
    )


def _replies(stdout: str) -> list[str]:
    """The bot's messages (each starts with 'taskbot> ' and runs to the next prompt)."""
    return [
        block.strip()
        for block in re.split(r"^(?:taskbot|you)> ", stdout, flags=re.M)
        if block.strip()
    ]


def _one(replies: list[str], marker: str) -> tuple[int, str]:
    found = [(i, r) for i, r in enumerate(replies) if marker in r]
    assert len(found) == 1, (marker, replies)
    return found[0]


def test_console_runs_a_whole_conversation(tmp_path: Path) -> None:
    done = _run(["-c", "from bot.cli import main; main(['console'])"], tmp_path, stdin=SCRIPT)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    replies = _replies(done.stdout)

    # as in Slack: the research feeds the email, so the draft is the one answer
    assert not [r for r in replies if "Laptop research — done" in r]
    assert not [r for r in replies if "completed: 2/2 steps" in r]
    # the email draft to john@example.com quotes what the research found, with sources
    _, email = _one(replies, "Email draft to john@example.com — done")
    assert email.count("To: john@example.com") == 1
    assert "laptop" in email.lower()
    assert re.search(r"Sources: .*\b[\w-]+\.md\b", email), email
    assert "Request 1 · /tasks 1" in email

    # the purchase asks first, and completes with a purchase order once approved
    i_ask, ask = _one(replies, "Approval needed for")
    assert "Buy 2 × monitors ($300.00)" in ask and "$300.00" in ask
    assert "[a]pprove" in ask
    i_wait, _ = _one(replies, "Waiting for approval: Buy 2 × monitors")
    i_ok, _ = _one(replies, "Approved.")
    assert i_wait < i_ok
    i_po, po = _one(replies, "Purchase order PO-")
    assert i_ask < i_ok < i_po
    assert "2 × monitors" in po and "$300.00" in po

    # /tasks lists both requests, both done
    i_history, history = _one(replies, "Your requests (2)")
    assert i_history > i_po
    rows = history.splitlines()[1:]
    assert any("Buy 2 × monitors" in r and "✅" in r for r in rows), rows
    assert any(
        "research best laptops and draft email to john@example.com" in r and "✅" in r for r in rows
    ), rows


def test_serve_without_a_slack_token_explains_what_to_do(tmp_path: Path) -> None:
    done = _run(["-m", "bot"], tmp_path)

    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "Traceback" not in output
    assert "SLACK_BOT_TOKEN" in done.stderr
    assert "taskbot console" in done.stderr
    assert len(done.stderr.strip().splitlines()) <= 3, done.stderr


def test_a_console_denial_says_why_and_the_requester_reads_it(tmp_path: Path) -> None:
    script = "buy 2 monitors for $300\nd Over the team budget this month\n"
    done = _run(["-c", "from bot.cli import main; main(['console'])"], tmp_path, stdin=script)
    assert done.returncode == 0, done.stderr
    replies = _replies(done.stdout)
    _, denied = _one(replies, "Denied by")
    assert "Over the team budget this month" in denied, denied
    assert not [r for r in replies if "Purchase order PO-" in r]


def test_only_a_bare_a_approves_and_d_takes_a_reason() -> None:
    assert console_decision(" a ") == (Decision.APPROVE, "")
    assert console_decision("Approve") == (Decision.APPROVE, "")
    assert console_decision("a monitor arm for $120") is None  # a request, not a decision
    assert console_decision("approve the budget") is None
    assert console_decision("d") == (Decision.DENY, "")
    assert console_decision("deny   too much  ") == (Decision.DENY, "too much")
    assert console_decision("draft an email") is None
