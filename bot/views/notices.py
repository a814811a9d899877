"""core.notices.Notice → a Slack message ``{"text": …, "blocks": […]}``.

Pure: no I/O. The result can be passed as kwargs to chat.postMessage,
chat.update or chat.postEphemeral (the caller adds channel, thread_ts, ts…).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from bot.views.approval import (
    approval_decided,
    approval_needed,
    approval_reminder,
    outcome_line,
)
from bot.views.blocks import (
    Block,
    Message,
    actions,
    button,
    context,
    message,
    plain,
    section,
    split_sections,
)
from bot.views.buttons import RetryButton
from bot.views.escape import (
    escape,
    is_user_id,
    link,
    mention,
    mentions,
    one_line,
    truncate,
    with_mentions,
)
from bot.views.format import humanize_age, money, status_emoji, status_label, title_mrkdwn
from bot.views.full_text import full_text_button
from bot.views.results import key_points, result_blocks
from bot.views.status import render_status, request_footer
from core.notices import (
    ApprovalAsked,
    ApprovalDecided,
    ApprovalNeeded,
    ApprovalReminder,
    Notice,
    RequestAccepted,
    RequestFinished,
    RequestRefused,
    RequestStatus,
    StaleReport,
    StaleTask,
    TaskCancelled,
    TaskFailed,
    TaskFinished,
    TaskNeedsAttention,
    TaskRejected,
    TaskRetried,
)

__all__ = [
    "outcome_line",
    "render",
]

#: titles in headings: long enough to read, short enough for one line
_TITLE = 150

Permalinks = Mapping[int, str]


def render(notice: Notice, permalinks: Permalinks | None = None) -> Message:
    """The message for a notice. ``permalinks`` (task id → thread URL) is used by
    the stale report to link each task's thread."""
    renderer = RENDERERS.get(type(notice))
    return renderer(notice, permalinks or {}) if renderer else _generic(notice)


# --- helpers -----------------------------------------------------------------


def _ref(task_id: int | None) -> str:
    return f"task #{task_id}" if task_id is not None else "your request"


def _title(title: str) -> str:
    return title_mrkdwn(title, _TITLE)


def _more_note(task_id: int | None) -> str:
    where = f" — see `/tasks {task_id}`" if task_id is not None else ""
    return "…{n} more blocks not shown" + where + "."


def _generic(notice: Notice) -> Message:
    text = f"Update on {_ref(notice.task_id)} ({escape(notice.kind)})."
    return message(text, [section(text)])


# --- renderers -----------------------------------------------------------------


def _request_accepted(n: RequestAccepted) -> Message:
    head = f"Got it — {_ref(n.task_id)}: *{_title(n.title)}*"
    if n.requester:
        head += f" (for {mention(n.requester)})"
    blocks: list[Block] = [section(head)]
    if len(n.steps) > 1:
        chain = escape(one_line(n.outline)) or " → ".join(
            escape(one_line(s.agent)) for s in n.steps
        )
        blocks.append(context(f"Plan: {truncate(chain, 1000, '…')}"))
    lines: list[str] = []
    for step in n.steps:
        agent = escape(one_line(step.agent))
        line = f"• `#{step.task_id}` _{agent}_ — {title_mrkdwn(step.title, 100)}"
        if step.depends_on:
            line += " (after " + ", ".join(f"#{d}" for d in step.depends_on) + ")"
        if step.needs_approval:
            line += " — 🔐 needs approval"
        lines.append(line)
    if lines:
        blocks += split_sections("\n".join(lines))
    approvals = sum(1 for s in n.steps if s.needs_approval)
    if approvals:
        blocks.append(
            context(f"{approvals} step{'s' if approvals != 1 else ''} will ask for approval first.")
        )
    text = f"Got it — {_ref(n.task_id)}: {_title(n.title)}"
    if len(n.steps) > 1 and n.outline:
        text += f" ({escape(one_line(n.outline))})"
    return message(text, blocks, more_note=_more_note(n.task_id))


def _request_refused(n: RequestRefused) -> Message:
    """Said once, before anything is accepted; the reason says what to do instead."""
    reason = escape(n.reason.strip()) or "I couldn't take that request."
    blocks = split_sections(f"🙅 *Not accepted*: {reason}")
    blocks.append(context("Nothing was started. Try `/tasks help` for what I can do."))
    return message(f"Sorry, I can't do that: {reason}", blocks)


def _approval_asked(n: ApprovalAsked) -> Message:
    amount = escape(money(n.amount_cents, n.currency))
    who = mentions(n.approvers) if n.approvers else "the approvers"
    where = (
        f" in <#{escape(n.approval_channel)}>" if n.approval_channel else " (sent to them directly)"
    )
    line = (
        f"⏳ {_ref(n.task_id).capitalize()} *{_title(n.title)}* ({amount}) waits for "
        f"approval from {who}{where}. I'll tell you here what they decide."
    )
    return message(f"Waiting for approval: {_title(n.title)}", [section(line)])


