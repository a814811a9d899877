"""Draft (never send) an email that shares what earlier tasks found.

Sending mail is an outside effect needing approval and credentials; a draft
is safe to produce, rerun and show in the thread for a person to send.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from core.agents.base import AgentContext, AgentError, AgentResult, DependencyResult, FreeAgent

_EMAIL = re.compile(r"^[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+$")
_MAX_QUOTED_LINES = 15
_MAX_SUBJECT = 78


def normalize_recipients(raw: Any) -> list[str]:
    """Addresses from a list or a comma/space separated string; invalid ones raise."""
    if raw is None:
        return []
    items: Iterable[Any] = re.split(r"[,;\s]+", raw) if isinstance(raw, str) else raw
    out: list[str] = []
    bad: list[str] = []
    for item in items:
        text = str(item).strip()
        if not text:
            continue
        text = text.removeprefix("mailto:")
        if not _EMAIL.match(text):
            bad.append(text)
        elif text.lower() not in (o.lower() for o in out):
            out.append(text)
    if bad:
        raise AgentError("Not a valid email address: " + ", ".join(bad))
    return out


def _sources(dep: DependencyResult) -> list[str]:
    data = dep.result.data
    found = [str(s) for s in data.get("sources") or []]
    for row in data.get("rows") or []:
        if isinstance(row, Mapping) and row.get("source"):
            found.append(str(row["source"]))
    return list(dict.fromkeys(found))


def _quote(text: str, limit: int = _MAX_QUOTED_LINES) -> list[str]:
    lines = [line.rstrip() for line in text.strip().splitlines() if line.strip()]
    quoted = [f"> {line}" for line in lines[:limit]]
    if len(lines) > limit:
        quoted.append(f"> … ({len(lines) - limit} more lines)")
    return quoted


_ENVELOPE = re.compile(
    r"^(?:an?\s+)?(?:e-?mail|mail|message|note)\b(?:\s+(?:to|for)\s+[^\s,]+(?:\s*(?:,|and)\s*[^\s,]+@[^\s,]+)*)?"
    r"(?:\s+(?:about|on|regarding|re:?)\s+)?",
    re.IGNORECASE,
)


def subject_topic(topic: str) -> str:
    """What an email is about, without "email to a@b.com" (which is whom, not what)."""
    rest = _ENVELOPE.sub("", topic.strip(), count=1)
    return "" if "@" in rest and len(rest.split()) == 1 else rest.strip(" .,:;")


def make_subject(topic: str, dependencies: Sequence[DependencyResult], request: str) -> str:
    topic = subject_topic(topic)
    if topic:
        subject = f"Findings: {topic[0].upper()}{topic[1:]}"
    elif dependencies and dependencies[0].title:
        about = dependencies[0].title.split(":", 1)[-1].strip()
        subject = f"Findings: {about[0].upper()}{about[1:]}" if about else dependencies[0].title
    elif request:
        subject = request
    else:
        subject = "Follow-up"
    subject = " ".join(subject.split())
    return subject if len(subject) <= _MAX_SUBJECT else subject[: _MAX_SUBJECT - 1] + "…"


def make_body(topic: str, dependencies: Sequence[DependencyResult], recipients: int) -> str:
    lines = ["Hello all," if recipients > 1 else "Hello,", ""]
    about = f" about {topic}" if topic else ""
    if dependencies:
        lines += [f"Here is what I found{about}.", ""]
        for dep in dependencies:
            heading = dep.title or dep.agent
            lines.append(heading if ":" in heading else f"{heading}:")
            lines += _quote(dep.result.summary)
            # a comparison's findings are its table, not just its one-line summary
            if dep.result.data.get("rows") and dep.result.body:
                lines += _quote(dep.result.body)
            sources = _sources(dep)
            if sources:
                lines.append("Sources: " + ", ".join(sources))
            lines.append("")
        lines += ["Prices and availability change; please check them before deciding.", ""]
    else:
        lines += [f"I am writing{about}. I do not have any findings to share yet.", ""]
    lines += ["Best regards,"]
    return "\n".join(lines)


class CommunicationAgent(FreeAgent):
    """Draft an email (params: {"topic", "recipients": [emails], "request"})."""

    name = "communication"

    async def run(self, ctx: AgentContext) -> AgentResult:
        recipients = normalize_recipients(ctx.params.get("recipients"))
        topic = " ".join(str(ctx.params.get("topic") or "").split())
        request = str(ctx.params.get("request") or "")
        subject = make_subject(topic, ctx.dependencies, request)
        body = make_body(subject_topic(topic), ctx.dependencies, len(recipients))
        to = ", ".join(recipients) if recipients else "(no recipient given)"
        draft = f"To: {to}\nSubject: {subject}\n\n{body}"
        summary = (
            f"Drafted an email to {to}" if recipients else "Drafted an email (no recipient given)"
        )
        return AgentResult(
            summary=summary,
            body=draft,
            data={"email": {"to": recipients, "subject": subject, "body": body}},
        )