def _headline(emoji: str, word: str, title: str) -> Block:
    """ "✅ Done: <title>" in plain text: the user's words are never parsed as mrkdwn
    (their ``*`` stays a star); ``&<>`` are still escaped, which Slack shows as typed."""
    return {"type": "section", "text": plain(f"{emoji} {word}: {escape(one_line(title))}", _TITLE)}


def _footer(request_id: int | None, *notes: str) -> Block | None:
    parts = [p for p in (*notes, request_footer(request_id)) if p]
    return context(" · ".join(parts)) if parts else None


def _task_finished(n: TaskFinished) -> Message:
    """The deliverable, once. An email draft is signed with a mention, which Slack
    shows as the requester's name (no users:read scope needed)."""
    request = n.request_id if n.request_id is not None else n.task_id
    blocks: list[Block] = [_headline("✅", "Done", n.title)]
    blocks += result_blocks(
        n.result,
        currency=n.currency,
        cost_cents=n.cost_cents,
        short=True,
        signature=mention(n.requester) if n.requester else "",
    )
    points = key_points(n.result.body)
    if points and n.task_id is not None:
        blocks[0] = {**blocks[0], "accessory": full_text_button(n.task_id)}
    if points and request is not None:
        blocks.append(context(f"Request {request} · full text: `/tasks {request}`"))
    elif footer := _footer(request):
        blocks.append(footer)
    return message(_finished_text(n, request, len(points)), blocks, more_note=_more_note(request))


def _finished_text(n: TaskFinished, request: int | None, findings: int) -> str:
    title = escape(one_line(n.title))
    email = n.result.data.get("email") if isinstance(n.result.data, Mapping) else None
    if isinstance(email, Mapping):
        return f"Done: {title} — the draft is ready to copy."
    if findings:
        more = f"; full text with /tasks {request}" if request is not None else ""
        return f"Done: {title} — {findings} finding{'s' if findings != 1 else ''}{more}."
    summary = escape(one_line(n.result.summary))
    return f"Done: {title}" + (f" — {summary}" if summary else ".")


def _task_failed(n: TaskFailed) -> Message:
    """Failed means something broke; the Retry button (another change) may join it."""
    request = n.request_id if n.request_id is not None else n.task_id
    error = n.error.strip()
    blocks: list[Block] = [_headline("❌", "Failed", n.title)]
    if error:
        blocks += split_sections(
            "\n".join("> " + with_mentions(escape(line)) for line in error.split("\n"))
        )
    blocks += _retry_button(n.task_id)
    footer = _footer(request, "You can retry, or ask again; if it keeps failing, tell your admin")
    if footer:
        blocks.append(footer)
    text = f"Failed: {escape(one_line(n.title))}" + (
        f" — {with_mentions(escape(one_line(error)))}" if error else "."
    )
    return message(text, blocks, more_note=_more_note(request), keep_tail=2)


def _retry_button(task_id: int | None) -> list[Block]:
    """Re-run the failed steps (the listener lets only the requester do it)."""
    if task_id is None:
        return []
    return [
        actions(
            [button("Retry", RetryButton.action_id, RetryButton(task_id).pack())],
            block_id=f"retry:{task_id}",
        )
    ]


def _task_retried(n: TaskRetried) -> Message:
    blocks: list[Block] = [_headline("🔁", "Retrying", n.title)]
    line = f"Asked by {mention(n.retried_by)}." if n.retried_by else ""
    if n.step_titles:
        line += " Running again: " + ", ".join(escape(s) for s in n.step_titles)
    if line.strip():
        blocks.append(section(line.strip()))
    if footer := _footer(n.task_id):
        blocks.append(footer)
    return message(f"Retrying: {escape(one_line(n.title))}.", blocks)


def _task_needs_attention(n: TaskNeedsAttention) -> Message:
    lines: list[str] = []
    if n.reference:
        lines.append(f"Reference: *{escape(n.reference)}*")
    if n.detail.strip():
        lines.append(escape(n.detail.strip()))
    if n.for_approvers:
        # where the approvers act; the requester's thread may be a DM they can't open
        if n.requester:
            lines.append(f"Requested by {mention(n.requester)}.")
        who = " ".join(mention(a) for a in n.approvers) or "Approvers"
        lines.append(f"{who}: please check it; the money stays held until it is resolved.")
    elif n.approvers:
        who = " ".join(mention(a) for a in n.approvers)
        lines.append(f"I've asked {who} to check it; the money stays held until then.")
    text = f"Needs attention: {_title(n.title)}" + (
        f" — {escape(n.reference)}" if n.reference else ""
    )
    blocks = [_headline("⚠️", "Needs attention", n.title), *split_sections("\n".join(lines))]
    if footer := _footer(n.task_id):
        blocks.append(footer)
    return message(text, blocks, more_note=_more_note(n.task_id))


def _task_rejected(n: TaskRejected) -> Message:
    by = f" by {mention(n.decided_by)}" if n.decided_by else ""
    reason = escape(one_line(getattr(n, "reason", "") or ""))
    blocks: list[Block] = [_headline("🚫", "Denied", n.title)]
    line = f"Denied{by}." + (f" Reason: {reason}" if reason else "")
    blocks.append(section(line))
    footer = _footer(n.task_id, "You can ask again with a different amount or item")
    if footer:
        blocks.append(footer)
    return message(f"Denied{by}: {escape(one_line(n.title))}. You can ask again.", blocks)


def _task_cancelled(n: TaskCancelled) -> Message:
    reason = n.reason.strip()
    expired = "expired" in reason.lower()
    word, emoji = ("Expired", "⌛") if expired else ("Cancelled", "⏹️")
    blocks: list[Block] = [_headline(emoji, word, n.title)]
    if reason:
        blocks += split_sections(with_mentions(escape(reason)))
    footer = _footer(n.task_id, "Nothing more will happen; you can ask again at any time")
    if footer:
        blocks.append(footer)
    return message(f"{word}: {escape(one_line(n.title))}. You can ask again.", blocks)


def _request_finished(n: RequestFinished) -> Message:
    emoji = status_emoji(n.status)
    label = escape(status_label(n.status)) or "finished"
    line = f"{emoji} {_ref(n.task_id).capitalize()} {label}: *{_title(n.title)}*"
    if n.total:
        line += f"\n{n.completed} of {n.total} step{'s' if n.total != 1 else ''} completed."
    blocks: list[Block] = [section(line)]
    if n.status == "FAILED":
        blocks += _retry_button(n.task_id)
    return message(f"{_ref(n.task_id).capitalize()} {label}: {_title(n.title)}", blocks)


def _stale_report(n: StaleReport, permalinks: Permalinks) -> Message:
    """Today's digest: each waiting request once, mentioning only who can unblock it."""
    count = len(n.tasks)
    if not count:
        return message("No requests are waiting too long.", [section("🧹 Nothing is waiting.")])
    plural = "s" if count != 1 else ""
    head = f"⏳ *{count} request{plural} waiting too long*"
    lines = [_stale_line(t, permalinks.get(t.task_id)) for t in n.tasks]
    blocks: list[Block] = [section(head), *split_sections("\n".join(lines))]
    blocks.append(context("Updated in place during the day · the oldest wait longest"))
    deciders = {u for t in n.tasks for u in t.waiting_on}
    action = " Approvers can decide from the links." if deciders else ""
    return message(f"{count} request{plural} waiting too long.{action}", blocks)


def _stale_line(t: StaleTask, url: str | None) -> str:
    if t.waiting_on:
        waiting = "approval from " + ", ".join(mention(u) for u in t.waiting_on)
    elif is_user_id(t.waiting_for):
        waiting = mention(t.waiting_for)
    else:
        waiting = escape(one_line(t.waiting_for))
    line = (
        f"• `#{t.task_id}` {title_mrkdwn(t.title)} · waiting {escape(humanize_age(t.age_seconds))}"
    )
    if waiting:
        line += f" for {waiting}"
    if url:
        line += " · " + link(url, "approval" if t.approval_ts else "thread")
    return line


Renderer = Callable[[Any, Permalinks], Message]

#: notice type → its message; tests/…/test_renderers.py checks every Notice has one
RENDERERS: dict[type[Notice], Renderer] = {
    RequestStatus: lambda n, _links: render_status(n),
    RequestAccepted: lambda n, _links: _request_accepted(n),
    RequestRefused: lambda n, _links: _request_refused(n),
    ApprovalNeeded: lambda n, links: approval_needed(n, links.get(n.task_id or 0)),
    ApprovalAsked: lambda n, _links: _approval_asked(n),
    ApprovalDecided: lambda n, _links: approval_decided(n),
    ApprovalReminder: lambda n, _links: approval_reminder(n),
    TaskFinished: lambda n, _links: _task_finished(n),
    TaskFailed: lambda n, _links: _task_failed(n),
    TaskNeedsAttention: lambda n, _links: _task_needs_attention(n),
    TaskRejected: lambda n, _links: _task_rejected(n),
    TaskCancelled: lambda n, _links: _task_cancelled(n),
    RequestFinished: lambda n, _links: _request_finished(n),
    StaleReport: _stale_report,
    TaskRetried: lambda n, _links: _task_retried(n),
}
